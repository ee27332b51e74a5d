//! What a scan reports: the findings on one file (and which kind of signature made each), its
//! size, and its SHA-256 when there is something to report. Shared by the engine and the YARA
//! layer, and serialized as is by the scan service.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SigKind {
    Hash,
    Body,
    Yara,
    /// A condition of the file rather than a signature: limits exceeded, encrypted content,
    /// an overlapping-entry zip (opt-in, or on by default as ClamAV's heuristic alerts are).
    Heuristic,
}

impl SigKind {
    /// The name findings carry: `hash`, `body` or `yara` (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            SigKind::Hash => "hash",
            SigKind::Body => "body",
            SigKind::Yara => "yara",
            SigKind::Heuristic => "heuristic",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub signature: String,
    pub kind: SigKind,
    pub severity: Option<String>,
    pub description: Option<String>,
    /// Where the match starts, when the signature kind knows it.
    pub offset: Option<u64>,
    /// Where inside the scanned object the match is, when it is inside a container: the
    /// chain of member names joined by `!` (`inner.zip!clam.exe`), as ClamAV prints it after
    /// the file's own path. `None`: the object itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl Finding {
    /// The full name of what matched: `outer` alone, or `outer!path` inside a container.
    pub fn located(&self, outer: &str) -> String {
        match &self.path {
            Some(p) => format!("{outer}!{p}"),
            None => outer.to_string(),
        }
    }
}

/// Why part of an object was not scanned. Any of these makes a clean verdict incomplete: S3
/// tags it UNSUPPORTED, the scan summary counts it, and with the heuristic alerts on
/// ([`crate::Limits::alert_exceeds_max`], [`crate::Limits::alert_encrypted`]) it is a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unscannable {
    /// Encrypted member or container (no key).
    Encrypted,
    /// A member over [`crate::Limits::max_filesize`].
    MaxFileSize,
    /// The object's expanded bytes reached [`crate::Limits::max_scansize`].
    MaxScanSize,
    /// More members than [`crate::Limits::max_files`].
    MaxFiles,
    /// Nested deeper than [`crate::Limits::max_recursion`].
    MaxRecursion,
    /// A container expanding past [`crate::Limits::max_ratio`] times its own size.
    MaxRatio,
    /// A container whose structure is broken past some point (what came before was scanned).
    Corrupt,
}

impl Unscannable {
    /// ClamAV's heuristic name for the same condition (`Heuristics.Limits.Exceeded.*`,
    /// `Heuristics.Encrypted.*`), which the opt-in alerts report.
    pub fn heuristic(self) -> &'static str {
        match self {
            Unscannable::Encrypted => "Heuristics.Encrypted",
            Unscannable::MaxFileSize => "Heuristics.Limits.Exceeded.MaxFileSize",
            Unscannable::MaxScanSize => "Heuristics.Limits.Exceeded.MaxScanSize",
            Unscannable::MaxFiles => "Heuristics.Limits.Exceeded.MaxFiles",
            Unscannable::MaxRecursion => "Heuristics.Limits.Exceeded.MaxRecursion",
            Unscannable::MaxRatio => "Heuristics.Limits.Exceeded.MaxRatio",
            Unscannable::Corrupt => "Heuristics.Broken.Container",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Unscannable::Encrypted => "encrypted",
            Unscannable::MaxFileSize => "max_filesize",
            Unscannable::MaxScanSize => "max_scansize",
            Unscannable::MaxFiles => "max_files",
            Unscannable::MaxRecursion => "max_recursion",
            Unscannable::MaxRatio => "max_ratio",
            Unscannable::Corrupt => "corrupt",
        }
    }
}

/// One part of an object left unscanned, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unscanned {
    /// The member chain as in [`Finding::path`]; empty for the object itself.
    pub path: String,
    pub reason: Unscannable,
}

#[derive(Clone, Debug, Default)]
pub struct ScanReport {
    pub findings: Vec<Finding>,
    /// Hex SHA-256 of the file: computed only when there is something to report.
    pub sha256: Option<String>,
    pub size: u64,
    /// Name of the allowlist entry that cleared the file, if one did.
    pub allowlisted: Option<String>,
    /// Parts of the object not scanned (encrypted members, limits reached): empty when every
    /// layer was scanned.
    pub unscanned: Vec<Unscanned>,
    /// Containers opened and members scanned inside this object (0 for a plain file).
    pub members: u64,
}

impl ScanReport {
    /// Clean but not completely scanned: nothing found, and something was left unscanned.
    pub fn is_incomplete(&self) -> bool {
        self.findings.is_empty() && !self.unscanned.is_empty()
    }
}
