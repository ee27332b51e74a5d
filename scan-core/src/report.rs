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
}

impl SigKind {
    /// The name findings carry: `hash`, `body` or `yara` (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            SigKind::Hash => "hash",
            SigKind::Body => "body",
            SigKind::Yara => "yara",
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
}

#[derive(Clone, Debug, Default)]
pub struct ScanReport {
    pub findings: Vec<Finding>,
    /// Hex SHA-256 of the file: computed only when there is something to report.
    pub sha256: Option<String>,
    pub size: u64,
    /// Name of the allowlist entry that cleared the file, if one did.
    pub allowlisted: Option<String>,
}
