//! Argument parsing, the file walk, the worker threads and clamscan-style output.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use vigil_format::PublicKey;
use vigil_scan_core::{Engine, Limits, ScanError, ScanReport, ENGINE_VERSION};

/// Public keys built into the binary: every `.pub` in keys/ that releases are signed with.
const BUILTIN_KEYS: &[&str] = &[include_str!("../../keys/vigil-release-2026.pub")];

#[derive(Parser)]
#[command(
    name = "vigil-scan",
    version,
    about = "Scan files with a vigil database (clamscan-style)"
)]
pub struct Args {
    /// Database file.
    #[arg(short = 'd', long = "database")]
    database: PathBuf,
    /// Trusted public key (repeatable); defaults to the keys built into this binary.
    #[arg(long)]
    pubkey: Vec<PathBuf>,
    /// Scan directories recursively.
    #[arg(short = 'r', long)]
    recursive: bool,
    /// Worker threads (default: number of CPUs).
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
    /// Skip files larger than this (e.g. 100M, 4G).
    #[arg(long, default_value = "4G", value_parser = parse_size)]
    max_filesize: u64,
    /// Per-file scan timeout in seconds (0: none).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Directory for compiled-rule caches (default: next to the database).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Files or directories; `-` reads stdin.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

fn parse_size(s: &str) -> Result<u64, String> {
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

#[derive(Default)]
struct Totals {
    scanned: u64,
    infected: u64,
    errors: u64,
    skipped: u64,
    bytes: u64,
}

enum Item {
    File(PathBuf),
    Stdin,
    Problem(PathBuf, String),
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let keys = if args.pubkey.is_empty() {
        BUILTIN_KEYS
            .iter()
            .map(|t| PublicKey::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .context("built-in keys")?
    } else {
        args.pubkey
            .iter()
            .map(|p| {
                let text =
                    fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                PublicKey::parse(&text).with_context(|| format!("public key {}", p.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let db_bytes =
        fs::read(&args.database).with_context(|| format!("reading {}", args.database.display()))?;
    let cache_dir = args.cache_dir.clone().unwrap_or_else(|| {
        args.database
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join(".vigil-cache")
    });
    let engine = Engine::load_with_cache(&db_bytes, &keys, Some(&cache_dir))
        .with_context(|| format!("{}", args.database.display()))?;
    drop(db_bytes);
    let limits = Limits {
        max_filesize: args.max_filesize,
        timeout: (args.timeout > 0).then(|| Duration::from_secs(args.timeout)),
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let start = Instant::now();
    let engine = Arc::new(engine);
    let totals = Arc::new(Mutex::new(Totals::default()));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let (tx, rx) = mpsc::sync_channel::<Item>(threads * 4);
    let rx = Arc::new(Mutex::new(rx));
    let args = Arc::new(args);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (rx, engine, totals, out, args) = (
                rx.clone(),
                engine.clone(),
                totals.clone(),
                out.clone(),
                args.clone(),
            );
            std::thread::spawn(move || {
                let mut scanner = engine.scanner();
                loop {
                    let item = match rx.lock() {
                        Ok(r) => match r.recv() {
                            Ok(i) => i,
                            Err(_) => break,
                        },
                        Err(_) => break,
                    };
                    let (path, result) = match item {
                        Item::File(p) => {
                            let r = scanner.scan_file(&p, &limits);
                            (p.display().to_string(), r)
                        }
                        Item::Stdin => (
                            "stdin".to_string(),
                            scanner.scan_reader(std::io::stdin().lock(), &limits),
                        ),
                        Item::Problem(p, why) => {
                            report_problem(&out, &totals, &p.display().to_string(), &why, true);
                            continue;
                        }
                    };
                    report(&out, &totals, &args, &engine, &path, result);
                }
            })
        })
        .collect();
    for p in &args.paths {
        if p.as_os_str() == "-" {
            let _ = tx.send(Item::Stdin);
        } else {
            walk(p, args.recursive, true, &tx);
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.join();
    }
    let t = totals
        .lock()
        .map_err(|_| anyhow::anyhow!("a scan thread panicked"))?;
    if !args.no_summary {
        let (yara, body, hash, allow) = engine.counts();
        let elapsed = start.elapsed().as_secs_f64();
        if args.json {
            eprintln!(
                "{}",
                json!({"summary": {"known_signatures": yara + body + hash, "allowlist_entries": allow,
                    "engine_version": ENGINE_VERSION, "db_version": engine.db_version(),
                    "scanned_files": t.scanned, "infected_files": t.infected, "errors": t.errors,
                    "skipped": t.skipped, "data_scanned_bytes": t.bytes, "time_secs": elapsed}})
            );
        } else {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "\n----------- SCAN SUMMARY -----------");
            let _ = writeln!(
                o,
                "Known signatures: {} ({yara} YARA, {body} body, {hash} hash; {allow} allowlisted)",
                yara + body + hash
            );
            let _ = writeln!(o, "Engine version: {ENGINE_VERSION}");
            let _ = writeln!(o, "Database version: {}", engine.db_version());
            let _ = writeln!(o, "Scanned files: {}", t.scanned);
            let _ = writeln!(o, "Infected files: {}", t.infected);
            let _ = writeln!(o, "Skipped files: {}", t.skipped);
            let _ = writeln!(o, "Errors: {}", t.errors);
            let _ = writeln!(o, "Data scanned: {:.2} MB", t.bytes as f64 / 1e6);
            let _ = writeln!(o, "Time: {elapsed:.3} sec");
        }
    }
    Ok(if t.infected > 0 {
        1
    } else if t.errors > 0 {
        2
    } else {
        0
    })
}

/// Queues files under `path`. Symlinked directories are not followed (no loops); a broken
/// or looping link, an unreadable directory or a special file is reported, and the walk goes on.
fn walk(path: &Path, recursive: bool, top: bool, tx: &mpsc::SyncSender<Item>) {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            let _ = tx.send(Item::Problem(path.to_path_buf(), e.to_string()));
            return;
        }
    };
    if meta.is_dir() {
        if !top && !recursive {
            return;
        }
        if !top && fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return;
        }
        let entries = match fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => {
                let _ = tx.send(Item::Problem(path.to_path_buf(), e.to_string()));
                return;
            }
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for c in children {
            walk(&c, recursive, false, tx);
        }
    } else if meta.is_file() {
        let _ = tx.send(Item::File(path.to_path_buf()));
    } else {
        let _ = tx.send(Item::Problem(
            path.to_path_buf(),
            "SKIP not a regular file".into(),
        ));
    }
}

fn report_problem(
    out: &Mutex<std::io::Stdout>,
    totals: &Mutex<Totals>,
    path: &str,
    why: &str,
    error: bool,
) {
    let skip = why.starts_with("SKIP ");
    if let Ok(mut t) = totals.lock() {
        if skip || !error {
            t.skipped += 1;
        } else {
            t.errors += 1;
        }
    }
    // Problems go to stderr, so --json output on stdout stays one finding per line.
    let _ = out;
    if skip {
        eprintln!("{path}: {}", &why[5..]);
    } else {
        eprintln!("{path}: ERROR {why}");
    }
}

fn report(
    out: &Mutex<std::io::Stdout>,
    totals: &Mutex<Totals>,
    args: &Args,
    engine: &Engine,
    path: &str,
    result: Result<ScanReport, ScanError>,
) {
    let r = match result {
        Ok(r) => r,
        Err(ScanError::TooLarge { size, limit }) => {
            return report_problem(
                out,
                totals,
                path,
                &format!("SKIP size limit exceeded ({size} > {limit} bytes)"),
                false,
            )
        }
        Err(ScanError::NotRegular) => {
            return report_problem(out, totals, path, "SKIP not a regular file", false)
        }
        Err(e) => return report_problem(out, totals, path, &e.to_string(), true),
    };
    if let Ok(mut t) = totals.lock() {
        t.scanned += 1;
        t.bytes += r.size;
        if !r.findings.is_empty() {
            t.infected += 1;
        }
    }
    let Ok(mut o) = out.lock() else { return };
    if args.json {
        for f in &r.findings {
            let line = json!({
                "path": path, "signature": f.signature, "kind": f.kind, "severity": f.severity,
                "description": f.description, "sha256": r.sha256, "offset": f.offset,
                "engine_version": ENGINE_VERSION, "db_version": engine.db_version(),
            });
            let _ = writeln!(o, "{line}");
        }
    } else if r.findings.is_empty() {
        if !args.infected {
            let _ = writeln!(o, "{path}: OK");
        }
    } else {
        for f in &r.findings {
            let _ = writeln!(o, "{path}: {} FOUND", f.signature);
        }
    }
}
