//! HTML: files smuggled inline as `data:` URIs (`href="data:application/octet-stream;base64,
//! TVqQ…"`, in any attribute or style), each decoded and handed out as `data-N`. The page's
//! own text is scanned by the caller as it is.

use memchr::memmem;

use crate::{Sink, Stop};

/// data: URIs one page may yield: a bound on work.
const MAX_URIS: usize = 10_000;

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let finder = memmem::Finder::new(b"data:");
    let mut n = 0;
    let mut search = 0;
    while let Some(p) = finder.find(&data[search..]) {
        let start = search + p + 5;
        search = start;
        // The media type and parameters: up to the comma, short and on one line.
        let head_end = data[start..]
            .iter()
            .take(256)
            .position(|&c| c == b',' || c == b'"' || c == b'\'' || c == b'\n' || c == b'>');
        let Some(comma) = head_end.filter(|&e| data.get(start + e) == Some(&b',')) else {
            continue;
        };
        let head = data[start..start + comma].to_ascii_lowercase();
        if !head.ends_with(b";base64") {
            continue;
        }
        let body_start = start + comma + 1;
        let body_len = data[body_start..]
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || b"+/=-_ \t\r\n%".contains(&c)))
            .unwrap_or(data.len() - body_start);
        let body = &data[body_start..body_start + body_len];
        search = body_start + body_len;
        let decoded = super::mail::base64_lenient(&percent_decoded(body));
        if decoded.is_empty() {
            continue;
        }
        n += 1;
        let name = format!("data-{n}");
        if decoded.len() as u64 > sink.budget() {
            sink.too_large(&name);
        } else {
            sink.member(&name, &decoded)?;
        }
        if n >= MAX_URIS {
            break;
        }
    }
    Ok(())
}

/// URIs may percent-encode base64's `+`, `/` and `=`.
fn percent_decoded(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |k: usize| b.get(k).and_then(|&c| super::mail::hex_val(c));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::formats::testsink::Record;

    #[test]
    fn base64_data_uris_only() {
        let page = b"<a href=\"data:application/x;base64,aGVs%2FbG8=\">x</a>\
<img src='data:text/plain,hello'><div style=\"background:url(data:image/png;BASE64,aGk=)\">";
        let r = Record::run(|s| extract(page, s));
        assert_eq!(
            r.members,
            vec![
                ("data-1".to_string(), base64_check(b"aGVs/bG8=")),
                ("data-2".to_string(), b"hi".to_vec())
            ]
        );
    }

    fn base64_check(s: &[u8]) -> Vec<u8> {
        super::super::mail::base64_lenient(s)
    }

    #[test]
    fn truncated_uri_does_not_panic() {
        for page in [
            &b"data:"[..],
            b"data:;base64,",
            b"<a href=\"data:x;base64,aGVsbG8",
        ] {
            let r = Record::run(|s| extract(page, s));
            assert!(r.members.len() <= 1);
        }
        let r = Record::with_budget(2, |s| extract(b"data:x;base64,aGVsbG8=", s));
        assert_eq!(r.notes, vec!["too large data-1"]);
    }
}
