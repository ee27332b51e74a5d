//! The one error type of the quarantine store: every variant names the path or entry it is
//! about, so an operator reading the agent's log knows which file was refused and why.

use std::path::PathBuf;

/// What went wrong in the store. Refusals (`NotRegular`, `Symlink`, `Changed`, `Swapped`,
/// `Exists`, `NoParent`, `BadPath`) are the store protecting the host: nothing was moved.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// The store directory is unsafe to use (a symlink, someone else's, group/world-accessible).
    #[error("quarantine store {path}: {message}")]
    UnsafeStore { path: PathBuf, message: String },
    /// A system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The path is not absolute, or holds `.`/`..` components.
    #[error("{path}: {reason}")]
    BadPath { path: PathBuf, reason: &'static str },
    /// The path, or a directory on the way to it, is a symbolic link: never followed as root.
    #[error("{path}: refused: {what}")]
    Symlink { path: PathBuf, what: &'static str },
    /// Not a regular file (a FIFO, device, socket or directory).
    #[error("{path}: refused: not a regular file ({kind})")]
    NotRegular { path: PathBuf, kind: &'static str },
    /// The content is not what was scanned (or changed while it was read).
    #[error("{path}: refused: the file changed since it was scanned ({detail})")]
    Changed { path: PathBuf, detail: String },
    /// Another file was put at the path between the read and the unlink; the entry was rolled back.
    #[error("{path}: refused: the file at this path was replaced while it was quarantined; left in place")]
    Swapped { path: PathBuf },
    /// Restore would overwrite a file that has appeared at the original path.
    #[error("{path}: refused: a file exists at this path; not overwritten")]
    Exists { path: PathBuf },
    /// Restore's parent directory is gone; the store does not create directories as root.
    #[error("{path}: the parent directory does not exist (not created)")]
    NoParent { path: PathBuf },
    /// No entry with this id.
    #[error("no quarantine entry {id}")]
    NotFound { id: String },
    /// An entry file that is not a vigil quarantine entry, or is damaged.
    #[error("damaged quarantine entry {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
}

impl QuarantineError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        e: impl Into<std::io::Error>,
    ) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source: e.into(),
        }
    }
}
