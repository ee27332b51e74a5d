//! Moving a THREATS_FOUND object out of reach: CopyObject into the quarantine bucket (tags and
//! metadata copied, so the status tag travels with it), then DeleteObject of the original
//! version. The copy lands at `PREFIX/SOURCE-BUCKET/KEY`, so objects of several buckets never
//! collide. Both steps are idempotent: a worker that dies between them leaves the message in
//! the queue, and the next one copies again and deletes.

use aws_sdk_s3::types::{MetadataDirective, TaggingDirective};

use crate::event::ObjectRef;
use crate::location::copy_source;
use crate::object::classify_http;

/// CopyObject copies at most 5 GiB in one request.
pub const MAX_COPY: u64 = 5 << 30;

/// Where infected objects go.
#[derive(Clone, Debug)]
pub struct QuarantineTarget {
    pub bucket: String,
    /// Key prefix inside the quarantine bucket (may be empty; a trailing `/` is added).
    pub prefix: String,
}

impl QuarantineTarget {
    pub fn new(bucket: String, prefix: Option<String>) -> QuarantineTarget {
        let mut prefix = prefix.unwrap_or_default();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        QuarantineTarget { bucket, prefix }
    }

    /// The quarantine key of an object.
    pub fn key_for(&self, obj: &ObjectRef) -> String {
        format!("{}{}/{}", self.prefix, obj.bucket, obj.key)
    }

    /// Whether `obj` is itself in quarantine (its copy's creation event must not be scanned
    /// and moved again).
    pub fn holds(&self, obj: &ObjectRef) -> bool {
        obj.bucket == self.bucket && obj.key.starts_with(&self.prefix)
    }
}

/// Moves `obj` (its `version_id`, when versioned) of `size` bytes; returns the new URL.
pub async fn move_object(
    s3: &aws_sdk_s3::Client,
    to: &QuarantineTarget,
    obj: &ObjectRef,
    size: u64,
) -> Result<String, String> {
    if size > MAX_COPY {
        return Err(format!(
            "{size} bytes: over CopyObject's 5 GiB, left in place (tagged)"
        ));
    }
    let key = to.key_for(obj);
    s3.copy_object()
        .copy_source(copy_source(
            &obj.bucket,
            &obj.key,
            obj.version_id.as_deref(),
        ))
        .bucket(&to.bucket)
        .key(&key)
        .tagging_directive(TaggingDirective::Copy)
        .metadata_directive(MetadataDirective::Copy)
        .send()
        .await
        .map_err(|e| format!("copy to s3://{}/{key}: {}", to.bucket, classify_http(&e).1))?;
    s3.delete_object()
        .bucket(&obj.bucket)
        .key(&obj.key)
        .set_version_id(obj.version_id.clone())
        .send()
        .await
        .map_err(|e| format!("delete after the copy: {}", classify_http(&e).1))?;
    Ok(format!("s3://{}/{key}", to.bucket))
}
