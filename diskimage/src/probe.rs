//! What filesystem a volume holds, by the magic numbers at the start of it. Only ext2/3/4 is
//! opened; the others are named so that a report can say what was skipped and why.

use crate::source::Window;

/// How much of a volume the probes look at (btrfs's superblock is at 64 KiB).
pub const PROBE_BYTES: usize = 0x10000 + 0x1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fs {
    /// ext2, ext3 or ext4: opened and walked.
    Ext,
    /// A filesystem or volume format this crate does not read, by name.
    Other(&'static str),
}

fn at(head: &[u8], offset: usize, magic: &[u8]) -> bool {
    head.get(offset..offset + magic.len()) == Some(magic)
}

/// The filesystem whose magic numbers are at the start of `head` (the first
/// [`PROBE_BYTES`] of a volume, or fewer).
pub fn identify(head: &[u8]) -> Option<Fs> {
    // ext's superblock starts at 1024; s_magic is at offset 56 in it.
    if at(head, 1024 + 56, &[0x53, 0xEF]) {
        return Some(Fs::Ext);
    }
    let named: [(usize, &[u8], &'static str); 13] = [
        (0, b"XFSB", "xfs"),
        (0x10040, b"_BHRfS_M", "btrfs"),
        (3, b"NTFS    ", "NTFS"),
        (3, b"EXFAT   ", "exFAT"),
        (82, b"FAT32   ", "FAT32"),
        (54, b"FAT16   ", "FAT16"),
        (54, b"FAT12   ", "FAT12"),
        (54, b"FAT     ", "FAT"),
        (0, b"LUKS\xba\xbe", "LUKS (encrypted)"),
        (512, b"LABELONE", "LVM2 physical volume"),
        (0, b"hsqs", "squashfs"),
        (0x1000 - 10, b"SWAPSPACE2", "Linux swap"),
        (0x8001, b"CD001", "ISO 9660"),
    ];
    named
        .iter()
        .find(|(off, magic, _)| at(head, *off, magic))
        .map(|(_, _, name)| Fs::Other(name))
}

/// [`identify`] on the start of `w`; read errors count as nothing recognised.
pub fn volume(w: &Window) -> Option<Fs> {
    w.head(PROBE_BYTES).ok().and_then(|h| identify(&h))
}
