//! The agent (`vigil-update --daemon`): freshclam and clamd in one process. It keeps one engine
//! loaded in a [`SharedEngine`], answers the local scan service on a Unix socket, checks for
//! updates `checks_per_day` times a day and hot-swaps each verified, smoke-tested database
//! without pausing scans, and runs the scheduled scans from the config, appending findings as
//! JSON lines.
//!
//! Signals: SIGHUP reloads the config (mirrors, keys, schedules, limits; the socket path needs
//! a restart); SIGUSR1 checks for an update now; SIGUSR2 runs every scheduled scan now;
//! SIGTERM and SIGINT stop it (scans in progress end with an error line).

use std::collections::HashMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::signal::unix::{signal, SignalKind};
use vigil_format::PublicKey;
use vigil_scan_core::service::ServiceConfig;
use vigil_scan_core::walk::{walk, Item};
use vigil_scan_core::{Engine, Limits, SharedEngine, ENGINE_VERSION};

use crate::config::{Config, ScheduledScan};
use crate::error::UpdateError;
use crate::install::{load_and_smoke_test, load_installed};
use crate::update::{load_keys, update, Dirs, Options, Outcome};

/// Runs until SIGTERM or SIGINT. Returns the process exit code.
pub async fn run(config_path: PathBuf, mut cfg: Config) -> Result<u8, UpdateError> {
    let mut keys = load_keys(&cfg)?;
    // Checked now, so a bad setting stops the start rather than the service later.
    let svc = service_config(&config_path, &cfg)?;
    let dirs = Dirs::new(&cfg.database_dir);
    dirs.create()?;
    let mut term = signal(SignalKind::terminate()).map_err(sig_err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(sig_err)?;
    let mut hup = signal(SignalKind::hangup()).map_err(sig_err)?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(sig_err)?;
    let mut usr2 = signal(SignalKind::user_defined2()).map_err(sig_err)?;

    // An engine first: the installed database, or whatever the first successful update brings.
    let engine = loop {
        if let Some(e) = engine_from_disk(&cfg, &keys, &dirs).await {
            break e;
        }
        tracing::warn!("no usable database installed; updating before the scan service starts");
        match run_update(&cfg, &keys).await {
            Some(e) => break e,
            None => {
                let wait = cfg.check_interval().min(Duration::from_secs(60));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = term.recv() => return Ok(0),
                    _ = int.recv() => return Ok(0),
                }
            }
        }
    };
    tracing::info!(db_version = engine.db_version(), "engine loaded");
    let shared = Arc::new(SharedEngine::new(engine));
    let stop = Arc::new(AtomicBool::new(false));
    let service = {
        tracing::info!(socket = %svc.socket.display(), "scan service listening");
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::Builder::new()
            .name("scan-service".into())
            .spawn(move || vigil_scan_core::service::run(shared, svc, stop))
            .map_err(|e| UpdateError::Other(format!("starting the scan service: {e}")))?
    };
    let running: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // The engine last swapped out, until its final scan ends (see `check_and_swap`).
    let mut retiring: Option<tokio::task::JoinHandle<()>> = None;
    // Check soon after start, as freshclam's daemon does, but spread over half a minute so a
    // fleet rebooted together does not arrive together.
    let mut next_check = tokio::time::Instant::now()
        + jittered(Duration::from_secs(15)).mul_f64(2.0 * random_unit());
    let mut next_scans = next_fire_times(&cfg);
    let code = loop {
        let next_scan = next_scans
            .iter()
            .map(|(_, t)| *t)
            .min()
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            _ = tokio::time::sleep_until(next_check) => {
                check_and_swap(&cfg, &keys, &dirs, &shared, &mut retiring).await;
                next_check = tokio::time::Instant::now() + jittered(cfg.check_interval());
            }
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: checking for an update now");
                check_and_swap(&cfg, &keys, &dirs, &shared, &mut retiring).await;
            }
            _ = usr2.recv() => {
                tracing::info!("SIGUSR2: running every scheduled scan now");
                for s in &cfg.agent.scheduled {
                    start_scan(s.clone(), &cfg, shared.clone(), running.clone());
                }
            }
            _ = tokio::time::sleep_until(next_scan) => {
                let now = tokio::time::Instant::now();
                for (name, t) in &next_scans {
                    if *t <= now {
                        if let Some(s) = cfg.agent.scheduled.iter().find(|s| &s.name == name) {
                            start_scan(s.clone(), &cfg, shared.clone(), running.clone());
                        }
                    }
                }
                next_scans = next_fire_times(&cfg);
            }
            _ = hup.recv() => {
                match Config::load(&config_path).and_then(|c| load_keys(&c).map(|k| (c, k))) {
                    Ok((c, k)) => {
                        if c.agent.socket != cfg.agent.socket {
                            tracing::warn!("the socket path changed; that takes a restart");
                        }
                        cfg = c;
                        keys = k;
                        next_scans = next_fire_times(&cfg);
                        next_check = tokio::time::Instant::now() + jittered(cfg.check_interval());
                        tracing::info!(config = %config_path.display(), schedules = cfg.agent.scheduled.len(), "SIGHUP: configuration reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "SIGHUP: the new configuration is invalid; keeping the old one"),
                }
            }
            _ = term.recv() => break 0,
            _ = int.recv() => break 0,
        }
        if service.is_finished() {
            tracing::error!("the scan service stopped");
            break crate::exit::LOCAL;
        }
    };
    stop.store(true, Ordering::SeqCst);
    match tokio::task::spawn_blocking(move || service.join()).await {
        Ok(Ok(Err(e))) => {
            tracing::error!(error = %e, "scan service");
            return Ok(crate::exit::LOCAL);
        }
        Ok(Err(_)) | Err(_) => return Ok(crate::exit::LOCAL),
        Ok(Ok(Ok(()))) => {}
    }
    tracing::info!("stopped");
    Ok(code)
}

fn sig_err(e: std::io::Error) -> UpdateError {
    UpdateError::Other(format!("installing signal handlers: {e}"))
}

fn service_config(path: &Path, cfg: &Config) -> Result<ServiceConfig, UpdateError> {
    let socket_group = match &cfg.agent.socket_group {
        None => None,
        Some(g) => Some(group_id(g).ok_or_else(|| UpdateError::Config {
            path: path.to_path_buf(),
            message: format!(
                "agent.socket_group: no group {g:?} in /etc/group (give a name or a numeric gid)"
            ),
        })?),
    };
    Ok(ServiceConfig {
        socket: cfg.agent.socket.clone(),
        socket_mode: cfg.agent.socket_mode,
        socket_group,
        threads: cfg.agent.scan_threads.max(1),
        max_connections: cfg.agent.max_connections.max(1),
        max_connections_per_uid: cfg.agent.max_connections_per_uid.max(1),
        limits: limits(cfg),
        request_timeout: Duration::from_secs(cfg.agent.request_timeout_secs.max(1)),
        ..ServiceConfig::default()
    })
}

/// A group's id from a numeric gid or a name in /etc/group (the socket's group is a local
/// system group, as clamd's `LocalSocketGroup`).
fn group_id(name: &str) -> Option<u32> {
    if let Ok(gid) = name.parse() {
        return Some(gid);
    }
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == name).then_some(())?;
            f.nth(1)?.parse().ok()
        })
}

fn limits(cfg: &Config) -> Limits {
    Limits {
        max_filesize: cfg.agent.max_filesize,
        timeout: (cfg.agent.scan_timeout_secs > 0)
            .then(|| Duration::from_secs(cfg.agent.scan_timeout_secs)),
    }
}

/// ±10%, so a fleet started together does not check together.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.9 + 0.2 * random_unit())
}

/// Uniform in [0, 1].
fn random_unit() -> f64 {
    let mut b = [0u8; 2];
    let r = if getrandom::fill(&mut b).is_ok() {
        u16::from_le_bytes(b)
    } else {
        u16::MAX / 2
    };
    f64::from(r) / f64::from(u16::MAX)
}

/// Loads the installed database (or last-known-good) into an engine, off the async workers.
async fn engine_from_disk(cfg: &Config, keys: &[PublicKey], dirs: &Dirs) -> Option<Engine> {
    let (root, cache, keys, smoke) = (
        dirs.root.clone(),
        dirs.cache.clone(),
        keys.to_vec(),
        cfg.smoke_dir.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let installed = load_installed(&root, &keys)?;
        match load_and_smoke_test(&installed.bytes, &keys, &cache, smoke.as_deref()) {
            Ok(e) => Some(e),
            Err(why) => {
                tracing::error!(path = %installed.path.display(), "installed database unusable: {why}");
                None
            }
        }
    })
    .await
    .ok()
    .flatten()
}

async fn run_update(cfg: &Config, keys: &[PublicKey]) -> Option<Engine> {
    match update(cfg, keys, &Options::default()).await {
        Ok(Outcome::Updated { report, engine }) => {
            tracing::info!(
                from = report.from,
                to = report.to,
                deltas = report.deltas.len(),
                full = report.full_download,
                metadata_bytes = report.metadata_bytes,
                target_bytes = report.target_bytes,
                "database updated"
            );
            Some(engine)
        }
        Ok(Outcome::UpToDate { report }) => {
            tracing::info!(version = report.to, "database is up to date");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, exit_class = e.exit_code(), "update failed; the active database stays");
            None
        }
    }
}

/// One check: update, then make sure the engine serves what is installed on disk (a one-shot
/// `vigil-update` may have installed a newer database meanwhile). At most two engines are ever
/// alive: before loading a new one, it waits until the engine swapped out last time has served
/// its last scan and been freed (bounded by the scan timeout).
async fn check_and_swap(
    cfg: &Config,
    keys: &[PublicKey],
    dirs: &Dirs,
    shared: &SharedEngine,
    retiring: &mut Option<tokio::task::JoinHandle<()>>,
) {
    if let Some(h) = retiring.take() {
        let _ = h.await;
    }
    let engine = match run_update(cfg, keys).await {
        Some(e) => Some(e),
        None => {
            let on_disk = std::fs::read(dirs.root.join(crate::install::ACTIVE))
                .ok()
                .map(|b| <[u8; 32]>::from(Sha256::digest(&b)));
            if on_disk.is_some_and(|h| h != shared.current().db_sha256()) {
                tracing::info!("the installed database changed on disk; loading it");
                engine_from_disk(cfg, keys, dirs).await
            } else {
                None
            }
        }
    };
    let Some(engine) = engine else { return };
    let to = engine.db_version();
    let old = shared.swap(engine);
    tracing::info!(from = old.db_version(), to, "engine hot-swapped");
    let limit = Duration::from_secs(cfg.agent.scan_timeout_secs.max(1))
        .saturating_add(Duration::from_secs(60));
    *retiring = Some(tokio::task::spawn_blocking(move || {
        retire(old, limit);
    }));
}

/// Waits (polling every 20 ms, at most `limit`) until `old` is held only here, frees it, and
/// hands the freed memory back to the system. Returns whether the last scan had let go.
///
/// Why the trim: an engine is tens of MiB of small allocations made on several threads; glibc
/// keeps freed heap in its arenas, so without it every swap ratchets RSS up towards
/// "steady + two engines" and stays there.
pub fn retire(old: Arc<Engine>, limit: Duration) -> bool {
    let since = Instant::now();
    while Arc::strong_count(&old) > 1 && since.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(20));
    }
    let last = Arc::strong_count(&old) == 1;
    drop(old);
    trim_heap();
    last
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim_heap() {
    // SAFETY: malloc_trim only walks and releases the allocator's free lists; it takes no
    // pointers from us and is thread-safe in glibc.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

fn next_fire_times(cfg: &Config) -> Vec<(String, tokio::time::Instant)> {
    let now = jiff::Zoned::now();
    cfg.agent
        .scheduled
        .iter()
        .filter_map(|s| {
            let next = s.cron.next_after(&now)?;
            let secs = next
                .timestamp()
                .duration_since(now.timestamp())
                .as_secs_f64()
                .max(0.0);
            Some((
                s.name.clone(),
                tokio::time::Instant::now() + Duration::from_secs_f64(secs),
            ))
        })
        .collect()
}

/// Starts a scheduled scan on its own threads unless the same schedule is still running.
fn start_scan(
    s: ScheduledScan,
    cfg: &Config,
    shared: Arc<SharedEngine>,
    running: Arc<Mutex<HashMap<String, Instant>>>,
) {
    {
        let Ok(mut r) = running.lock() else { return };
        if let Some(since) = r.get(&s.name) {
            tracing::warn!(scan = %s.name, running_for_secs = since.elapsed().as_secs(), "previous run still going; skipped");
            return;
        }
        r.insert(s.name.clone(), Instant::now());
    }
    let (threads, limits) = (cfg.agent.scan_threads.max(1), limits(cfg));
    std::thread::spawn(move || {
        tracing::info!(scan = %s.name, paths = ?s.paths, "scheduled scan started");
        match scheduled_scan(&s, &shared.current(), threads, &limits) {
            Ok(t) => {
                tracing::info!(scan = %s.name, scanned = t.scanned, infected = t.infected, errors = t.errors, "scheduled scan finished")
            }
            Err(e) => {
                tracing::error!(scan = %s.name, output = %s.output.display(), error = %e, "scheduled scan failed")
            }
        }
        if let Ok(mut r) = running.lock() {
            r.remove(&s.name);
        }
    });
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Totals {
    pub scanned: u64,
    pub infected: u64,
    pub errors: u64,
    pub skipped: u64,
    pub bytes: u64,
}

/// Scans `s.paths` (recursively, minus `s.exclude`) with one engine on `threads` threads and
/// appends one JSON line per finding and a summary line to `s.output`.
pub fn scheduled_scan(
    s: &ScheduledScan,
    engine: &Engine,
    threads: usize,
    limits: &Limits,
) -> std::io::Result<Totals> {
    if let Some(dir) = s.output.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let out = Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.output)?,
    );
    let started = Instant::now();
    let run_id = jiff::Timestamp::now().to_string();
    let totals = Mutex::new(Totals::default());
    let (tx, rx) = mpsc::sync_channel::<PathBuf>(threads * 4);
    let rx = Mutex::new(rx);
    let write = |v: serde_json::Value| -> std::io::Result<()> {
        let mut o = out.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        writeln!(o, "{v}")
    };
    let write_err: Mutex<Option<std::io::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut scanner = engine.scanner();
                loop {
                    let next = rx.lock().ok().and_then(|r| r.recv().ok());
                    let Some(path) = next else { break };
                    let r = scanner.scan_file(&path, limits);
                    let mut t = totals.lock().unwrap_or_else(|p| p.into_inner());
                    match r {
                        Ok(r) => {
                            t.scanned += 1;
                            t.bytes += r.size;
                            if !r.findings.is_empty() {
                                t.infected += 1;
                            }
                            drop(t);
                            for f in &r.findings {
                                let line = json!({
                                    "time": jiff::Timestamp::now().to_string(), "scan": s.name, "run": run_id,
                                    "path": path, "signature": f.signature, "kind": f.kind,
                                    "severity": f.severity, "description": f.description,
                                    "offset": f.offset, "sha256": r.sha256,
                                    "db_version": engine.db_version(), "engine_version": ENGINE_VERSION,
                                });
                                if let Err(e) = write(line) {
                                    *write_err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                                }
                            }
                        }
                        Err(e) if e.is_skip() => t.skipped += 1,
                        Err(e) => {
                            // An unreadable file, or one that changed under the scan (a user
                            // truncating it, say): a line of its own, so no file goes unseen.
                            t.errors += 1;
                            drop(t);
                            let line = json!({
                                "time": jiff::Timestamp::now().to_string(), "scan": s.name, "run": run_id,
                                "path": path, "error": e.to_string(), "db_version": engine.db_version(),
                            });
                            if let Err(e) = write(line) {
                                *write_err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            }
                        }
                    }
                }
            });
        }
        for p in &s.paths {
            let _ = walk(p, true, &s.exclude, &mut |item| {
                match item {
                    Item::File(f) => {
                        if tx.send(f).is_err() {
                            return ControlFlow::Break(());
                        }
                    }
                    Item::Problem(_, why) => {
                        let mut t = totals.lock().unwrap_or_else(|p| p.into_inner());
                        if why.starts_with("SKIP ") {
                            t.skipped += 1;
                        } else {
                            t.errors += 1;
                        }
                    }
                }
                ControlFlow::Continue(())
            });
        }
        drop(tx);
    });
    if let Some(e) = write_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let t = *totals.lock().unwrap_or_else(|p| p.into_inner());
    write(json!({
        "time": jiff::Timestamp::now().to_string(), "scan": s.name, "run": run_id,
        "summary": {"paths": s.paths, "scanned": t.scanned, "infected": t.infected,
            "errors": t.errors, "skipped": t.skipped, "bytes": t.bytes,
            "secs": started.elapsed().as_secs_f64(), "db_version": engine.db_version()},
    }))?;
    out.lock()
        .map_err(|_| std::io::Error::other("poisoned"))?
        .sync_data()?;
    Ok(t)
}

/// For tests and tools: the path of the active database.
pub fn active_path(dir: &Path) -> PathBuf {
    dir.join(crate::install::ACTIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_group_by_name_or_number() {
        assert_eq!(group_id("0"), Some(0));
        assert_eq!(group_id("65534"), Some(65534));
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-vigil"), None);
    }
}
