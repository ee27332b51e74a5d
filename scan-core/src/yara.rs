//! YARA rules: compiled by yara-x from the database's sources (all in one namespace, as lint
//! compiled them), with a cache of the compiled form keyed by the database's SHA-256.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use rustix::fs::{FileType, Mode, OFlags};

use sha2::{Digest, Sha256};
use vigil_format::sections::SourceFile;

use crate::error::{EngineError, ScanError};
use crate::report::{Finding, SigKind};

pub struct YaraRules {
    rules: yara_x::Rules,
    count: usize,
    from_cache: bool,
}

/// Cache file: magic, the SHA-256 of the database it was compiled from, the SHA-256 of the
/// engine build that wrote it, the SHA-256 of the blob, then yara-x's serialized rules. All
/// three are checked before yara-x deserializes anything, so a torn or altered cache, one
/// compiled from another database, or one from another build is recompiled, not trusted.
///
/// The blob includes the native code wasmtime generated (yara-x's `native-code-serialization`),
/// which turns a warm start from a JIT compile into a copy. Native code from disk is trusted
/// code, so a cache is used only when no one else could have written it: the directory and
/// the file must belong to this process's effective user (`geteuid`, not a path under /proc
/// that may be hidden) and be neither group- nor world-writable. Both are opened with
/// `O_NOFOLLOW` and checked through their descriptors, and the file is read and written only
/// relative to the checked directory's descriptor, so a symlink or a swapped path cannot send
/// the read or the write elsewhere. The cache is as trustworthy as the directory it sits in.
const CACHE_MAGIC: &[u8; 8] = b"VIGILYC3";
const HEADER: usize = 8 + 32 * 3;

/// What the compiled form depends on besides the sources: this crate and yara-x (pinned in
/// the workspace), and the machine the native code is for.
fn engine_build() -> String {
    format!(
        "vigil-scan-core {} yara-x 1.22.1{} native {}",
        env!("CARGO_PKG_VERSION"),
        // Profiling changes the generated code (every rule reports its end), so a cache from a
        // build with it is not one for a build without.
        if cfg!(feature = "profiling") {
            " rules-profiling"
        } else {
            ""
        },
        std::env::consts::ARCH
    )
}

/// Cache files larger than this are not read (compiled rule sets are megabytes).
const MAX_CACHE_FILE: u64 = 1 << 30;

fn cache_name(db_sha256: &[u8; 32]) -> String {
    format!("{}.yarac", hex::encode(db_sha256))
}

impl YaraRules {
    pub fn load(
        files: &[SourceFile],
        db_sha256: &[u8; 32],
        cache_dir: Option<&Path>,
    ) -> Result<Self, EngineError> {
        if let Some(dir) = cache_dir {
            if let Some(rules) = read_cache(dir, db_sha256) {
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
            let _ = write_cache(dir, db_sha256, &rules);
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

/// What one YARA rule cost a scanner so far, from yara-x's `rules-profiling`.
#[cfg(feature = "profiling")]
#[derive(Clone, Debug)]
pub struct RuleCost {
    pub rule: String,
    /// Time spent evaluating the rule's condition.
    pub condition: Duration,
    /// Time spent verifying the rule's pattern matches.
    pub patterns: Duration,
}

impl YaraScanner<'_> {
    /// Per-rule costs accumulated over every scan since the last [`Self::clear_profile`].
    /// yara-x itemises only rules that took more than 100 ms in this scanner in all.
    #[cfg(feature = "profiling")]
    pub fn profile(&self) -> Vec<RuleCost> {
        self.inner
            .slowest_rules(usize::MAX)
            .into_iter()
            .map(|p| RuleCost {
                rule: p.rule.to_string(),
                condition: p.condition_exec_time,
                patterns: p.pattern_matching_time,
            })
            .collect()
    }

    #[cfg(feature = "profiling")]
    pub fn clear_profile(&mut self) {
        self.inner.clear_profiling_data();
    }

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
                    path: None,
                }
            })
            .collect())
    }
}

/// Opens `dir` (not following a symlink in its last component) and checks, through the
/// descriptor, that only this process's effective user could have written to it.
fn open_private_dir(dir: &Path) -> std::io::Result<OwnedFd> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    private(&fd, FileType::Directory)?;
    Ok(fd)
}

/// Whether the open `fd` is of `kind`, belongs to the effective user and is not writable by
/// group or others.
fn private(fd: &OwnedFd, kind: FileType) -> std::io::Result<()> {
    let st = rustix::fs::fstat(fd)?;
    let me = rustix::process::geteuid().as_raw();
    if FileType::from_raw_mode(st.st_mode) != kind || st.st_uid != me || st.st_mode & 0o022 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "compiled-rule cache not private to this user",
        ));
    }
    Ok(())
}

fn header(db_sha256: &[u8; 32], blob: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER);
    h.extend_from_slice(CACHE_MAGIC);
    h.extend_from_slice(db_sha256);
    h.extend_from_slice(&Sha256::digest(engine_build().as_bytes()));
    h.extend_from_slice(&Sha256::digest(blob));
    h
}

fn read_cache(dir: &Path, db_sha256: &[u8; 32]) -> Option<yara_x::Rules> {
    let dirfd = open_private_dir(dir).ok()?;
    let fd = rustix::fs::openat(
        &dirfd,
        cache_name(db_sha256),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    private(&fd, FileType::RegularFile).ok()?;
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_CACHE_FILE)
        .read_to_end(&mut bytes)
        .ok()?;
    let (head, blob) = bytes.split_at_checked(HEADER)?;
    if head != header(db_sha256, blob) {
        return None;
    }
    yara_x::Rules::deserialize(blob).ok()
}

fn write_cache(dir: &Path, db_sha256: &[u8; 32], rules: &yara_x::Rules) -> std::io::Result<()> {
    let blob = rules
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let dirfd = open_private_dir(dir)?;
    // A fresh name, created exclusively and without following links, then renamed over the
    // final name within the same checked directory.
    let tmp = format!(
        ".{}.tmp-{}-{:016x}",
        cache_name(db_sha256),
        std::process::id(),
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8)
    );
    let fd = rustix::fs::openat(
        &dirfd,
        &tmp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let mut f = std::fs::File::from(fd);
    let written = f
        .write_all(&header(db_sha256, &blob))
        .and_then(|()| f.write_all(&blob))
        .and_then(|()| f.sync_all())
        .and_then(|()| {
            rustix::fs::renameat(&dirfd, &tmp, &dirfd, cache_name(db_sha256)).map_err(Into::into)
        });
    if written.is_err() {
        let _ = rustix::fs::unlinkat(&dirfd, &tmp, rustix::fs::AtFlags::empty());
    }
    written
}
