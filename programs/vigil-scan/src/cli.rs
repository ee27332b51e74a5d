//! Argument parsing, the scan pool and clamscan-style output. With `--daemon` the scan
//! service does the scanning (clamdscan's role) and the output is the same: both modes turn
//! every file into a [`FileResult`] and print it with one [`Printer`].

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use vigil_format::PublicKey;
use vigil_scan_core::service::{
    Client, ClientError, FileResult, ScanDone, ScanOptions, Signatures, Status, DEFAULT_SOCKET,
    SOCKET_ENV,
};
use vigil_scan_core::{Engine, Limits, Pool, ScanError, Scanned, Targets, ENGINE_VERSION};

use crate::image::{self, Origin};
use crate::respond;

#[derive(Parser)]
#[command(
    name = "vigil-scan",
    version,
    about = "Scan files with a vigil database (clamscan-style), or ask the scan service (--daemon, clamdscan-style)"
)]
pub struct Args {
    /// Database file (not used with --daemon) [default with --config: the installed one in
    /// its database_dir].
    #[arg(short = 'd', long = "database", required_unless_present_any = ["daemon", "config"])]
    database: Option<PathBuf>,
    /// vigil.toml: findings go to its [[outputs]] (through the outbox), its [[actions]] run,
    /// its [quarantine] applies with --quarantine.
    #[arg(long, value_name = "FILE", conflicts_with = "daemon")]
    config: Option<PathBuf>,
    /// Move detected files into the quarantine store (under the policy: [quarantine] of
    /// --config, or the paths given here minus the protected list).
    #[arg(long, conflicts_with = "daemon")]
    quarantine: bool,
    /// The quarantine store [default: [quarantine] dir, else /var/lib/vigil/quarantine].
    #[arg(long, value_name = "DIR", requires = "quarantine")]
    quarantine_dir: Option<PathBuf>,
    /// Quarantine at most N files in this scan; past it, one CRITICAL mass-detection finding
    /// [default: [quarantine] max_per_scan, else 20].
    #[arg(long, value_name = "N", requires = "quarantine")]
    max_quarantine: Option<usize>,
    /// With --config: how long to deliver findings after the scan; what is left stays queued.
    #[arg(long, value_name = "SECS", default_value_t = 30, requires = "config")]
    deliver_timeout: u64,
    /// Trusted public key (repeatable); defaults to the keys built into this binary.
    #[arg(long)]
    pubkey: Vec<PathBuf>,
    /// Ask the scan service (`vigil-agent`) to scan, with the database it holds.
    #[arg(long)]
    daemon: bool,
    /// The scan service's socket [default: $VIGIL_SOCKET, else /run/vigil/vigil.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Scan directories recursively.
    #[arg(short = 'r', long)]
    recursive: bool,
    /// Worker threads (default: number of CPUs; with --daemon the service decides).
    #[arg(long)]
    threads: Option<usize>,
    /// One JSON object per finding on stdout, for log shippers.
    #[arg(long)]
    json: bool,
    /// Only print infected files.
    #[arg(short = 'i', long)]
    infected: bool,
    /// Do not print the summary.
    #[arg(long)]
    no_summary: bool,
    /// Skip files larger than this (e.g. 100M, 4G) [default: 4G; with --daemon it can only
    /// lower the service's limit].
    #[arg(long, value_parser = parse_size)]
    max_filesize: Option<u64>,
    /// Per-file scan timeout in seconds, 0: none [default: 120; with --daemon it can only
    /// lower the service's timeout].
    #[arg(long)]
    timeout: Option<u64>,
    /// Directory for compiled-rule caches (default: next to the database).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    #[command(flatten)]
    archive: crate::limits::ArchiveArgs,
    /// S3 objects downloaded and scanned at once for `s3://` paths [default: twice --threads].
    #[arg(long, value_name = "N", conflicts_with = "daemon")]
    s3_concurrency: Option<usize>,
    /// The S3 endpoint for `s3://` paths (MinIO, Ceph, a VPC endpoint) [default:
    /// $AWS_ENDPOINT_URL, else AWS]; path-style addressing is used with it.
    #[arg(long, value_name = "URL", conflicts_with = "daemon")]
    endpoint_url: Option<String>,
    /// A disk image or block device to scan inside (repeatable): GPT or MBR partitions or a
    /// bare filesystem, ext2/3/4 read without mounting. Findings are named
    /// IMAGE:PART:/path/in/image (IMAGE:/path without a partition table).
    #[arg(long, value_name = "FILE|DEVICE", conflicts_with_all = ["daemon", "quarantine"])]
    image: Vec<PathBuf>,
    /// Files or directories; `-` reads stdin; `s3://BUCKET/PREFIX` scans every object under
    /// the prefix (credentials and region from the standard AWS chain).
    #[arg(required_unless_present = "image")]
    paths: Vec<PathBuf>,
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size like 4096, 100K, 25M or 4G"))
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    if args.daemon {
        run_daemon(&args)
    } else {
        run_local(args)
    }
}

/// What the summary says about the engine that scanned.
struct EngineInfo {
    engine_version: String,
    db_version: u64,
    signatures: Signatures,
}

/// Prints results as they come, from any thread, and keeps the totals.
struct Printer {
    json: bool,
    infected_only: bool,
    out: Mutex<std::io::Stdout>,
    totals: Mutex<ScanDone>,
}

impl Printer {
    fn new(args: &Args) -> Self {
        Self {
            json: args.json,
            infected_only: args.infected,
            out: Mutex::new(std::io::stdout()),
            totals: Mutex::new(ScanDone {
                done: true,
                db_version: 0,
                scanned: 0,
                infected: 0,
                errors: 0,
                skipped: 0,
                bytes: 0,
                incomplete: 0,
                signatures: Signatures::default(),
            }),
        }
    }

    /// Prints `r` under the name `path` (what the user typed, not the service's absolute path).
    fn report(&self, path: &str, r: &FileResult, engine_version: &str) {
        self.report_with(path, r, engine_version, None, None);
    }

    /// [`Printer::report`], with `note` (what quarantine did) after each FOUND; `origin` when
    /// the file is inside a disk image (JSON then says which image, partition and path).
    fn report_with(
        &self,
        path: &str,
        r: &FileResult,
        engine_version: &str,
        note: Option<&str>,
        origin: Option<&Origin>,
    ) {
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .count(r);
        let why = r.error.as_deref().unwrap_or("unknown error");
        match r.status {
            // Problems go to stderr, so --json output on stdout stays one finding per line.
            Status::Error => eprintln!("{path}: ERROR {why}"),
            Status::Skipped => eprintln!("{path}: {why}"),
            Status::Ok | Status::Found => {
                let mut o = self.out.lock().unwrap_or_else(PoisonError::into_inner);
                if self.json {
                    for f in &r.findings {
                        let line = json!({
                            "path": f.located(path), "file": path, "signature": f.signature, "kind": f.kind,
                            "severity": f.severity, "description": f.description,
                            "sha256": r.sha256, "offset": f.offset,
                            "engine_version": engine_version, "db_version": r.db_version,
                        });
                        let mut line = line;
                        if let Some(o) = origin {
                            line["path"] = json!(f.located(&o.path));
                            line["file"] = json!(o.path);
                            line["image"] = json!(o.image);
                            line["partition"] = json!(o.partition);
                            line["partition_name"] = json!(o.partition_name);
                        }
                        if let Some(n) = note {
                            line["response"] = json!(n);
                        }
                        let _ = writeln!(o, "{line}");
                    }
                } else if r.findings.is_empty() {
                    if !self.infected_only {
                        // As clamscan: a clean file whose containers were not all scanned still
                        // says OK, and the summary counts what was left out.
                        let _ = writeln!(o, "{path}: OK");
                    }
                } else {
                    for f in &r.findings {
                        let at = f.located(path);
                        match note {
                            Some(n) => {
                                let _ = writeln!(o, "{at}: {} FOUND {n}", f.signature);
                            }
                            None => {
                                let _ = writeln!(o, "{at}: {} FOUND", f.signature);
                            }
                        }
                    }
                }
            }
        }
    }

    fn failed(&self, why: &str) {
        eprintln!("ERROR: {why}");
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .errors += 1;
    }

    /// Something not scanned by design (a volume of another filesystem): counted as skipped.
    fn skipped(&self, what: &str) {
        eprintln!("{what}");
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .skipped += 1;
    }

    /// Prints the summary (unless `--no-summary`) and returns the exit code.
    fn finish(self, args: &Args, info: &EngineInfo, start: Instant) -> u8 {
        let t = self
            .totals
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if !args.no_summary {
            let s = info.signatures;
            let elapsed = start.elapsed().as_secs_f64();
            if args.json {
                eprintln!(
                    "{}",
                    json!({"summary": {"known_signatures": s.known(), "allowlist_entries": s.allowlist,
                        "engine_version": info.engine_version, "db_version": info.db_version,
                        "scanned_files": t.scanned, "infected_files": t.infected, "errors": t.errors,
                        "not_fully_scanned": t.incomplete,
                        "skipped": t.skipped, "data_scanned_bytes": t.bytes, "time_secs": elapsed}})
                );
            } else {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "\n----------- SCAN SUMMARY -----------");
                let _ = writeln!(
                    o,
                    "Known signatures: {} ({} YARA, {} body, {} hash; {} allowlisted)",
                    s.known(),
                    s.yara,
                    s.body,
                    s.hash,
                    s.allowlist
                );
                let _ = writeln!(o, "Engine version: {}", info.engine_version);
                let _ = writeln!(o, "Database version: {}", info.db_version);
                let _ = writeln!(o, "Scanned files: {}", t.scanned);
                let _ = writeln!(o, "Infected files: {}", t.infected);
                let _ = writeln!(o, "Skipped files: {}", t.skipped);
                if t.incomplete > 0 {
                    // Clean as far as it could see: encrypted members or a limit reached.
                    let _ = writeln!(o, "Not fully scanned: {}", t.incomplete);
                }
                let _ = writeln!(o, "Errors: {}", t.errors);
                let _ = writeln!(o, "Data scanned: {:.2} MB", t.bytes as f64 / 1e6);
                let _ = writeln!(o, "Time: {elapsed:.3} sec");
            }
        }
        if t.infected > 0 {
            1
        } else if t.errors > 0 {
            2
        } else {
            0
        }
    }
}

/// Loads the engine from `-d`, else the installed database of `--config`, with the trusted
/// keys (`--pubkey`, else the config's, else the built-in ones). Shared by the scan and
/// `s3-worker`.
pub fn load_engine(
    database: Option<&Path>,
    config: Option<&Path>,
    pubkeys: &[PathBuf],
    cache_dir: Option<&Path>,
) -> anyhow::Result<(Engine, Option<respond::Loaded>)> {
    let loaded = config.map(respond::load).transpose()?;
    let database = match (database, &loaded) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(l)) => respond::installed_database(&l.updater),
        (None, None) => anyhow::bail!("a database (-d) is needed without --daemon"),
    };
    let keys = if let (true, Some(l)) = (pubkeys.is_empty(), &loaded) {
        vigil_client_updater::update::load_keys(&l.updater)?
    } else if pubkeys.is_empty() {
        vigil_keys::release_keys().context("built-in keys")?
    } else {
        pubkeys
            .iter()
            .map(|p| {
                let text =
                    fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                PublicKey::parse(&text).with_context(|| format!("public key {}", p.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let db_bytes =
        fs::read(&database).with_context(|| format!("reading {}", database.display()))?;
    let cache_dir = cache_dir.map(Path::to_path_buf).unwrap_or_else(|| {
        database
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join(".vigil-cache")
    });
    let engine = Engine::load_with_cache(&db_bytes, &keys, Some(&cache_dir))
        .with_context(|| format!("{}", database.display()))?;
    Ok((engine, loaded))
}

fn run_local(args: Args) -> anyhow::Result<u8> {
    // `s3://` arguments are objects in a bucket, scanned after the local paths.
    let (s3_urls, local): (Vec<PathBuf>, Vec<PathBuf>) = args
        .paths
        .iter()
        .cloned()
        .partition(|p| p.to_str().is_some_and(|s| s.starts_with("s3://")));
    let s3_urls = s3_urls
        .iter()
        .map(|p| vigil_s3scan::S3Url::parse(&p.to_string_lossy()))
        .collect::<Result<Vec<_>, _>>()?;
    if !s3_urls.is_empty() && args.quarantine {
        anyhow::bail!("--quarantine moves local files; for s3:// objects use `vigil-scan s3-worker --rescan URL --quarantine-bucket B`");
    }
    let (engine, loaded) = load_engine(
        args.database.as_deref(),
        args.config.as_deref(),
        &args.pubkey,
        args.cache_dir.as_deref(),
    )?;
    let engine = std::sync::Arc::new(engine);
    let timeout = args.timeout.unwrap_or(120);
    let limits = Limits {
        max_filesize: args.max_filesize.unwrap_or(4 << 30),
        timeout: (timeout > 0).then(|| Duration::from_secs(timeout)),
        ..args.archive.apply(Limits::default())
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let responder = respond::responder(
        loaded.as_ref(),
        args.quarantine.then(|| respond::QuarantineArgs {
            dir: args.quarantine_dir.as_deref(),
            max: args.max_quarantine,
            paths: &local,
        }),
    )?;
    let session = responder
        .as_ref()
        .map(|r| r.session(args.quarantine, &local, engine.db_version(), ENGINE_VERSION));
    let start = Instant::now();
    let printer = Printer::new(&args);
    let db = engine.db_version();
    let emit = |path: &Path, r: FileResult, origin: Option<&Origin>| {
        // Standard input has no path to track or quarantine.
        let note = session
            .as_ref()
            .filter(|_| path != Path::new("stdin"))
            .and_then(|s| respond::file(s, path, &r));
        printer.report_with(&r.path, &r, ENGINE_VERSION, note.as_deref(), origin);
    };
    let report = |path: &Path, outcome| {
        emit(
            path,
            FileResult::from_scan(path.display().to_string(), db, outcome),
            None,
        );
    };
    // `-` is standard input, scanned here; everything else goes through the pool, in order.
    let pool = Pool::new(&engine, threads, limits);
    let mut rest = local.as_slice();
    while !rest.is_empty() {
        let n = rest
            .iter()
            .position(|p| p.as_os_str() == "-")
            .unwrap_or(rest.len());
        let (paths, after) = rest.split_at(n);
        let targets = Targets {
            paths,
            recursive: args.recursive,
            exclude: &[],
        };
        pool.scan(&targets, &|s: Scanned| {
            report(&s.path, s.outcome);
            ControlFlow::Continue(())
        })?;
        rest = match after.split_first() {
            Some((_stdin, tail)) => {
                report(
                    Path::new("stdin"),
                    engine
                        .scanner()
                        .scan_reader(std::io::stdin().lock(), &limits),
                );
                tail
            }
            None => after,
        };
    }
    if !s3_urls.is_empty() {
        let concurrency = args.s3_concurrency.unwrap_or(threads * 2).max(1);
        let settings = vigil_s3scan::ScanSettings {
            engine: engine.clone(),
            limits,
        };
        let connect = vigil_s3scan::clients::Connect {
            endpoint_url: args.endpoint_url.clone(),
            region: None,
        };
        crate::s3::scan_urls(
            &settings,
            &connect,
            &s3_urls,
            concurrency,
            &|r| printer.report(&r.path, &r, ENGINE_VERSION),
            &|why| printer.failed(why),
        )?;
    }
    if !args.image.is_empty() {
        let sink = ImageSink {
            printer: &printer,
            emit: &emit,
        };
        image::scan(&args.image, &engine, &limits, threads, &sink);
    }
    let info = EngineInfo {
        engine_version: ENGINE_VERSION.into(),
        db_version: engine.db_version(),
        signatures: Signatures::of(&engine),
    };
    let code = printer.finish(&args, &info, start);
    let responded = match (&responder, session) {
        (Some(r), Some(s)) => respond::finish(
            r,
            s,
            loaded.as_ref(),
            Duration::from_secs(args.deliver_timeout),
        ),
        _ => true,
    };
    // A scan whose findings could not be recorded is an error, whatever it found.
    Ok(if responded { code } else { code.max(2) })
}

/// Image scan results into the same printer and response as files on disk.
struct ImageSink<'a> {
    printer: &'a Printer,
    emit: &'a (dyn Fn(&Path, FileResult, Option<&Origin>) + Sync),
}

impl image::Sink for ImageSink<'_> {
    fn result(&self, origin: &Origin, r: FileResult) {
        let shown = PathBuf::from(&r.path);
        (self.emit)(&shown, r, Some(origin));
    }

    fn failed(&self, what: &str) {
        self.printer.failed(what);
    }

    fn skipped(&self, what: &str) {
        self.printer.skipped(what);
    }
}

/// `--socket`, else `$VIGIL_SOCKET`, else the default path.
fn socket_path(arg: Option<&Path>) -> PathBuf {
    arg.map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os(SOCKET_ENV)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

fn run_daemon(args: &Args) -> anyhow::Result<u8> {
    let start = Instant::now();
    let socket = socket_path(args.socket.as_deref());
    let mut client = Client::connect(&socket)?;
    let v = client
        .version()
        .with_context(|| socket.display().to_string())?;
    let mut info = EngineInfo {
        engine_version: v.engine_version,
        db_version: v.db_version,
        signatures: v.signatures,
    };
    let printer = Printer::new(args);
    let opts = ScanOptions {
        recursive: args.recursive,
        exclude: Vec::new(),
        max_filesize: args.max_filesize,
        timeout_secs: args.timeout,
    };
    // Consecutive paths go in one request; `-` is a stream request of its own, in its place.
    let mut rest = &args.paths[..];
    while !rest.is_empty() {
        let batch = rest.iter().position(|p| p.as_os_str() == "-");
        let outcome = if batch == Some(0) {
            rest = &rest[1..];
            client
                .scan_stream_with(std::io::stdin().lock(), &opts)
                .map(|(r, done)| {
                    printer.report("stdin", &r, &info.engine_version);
                    Some(done)
                })
        } else {
            let n = batch.unwrap_or(rest.len());
            let paths = &rest[..n];
            rest = &rest[n..];
            scan_batch(&mut client, paths, &opts, &printer, &info.engine_version)
        };
        match outcome {
            Ok(Some(done)) => {
                info.db_version = done.db_version;
                info.signatures = done.signatures;
            }
            Ok(None) => {}
            Err(e) => {
                printer.failed(&format!("{}: {e}", socket.display()));
                break;
            }
        }
    }
    Ok(printer.finish(args, &info, start))
}

/// Sends `paths` (made absolute) as one scan request; results are printed under the names
/// the user gave.
fn scan_batch(
    client: &mut Client,
    paths: &[PathBuf],
    opts: &ScanOptions,
    printer: &Printer,
    engine_version: &str,
) -> Result<Option<ScanDone>, ClientError> {
    let mut names: HashMap<PathBuf, &Path> = HashMap::new();
    let mut send = Vec::new();
    for p in paths {
        let shown = p.display().to_string();
        let abs = match std::path::absolute(p) {
            Ok(a) => a,
            Err(e) => {
                printer.report(
                    &shown,
                    &FileResult::from_scan(shown.clone(), 0, Err(ScanError::Io(e))),
                    engine_version,
                );
                continue;
            }
        };
        if abs.to_str().is_none() {
            let bad =
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not valid UTF-8");
            let r = FileResult::from_scan(shown.clone(), 0, Err(ScanError::Io(bad)));
            printer.report(&shown, &r, engine_version);
            continue;
        }
        names.entry(abs.clone()).or_insert(p);
        send.push(abs);
    }
    if send.is_empty() {
        return Ok(None);
    }
    let done = client.scan_with(&send, opts, |r| {
        printer.report(&shown_name(&r.path, &names), &r, engine_version);
    })?;
    Ok(Some(done))
}

/// The name a local scan would print for `path`: the argument it was found under, joined with
/// the rest of the path.
fn shown_name(path: &str, names: &HashMap<PathBuf, &Path>) -> String {
    let p = Path::new(path);
    for a in p.ancestors() {
        if let (Some(given), Ok(rest)) = (names.get(a), p.strip_prefix(a)) {
            return if rest.as_os_str().is_empty() {
                given.display().to_string()
            } else {
                given.join(rest).display().to_string()
            };
        }
    }
    path.to_string()
}
