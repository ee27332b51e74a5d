//! `--rescan s3://bucket/prefix`: new definitions reach old uploads. Every object under the
//! prefix whose database-version tag is older than the loaded database (or missing: never
//! scanned, or tagged without room for it) is scanned again and re-tagged, THREATS_FOUND ones
//! moved to quarantine; objects already tagged by this database or a newer one are only read
//! (GetObjectTagging), not downloaded.

use std::sync::Arc;

use futures::StreamExt;

use crate::error::S3ScanError;
use crate::event::ObjectRef;
use crate::location::S3Url;
use crate::oneoff::objects;
use crate::pipeline::{Outcome, Pipeline};

/// Rescans under `url`, `concurrency` objects at a time, calling `on` with each outcome.
pub async fn rescan(
    pipeline: Arc<Pipeline>,
    url: &S3Url,
    concurrency: usize,
    mut on: impl FnMut(&ObjectRef, &Outcome),
) -> Result<(), S3ScanError> {
    let mut failure = None;
    {
        let results = objects(pipeline.s3.clone(), url.clone())
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
            .map(|o| {
                let p = pipeline.clone();
                // A one-off run has no later attempt: what a worker would retry is tagged FAILED.
                async move {
                    let out = p.process(&o, true).await;
                    (o, out)
                }
            })
            .buffer_unordered(concurrency.max(1));
        let mut results = std::pin::pin!(results);
        while let Some((o, out)) = results.next().await {
            on(&o, &out);
        }
    }
    failure.map_or(Ok(()), Err)
}
