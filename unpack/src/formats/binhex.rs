//! BinHex 4.0 (classic Mac OS mail attachments): a 6-bit text encoding between colons, then
//! run-length coding with 0x90, then a header (name, type, creator, fork lengths) and the data
//! and resource forks. Each non-empty fork is a member, named after the file.

use crate::{Sink, Stop};

const ALPHABET: &[u8; 64] = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr";
const MARKER: &[u8] = b"(This file must be converted with BinHex";

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let start = memchr::memmem::find(data, MARKER).unwrap_or(0);
    let Some(colon) = memchr::memchr(b':', &data[start..]) else {
        sink.corrupt("binhex: no ':' opening the data");
        return Ok(());
    };
    let (six, closed) = decode6(&data[start + colon + 1..]);
    // The header and both forks together may not exceed twice the budget (plus the header).
    let cap = sink.budget().saturating_mul(2).saturating_add(512);
    let (bytes, rle_ok) = unrle(&six, cap);
    let Some(h) = Header::parse(&bytes) else {
        sink.corrupt("binhex: header cut short");
        return Ok(());
    };
    let mut broken = !closed || !rle_ok;
    let name = super::mail::sanitize(&String::from_utf8_lossy(&h.name))
        .unwrap_or_else(|| "binhex".to_string());
    let forks = [
        (name.clone(), h.data_off, h.data_len),
        (
            format!("{name}.rsrc"),
            h.data_off.saturating_add(h.data_len).saturating_add(2),
            h.rsrc_len,
        ),
    ];
    for (fork, off, len) in forks {
        if len == 0 {
            continue;
        }
        if len as u64 > sink.budget() {
            sink.too_large(&fork);
            continue;
        }
        let avail = bytes.get(off..).unwrap_or(&[]);
        let got = &avail[..avail.len().min(len)];
        if got.len() < len {
            broken = true;
        }
        if !got.is_empty() {
            sink.member(&fork, got)?;
        }
    }
    if broken {
        sink.corrupt("binhex: data ends early");
    }
    Ok(())
}

struct Header {
    name: Vec<u8>,
    data_off: usize,
    data_len: usize,
    rsrc_len: usize,
}

impl Header {
    fn parse(b: &[u8]) -> Option<Header> {
        let n = usize::from(*b.first()?);
        let name = b.get(1..1 + n)?.to_vec();
        // version (1), type (4), creator (4), flags (2)
        let p = 1 + n + 1 + 4 + 4 + 2;
        let be = |o: usize| -> Option<usize> {
            Some(u32::from_be_bytes(b.get(o..o + 4)?.try_into().ok()?) as usize)
        };
        Some(Header {
            name,
            data_len: be(p)?,
            rsrc_len: be(p + 4)?,
            data_off: p + 8 + 2,
        })
    }
}

/// The 6-bit text up to the closing colon; whether that colon was there.
fn decode6(text: &[u8]) -> (Vec<u8>, bool) {
    let mut table = [0xffu8; 256];
    for (i, &c) in ALPHABET.iter().enumerate() {
        table[usize::from(c)] = i as u8;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in text {
        if c == b':' {
            return (out, true);
        }
        let v = table[usize::from(c)];
        if v == 0xff {
            // Line breaks and other whitespace between the lines.
            continue;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (out, false)
}

/// Undoes the run-length coding (0x90 n: the previous byte n times in all; 0x90 0: a 0x90),
/// stopping at `cap` bytes. Whether the input was well-formed.
fn unrle(b: &[u8], cap: u64) -> (Vec<u8>, bool) {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(b.len().min(cap));
    let mut i = 0;
    while i < b.len() && out.len() < cap {
        let c = b[i];
        i += 1;
        if c != 0x90 {
            out.push(c);
            continue;
        }
        let Some(&n) = b.get(i) else {
            return (out, false);
        };
        i += 1;
        match (n, out.last().copied()) {
            (0, _) => out.push(0x90),
            (_, Some(prev)) => {
                let more = (usize::from(n) - 1).min(cap - out.len());
                out.extend(std::iter::repeat_n(prev, more));
            }
            (_, None) => return (out, false),
        }
    }
    (out, true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::formats::testsink::Record;

    fn encode6(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in b.chunks(3) {
            let mut q = [0u8; 3];
            q[..chunk.len()].copy_from_slice(chunk);
            let w = u32::from(q[0]) << 16 | u32::from(q[1]) << 8 | u32::from(q[2]);
            for k in 0..(chunk.len() + 1) {
                out.push(ALPHABET[((w >> (18 - 6 * k)) & 63) as usize]);
            }
        }
        out
    }

    fn file(data_len: u32, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![5];
        h.extend_from_slice(b"a.exe\0TYPECRTR\0\0");
        h.extend_from_slice(&data_len.to_be_bytes());
        h.extend_from_slice(&0u32.to_be_bytes());
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(payload);
        h.extend_from_slice(&[0, 0]);
        let mut f = b"(This file must be converted with BinHex 4.0)\n:".to_vec();
        f.extend_from_slice(&encode6(&h));
        f.push(b':');
        f
    }

    #[test]
    fn data_fork_with_runs() {
        // "ab" then 0x90 5 (b four more times), then a literal 0x90.
        let r = Record::run(|s| extract(&file(7, &[b'a', b'b', 0x90, 5, 0x90, 0]), s));
        assert_eq!(
            r.members,
            vec![("a.exe".to_string(), b"abbbbb\x90".to_vec())]
        );
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn truncated_is_corrupt() {
        let mut f = file(100, b"abc");
        f.truncate(f.len() - 1);
        let r = Record::run(|s| extract(&f, s));
        assert!(r.members[0].1.starts_with(b"abc"));
        assert!(r.corrupt());
        let r = Record::run(|s| extract(b"(This file must be converted with BinHex 4.0)\n:!!", s));
        assert!(r.members.is_empty() && r.corrupt());
    }
}
