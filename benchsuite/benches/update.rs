//! Update benchmark on the real pieces: databases built by vigil-compiler, a TUF directory
//! repository published by vigil-repository and served by a `vigil-server` child process, the
//! updater library over HTTP, and the agent's scan service on a Unix socket. Prints a markdown
//! table on stdout (progress goes to stderr):
//!
//! 1. a one-rule update by delta against a full download: metadata and target bytes, wall time;
//! 2. 30 daily updates (one rule added or changed a day) by delta against 30 full downloads;
//! 3. files scanned per second through the scan service during 100 hot swaps against none, and
//!    failed scans;
//! 4. RSS: steady with one engine, one engine's size, and the peak during the swaps, each done
//!    as the agent does it (the engine swapped out last is freed after its last scan, before
//!    the next is loaded), with glibc's default malloc arenas and with `MALLOC_ARENA_MAX=2`.
//!
//! `cargo test --workspace --release --no-run && cargo bench --workspace --bench update` (the
//! bench starts the vigil-server of that build, which `cargo bench` alone does not rebuild).
//!
//! Rules: the community YARA rule set (../shared/corpora/yara-rules-community, or
//! $VIGIL_COMMUNITY_RULES) plus rules-src's EICAR signatures, which the updater's smoke test
//! needs; without the community set, rules-src alone, and row 2 is skipped. Knobs:
//! VIGIL_BENCH_DAYS (30), VIGIL_BENCH_SWAPS (100), VIGIL_BENCH_SCAN_SECS (10).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use vigil_agent::service::{bind, serve, ServiceConfig};
use vigil_client_updater::install::{eicar, ACTIVE, LAST_KNOWN_GOOD};
use vigil_client_updater::update::load_keys;
use vigil_client_updater::{update, Config, Options, Outcome};
use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::container::Parsed;
use vigil_format::delta::Delta;
use vigil_format::{PublicKey, SecretKey};
use vigil_scan_core::service::{Client, Status};
use vigil_scan_core::{Engine, Limits, SharedEngine};
use vigil_tests::updater::{copy_dir, vigil_server, Repo};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus() -> Option<PathBuf> {
    let p = std::env::var_os("VIGIL_COMMUNITY_RULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/corpora/yara-rules-community"));
    p.is_dir().then_some(p)
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Rules and databases

/// A rules directory in a temporary tree (never inside the project), changed a rule at a time.
struct RuleSet {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    label: String,
    community: bool,
}

fn rule_set() -> RuleSet {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("rules");
    let src = workspace().join("rules-src");
    let (label, community) = match corpus() {
        Some(c) => {
            eprintln!("importing {} …", c.display());
            let imported = vigil_tests::thirdparty::import_yara_dir(&c);
            vigil_tests::thirdparty::write_tree(&dir, &imported.kept).expect("writing rules");
            // The updater smoke-tests every database on EICAR before it activates it.
            let eicar_dir = dir.join("vigil-eicar");
            fs::create_dir_all(&eicar_dir).expect("mkdir");
            for f in ["eicar.ndb", "eicar.hdb", "eicar.hsb"] {
                fs::copy(src.join("clamav").join(f), eicar_dir.join(f)).expect("copying EICAR");
            }
            let label = format!(
                "community YARA rule set ({} of {} files kept) + rules-src EICAR signatures",
                imported.kept.len(),
                imported.kept.len() + imported.dropped.len()
            );
            (label, true)
        }
        None => {
            copy_dir(&src, &dir);
            ("rules-src (community rule set not found)".to_owned(), false)
        }
    };
    RuleSet {
        _tmp: tmp,
        dir,
        label,
        community,
    }
}

/// The string that rule `n`, revision `rev`, looks for.
fn rule_marker(n: u64, rev: u64) -> String {
    format!("vigil-bench-rule-{n}-rev-{rev}")
}

fn write_rule(rules: &Path, n: u64, rev: u64) {
    let dir = rules.join("vigil-bench");
    fs::create_dir_all(&dir).expect("mkdir");
    let text = format!(
        "rule Vigil_Bench_Rule_{n}\n{{\n    meta:\n        severity = \"low\"\n        \
         description = \"Benchmark rule {n}, revision {rev}\"\n        author = \"vigil bench\"\n        \
         reference = \"https://example.invalid/vigil-bench\"\n        date = \"2026-01-01\"\n    \
         strings:\n        $a = \"{}\"\n    condition:\n        $a\n}}\n",
        rule_marker(n, rev)
    );
    fs::write(dir.join(format!("rule_{n}.yar")), text).expect("writing a rule");
}

/// Turns the sources of version `v - 1` into those of `v` (v >= 2): one rule changes. Step
/// `v - 1` odd adds rule `v - 1`; even, it rewrites the rule the step before added.
fn change(rules: &Path, v: u64) -> &'static str {
    let step = v - 1;
    if step % 2 == 1 {
        write_rule(rules, step, 0);
        "added"
    } else {
        write_rule(rules, step - 1, 1);
        "modified"
    }
}

/// (database bytes, YARA rules in it).
fn build_db(rules: &Path, key: &SecretKey, v: u64) -> (Vec<u8>, usize) {
    let files = sources::collect(&[rules.to_path_buf()]).expect("collecting rules");
    let built = build(&files, key, &BuildOptions::new(v)).expect("building a database");
    (built.bytes, built.lint.yara_rules.len())
}

// ---------------------------------------------------------------------------------------------
// Updating

/// One update's cost.
#[derive(Clone, Copy, Default)]
struct Cost {
    metadata: u64,
    target: u64,
    time: Duration,
    updates: u64,
    /// Updates that went by delta (for the delta client) or in full (for the full client).
    as_intended: u64,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Self) {
        self.metadata += o.metadata;
        self.target += o.target;
        self.time += o.time;
        self.updates += o.updates;
        self.as_intended += o.as_intended;
    }
}

/// A client with its own database directory, driven through the updater library.
struct Updater {
    dir: PathBuf,
    cfg: Config,
    keys: Vec<PublicKey>,
}

impl Updater {
    fn new(dir: PathBuf, mirror: &str, repo: &Repo) -> Self {
        let text = format!(
            "mirrors = [{mirror:?}]\ndatabase_dir = {:?}\ntrusted_root = {:?}\npubkeys = [{:?}]\n",
            dir.display().to_string(),
            repo.root_json().display().to_string(),
            repo.pubkey.display().to_string(),
        );
        let cfg = Config::parse(&text, &dir.join("vigil.toml")).expect("config");
        let keys = load_keys(&cfg).expect("public keys");
        Self { dir, cfg, keys }
    }

    /// Updates to the newest version. `full`: with no database installed (as a client that
    /// does not keep one), so the whole file is downloaded; the TUF metadata stays, as a
    /// returning client's would.
    fn update(&self, rt: &Runtime, full: bool) -> Cost {
        if full {
            for f in [ACTIVE, LAST_KNOWN_GOOD] {
                let _ = fs::remove_file(self.dir.join(f));
            }
        }
        let t = Instant::now();
        let outcome = rt
            .block_on(update(&self.cfg, &self.keys, &Options::default()))
            .expect("update");
        let time = t.elapsed();
        let Outcome::Updated { report, engine } = outcome else {
            panic!("expected an update: {:?}", outcome.report());
        };
        drop(engine);
        if let Some(why) = &report.delta_fallback {
            eprintln!("  delta fell back to a full download: {why}");
        }
        let by_delta = !report.deltas.is_empty() && !report.full_download;
        Cost {
            metadata: report.metadata_bytes,
            target: report.target_bytes,
            time,
            updates: 1,
            as_intended: u64::from(by_delta != full),
        }
    }
}

/// The newest timestamp, snapshot and targets metadata in a directory repository: what a
/// client downloads on each update, and the number of targets listed.
fn metadata_sizes(repo: &Path) -> String {
    let dir = repo.join("metadata");
    let newest = |suffix: &str| -> Option<PathBuf> {
        fs::read_dir(&dir)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let n: u64 = name.strip_suffix(suffix)?.parse().ok()?;
                Some((n, e.path()))
            })
            .max_by_key(|(n, _)| *n)
            .map(|(_, p)| p)
    };
    let len = |p: Option<PathBuf>| p.and_then(|p| fs::metadata(p).ok()).map_or(0, |m| m.len());
    let targets = newest(".targets.json");
    let listed = targets
        .as_ref()
        .and_then(|p| fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["signed"]["targets"].as_object().map(|t| t.len()))
        .unwrap_or(0);
    format!(
        "timestamp {}, snapshot {}, targets {} ({listed} targets listed)",
        size(len(Some(dir.join("timestamp.json")))),
        size(len(newest(".snapshot.json"))),
        size(len(targets)),
    )
}

/// What `Delta::apply` costs the client for `old` → `new` (the updater's step before
/// verifying the result), and the expanded size it patches.
fn apply_cost(old: &[u8], new: &[u8]) -> (Duration, u64) {
    let delta = Delta::create(old, new).expect("delta");
    let mut times: Vec<Duration> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let out = Delta::apply(old, &delta).expect("apply");
            let time = t.elapsed();
            assert_eq!(out, new, "the delta rebuilds the new database");
            time
        })
        .collect();
    times.sort();
    let expanded = Parsed::parse(old)
        .and_then(|p| p.expand())
        .expect("expand")
        .len();
    (times[1], expanded as u64)
}

// ---------------------------------------------------------------------------------------------
// Scanning through the service while engines are swapped

/// Signature names per file name.
type Verdicts = BTreeMap<String, Vec<String>>;

fn file_name(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A few dozen files: EICAR, samples/, rules-src's files as text, a file only the second
/// database detects, and generated text and binary files of 1 KiB to 256 KiB.
fn scan_corpus(dir: &Path) -> usize {
    fs::create_dir_all(dir).expect("mkdir");
    fs::write(dir.join("eicar.com"), eicar()).expect("write");
    fs::write(dir.join("new-rule.txt"), rule_marker(1, 0)).expect("write");
    copy_flat(&workspace().join("samples"), dir, "samples");
    copy_flat(&workspace().join("rules-src"), dir, "rules-src");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..12u32 {
        let len = 1024usize << (i % 9);
        let bin: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        fs::write(dir.join(format!("random-{i}.bin")), bin).expect("write");
        let line = format!("#{i} backup /etc to /var/backups with tar czf, then rsync it off\n");
        fs::write(
            dir.join(format!("text-{i}.txt")),
            line.repeat(len / line.len() + 1),
        )
        .expect("write");
    }
    fs::read_dir(dir).expect("read_dir").count()
}

/// Copies every file under `from` into `to`, named `prefix-<file name>`.
fn copy_flat(from: &Path, to: &Path, prefix: &str) {
    let mut stack = vec![from.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = format!("{prefix}-{}", e.file_name().to_string_lossy());
                fs::copy(&p, to.join(name)).expect("copy");
            }
        }
    }
}

fn verdicts(engine: &Engine, dir: &Path) -> Verdicts {
    fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .map(|e| {
            let mut sigs: Vec<String> = engine
                .scan_file(&e.path(), &Limits::default())
                .expect("scan")
                .findings
                .into_iter()
                .map(|f| f.signature)
                .collect();
            sigs.sort();
            (e.file_name().to_string_lossy().into_owned(), sigs)
        })
        .collect()
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    files: AtomicU64,
    failed: AtomicU64,
    versions: Mutex<BTreeSet<u64>>,
    first_failure: Mutex<Option<String>>,
}

impl Counters {
    fn fail(&self, n: u64, why: String) {
        self.failed.fetch_add(n, Ordering::SeqCst);
        let mut first = self.first_failure.lock().expect("lock");
        first.get_or_insert(why);
    }
}

struct Phase {
    files: u64,
    requests: u64,
    failed: u64,
    elapsed: Duration,
    versions: BTreeSet<u64>,
    first_failure: Option<String>,
}

impl Phase {
    fn files_per_sec(&self) -> f64 {
        self.files as f64 / self.elapsed.as_secs_f64()
    }
}

/// Client threads scan `dir` through the service until `drive` returns; every file result is
/// checked against what the engine of its `db_version` finds when asked directly.
fn scan_phase(
    socket: &Path,
    dir: &Path,
    expect: &Arc<BTreeMap<u64, Verdicts>>,
    clients: usize,
    drive: impl FnOnce(&Counters),
) -> Phase {
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (counters, stop, expect) = (counters.clone(), stop.clone(), expect.clone());
            let (socket, dir) = (socket.to_path_buf(), dir.to_path_buf());
            std::thread::spawn(move || client_loop(&socket, &dir, &expect, &counters, &stop))
        })
        .collect();
    drive(&counters);
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("client thread");
    }
    let elapsed = started.elapsed();
    let versions = counters.versions.lock().expect("lock").clone();
    let first_failure = counters.first_failure.lock().expect("lock").clone();
    Phase {
        files: counters.files.load(Ordering::SeqCst),
        requests: counters.requests.load(Ordering::SeqCst),
        failed: counters.failed.load(Ordering::SeqCst),
        elapsed,
        versions,
        first_failure,
    }
}

fn client_loop(
    socket: &Path,
    dir: &Path,
    expect: &BTreeMap<u64, Verdicts>,
    counters: &Counters,
    stop: &AtomicBool,
) {
    let n = expect.values().next().map_or(0, |v| v.len() as u64);
    let mut client = None;
    while !stop.load(Ordering::SeqCst) {
        let c = match client.as_mut() {
            Some(c) => c,
            None => match Client::connect(socket) {
                Ok(c) => client.insert(c),
                Err(e) => {
                    counters.fail(n, format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let mut got: BTreeMap<String, Result<Vec<String>, String>> = BTreeMap::new();
        let mut versions = BTreeSet::new();
        let done = c.scan(&[dir.to_path_buf()], false, |r| {
            versions.insert(r.db_version);
            let v = if matches!(r.status, Status::Ok | Status::Found) {
                let mut sigs: Vec<String> = r.findings.into_iter().map(|f| f.signature).collect();
                sigs.sort();
                Ok(sigs)
            } else {
                Err(format!("{:?}: {:?}", r.status, r.error))
            };
            got.insert(file_name(&r.path), v);
        });
        let done = match done {
            Ok(d) => d,
            Err(e) => {
                counters.fail(n, format!("scan request: {e}"));
                client = None;
                continue;
            }
        };
        counters.requests.fetch_add(1, Ordering::SeqCst);
        counters.files.fetch_add(done.scanned, Ordering::SeqCst);
        counters
            .versions
            .lock()
            .expect("lock")
            .insert(done.db_version);
        let Some(want) = expect.get(&done.db_version) else {
            counters.fail(n, format!("unknown database version {}", done.db_version));
            continue;
        };
        if versions.iter().any(|v| *v != done.db_version) {
            counters.fail(n, format!("one request saw versions {versions:?}"));
            continue;
        }
        for (name, sigs) in want {
            match got.get(name) {
                Some(Ok(g)) if g == sigs => {}
                other => counters.fail(
                    1,
                    format!(
                        "{name} on v{}: got {other:?}, want {sigs:?}",
                        done.db_version
                    ),
                ),
            }
        }
    }
}

/// `VmRSS`, `VmHWM`… from /proc/self/status, in bytes.
fn proc_status(field: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// Resets `VmHWM` to the current RSS; false where the kernel does not allow it.
fn reset_peak() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The agent's release of a swapped-out engine, and how long it took.
#[derive(Default)]
struct Release {
    waits: u32,
    total: Duration,
    longest: Duration,
    /// Waits that gave up with a scan still holding the engine (the agent gives up after the
    /// scan timeout + 60 s; here after 60 s).
    timed_out: u32,
}

impl Release {
    /// Retires `old` exactly as the agent does (`vigil_agent::retire`).
    fn wait_for(&mut self, old: Arc<Engine>) {
        let since = Instant::now();
        // The agent's own code: wait for the last scan, free, trim the heap.
        if !vigil_agent::retire(old, Duration::from_secs(60)) {
            self.timed_out += 1;
        }
        let waited = since.elapsed();
        self.waits += 1;
        self.total += waited;
        self.longest = self.longest.max(waited);
    }
}

struct SwapBench {
    files_per_request: usize,
    clients: usize,
    warm_load: Duration,
    quiet: Phase,
    swapping: Phase,
    swaps: u64,
    rss_none: u64,
    steady: u64,
    engine: u64,
    peak: u64,
    /// RSS once the swaps are over.
    after: u64,
    /// Most engines alive at once during the swaps (at a load).
    max_alive: usize,
    release: Release,
    peak_one: u64,
    peak_cold: u64,
    peak_reset: bool,
    cache_file: u64,
}

/// Rows 3 and 4, in a process of their own (see [`swap_rows`]). The compiled-rule cache in
/// `cache` is warm, as it is after the updater's smoke test, so every load here is a warm one
/// but the last, which compiles as an update's load does.
fn swap_bench(v1: &[u8], v2: &[u8], keys: &[PublicKey], cache: &Path) -> SwapBench {
    let secs = knob("VIGIL_BENCH_SCAN_SECS", 10);
    let swaps = knob("VIGIL_BENCH_SWAPS", 100);
    let tmp = tempfile::tempdir().expect("tempdir");
    let files = tmp.path().join("files");
    let files_per_request = scan_corpus(&files);
    let load = |db: &[u8]| Engine::load_with_cache(db, keys, Some(cache)).expect("load");

    let rss_none = proc_status("VmRSS");
    let first = load(v1);
    let mut expect = BTreeMap::from([(1, verdicts(&first, &files))]);
    let shared = Arc::new(SharedEngine::new(first));
    let socket = tmp.path().join("vigil.sock");
    let listener = bind(&socket, 0o600, None).expect("binding the scan socket");
    let stop = Arc::new(AtomicBool::new(false));
    let cfg = ServiceConfig {
        socket: socket.clone(),
        socket_mode: 0o600,
        threads: 1,
        ..ServiceConfig::default()
    };
    let service = {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || serve(listener, shared, cfg, stop))
    };
    let clients = 2;

    eprintln!("scanning without swaps for {secs} s …");
    let peak_reset = reset_peak();
    let quiet = scan_phase(&socket, &files, &Arc::new(expect.clone()), clients, |_| {
        std::thread::sleep(Duration::from_secs(secs));
    });
    let steady = if peak_reset {
        proc_status("VmHWM")
    } else {
        proc_status("VmRSS")
    };
    // One swap alone, as an update does it: the second engine is loaded beside the first (its
    // size is the RSS growth), swapped in, and the first freed (no scan is in progress).
    reset_peak();
    let before = proc_status("VmRSS");
    let second = load(v2);
    let engine = proc_status("VmRSS").saturating_sub(before);
    drop(shared.swap(second));
    let peak_one = proc_status("VmHWM");
    expect.insert(2, verdicts(&shared.current(), &files));
    assert_ne!(
        expect[&1], expect[&2],
        "the second database finds new-rule.txt"
    );
    let expect = Arc::new(expect);

    eprintln!("scanning during {swaps} hot swaps …");
    reset_peak();
    let mut warm = Duration::ZERO;
    // Every engine swapped out, to count those still alive (by construction none at a load).
    let mut retired: Vec<Weak<Engine>> = Vec::new();
    let mut max_alive = 1;
    let mut release = Release::default();
    let swapping = scan_phase(&socket, &files, &expect, clients, |c| {
        // The agent's sequence (`check_and_swap` in src/agent.rs): the engine swapped out last
        // time is freed once its last scan has let go, then the next one is loaded and swapped
        // in, and the old one it returns becomes the retiring one.
        let mut retiring: Option<Arc<Engine>> = None;
        for i in 0..swaps {
            // Every engine serves at least one request.
            let before = c.requests.load(Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(60);
            while c.requests.load(Ordering::SeqCst) == before && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if let Some(old) = retiring.take() {
                release.wait_for(old);
            }
            retired.retain(|w| w.strong_count() > 0);
            // The current engine, any retired one still alive (none, unless a wait timed out),
            // and the one being loaded.
            max_alive = max_alive.max(retired.len() + 2);
            let t = Instant::now();
            let next = load(if i % 2 == 0 { v1 } else { v2 });
            warm += t.elapsed();
            let old = shared.swap(next);
            retired.push(Arc::downgrade(&old));
            retiring = Some(old);
        }
        if let Some(old) = retiring {
            release.wait_for(old);
        }
    });
    let peak = proc_status("VmHWM");
    let after = proc_status("VmRSS");

    // What a real update costs at its peak: the new database compiled (not cached), then swapped.
    reset_peak();
    let next = Engine::load(v1, keys).expect("load");
    drop(shared.swap(next));
    let peak_cold = proc_status("VmHWM");
    let cache_file = fs::read_dir(cache)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);

    stop.store(true, Ordering::SeqCst);
    service
        .join()
        .expect("service thread")
        .expect("scan service");
    SwapBench {
        files_per_request,
        clients,
        warm_load: warm / u32::try_from(swaps.max(1)).unwrap_or(u32::MAX),
        quiet,
        swapping,
        swaps,
        rss_none,
        steady,
        engine,
        peak,
        after,
        max_alive,
        release,
        peak_one,
        peak_cold,
        peak_reset,
        cache_file,
    }
}

/// Set in the child process that runs rows 3 and 4: the directory with v1.vdb, v2.vdb,
/// vigil.pub and the warm cache.
const CHILD_DIR: &str = "VIGIL_BENCH_SWAP_DIR";
/// The cold load time the parent measured, for the child's row.
const CHILD_COLD_MS: &str = "VIGIL_BENCH_COLD_MS";
/// glibc's cap on malloc arenas, read at process start.
const ARENAS: &str = "MALLOC_ARENA_MAX";

/// Rows 3 and 4 run in a fresh process: this one's heap still holds what the import, the
/// builds and the cold compiles freed, and an engine loaded into that space would seem to cost
/// almost nothing. The cache is filled here, so the child only loads warm. The child runs
/// twice: with glibc's default malloc arenas, then with `MALLOC_ARENA_MAX=2`. Returns the
/// table rows and notes.
fn swap_rows(v1: &[u8], v2: &[u8], key: &SecretKey) -> (Vec<String>, Vec<String>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The engine trusts a compiled-rule cache only in a private directory (tempdir is 0700).
    let cache = tmp.path().join("cache");
    fs::create_dir(&cache).expect("mkdir");
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o700)).expect("chmod");
    eprintln!("compiling both databases (cold loads) …");
    let t = Instant::now();
    for db in [v1, v2] {
        drop(Engine::load_with_cache(db, &[key.public()], Some(&cache)).expect("load"));
    }
    let cold = t.elapsed() / 2;
    fs::write(tmp.path().join("v1.vdb"), v1).expect("write");
    fs::write(tmp.path().join("v2.vdb"), v2).expect("write");
    fs::write(tmp.path().join("vigil.pub"), key.public().to_text()).expect("write");
    let exe = std::env::current_exe().expect("current_exe");
    let run = |arenas: Option<&str>| {
        let mut cmd = Command::new(&exe);
        cmd.env(CHILD_DIR, tmp.path())
            .env(CHILD_COLD_MS, cold.as_millis().to_string())
            .env_remove(ARENAS)
            .stderr(Stdio::inherit());
        if let Some(n) = arenas {
            eprintln!("again with {ARENAS}={n} …");
            cmd.env(ARENAS, n);
        }
        let out = cmd.output().expect("running the swap bench");
        assert!(
            out.status.success(),
            "the swap bench failed: {}",
            out.status
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let default = run(None);
    // glibc keeps freed memory in per-thread arenas (up to 8 per core); the systemd unit could
    // cap them as this run does. Only its RSS rows and failed scans are kept.
    let capped = run(Some("2"));
    let (mut rows, mut notes): (Vec<String>, Vec<String>) = default
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .partition(|l| l.starts_with('|'));
    for l in capped.lines().filter(|l| !l.is_empty()) {
        if !l.starts_with('|') {
            notes.push(l.to_owned());
        } else if l.starts_with("| 4.") || l.starts_with("| 3. failed") {
            rows.push(l.to_owned());
        }
    }
    (rows, notes)
}

/// The child: prints rows 3 and 4, then notes.
fn swap_child(dir: &Path) {
    let read = |name: &str| fs::read(dir.join(name)).expect("reading the databases");
    let (v1, v2) = (read("v1.vdb"), read("v2.vdb"));
    let key = PublicKey::parse(&String::from_utf8_lossy(&read("vigil.pub"))).expect("key");
    let cold = Duration::from_millis(knob(CHILD_COLD_MS, 0));
    let sw = swap_bench(&v1, &v2, &[key], &dir.join("cache"));
    let (q, s) = (&sw.quiet, &sw.swapping);
    row(&[
        &format!(
            "3. files scanned/s via the scan service ({} client threads, {} files a request)",
            sw.clients, sw.files_per_request
        ),
        &format!(
            "{:.0} ({} swaps in {})",
            s.files_per_sec(),
            sw.swaps,
            secs(s.elapsed)
        ),
        &format!("{:.0} ({})", q.files_per_sec(), secs(q.elapsed)),
        "",
        "",
    ]);
    row(&[
        "3. scan requests answered (database versions seen)",
        &format!("{} ({:?})", s.requests, s.versions),
        &format!("{} ({:?})", q.requests, q.versions),
        "",
        "",
    ]);
    row(&[
        &format!(
            "3. engine load: warm (compiled-rule cache, {}) per swap / cold",
            size(sw.cache_file)
        ),
        &secs(sw.warm_load),
        &secs(cold),
        "",
        "",
    ]);
    let hwm = if sw.peak_reset {
        "VmHWM"
    } else {
        "VmHWM, not reset: clear_refs refused"
    };
    // Which malloc this child ran with: the parent runs it with and without an arena cap.
    let arenas = std::env::var(ARENAS).map_or_else(
        |_| "glibc default arenas".to_owned(),
        |n| format!("{ARENAS}={n}"),
    );
    row(&[
        &format!("3. failed scans (error, wrong or mixed verdict, failed request; {arenas})"),
        &s.failed.to_string(),
        &q.failed.to_string(),
        "0",
        yes(s.failed == 0 && q.failed == 0),
    ]);
    row(&[
        &format!(
            "4. RSS: fresh process, no engine / steady, one engine (peak of the no-swap phase; {arenas})"
        ),
        &mib(sw.rss_none),
        &mib(sw.steady),
        "",
        "",
    ]);
    row(&[
        &format!("4. one engine (RSS growth from loading a second, warm; {arenas})"),
        &mib(sw.engine),
        "",
        "",
        "",
    ]);
    let limit = sw.steady as f64 * 1.2 + sw.engine as f64;
    let r = &sw.release;
    row(&[
        &format!(
            "4. peak RSS during {} swaps as the agent does them: the old engine freed after its \
             last scan, then the next loaded ({hwm}; at most {} engines alive; waits for the \
             last scan: longest {}, mean {}, {} timed out; RSS after: {}; {arenas})",
            sw.swaps,
            sw.max_alive,
            millis(r.longest),
            millis(r.total / r.waits.max(1)),
            r.timed_out,
            mib(sw.after)
        ),
        &mib(sw.peak),
        &format!("limit {}", mib(limit as u64)),
        "≤ 1.2 × steady + engine",
        yes(sw.peak as f64 <= limit),
    ]);
    row(&[
        &format!(
            "4. peak RSS, one warm swap alone, before the others (no older engine still scanning; {arenas})"
        ),
        &mib(sw.peak_one),
        &format!("limit {}", mib(limit as u64)),
        "≤ 1.2 × steady + engine",
        yes(sw.peak_one as f64 <= limit),
    ]);
    row(&[
        &format!(
            "4. peak RSS, one swap after a cold compile (an update's load, no cache), after the others ({arenas})"
        ),
        &mib(sw.peak_cold),
        &format!("limit {}", mib(limit as u64)),
        "for information",
        if sw.peak_cold as f64 <= limit {
            "(within)"
        } else {
            "(over)"
        },
    ]);
    for (name, p) in [("no swaps", q), ("swaps", s)] {
        if let Some(f) = &p.first_failure {
            println!("First failure ({name}; {arenas}): {f}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The table

fn size(n: u64) -> String {
    if n < 10 * 1024 {
        format!("{n} B")
    } else if n < 10 << 20 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    }
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
}

fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn yes(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**no**"
    }
}

fn row(cells: &[&str]) {
    println!("| {} |", cells.join(" | "));
}

/// Rows for one update by delta beside one full download.
fn update_rows(what: &str, delta: &Cost, full: &Cost) {
    let note = if delta.as_intended == 1 && full.as_intended == 1 {
        ""
    } else {
        " (**not by delta**)"
    };
    row(&[
        &format!("{what}: metadata bytes{note}"),
        &size(delta.metadata),
        &size(full.metadata),
        "≤ 8 KiB",
        yes(delta.metadata <= 8 << 10),
    ]);
    row(&[
        &format!("{what}: target bytes"),
        &size(delta.target),
        &size(full.target),
        "≤ 4 KiB",
        yes(delta.target <= 4 << 10 && delta.as_intended == 1),
    ]);
    row(&[
        &format!("{what}: wall time (incl. load + smoke test)"),
        &secs(delta.time),
        &secs(full.time),
        "",
        "",
    ]);
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        swap_child(Path::new(&dir));
        return;
    }
    let started = Instant::now();
    let days = knob("VIGIL_BENCH_DAYS", 30);

    let set = rule_set();
    let repo = Repo::new();
    let key = &repo.key;
    eprintln!("building versions 1 and 2 …");
    let t = Instant::now();
    let (v1, rules) = build_db(&set.dir, key, 1);
    let build_time = t.elapsed();
    let added = change(&set.dir, 2);
    let (v2, _) = build_db(&set.dir, key, 2);

    let (swap_rows, swap_notes) = swap_rows(&v1, &v2, key);

    // Rows 1 and 2: a client updating by delta, and one that downloads in full.
    let server = vigil_server(&repo.dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let work = tempfile::tempdir().expect("tempdir");
    let delta_client = Updater::new(work.path().join("delta"), &server.url, &repo);
    let full_client = Updater::new(work.path().join("full"), &server.url, &repo);
    eprintln!("publishing version 1; both clients install it in full …");
    repo.publish_db(&v1);
    let first = full_client.update(&rt, true);
    delta_client.update(&rt, true);
    eprintln!("publishing version 2 ({added} one rule) …");
    repo.publish_db(&v2);
    let one_delta = delta_client.update(&rt, false);
    let one_full = full_client.update(&rt, true);
    let (apply_time, expanded) = apply_cost(&v1, &v2);

    let series = set.community.then(|| {
        let (mut d_total, mut f_total) = (Cost::default(), Cost::default());
        let mut max_meta = 0;
        let mut last = None;
        for v in 3..3 + days {
            let what = change(&set.dir, v);
            let (db, _) = build_db(&set.dir, key, v);
            repo.publish_db(&db);
            // Alternate which client goes first, so neither gains from the other's warm caches.
            let (d, f) = if v % 2 == 0 {
                let f = full_client.update(&rt, true);
                (delta_client.update(&rt, false), f)
            } else {
                (
                    delta_client.update(&rt, false),
                    full_client.update(&rt, true),
                )
            };
            eprintln!(
                "day {:>2}: one rule {what:<8} delta {} + {} metadata in {}; full {} in {}",
                v - 2,
                size(d.target),
                size(d.metadata),
                secs(d.time),
                size(f.target),
                secs(f.time)
            );
            max_meta = max_meta.max(d.metadata);
            d_total += d;
            f_total += f;
            last = Some((v, what, d, f));
        }
        (d_total, f_total, max_meta, last)
    });
    drop(server);
    let metadata_files = metadata_sizes(&repo.dir);

    println!();
    println!(
        "## vigil-update on {} ({rules} YARA rules; database {}, built in {})",
        set.label,
        size(v1.len() as u64),
        secs(build_time)
    );
    println!();
    row(&[
        "measure",
        "vigil: by delta / during swaps",
        "reference: full download / no swaps",
        "goal",
        "met",
    ]);
    row(&["---", "---:", "---:", "---", "---"]);
    update_rows(
        &format!("1. one rule {added}, v1 → v2 (repository with 2 versions)"),
        &one_delta,
        &one_full,
    );
    row(&[
        &format!(
            "1. of which applying the delta (expand {} → patch → recompress, median of 3)",
            size(expanded)
        ),
        &secs(apply_time),
        "",
        "",
        "",
    ]);
    match &series {
        Some((d, f, max_meta, last)) => {
            if let Some((v, what, ld, lf)) = last {
                update_rows(
                    &format!(
                        "1b. one rule {what}, v{} → v{v} (after {days} days; 5 versions kept)",
                        v - 1
                    ),
                    ld,
                    lf,
                );
            }
            row(&[
                &format!("1b. metadata files after {days} days: {metadata_files}"),
                "",
                "",
                "",
                "",
            ]);
            let n = d.updates;
            row(&[
                &format!("2. {n} daily updates, one rule each: metadata bytes"),
                &size(d.metadata),
                &size(f.metadata),
                &format!("max per update {}", size(*max_meta)),
                "",
            ]);
            row(&[
                &format!("2. {n} daily updates: target bytes"),
                &size(d.target),
                &size(f.target),
                "",
                "",
            ]);
            let (dt, ft) = (d.metadata + d.target, f.metadata + f.target);
            row(&[
                &format!("2. {n} daily updates: total bytes"),
                &size(dt),
                &size(ft),
                &format!("delta/full = {:.4}", dt as f64 / ft as f64),
                "",
            ]);
            row(&[
                &format!("2. {n} daily updates: total time (incl. load + smoke test)"),
                &secs(d.time),
                &secs(f.time),
                "",
                "",
            ]);
            row(&[
                &format!("2. {n} daily updates: by delta / in full as intended"),
                &format!("{}/{n}", d.as_intended),
                &format!("{}/{n}", f.as_intended),
                "all",
                yes(d.as_intended == n && f.as_intended == n),
            ]);
        }
        None => row(&[
            "2. SKIP: 30 daily updates need the community rule set (../shared/corpora/yara-rules-community or $VIGIL_COMMUNITY_RULES)",
            "",
            "",
            "",
            "",
        ]),
    }
    for r in &swap_rows {
        println!("{r}");
    }
    println!();
    println!(
        "Byte counts are what the updater's HTTP layer received from vigil-server on 127.0.0.1. \
         The full-download client keeps its TUF metadata and removes its database before each \
         update. Wall times include verifying, compiling and smoke-testing the new database, \
         which dominate on loopback. Rows 3 and 4 run in a fresh child process."
    );
    for n in &swap_notes {
        println!("{n}");
    }
    println!(
        "First install (v1 in full, both clients): {} + {} metadata in {}.",
        size(first.target),
        size(first.metadata),
        secs(first.time)
    );
    println!("Bench run time: {}", secs(started.elapsed()));
}
