//! MS COMPRESS SZDD (`COMPRESS.EXE`, the `foo.ex_` files of old installers): one member,
//! LZSS over a 4096-byte window that starts out filled with spaces. The header holds the
//! original length and the last character of the original name, not the name itself.

use crate::{Sink, Stop};

const MAGIC: &[u8] = b"SZDD\x88\xf0\x27\x33";
const HEADER: usize = 14;
const NAME: &str = "szdd";

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let Some(len) = data
        .get(10..14)
        .filter(|_| data.starts_with(MAGIC))
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
    else {
        sink.corrupt("szdd: no header");
        return Ok(());
    };
    if data.get(8) != Some(&b'A') {
        sink.corrupt("szdd: unknown compression mode");
        return Ok(());
    }
    if u64::from(len) > sink.budget() {
        sink.too_large(NAME);
        return Ok(());
    }
    let (out, complete) = decode(&data[HEADER..], len as usize);
    if !out.is_empty() {
        sink.member(NAME, &out)?;
    }
    if !complete {
        sink.corrupt("szdd: data ends before the declared length");
    }
    Ok(())
}

/// Decodes up to `want` bytes; whether all of them were there. `want` was checked against
/// the budget, so the output is bounded by it.
fn decode(src: &[u8], want: usize) -> (Vec<u8>, bool) {
    let mut window = [b' '; 4096];
    let mut wpos = 4096 - 16;
    let mut out = Vec::with_capacity(want.min(src.len().saturating_mul(8)));
    let mut i = 0;
    while out.len() < want {
        let Some(&control) = src.get(i) else {
            return (out, false);
        };
        i += 1;
        for bit in 0..8 {
            if out.len() >= want {
                break;
            }
            if control & (1 << bit) != 0 {
                let Some(&c) = src.get(i) else {
                    return (out, false);
                };
                i += 1;
                out.push(c);
                window[wpos] = c;
                wpos = (wpos + 1) & 4095;
            } else {
                let (Some(&a), Some(&b)) = (src.get(i), src.get(i + 1)) else {
                    return (out, false);
                };
                i += 2;
                let mut from = usize::from(a) | (usize::from(b & 0xf0) << 4);
                for _ in 0..(usize::from(b & 0x0f) + 3) {
                    if out.len() >= want {
                        break;
                    }
                    let c = window[from];
                    out.push(c);
                    window[wpos] = c;
                    wpos = (wpos + 1) & 4095;
                    from = (from + 1) & 4095;
                }
            }
        }
    }
    (out, true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::formats::testsink::Record;

    fn file(len: u32, body: &[u8]) -> Vec<u8> {
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(b"A_");
        f.extend_from_slice(&len.to_le_bytes());
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn literals_and_window_copies() {
        // "abc" as literals, then a copy of 6 from the window at 4080 (where "abc" went).
        let f = file(9, &[0b0000_0111, b'a', b'b', b'c', 0xf0, 0xf3]);
        let r = Record::run(|s| extract(&f, s));
        assert_eq!(r.members, vec![("szdd".to_string(), b"abcabcabc".to_vec())]);
        // The initial window is spaces.
        let f = file(4, &[0, 0x00, 0x01]);
        let r = Record::run(|s| extract(&f, s));
        assert_eq!(r.members[0].1, b"    ");
    }

    #[test]
    fn truncated_and_oversized() {
        let f = file(100, &[0xff, b'a', b'b']);
        let r = Record::run(|s| extract(&f, s));
        assert_eq!(r.members[0].1, b"ab");
        assert!(r.corrupt());
        let r = Record::with_budget(10, |s| extract(&file(u32::MAX, &[]), s));
        assert!(r.members.is_empty());
        assert_eq!(r.notes, vec!["too large szdd"]);
        let r = Record::run(|s| extract(b"SZDD", s));
        assert!(r.corrupt());
    }
}
