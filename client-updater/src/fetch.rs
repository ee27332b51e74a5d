//! Downloading one target: into `partial/<sha256>.<name>`, resumed with `Range` after an
//! interruption (the name carries the hash, so a partial file from any mirror is the same
//! bytes), never more than the length TUF lists, and returned only after the length and
//! SHA-256 match. A file that fails the check is deleted so the next try starts clean.

use std::fs::OpenOptions;
use std::io::{Read, Seek, Write};
use std::path::Path;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use url::Url;
use vigil_repository::layout;

use crate::error::UpdateError;
use crate::http::{Body, FetchError, Http};
use crate::plan::Candidate;

pub enum FetchFailure {
    /// The mirror misbehaved or went away (cool it down, try another).
    Net(FetchError),
    /// The bytes are not the ones TUF lists.
    Verify(String),
    /// Our side: disk full, permissions.
    Local(UpdateError),
}

/// Downloads `target` from `base` (a repository URL ending in `/`) and returns its bytes.
pub async fn fetch_target(
    http: &Http,
    base: &Url,
    target: &Candidate,
    partial_dir: &Path,
    progress: bool,
) -> Result<Vec<u8>, FetchFailure> {
    let key = layout::target_key(&target.sha256, &target.name);
    let url = base
        .join(&key)
        .map_err(|e| FetchFailure::Verify(format!("target name {}: {e}", target.name)))?;
    let part = partial_dir.join(format!("{}.{}", target.sha256, target.name));
    let local = |c, e| FetchFailure::Local(UpdateError::io(c, &part, e));
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&part)
        .map_err(|e| local("opening", e))?;
    let mut have = file.metadata().map_err(|e| local("reading", e))?.len();
    if have > target.len {
        file.set_len(0).map_err(|e| local("truncating", e))?;
        have = 0;
    }
    if have < target.len {
        let mut body = http.get(&url, None, have, false).await;
        if matches!(body, Ok(Body::RangeNotSatisfiable)) {
            // Our partial file disagrees with the server: start over.
            file.set_len(0).map_err(|e| local("truncating", e))?;
            have = 0;
            body = http.get(&url, None, 0, false).await;
        }
        let (partial, mut stream) = match body.map_err(FetchFailure::Net)? {
            Body::Stream {
                partial, stream, ..
            } => (partial, stream),
            Body::NotModified | Body::RangeNotSatisfiable => {
                return Err(FetchFailure::Net(FetchError::Status {
                    url: url.to_string(),
                    status: 416,
                }))
            }
        };
        if !partial && have > 0 {
            // The server ignored the Range and sends everything.
            file.set_len(0).map_err(|e| local("truncating", e))?;
            have = 0;
        }
        if have > 0 {
            tracing::info!(target = %target.name, resumed_at = have, "resuming download");
        }
        let bar = progress.then(|| {
            let b = ProgressBar::new(target.len);
            b.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_message(target.name.clone());
            b.set_position(have);
            b
        });
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(FetchFailure::Net)?;
            if have + chunk.len() as u64 > target.len {
                // Endless data: more than TUF says the file holds. Keep what is plausible.
                let _ = file.set_len(0);
                return Err(FetchFailure::Verify(format!(
                    "{}: the server sent more than the {} bytes TUF lists",
                    target.name, target.len
                )));
            }
            file.write_all(&chunk).map_err(|e| local("writing", e))?;
            have += chunk.len() as u64;
            if let Some(b) = &bar {
                b.set_position(have);
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        file.sync_all().map_err(|e| local("syncing", e))?;
    }
    if have != target.len {
        // Truncated: keep the prefix for a resume, but this attempt failed.
        return Err(FetchFailure::Net(FetchError::Network {
            url: url.to_string(),
            message: format!("connection ended after {have} of {} bytes", target.len),
        }));
    }
    let mut bytes = Vec::with_capacity(target.len as usize);
    file.rewind()
        .and_then(|()| file.read_to_end(&mut bytes))
        .map_err(|e| local("reading back", e))?;
    let got = hex::encode(Sha256::digest(&bytes));
    if got != target.sha256 || bytes.len() as u64 != target.len {
        let _ = std::fs::remove_file(&part);
        return Err(FetchFailure::Verify(format!(
            "{}: SHA-256 {got} does not match the {} that TUF lists",
            target.name, target.sha256
        )));
    }
    Ok(bytes)
}
