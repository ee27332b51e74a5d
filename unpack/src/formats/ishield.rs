//! InstallShield self-extractors, in the two shapes ClamAV knows (libclamav/ishield.c):
//!
//! - **Overlay files** (older, cabinet-based setups): after the PE's last section, a run of
//!   entries `name\0 path\0 version\0 decimal size\0` followed by that many bytes. Most are
//!   plain files, handed out as they are. `data1.hdr` and `dataN.cab` form InstallShield's own
//!   cabinet ("ISc(" magic): the header lists every file (name, size, offset and compressed
//!   size in cabinet N), and a file's data is a run of chunks, each a u16 length and a raw
//!   deflate stream of its own.
//! - **Setup streams** (MSI-based setups): after "InstallShield\0", a 32-byte header (file
//!   count, then zeros) and per file a 312-byte block (name in a 260-byte field, compressed
//!   size at 268) and the file's bytes: nibble-swapped, XORed with a key derived from the name,
//!   then zlib.
//!
//! Members are named by the names the setup gives them.

use memchr::memmem;

use crate::bounded::{deliver, read_bounded, Bounded};
use crate::{Sink, Stop};

/// Setup stream signatures tried per file (the string also appears in the stub's code).
const MAX_CANDIDATES: usize = 8;
/// Overlay entries read at most: each costs at least 5 bytes of input anyway.
const MAX_ENTRIES: usize = 1 << 16;
/// Longest name, path, version or size string in an overlay entry, as ClamAV reads them.
const MAX_STRING: usize = 2048;
/// The setup stream's header and each file's block.
const MSI_HEADER_LEN: usize = 0x20;
const MSI_NAME_LEN: usize = 0x104;
const MSI_BLOCK_LEN: usize = MSI_NAME_LEN + 52;
/// The fixed part of the setup stream's name key (~0x13, ~0x35, ~0x86, ~0x07).
const MSI_KEY: [u8; 4] = [0xec, 0xca, 0x79, 0xf8];
/// The cabinet header's magic, "ISc(".
const ISC_MAGIC: u32 = 0x2863_5349;
/// A file entry in the cabinet header (packed).
const FILE_ITEM_LEN: usize = 87;

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    if let Some(start) = pe_overlay(data) {
        if let Some(overlay) = data.get(start..) {
            overlay_files(overlay, sink)?;
        }
    }
    for at in memmem::find_iter(data, b"InstallShield\0").take(MAX_CANDIDATES) {
        if let Some(stream) = data.get(at + 14..) {
            if setup_stream(stream, sink)? {
                break;
            }
        }
    }
    Ok(())
}

fn le16(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        d.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn le32(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn le64(d: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        d.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Where a PE's sections end: what follows is its overlay. `None` when not a PE or nothing
/// follows.
fn pe_overlay(d: &[u8]) -> Option<usize> {
    if !d.starts_with(b"MZ") {
        return None;
    }
    let pe = le32(d, 0x3c)? as usize;
    if d.get(pe..pe.checked_add(4)?)? != b"PE\0\0" {
        return None;
    }
    let sections = usize::from(le16(d, pe + 6)?);
    let optional = usize::from(le16(d, pe + 20)?);
    let table = pe.checked_add(24)?.checked_add(optional)?;
    let mut end = 0usize;
    for i in 0..sections {
        let s = table.checked_add(i.checked_mul(40)?)?;
        let size = le32(d, s + 16)? as usize;
        let ptr = le32(d, s + 20)? as usize;
        if size > 0 {
            end = end.max(ptr.checked_add(size)?);
        }
    }
    (end > 0 && end < d.len()).then_some(end)
}

/// A NUL-terminated string at `off`, at most [`MAX_STRING`] long, and where the next begins.
fn c_string(d: &[u8], off: usize) -> Option<(&[u8], usize)> {
    let rest = d.get(off..)?;
    let len = memchr::memchr(0, &rest[..rest.len().min(MAX_STRING + 1)])?;
    Some((&rest[..len], off + len + 1))
}

/// One overlay entry: its name and its bytes' range (which may run past the data's end).
struct Entry<'a> {
    name: &'a [u8],
    start: usize,
    end: usize,
}

fn overlay_entry(d: &[u8], off: usize) -> Option<Entry<'_>> {
    let (name, p) = c_string(d, off)?;
    let (_path, p) = c_string(d, p)?;
    let (_version, p) = c_string(d, p)?;
    let (size, start) = c_string(d, p)?;
    // A name is printable, and a size plain decimal digits: anything else is some other
    // overlay (a signature, another installer's data).
    if name.is_empty() || name.iter().any(|&c| c < 0x20 || c == 0x7f) {
        return None;
    }
    if size.is_empty() || size.len() > 19 || !size.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size: usize = std::str::from_utf8(size).ok()?.parse().ok()?;
    let end = start.checked_add(size)?;
    Some(Entry { name, start, end })
}

/// The cabinet number in `dataN.cab`, if `name` is one.
fn cab_number(name: &str) -> Option<u16> {
    let lower = name.to_ascii_lowercase();
    let n: u16 = lower
        .strip_prefix("data")?
        .strip_suffix(".cab")?
        .parse()
        .ok()?;
    (n > 0).then_some(n)
}

fn overlay_files(d: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let mut hdr: Option<&[u8]> = None;
    let mut cabs: Vec<(u16, &[u8])> = Vec::new();
    let mut off = 0usize;
    for _ in 0..MAX_ENTRIES {
        let Some(e) = overlay_entry(d, off) else {
            break;
        };
        let name = String::from_utf8_lossy(e.name).into_owned();
        if e.end > d.len() {
            // After whole entries, one that runs past the end is a setup cut short; as the
            // first, it is more likely some other overlay that happens to parse.
            if off > 0 {
                sink.corrupt(&format!(
                    "ishield: {name}: {} bytes past the end of the file",
                    e.end - d.len()
                ));
            }
            break;
        }
        off = e.end;
        let body = &d[e.start..e.end];
        if name.eq_ignore_ascii_case("data1.hdr") && hdr.is_none() {
            hdr = Some(body);
        } else if let Some(n) = cab_number(&name) {
            if !cabs.iter().any(|&(m, _)| m == n) {
                cabs.push((n, body));
            }
        }
        // The header and cabinets are scanned as they are too (as ClamAV does): a signature
        // may be written for them, and a cabinet that does not parse is still looked at.
        if body.is_empty() {
            continue;
        }
        if body.len() as u64 > sink.budget() {
            sink.too_large(&name);
        } else {
            sink.member(&name, body)?;
        }
    }
    match hdr {
        Some(h) if !cabs.is_empty() => cabinet(h, &cabs, sink),
        _ => Ok(()),
    }
}

/// The files in InstallShield cabinets, as `data1.hdr` lists them.
fn cabinet(hdr: &[u8], cabs: &[(u16, &[u8])], sink: &mut dyn Sink) -> Result<(), Stop> {
    if le32(hdr, 0) != Some(ISC_MAGIC) {
        sink.corrupt("ishield: data1.hdr: no ISc( magic");
        return Ok(());
    }
    let parsed = (|| {
        let data_off = le32(hdr, 12)? as usize;
        let dirs_off = le32(hdr, data_off.checked_add(0x0c)?)? as usize;
        let files = le32(hdr, data_off.checked_add(0x28)?)? as usize;
        let dirs_len = le32(hdr, data_off.checked_add(0x2c)?)? as usize;
        let base = data_off.checked_add(dirs_off)?;
        Some((base, files, base.checked_add(dirs_len)?))
    })();
    let Some((base, files, items)) = parsed else {
        sink.corrupt("ishield: data1.hdr: file table out of bounds");
        return Ok(());
    };
    for i in 0..files {
        let Some(item) = i
            .checked_mul(FILE_ITEM_LEN)
            .and_then(|o| o.checked_add(items))
            .and_then(|o| hdr.get(o..o.checked_add(FILE_ITEM_LEN)?))
        else {
            sink.corrupt(&format!("ishield: data1.hdr: file {i} out of bounds"));
            return Ok(());
        };
        file_item(hdr, base, i, item, cabs, sink)?;
    }
    Ok(())
}

fn file_item(
    hdr: &[u8],
    base: usize,
    i: usize,
    item: &[u8],
    cabs: &[(u16, &[u8])],
    sink: &mut dyn Sink,
) -> Result<(), Stop> {
    // Fixed offsets in the packed item: flags, size, compressed size, offset in the cabinet,
    // name offset, duplicate flag, cabinet number.
    let (Some(flags), Some(size), Some(csize), Some(at), Some(name_off), Some(&dup), Some(cab)) = (
        le16(item, 0),
        le64(item, 2),
        le64(item, 10),
        le64(item, 18),
        le32(item, 58),
        item.get(84),
        le16(item, 85),
    ) else {
        return Ok(());
    };
    // 4: the file is inside a cabinet (0 is external to the setup); a duplicate's data is
    // another entry's.
    if flags != 4 || dup & 1 != 0 || size == 0 {
        return Ok(());
    }
    let name = base
        .checked_add(name_off as usize)
        .and_then(|o| c_string(hdr, o))
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("file-{i}"));
    if size > sink.budget() {
        sink.too_large(&name);
        return Ok(());
    }
    let Some(&(_, cab_data)) = cabs.iter().find(|&&(n, _)| n == cab) else {
        sink.corrupt(&format!(
            "ishield: {name}: data{cab}.cab is not in the setup"
        ));
        return Ok(());
    };
    let stream = usize::try_from(at)
        .ok()
        .zip(usize::try_from(csize).ok())
        .and_then(|(a, c)| cab_data.get(a..a.checked_add(c)?));
    let Some(stream) = stream else {
        sink.corrupt(&format!(
            "ishield: {name}: data past the end of data{cab}.cab"
        ));
        return Ok(());
    };
    let got = chunks(stream, sink.budget());
    deliver(sink, &name, got)
}

/// A cabinet file's data: chunks of u16 length and a raw deflate stream each.
fn chunks(stream: &[u8], budget: u64) -> Bounded {
    let mut out = Vec::new();
    let mut p = 0usize;
    // Each round consumes at least the 2 bytes of a length.
    while let Some(len) = le16(stream, p) {
        p += 2;
        let len = usize::from(len);
        if len == 0 {
            continue;
        }
        let Some(chunk) = stream.get(p..p + len) else {
            let e = std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("chunk of {len} bytes past the end of the file's data"),
            );
            return Bounded::Broken(out, e);
        };
        p += len;
        let room = budget.saturating_sub(out.len() as u64);
        match read_bounded(flate2::read::DeflateDecoder::new(chunk), room) {
            Bounded::Whole(v) => out.extend_from_slice(&v),
            Bounded::Over => return Bounded::Over,
            Bounded::Broken(v, e) => {
                out.extend_from_slice(&v);
                return Bounded::Broken(out, e);
            }
        }
    }
    Bounded::Whole(out)
}

/// The files of a setup stream starting after "InstallShield\0". `Ok(false)` when the header
/// is not one.
fn setup_stream(d: &[u8], sink: &mut dyn Sink) -> Result<bool, Stop> {
    let Some(header) = d.get(..MSI_HEADER_LEN) else {
        return Ok(false);
    };
    let count = le32(header, 0).unwrap_or(0) as usize;
    // The header is a count and zeros, and the first block's two words after the name are 6
    // and 0: ClamAV's own signature for the format.
    let first = MSI_HEADER_LEN + MSI_NAME_LEN;
    if count == 0
        || header[8..].iter().any(|&b| b != 0)
        || le32(d, first) != Some(6)
        || le32(d, first + 4) != Some(0)
    {
        return Ok(false);
    }
    let mut off = MSI_HEADER_LEN;
    // Each file costs at least its 312-byte block: the input bounds the rounds.
    for i in 0..count {
        let Some(block) = d.get(off..off + MSI_BLOCK_LEN) else {
            sink.corrupt(&format!("ishield: setup stream: block {i} cut short"));
            return Ok(true);
        };
        off += MSI_BLOCK_LEN;
        let raw_name = &block[..MSI_NAME_LEN];
        let raw_name = &raw_name[..memchr::memchr(0, raw_name).unwrap_or(MSI_NAME_LEN - 1)];
        if raw_name.is_empty() {
            return Ok(true);
        }
        let name = String::from_utf8_lossy(raw_name).into_owned();
        let Some(body) = le64(block, MSI_NAME_LEN + 8)
            .and_then(|c| usize::try_from(c).ok())
            .and_then(|c| d.get(off..off.checked_add(c)?))
        else {
            sink.corrupt(&format!("ishield: setup stream: {name}: data past the end"));
            return Ok(true);
        };
        off += body.len();
        let plain = unscramble(body, raw_name);
        let got = read_bounded(
            flate2::read::ZlibDecoder::new(plain.as_slice()),
            sink.budget(),
        );
        if matches!(&got, Bounded::Whole(v) if v.is_empty()) {
            continue;
        }
        deliver(sink, &name, got)?;
    }
    Ok(true)
}

/// Undoes a setup stream file's scrambling: each byte's nibbles swapped, then XORed with the
/// name (itself XORed with [`MSI_KEY`]), the key restarting every 1024 bytes.
fn unscramble(body: &[u8], name: &[u8]) -> Vec<u8> {
    let key: Vec<u8> = name
        .iter()
        .zip(MSI_KEY.iter().cycle())
        .map(|(c, k)| c ^ k)
        .collect();
    body.iter()
        .enumerate()
        .map(|(i, &c)| c.rotate_left(4) ^ key[(i & 0x3ff) % key.len()])
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;

    use super::*;

    use crate::formats::testsink::Record;

    fn run(d: &[u8]) -> Record {
        Record::run(|s| extract(d, s))
    }

    /// A minimal PE: one section of 0x200 bytes at 0x200, so the overlay starts at 0x400.
    fn pe() -> Vec<u8> {
        let mut d = vec![0u8; 0x400];
        d[..2].copy_from_slice(b"MZ");
        d[0x3c] = 0x80;
        d[0x80..0x84].copy_from_slice(b"PE\0\0");
        d[0x86] = 1; // one section
        d[0x94] = 0xe0; // optional header size
        let s = 0x80 + 24 + 0xe0;
        d[s + 16..s + 20].copy_from_slice(&0x200u32.to_le_bytes());
        d[s + 20..s + 24].copy_from_slice(&0x200u32.to_le_bytes());
        d
    }

    fn entry(name: &str, body: &[u8]) -> Vec<u8> {
        let mut e = format!("{name}\0Disk1\\{name}\x000.0.0.0\0{}\0", body.len()).into_bytes();
        e.extend_from_slice(body);
        e
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A data1.hdr listing one file `inner.exe` at offset 0 of data1.cab.
    fn hdr(size: u64, csize: u64) -> Vec<u8> {
        let mut h = vec![0u8; 0x200];
        h[..4].copy_from_slice(&ISC_MAGIC.to_le_bytes());
        let data_off = 0x20usize;
        h[12..16].copy_from_slice(&(data_off as u32).to_le_bytes());
        let dirs_off = 0x60u32;
        h[data_off + 0x0c..data_off + 0x10].copy_from_slice(&dirs_off.to_le_bytes());
        h[data_off + 0x28..data_off + 0x2c].copy_from_slice(&1u32.to_le_bytes());
        h[data_off + 0x2c..data_off + 0x30].copy_from_slice(&0x10u32.to_le_bytes());
        let base = data_off + dirs_off as usize;
        let item = base + 0x10;
        h[item..item + 2].copy_from_slice(&4u16.to_le_bytes());
        h[item + 2..item + 10].copy_from_slice(&size.to_le_bytes());
        h[item + 10..item + 18].copy_from_slice(&csize.to_le_bytes());
        let name_off = 0x100u32;
        h[item + 58..item + 62].copy_from_slice(&name_off.to_le_bytes());
        h[item + 85..item + 87].copy_from_slice(&1u16.to_le_bytes());
        let n = base + name_off as usize;
        h[n..n + 10].copy_from_slice(b"inner.exe\0");
        h
    }

    #[test]
    fn overlay_files_and_cabinet() {
        let payload: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut cab = Vec::new();
        for part in payload.chunks(2000) {
            let c = deflate(part);
            cab.extend_from_slice(&(c.len() as u16).to_le_bytes());
            cab.extend_from_slice(&c);
        }
        let mut d = pe();
        d.extend(entry("readme.txt", b"hello"));
        d.extend(entry("data1.cab", &cab));
        d.extend(entry("data1.hdr", &hdr(5000, cab.len() as u64)));
        let r = run(&d);
        assert_eq!(r.notes, Vec::<String>::new());
        let names: Vec<_> = r.members.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(names, ["readme.txt", "data1.cab", "data1.hdr", "inner.exe"]);
        assert_eq!(r.members[0].1, b"hello");
        assert_eq!(r.members[3].1, payload);
    }

    #[test]
    fn overlay_cut_short_is_corrupt() {
        let mut d = pe();
        d.extend(entry("readme.txt", b"hello"));
        d.extend(entry("setup.exe", &[0x90; 400]));
        d.truncate(d.len() - 100);
        let r = run(&d);
        assert_eq!(r.members.len(), 1);
        assert_eq!(
            r.notes,
            ["corrupt ishield: setup.exe: 100 bytes past the end of the file"]
        );
    }

    #[test]
    fn cabinet_stream_past_its_end_is_corrupt() {
        let cab = deflate(b"abc");
        let mut d = pe();
        d.extend(entry("data1.cab", &cab));
        d.extend(entry("data1.hdr", &hdr(3, 1000)));
        let r = run(&d);
        assert!(
            r.notes.iter().any(|n| n.contains("past the end")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn setup_stream_files() {
        let mut d = b"junk before InstallShield\0".to_vec();
        d.extend_from_slice(&2u32.to_le_bytes());
        d.extend_from_slice(&[0u8; MSI_HEADER_LEN - 4]);
        for (name, content) in [("a.exe", &b"first file"[..]), ("b.ini", b"[x]\r\ny=1")] {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            z.write_all(content).unwrap();
            let z = z.finish().unwrap();
            // Scramble as the setup does: XOR with the key, then swap the nibbles.
            let key: Vec<u8> = name
                .bytes()
                .zip(MSI_KEY.iter().cycle())
                .map(|(c, k)| c ^ k)
                .collect();
            let body: Vec<u8> = z
                .iter()
                .enumerate()
                .map(|(i, &c)| (c ^ key[(i & 0x3ff) % key.len()]).rotate_left(4))
                .collect();
            let mut block = vec![0u8; MSI_BLOCK_LEN];
            block[..name.len()].copy_from_slice(name.as_bytes());
            block[MSI_NAME_LEN..MSI_NAME_LEN + 4].copy_from_slice(&6u32.to_le_bytes());
            block[MSI_NAME_LEN + 8..MSI_NAME_LEN + 16]
                .copy_from_slice(&(body.len() as u64).to_le_bytes());
            d.extend(block);
            d.extend(body);
        }
        let r = run(&d);
        assert_eq!(r.notes, Vec::<String>::new());
        assert_eq!(
            r.members,
            [
                ("a.exe".to_string(), b"first file".to_vec()),
                ("b.ini".to_string(), b"[x]\r\ny=1".to_vec())
            ]
        );
        // Cut short inside the second file: the first is still handed out.
        let r = run(&d[..d.len() - 3]);
        assert_eq!(r.members.len(), 1);
        assert!(r.notes[0].contains("b.ini"), "{:?}", r.notes);
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let cab = deflate(b"abc");
        let mut d = pe();
        d.extend(entry("data1.cab", &cab));
        d.extend(entry("data1.hdr", &hdr(3, cab.len() as u64)));
        for n in 0..d.len() {
            run(&d[..n]);
        }
        for i in 0x3c..d.len() {
            let mut m = d.clone();
            m[i] ^= 0xff;
            run(&m);
        }
        let mut s = b"InstallShield\0".to_vec();
        s.extend_from_slice(&u32::MAX.to_le_bytes());
        s.extend_from_slice(&[0u8; 0x300]);
        run(&s);
    }
}
