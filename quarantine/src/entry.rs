//! One quarantined file: its metadata ([`Entry`]) and the on-disk format of an entry file.
//!
//! ```text
//! offset 0   magic  "VIGILQ1\0"                      8 bytes
//! offset 8   key    random, per entry                32 bytes
//! offset 40  length of the metadata, u32 LE          4 bytes (at most 64 KiB)
//! offset 44  metadata: the Entry as JSON             length bytes
//! then       content XOR keystream(key)              size bytes
//! ```
//!
//! The keystream is SHA-256(key || counter as u64 LE) for counter 0, 1, 2, … concatenated.
//! This is obfuscation, not encryption: the key sits in the header. Its purpose is that a
//! quarantined file can never be executed or loaded by accident (it starts with the magic and
//! is stored 0600) and that no other scanner re-detects the store's content.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::QuarantineError;

/// The first bytes of every entry file.
pub const MAGIC: &[u8; 8] = b"VIGILQ1\0";
/// Bytes before the metadata: magic, key, metadata length.
pub(crate) const PREFIX_LEN: usize = 8 + 32 + 4;
/// A bound on the metadata, so a damaged length never makes us allocate gigabytes.
const MAX_META: usize = 64 * 1024;

/// What the store keeps about a quarantined file: enough to put it back exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// 32 lowercase hex characters (16 random bytes); also the entry file's name.
    pub id: String,
    pub original_path: PathBuf,
    /// The full `st_mode` permission bits (incl. setuid/setgid/sticky), restored as they were.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub atime: i64,
    pub atime_nsec: i64,
    /// SHA-256 of the original content, lowercase hex.
    pub sha256: String,
    pub size: u64,
    pub finding_id: String,
    pub threat: String,
    /// Unix seconds.
    pub quarantined_at: i64,
}

/// The header of an entry file: magic, key and metadata.
pub fn encode_header(key: &[u8; 32], entry: &Entry) -> Result<Vec<u8>, serde_json::Error> {
    let meta = serde_json::to_vec(entry)?;
    let mut out = Vec::with_capacity(PREFIX_LEN + meta.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(key);
    // Entries hold one path and a few names: far below u32 (checked on read against MAX_META).
    out.extend_from_slice(&u32::try_from(meta.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&meta);
    Ok(out)
}

/// Reads the header from `r` (positioned at 0), leaving it at the start of the content. Any
/// bytes give an entry or a `Corrupt` error naming `path`, never a panic (a fuzz target
/// checks it).
pub fn decode_header(r: &mut impl Read, path: &Path) -> Result<(Entry, [u8; 32]), QuarantineError> {
    let corrupt = |message: String| QuarantineError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let mut prefix = [0u8; PREFIX_LEN];
    r.read_exact(&mut prefix)
        .map_err(|e| corrupt(format!("header: {e}")))?;
    if &prefix[..8] != MAGIC {
        return Err(corrupt("not a vigil quarantine entry (bad magic)".into()));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&prefix[8..40]);
    let mut len = [0u8; 4];
    len.copy_from_slice(&prefix[40..44]);
    let len = usize::try_from(u32::from_le_bytes(len)).unwrap_or(usize::MAX);
    if len > MAX_META {
        return Err(corrupt(format!(
            "metadata of {len} bytes (at most {MAX_META})"
        )));
    }
    let mut meta = vec![0u8; len];
    r.read_exact(&mut meta)
        .map_err(|e| corrupt(format!("metadata: {e}")))?;
    let entry: Entry =
        serde_json::from_slice(&meta).map_err(|e| corrupt(format!("metadata: {e}")))?;
    Ok((entry, key))
}

/// The keystream XORed over the content (see the module doc: obfuscation, not secrecy).
pub(crate) struct Keystream {
    keyed: Sha256,
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl Keystream {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        let mut keyed = Sha256::new();
        keyed.update(key);
        Self {
            keyed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    /// XORs the next `buf.len()` keystream bytes into `buf` (the same call encodes and decodes).
    pub(crate) fn apply(&mut self, buf: &mut [u8]) {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.used == 32 {
                let mut h = self.keyed.clone();
                h.update(self.counter.to_le_bytes());
                self.block.copy_from_slice(&h.finalize());
                self.counter = self.counter.wrapping_add(1);
                self.used = 0;
            }
            let n = (32 - self.used).min(rest.len());
            let (now, later) = rest.split_at_mut(n);
            for (b, k) in now.iter_mut().zip(&self.block[self.used..]) {
                *b ^= k;
            }
            self.used += n;
            rest = later;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Entry {
        Entry {
            id: "00".repeat(16),
            original_path: "/srv/x".into(),
            mode: 0o100644,
            uid: 1,
            gid: 2,
            mtime: 3,
            mtime_nsec: 4,
            atime: 5,
            atime_nsec: 6,
            sha256: "ab".repeat(32),
            size: 7,
            finding_id: "f".into(),
            threat: "T".into(),
            quarantined_at: 8,
        }
    }

    #[test]
    fn header_round_trips() {
        let key = [7u8; 32];
        let h = encode_header(&key, &sample()).unwrap();
        let (e, k) = decode_header(&mut h.as_slice(), Path::new("x")).unwrap();
        assert_eq!(e, sample());
        assert_eq!(k, key);
    }

    #[test]
    fn damaged_headers_are_errors_not_panics() {
        let h = encode_header(&[1; 32], &sample()).unwrap();
        for cut in 0..h.len() {
            let r = decode_header(&mut &h[..cut], Path::new("x"));
            assert!(
                matches!(r, Err(QuarantineError::Corrupt { .. })),
                "cut at {cut}"
            );
        }
        let mut bad = h.clone();
        bad[0] = b'X';
        assert!(decode_header(&mut bad.as_slice(), Path::new("x")).is_err());
        let mut huge = h;
        huge[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_header(&mut huge.as_slice(), Path::new("x")).is_err());
    }

    #[test]
    fn keystream_is_its_own_inverse_across_chunk_boundaries() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut enc = data.clone();
        let mut ks = Keystream::new(&[9; 32]);
        ks.apply(&mut enc[..33]);
        ks.apply(&mut enc[33..]);
        assert_ne!(enc, data);
        let mut ks = Keystream::new(&[9; 32]);
        ks.apply(&mut enc);
        assert_eq!(enc, data);
    }
}
