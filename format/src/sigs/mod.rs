//! Signature records in ClamAV's text formats, parsed into typed values that both the linter
//! and the scan engine use, so that what lint accepts is exactly what the engine loads.
//!
//! Parsers take one line (comments and blank lines are the caller's business) and return a
//! [`SigError`] with a stable code and the 1-based column where the problem starts.

mod body;
mod hash;

pub use body::{parse_ndb_line, BodySig, Offset, Token, MIN_ANCHOR};
pub use hash::{parse_hash_line, HashFile, HashKind, HashSig};

use thiserror::Error;

/// What is wrong with one signature line, and where in the line.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{code}: {message} (column {column})")]
pub struct SigError {
    /// Stable code, e.g. `ndb/hex`: documented in rules-src/README.md, safe to match on.
    pub code: &'static str,
    /// 1-based byte column within the line.
    pub column: usize,
    pub message: String,
}

impl SigError {
    fn new(code: &'static str, column: usize, message: impl Into<String>) -> Self {
        Self {
            code,
            column,
            message: message.into(),
        }
    }
}

/// A line split on `:` with the 1-based column of each field.
fn fields(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in line.char_indices() {
        if c == ':' {
            out.push((start + 1, &line[start..i]));
            start = i + 1;
        }
    }
    out.push((start + 1, &line[start..]));
    out
}

/// Signature names: printable ASCII without spaces or `:`, as ClamAV's tools expect in reports.
fn check_name(code: &'static str, column: usize, name: &str) -> Result<(), SigError> {
    if name.is_empty() {
        return Err(SigError::new(code, column, "empty signature name"));
    }
    if let Some((i, c)) = name
        .char_indices()
        .find(|(_, c)| !c.is_ascii_graphic() || *c == ':')
    {
        return Err(SigError::new(
            code,
            column + i,
            format!("signature name has invalid character {c:?}"),
        ));
    }
    Ok(())
}

fn parse_flevel(code: &'static str, column: usize, s: &str) -> Result<u32, SigError> {
    s.parse::<u32>().map_err(|_| {
        SigError::new(
            code,
            column,
            format!("functionality level {s:?} is not a number"),
        )
    })
}
