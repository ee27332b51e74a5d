//! How an image is laid out: a GPT, an MBR (with logical partitions), or one bare filesystem.
//! [`read`] decides in that order, except that a filesystem at byte 0 wins over an MBR
//! signature (a FAT boot sector carries 0x55AA too). Anything else is an error naming what was
//! looked for, so a garbage file is never scanned as "nothing found".

use crate::source::ReadAt;
use crate::{gpt, mbr, probe};

/// A partition as the table declares it; `start` and `len` in bytes, not yet checked against
/// the image's size (a truncated image is reported per partition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// 1-based as Linux numbers them (`p1`; MBR logical partitions from 5); 0 for a bare
    /// filesystem.
    pub number: u32,
    /// The GPT partition name, if any.
    pub name: Option<String>,
    pub start: u64,
    pub len: u64,
    /// The partition type: a GPT type GUID or an MBR type byte (`0x83`).
    pub kind: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Gpt,
    Mbr,
    /// No partition table: the image is one filesystem.
    Bare,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Gpt => "GPT",
            Scheme::Mbr => "MBR",
            Scheme::Bare => "no partition table",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Table {
    pub scheme: Scheme,
    pub partitions: Vec<Partition>,
    /// What was odd but not fatal: a backup GPT used, an EBR chain cut short.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("empty (0 bytes)")]
    Empty,
    #[error("cannot read the first sectors: {0}")]
    Io(#[from] std::io::Error),
    #[error("GPT: {0}")]
    Gpt(String),
    #[error("MBR: {0}")]
    Mbr(String),
    #[error("not a disk image: no GPT, no MBR partition table and no known filesystem at the start ({size} bytes)")]
    Unrecognised { size: u64 },
}

/// The layout of the image `src`.
pub fn read(src: &dyn ReadAt) -> Result<Table, TableError> {
    let size = src.size();
    if size == 0 {
        return Err(TableError::Empty);
    }
    for ss in gpt::SECTOR_SIZES {
        if gpt::present(src, ss) {
            let (partitions, note) = gpt::read(src, ss)?;
            return Ok(Table {
                scheme: Scheme::Gpt,
                partitions,
                notes: note.into_iter().collect(),
            });
        }
    }
    let head_len = usize::try_from(size.min(probe::PROBE_BYTES as u64)).unwrap_or(0);
    let mut head = vec![0u8; head_len];
    src.read_at(0, &mut head)?;
    if probe::identify(&head).is_some() {
        return Ok(Table {
            scheme: Scheme::Bare,
            partitions: vec![Partition {
                number: 0,
                name: None,
                start: 0,
                len: size,
                kind: String::new(),
            }],
            notes: Vec::new(),
        });
    }
    if mbr::plausible(&head) {
        if let Some(es) = mbr::entries(&head) {
            if es.iter().any(|e| e.kind == mbr::PROTECTIVE) {
                return Err(TableError::Gpt(
                    "the MBR is a GPT's protective one, but no GPT header is at LBA 1 (truncated or damaged image?)".into(),
                ));
            }
        }
        let (partitions, notes) = mbr::read(src, &head)?;
        return Ok(Table {
            scheme: Scheme::Mbr,
            partitions,
            notes,
        });
    }
    Err(TableError::Unrecognised { size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gpt_disk() -> Vec<u8> {
        let mut d = vec![0u8; 256 * 1024];
        crate::gpt::write(&mut d, &[(40, 200, "a"), (201, 400, "b")]);
        d
    }

    proptest! {
        // Hostile layouts: random bytes, and a valid GPT or MBR with bytes flipped in the
        // tables. Errors are fine; panics and runaway allocations are not.
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let _ = read(&data);
        }

        #[test]
        fn damaged_tables_never_panic(flips in proptest::collection::vec((0usize..1536, any::<u8>()), 1..16)) {
            let mut d = gpt_disk();
            for (at, b) in &flips {
                d[*at] ^= b;
            }
            let _ = read(&d);
            let mut m = vec![0u8; 64 * 1024];
            crate::mbr::write(&mut m, &[(0x83, 1, 10), (0x05, 20, 60)]);
            crate::mbr::write(&mut m[20 * 512..], &[(0x83, 1, 5), (0x05, 20, 10)]);
            for (at, b) in &flips {
                m[at % 512 + if at & 512 != 0 { 20 * 512 } else { 0 }] ^= b;
            }
            let _ = read(&m);
        }
    }

    #[test]
    fn bare_ext_and_garbage() {
        let mut d = vec![0u8; 8192];
        d[1024 + 56] = 0x53;
        d[1024 + 57] = 0xEF;
        assert_eq!(read(&d).expect("bare").scheme, Scheme::Bare);
        let e = read(&vec![7u8; 8192]).expect_err("garbage").to_string();
        assert!(e.contains("not a disk image"), "{e}");
        assert!(matches!(read(&Vec::new()), Err(TableError::Empty)));
    }
}
