//! One-off scans of `s3://bucket/prefix`: the listing is paginated (ListObjectsV2) and feeds
//! the scans as it goes; at most `concurrency` objects are downloaded and scanned at once, so
//! memory stays at most `concurrency` times the engine's in-memory threshold whatever the
//! objects' sizes. Nothing is written to the bucket.

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::error::S3ScanError;
use crate::event::ObjectRef;
use crate::location::S3Url;
use crate::object::{self, classify_http, ScanSettings, Scanned};

/// Keys listed ahead of the scans.
const LISTED_AHEAD: usize = 2000;

/// The objects under `url` (current versions), listed page by page as they are consumed; a
/// listing failure ends the stream with an error.
pub fn objects(
    s3: aws_sdk_s3::Client,
    url: S3Url,
) -> impl Stream<Item = Result<ObjectRef, S3ScanError>> {
    let (tx, rx) = mpsc::channel(LISTED_AHEAD);
    tokio::spawn(async move {
        let mut pages = s3
            .list_objects_v2()
            .bucket(&url.bucket)
            .prefix(&url.key)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    let err = S3ScanError::List {
                        url: url.to_string(),
                        message: classify_http(&e).1,
                    };
                    let _ = tx.send(Err(err)).await;
                    return;
                }
            };
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let r = ObjectRef {
                    bucket: url.bucket.clone(),
                    key: key.to_owned(),
                    version_id: None,
                    etag: o.e_tag().map(str::to_owned),
                };
                if tx.send(Ok(r)).await.is_err() {
                    return;
                }
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

/// Scans every object under `url`, `concurrency` at a time, calling `on` with each result as
/// it comes. A listing failure is returned after the objects listed before it are scanned.
pub async fn scan_prefix(
    s3: &aws_sdk_s3::Client,
    settings: &ScanSettings,
    url: &S3Url,
    concurrency: usize,
    mut on: impl FnMut(ObjectRef, Scanned),
) -> Result<(), S3ScanError> {
    let mut failure = None;
    {
        let results = objects(s3.clone(), url.clone())
            .filter_map(|r| {
                let r = match r {
                    Ok(o) => Some(o),
                    Err(e) => {
                        failure = Some(e);
                        None
                    }
                };
                async move { r }
            })
            .map(|o| async move {
                let s = object::scan(s3, settings, &o).await;
                (o, s)
            })
            .buffer_unordered(concurrency.max(1));
        let mut results = std::pin::pin!(results);
        while let Some((o, s)) = results.next().await {
            on(o, s);
        }
    }
    failure.map_or(Ok(()), Err)
}
