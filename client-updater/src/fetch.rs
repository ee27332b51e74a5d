//! Downloading one target: into `partial/<sha256>.<name>`, resumed with `Range` after an
//! interruption from whichever mirror is being tried, never more than the length TUF lists, and
//! returned only after the length and SHA-256 match. A file that fails the check is deleted so
//! the next try starts clean.
//!
//! The name carries the hash, so honest mirrors' bytes continue each other. A lying mirror can
//! leave a poisoned prefix behind, though, and then the check fails on whichever mirror finishes
//! the file. So `partial/<sha256>.<name>.from` records which mirror wrote which bytes; a resumed
//! file that fails the check is fetched once more from byte 0 from the same mirror before that
//! mirror is blamed, and when that copy verifies, the earlier mirrors whose bytes differ from it
//! are reported as forgers for the caller to cool down.

use std::fs::OpenOptions;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
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

/// A target whose length and SHA-256 are the ones TUF lists.
#[derive(Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// Other mirrors caught having written bytes of this file's partial download that are not
    /// the file's.
    pub forgeries: Vec<Forgery>,
}

/// A mirror whose earlier bytes in a resumed download differ from the verified file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forgery {
    /// The mirror as configured (its key in the persisted mirror state).
    pub mirror: String,
    pub message: String,
}

/// A run of bytes in a partial file: `mirror` wrote from offset `at` up to the next run's
/// offset, or to the end of the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Source {
    at: u64,
    mirror: String,
}

fn partial_path(dir: &Path, target: &Candidate) -> PathBuf {
    dir.join(format!("{}.{}", target.sha256, target.name))
}

fn sources_path(dir: &Path, target: &Candidate) -> PathBuf {
    dir.join(format!("{}.{}.from", target.sha256, target.name))
}

/// Forgets a target's partial download and the record of who wrote it.
pub fn discard_partial(dir: &Path, target: &Candidate) {
    let _ = std::fs::remove_file(partial_path(dir, target));
    let _ = std::fs::remove_file(sources_path(dir, target));
}

/// The recorded runs, or none when the record is missing or damaged: bytes of unknown origin
/// are never blamed on anyone.
fn read_sources(path: &Path) -> Vec<Source> {
    let runs: Vec<Source> = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if runs.is_sorted_by(|a, b| a.at < b.at) {
        runs
    } else {
        Vec::new()
    }
}

/// Notes that `mirror` writes from `at` on. Written before the bytes, so a crash leaves at worst
/// an empty run (or a damaged record, which blames nobody), never bytes credited to the wrong
/// mirror.
fn record_source(path: &Path, at: u64, mirror: &str) -> std::io::Result<()> {
    let mut runs = if at == 0 {
        Vec::new()
    } else {
        read_sources(path)
    };
    // Runs at or past `at` describe bytes the partial file no longer holds.
    runs.retain(|s| s.at < at);
    if runs.last().is_none_or(|s| s.mirror != mirror) {
        runs.push(Source {
            at,
            mirror: mirror.to_owned(),
        });
    }
    let json = serde_json::to_vec(&runs).map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}

/// A resumed file that failed the check: its bytes and who wrote them.
struct Resumed {
    bytes: Vec<u8>,
    sources: Vec<Source>,
}

impl Resumed {
    /// The mirrors whose runs differ from `good`, the verified file. `current` delivered `good`
    /// and is not blamed for an earlier run of its own: the file it sent is what counts.
    fn forgeries(&self, good: &[u8], current: &str, name: &str) -> Vec<Forgery> {
        let len = self.bytes.len();
        let offset = |at: u64| usize::try_from(at).map_or(len, |a| a.min(len));
        let mut out: Vec<Forgery> = Vec::new();
        for (i, run) in self.sources.iter().enumerate() {
            let start = offset(run.at);
            let end = self.sources.get(i + 1).map_or(len, |next| offset(next.at));
            if self.bytes.get(start..end) == good.get(start..end) {
                continue;
            }
            if run.mirror == current {
                tracing::warn!(mirror = %run.mirror, target = name, start, end,
                    "this mirror sent bytes of the file that it then sent differently");
                continue;
            }
            if out.iter().any(|f| f.mirror == run.mirror) {
                continue;
            }
            out.push(Forgery {
                mirror: run.mirror.clone(),
                message: format!(
                    "bytes {start}..{end} of {name} it sent do not match the file TUF lists \
                     (a whole copy from {current} does)"
                ),
            });
        }
        out
    }
}

enum Checked {
    Good(Vec<u8>),
    /// Not the file; `resumed` holds the bytes when some came from before this attempt.
    Bad {
        message: String,
        resumed: Option<Resumed>,
    },
}

/// Downloads `target` from `base` (a repository URL ending in `/`), which is the mirror
/// configured as `mirror`, and returns its bytes.
pub async fn fetch_target(
    http: &Http,
    base: &Url,
    mirror: &str,
    target: &Candidate,
    partial_dir: &Path,
    progress: bool,
) -> Result<Fetched, FetchFailure> {
    let key = layout::target_key(&target.sha256, &target.name);
    let url = base
        .join(&key)
        .map_err(|e| FetchFailure::Verify(format!("target name {}: {e}", target.name)))?;
    let (message, resumed) =
        match attempt(http, &url, mirror, target, partial_dir, progress).await? {
            Checked::Good(bytes) => {
                return Ok(Fetched {
                    bytes,
                    forgeries: Vec::new(),
                })
            }
            Checked::Bad {
                message,
                resumed: None,
            } => return Err(FetchFailure::Verify(message)),
            Checked::Bad {
                message,
                resumed: Some(r),
            } => (message, r),
        };
    // Part of the file came from an earlier attempt, perhaps from a lying mirror: one whole
    // copy from this mirror tells whether it is the one to blame, and if not, who is.
    tracing::warn!(target = %target.name, mirror, error = %message,
        "a resumed download failed its check; fetching it again from the start");
    match attempt(http, &url, mirror, target, partial_dir, progress).await? {
        Checked::Good(bytes) => {
            let forgeries = resumed.forgeries(&bytes, mirror, &target.name);
            Ok(Fetched { bytes, forgeries })
        }
        Checked::Bad { message, .. } => Err(FetchFailure::Verify(message)),
    }
}

/// One download into the partial file (resumed if it holds a prefix) and the check.
async fn attempt(
    http: &Http,
    url: &Url,
    mirror: &str,
    target: &Candidate,
    partial_dir: &Path,
    progress: bool,
) -> Result<Checked, FetchFailure> {
    let part = partial_path(partial_dir, target);
    let from = sources_path(partial_dir, target);
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
    // Where this attempt's own bytes begin; anything before came from an earlier one.
    let mut ours_from = have;
    if have < target.len {
        let mut body = http.get(url, None, have, false).await;
        if matches!(body, Ok(Body::RangeNotSatisfiable)) {
            // Our partial file disagrees with the server: start over.
            file.set_len(0).map_err(|e| local("truncating", e))?;
            have = 0;
            body = http.get(url, None, 0, false).await;
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
        ours_from = have;
        record_source(&from, have, mirror)
            .map_err(|e| FetchFailure::Local(UpdateError::io("writing", &from, e)))?;
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
        let sources = read_sources(&from);
        discard_partial(partial_dir, target);
        let message = format!(
            "{}: SHA-256 {got} does not match the {} that TUF lists",
            target.name, target.sha256
        );
        return Ok(Checked::Bad {
            message,
            resumed: (ours_from > 0).then_some(Resumed { bytes, sources }),
        });
    }
    Ok(Checked::Good(bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn run(at: u64, mirror: &str) -> Source {
        Source {
            at,
            mirror: mirror.to_owned(),
        }
    }

    #[test]
    fn the_mirror_whose_run_differs_is_the_forger() {
        let good: Vec<u8> = (0..100u8).collect();
        let mut bytes = good.clone();
        bytes[10] = 0xff; // in a's run
        bytes[90] ^= 1; // in b's own earlier run: b delivered the file, not blamed
        let resumed = Resumed {
            bytes,
            sources: vec![run(0, "a"), run(40, "c"), run(60, "a"), run(80, "b")],
        };
        let f = resumed.forgeries(&good, "b", "vigil-1.vdb");
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].mirror, "a");
        assert!(f[0].message.starts_with("bytes 0..40 of vigil-1.vdb"));
        // Bytes nobody is recorded for blame nobody.
        let unknown = Resumed {
            bytes: vec![0; 100],
            sources: vec![run(50, "c")],
        };
        let f = unknown.forgeries(&good, "b", "vigil-1.vdb");
        assert_eq!(f.len(), 1);
        assert!(f[0].message.starts_with("bytes 50..100"), "{f:?}");
        assert!(Resumed {
            bytes: vec![0; 100],
            sources: Vec::new()
        }
        .forgeries(&good, "b", "x")
        .is_empty());
    }

    #[test]
    fn the_record_follows_the_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.from");
        record_source(&p, 0, "a").unwrap();
        record_source(&p, 50, "b").unwrap();
        record_source(&p, 80, "a").unwrap();
        assert_eq!(read_sources(&p), [run(0, "a"), run(50, "b"), run(80, "a")]);
        // The file was cut back to 60 bytes: b goes on from there, a's later run is gone.
        record_source(&p, 60, "b").unwrap();
        assert_eq!(read_sources(&p), [run(0, "a"), run(50, "b")]);
        // From byte 0 the record starts over; a damaged record is no record.
        record_source(&p, 0, "c").unwrap();
        assert_eq!(read_sources(&p), [run(0, "c")]);
        std::fs::write(&p, b"[{\"at\":9,").unwrap();
        assert!(read_sources(&p).is_empty());
        record_source(&p, 30, "d").unwrap();
        assert_eq!(read_sources(&p), [run(30, "d")]);
    }
}
