//! `s3://bucket/key` names: parsing what the user typed, printing what was scanned, and the
//! percent-encoding CopyObject's source header needs.

use std::fmt;

use crate::error::S3ScanError;

/// A bucket and a key (or a key prefix, for listings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub key: String,
}

impl S3Url {
    /// Parses `s3://BUCKET`, `s3://BUCKET/` or `s3://BUCKET/PREFIX`.
    pub fn parse(s: &str) -> Result<S3Url, S3ScanError> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| S3ScanError::BadUrl(s.to_owned()))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's own bucket-name rules: 3-63 lowercase letters, digits, dots and hyphens.
        let ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !ok {
            return Err(S3ScanError::BadUrl(s.to_owned()));
        }
        Ok(S3Url {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    pub fn new(bucket: &str, key: &str) -> S3Url {
        S3Url {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// `bucket/key[?versionId=v]` for CopyObject's `x-amz-copy-source`: the key percent-encoded
/// (every byte but unreserved characters and `/`), as S3 requires.
pub fn copy_source(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    let mut s = format!("{bucket}/{}", encode(key, true));
    if let Some(v) = version_id {
        s.push_str("?versionId=");
        s.push_str(&encode(v, false));
    }
    s
}

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            S3Url::parse("s3://my-bucket/up/loads").ok(),
            Some(S3Url::new("my-bucket", "up/loads"))
        );
        assert_eq!(
            S3Url::parse("s3://my-bucket").ok(),
            Some(S3Url::new("my-bucket", ""))
        );
        for bad in [
            "/tmp/x",
            "s3://",
            "s3://A_B/x",
            "s3://ab/x",
            "http://bucket/x",
        ] {
            assert!(S3Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn copy_source_encodes_the_key() {
        assert_eq!(
            copy_source("b", "dir/a b+c&ü.exe", Some("v/1")),
            "b/dir/a%20b%2Bc%26%C3%BC.exe?versionId=v%2F1"
        );
    }
}
