//! A repository under an S3 bucket prefix (AWS, MinIO, Ceph, R2), through aws-sdk-s3.
//!
//! Credentials come from the standard chain (environment, profile, web identity, instance
//! metadata). A custom endpoint and path-style addressing serve the S3-compatible stores.
//! Conditional writes map directly onto S3's: `If-None-Match: *` for create-only objects and
//! `If-Match: <etag>` for the compare-and-swap of `timestamp.json`.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::Client;
use bytes::Bytes;

use super::{
    check_key, reader_stream, ObjectMeta, ObjectStream, PublishGuard, PutCondition, PutOutcome,
    Storage, StorageError,
};

/// `s3://bucket/prefix`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Empty, or ends without a slash: keys are `prefix/key`.
    pub prefix: String,
}

impl S3Location {
    /// `Ok(None)` when `s` is not an `s3://` URL at all.
    pub fn parse(s: &str) -> Result<Option<Self>, StorageError> {
        let Some(rest) = s.strip_prefix("s3://") else {
            return Ok(None);
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok || (!prefix.is_empty() && check_key(prefix).is_err()) {
            return Err(StorageError::BadLocation(s.to_owned()));
        }
        Ok(Some(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        }))
    }
}

/// Overrides on top of the standard AWS configuration chain.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// e.g. `http://127.0.0.1:9000` for MinIO; `AWS_ENDPOINT_URL` also works.
    pub endpoint: Option<String>,
    /// Bucket in the path rather than the host name: what MinIO and Ceph usually need.
    pub path_style: bool,
    pub region: Option<String>,
}

#[derive(Clone, Debug)]
pub struct S3Storage {
    client: Client,
    loc: S3Location,
}

impl S3Storage {
    pub async fn connect(loc: S3Location, opts: &S3Options) -> Self {
        let shared = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let mut conf = aws_sdk_s3::config::Builder::from(&shared);
        if let Some(ep) = &opts.endpoint {
            conf = conf.endpoint_url(ep);
        }
        if opts.path_style {
            conf = conf.force_path_style(true);
        }
        match (&opts.region, shared.region()) {
            (Some(r), _) => conf = conf.region(Region::new(r.clone())),
            // S3-compatible stores rarely care; the SDK refuses to sign without one.
            (None, None) => conf = conf.region(Region::new("us-east-1")),
            (None, Some(_)) => {}
        }
        Self::from_client(Client::from_conf(conf.build()), loc)
    }

    pub fn from_client(client: Client, loc: S3Location) -> Self {
        Self { client, loc }
    }

    fn full_key(&self, key: &str) -> Result<String, StorageError> {
        check_key(key)?;
        Ok(if self.loc.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.loc.prefix)
        })
    }

    fn err<E, R>(op: &'static str, key: &str, e: SdkError<E, R>) -> StorageError
    where
        E: std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        StorageError::S3 {
            op,
            key: key.to_owned(),
            message: DisplayErrorContext(&e).to_string(),
        }
    }
}

fn status_of<E, R>(e: &SdkError<E, R>) -> Option<u16>
where
    R: HasStatus,
{
    e.raw_response().map(|r| r.status_code())
}

trait HasStatus {
    fn status_code(&self) -> u16;
}
impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

fn to_system_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

struct NoGuard;
impl PublishGuard for NoGuard {}

#[async_trait]
impl Storage for S3Storage {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.loc.bucket, self.loc.prefix)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        let full = self.full_key(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.loc.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectMeta {
                len: out.content_length().unwrap_or(0).max(0) as u64,
                etag: out.e_tag().unwrap_or_default().to_owned(),
                last_modified: to_system_time(out.last_modified()),
            })),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(Self::err("HEAD", &full, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<(Bytes, ObjectMeta)>, StorageError> {
        let full = self.full_key(key)?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.loc.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(Self::err("GET", &full, e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let last_modified = to_system_time(out.last_modified());
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StorageError::S3 {
                op: "GET",
                key: full.clone(),
                message: e.to_string(),
            })?
            .into_bytes();
        Ok(Some((
            bytes.clone(),
            ObjectMeta {
                len: bytes.len() as u64,
                etag,
                last_modified,
            },
        )))
    }

    async fn get_stream(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<ObjectStream>, StorageError> {
        let full = self.full_key(key)?;
        let mut req = self.client.get_object().bucket(&self.loc.bucket).key(&full);
        if let Some((start, end)) = range {
            req = req.range(format!("bytes={start}-{end}"));
        }
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) if status_of(&e) == Some(416) => {
                let (start, end) = range.unwrap_or_default();
                let len = self.head(key).await?.map(|m| m.len).unwrap_or(0);
                return Err(StorageError::BadRange {
                    key: key.to_owned(),
                    start,
                    end,
                    len,
                });
            }
            Err(e) => return Err(Self::err("GET", &full, e)),
        };
        // With a range, the object's full length is after the slash of Content-Range.
        let len = out
            .content_range()
            .and_then(|r| r.rsplit('/').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(out.content_length().unwrap_or(0).max(0) as u64);
        let meta = ObjectMeta {
            len,
            etag: out.e_tag().unwrap_or_default().to_owned(),
            last_modified: to_system_time(out.last_modified()),
        };
        // Streamed as it arrives: a blob is never held whole in memory.
        Ok(Some(ObjectStream {
            meta,
            body: reader_stream(out.body.into_async_read(), "S3 GET body", full),
        }))
    }

    async fn put(
        &self,
        key: &str,
        data: Bytes,
        cond: PutCondition,
    ) -> Result<PutOutcome, StorageError> {
        let full = self.full_key(key)?;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.loc.bucket)
            .key(&full)
            .body(SdkBody::from(data));
        req = match &cond {
            PutCondition::Always => req,
            PutCondition::IfAbsent => req.if_none_match("*"),
            PutCondition::IfMatch(etag) => req.if_match(etag),
        };
        match req.send().await {
            Ok(out) => Ok(PutOutcome::Written {
                etag: out.e_tag().unwrap_or_default().to_owned(),
            }),
            // 409 ConditionalRequestConflict: another conditional write to the key is in
            // flight. Either way we did not win.
            Err(e)
                if cond != PutCondition::Always
                    && (matches!(status_of(&e), Some(412 | 409))
                        || e.code() == Some("PreconditionFailed")) =>
            {
                Ok(PutOutcome::PreconditionFailed)
            }
            Err(e) => Err(Self::err("PUT", &full, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, ObjectMeta)>, StorageError> {
        let trimmed = prefix.trim_end_matches('/');
        let full = format!("{}/", self.full_key(trimmed)?);
        let strip = full.len() - trimmed.len() - 1;
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.loc.bucket)
            .prefix(&full)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Self::err("LIST", &full, e))?;
            for obj in page.contents() {
                let Some(k) = obj.key() else { continue };
                let key = k[strip..].to_owned();
                if check_key(&key).is_err() {
                    continue;
                }
                out.push((
                    key,
                    ObjectMeta {
                        len: obj.size().unwrap_or(0).max(0) as u64,
                        etag: obj.e_tag().unwrap_or_default().to_owned(),
                        last_modified: to_system_time(obj.last_modified()),
                    },
                ));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let full = self.full_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.loc.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| Self::err("DELETE", &full, e))?;
        Ok(())
    }

    async fn publish_guard(&self) -> Result<Box<dyn PublishGuard>, StorageError> {
        Ok(Box::new(NoGuard))
    }
}

#[cfg(test)]
mod tests {
    use super::S3Location;

    #[test]
    fn locations() {
        let l = S3Location::parse("s3://vigil-db/prod/feed")
            .unwrap()
            .unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("vigil-db", "prod/feed")
        );
        let l = S3Location::parse("s3://vigil-db").unwrap().unwrap();
        assert_eq!(l.prefix, "");
        assert!(S3Location::parse("/srv/repo").unwrap().is_none());
        assert!(S3Location::parse("s3://B/x").is_err());
        assert!(S3Location::parse("s3://bucket/../x").is_err());
    }
}
