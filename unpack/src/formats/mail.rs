//! MIME mail and news (RFC 822/2045): every part of every message, decoded from base64,
//! quoted-printable or uuencode, nested multiparts walked within the one message, and
//! `message/rfc822` parts handed out whole (the caller recurses into them). An mbox holding
//! several messages is split on its `From ` lines. Encodings are decoded leniently, as ClamAV
//! does: a mailer's broken base64 still hides a working attachment.

use memchr::memmem;

use crate::{Sink, Stop};

/// Nesting of multiparts within one message; deeper structure is reported corrupt.
const MAX_DEPTH: usize = 32;
/// Parts (and uuencoded blocks) one mail may yield: a bound on work, not on memory.
const MAX_PARTS: usize = 10_000;

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let mut walk = Walk { sink, parts: 0 };
    for msg in split_mbox(data) {
        walk.entity(msg, 0)?;
    }
    Ok(())
}

struct Walk<'s> {
    sink: &'s mut dyn Sink,
    parts: usize,
}

impl Walk<'_> {
    /// One entity (a message or a part): its headers decide how its body is read.
    fn entity(&mut self, raw: &[u8], depth: usize) -> Result<(), Stop> {
        if self.parts >= MAX_PARTS {
            return Ok(());
        }
        let (headers, body) = split_headers(raw);
        let ctype = headers.get("content-type").map(parse_params);
        let (media, params) = ctype.unwrap_or_else(|| (String::new(), Vec::new()));
        let cte = headers
            .get("content-transfer-encoding")
            .map(|v| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
            .unwrap_or_default();
        let disposition = headers
            .get("content-disposition")
            .map(|v| parse_params(v).1)
            .unwrap_or_default();
        let name = param(&disposition, "filename")
            .or_else(|| param(&params, "name"))
            .and_then(|n| sanitize(&n));

        if media.starts_with("multipart/") {
            if let Some(boundary) = param(&params, "boundary").filter(|b| !b.is_empty()) {
                if depth >= MAX_DEPTH {
                    self.sink.corrupt("mail: multiparts nested too deep");
                    return Ok(());
                }
                for part in split_multipart(body, boundary.as_bytes()) {
                    self.entity(part, depth + 1)?;
                    if self.parts >= MAX_PARTS {
                        self.sink.corrupt("mail: too many parts");
                        break;
                    }
                }
                return Ok(());
            }
        }

        let decoded = match cte.as_str() {
            "base64" => base64_lenient(body),
            "quoted-printable" => quoted_printable(body),
            "x-uuencode" | "uuencode" | "x-uue" => {
                // The whole body is one uuencoded file; the `begin` line names it.
                return self.uu_blocks(body, name.as_deref());
            }
            _ => body.to_vec(),
        };
        if decoded.is_empty() {
            return Ok(());
        }
        // Text may carry uuencoded files inline (old mailers, news): those are the members.
        let textual = media.is_empty() || media.starts_with("text/");
        if textual && name.is_none() && find_uu_begin(&decoded, 0).is_some() {
            return self.uu_blocks(&decoded, None);
        }
        let name = name.unwrap_or_else(|| {
            if media == "message/rfc822" {
                format!("message-{}", self.parts + 1)
            } else {
                format!("part-{}", self.parts + 1)
            }
        });
        self.member(&name, &decoded)
    }

    fn member(&mut self, name: &str, data: &[u8]) -> Result<(), Stop> {
        self.parts += 1;
        // Decoded data is never larger than the mail it came from, so the budget is checked
        // after decoding: memory is already bounded by the input.
        if data.len() as u64 > self.sink.budget() {
            self.sink.too_large(name);
            return Ok(());
        }
        self.sink.member(name, data)
    }

    /// Every `begin MODE NAME` … `end` block in `text`.
    fn uu_blocks(&mut self, text: &[u8], fallback: Option<&str>) -> Result<(), Stop> {
        let mut from = 0;
        while let Some((begin, name)) = find_uu_begin(text, from) {
            if self.parts >= MAX_PARTS {
                break;
            }
            let (data, end, complete) = uudecode(text, begin);
            let name = sanitize(&name)
                .or_else(|| fallback.map(str::to_string))
                .unwrap_or_else(|| format!("part-{}", self.parts + 1));
            if !data.is_empty() {
                self.member(&name, &data)?;
            }
            if !complete {
                self.sink
                    .corrupt(&format!("mail: uuencoded {name} ends early"));
            }
            if end <= from {
                break;
            }
            from = end;
        }
        Ok(())
    }
}

/// The messages of an mbox (lines starting `From ` after a blank line or at the top), or the
/// whole input as one message.
fn split_mbox(data: &[u8]) -> Vec<&[u8]> {
    if !data.starts_with(b"From ") {
        return vec![data];
    }
    let mut starts = vec![0];
    let mut search = 0;
    while let Some(p) = memmem::find(&data[search..], b"\nFrom ") {
        let at = search + p + 1;
        let prev_blank = data[..search + p].ends_with(b"\n") || data[..search + p].ends_with(b"\r");
        if prev_blank {
            starts.push(at);
        }
        search = at;
    }
    starts.push(data.len());
    starts.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// Header fields (lower-case names, folded lines joined) and the body after the blank line.
/// Input that does not open with a header field is all body (a bare uuencoded text, say).
fn split_headers(raw: &[u8]) -> (Headers, &[u8]) {
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    let mut pos = 0;
    let mut first = true;
    while pos < raw.len() {
        let end = memchr::memchr(b'\n', &raw[pos..]).map_or(raw.len(), |e| pos + e + 1);
        let line = trim_eol(&raw[pos..end]);
        if line.is_empty() {
            return (Headers(fields), &raw[end..]);
        }
        if first && line.starts_with(b"From ") {
            // The mbox separator line.
        } else if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = fields.last_mut() {
                last.1.push(b' ');
                last.1.extend_from_slice(trim(line));
            }
        } else if let Some(colon) = header_colon(line) {
            let name = String::from_utf8_lossy(&line[..colon]).to_ascii_lowercase();
            fields.push((name, trim(&line[colon + 1..]).to_vec()));
        } else if first {
            return (Headers(fields), raw);
        } else {
            // A broken header line ends the headers; the rest is body.
            return (Headers(fields), &raw[pos..]);
        }
        first = false;
        pos = end;
    }
    (Headers(fields), &raw[raw.len()..])
}

/// The colon ending a header name (printable, no spaces), if `line` is a header field.
fn header_colon(line: &[u8]) -> Option<usize> {
    let colon = memchr::memchr(b':', line)?;
    (colon > 0 && line[..colon].iter().all(|&c| c.is_ascii_graphic())).then_some(colon)
}

struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// `type/sub; key=value; key="quoted"` → lower-case type and (lower-case key, value) pairs.
/// RFC 2231's `key*=charset''value` is read as `key=value`.
fn parse_params(v: &[u8]) -> (String, Vec<(String, String)>) {
    let s = String::from_utf8_lossy(v);
    let mut items = split_unquoted(&s, ';').into_iter();
    let media = items.next().unwrap_or_default().trim().to_ascii_lowercase();
    let mut params = Vec::new();
    for item in items {
        let Some((k, val)) = item.split_once('=') else {
            continue;
        };
        let key = k.trim().trim_end_matches('*').to_ascii_lowercase();
        let mut val = val.trim().trim_matches('"').to_string();
        if k.trim().ends_with('*') {
            if let Some((_, rest)) = val.split_once("''") {
                val = rest.to_string();
            }
        }
        params.push((key, val));
    }
    (media, params)
}

fn split_unquoted(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in s.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c == sep && !quoted {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

fn param(params: &[(String, String)], key: &str) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

/// A member name from a sender's claim: the last path component, printable, bounded.
pub(crate) fn sanitize(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let clean = clean.trim().to_string();
    (!clean.is_empty() && clean != "." && clean != "..").then_some(clean)
}

/// The parts between `--boundary` lines, up to `--boundary--` (or the end, if it is missing).
fn split_multipart<'a>(body: &'a [u8], boundary: &[u8]) -> Vec<&'a [u8]> {
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(boundary);
    let finder = memmem::Finder::new(&delim);
    let mut parts = Vec::new();
    let mut current: Option<usize> = None;
    let mut search = 0;
    while let Some(p) = finder.find(&body[search..]) {
        let at = search + p;
        search = at + delim.len();
        // A delimiter only counts at the start of a line.
        if at > 0 && body[at - 1] != b'\n' {
            continue;
        }
        if let Some(start) = current {
            parts.push(trim_part_end(&body[start..at]));
        }
        if body[search..].starts_with(b"--") {
            return parts;
        }
        let line_end =
            memchr::memchr(b'\n', &body[search..]).map_or(body.len(), |e| search + e + 1);
        current = Some(line_end);
        search = line_end;
        if parts.len() >= MAX_PARTS {
            return parts;
        }
    }
    if let Some(start) = current {
        parts.push(&body[start..]);
    }
    parts
}

/// A part ends before the line break that precedes the next delimiter.
fn trim_part_end(p: &[u8]) -> &[u8] {
    let p = p.strip_suffix(b"\n").unwrap_or(p);
    p.strip_suffix(b"\r").unwrap_or(p)
}

fn trim_eol(l: &[u8]) -> &[u8] {
    let l = l.strip_suffix(b"\n").unwrap_or(l);
    l.strip_suffix(b"\r").unwrap_or(l)
}

fn trim(l: &[u8]) -> &[u8] {
    let start = l
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(l.len());
    let end = l
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &l[start..end.max(start)]
}

/// Base64 that skips whatever is not in its alphabet (line breaks, a mailer's garbage) and
/// restarts its quantum at padding, so concatenated padded chunks decode too.
pub(crate) fn base64_lenient(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => {
                acc = 0;
                bits = 0;
                continue;
            }
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Quoted-printable: `=XX` escapes and `=` soft line breaks; anything malformed is kept as is.
fn quoted_printable(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c != b'=' {
            out.push(c);
            i += 1;
            continue;
        }
        let rest = &s[i + 1..];
        if rest.starts_with(b"\r\n") {
            i += 3;
        } else if rest.starts_with(b"\n") {
            i += 2;
        } else if let (Some(h), Some(l)) = (
            rest.first().and_then(|&c| hex_val(c)),
            rest.get(1).and_then(|&c| hex_val(c)),
        ) {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

pub(crate) fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The next `begin NNN name` line at or after `from`: (offset after that line, name).
fn find_uu_begin(text: &[u8], from: usize) -> Option<(usize, String)> {
    let mut search = from;
    loop {
        let rest = text.get(search..)?;
        let p = search + memmem::find(rest, b"begin ")?;
        let line_start = p == 0 || text[p - 1] == b'\n';
        let line_end = memchr::memchr(b'\n', &text[p..]).map_or(text.len(), |e| p + e + 1);
        search = line_end.max(p + 1);
        if !line_start {
            continue;
        }
        let line = String::from_utf8_lossy(trim_eol(&text[p + 6..line_end]));
        let mut words = line.splitn(2, ' ');
        let mode = words.next().unwrap_or("");
        if mode.is_empty() || !mode.bytes().all(|c| (b'0'..=b'7').contains(&c)) {
            continue;
        }
        let name = words.next().unwrap_or("").trim().to_string();
        return Some((line_end, name));
    }
}

/// Decodes uuencoded lines from `start` to `end` (or a line that is not uuencode): the data,
/// where reading stopped, and whether the data was terminated (by the zero-length line that
/// precedes `end`, or by `end` itself; some encoders' files lose the `end` line).
fn uudecode(text: &[u8], start: usize) -> (Vec<u8>, usize, bool) {
    let mut out = Vec::new();
    let mut pos = start;
    let mut terminated = false;
    while pos < text.len() {
        let end = memchr::memchr(b'\n', &text[pos..]).map_or(text.len(), |e| pos + e + 1);
        let line = trim_eol(&text[pos..end]);
        pos = end;
        if line == b"end" {
            return (out, pos, true);
        }
        let Some(&first) = line.first() else {
            continue;
        };
        let n = usize::from(first.wrapping_sub(b' ') & 63);
        if n == 0 {
            // The '`' (or ' ') line before `end`.
            terminated = true;
            continue;
        }
        let chars = &line[1..];
        if chars.iter().any(|&c| !(b' '..=b'`').contains(&c)) {
            return (out, pos, terminated);
        }
        let mut line_out = Vec::with_capacity(n + 2);
        for q in chars.chunks(4) {
            let v = |i: usize| u32::from(q.get(i).map_or(0, |c| c.wrapping_sub(b' ') & 63));
            let w = v(0) << 18 | v(1) << 12 | v(2) << 6 | v(3);
            line_out.extend_from_slice(&[(w >> 16) as u8, (w >> 8) as u8, w as u8]);
        }
        line_out.truncate(n);
        out.extend_from_slice(&line_out);
    }
    (out, pos, terminated)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::formats::testsink::Record;

    #[test]
    fn multipart_nested_with_encodings() {
        let mail = b"From: a\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
preamble\r\n--outer\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n\
--inner\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db=\r\nc\r\n\
--inner\r\nContent-Type: application/octet-stream; name=\"x.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\n!!bG8=\r\n\
--inner--\r\n--outer--\r\n";
        let r = Record::run(|s| extract(mail, s));
        assert_eq!(
            r.members,
            vec![
                ("part-1".to_string(), b"hello".to_vec()),
                ("part-2".to_string(), b"a=bc".to_vec()),
                ("x.bin".to_string(), b"hello".to_vec()),
            ]
        );
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn uuencoded_in_text_and_mbox_split() {
        let mbox = b"From a@b Mon\nSubject: one\n\nsee:\nbegin 644 dir/cat.txt\n#8V%T\n`\nend\n\nFrom c@d Tue\nSubject: two\nContent-Type: message/rfc822\n\nSubject: inner\n\nbody\n";
        let r = Record::run(|s| extract(mbox, s));
        assert_eq!(r.members[0], ("cat.txt".to_string(), b"cat".to_vec()));
        assert_eq!(r.members[1].0, "message-2");
        assert!(r.members[1].1.starts_with(b"Subject: inner"));
    }

    #[test]
    fn truncated_uuencode_is_corrupt() {
        let r = Record::run(|s| extract(b"Subject: x\n\nbegin 644 a\n#8V%T\n", s));
        assert_eq!(r.members, vec![("a".to_string(), b"cat".to_vec())]);
        assert!(r.notes.iter().any(|n| n.starts_with("corrupt")));
    }

    #[test]
    fn boundary_with_slash_and_equals() {
        let mail = b"Content-Type: multipart/mixed; boundary=\"MP_/a=b\"\n\n--MP_/a=b\nContent-Type: application/x; name=dir/x.exe\n\nMZ\n--MP_/a=b--\n";
        let r = Record::run(|s| extract(mail, s));
        assert_eq!(r.members, vec![("x.exe".to_string(), b"MZ".to_vec())]);
    }

    #[test]
    fn base64_skips_garbage() {
        assert_eq!(base64_lenient(b"aG*V\nsb G8="), b"hello");
        assert_eq!(base64_lenient(b"aA==aA=="), b"hh");
    }
}
