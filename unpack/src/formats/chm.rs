//! Microsoft Compiled HTML Help (CHM, ITSF): the directory's PMGL chunks list every file with
//! its section, offset and length. Section 0 is stored as is; section 1 ("MSCompressed") is
//! one LZX stream, decoded in 32 KiB frames by the `lzxd` crate with the resets its reset table
//! and control data give. Each file is a member named by its path; the format's own internal
//! files (`::DataSpace/…`) are not.

use crate::{Sink, Stop};

const CONTENT: &str = "::DataSpace/Storage/MSCompressed/Content";
const CONTROL: &str = "::DataSpace/Storage/MSCompressed/ControlData";
const RESET_TABLE: &str = "::DataSpace/Storage/MSCompressed/Transform/{7FC28940-9D31-11D0-9B27-00A0C91E9C7C}/InstanceData/ResetTable";
const FRAME: usize = 0x8000;
/// Directory entries read: a bound on work for a hostile directory.
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    name: String,
    section: u64,
    offset: u64,
    length: u64,
}

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let Some((entries, content_off, complete)) = directory(data) else {
        sink.corrupt("chm: header or directory cut short");
        return Ok(());
    };
    let find = |n: &str| entries.iter().find(|e| e.name == n);
    let section0 = |e: &Entry| -> Option<&[u8]> {
        let start = content_off.checked_add(e.offset)?;
        let end = start.checked_add(e.length)?;
        data.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
    };
    // Section 1, decoded lazily: only if some file lives there.
    let mut section1: Option<(Vec<u8>, Option<String>)> = None;
    for e in entries.iter() {
        if e.length == 0 || e.name.starts_with("::") || e.name.ends_with('/') {
            continue;
        }
        let name = e.name.trim_start_matches('/').to_string();
        if e.length > sink.budget() {
            sink.too_large(&name);
            continue;
        }
        let bytes: Option<&[u8]> = match e.section {
            0 => section0(e),
            1 => {
                if section1.is_none() {
                    section1 = Some(decode_section1(
                        find(CONTENT).and_then(section0),
                        find(CONTROL).and_then(section0),
                        find(RESET_TABLE).and_then(section0),
                        sink.budget(),
                    ));
                }
                section1.as_ref().and_then(|(s, _)| {
                    let start = usize::try_from(e.offset).ok()?;
                    s.get(start..start.checked_add(usize::try_from(e.length).ok()?)?)
                })
            }
            _ => None,
        };
        match bytes {
            Some(b) => sink.member(&name, b)?,
            None => sink.corrupt(&format!("chm: {name} lies outside its section")),
        }
    }
    if let Some((_, Some(why))) = section1 {
        sink.corrupt(&format!("chm: {why}"));
    }
    if !complete {
        sink.corrupt("chm: directory cut short");
    }
    Ok(())
}

fn u32_at(b: &[u8], p: usize) -> Option<u32> {
    super::ole2::u32_at(b, p)
}

fn u64_at(b: &[u8], p: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(p..p.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The directory's entries, where section 0's content starts, and whether every chunk read.
fn directory(d: &[u8]) -> Option<(Vec<Entry>, u64, bool)> {
    if !d.starts_with(b"ITSF") {
        return None;
    }
    let version = u32_at(d, 4)?;
    let dir_off = usize::try_from(u64_at(d, 0x48)?).ok()?;
    let dir_len = u64_at(d, 0x50)?;
    let content_off = if version >= 3 {
        u64_at(d, 0x58)?
    } else {
        (dir_off as u64).checked_add(dir_len)?
    };
    let itsp = d.get(dir_off..)?;
    if !itsp.starts_with(b"ITSP") {
        return None;
    }
    let header_len = u32_at(itsp, 8)? as usize;
    let chunk_size = u32_at(itsp, 0x10)? as usize;
    let nchunks = u32_at(itsp, 0x2c)? as usize;
    if !(20..=1 << 20).contains(&chunk_size) {
        return None;
    }
    let mut entries = Vec::new();
    let mut complete = true;
    for i in 0..nchunks.min(MAX_ENTRIES) {
        let start = header_len.checked_add(i.checked_mul(chunk_size)?)?;
        let Some(chunk) = itsp.get(start..start.saturating_add(chunk_size)) else {
            complete = false;
            break;
        };
        if !chunk.starts_with(b"PMGL") {
            continue;
        }
        let free = u32_at(chunk, 4)? as usize;
        let end = chunk_size.saturating_sub(free);
        let mut p = 20;
        while p < end && entries.len() < MAX_ENTRIES {
            let Some(e) = entry(chunk, &mut p) else {
                complete = false;
                break;
            };
            entries.push(e);
        }
    }
    Some((entries, content_off, complete))
}

fn entry(c: &[u8], p: &mut usize) -> Option<Entry> {
    let len = usize::try_from(encint(c, p)?).ok()?;
    let name = c.get(*p..p.checked_add(len)?)?;
    *p += len;
    Some(Entry {
        name: String::from_utf8_lossy(name).into_owned(),
        section: encint(c, p)?,
        offset: encint(c, p)?,
        length: encint(c, p)?,
    })
}

/// CHM's variable-length integer: 7 bits a byte, high bit set on all but the last.
fn encint(c: &[u8], p: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for _ in 0..9 {
        let b = *c.get(*p)?;
        *p += 1;
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Section 1 decoded up to `budget` bytes, and why it stopped early, if it did.
fn decode_section1(
    content: Option<&[u8]>,
    control: Option<&[u8]>,
    reset: Option<&[u8]>,
    budget: u64,
) -> (Vec<u8>, Option<String>) {
    let (Some(content), Some(control), Some(reset)) = (content, control, reset) else {
        return (
            Vec::new(),
            Some("compressed section's control files missing".into()),
        );
    };
    // ControlData: size, "LZXC", version, reset interval, window size (version 2: in frames).
    let (Some(ver), Some(mut interval), Some(mut window)) =
        (u32_at(control, 8), u32_at(control, 12), u32_at(control, 16))
    else {
        return (Vec::new(), Some("control data cut short".into()));
    };
    if ver == 2 {
        interval = interval.saturating_mul(FRAME as u32);
        window = window.saturating_mul(FRAME as u32);
    }
    let window = match window {
        0x8000 => lzxd::WindowSize::KB32,
        0x1_0000 => lzxd::WindowSize::KB64,
        0x2_0000 => lzxd::WindowSize::KB128,
        0x4_0000 => lzxd::WindowSize::KB256,
        0x8_0000 => lzxd::WindowSize::KB512,
        0x10_0000 => lzxd::WindowSize::MB1,
        0x20_0000 => lzxd::WindowSize::MB2,
        _ => return (Vec::new(), Some(format!("unsupported LZX window {window}"))),
    };
    let frames_per_reset = (interval as usize / FRAME).max(1);
    // ResetTable: version, entries, entry size, header size, uncompressed and compressed
    // lengths, frame length; then one compressed offset per frame.
    let (Some(n), Some(hdr), Some(total)) =
        (u32_at(reset, 4), u32_at(reset, 12), u64_at(reset, 16))
    else {
        return (Vec::new(), Some("reset table cut short".into()));
    };
    let want = total.min(budget) as usize;
    let offsets: Vec<usize> = (0..n as usize)
        .map_while(|i| u64_at(reset, hdr as usize + 8 * i))
        .map(|o| usize::try_from(o).unwrap_or(usize::MAX))
        .collect();
    let mut lzx = lzxd::Lzxd::new(window);
    let mut out = Vec::with_capacity(want.min(content.len().saturating_mul(16)));
    for (i, &start) in offsets.iter().enumerate() {
        if out.len() >= want {
            break;
        }
        if i % frames_per_reset == 0 {
            lzx.reset();
        }
        let end = offsets.get(i + 1).copied().unwrap_or(content.len());
        let Some(frame) = content.get(start..end.min(content.len())) else {
            return (out, Some("compressed frame outside the content".into()));
        };
        let len = FRAME.min(want - out.len());
        match lzx.decompress_next(frame, len) {
            Ok(b) => out.extend_from_slice(b),
            Err(e) => return (out, Some(format!("LZX: {e}"))),
        }
    }
    (out, None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::formats::testsink::Record;

    /// An ITSF v3 file with one PMGL chunk listing `/a.txt` in section 0.
    fn chm(payload: &[u8]) -> Vec<u8> {
        let chunk_size = 0x100usize;
        let mut f = vec![0u8; 0x60];
        f[..4].copy_from_slice(b"ITSF");
        f[4..8].copy_from_slice(&3u32.to_le_bytes());
        f[0x48..0x50].copy_from_slice(&0x60u64.to_le_bytes());
        let dir_len = 0x54 + chunk_size;
        f[0x50..0x58].copy_from_slice(&(dir_len as u64).to_le_bytes());
        f[0x58..0x60].copy_from_slice(&((0x60 + dir_len) as u64).to_le_bytes());
        let mut itsp = vec![0u8; 0x54];
        itsp[..4].copy_from_slice(b"ITSP");
        itsp[8..12].copy_from_slice(&0x54u32.to_le_bytes());
        itsp[0x10..0x14].copy_from_slice(&(chunk_size as u32).to_le_bytes());
        itsp[0x2c..0x30].copy_from_slice(&1u32.to_le_bytes());
        let mut chunk = b"PMGL".to_vec();
        let mut ents = vec![6u8];
        ents.extend_from_slice(b"/a.txt");
        ents.extend_from_slice(&[0, 0, payload.len() as u8]);
        chunk.extend_from_slice(&((chunk_size - 20 - ents.len()) as u32).to_le_bytes());
        chunk.extend_from_slice(&[0; 12]);
        chunk.extend_from_slice(&ents);
        chunk.resize(chunk_size, 0);
        f.extend_from_slice(&itsp);
        f.extend_from_slice(&chunk);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn section0_file() {
        let r = Record::run(|s| extract(&chm(b"hello"), s));
        assert_eq!(r.members, vec![("a.txt".to_string(), b"hello".to_vec())]);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn truncated_is_corrupt() {
        let f = chm(b"hello");
        for cut in [10, 0x70, f.len() - 2] {
            let r = Record::run(|s| extract(&f[..cut], s));
            assert!(r.corrupt(), "cut {cut}");
        }
    }
}
