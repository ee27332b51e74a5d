//! YARA rules: compiled by yara-x from the database's sources (all in one namespace, as lint
//! compiled them), with a cache of the compiled form keyed by the database's SHA-256.

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use vigil_format::sections::SourceFile;

use crate::engine::{Finding, SigKind};
use crate::error::{EngineError, ScanError};

pub struct YaraRules {
    rules: yara_x::Rules,
    count: usize,
    from_cache: bool,
}

/// Cache file: magic, SHA-256 of the blob, then yara-x's serialized rules. The hash is checked
/// before yara-x deserializes anything, so a torn or altered cache is recompiled, not trusted.
///
/// The blob includes the native code wasmtime generated (yara-x's `native-code-serialization`),
/// which turns a warm start from a JIT compile into a copy. Native code from disk is trusted
/// code, so a cache is used only when no one else could have written it: the directory and
/// the file must not be group- or world-writable and must belong to this process's user. The
/// cache is therefore as trustworthy as the database directory it sits in.
const CACHE_MAGIC: &[u8; 8] = b"VIGILYC2";

fn cache_path(dir: &Path, db_sha256: &[u8; 32]) -> std::path::PathBuf {
    dir.join(format!("{}.yarac", hex::encode(db_sha256)))
}

impl YaraRules {
    pub fn load(
        files: &[SourceFile],
        db_sha256: &[u8; 32],
        cache_dir: Option<&Path>,
    ) -> Result<Self, EngineError> {
        if let Some(dir) = cache_dir {
            if let Some(rules) = read_cache(&cache_path(dir, db_sha256)) {
                let count = rules.iter().count();
                return Ok(Self {
                    rules,
                    count,
                    from_cache: true,
                });
            }
        }
        let mut c = yara_x::Compiler::new();
        c.enable_includes(false);
        for f in files {
            c.add_source(yara_x::SourceCode::from(f.text.as_str()).with_origin(f.path.as_str()))
                .map_err(|e| EngineError::Yara(e.to_string()))?;
        }
        let rules = c.build();
        let count = rules.iter().count();
        if let Some(dir) = cache_dir {
            // A cache that cannot be written only costs the next start a compile.
            let _ = write_cache(&cache_path(dir, db_sha256), &rules);
        }
        Ok(Self {
            rules,
            count,
            from_cache: false,
        })
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether these rules came from the compiled-form cache rather than a compile.
    pub fn cached(&self) -> bool {
        self.from_cache
    }

    pub fn scanner(&self) -> YaraScanner<'_> {
        YaraScanner {
            inner: yara_x::Scanner::new(&self.rules),
        }
    }
}

/// yara-x's scanner, kept from scan to scan: creating one instantiates the rules' wasm module.
pub struct YaraScanner<'r> {
    inner: yara_x::Scanner<'r>,
}

impl YaraScanner<'_> {
    pub fn scan(
        &mut self,
        data: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Vec<Finding>, ScanError> {
        match timeout {
            Some(t) if t.is_zero() => return Err(ScanError::Timeout),
            Some(t) => self.inner.set_timeout(t),
            // yara-x has no "no timeout"; it caps any value at its own default of years.
            None => self
                .inner
                .set_timeout(Duration::from_secs(u64::from(u32::MAX))),
        };
        let results = match self.inner.scan(data) {
            Ok(r) => r,
            Err(yara_x::errors::ScanError::Timeout) => return Err(ScanError::Timeout),
            Err(e) => return Err(ScanError::Yara(e.to_string())),
        };
        Ok(results
            .matching_rules()
            .map(|r| {
                let meta = |key: &str| {
                    r.metadata()
                        .find(|(k, _)| *k == key)
                        .and_then(|(_, v)| match v {
                            yara_x::MetaValue::String(s) => Some(s.to_string()),
                            _ => None,
                        })
                };
                let offset = r
                    .patterns()
                    .flat_map(|p| {
                        p.matches()
                            .map(|m| m.range().start as u64)
                            .collect::<Vec<_>>()
                    })
                    .min();
                Finding {
                    signature: r.identifier().to_string(),
                    kind: SigKind::Yara,
                    severity: meta("severity"),
                    description: meta("description"),
                    offset,
                }
            })
            .collect())
    }
}

/// Whether only this process's user could have written `path`.
#[cfg(unix)]
fn private(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(path) else {
        return false;
    };
    // /proc/self belongs to the process's effective user; elsewhere only the mode is checked.
    let owner_ok = std::fs::metadata("/proc/self").map_or(true, |me| me.uid() == m.uid());
    owner_ok && m.mode() & 0o022 == 0
}

#[cfg(not(unix))]
fn private(_path: &Path) -> bool {
    true
}

fn read_cache(path: &Path) -> Option<yara_x::Rules> {
    if !private(path) || !private(path.parent()?) {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let (head, blob) = bytes.split_at_checked(40)?;
    if &head[..8] != CACHE_MAGIC || head[8..] != Sha256::digest(blob)[..] {
        return None;
    }
    yara_x::Rules::deserialize(blob).ok()
}

fn write_cache(path: &Path, rules: &yara_x::Rules) -> std::io::Result<()> {
    let blob = rules
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut out = Vec::with_capacity(blob.len() + 40);
    out.extend_from_slice(CACHE_MAGIC);
    out.extend_from_slice(&Sha256::digest(&blob));
    out.extend_from_slice(&blob);
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, &out)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
