use thiserror::Error;

use crate::storage::StorageError;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RepoError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("TUF: {what}: {source}")]
    Tuf {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{role} key from {origin}: {message}")]
    Key {
        role: &'static str,
        origin: String,
        message: String,
    },
    #[error("database: {0}")]
    Format(#[from] vigil_format::FormatError),
    #[error("{0} has no TUF root (metadata/1.root.json): run `vigil-build repo init` first")]
    NotInitialized(String),
    #[error("{0} already holds a TUF root; refusing to start a second one over it")]
    AlreadyInitialized(String),
    #[error("database version {version} is not newer than the published version {current}: versions must grow")]
    VersionNotNewer { version: u64, current: u64 },
    #[error("another publisher wrote {what} first (metadata version {version}); nothing of ours is live, rerun to publish on top of theirs")]
    Conflict { version: u64, what: String },
    #[error("{key} in the repository does not match what the metadata lists ({why})")]
    Corrupt { key: String, why: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the repository lists no database version {version}")]
    UnknownVersion { version: u64 },
    #[error("database version {version} cannot be changed so: {why}")]
    InvalidAmendment { version: u64, why: String },
    #[error("after publishing, the repository does not show version {expected} (it shows {found}): check for a concurrent publisher")]
    NotVisible { expected: u64, found: u64 },
}

impl RepoError {
    pub(crate) fn tuf(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Tuf {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }
}
