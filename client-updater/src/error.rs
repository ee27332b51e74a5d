//! What can go wrong in an update, grouped into classes that map to exit codes, so scripts and
//! monitoring can tell "the network is down" from "someone served us a forged database".

use std::path::PathBuf;

use thiserror::Error;

/// Exit codes of `vigil-update` and `vigil-agent` (documented in the README; stable).
pub mod exit {
    /// A new database was verified, smoke-tested and installed.
    pub const UPDATED: u8 = 0;
    /// Nothing newer that this engine can use is published.
    pub const UP_TO_DATE: u8 = 1;
    /// Bad configuration or command line.
    pub const CONFIG: u8 = 2;
    /// No mirror could be reached, or every mirror is cooling down after throttling.
    pub const NETWORK: u8 = 3;
    /// Metadata or a file failed verification (TUF signature, expiry, rollback, length, hash).
    pub const VERIFY: u8 = 4;
    /// The new database verified but failed to load or to pass the smoke test; marked bad.
    pub const REJECTED: u8 = 5;
    /// A local problem: disk full, permissions, the database directory.
    pub const LOCAL: u8 = 6;
    /// Another vigil-update holds the database directory's lock.
    pub const LOCKED: u8 = 7;
}

/// Why a verified database was rejected: check-ins tell the two apart, because the automatic
/// halt counts both but an operator reads them differently (a rule that does not compile in
/// this engine, or rules that compile but miss a sample).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectKind {
    /// It did not load: the engine refused it (compile error, or a header that disagrees with
    /// TUF).
    Load,
    /// It loaded but failed the smoke test (missed EICAR or a file in `smoke_dir`).
    SmokeTest,
}

#[derive(Debug, Error)]
pub enum UpdateError {
    #[error("configuration {path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("mirror {mirror}: {message}")]
    Network { mirror: String, message: String },

    #[error("mirror {mirror} is throttling us (HTTP {status}, Retry-After {secs} s)")]
    Throttled {
        mirror: String,
        status: u16,
        secs: u64,
    },

    #[error("every mirror is cooling down after throttling or failures; next try in {secs} s")]
    AllCoolingDown { secs: u64 },

    #[error("mirror {mirror}: verification failed: {message}")]
    Verify { mirror: String, message: String },

    #[error("database version {version} rejected: {message}")]
    Rejected {
        version: u64,
        kind: RejectKind,
        message: String,
    },

    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("another vigil-update is running on {0} (its lock is held)")]
    Locked(PathBuf),

    #[error("{0}")]
    Other(String),
}

impl UpdateError {
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            context,
            path: path.into(),
            source,
        }
    }

    /// The exit code of this failure's class.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config { .. } => exit::CONFIG,
            Self::Network { .. } | Self::Throttled { .. } | Self::AllCoolingDown { .. } => {
                exit::NETWORK
            }
            Self::Verify { .. } => exit::VERIFY,
            Self::Rejected { .. } => exit::REJECTED,
            Self::Io { .. } | Self::Other(_) => exit::LOCAL,
            Self::Locked(_) => exit::LOCKED,
        }
    }

    /// Whether trying the next mirror could help. A forged file on one mirror is that mirror's
    /// problem; a full disk or a database that fails our smoke test is the same everywhere.
    pub fn try_next_mirror(&self) -> bool {
        matches!(
            self,
            Self::Network { .. } | Self::Throttled { .. } | Self::Verify { .. }
        )
    }
}
