//! Errors from reading untrusted containers and deltas. Each names what was wrong and where,
//! so that a one-line message is enough for an operator.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    #[error("bad magic: not a vigil {expected} file")]
    BadMagic { expected: &'static str },
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("truncated at byte {at}: {what} needs {need} bytes, file has {len}")]
    Truncated {
        at: u64,
        need: u64,
        len: u64,
        what: &'static str,
    },
    #[error("trailing data: header says {declared} bytes, file has {actual}")]
    LengthMismatch { declared: u64, actual: u64 },
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("bad signature: not signed by a trusted key (key id {key_id})")]
    UnknownKey { key_id: String },
    #[error("bad signature: the database was altered or signed by another key")]
    BadSignature,
    #[error("section {index} hash mismatch ({kind})")]
    SectionHash { index: usize, kind: String },
    #[error("section {index} ({kind}) does not decompress: {detail}")]
    SectionDecode {
        index: usize,
        kind: String,
        detail: String,
    },
    #[error("database needs engine version {needed}, this build has {have}")]
    EngineTooOld { needed: u32, have: u32 },
    #[error("delta does not apply: {0}")]
    DeltaMismatch(String),
    #[error("compression failed: {0}")]
    Compress(String),
}
