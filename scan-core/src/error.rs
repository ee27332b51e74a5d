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

/// Per-scan limits, modelled on clamscan's (`--max-filesize`, `--max-scansize`,
/// `--max-recursion`, `--max-files`) plus a per-file timeout and a compression-ratio bound.
/// Reaching one inside a container never passes silently: the report lists what was left
/// unscanned ([`crate::ScanReport::unscanned`]), and the alerts turn that into a finding.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Objects larger than this are skipped; members larger than this (or than what is left
    /// of `max_scansize`) are not extracted.
    pub max_filesize: u64,
    pub timeout: Option<Duration>,
    /// Bytes extracted from one object's containers, all layers together (ClamAV:
    /// MaxScanSize, 400 MiB).
    pub max_scansize: u64,
    /// Container nesting depth (ClamAV: MaxRecursion, 17).
    pub max_recursion: u32,
    /// Members extracted from one object, all layers together (ClamAV: MaxFiles, 10000).
    pub max_files: u32,
    /// A container may expand to at most this many times its own size, beyond a floor of
    /// [`RATIO_FLOOR`] bytes (zip bombs: 42.zip expands 10^6 times; real archives stay far
    /// below 100).
    pub max_ratio: u32,
    /// Open containers at all (clamscan's `--scan-archive`): off, only the object's own bytes
    /// are matched.
    pub scan_archives: bool,
    /// Report limits reached as `Heuristics.Limits.Exceeded.*` findings (clamscan's
    /// `--alert-exceeds-max`).
    pub alert_exceeds_max: bool,
    /// Report encrypted containers as `Heuristics.Encrypted.*` findings (clamscan's
    /// `--alert-encrypted`).
    pub alert_encrypted: bool,
    /// Report structural tricks (a zip whose entries overlap) as `Heuristics.*` findings
    /// (clamscan's `--heuristic-alerts`, on by default there too).
    pub heuristic_alerts: bool,
}

/// Expanded bytes a container may always produce, whatever its ratio.
pub const RATIO_FLOOR: u64 = 16 << 20;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_filesize: 4 << 30,
            timeout: Some(Duration::from_secs(120)),
            max_scansize: 400 << 20,
            max_recursion: 17,
            max_files: 10_000,
            max_ratio: 250,
            scan_archives: true,
            alert_exceeds_max: false,
            alert_encrypted: false,
            heuristic_alerts: true,
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
