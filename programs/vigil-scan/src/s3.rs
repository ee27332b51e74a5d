//! S3: `s3://BUCKET/PREFIX` arguments of the scan (one-off, read-only), and `vigil-scan
//! s3-worker`: the SQS-driven worker that tags every upload (GuardDuty's values), moves
//! infected objects to a quarantine bucket and sends findings to the config's outputs, or with
//! `--rescan s3://BUCKET/PREFIX` re-scans what an older database tagged. The work is
//! `vigil-s3scan`'s; this module holds the flags, the output lines and the exit codes.
//!
//! `s3-worker` exit codes: with `--queue-url`, 0 when stopped (SIGTERM or Ctrl-C: the objects
//! in flight are finished first; or `--idle-exit`), 2 when the queue cannot be read at the
//! start or the setup fails. With `--rescan`, as a scan: 0 nothing found, 1 THREATS_FOUND on
//! some object, 2 errors (objects that could not be tagged, a listing that failed).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use vigil_s3scan::clients::{self, Connect};
use vigil_s3scan::pipeline::{Outcome, Pipeline};
use vigil_s3scan::quarantine::QuarantineTarget;
use vigil_s3scan::tags::{TagSettings, DEFAULT_DB_KEY, DEFAULT_STATUS_KEY};
use vigil_s3scan::worker::{self, WorkerSettings};
use vigil_s3scan::{ObjectRef, S3Url, ScanSettings, Scanned, Verdict};
use vigil_scan_core::service::{FileResult, Status};
use vigil_scan_core::Limits;

/// The scan's `s3://` arguments: every object under each prefix, printed through `report`.
pub fn scan_urls(
    settings: &ScanSettings,
    connect: &Connect,
    urls: &[S3Url],
    concurrency: usize,
    report: &(dyn Fn(FileResult) + Sync),
    failed: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let c = clients::connect(connect).await;
        let db = settings.engine.db_version();
        for url in urls {
            let listed =
                vigil_s3scan::oneoff::scan_prefix(&c.s3, settings, url, concurrency, |o, s| {
                    report(file_result(&o, db, s))
                })
                .await;
            if let Err(e) = listed {
                failed(&e.to_string());
            }
        }
    });
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// One object's scan as the printer takes it: found and clean as for files; not completely
/// scanned (too large) skipped; denied, failed or deleted meanwhile an error.
fn file_result(o: &ObjectRef, db: u64, s: Scanned) -> FileResult {
    let path = o.url();
    let (status, why) = match (s.report, s.verdict) {
        (Some(r), _) => return FileResult::from_scan(path, db, Ok(r)),
        (None, Verdict::Unsupported(w)) => (Status::Skipped, w),
        (None, Verdict::AccessDenied(w)) => (Status::Error, format!("access denied: {w}")),
        (None, Verdict::Gone(w)) => (Status::Error, format!("deleted before its scan: {w}")),
        (None, Verdict::Failed(w) | Verdict::Retry(w)) => (Status::Error, w),
        (None, Verdict::Clean | Verdict::Threats) => (Status::Error, "no report".into()),
    };
    FileResult {
        path,
        status,
        findings: Vec::new(),
        sha256: None,
        error: Some(why),
        allowlisted: None,
        size: 0,
        db_version: db,
        unscanned: Vec::new(),
    }
}

#[derive(Args)]
pub struct WorkerArgs {
    /// The SQS queue S3 (or an EventBridge rule) sends ObjectCreated notifications to.
    #[arg(long, value_name = "URL", required_unless_present = "rescan")]
    queue_url: Option<String>,
    /// Instead of a queue: re-scan the objects under this prefix whose database-version tag is
    /// older than the loaded database (or missing), re-tag them and exit.
    #[arg(long, value_name = "s3://BUCKET/PREFIX", conflicts_with = "queue_url")]
    rescan: Option<String>,
    /// Database file [default with --config: the installed one in its database_dir].
    #[arg(short = 'd', long = "database", required_unless_present = "config")]
    database: Option<PathBuf>,
    /// vigil.toml: findings of infected objects go to its [[outputs]] (through the outbox).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Trusted public key (repeatable); defaults to the keys built into this binary.
    #[arg(long)]
    pubkey: Vec<PathBuf>,
    /// Directory for compiled-rule caches (default: next to the database).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// The S3 and SQS endpoint (MinIO, a VPC endpoint, a local test server) [default:
    /// $AWS_ENDPOINT_URL, else AWS].
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// AWS region [default: the standard chain's].
    #[arg(long)]
    region: Option<String>,
    /// The status tag's key; `GuardDutyMalwareScanStatus` makes bucket policies written for
    /// GuardDuty work unchanged.
    #[arg(long, value_name = "KEY", default_value = DEFAULT_STATUS_KEY)]
    tag_key: String,
    /// The database-version tag's key.
    #[arg(long, value_name = "KEY", default_value = DEFAULT_DB_KEY)]
    db_tag_key: String,
    /// Move THREATS_FOUND objects into this bucket (copied with their tags, then the original
    /// version deleted).
    #[arg(long, value_name = "BUCKET")]
    quarantine_bucket: Option<String>,
    /// Key prefix in the quarantine bucket; objects land at PREFIX/SOURCE-BUCKET/KEY.
    #[arg(long, value_name = "PREFIX", requires = "quarantine_bucket")]
    quarantine_prefix: Option<String>,
    /// Objects processed at once [default: twice the number of CPUs].
    #[arg(long, value_name = "N")]
    s3_concurrency: Option<usize>,
    /// The visibility timeout the worker asks for, extended every third of it while an
    /// object scans.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    visibility_timeout: u64,
    /// Long-poll wait of each ReceiveMessage (0-20).
    #[arg(long, value_name = "SECS", default_value_t = 20, value_parser = clap::value_parser!(i32).range(0..=20))]
    wait_seconds: i32,
    /// At this receive count, a failure that would be retried (throttling, a broken download)
    /// is tagged FAILED instead.
    #[arg(long, value_name = "N", default_value_t = 3)]
    max_attempts: u32,
    /// Exit 0 once the queue has been empty for SECS with nothing in flight.
    #[arg(long, value_name = "SECS")]
    idle_exit: Option<u64>,
    /// Objects larger than this are tagged UNSUPPORTED without being downloaded [default: 4G].
    #[arg(long, value_parser = crate::cli::parse_size)]
    max_filesize: Option<u64>,
    /// Per-object scan timeout in seconds, 0: none [default: 120].
    #[arg(long)]
    timeout: Option<u64>,
    /// With --config: how long to deliver findings at exit; what is left stays queued.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    deliver_timeout: u64,
}

/// Counts for the exit code of a rescan.
#[derive(Default)]
struct Counts {
    found: AtomicU64,
    errors: AtomicU64,
}

/// Prints one outcome: verdicts on stdout, errors and retries on stderr.
fn print_outcome(o: &ObjectRef, out: &Outcome, counts: &Counts) {
    let url = o.url();
    match out {
        Outcome::Tagged {
            status,
            scanned,
            quarantined,
            note,
        } => {
            let mut line = format!("{url}: {status}");
            if let Some(r) = &scanned.report {
                // `s3://b/k: THREATS_FOUND Sig1, Sig2 in inner.zip!clam.exe`
                let found: Vec<String> = r
                    .findings
                    .iter()
                    .map(|f| match &f.path {
                        Some(p) => format!("{} in {p}", f.signature),
                        None => f.signature.clone(),
                    })
                    .collect();
                if !found.is_empty() {
                    line.push(' ');
                    line.push_str(&found.join(", "));
                }
            }
            match &scanned.verdict {
                Verdict::Unsupported(w) | Verdict::AccessDenied(w) | Verdict::Failed(w) => {
                    line.push_str(&format!(" ({w})"))
                }
                Verdict::Retry(w) => line.push_str(&format!(" (after {w})")),
                _ => {}
            }
            if let Some(q) = quarantined {
                line.push_str(&format!(" (moved to {q})"));
            }
            if let Some(n) = note {
                line.push_str(&format!(" [{n}]"));
            }
            if *status == vigil_s3scan::ScanStatus::ThreatsFound {
                counts.found.fetch_add(1, Ordering::Relaxed);
            }
            println!("{line}");
        }
        Outcome::AlreadyTagged {
            status,
            quarantined,
        } => {
            if *status == vigil_s3scan::ScanStatus::ThreatsFound {
                counts.found.fetch_add(1, Ordering::Relaxed);
            }
            match quarantined {
                Some(q) => println!("{url}: {status} already tagged (moved to {q})"),
                None => println!("{url}: {status} already tagged"),
            }
        }
        Outcome::Gone(why) => eprintln!("{url}: deleted before its scan ({why})"),
        Outcome::Ignored(why) => eprintln!("{url}: ignored ({why})"),
        Outcome::Retry(why) => {
            // An error for a rescan's exit code; a worker's message simply comes back.
            counts.errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("{url}: RETRY later: {why}");
        }
        Outcome::Untaggable(why) => {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("{url}: ERROR {why}");
        }
    }
}

pub fn run_worker(args: WorkerArgs) -> anyhow::Result<u8> {
    let (engine, loaded) = crate::cli::load_engine(
        args.database.as_deref(),
        args.config.as_deref(),
        &args.pubkey,
        args.cache_dir.as_deref(),
    )?;
    let timeout = args.timeout.unwrap_or(120);
    let limits = Limits {
        max_filesize: args.max_filesize.unwrap_or(4 << 30),
        timeout: (timeout > 0).then(|| Duration::from_secs(timeout)),
        ..Limits::default()
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let concurrency = args.s3_concurrency.unwrap_or(cpus * 2).max(1);
    let rescan = args.rescan.as_deref().map(S3Url::parse).transpose()?;
    let db = engine.db_version();
    let rt = runtime()?;
    rt.block_on(async move {
        let c = clients::connect(&Connect {
            endpoint_url: args.endpoint_url.clone(),
            region: args.region.clone(),
        })
        .await;
        let findings = match &loaded {
            Some(l) => vigil_s3scan::findings::FindingsSink::open(&l.response).await?,
            None => None,
        };
        let deliverer = findings.as_ref().map(|f| f.deliverer());
        let pipeline = Arc::new(Pipeline {
            s3: c.s3.clone(),
            scan: ScanSettings {
                engine: Arc::new(engine),
                limits,
            },
            tags: TagSettings {
                status_key: args.tag_key.clone(),
                db_key: args.db_tag_key.clone(),
            },
            quarantine: args
                .quarantine_bucket
                .clone()
                .map(|b| QuarantineTarget::new(b, args.quarantine_prefix.clone())),
            findings,
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let delivering = deliverer.clone().map(|d| {
            let mut rx = stop_rx.clone();
            tokio::spawn(async move {
                d.run(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
            })
        });
        let counts = Arc::new(Counts::default());
        let code = if let Some(url) = rescan {
            let listed = vigil_s3scan::rescan::rescan(pipeline, &url, concurrency, |o, out| {
                print_outcome(o, out, &counts)
            })
            .await;
            if let Err(e) = listed {
                eprintln!("ERROR: {e}");
                counts.errors.fetch_add(1, Ordering::Relaxed);
            }
            if counts.found.load(Ordering::Relaxed) > 0 {
                1
            } else if counts.errors.load(Ordering::Relaxed) > 0 {
                2
            } else {
                0
            }
        } else {
            let queue_url = args.queue_url.clone().unwrap_or_default();
            eprintln!(
                "s3-worker: database version {db}, queue {queue_url}, {concurrency} at a time"
            );
            let settings = WorkerSettings {
                queue_url,
                wait_seconds: args.wait_seconds,
                visibility: Duration::from_secs(args.visibility_timeout.max(1)),
                concurrency,
                max_attempts: args.max_attempts.max(1),
                idle_exit: args.idle_exit.map(Duration::from_secs),
            };
            let c2 = counts.clone();
            let t = worker::run(
                c.sqs.clone(),
                pipeline,
                settings,
                Arc::new(move |o, out| print_outcome(o, out, &c2)),
                shutdown(),
            )
            .await?;
            eprintln!(
                "s3-worker: stopped after {} messages, {} objects ({} to retry, {} errors)",
                t.messages, t.objects, t.retried, t.errors
            );
            0
        };
        let _ = stop_tx.send(true);
        if let (Some(task), Some(d)) = (delivering, deliverer) {
            let _ = task.await;
            let left: u64 = d
                .flush(Duration::from_secs(args.deliver_timeout))
                .await
                .iter()
                .map(|o| o.pending)
                .sum();
            if left > 0 {
                eprintln!("{left} finding record(s) not delivered yet stay queued in the outbox");
            }
        }
        Ok::<u8, anyhow::Error>(code)
    })
}

/// Completes at SIGTERM or Ctrl-C.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("s3-worker: stopping after the objects in flight");
}
