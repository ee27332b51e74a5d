//! RTF: embedded objects (`{\object … {\*\objdata HEX}}`) and raw `\bin N` data. The objdata
//! hex is an OLE1 object: its native data is handed out, an OLE2 file for most classes (the
//! caller then unpacks its streams), or for the `Package` class the packaged file itself,
//! named by its label. Control words and whitespace inside the hex are skipped, as Word does.

use memchr::memmem;

use crate::{Sink, Stop};

/// Objects and \bin blocks one document may yield: a bound on work.
const MAX_OBJECTS: usize = 10_000;

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let mut n = 0;
    let mut search = 0;
    // Where the objdata groups lie: \bin data inside them was handed out with the object.
    let mut groups = Vec::new();
    while let Some(p) = memmem::find(&data[search..], b"\\objdata") {
        let start = search + p + 8;
        let (hex, end, closed) = objdata(data, start, sink.budget());
        search = end.max(start);
        groups.push((start, search));
        n += 1;
        let fallback = format!("object-{n}");
        match hex {
            None => sink.too_large(&fallback),
            Some(bytes) if !bytes.is_empty() => match ole1(&bytes) {
                Some(Ole1 { class, native }) if class.eq_ignore_ascii_case("package") => {
                    match super::ole2::package(native) {
                        Some((label, file)) => {
                            let name =
                                super::mail::sanitize(&label).unwrap_or_else(|| fallback.clone());
                            sink.member(&name, file)?;
                        }
                        None => sink.member(&fallback, native)?,
                    }
                }
                Some(Ole1 { native, .. }) => sink.member(&fallback, native)?,
                // Not OLE1: some writers put the OLE2 file (or anything) there directly.
                None => sink.member(&fallback, &bytes)?,
            },
            Some(_) => {}
        }
        if !closed {
            sink.corrupt(&format!("rtf: {fallback} is cut short"));
        }
        if n >= MAX_OBJECTS {
            return Ok(());
        }
    }
    bins(data, &groups, sink)
}

/// The bytes of the objdata group starting at `start` (hex pairs; `\bin N` raw bytes), where
/// the group ends, and whether its closing brace was found. `None` past `budget`.
fn objdata(data: &[u8], start: usize, budget: u64) -> (Option<Vec<u8>>, usize, bool) {
    let mut out = Vec::new();
    let mut hi: Option<u8> = None;
    let mut depth = 0usize;
    let mut i = start;
    while i < data.len() {
        let c = data[i];
        i += 1;
        match c {
            b'{' => depth += 1,
            b'}' if depth == 0 => return (Some(out), i, true),
            b'}' => depth -= 1,
            b'\\' => {
                let (word, param, next) = control_word(data, i);
                i = next;
                if word == b"bin" {
                    let n = param.unwrap_or(0).max(0) as usize;
                    let raw = data
                        .get(i..i.saturating_add(n).min(data.len()))
                        .unwrap_or(&[]);
                    out.extend_from_slice(raw);
                    i += raw.len();
                }
            }
            _ => {
                if let Some(v) = super::mail::hex_val(c) {
                    match hi.take() {
                        Some(h) => out.push(h << 4 | v),
                        None => hi = Some(v),
                    }
                }
            }
        }
        if out.len() as u64 > budget {
            return (None, i, true);
        }
    }
    (Some(out), data.len(), false)
}

/// A control word after its backslash: letters, an optional signed number, and the one space
/// that ends it. Control symbols (`\'`, `\*`) are one character.
fn control_word(data: &[u8], mut i: usize) -> (&[u8], Option<i64>, usize) {
    let start = i;
    while data.get(i).is_some_and(u8::is_ascii_alphabetic) && i - start < 32 {
        i += 1;
    }
    if i == start {
        return (&[], None, (i + 1).min(data.len()));
    }
    let word = &data[start..i];
    let num_start = i;
    if data.get(i) == Some(&b'-') {
        i += 1;
    }
    while data.get(i).is_some_and(u8::is_ascii_digit) && i - num_start < 10 {
        i += 1;
    }
    let param = std::str::from_utf8(&data[num_start..i])
        .ok()
        .and_then(|s| s.parse().ok());
    if data.get(i) == Some(&b' ') {
        i += 1;
    }
    (word, param, i)
}

struct Ole1<'a> {
    class: String,
    native: &'a [u8],
}

/// An OLE1 ObjectHeader (version, format id 2 = embedded, class, topic and item names) and
/// its native data, clipped to what is there.
fn ole1(b: &[u8]) -> Option<Ole1<'_>> {
    use super::ole2::u32_at;
    if u32_at(b, 4)? != 2 {
        return None;
    }
    let mut p = 8;
    let mut class = String::new();
    for i in 0..3 {
        let len = u32_at(b, p)? as usize;
        if len > 4096 {
            return None;
        }
        let s = b.get(p + 4..p + 4 + len)?;
        if i == 0 {
            let end = memchr::memchr(0, s).unwrap_or(s.len());
            class = String::from_utf8_lossy(&s[..end]).into_owned();
        }
        p += 4 + len;
    }
    let size = u32_at(b, p)? as usize;
    let start = p + 4;
    let end = start.checked_add(size)?.min(b.len());
    Some(Ole1 {
        class,
        native: b.get(start..end)?,
    })
}

/// `\bin N` outside objdata: N raw bytes, handed out as `bin-K`.
fn bins(data: &[u8], groups: &[(usize, usize)], sink: &mut dyn Sink) -> Result<(), Stop> {
    let mut k = 0;
    let mut search = 0;
    while let Some(p) = memmem::find(&data[search..], b"\\bin") {
        let at = search + p;
        let (word, param, next) = control_word(data, at + 1);
        search = next.max(at + 4);
        // `groups` is in file order and does not overlap.
        let i = groups.partition_point(|&(_, end)| end <= at);
        let inside = groups.get(i).is_some_and(|&(start, _)| start <= at);
        if word != b"bin" || inside {
            continue;
        }
        let Some(n) = param.filter(|&n| n > 0).map(|n| n as usize) else {
            continue;
        };
        k += 1;
        let name = format!("bin-{k}");
        let end = next.saturating_add(n);
        if n as u64 > sink.budget() {
            sink.too_large(&name);
        } else if let Some(raw) = data.get(next..end) {
            sink.member(&name, raw)?;
            search = end;
        } else {
            sink.member(&name, &data[next..])?;
            sink.corrupt(&format!("rtf: {name} is cut short"));
            return Ok(());
        }
        if k >= MAX_OBJECTS {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::formats::testsink::Record;

    fn ole1_hex(class: &str, native: &[u8]) -> String {
        let mut b = 0x0501u32.to_le_bytes().to_vec();
        b.extend_from_slice(&2u32.to_le_bytes());
        let mut c = class.as_bytes().to_vec();
        c.push(0);
        b.extend_from_slice(&(c.len() as u32).to_le_bytes());
        b.extend_from_slice(&c);
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&(native.len() as u32).to_le_bytes());
        b.extend_from_slice(native);
        hex::encode(b)
    }

    #[test]
    fn package_and_ole2_objects_and_bin() {
        let mut pkg = 2u16.to_le_bytes().to_vec();
        pkg.extend_from_slice(b"a.exe\0C:\\a.exe\0\0\0\x03\0");
        pkg.extend_from_slice(&0u32.to_le_bytes());
        pkg.extend_from_slice(&3u32.to_le_bytes());
        pkg.extend_from_slice(b"MZ!");
        let h = ole1_hex("Package", &pkg);
        let (a, b) = h.split_at(20);
        let rtf = format!(
            "{{\\rtf1{{\\object\\objemb{{\\*\\objdata {a}\r\n\\par {b}}}}}\
{{\\object{{\\*\\objdata {}}}}} {{\\pict\\bin3 xyz}}}}",
            ole1_hex("Word.Document.8", b"\xd0\xcf\x11\xe0")
        );
        let r = Record::run(|s| extract(rtf.as_bytes(), s));
        assert_eq!(
            r.members,
            vec![
                ("a.exe".to_string(), b"MZ!".to_vec()),
                ("object-2".to_string(), b"\xd0\xcf\x11\xe0".to_vec()),
                ("bin-1".to_string(), b"xyz".to_vec()),
            ]
        );
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn truncated_is_corrupt() {
        let r = Record::run(|s| extract(b"{\\rtf1{\\object{\\*\\objdata 0105000002", s));
        assert!(r.corrupt());
        let r = Record::run(|s| extract(b"{\\rtf1 \\bin99999 ab", s));
        assert!(r.corrupt());
        let r = Record::with_budget(2, |s| extract(b"{\\*\\objdata 414243}", s));
        assert_eq!(r.notes, vec!["too large object-1"]);
    }
}
