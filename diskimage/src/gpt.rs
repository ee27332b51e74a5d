//! GUID Partition Tables (UEFI spec, chapter 5): the header at LBA 1 (or its backup at the
//! disk's last LBA) and the partition-entry array it points to, both checked by CRC32 before
//! anything in them is believed. Sizes read from the header are bounded before allocation:
//! the entry array may hold at most [`MAX_ENTRY_BYTES`].

use crate::source::ReadAt;
use crate::table::{Partition, TableError};

const SIGNATURE: &[u8; 8] = b"EFI PART";
/// The header's defined fields; `header_size` may be larger (up to a sector), never smaller.
const HEADER_MIN: usize = 92;
/// 128 entries of 128 bytes is the spec's minimum and what every tool writes; 1 MiB leaves
/// room for odd layouts while a hostile header cannot ask for gigabytes.
pub const MAX_ENTRY_BYTES: u64 = 1 << 20;

/// Logical sector sizes a GPT may be written for: 512 (almost all) and 4096 (4Kn disks).
pub const SECTOR_SIZES: [u64; 2] = [512, 4096];

/// Whether a GPT header signature sits at LBA 1 for sector size `ss`.
pub fn present(src: &dyn ReadAt, ss: u64) -> bool {
    let mut sig = [0u8; 8];
    src.read_at(ss, &mut sig).is_ok() && &sig == SIGNATURE
}

/// The partitions of the GPT at LBA 1 for sector size `ss`, from the primary header or, when
/// that one is damaged, the backup. The note says when the backup was used.
pub fn read(src: &dyn ReadAt, ss: u64) -> Result<(Vec<Partition>, Option<String>), TableError> {
    let primary = header(src, ss, 1);
    let primary_err = match primary {
        Ok(h) => match entries(src, ss, &h) {
            Ok(p) => return Ok((p, None)),
            Err(e) => e,
        },
        Err(e) => e,
    };
    // The backup header sits on the last LBA.
    let last = (src.size() / ss).saturating_sub(1);
    let backup = header(src, ss, last).and_then(|h| entries(src, ss, &h));
    match backup {
        Ok(p) => Ok((
            p,
            Some(format!(
                "primary GPT unusable ({primary_err}); used the backup at LBA {last}"
            )),
        )),
        Err(_) => Err(primary_err),
    }
}

struct Header {
    entries_lba: u64,
    count: u32,
    entry_size: u32,
    entries_crc: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

fn gpt_err(why: String) -> TableError {
    TableError::Gpt(why)
}

fn header(src: &dyn ReadAt, ss: u64, lba: u64) -> Result<Header, TableError> {
    let at = lba
        .checked_mul(ss)
        .ok_or_else(|| gpt_err(format!("header LBA {lba} is out of range")))?;
    // ss is 512 or 4096, so this fits.
    let mut sector = vec![0u8; ss as usize];
    src.read_at(at, &mut sector)
        .map_err(|e| gpt_err(format!("header at LBA {lba} cannot be read: {e}")))?;
    if sector.get(..8) != Some(SIGNATURE.as_slice()) {
        return Err(gpt_err(format!("no header signature at LBA {lba}")));
    }
    let size = u32_at(&sector, 12) as usize;
    if !(HEADER_MIN..=sector.len()).contains(&size) {
        return Err(gpt_err(format!(
            "header at LBA {lba} declares {size} bytes (must be {HEADER_MIN}..={ss})"
        )));
    }
    let stored = u32_at(&sector, 16);
    let mut h = sector[..size].to_vec();
    h[16..20].fill(0);
    let computed = crc32fast::hash(&h);
    if computed != stored {
        return Err(gpt_err(format!(
            "header CRC32 mismatch at LBA {lba} (stored {stored:08x}, computed {computed:08x})"
        )));
    }
    let count = u32_at(&sector, 80);
    let entry_size = u32_at(&sector, 84);
    if entry_size < 128 || !entry_size.is_multiple_of(8) {
        return Err(gpt_err(format!(
            "partition entry size {entry_size} (must be a multiple of 8, at least 128)"
        )));
    }
    if u64::from(count) * u64::from(entry_size) > MAX_ENTRY_BYTES {
        return Err(gpt_err(format!(
            "{count} partition entries of {entry_size} bytes exceed the {MAX_ENTRY_BYTES}-byte bound"
        )));
    }
    Ok(Header {
        entries_lba: u64_at(&sector, 72),
        count,
        entry_size,
        entries_crc: u32_at(&sector, 88),
    })
}

fn entries(src: &dyn ReadAt, ss: u64, h: &Header) -> Result<Vec<Partition>, TableError> {
    // Bounded by MAX_ENTRY_BYTES above.
    let len = h.count as usize * h.entry_size as usize;
    let at = h
        .entries_lba
        .checked_mul(ss)
        .ok_or_else(|| gpt_err(format!("entry array LBA {} is out of range", h.entries_lba)))?;
    let mut raw = vec![0u8; len];
    src.read_at(at, &mut raw).map_err(|e| {
        gpt_err(format!(
            "partition entries at LBA {} cannot be read: {e}",
            h.entries_lba
        ))
    })?;
    let computed = crc32fast::hash(&raw);
    if computed != h.entries_crc {
        return Err(gpt_err(format!(
            "partition entry array CRC32 mismatch (stored {:08x}, computed {computed:08x})",
            h.entries_crc
        )));
    }
    let mut out = Vec::new();
    for (i, e) in raw.chunks_exact(h.entry_size as usize).enumerate() {
        let type_guid = &e[0..16];
        if type_guid.iter().all(|&b| b == 0) {
            continue;
        }
        let first = u64_at(e, 32);
        let last = u64_at(e, 40);
        let number = i as u32 + 1;
        let name = utf16_name(&e[56..128]);
        let span = last
            .checked_sub(first)
            .and_then(|n| n.checked_add(1))
            .and_then(|n| n.checked_mul(ss));
        let start = first.checked_mul(ss);
        let (Some(start), Some(len)) = (start, span) else {
            return Err(gpt_err(format!(
                "partition {number} has an impossible range (LBA {first}..={last})"
            )));
        };
        out.push(Partition {
            number,
            name,
            start,
            len,
            kind: guid_string(type_guid),
        });
    }
    Ok(out)
}

/// The partition name: UTF-16LE, NUL-padded; `None` when empty.
fn utf16_name(raw: &[u8]) -> Option<String> {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    let s = String::from_utf16_lossy(&units);
    // Names end up in output lines: no control characters.
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    (!s.trim().is_empty()).then_some(s)
}

/// A GUID in its usual text form (the first three fields are little-endian on disk).
fn guid_string(g: &[u8]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13],
        g[14], g[15]
    )
}

/// Writes a GPT (protective MBR, primary and backup headers and entry arrays) for
/// 512-byte sectors into `disk`, with one partition per `(first_lba, last_lba, name)`:
/// what the tests and the benchmark build images with (no `sfdisk` needed).
pub fn write(disk: &mut [u8], parts: &[(u64, u64, &str)]) {
    const SS: usize = 512;
    let sectors = (disk.len() / SS) as u64;
    if sectors < 68 {
        return;
    }
    // Protective MBR: one 0xEE partition over the whole disk.
    let mbr = &mut disk[..SS];
    mbr[446..462].fill(0);
    mbr[446 + 4] = 0xEE;
    mbr[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    let n = u32::try_from(sectors - 1).unwrap_or(u32::MAX);
    mbr[446 + 12..446 + 16].copy_from_slice(&n.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    let mut entries = vec![0u8; 128 * 128];
    // Linux filesystem data.
    let linux: [u8; 16] = [
        0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d,
        0xe4,
    ];
    for (i, (first, last, name)) in parts.iter().enumerate().take(128) {
        let e = &mut entries[i * 128..(i + 1) * 128];
        e[0..16].copy_from_slice(&linux);
        e[16] = i as u8 + 1;
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
        for (j, u) in name.encode_utf16().take(36).enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&u.to_le_bytes());
        }
    }
    let entries_crc = crc32fast::hash(&entries);
    let last_lba = sectors - 1;
    let header = |current: u64, backup: u64, entries_lba: u64| {
        let mut h = vec![0u8; 92];
        h[0..8].copy_from_slice(SIGNATURE);
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&current.to_le_bytes());
        h[32..40].copy_from_slice(&backup.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(last_lba - 33).to_le_bytes());
        h[56..72].copy_from_slice(&[0x42; 16]);
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let put = |disk: &mut [u8], lba: u64, bytes: &[u8]| {
        let at = lba as usize * SS;
        disk[at..at + bytes.len()].copy_from_slice(bytes);
    };
    put(disk, 1, &header(1, last_lba, 2));
    put(disk, 2, &entries);
    put(disk, last_lba - 32, &entries);
    put(disk, last_lba, &header(last_lba, 1, last_lba - 32));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk() -> Vec<u8> {
        let mut d = vec![0u8; 1 << 20];
        write(&mut d, &[(34, 1000, "root"), (1001, 2000, "")]);
        d
    }

    #[test]
    fn reads_what_write_wrote() {
        let d = disk();
        assert!(present(&d, 512));
        let (parts, note) = read(&d, 512).expect("gpt");
        assert!(note.is_none());
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].number, 1);
        assert_eq!(parts[0].name.as_deref(), Some("root"));
        assert_eq!(parts[0].start, 34 * 512);
        assert_eq!(parts[0].len, 967 * 512);
        assert_eq!(parts[0].kind, "0fc63daf-8483-4772-8e79-3d69d8477de4");
        assert_eq!(parts[1].name, None);
    }

    #[test]
    fn a_damaged_primary_falls_back_to_the_backup() {
        let mut d = disk();
        d[512 + 40] ^= 1; // breaks the primary header's CRC
        let (parts, note) = read(&d, 512).expect("backup");
        assert_eq!(parts.len(), 2);
        assert!(note.expect("note").contains("header CRC32 mismatch"));
    }

    #[test]
    fn both_damaged_is_an_error_naming_the_crc() {
        let mut d = disk();
        d[1024] ^= 1; // primary entries
        let n = d.len();
        d[n - 512 - 32 * 512] ^= 1; // backup entries
        let e = read(&d, 512).expect_err("both bad").to_string();
        assert!(e.contains("entry array CRC32 mismatch"), "{e}");
    }
}
