//! Master Boot Record partition tables: four primary entries in sector 0 (signature 0x55AA),
//! and the chain of Extended Boot Records inside an extended partition, each holding one
//! logical partition and a link to the next. Logical partitions are numbered from 5, as Linux
//! numbers them. The chain is hostile input: links are followed at most
//! [`MAX_LOGICAL`] times and never to an EBR already visited, so a loop ends.

use std::collections::HashSet;

use crate::source::ReadAt;
use crate::table::{Partition, TableError};

const SS: u64 = 512;
/// More logical partitions than any real disk has (Linux stops at 255 minors per disk).
pub const MAX_LOGICAL: usize = 256;
/// Extended partition types: DOS (0x05), Windows LBA (0x0F), Linux (0x85).
const EXTENDED: [u8; 3] = [0x05, 0x0F, 0x85];
/// The protective MBR's single entry when the disk is GPT-partitioned.
pub const PROTECTIVE: u8 = 0xEE;

/// One 16-byte table entry.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub status: u8,
    pub kind: u8,
    pub lba: u32,
    pub sectors: u32,
}

/// The four entries of a boot sector, or `None` without the 0x55AA signature.
pub fn entries(sector: &[u8]) -> Option<[Entry; 4]> {
    if sector.len() < 512 || sector[510] != 0x55 || sector[511] != 0xAA {
        return None;
    }
    let e = |i: usize| {
        let b = &sector[446 + 16 * i..446 + 16 * (i + 1)];
        Entry {
            status: b[0],
            kind: b[4],
            lba: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            sectors: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        }
    };
    Some([e(0), e(1), e(2), e(3)])
}

/// Whether sector 0 looks like a partition table: the signature, status bytes that are 0x00
/// or 0x80 (a boot sector's code rarely passes this), and at least one entry in use.
pub fn plausible(sector: &[u8]) -> bool {
    entries(sector).is_some_and(|es| {
        es.iter().all(|e| e.status == 0 || e.status == 0x80) && es.iter().any(|e| e.kind != 0)
    })
}

fn mbr_err(why: String) -> TableError {
    TableError::Mbr(why)
}

/// The partitions of the MBR in `sector0` (primary ones numbered 1-4, logical ones from 5).
pub fn read(src: &dyn ReadAt, sector0: &[u8]) -> Result<(Vec<Partition>, Vec<String>), TableError> {
    let es = entries(sector0).ok_or_else(|| mbr_err("no 0x55AA signature in sector 0".into()))?;
    let mut parts = Vec::new();
    let mut notes = Vec::new();
    let mut extended_seen = false;
    for (i, e) in es.iter().enumerate() {
        if e.kind == 0 || e.sectors == 0 {
            continue;
        }
        let number = i as u32 + 1;
        if EXTENDED.contains(&e.kind) {
            if extended_seen {
                notes.push(format!(
                    "partition {number}: a second extended partition, ignored"
                ));
                continue;
            }
            extended_seen = true;
            logical(src, u64::from(e.lba), &mut parts, &mut notes);
            continue;
        }
        parts.push(Partition {
            number,
            name: None,
            start: u64::from(e.lba) * SS,
            len: u64::from(e.sectors) * SS,
            kind: format!("0x{:02x}", e.kind),
        });
    }
    // Primary partitions first, then the logical ones, in number order.
    parts.sort_by_key(|p| p.number);
    Ok((parts, notes))
}

/// Follows the EBR chain of the extended partition at `ext_lba`. A broken link ends the chain
/// with a note; the partitions found before it stay.
fn logical(src: &dyn ReadAt, ext_lba: u64, parts: &mut Vec<Partition>, notes: &mut Vec<String>) {
    let mut ebr = ext_lba;
    let mut seen = HashSet::new();
    let mut sector = [0u8; 512];
    let mut number = 5u32;
    loop {
        if parts.len() >= MAX_LOGICAL + 4 {
            notes.push(format!(
                "extended partition: more than {MAX_LOGICAL} logical partitions, the rest ignored"
            ));
            return;
        }
        if !seen.insert(ebr) {
            notes.push(format!(
                "extended partition: the EBR chain loops back to LBA {ebr}; stopped there"
            ));
            return;
        }
        if let Err(e) = src.read_at(ebr * SS, &mut sector) {
            notes.push(format!(
                "extended partition: EBR at LBA {ebr} cannot be read: {e}"
            ));
            return;
        }
        let Some(es) = entries(&sector) else {
            notes.push(format!(
                "extended partition: no 0x55AA signature in the EBR at LBA {ebr}"
            ));
            return;
        };
        let [this, next, ..] = es;
        if this.kind != 0 && this.sectors != 0 {
            parts.push(Partition {
                number,
                name: None,
                start: (ebr + u64::from(this.lba)) * SS,
                len: u64::from(this.sectors) * SS,
                kind: format!("0x{:02x}", this.kind),
            });
            number += 1;
        }
        if next.kind == 0 || next.lba == 0 || !EXTENDED.contains(&next.kind) {
            return;
        }
        // The link is relative to the extended partition's start, not to this EBR.
        ebr = ext_lba + u64::from(next.lba);
    }
}

/// Writes an MBR into `disk` with the given `(type, first_lba, sectors)` primary entries:
/// what the tests build MBR images with.
pub fn write(disk: &mut [u8], parts: &[(u8, u32, u32)]) {
    if disk.len() < 512 {
        return;
    }
    for (i, (kind, lba, sectors)) in parts.iter().enumerate().take(4) {
        let e = &mut disk[446 + 16 * i..446 + 16 * (i + 1)];
        e.fill(0);
        e[4] = *kind;
        e[8..12].copy_from_slice(&lba.to_le_bytes());
        e[12..16].copy_from_slice(&sectors.to_le_bytes());
    }
    disk[510] = 0x55;
    disk[511] = 0xAA;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk with one primary Linux partition and an extended one holding two logicals.
    fn disk() -> Vec<u8> {
        let mut d = vec![0u8; 4 << 20];
        write(&mut d, &[(0x83, 2048, 1000), (0x05, 4096, 4000)]);
        // EBR 1 at 4096: logical at +63, next EBR at ext+2000.
        let mut ebr = |at: usize, this: (u8, u32, u32), next: (u8, u32, u32)| {
            let s = &mut d[at * 512..at * 512 + 512];
            write(s, &[this, next]);
        };
        ebr(4096, (0x83, 63, 500), (0x05, 2000, 1000));
        ebr(6096, (0x83, 63, 700), (0, 0, 0));
        d
    }

    #[test]
    fn reads_primary_and_logical_partitions() {
        let d = disk();
        let (parts, notes) = read(&d, &d[..512]).expect("mbr");
        assert!(notes.is_empty(), "{notes:?}");
        let got: Vec<_> = parts
            .iter()
            .map(|p| (p.number, p.start / 512, p.len / 512))
            .collect();
        assert_eq!(got, [(1, 2048, 1000), (5, 4159, 500), (6, 6159, 700)]);
    }

    #[test]
    fn an_ebr_loop_ends() {
        let mut d = disk();
        // The second EBR links back to the first.
        let s = &mut d[6096 * 512..6096 * 512 + 512];
        write(s, &[(0x83, 63, 700), (0x05, 0, 1000)]);
        // lba 0 ends the chain; link to itself instead (ext + 2000).
        write(s, &[(0x83, 63, 700), (0x05, 2000, 1000)]);
        let (parts, notes) = read(&d, &d[..512]).expect("mbr");
        assert_eq!(parts.len(), 3);
        assert!(notes[0].contains("loops back"), "{notes:?}");
    }
}
