//! TNEF (`winmail.dat`, Outlook's rich-text attachment wrapper): a list of attributes. Each
//! attachment starts at attAttachRendData; its content is attAttachData, named by
//! attAttachTitle or by the long file name in its MAPI properties (attAttachment), where an
//! embedded message or OLE object (PR_ATTACH_DATA_OBJ) is found too.

use crate::{Sink, Stop};

const SIGNATURE: u32 = 0x223e_9f78;
const ATT_ATTACH_REND_DATA: u32 = 0x0006_9002;
const ATT_ATTACH_DATA: u32 = 0x0006_800f;
const ATT_ATTACH_TITLE: u32 = 0x0001_8010;
const ATT_ATTACHMENT: u32 = 0x0006_9005;
const PR_ATTACH_DATA_OBJ: u16 = 0x3701;
const PR_ATTACH_LONG_FILENAME: u16 = 0x3707;
/// MAPI properties read per attribute: a bound on work for a hostile count.
const MAX_PROPS: u32 = 4096;

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    if u32_at(data, 0) != Some(SIGNATURE) {
        sink.corrupt("tnef: no signature");
        return Ok(());
    }
    let mut att = Attachment::default();
    let mut count = 0;
    let mut p = 6;
    while p < data.len() {
        let (Some(&_level), Some(id), Some(len)) =
            (data.get(p), u32_at(data, p + 1), u32_at(data, p + 5))
        else {
            break;
        };
        let start = p + 9;
        let Some(value) = start
            .checked_add(len as usize)
            .and_then(|end| data.get(start..end))
        else {
            att.flush(sink, &mut count)?;
            sink.corrupt("tnef: attribute runs past the end");
            return Ok(());
        };
        match id {
            ATT_ATTACH_REND_DATA => att.flush(sink, &mut count)?,
            ATT_ATTACH_DATA => att.data = Some(value),
            ATT_ATTACH_TITLE => att.title = cstr(value),
            ATT_ATTACHMENT => mapi(value, &mut att),
            _ => {}
        }
        // value, then a 16-bit checksum
        p = start + value.len() + 2;
    }
    att.flush(sink, &mut count)?;
    // Mailers pad with a line break or NULs; anything else is a cut attribute header.
    let tail = data.get(p..).unwrap_or(&[]);
    if tail.iter().any(|&c| c != 0 && !c.is_ascii_whitespace()) {
        sink.corrupt("tnef: attribute header cut short");
    }
    Ok(())
}

#[derive(Default)]
struct Attachment<'a> {
    data: Option<&'a [u8]>,
    title: Option<String>,
    long_name: Option<String>,
    object: Option<&'a [u8]>,
}

impl<'a> Attachment<'a> {
    fn flush(&mut self, sink: &mut dyn Sink, count: &mut usize) -> Result<(), Stop> {
        let att = std::mem::take(self);
        let name = att
            .long_name
            .or(att.title)
            .and_then(|n| super::mail::sanitize(&n));
        for (data, suffix) in [(att.data, ""), (att.object, ".object")] {
            let Some(data) = data.filter(|d| !d.is_empty()) else {
                continue;
            };
            *count += 1;
            let name = match &name {
                Some(n) => format!("{n}{suffix}"),
                None => format!("attachment-{count}{suffix}"),
            };
            if data.len() as u64 > sink.budget() {
                sink.too_large(&name);
            } else {
                sink.member(&name, data)?;
            }
        }
        Ok(())
    }
}

/// The MAPI properties of an attachment: its long file name and embedded object, if present.
/// A malformed list is read as far as it goes (the attachment data is elsewhere).
fn mapi<'a>(b: &'a [u8], att: &mut Attachment<'a>) {
    let mut r = Reader { b, p: 0 };
    let Some(count) = r.u32() else { return };
    for _ in 0..count.min(MAX_PROPS) {
        let (Some(ty), Some(id)) = (r.u16(), r.u16()) else {
            return;
        };
        if id >= 0x8000 {
            // A named property: GUID, then an id or a length-prefixed name.
            if r.skip(16).is_none() {
                return;
            }
            match r.u32() {
                Some(0) => {
                    if r.skip(4).is_none() {
                        return;
                    }
                }
                Some(1) => {
                    let Some(n) = r.u32() else { return };
                    if r.skip_padded(n).is_none() {
                        return;
                    }
                }
                _ => return,
            }
        }
        let multi = ty & 0x1000 != 0;
        let base = ty & !0x1000;
        let n = if multi || is_variable(base) {
            match r.u32() {
                Some(n) => n.min(MAX_PROPS),
                None => return,
            }
        } else {
            1
        };
        for _ in 0..n {
            if is_variable(base) {
                let Some(len) = r.u32() else { return };
                let Some(v) = r.padded(len) else { return };
                match (id, base) {
                    (PR_ATTACH_LONG_FILENAME, 0x1e) => att.long_name = cstr(v),
                    (PR_ATTACH_LONG_FILENAME, 0x1f) => att.long_name = utf16(v),
                    // An object starts with the interface id it is read through.
                    (PR_ATTACH_DATA_OBJ, 0x0d) => att.object = v.get(16..),
                    (PR_ATTACH_DATA_OBJ, 0x102) => att.object = Some(v),
                    _ => {}
                }
            } else {
                let size = match base {
                    0x05 | 0x06 | 0x07 | 0x14 | 0x40 => 8,
                    0x48 => 16,
                    0x01 => 0,
                    _ => 4,
                };
                if r.skip(size).is_none() {
                    return;
                }
            }
        }
    }
}

fn is_variable(t: u16) -> bool {
    matches!(t, 0x0d | 0x1e | 0x1f | 0x102)
}

struct Reader<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let v = self.b.get(self.p..self.p.checked_add(n)?)?;
        self.p += n;
        Some(v)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    /// `n` bytes, then padding to a multiple of four.
    fn padded(&mut self, n: u32) -> Option<&'a [u8]> {
        let n = n as usize;
        let v = self.take(n)?;
        let pad = (4 - n % 4) % 4;
        self.p = self.p.saturating_add(pad).min(self.b.len());
        Some(v)
    }
    fn skip_padded(&mut self, n: u32) -> Option<()> {
        self.padded(n).map(|_| ())
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

fn u32_at(b: &[u8], p: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(p..p.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn cstr(v: &[u8]) -> Option<String> {
    let end = memchr::memchr(0, v).unwrap_or(v.len());
    Some(String::from_utf8_lossy(&v[..end]).into_owned())
}

fn utf16(v: &[u8]) -> Option<String> {
    let units: Vec<u16> = v
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    Some(String::from_utf16_lossy(&units))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::formats::testsink::Record;

    fn attr(out: &mut Vec<u8>, id: u32, value: &[u8]) {
        out.push(2);
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
        out.extend_from_slice(&[0, 0]);
    }

    fn head() -> Vec<u8> {
        let mut f = SIGNATURE.to_le_bytes().to_vec();
        f.extend_from_slice(&[1, 0]);
        f
    }

    #[test]
    fn attachments_named_by_title_or_long_name() {
        let mut f = head();
        attr(&mut f, ATT_ATTACH_REND_DATA, &[0; 14]);
        attr(&mut f, ATT_ATTACH_DATA, b"first");
        attr(&mut f, ATT_ATTACH_TITLE, b"one.exe\0");
        attr(&mut f, ATT_ATTACH_REND_DATA, &[0; 14]);
        attr(&mut f, ATT_ATTACH_DATA, b"second");
        // MAPI: one property, PT_STRING8 long file name.
        let mut props = 1u32.to_le_bytes().to_vec();
        props.extend_from_slice(&0x1eu16.to_le_bytes());
        props.extend_from_slice(&PR_ATTACH_LONG_FILENAME.to_le_bytes());
        props.extend_from_slice(&1u32.to_le_bytes());
        props.extend_from_slice(&7u32.to_le_bytes());
        props.extend_from_slice(b"two.js\0\0");
        attr(&mut f, ATT_ATTACHMENT, &props);
        let r = Record::run(|s| extract(&f, s));
        assert_eq!(
            r.members,
            vec![
                ("one.exe".to_string(), b"first".to_vec()),
                ("two.js".to_string(), b"second".to_vec())
            ]
        );
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn truncated_is_corrupt() {
        let mut f = head();
        attr(&mut f, ATT_ATTACH_DATA, b"payload");
        f.truncate(f.len() - 4);
        let r = Record::run(|s| extract(&f, s));
        assert!(r.corrupt());
        let r = Record::run(|s| extract(b"\x78\x9f", s));
        assert!(r.corrupt());
    }
}
