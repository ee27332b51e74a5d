//! `Range: bytes=...` (RFC 9110 §14). One range is served as 206; several are answered with the
//! whole object (a 200 is always a correct answer to a Range request, and multipart/byteranges
//! buys an updater nothing). A header we cannot parse is ignored, as the RFC asks.

/// What to send for a request's `Range` header against an object of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeReply {
    /// No usable range: the whole object, 200.
    Full,
    /// Bytes `start..=end`, 206.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

pub fn resolve(header: &[u8], len: u64) -> RangeReply {
    let Ok(header) = std::str::from_utf8(header) else {
        return RangeReply::Full;
    };
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeReply::Full; // another unit
    };
    if spec.contains(',') {
        return RangeReply::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeReply::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), last.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => {
            let Some(n) = number(last) else {
                return RangeReply::Full;
            };
            if n == 0 || len == 0 {
                return RangeReply::Unsatisfiable;
            }
            RangeReply::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            }
        }
        // `a-` or `a-b`.
        (false, _) => {
            let Some(start) = number(first) else {
                return RangeReply::Full;
            };
            let end = if last.is_empty() {
                u64::MAX
            } else {
                match number(last) {
                    Some(end) if end >= start => end,
                    _ => return RangeReply::Full, // last < first makes the header invalid
                }
            };
            if start >= len {
                return RangeReply::Unsatisfiable;
            }
            RangeReply::Partial {
                start,
                end: end.min(len - 1),
            }
        }
        (true, true) => RangeReply::Full,
    }
}

/// Digits only; a value beyond u64 saturates, which is past the end of any object.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::{resolve, RangeReply::*};

    fn r(h: &str, len: u64) -> super::RangeReply {
        resolve(h.as_bytes(), len)
    }

    #[test]
    fn ranges() {
        assert_eq!(r("bytes=0-9", 100), Partial { start: 0, end: 9 });
        assert_eq!(r("bytes=90-", 100), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=90-1000", 100), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=-10", 100), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=-1000", 100), Partial { start: 0, end: 99 });
        assert_eq!(r("bytes=99-99", 100), Partial { start: 99, end: 99 });
        assert_eq!(r("bytes=100-", 100), Unsatisfiable);
        assert_eq!(r("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(r("bytes=-0", 100), Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), Unsatisfiable);
        assert_eq!(r("bytes=-5", 0), Unsatisfiable);
        assert_eq!(r("bytes=99999999999999999999999-", 100), Unsatisfiable);
        assert_eq!(
            r("bytes=0-99999999999999999999999", 100),
            Partial { start: 0, end: 99 }
        );
        for ignored in [
            "bytes=5-1",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=",
            "bytes=+1-2",
            "bytes=1",
        ] {
            assert_eq!(r(ignored, 100), Full, "{ignored}");
        }
        assert_eq!(resolve(b"bytes=\xff-1", 100), Full);
    }
}
