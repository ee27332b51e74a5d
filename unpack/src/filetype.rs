//! File types by content. The magic numbers are the formats' own (and the ones ClamAV's
//! `filetypes` table keys on); a name or extension never decides anything, since an attacker
//! chooses both.

use memchr::memmem;

/// What a blob is. Containers are opened by [`crate::extract`]; executables select `.ndb`
/// target types (1 PE, 6 ELF, 9 Mach-O).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    Unknown,
    /// Printable text not recognised as anything more specific.
    Text,
    Pe,
    Elf,
    MachO,
    Zip,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
    Tar,
    SevenZip,
    Cpio,
    Cab,
    Mail,
    Pdf,
    Ole2,
    Rtf,
    BinHex,
    Szdd,
    Tnef,
    Html,
    Sis,
    Chm,
    Arj,
}

impl FileType {
    /// Lower-case name, as reports and logs print it.
    pub fn name(self) -> &'static str {
        match self {
            FileType::Unknown => "unknown",
            FileType::Text => "text",
            FileType::Pe => "pe",
            FileType::Elf => "elf",
            FileType::MachO => "macho",
            FileType::Zip => "zip",
            FileType::Gzip => "gzip",
            FileType::Bzip2 => "bzip2",
            FileType::Xz => "xz",
            FileType::Zstd => "zstd",
            FileType::Tar => "tar",
            FileType::SevenZip => "7z",
            FileType::Cpio => "cpio",
            FileType::Cab => "cab",
            FileType::Mail => "mail",
            FileType::Pdf => "pdf",
            FileType::Ole2 => "ole2",
            FileType::Rtf => "rtf",
            FileType::BinHex => "binhex",
            FileType::Szdd => "szdd",
            FileType::Tnef => "tnef",
            FileType::Html => "html",
            FileType::Sis => "sis",
            FileType::Chm => "chm",
            FileType::Arj => "arj",
        }
    }

    /// Whether [`crate::extract`] may find members in it (executables: an appended archive).
    pub fn is_container(self) -> bool {
        !matches!(self, FileType::MachO | FileType::Text)
    }

    /// The `.ndb` target type this file satisfies besides 0 (any file), if any.
    pub fn ndb_target(self) -> Option<u32> {
        match self {
            FileType::Pe => Some(1),
            FileType::Elf => Some(6),
            FileType::MachO => Some(9),
            _ => None,
        }
    }
}

fn at(data: &[u8], off: usize, magic: &[u8]) -> bool {
    data.get(off..off + magic.len()) == Some(magic)
}

fn u32le(data: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(off..off + 4)?.try_into().ok()?))
}

/// The type of `data`, by content only.
pub fn detect(data: &[u8]) -> FileType {
    if let Some(t) = binary(data) {
        return t;
    }
    text(data)
}

fn binary(d: &[u8]) -> Option<FileType> {
    let t = if at(d, 0, b"PK\x03\x04") || at(d, 0, b"PK\x05\x06") || at(d, 0, b"PK\x07\x08") {
        FileType::Zip
    } else if at(d, 0, b"\x1f\x8b\x08") {
        FileType::Gzip
    } else if at(d, 0, b"BZh") && d.get(3).is_some_and(|c| (b'1'..=b'9').contains(c)) {
        FileType::Bzip2
    } else if at(d, 0, b"\xfd7zXZ\x00") {
        FileType::Xz
    } else if at(d, 0, b"\x28\xb5\x2f\xfd") {
        FileType::Zstd
    } else if at(d, 0, b"7z\xbc\xaf\x27\x1c") {
        FileType::SevenZip
    } else if at(d, 0, b"070707")
        || at(d, 0, b"070701")
        || at(d, 0, b"070702")
        || at(d, 0, &[0xc7, 0x71])
        || at(d, 0, &[0x71, 0xc7])
    {
        // ASCII (odc, newc, crc) and binary (both byte orders) cpio.
        FileType::Cpio
    } else if at(d, 0, b"MSCF\0\0\0\0") {
        FileType::Cab
    } else if at(d, 0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") {
        FileType::Ole2
    } else if at(d, 0, b"SZDD\x88\xf0\x27\x33") {
        FileType::Szdd
    } else if at(d, 0, &[0x78, 0x9f, 0x3e, 0x22]) {
        FileType::Tnef
    } else if at(d, 0, b"ITSF") {
        FileType::Chm
    } else if at(d, 0, &[0x60, 0xea]) && crate::formats::arj::header_ok(d) {
        // The basic header's CRC-32 must hold: two bytes of magic alone match too much.
        FileType::Arj
    } else if at(d, 0, b"\x7fELF") {
        FileType::Elf
    } else if at(d, 0, b"MZ") && is_pe(d) {
        FileType::Pe
    } else if macho(d) {
        FileType::MachO
    } else if u32le(d, 8) == Some(0x1000_0419) || u32le(d, 0) == Some(0x1020_1a7a) {
        // EPOC release 6 (UID1 0x10201A7A) and older (UID3 0x10000419) installation files.
        FileType::Sis
    } else if at(d, 257, b"ustar") || old_tar(d) {
        FileType::Tar
    } else {
        return None;
    };
    Some(t)
}

fn is_pe(d: &[u8]) -> bool {
    match u32le(d, 0x3c) {
        Some(off) => at(d, off as usize, b"PE\0\0"),
        None => false,
    }
}

fn macho(d: &[u8]) -> bool {
    matches!(
        d.get(..4),
        Some([0xfe, 0xed, 0xfa, 0xce | 0xcf]) | Some([0xce | 0xcf, 0xfa, 0xed, 0xfe])
    ) || (at(d, 0, &[0xca, 0xfe, 0xba, 0xbe])
        // Fat Mach-O: an architecture count; Java class files share the magic but carry a
        // version (45 and up) where the count is.
        && d.get(4..8).is_some_and(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) < 20))
}

/// A pre-POSIX tar header: no magic, but its checksum field adds up.
fn old_tar(d: &[u8]) -> bool {
    let Some(h) = d.get(..512) else {
        return false;
    };
    if h[0] == 0 || h[148..156].iter().all(|&c| c == 0) {
        return false;
    }
    let field = String::from_utf8_lossy(&h[148..156]);
    let Ok(stored) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(c)
            }
        })
        .sum();
    sum == stored
}

fn text(d: &[u8]) -> FileType {
    let head = &d[..d.len().min(4096)];
    let lower: Vec<u8> = head.iter().map(u8::to_ascii_lowercase).collect();
    let trimmed = {
        let skip = lower
            .iter()
            .position(|c| !c.is_ascii_whitespace())
            .unwrap_or(lower.len());
        &lower[skip..]
    };
    if memmem::find(&head[..head.len().min(1024)], b"%PDF-").is_some() {
        return FileType::Pdf;
    }
    if trimmed.starts_with(b"{\\rtf") {
        return FileType::Rtf;
    }
    if memmem::find(trimmed, b"(this file must be converted with binhex").is_some() {
        return FileType::BinHex;
    }
    if is_mail(trimmed) {
        return FileType::Mail;
    }
    for tag in [
        &b"<html"[..],
        b"<!doctype html",
        b"<head",
        b"<body",
        b"<script",
        b"<iframe",
        b"<a href",
        b"<img ",
        b"<meta ",
    ] {
        if memmem::find(trimmed, tag).is_some() {
            return FileType::Html;
        }
    }
    if head
        .iter()
        .all(|&c| c.is_ascii_graphic() || c.is_ascii_whitespace())
        && !head.is_empty()
    {
        return FileType::Text;
    }
    FileType::Unknown
}

/// Mail or news: the first line is an mbox separator or a header field ClamAV's mail scanner
/// keys on, and a uuencoded file's `begin` line counts too.
fn is_mail(t: &[u8]) -> bool {
    const FIELDS: &[&[u8]] = &[
        b"from ",
        b"from:",
        b"received:",
        b"return-path:",
        b"delivered-to:",
        b"date:",
        b"message-id:",
        b"mime-version:",
        b"content-type:",
        b"subject:",
        b"to:",
        b"x-",
        b"path:",
        b"newsgroups:",
        b"begin ",
    ];
    FIELDS.iter().any(|f| t.starts_with(f)) && {
        let line_end = memchr::memchr(b'\n', t).unwrap_or(t.len());
        // `x-` alone is too loose: insist on a header's colon or the mbox/uuencode forms.
        let line = &t[..line_end];
        !t.starts_with(b"x-") || line.contains(&b':')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_decides_not_names() {
        assert_eq!(detect(b"PK\x03\x04rest"), FileType::Zip);
        assert_eq!(detect(b"\x1f\x8b\x08\0"), FileType::Gzip);
        assert_eq!(detect(b"\x7fELF\x02\x01"), FileType::Elf);
        assert_eq!(
            detect(&[0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1]),
            FileType::MachO
        );
        assert_eq!(detect(b"%PDF-1.4\n"), FileType::Pdf);
        assert_eq!(
            detect(b"Received: from x\r\nTo: y\r\n\r\nbody"),
            FileType::Mail
        );
        assert_eq!(detect(b"just words\n"), FileType::Text);
        assert_eq!(detect(&[0, 1, 2, 3]), FileType::Unknown);
        let mut mz = vec![0u8; 0x100];
        mz[..2].copy_from_slice(b"MZ");
        mz[0x3c] = 0x80;
        mz[0x80..0x84].copy_from_slice(b"PE\0\0");
        assert_eq!(detect(&mz), FileType::Pe);
        mz[0x80] = b'X';
        assert_eq!(detect(&mz), FileType::Unknown);
    }

    #[test]
    fn java_class_is_not_fat_macho() {
        assert_eq!(
            detect(&[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52]),
            FileType::Unknown
        );
        assert_eq!(
            detect(&[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2]),
            FileType::MachO
        );
    }
}
