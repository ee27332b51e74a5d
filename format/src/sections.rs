//! Contents of the sections. YARA rules travel as canonical sources, not as yara-x's compiled
//! blob: a compiled blob changes almost entirely when one rule changes (a patch of it is over
//! 100 KB), while a patch of the sources is a few hundred bytes. The client compiles once and
//! caches the result. ClamAV-format sections are their canonical lines, one record per line.

use crate::codec::{to_usize, Reader};
use crate::FormatError;

/// One YARA source file: its path relative to the rules directory (with `/`) and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

/// Encoding: for each file, `u32 path_len, path, u32 text_len, text` (little-endian, UTF-8),
/// in the order given; the compiler sorts by path so the bytes do not depend on the disk.
pub struct SourceFiles;

impl SourceFiles {
    pub fn encode(files: &[SourceFile]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in files {
            for part in [f.path.as_bytes(), f.text.as_bytes()] {
                out.extend_from_slice(&(part.len() as u32).to_le_bytes());
                out.extend_from_slice(part);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Vec<SourceFile>, FormatError> {
        let mut r = Reader::new(bytes);
        let mut files = Vec::new();
        while r.remaining() > 0 {
            let path = read_str(&mut r, "yara source path")?;
            let text = read_str(&mut r, "yara source text")?;
            files.push(SourceFile { path, text });
        }
        Ok(files)
    }
}

fn read_str(r: &mut Reader<'_>, what: &'static str) -> Result<String, FormatError> {
    let len = to_usize(u64::from(r.u32(what)?), what)?;
    let bytes = r.take(len, what)?;
    String::from_utf8(bytes.to_vec()).map_err(|e| FormatError::Malformed {
        what,
        detail: format!("not UTF-8 at byte {}", e.utf8_error().valid_up_to()),
    })
}

/// Canonical signature lines: one per record, each ending in `\n`.
pub fn encode_lines<S: AsRef<str>>(lines: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.as_ref().as_bytes());
        out.push(b'\n');
    }
    out
}

pub fn decode_lines(bytes: &[u8]) -> Result<Vec<&str>, FormatError> {
    let text = std::str::from_utf8(bytes).map_err(|e| FormatError::Malformed {
        what: "signature lines",
        detail: format!("not UTF-8 at byte {}", e.valid_up_to()),
    })?;
    Ok(text.lines().filter(|l| !l.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sources_round_trip(files in proptest::collection::vec(("[a-z/]{1,20}", ".{0,200}"), 0..8)) {
            let files: Vec<SourceFile> = files.into_iter().map(|(path, text)| SourceFile { path, text }).collect();
            prop_assert_eq!(SourceFiles::decode(&SourceFiles::encode(&files)).expect("decode"), files);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = SourceFiles::decode(&bytes);
        }
    }
}
