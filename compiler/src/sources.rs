//! Finding and reading rule files. Files are identified by their path relative to the rules
//! directory with `/` separators, and always handled in sorted order, so nothing downstream
//! depends on the order the file system lists them in.

use std::fs;
use std::path::{Path, PathBuf};

use thiserror::Error;
use vigil_format::sigs::HashFile;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RuleKind {
    Yara,
    Ndb,
    Hash(HashFileKind),
}

/// `HashFile` with an order, so files sort the same way everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HashFileKind {
    Hdb,
    Hsb,
    Fp,
    Sfp,
}

impl HashFileKind {
    pub fn file(self) -> HashFile {
        match self {
            HashFileKind::Hdb => HashFile::Hdb,
            HashFileKind::Hsb => HashFile::Hsb,
            HashFileKind::Fp => HashFile::Fp,
            HashFileKind::Sfp => HashFile::Sfp,
        }
    }

    /// The database section a line of this file goes to: MD5 lines to `hdb`/`fp`, SHA-1 and
    /// SHA-256 lines to `hsb`/`sfp`, whichever file they were written in. Sources may mix
    /// digests as clamscan allows; the database keeps each section to the digests engines
    /// before this rule accepted there, so those engines still load it.
    pub fn section_for(self, md5: bool) -> HashFileKind {
        match (self, md5) {
            (HashFileKind::Hdb | HashFileKind::Hsb, true) => HashFileKind::Hdb,
            (HashFileKind::Hdb | HashFileKind::Hsb, false) => HashFileKind::Hsb,
            (HashFileKind::Fp | HashFileKind::Sfp, true) => HashFileKind::Fp,
            (HashFileKind::Fp | HashFileKind::Sfp, false) => HashFileKind::Sfp,
        }
    }
}

impl RuleKind {
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "yar" | "yara" => RuleKind::Yara,
            "ndb" => RuleKind::Ndb,
            "hdb" => RuleKind::Hash(HashFileKind::Hdb),
            "hsb" => RuleKind::Hash(HashFileKind::Hsb),
            "fp" => RuleKind::Hash(HashFileKind::Fp),
            "sfp" => RuleKind::Hash(HashFileKind::Sfp),
            _ => return None,
        })
    }
}

/// One rule file, read and normalised (UTF-8 BOM dropped, CRLF turned into LF) so that a
/// checkout on Windows builds the same database as one on Linux.
#[derive(Clone, Debug)]
pub struct RuleFile {
    /// Relative to the rules directory, `/`-separated: what goes into the database.
    pub rel_path: String,
    /// As the user would find it: for diagnostics.
    pub display_path: String,
    pub kind: RuleKind,
    /// `Err` holds the byte offset of the first invalid UTF-8 sequence.
    pub text: Result<String, usize>,
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a rule file (expected .yar, .yara, .ndb, .hdb, .hsb, .fp or .sfp)")]
    UnknownKind { path: String },
}

/// Collects rule files from files and directories (recursively; hidden entries and files of
/// other kinds inside directories are skipped, symlinked directories are not followed so a
/// loop cannot hang the build). A file named explicitly must be a rule file.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<RuleFile>, SourceError> {
    let mut out = Vec::new();
    for root in paths {
        let io = |path: &Path, source| SourceError::Io {
            path: path.display().to_string(),
            source,
        };
        let meta = fs::metadata(root).map_err(|e| io(root, e))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(root, root, &mut found)?;
            found.sort_by(|a, b| a.0.cmp(&b.0));
            for (rel, path, kind) in found {
                out.push(read(&path, rel, kind)?);
            }
        } else {
            let kind = RuleKind::from_path(root).ok_or_else(|| SourceError::UnknownKind {
                path: root.display().to_string(),
            })?;
            let rel = root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(read(root, rel, kind)?);
        }
    }
    Ok(out)
}

fn walk(
    root: &Path,
    dir: &Path,
    found: &mut Vec<(String, PathBuf, RuleKind)>,
) -> Result<(), SourceError> {
    let io = |source| SourceError::Io {
        path: dir.display().to_string(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let ft = entry.file_type().map_err(io)?;
        if ft.is_dir() {
            walk(root, &path, found)?;
        } else if let Some(kind) = RuleKind::from_path(&path) {
            if ft.is_symlink() && !path.is_file() {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            found.push((rel, path, kind));
        }
    }
    Ok(())
}

fn read(path: &Path, rel_path: String, kind: RuleKind) -> Result<RuleFile, SourceError> {
    let bytes = fs::read(path).map_err(|source| SourceError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.replace("\r\n", "\n")),
        Err(e) => Err(e.valid_up_to()),
    };
    Ok(RuleFile {
        rel_path,
        display_path: path.display().to_string(),
        kind,
        text,
    })
}
