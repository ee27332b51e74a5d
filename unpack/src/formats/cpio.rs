//! cpio in its four formats: old binary (either byte order), odc (`070707`), newc (`070701`)
//! and crc (`070702`). Parsed here: a header and a name before each file, nothing more.

use crate::{Sink, Stop};

const TRAILER: &str = "TRAILER!!!";
/// cpio members are stored, never compressed: a file's size is bounded by the input's.
const MAX_ENTRIES: usize = 1 << 20;

struct Header {
    mode: u32,
    name_len: usize,
    size: u64,
    header_len: usize,
    /// Name and data are padded to this alignment (relative to the archive's start).
    align: usize,
}

fn ascii_num(field: &[u8], radix: u32) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(field).ok()?, radix).ok()
}

fn header(d: &[u8]) -> Option<Header> {
    if d.starts_with(b"070701") || d.starts_with(b"070702") {
        let h = d.get(..110)?;
        let f = |i: usize| ascii_num(&h[6 + 8 * i..14 + 8 * i], 16);
        return Some(Header {
            mode: f(1)? as u32,
            size: f(6)?,
            name_len: f(11)? as usize,
            header_len: 110,
            align: 4,
        });
    }
    if d.starts_with(b"070707") {
        let h = d.get(..76)?;
        return Some(Header {
            mode: ascii_num(&h[18..24], 8)? as u32,
            name_len: ascii_num(&h[59..65], 8)? as usize,
            size: ascii_num(&h[65..76], 8)?,
            header_len: 76,
            align: 1,
        });
    }
    let h = d.get(..26)?;
    let le = match (h[0], h[1]) {
        (0xc7, 0x71) => true,
        (0x71, 0xc7) => false,
        _ => return None,
    };
    let w = |i: usize| -> u32 {
        let b = [h[2 * i], h[2 * i + 1]];
        u32::from(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    Some(Header {
        mode: w(3),
        name_len: w(10) as usize,
        // The 32-bit size is stored as two 16-bit words, most significant first.
        size: (u64::from(w(11)) << 16) | u64::from(w(12)),
        header_len: 26,
        align: 2,
    })
}

fn pad(n: usize, align: usize) -> usize {
    n.div_ceil(align) * align
}

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let mut off = 0usize;
    for i in 0..MAX_ENTRIES {
        let Some(rest) = data.get(off..) else {
            return Ok(());
        };
        let Some(h) = header(rest) else {
            if i == 0 || !rest.iter().all(|&b| b == 0) {
                sink.corrupt(&format!("cpio: no header at offset {off}"));
            }
            return Ok(());
        };
        let name_start = off + h.header_len;
        let name_end = name_start.saturating_add(h.name_len);
        let Some(raw_name) = data.get(name_start..name_end) else {
            sink.corrupt(&format!("cpio: name past the end at offset {off}"));
            return Ok(());
        };
        let name =
            String::from_utf8_lossy(raw_name.strip_suffix(&[0]).unwrap_or(raw_name)).into_owned();
        if name == TRAILER {
            return Ok(());
        }
        let data_start = pad(name_end, h.align);
        let Some(data_end) = usize::try_from(h.size)
            .ok()
            .and_then(|s| data_start.checked_add(s))
        else {
            sink.corrupt(&format!("cpio: {name}: size {} too large", h.size));
            return Ok(());
        };
        let Some(body) = data.get(data_start..data_end) else {
            sink.corrupt(&format!("cpio: {name}: data past the end"));
            return Ok(());
        };
        // Regular files only (S_IFREG): links' data is their target's name.
        if h.mode & 0o170000 == 0o100000 {
            if body.len() as u64 > sink.budget() {
                sink.too_large(&name);
            } else {
                sink.member(&name, body)?;
            }
        }
        off = pad(data_end, h.align);
    }
    Ok(())
}
