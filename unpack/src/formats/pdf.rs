//! PDF: every stream object (`N G obj << … >> stream … endstream`), decoded through its
//! /Filter chain (FlateDecode, ASCIIHexDecode, ASCII85Decode, RunLengthDecode); image and
//! other filters end the chain and the stream is handed out as it stands. Members are named
//! `obj-N`, or an embedded file's /UF or /F name from the file specification that points at it.
//! An /Encrypt dictionary makes every stream unreadable without the key: the whole file is
//! reported encrypted.
//!
//! Objects are found by scanning for their keywords rather than through the cross-reference
//! table: hostile and broken PDFs lie in their xref, and this is how ClamAV reads them too.

use std::collections::HashMap;

use memchr::memmem;

use crate::bounded::{read_bounded, Bounded};
use crate::{Sink, Stop};

/// Streams one PDF may yield: a bound on work.
const MAX_STREAMS: usize = 100_000;
/// How far back from `stream` the object's dictionary may start.
const MAX_DICT: usize = 64 * 1024;

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    if encrypted(data) {
        sink.encrypted("");
        return Ok(());
    }
    let names = embedded_names(data);
    let finder = memmem::Finder::new(b"stream");
    let mut count = 0;
    let mut search = 0;
    while let Some(p) = finder.find(&data[search..]) {
        let kw = search + p;
        // The dictionary is looked for only since the previous keyword, so that the look-back
        // costs at most one pass over the file however many keywords it holds.
        let since = search;
        search = kw + 6;
        if kw >= 3 && &data[kw - 3..kw] == b"end" {
            continue;
        }
        let start = match (data.get(kw + 6), data.get(kw + 7)) {
            (Some(b'\r'), Some(b'\n')) => kw + 8,
            (Some(b'\r' | b'\n'), _) => kw + 7,
            _ => continue,
        };
        let lo = kw.saturating_sub(MAX_DICT).max(since);
        let obj = memmem::rfind(&data[lo..kw], b"obj").map(|o| lo + o);
        let dict = &data[obj.map_or(lo, |o| o + 3)..kw];
        if memmem::find(dict, b"<<").is_none() {
            continue;
        }
        let num = obj.and_then(|o| object_number(data, o));
        let (end, complete) = stream_end(data, dict, start);
        search = end.max(search);
        count += 1;
        let name = num
            .and_then(|n| names.get(&n).cloned())
            .unwrap_or_else(|| match num {
                Some(n) => format!("obj-{n}"),
                None => format!("stream-{count}"),
            });
        decode_and_deliver(sink, &name, dict, &data[start..end])?;
        if !complete {
            sink.corrupt(&format!("pdf: {name} has no endstream"));
        }
        if count >= MAX_STREAMS {
            sink.corrupt("pdf: too many streams");
            break;
        }
    }
    Ok(())
}

/// Where the stream's data ends: by its /Length when that lands on `endstream`, else at the
/// next `endstream` (less the line break before it). Whether `endstream` was found.
fn stream_end(data: &[u8], dict: &[u8], start: usize) -> (usize, bool) {
    let declared = dict_int(dict, b"/Length").and_then(|v| match v {
        Value::Int(n) => Some(n),
        Value::Ref(r) => resolve_int(data, r),
    });
    if let Some(end) = declared.and_then(|n| start.checked_add(usize::try_from(n).ok()?)) {
        if let Some(after) = data.get(end..) {
            let ws = after.iter().take_while(|c| c.is_ascii_whitespace()).count();
            if after[ws..].starts_with(b"endstream") {
                return (end, true);
            }
        }
    }
    match memmem::find(&data[start..], b"endstream") {
        Some(e) => {
            let mut end = start + e;
            if data[..end].ends_with(b"\r\n") {
                end -= 2;
            } else if data[..end].ends_with(b"\n") || data[..end].ends_with(b"\r") {
                end -= 1;
            }
            (end.max(start), true)
        }
        None => (data.len(), false),
    }
}

fn decode_and_deliver(
    sink: &mut dyn Sink,
    name: &str,
    dict: &[u8],
    raw: &[u8],
) -> Result<(), Stop> {
    let budget = sink.budget();
    let mut cur: Vec<u8> = Vec::new();
    let mut decoded = false;
    let mut broken: Option<String> = None;
    for filter in filters(dict) {
        let input: &[u8] = if decoded { &cur } else { raw };
        let got = match filter.as_str() {
            "FlateDecode" | "Fl" => flate(input, budget),
            "ASCIIHexDecode" | "AHx" => Bounded::Whole(ascii_hex(input)),
            "ASCII85Decode" | "A85" => ascii85(input),
            "RunLengthDecode" | "RL" => run_length(input, budget),
            // Images, LZW, Crypt: the stream is scanned as it stands after the known filters.
            _ => break,
        };
        match got {
            Bounded::Whole(v) => cur = v,
            Bounded::Over => {
                sink.too_large(name);
                return Ok(());
            }
            Bounded::Broken(v, e) => {
                cur = v;
                broken = Some(format!("pdf: {name}: {filter}: {e}"));
            }
        }
        decoded = true;
        if broken.is_some() {
            break;
        }
    }
    let out: &[u8] = if decoded { &cur } else { raw };
    if out.len() as u64 > budget {
        sink.too_large(name);
    } else if !out.is_empty() {
        sink.member(name, out)?;
    }
    if let Some(why) = broken {
        sink.corrupt(&why);
    }
    Ok(())
}

/// zlib, and raw deflate for writers that omit the zlib header; a bad checksum or a
/// truncated stream keeps what decoded.
fn flate(input: &[u8], budget: u64) -> Bounded {
    match read_bounded(flate2::read::ZlibDecoder::new(input), budget) {
        Bounded::Broken(v, _) if v.is_empty() => {
            read_bounded(flate2::read::DeflateDecoder::new(input), budget)
        }
        // Writers that get the Adler-32 wrong are common; the data before it is fine.
        Bounded::Broken(v, e) if e.to_string().contains("checksum") => Bounded::Whole(v),
        other => other,
    }
}

fn ascii_hex(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 2);
    let mut hi: Option<u8> = None;
    for &c in input {
        if c == b'>' {
            break;
        }
        let Some(v) = super::mail::hex_val(c) else {
            continue;
        };
        match hi.take() {
            Some(h) => out.push(h << 4 | v),
            None => hi = Some(v),
        }
    }
    if let Some(h) = hi {
        out.push(h << 4);
    }
    out
}

fn ascii85(input: &[u8]) -> Bounded {
    let mut out = Vec::with_capacity(input.len() / 5 * 4);
    let mut group = [0u8; 5];
    let mut n = 0;
    let body = input.strip_prefix(b"<~").unwrap_or(input);
    for &c in body {
        match c {
            b'~' => break,
            b'z' if n == 0 => out.extend_from_slice(&[0; 4]),
            b'!'..=b'u' => {
                group[n] = c - b'!';
                n += 1;
                if n == 5 {
                    match a85_word(&group) {
                        Some(w) => out.extend_from_slice(&w.to_be_bytes()),
                        None => {
                            let e = std::io::Error::other("ASCII85 group out of range");
                            return Bounded::Broken(out, e);
                        }
                    }
                    n = 0;
                }
            }
            c if c.is_ascii_whitespace() => {}
            _ => return Bounded::Broken(out, std::io::Error::other("bad ASCII85 character")),
        }
    }
    if n > 1 {
        let mut g = [84u8; 5];
        g[..n].copy_from_slice(&group[..n]);
        if let Some(w) = a85_word(&g) {
            out.extend_from_slice(&w.to_be_bytes()[..n - 1]);
        }
    }
    Bounded::Whole(out)
}

fn a85_word(g: &[u8; 5]) -> Option<u32> {
    let v = g.iter().fold(0u64, |acc, &d| acc * 85 + u64::from(d));
    u32::try_from(v).ok()
}

fn run_length(input: &[u8], budget: u64) -> Bounded {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&len) = input.get(i) {
        i += 1;
        match len {
            128 => break,
            0..=127 => {
                let n = usize::from(len) + 1;
                let Some(lit) = input.get(i..i + n) else {
                    let rest = input.get(i..).unwrap_or(&[]);
                    out.extend_from_slice(rest);
                    return Bounded::Broken(out, std::io::Error::other("run cut short"));
                };
                out.extend_from_slice(lit);
                i += n;
            }
            _ => {
                let Some(&b) = input.get(i) else {
                    return Bounded::Broken(out, std::io::Error::other("run cut short"));
                };
                i += 1;
                out.extend(std::iter::repeat_n(b, 257 - usize::from(len)));
            }
        }
        if out.len() as u64 > budget {
            return Bounded::Over;
        }
    }
    Bounded::Whole(out)
}

/// The names in the dictionary's /Filter (one name or an array), in order.
fn filters(dict: &[u8]) -> Vec<String> {
    let Some(at) = key_pos(dict, b"/Filter") else {
        return Vec::new();
    };
    let rest = skip_ws(&dict[at..]);
    let list: &[u8] = if let Some(r) = rest.strip_prefix(b"[") {
        &r[..memchr::memchr(b']', r).unwrap_or(r.len())]
    } else {
        let end = rest
            .iter()
            .skip(1)
            .position(|&c| is_delimiter(c))
            .map_or(rest.len(), |e| e + 1);
        &rest[..end]
    };
    list.split(|&c| c == b'/' || c.is_ascii_whitespace())
        .filter(|n| !n.is_empty())
        .take(16)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

enum Value {
    Int(u64),
    Ref(u64),
}

/// An integer or an indirect reference (`N G R`) after `key` in `dict`.
fn dict_int(dict: &[u8], key: &[u8]) -> Option<Value> {
    let at = key_pos(dict, key)?;
    let rest = skip_ws(&dict[at..]);
    let (n, rest) = int(rest)?;
    if let Some((_, r)) = int(skip_ws(rest)) {
        if skip_ws(r).starts_with(b"R") {
            return Some(Value::Ref(n));
        }
    }
    Some(Value::Int(n))
}

/// The offset just after `key` where it appears as a whole name (`/Length`, not `/Length1`).
fn key_pos(dict: &[u8], key: &[u8]) -> Option<usize> {
    let mut search = 0;
    while let Some(p) = memmem::find(&dict[search..], key) {
        let end = search + p + key.len();
        if dict.get(end).is_none_or(|&c| is_delimiter(c)) {
            return Some(end);
        }
        search = end;
    }
    None
}

fn is_delimiter(c: u8) -> bool {
    c.is_ascii_whitespace() || b"/[]<>()%{}".contains(&c)
}

fn skip_ws(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn int(b: &[u8]) -> Option<(u64, &[u8])> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 18 {
        return None;
    }
    let v = std::str::from_utf8(&b[..n]).ok()?.parse().ok()?;
    Some((v, &b[n..]))
}

/// The object number before an `obj` keyword at `o` (`12 0 obj`).
fn object_number(data: &[u8], o: usize) -> Option<u64> {
    let before = &data[o.saturating_sub(32)..o];
    let words: Vec<&[u8]> = before
        .split(|c| c.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    let n = words.len();
    let gen = words.get(n.checked_sub(1)?)?;
    let num = words.get(n.checked_sub(2)?)?;
    int(gen)?;
    let (v, rest) = int(num)?;
    rest.is_empty().then_some(v)
}

/// The integer that indirect object `num` holds (`13 0 obj 334 endobj`).
fn resolve_int(data: &[u8], num: u64) -> Option<u64> {
    let pattern = format!("{num} 0 obj");
    let mut search = 0;
    while let Some(p) = memmem::find(&data[search..], pattern.as_bytes()) {
        let at = search + p;
        search = at + pattern.len();
        if at > 0 && data[at - 1].is_ascii_digit() {
            continue;
        }
        return int(skip_ws(&data[search..])).map(|(v, _)| v);
    }
    None
}

/// Embedded files' names: each file specification's /UF or /F string, keyed by the stream
/// object its /EF dictionary points at.
fn embedded_names(data: &[u8]) -> HashMap<u64, String> {
    let mut names = HashMap::new();
    let mut search = 0;
    let mut next_endobj = 0;
    while let Some(p) = memmem::find(&data[search..], b"/EF") {
        let at = search + p;
        let since = search;
        search = at + 3;
        if names.len() >= MAX_STREAMS {
            break;
        }
        // The look-back stops at the previous /EF, so many /EF keywords cost linear time.
        let lo = at.saturating_sub(MAX_DICT).max(since);
        let obj_start = memmem::rfind(&data[lo..at], b"obj").map_or(lo, |o| lo + o);
        if next_endobj < at {
            // Searched again only once passed, so the forward searches add up to one pass.
            next_endobj = memmem::find(&data[at..], b"endobj").map_or(data.len(), |e| at + e);
        }
        let obj_end = next_endobj.min(at.saturating_add(MAX_DICT));
        let spec = &data[obj_start..obj_end];
        let rest = skip_ws(&data[search..]);
        let Some(rest) = rest.strip_prefix(b"<<") else {
            continue;
        };
        let rest = &rest[..memmem::find(rest, b">>").unwrap_or(rest.len())];
        let target = dict_int(rest, b"/F").or_else(|| dict_int(rest, b"/UF"));
        let Some(Value::Ref(target)) = target else {
            continue;
        };
        let name = string_after(spec, b"/UF").or_else(|| string_after(spec, b"/F"));
        if let Some(name) = name.and_then(|n| super::mail::sanitize(&n)) {
            names.insert(target, name);
        }
    }
    names
}

/// A literal string `(…)` directly after `key`, decoded (escapes, UTF-16BE with its BOM).
fn string_after(dict: &[u8], key: &[u8]) -> Option<String> {
    let mut search = 0;
    while let Some(p) = memmem::find(&dict[search..], key) {
        let end = search + p + key.len();
        search = end;
        if !dict
            .get(end)
            .is_some_and(|&c| c == b'(' || c.is_ascii_whitespace())
        {
            continue;
        }
        let Some(body) = skip_ws(&dict[end..]).strip_prefix(b"(") else {
            continue;
        };
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut it = body.iter().take(1024);
        while let Some(&c) = it.next() {
            match c {
                b'\\' => {
                    if let Some(&e) = it.next() {
                        out.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            other => other,
                        });
                    }
                }
                b'(' => {
                    depth += 1;
                    out.push(c);
                }
                b')' if depth == 0 => break,
                b')' => {
                    depth -= 1;
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
        return Some(match out.strip_prefix(b"\xfe\xff") {
            Some(u) => {
                let units: Vec<u16> = u
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16_lossy(&units)
            }
            None => String::from_utf8_lossy(&out).into_owned(),
        });
    }
    None
}

/// An /Encrypt entry in a trailer or cross-reference stream dictionary (a reference or an
/// inline dictionary), not the word in some text.
fn encrypted(data: &[u8]) -> bool {
    let mut search = 0;
    while let Some(p) = memmem::find(&data[search..], b"/Encrypt") {
        let end = search + p + 8;
        search = end;
        let rest = skip_ws(&data[end..]);
        if rest.starts_with(b"<<") {
            return true;
        }
        if let Some((_, r)) = int(rest) {
            if let Some((_, r)) = int(skip_ws(r)) {
                if skip_ws(r).starts_with(b"R") {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::formats::testsink::Record;
    use std::io::Write;

    fn zlib(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn filters_lengths_and_embedded_names() {
        let z = zlib(b"inner payload");
        let mut pdf =
            b"%PDF-1.4\n1 0 obj\n<< /Length 5 >>\nstream\nhello\nendstream\nendobj\n".to_vec();
        pdf.extend_from_slice(
            b"2 0 obj\n<< /Length 3 0 R /Filter /FlateDecode /Type /EmbeddedFile >>\nstream\n",
        );
        pdf.extend_from_slice(&z);
        pdf.extend_from_slice(
            format!("\nendstream\nendobj\n3 0 obj\n{}\nendobj\n", z.len()).as_bytes(),
        );
        pdf.extend_from_slice(
            b"4 0 obj\n<< /Type /Filespec /F (dir/evil.exe) /EF << /F 2 0 R >> >>\nendobj\n",
        );
        pdf.extend_from_slice(b"5 0 obj\n<< /Filter [/AHx /A85] >>\nstream\n3c7e3c2b5c3d5c4040407e3e>\nendstream\nendobj\n");
        let r = Record::run(|s| extract(&pdf, s));
        assert_eq!(r.members[0], ("obj-1".to_string(), b"hello".to_vec()));
        assert_eq!(
            r.members[1],
            ("evil.exe".to_string(), b"inner payload".to_vec())
        );
        assert_eq!(r.members[2].0, "obj-5");
        assert_eq!(
            ascii85(b"<~87cURD]i,\"Ebo80~>").into_whole(),
            b"Hello World!"
        );
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    impl Bounded {
        fn into_whole(self) -> Vec<u8> {
            match self {
                Bounded::Whole(v) => v,
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn truncated_flate_keeps_what_decoded() {
        let body: Vec<u8> = (0..20000u32).flat_map(|i| i.to_le_bytes()).collect();
        let z = zlib(&body);
        let mut pdf = b"%PDF-1.4\n7 0 obj\n<< /Filter /FlateDecode >>\nstream\n".to_vec();
        pdf.extend_from_slice(&z[..z.len() / 2]);
        let r = Record::run(|s| extract(&pdf, s));
        assert_eq!(r.members.len(), 1);
        assert!(body.starts_with(&r.members[0].1) && !r.members[0].1.is_empty());
        assert!(r.corrupt());
    }

    #[test]
    fn many_keywords_cost_linear_time() {
        // 300,000 `stream` keywords with no object before them: the dictionary look-back must
        // not rescan 64 KiB for each.
        let mut pdf = b"%PDF-1.4\n".to_vec();
        pdf.extend_from_slice(&vec![b' '; 64 * 1024]);
        pdf.extend_from_slice(&b"stream\n/EF ".repeat(300_000));
        let t = std::time::Instant::now();
        let r = Record::run(|s| extract(&pdf, s));
        assert!(r.members.is_empty());
        assert!(
            t.elapsed() < std::time::Duration::from_secs(3),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn encrypted_is_reported() {
        let pdf =
            b"%PDF-1.4\n1 0 obj\n<<>>\nstream\nxx\nendstream\ntrailer\n<< /Encrypt 9 0 R >>\n";
        let r = Record::run(|s| extract(pdf, s));
        assert!(r.members.is_empty());
        assert_eq!(r.notes, vec!["encrypted "]);
    }

    #[test]
    fn flate_bomb_is_too_large() {
        let z = zlib(&vec![0u8; 1 << 20]);
        let mut pdf = b"%PDF-1.4\n1 0 obj\n<< /Filter /FlateDecode >>\nstream\n".to_vec();
        pdf.extend_from_slice(&z);
        pdf.extend_from_slice(b"\nendstream\n");
        let r = Record::with_budget(1000, |s| extract(&pdf, s));
        assert_eq!(r.notes, vec!["too large obj-1"]);
    }
}
