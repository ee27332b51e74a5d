//! The SQS message bodies the worker understands, parsed into the object versions to scan:
//!
//! - S3's own notifications (`{"Records": [{"eventSource": "aws:s3", "eventName":
//!   "ObjectCreated:Put", "s3": {"bucket": {"name"}, "object": {"key", "versionId",
//!   "eTag"}}}]}`), whose keys are URL-encoded with `+` for a space;
//! - `s3:TestEvent`, which S3 sends when a notification is configured: ignored;
//! - EventBridge events delivered to SQS (`{"detail-type": "Object Created", "source":
//!   "aws.s3", "detail": {"bucket": {"name"}, "object": {"key", "version-id", "etag"}}}`),
//!   whose keys are sent as they are.
//!
//! Other events (deletions, an SNS envelope, anything else) are refused with a reason: the
//! worker logs it and deletes the message, since retrying cannot make it readable.

use serde_json::Value;

/// One object version an event names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// The key as stored (decoded).
    pub key: String,
    pub version_id: Option<String>,
    pub etag: Option<String>,
}

impl ObjectRef {
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// What a message asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Scan these object versions.
    Objects(Vec<ObjectRef>),
    /// Nothing to scan (a test event, an event that is not an object creation).
    Ignore(&'static str),
}

/// Why a message body cannot be understood.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an S3 event notification: {0}")]
pub struct BadMessage(pub String);

/// Bodies larger than this are refused unread (S3's own are a few KiB; SQS allows 256 KiB).
const MAX_BODY: usize = 256 << 10;

/// Parses one SQS message body.
pub fn parse(body: &str) -> Result<Parsed, BadMessage> {
    if body.len() > MAX_BODY {
        return Err(BadMessage(format!("{} bytes", body.len())));
    }
    let v: Value = serde_json::from_str(body).map_err(|e| BadMessage(format!("JSON: {e}")))?;
    if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Parsed::Ignore("s3:TestEvent"));
    }
    if let Some(records) = v.get("Records") {
        return native(records);
    }
    if v.get("detail-type").is_some() {
        return eventbridge(&v);
    }
    if v.get("Type").and_then(Value::as_str) == Some("Notification") {
        return Err(BadMessage(
            "an SNS envelope: enable raw message delivery on the subscription".into(),
        ));
    }
    Err(BadMessage(
        "neither Records (S3) nor detail-type (EventBridge)".into(),
    ))
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn native(records: &Value) -> Result<Parsed, BadMessage> {
    let list = records
        .as_array()
        .ok_or_else(|| BadMessage("Records is not a list".into()))?;
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let name = text(r, &["eventName"]).unwrap_or_default();
        // "ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload", ...
        if !name.starts_with("ObjectCreated:") {
            continue;
        }
        let bucket = text(r, &["s3", "bucket", "name"])
            .ok_or_else(|| BadMessage(format!("Records[{i}] has no s3.bucket.name")))?;
        let raw = text(r, &["s3", "object", "key"])
            .ok_or_else(|| BadMessage(format!("Records[{i}] has no s3.object.key")))?;
        let key = decode_key(raw)
            .ok_or_else(|| BadMessage(format!("Records[{i}]: key {raw:?} is badly encoded")))?;
        out.push(ObjectRef {
            bucket: bucket.to_owned(),
            key,
            version_id: text(r, &["s3", "object", "versionId"])
                .filter(|s| !s.is_empty() && *s != "null")
                .map(str::to_owned),
            etag: text(r, &["s3", "object", "eTag"]).map(str::to_owned),
        });
    }
    if out.is_empty() {
        return Ok(Parsed::Ignore("no ObjectCreated record"));
    }
    Ok(Parsed::Objects(out))
}

fn eventbridge(v: &Value) -> Result<Parsed, BadMessage> {
    if text(v, &["detail-type"]) != Some("Object Created") {
        return Ok(Parsed::Ignore(
            "an EventBridge event other than Object Created",
        ));
    }
    let d = v
        .get("detail")
        .ok_or_else(|| BadMessage("EventBridge event without detail".into()))?;
    let bucket = text(d, &["bucket", "name"])
        .ok_or_else(|| BadMessage("detail has no bucket.name".into()))?;
    let key =
        text(d, &["object", "key"]).ok_or_else(|| BadMessage("detail has no object.key".into()))?;
    Ok(Parsed::Objects(vec![ObjectRef {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version_id: text(d, &["object", "version-id"])
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        etag: text(d, &["object", "etag"]).map(str::to_owned),
    }]))
}

/// S3 notifications' key encoding: form-style URL encoding, `+` for a space. None when a `%`
/// escape is broken or the bytes are not UTF-8.
pub fn decode_key(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn native_shape_decodes_keys() {
        let body = r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"bkt"},"object":{"key":"dir/a+b%2Bc%C3%BC.txt","size":2,
            "eTag":"e1","versionId":"v1"}}},
            {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"bkt"},"object":{"key":"x"}}}]}"#;
        assert_eq!(
            parse(body).unwrap(),
            Parsed::Objects(vec![ObjectRef {
                bucket: "bkt".into(),
                key: "dir/a b+cü.txt".into(),
                version_id: Some("v1".into()),
                etag: Some("e1".into()),
            }])
        );
    }

    #[test]
    fn eventbridge_shape_and_test_event() {
        let body = r#"{"version":"0","detail-type":"Object Created","source":"aws.s3",
            "detail":{"bucket":{"name":"bkt"},"object":{"key":"a b.txt","etag":"e","version-id":"v"}}}"#;
        assert_eq!(
            parse(body).unwrap(),
            Parsed::Objects(vec![ObjectRef {
                bucket: "bkt".into(),
                key: "a b.txt".into(),
                version_id: Some("v".into()),
                etag: Some("e".into()),
            }])
        );
        assert_eq!(
            parse(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"bkt"}"#).unwrap(),
            Parsed::Ignore("s3:TestEvent")
        );
        assert!(matches!(
            parse(r#"{"detail-type":"Object Deleted","detail":{}}"#).unwrap(),
            Parsed::Ignore(_)
        ));
    }

    #[test]
    fn hostile_bodies_are_refused() {
        for bad in [
            "",
            "[]",
            "{\"Records\":5}",
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}}]}"#,
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%ff"}}}]}"#,
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%4"}}}]}"#,
            r#"{"Type":"Notification","Message":"{}"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse(&"x".repeat(MAX_BODY + 1)).is_err());
    }
}
