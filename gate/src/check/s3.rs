//! Goodware in an S3 bucket: objects under a prefix, listed page by page and fetched a few at
//! a time by a runtime on its own thread, handed to scan threads through a bounded queue.
//!
//! Memory stays bounded on any bucket: at most [`fetches`] objects are in flight and
//! `2 * threads` wait in the queue, each held in memory only up to [`IN_MEMORY`] bytes and
//! spooled to an anonymous temporary file beyond (scan-core's [`Spool`]); an object over the
//! size limit is counted as skipped without being downloaded. Credentials come from the
//! standard AWS chain; `endpoint`, `path_style` and `region` are those of `vigil-build publish`.

use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::Client;
use tokio::sync::{mpsc, Semaphore};
use vigil_scan_core::input::Spool;
use vigil_scan_core::{Limits, ScanError};

use super::worker::{GateWorker, Input, Verdict};
use super::CheckError;

/// Objects up to this size are kept in memory; larger ones are spooled.
const IN_MEMORY: usize = 8 << 20;

/// GETs in flight for `threads` scan threads: enough to hide a round trip behind each scan.
fn fetches(threads: usize) -> usize {
    2 * threads + 2
}

/// `s3://BUCKET/PREFIX` and how to reach it.
#[derive(Clone, Debug, Default)]
pub struct S3Goodware {
    pub bucket: String,
    /// A "directory" of the bucket, without slashes at either end (`corpora/goodware`: keys
    /// under `corpora/goodware/`); empty for the whole bucket.
    pub prefix: String,
    /// An S3-compatible endpoint (MinIO, Ceph, R2); `AWS_ENDPOINT_URL` also works.
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub region: Option<String>,
}

impl S3Goodware {
    pub fn parse(url: &str) -> Result<Self, CheckError> {
        let bad = || CheckError::Usage(format!("{url:?} is not s3://BUCKET[/PREFIX]"));
        let rest = url.strip_prefix("s3://").ok_or_else(bad)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            ..Self::default()
        })
    }

    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn error(&self, message: impl Into<String>) -> CheckError {
        CheckError::S3 {
            location: self.url(),
            message: message.into(),
        }
    }

    async fn client(&self) -> Client {
        let shared = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let mut conf = aws_sdk_s3::config::Builder::from(&shared);
        if let Some(ep) = &self.endpoint {
            conf = conf.endpoint_url(ep);
        }
        if self.path_style {
            conf = conf.force_path_style(true);
        }
        match (&self.region, shared.region()) {
            (Some(r), _) => conf = conf.region(Region::new(r.clone())),
            // S3-compatible stores rarely care; the SDK refuses to sign without one.
            (None, None) => conf = conf.region(Region::new("us-east-1")),
            (None, Some(_)) => {}
        }
        Client::from_conf(conf.build())
    }
}

enum Body {
    Memory(Vec<u8>),
    Spooled(Spool),
}

struct Fetched {
    name: String,
    body: Result<Body, ScanError>,
}

/// Scans every object under the prefix with `threads` workers from `make`, handing each
/// outcome to `sink` (from the scan threads). A listing failure is fatal; a failed GET is that
/// object's error.
pub(crate) fn scan<'e, 's, 'p>(
    loc: &S3Goodware,
    threads: usize,
    limits: &Limits,
    make: &(dyn Fn() -> GateWorker<'e, 's, 'p> + Sync),
    sink: &(dyn Fn(String, Result<Verdict, ScanError>) + Sync),
) -> Result<(), CheckError> {
    let (tx, rx) = mpsc::channel::<Fetched>(2 * threads);
    let rx = Mutex::new(rx);
    // `tx` moves into the scope's closure, so any early return closes the queue before the
    // scope waits for the scan threads draining it.
    std::thread::scope(|scope| {
        for _ in 0..threads {
            std::thread::Builder::new()
                .name("vigil-check".into())
                .spawn_scoped(scope, || {
                    let mut worker = make();
                    loop {
                        // Not inside any runtime: a plain thread of this scope.
                        let next = rx
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .blocking_recv();
                        let Some(Fetched { name, body }) = next else {
                            break;
                        };
                        let outcome = match body {
                            Ok(Body::Memory(v)) => worker.scan_input(Input::Bytes(&v), limits),
                            Ok(Body::Spooled(s)) => worker.scan_input(Input::Spool(&s), limits),
                            Err(e) => Err(e),
                        };
                        sink(name, outcome);
                    }
                    worker.finish_thread();
                })
                .map_err(|e| loc.error(format!("cannot start a scan thread: {e}")))?;
        }
        // The runtime gets a thread of its own, so a caller inside another runtime is fine.
        let fetcher = std::thread::Builder::new()
            .name("vigil-s3".into())
            .spawn_scoped(scope, move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| loc.error(format!("starting the async runtime: {e}")))?;
                // `tx` moves in: the queue closes when fetching ends, however it ends.
                rt.block_on(fetch_all(loc, tx, fetches(threads), limits.max_filesize))
            })
            .map_err(|e| loc.error(format!("cannot start the fetch thread: {e}")))?;
        fetcher
            .join()
            .unwrap_or_else(|_| Err(loc.error("the fetch thread panicked")))
    })
}

async fn fetch_all(
    loc: &S3Goodware,
    tx: mpsc::Sender<Fetched>,
    fetches: usize,
    max_filesize: u64,
) -> Result<(), CheckError> {
    let client = loc.client().await;
    let slots = std::sync::Arc::new(Semaphore::new(fetches));
    let mut tasks = tokio::task::JoinSet::new();
    let mut token: Option<String> = None;
    // `goodware` names a directory: not `goodware2/...` beside it.
    let prefix = if loc.prefix.is_empty() {
        String::new()
    } else {
        format!("{}/", loc.prefix)
    };
    loop {
        let page = client
            .list_objects_v2()
            .bucket(&loc.bucket)
            .prefix(&prefix)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| loc.error(format!("listing: {}", DisplayErrorContext(&e))))?;
        for obj in page.contents() {
            let Some(key) = obj.key() else { continue };
            // "Directory" placeholders some tools create.
            if key.ends_with('/') {
                continue;
            }
            let name = format!("s3://{}/{key}", loc.bucket);
            let size = u64::try_from(obj.size().unwrap_or(0)).unwrap_or(0);
            if size > max_filesize {
                let body = Err(ScanError::TooLarge {
                    size,
                    limit: max_filesize,
                });
                if tx.send(Fetched { name, body }).await.is_err() {
                    return Ok(());
                }
                continue;
            }
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return Ok(());
            };
            let (client, tx) = (client.clone(), tx.clone());
            let (bucket, key) = (loc.bucket.clone(), key.to_string());
            tasks.spawn(async move {
                let body = get(&client, &bucket, &key, max_filesize).await;
                // The slot is held until the body is queued: in flight plus queued stays bounded.
                let _ = tx.send(Fetched { name, body }).await;
                drop(slot);
            });
            while tasks.try_join_next().is_some() {}
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn get(client: &Client, bucket: &str, key: &str, max: u64) -> Result<Body, ScanError> {
    let io = |m: String| ScanError::Io(io::Error::other(m));
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| io(format!("GET: {}", DisplayErrorContext(&e))))?;
    let mut stream = out.body;
    let mut memory = Vec::new();
    let mut spool: Option<Spool> = None;
    let mut total: u64 = 0;
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| io(format!("reading: {e}")))?
    {
        total += chunk.len() as u64;
        if total > max {
            return Err(ScanError::TooLarge {
                size: total,
                limit: max,
            });
        }
        match &mut spool {
            Some(s) => s.write_all(&chunk)?,
            None if memory.len() + chunk.len() > IN_MEMORY => {
                let mut s = Spool::new()?;
                s.write_all(&memory)?;
                s.write_all(&chunk)?;
                memory = Vec::new();
                spool = Some(s);
            }
            None => memory.extend_from_slice(&chunk),
        }
    }
    Ok(match spool {
        Some(s) => Body::Spooled(s),
        None => Body::Memory(memory),
    })
}
