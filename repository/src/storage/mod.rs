//! Where a repository lives. One trait, two backends: a local directory and an S3 bucket prefix.
//!
//! Keys are relative, `/`-separated paths such as `metadata/timestamp.json` or
//! `targets/<sha256>.vigil-7.vdb`. Every backend checks keys with [`check_key`] before touching
//! anything, so no caller (least of all the HTTP server) can name a file outside the repository.

mod dir;
mod s3;

use std::fmt::Debug;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use thiserror::Error;

pub use dir::DirStorage;
pub use s3::{S3Location, S3Options, S3Storage};

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("invalid object key {key:?}: {why}")]
    BadKey { key: String, why: &'static str },
    #[error("{what} {key}: {source}")]
    Io {
        what: &'static str,
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("S3 {op} {key}: {message}")]
    S3 {
        op: &'static str,
        key: String,
        message: String,
    },
    #[error("invalid repository location {0:?}: expected a directory or s3://bucket/prefix")]
    BadLocation(String),
    #[error("range {start}-{end} is outside {key} ({len} bytes)")]
    BadRange {
        key: String,
        start: u64,
        end: u64,
        len: u64,
    },
}

/// What a backend knows about a stored object without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub len: u64,
    /// A strong validator in HTTP form, quotes included (`"…"`).
    pub etag: String,
    pub last_modified: Option<SystemTime>,
}

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>;

/// An object's bytes as a stream, for files too large to hold in memory.
pub struct ObjectStream {
    pub meta: ObjectMeta,
    /// The bytes of the requested range (or the whole object), in order.
    pub body: ByteStream,
}

/// A precondition on a write; the backend checks it atomically with the write where it can.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutCondition {
    /// Overwrite unconditionally.
    Always,
    /// Create only: content-addressed blobs and versioned metadata are never rewritten.
    IfAbsent,
    /// Replace only the version we read (compare-and-swap on the ETag).
    IfMatch(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Written {
        etag: String,
    },
    /// The condition did not hold: someone else wrote first.
    PreconditionFailed,
}

/// Held for the length of a publish. A directory takes an exclusive file lock; S3 relies on
/// conditional writes instead, so its guard holds nothing.
pub trait PublishGuard: Send {}

#[async_trait]
pub trait Storage: Debug + Send + Sync {
    /// A human-readable location, for messages.
    fn location(&self) -> String;
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError>;
    /// The whole object in memory: for metadata and other small files.
    async fn get(&self, key: &str) -> Result<Option<(Bytes, ObjectMeta)>, StorageError>;
    /// The object, or the inclusive byte range `start..=end` of it, as a stream.
    async fn get_stream(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<ObjectStream>, StorageError>;
    async fn put(
        &self,
        key: &str,
        data: Bytes,
        cond: PutCondition,
    ) -> Result<PutOutcome, StorageError>;
    /// Keys under a `/`-terminated prefix, with their metadata.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, ObjectMeta)>, StorageError>;
    /// Deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Serialises publishers where the backend has no conditional writes of its own.
    async fn publish_guard(&self) -> Result<Box<dyn PublishGuard>, StorageError>;
}

/// Opens `DIR` or `s3://bucket/prefix`.
pub async fn open(location: &str, s3: &S3Options) -> Result<Arc<dyn Storage>, StorageError> {
    if let Some(loc) = S3Location::parse(location)? {
        Ok(Arc::new(S3Storage::connect(loc, s3).await))
    } else if location.is_empty() {
        Err(StorageError::BadLocation(location.to_owned()))
    } else {
        Ok(Arc::new(DirStorage::new(location)))
    }
}

/// Accepts only keys made of safe path segments: `[A-Za-z0-9._-]`, not starting with a dot, at
/// most 4 segments, at most 512 bytes. That rules out `..`, absolute paths, backslashes,
/// percent-escapes, NUL and hidden files, whatever the backend.
pub fn check_key(key: &str) -> Result<(), StorageError> {
    let bad = |why| {
        Err(StorageError::BadKey {
            key: key.chars().take(200).collect(),
            why,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > 512 {
        return bad("longer than 512 bytes");
    }
    let mut segments = 0;
    for seg in key.split('/') {
        segments += 1;
        if seg.is_empty() {
            return bad("empty path segment");
        }
        if seg.starts_with('.') {
            return bad("segment starts with a dot");
        }
        if !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return bad("only A-Z a-z 0-9 . _ - are allowed in a segment");
        }
    }
    if segments > 4 {
        return bad("more than 4 path segments");
    }
    Ok(())
}

/// Streams a reader in 256 KiB chunks, naming the key in any read error.
pub(crate) fn reader_stream(
    reader: impl tokio::io::AsyncRead + Send + 'static,
    what: &'static str,
    key: String,
) -> ByteStream {
    use futures::StreamExt;
    let body = tokio_util::io::ReaderStream::with_capacity(reader, 256 << 10).map(move |r| {
        r.map_err(|source| StorageError::Io {
            what,
            key: key.clone(),
            source,
        })
    });
    Box::pin(body)
}

/// A quoted strong ETag from a SHA-256.
pub(crate) fn etag_of(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("\"{}\"", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn keys_outside_the_repository_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "metadata/../../x",
            "a//b",
            ".hidden",
            "metadata/.lock",
            "a\\b",
            "a%2e%2e",
            "a\0b",
            "a/b/c/d/e",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["metadata/1.root.json", "targets/ab12.vigil-3.vdb", "x"] {
            check_key(good).unwrap();
        }
    }
}
