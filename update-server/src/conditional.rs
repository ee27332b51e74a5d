//! Conditional requests (RFC 9110 §13): `If-None-Match` (weak comparison, lists, `*`),
//! `If-Modified-Since` (only without `If-None-Match`), and `If-Range` (strong comparison).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE};
use axum::http::{HeaderMap, HeaderValue};

/// True when the client's copy is current and a 304 is the answer.
pub fn not_modified(
    headers: &HeaderMap,
    etag: Option<&HeaderValue>,
    last_modified: Option<SystemTime>,
) -> bool {
    let mut inm = headers.get_all(IF_NONE_MATCH).iter().peekable();
    if inm.peek().is_some() {
        let Some(etag) = etag else { return false };
        return inm.any(|v| list_matches_weak(v.as_bytes(), etag.as_bytes()));
    }
    match (headers.get(IF_MODIFIED_SINCE), last_modified) {
        (Some(since), Some(modified)) => {
            let Some(since) = since.to_str().ok().and_then(parse_date) else {
                return false;
            };
            // HTTP dates have whole seconds; a file modified within the second is not newer.
            truncate(modified) <= since
        }
        _ => false,
    }
}

/// False when `If-Range` is present and no longer describes the object: send it whole.
pub fn range_allowed(
    headers: &HeaderMap,
    etag: Option<&HeaderValue>,
    last_modified: Option<&HeaderValue>,
) -> bool {
    let Some(cond) = headers.get(IF_RANGE) else {
        return true;
    };
    let cond = cond.as_bytes();
    if cond.starts_with(b"\"") {
        // Strong comparison: both strong and byte-identical.
        etag.is_some_and(|e| !e.as_bytes().starts_with(b"W/") && e.as_bytes() == cond)
    } else if cond.starts_with(b"W/") {
        false
    } else {
        last_modified.is_some_and(|lm| lm.as_bytes() == cond)
    }
}

/// Does an `If-None-Match` field value (`*` or a list of entity tags) match `etag`, comparing
/// weakly (the `W/` prefixes are ignored)?
fn list_matches_weak(list: &[u8], etag: &[u8]) -> bool {
    let ours = opaque(etag);
    let mut rest = list;
    loop {
        rest = trim_start(rest, |b| b == b' ' || b == b'\t' || b == b',');
        if rest.is_empty() {
            return false;
        }
        if rest[0] == b'*' {
            return true;
        }
        if rest.starts_with(b"W/") {
            rest = &rest[2..];
        }
        if rest.first() != Some(&b'"') {
            return false; // malformed: stop rather than guess
        }
        let Some(close) = rest[1..].iter().position(|&b| b == b'"') else {
            return false;
        };
        let tag = &rest[..close + 2];
        if tag == ours {
            return true;
        }
        rest = &rest[close + 2..];
    }
}

fn opaque(etag: &[u8]) -> &[u8] {
    etag.strip_prefix(b"W/").unwrap_or(etag)
}

fn trim_start(s: &[u8], skip: impl Fn(u8) -> bool) -> &[u8] {
    let n = s.iter().take_while(|&&b| skip(b)).count();
    &s[n..]
}

fn parse_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s).ok()
}

fn truncate(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn if_none_match() {
        let e = HeaderValue::from_static("\"abc\"");
        let e = Some(&e);
        assert!(not_modified(&h(&[("if-none-match", "\"abc\"")]), e, None));
        assert!(not_modified(&h(&[("if-none-match", "W/\"abc\"")]), e, None));
        assert!(not_modified(
            &h(&[("if-none-match", "\"x\", W/\"abc\"")]),
            e,
            None
        ));
        assert!(not_modified(&h(&[("if-none-match", "*")]), e, None));
        assert!(not_modified(
            &h(&[("if-none-match", "\"x\""), ("if-none-match", "\"abc\"")]),
            e,
            None
        ));
        assert!(!not_modified(&h(&[("if-none-match", "\"abcd\"")]), e, None));
        assert!(!not_modified(&h(&[("if-none-match", "abc")]), e, None));
        assert!(!not_modified(&h(&[("if-none-match", "\"abc")]), e, None));
        assert!(!not_modified(&h(&[]), e, None));
        // If-None-Match wins over If-Modified-Since.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(!not_modified(
            &h(&[
                ("if-none-match", "\"zzz\""),
                ("if-modified-since", "Sun, 06 Nov 2044 08:49:37 GMT")
            ]),
            e,
            Some(t)
        ));
        assert!(not_modified(
            &h(&[("if-modified-since", "Sun, 06 Nov 2044 08:49:37 GMT")]),
            e,
            Some(t)
        ));
        assert!(!not_modified(
            &h(&[("if-modified-since", "Sun, 06 Nov 1960 08:49:37 GMT")]),
            e,
            Some(t)
        ));
    }

    #[test]
    fn if_range() {
        let e = HeaderValue::from_static("\"abc\"");
        let lm = HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT");
        let ok = |hs| range_allowed(&hs, Some(&e), Some(&lm));
        assert!(ok(h(&[])));
        assert!(ok(h(&[("if-range", "\"abc\"")])));
        assert!(!ok(h(&[("if-range", "\"abd\"")])));
        assert!(!ok(h(&[("if-range", "W/\"abc\"")])));
        assert!(ok(h(&[("if-range", "Sun, 06 Nov 1994 08:49:37 GMT")])));
        assert!(!ok(h(&[("if-range", "Sun, 06 Nov 1994 08:49:38 GMT")])));
    }
}
