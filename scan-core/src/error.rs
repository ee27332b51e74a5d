//! Errors: loading a database (the engine is then never built) and scanning one file (the
//! scan of other files goes on).

use std::time::Duration;

use thiserror::Error;
use vigil_format::FormatError;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EngineError {
    // Not `#[from]`: that would make it the source too and print the cause twice in a chain.
    #[error("database refused: {0}")]
    Format(FormatError),
    #[error("database refused: {section} record {line}: {message}")]
    Record {
        section: &'static str,
        line: usize,
        message: String,
    },
    #[error("database refused: YARA rules do not compile: {0}")]
    Yara(String),
    #[error("database refused: body signatures: {0}")]
    Body(BodyError),
}

impl From<FormatError> for EngineError {
    fn from(e: FormatError) -> Self {
        EngineError::Format(e)
    }
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ScanError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("scan timed out")]
    Timeout,
    #[error("size limit exceeded ({size} bytes, limit {limit})")]
    TooLarge { size: u64, limit: u64 },
    #[error("not a regular file")]
    NotRegular,
    #[error("on a pseudo-filesystem ({fs}): not scanned")]
    PseudoFilesystem { fs: &'static str },
    #[error("file changed while being read ({got} of {expected} bytes)")]
    Changed { expected: u64, got: u64 },
    #[error("YARA scan failed: {0}")]
    Yara(String),
}

impl ScanError {
    /// Not scanned by choice rather than failed: not a regular file, on a pseudo-filesystem,
    /// over the size limit (clamscan counts these as skipped, not as errors).
    pub fn is_skip(&self) -> bool {
        matches!(
            self,
            ScanError::NotRegular | ScanError::PseudoFilesystem { .. } | ScanError::TooLarge { .. }
        )
    }
}

/// Per-scan limits, as clamscan's --max-filesize and a per-file timeout.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_filesize: u64,
    pub timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_filesize: 4 << 30,
            timeout: Some(Duration::from_secs(120)),
        }
    }
}

/// Why a set of body signatures cannot be matched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    #[error("{name}: needs {min} consecutive literal bytes to anchor on")]
    NoAnchor { name: String, min: usize },
    #[error("building the Aho-Corasick prefilter: {0}")]
    Prefilter(#[from] aho_corasick::BuildError),
}
