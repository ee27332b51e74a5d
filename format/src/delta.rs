//! Deltas between two databases: zstd's patch-from mode over the *expanded* forms (sections
//! decompressed), because compressed sections change almost entirely when one rule changes
//! while their sources change by a few lines.
//!
//! ```text
//!  0 magic "VIGILDL\0"   8 version u16   10 reserved u16 (0)   12 reserved u32 (0)
//! 16 old database sha256 [32]   48 new database sha256 [32]
//! 80 new database length u64    88 expanded new length u64    96 zstd frame (patch)
//! ```
//! Applying checks the old file against the hash the delta names, rebuilds the new file, and
//! returns it only when its length and SHA-256 are the ones the delta names. A client whose zstd
//! recompresses differently gets a `DeltaMismatch` and falls back to the full download.

use std::io::Read;

use sha2::{Digest, Sha256};

use crate::codec::{to_usize, Reader};
use crate::container::{contract, Parsed};
use crate::FormatError;

pub const MAGIC: [u8; 8] = *b"VIGILDL\0";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 96;
/// Refuse deltas that claim to expand past this: a database is tens of MB, not gigabytes.
pub const MAX_EXPANDED: u64 = 256 << 20;
const LEVEL: i32 = 19;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaHeader {
    pub old_sha256: [u8; 32],
    pub new_sha256: [u8; 32],
    pub new_len: u64,
    pub expanded_len: u64,
}

pub struct Delta;

impl DeltaHeader {
    pub fn parse(bytes: &[u8]) -> Result<(Self, &[u8]), FormatError> {
        let mut r = Reader::new(bytes);
        if r.remaining() < 8 || r.array::<8>("magic")? != MAGIC {
            return Err(FormatError::BadMagic { expected: "delta" });
        }
        let version = r.u16("delta header")?;
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let (res1, res2) = (r.u16("delta header")?, r.u32("delta header")?);
        if res1 != 0 || res2 != 0 {
            return Err(FormatError::Malformed {
                what: "delta header",
                detail: "reserved fields are not zero".into(),
            });
        }
        let header = Self {
            old_sha256: r.array("delta header")?,
            new_sha256: r.array("delta header")?,
            new_len: r.u64("delta header")?,
            expanded_len: r.u64("delta header")?,
        };
        if header.expanded_len > MAX_EXPANDED || header.new_len > header.expanded_len.max(1 << 20) {
            return Err(FormatError::Malformed {
                what: "delta header",
                detail: format!(
                    "declared sizes {} / {} are over the limit",
                    header.new_len, header.expanded_len
                ),
            });
        }
        let rest = r.take(r.remaining(), "patch")?;
        Ok((header, rest))
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[0; 6]);
        out.extend_from_slice(&self.old_sha256);
        out.extend_from_slice(&self.new_sha256);
        out.extend_from_slice(&self.new_len.to_le_bytes());
        out.extend_from_slice(&self.expanded_len.to_le_bytes());
        out
    }
}

/// Window large enough to reach back over the whole reference plus the target.
fn window_log(len: usize) -> u32 {
    let bits = usize::BITS - len.max(1 << 10).leading_zeros();
    bits.clamp(10, 30)
}

impl Delta {
    pub fn create(old_db: &[u8], new_db: &[u8]) -> Result<Vec<u8>, FormatError> {
        let old_x = Parsed::parse(old_db)?.expand()?;
        let new_parsed = Parsed::parse(new_db)?;
        new_parsed.check_hashes()?;
        let new_x = new_parsed.expand()?;
        let header = DeltaHeader {
            old_sha256: Sha256::digest(old_db).into(),
            new_sha256: Sha256::digest(new_db).into(),
            new_len: new_db.len() as u64,
            expanded_len: new_x.len() as u64,
        };
        let err = |e: std::io::Error| FormatError::Compress(e.to_string());
        let mut out = header.encode();
        let mut enc =
            zstd::stream::write::Encoder::with_ref_prefix(&mut out, LEVEL, &old_x).map_err(err)?;
        enc.window_log(window_log(old_x.len() + new_x.len()))
            .map_err(err)?;
        enc.long_distance_matching(true).map_err(err)?;
        enc.include_checksum(false).map_err(err)?;
        enc.set_pledged_src_size(Some(new_x.len() as u64))
            .map_err(err)?;
        std::io::Write::write_all(&mut enc, &new_x).map_err(err)?;
        enc.finish().map_err(err)?;
        Ok(out)
    }

    /// Rebuilds the new database from `old_db` and `delta`, or says why it cannot.
    pub fn apply(old_db: &[u8], delta: &[u8]) -> Result<Vec<u8>, FormatError> {
        let (header, patch) = DeltaHeader::parse(delta)?;
        if <[u8; 32]>::from(Sha256::digest(old_db)) != header.old_sha256 {
            return Err(FormatError::DeltaMismatch(format!(
                "the delta is for database {}, this one is {}",
                short(&header.old_sha256),
                short(&Sha256::digest(old_db).into())
            )));
        }
        let old_x = Parsed::parse(old_db)?.expand()?;
        let mismatch = |e: std::io::Error| FormatError::DeltaMismatch(format!("patch: {e}"));
        let mut dec =
            zstd::stream::read::Decoder::with_ref_prefix(patch, &old_x).map_err(mismatch)?;
        let expanded_len = to_usize(header.expanded_len, "delta")?;
        // The window the creator used, recomputed from sizes we know and bounded: a forged
        // frame header asking for a larger window is refused instead of allocated.
        dec.window_log_max(window_log(old_x.len() + expanded_len))
            .map_err(mismatch)?;
        // Grown as the patch actually expands, not reserved from the (unverified) header.
        let mut new_x = Vec::new();
        // One byte more than declared so an over-long patch is caught, not truncated.
        dec.take(header.expanded_len + 1)
            .read_to_end(&mut new_x)
            .map_err(mismatch)?;
        if new_x.len() != expanded_len {
            return Err(FormatError::DeltaMismatch(format!(
                "patch expands to {} bytes, header says {expanded_len}",
                new_x.len()
            )));
        }
        let new_db = contract(&new_x)?;
        let got: [u8; 32] = Sha256::digest(&new_db).into();
        if new_db.len() as u64 != header.new_len || got != header.new_sha256 {
            return Err(FormatError::DeltaMismatch(format!(
                "result hashes to {}, the delta names {}",
                short(&got),
                short(&header.new_sha256)
            )));
        }
        Ok(new_db)
    }
}

fn short(h: &[u8; 32]) -> String {
    hex::encode(&h[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{DatabaseBuilder, SectionKind};
    use crate::keys::SecretKey;

    fn db(version: u64, rules: &str) -> Vec<u8> {
        let mut b = DatabaseBuilder::new(version, 0);
        b.section(SectionKind::Yara, 1, rules.as_bytes().to_vec());
        b.build(&SecretKey::from_seed([1; 32])).expect("build")
    }

    #[test]
    fn apply_gives_new_and_refuses_wrong_base() {
        let old = db(1, "rule a { condition: true }\n");
        let new = db(
            2,
            "rule a { condition: true }\nrule b { condition: false }\n",
        );
        let d = Delta::create(&old, &new).expect("delta");
        assert_eq!(Delta::apply(&old, &d).expect("apply"), new);
        assert!(matches!(
            Delta::apply(&new, &d),
            Err(FormatError::DeltaMismatch(_))
        ));
        let mut bad = d.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x55;
        assert!(Delta::apply(&old, &bad).is_err());
        assert!(matches!(
            Delta::apply(&old, b"nope"),
            Err(FormatError::BadMagic { .. })
        ));
    }
}
