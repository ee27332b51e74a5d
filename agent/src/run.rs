//! The agent's main loop (`vigil-agent`): freshclam and clamd in one process. It keeps one
//! engine loaded in a [`SharedEngine`], answers the local scan service on a Unix socket, checks
//! for updates `checks_per_day` times a day and hot-swaps each verified, smoke-tested database
//! without pausing scans, and runs the scheduled scans from the config, appending findings as
//! JSON lines.
//!
//! Signals: SIGHUP reloads the config (mirrors, keys, schedules, limits; the socket path needs
//! a restart); SIGUSR1 checks for an update now; SIGUSR2 runs every scheduled scan now;
//! SIGTERM and SIGINT stop it (scans in progress end with an error line).
//!
//! Findings: a [`Responder`] from the config's `[findings]`, `[[outputs]]`, `[[actions]]` and
//! `[quarantine]` takes the findings of scheduled and on-demand scans, and a [`Deliverer`]
//! task delivers the outbox to the outputs; SIGHUP rebuilds both from the new config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::signal::unix::{signal, SignalKind};
use vigil_client_updater::install::{load_and_smoke_test, load_installed, ACTIVE};
use vigil_client_updater::update::{load_keys, Dirs, Options, Outcome};
use vigil_client_updater::{check, exit, Config};
use vigil_format::PublicKey;
use vigil_outputs::deliver::Deliverer;
use vigil_respond::{Responder, ResponseConfig};
use vigil_scan_core::{Engine, SharedEngine};

use crate::config::{AgentConfig, Settings};
use crate::error::AgentError;
use crate::responder::ResponderSlot;
use crate::scheduled::{next_fire_times, start_scan};
use crate::service::ServiceConfig;

/// Runs until SIGTERM or SIGINT with the settings read from `config_path` (read again on
/// SIGHUP). Returns the process exit code.
pub async fn run(config_path: PathBuf, settings: Settings) -> Result<u8, AgentError> {
    let Settings {
        updater: mut cfg,
        mut agent,
    } = settings;
    let mut keys = load_keys(&cfg)?;
    // Checked now, so a bad setting stops the start rather than the service later.
    let mut svc = service_config(&config_path, &agent)?;
    let clamd_cfg = clamd_config(&config_path, &agent, &svc)?;
    let (responder, delivery) = respond_from(&config_path, &cfg).await?;
    let slot = Arc::new(ResponderSlot::new(Some(responder)));
    let mut delivery = Some(delivery);
    svc.responder = Some(slot.clone());
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
            .spawn(move || crate::service::run(shared, svc, stop))
            .map_err(AgentError::StartService)?
    };
    let clamd = match clamd_cfg {
        Some(mut c) => {
            c.responder = Some(slot.clone());
            tracing::info!(
                socket = ?c.unix_socket,
                tcp = ?c.tcp,
                "clamd protocol listening"
            );
            // Bound here, so a socket that cannot be bound stops the start with its reason.
            let listeners = crate::clamd::bind(&c)
                .map_err(|e| AgentError::StartService(std::io::Error::other(e.to_string())))?;
            let (shared, stop) = (shared.clone(), stop.clone());
            let socket = c.unix_socket.clone();
            Some(
                std::thread::Builder::new()
                    .name("clamd-listener".into())
                    .spawn(move || {
                        let r = crate::clamd::serve(listeners, shared, c, stop);
                        if let Some(s) = socket {
                            let _ = std::fs::remove_file(s);
                        }
                        r
                    })
                    .map_err(AgentError::StartService)?,
            )
        }
        None => None,
    };
    let running: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // The engine last swapped out, until its final scan ends (see `check_and_swap`).
    let mut retiring: Option<tokio::task::JoinHandle<()>> = None;
    // Check soon after start, as freshclam's daemon does, but spread over half a minute so a
    // fleet rebooted together does not arrive together.
    let mut next_check = tokio::time::Instant::now()
        + jittered(Duration::from_secs(15)).mul_f64(2.0 * random_unit());
    let mut next_scans = next_fire_times(&agent);
    let code = loop {
        let next_scan = next_scans
            .iter()
            .map(|(_, t)| *t)
            .min()
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            _ = tokio::time::sleep_until(next_check) => {
                check_and_swap(&cfg, &agent, &keys, &dirs, &shared, &mut retiring).await;
                next_check = tokio::time::Instant::now() + jittered(cfg.check_interval());
            }
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: checking for an update now");
                check_and_swap(&cfg, &agent, &keys, &dirs, &shared, &mut retiring).await;
            }
            _ = usr2.recv() => {
                tracing::info!("SIGUSR2: running every scheduled scan now");
                for s in &agent.scheduled {
                    start_scan(s.clone(), &agent, &cfg.database_dir, shared.clone(), running.clone(), slot.get());
                }
            }
            _ = tokio::time::sleep_until(next_scan) => {
                let now = tokio::time::Instant::now();
                for (name, t) in &next_scans {
                    if *t <= now {
                        if let Some(s) = agent.scheduled.iter().find(|s| &s.name == name) {
                            start_scan(s.clone(), &agent, &cfg.database_dir, shared.clone(), running.clone(), slot.get());
                        }
                    }
                }
                next_scans = next_fire_times(&agent);
            }
            _ = hup.recv() => {
                let reloaded = Settings::load(&config_path)
                    .and_then(|s| Ok((load_keys(&s.updater)?, s)));
                let reloaded = match reloaded {
                    Ok((k, s)) => respond_from(&config_path, &s.updater).await.map(|r| (k, s, r)),
                    Err(e) => Err(e),
                };
                match reloaded {
                    Ok((k, s, (r, d))) => {
                        slot.set(Some(r));
                        if let Some(old) = delivery.take() {
                            old.stop().await;
                        }
                        delivery = Some(d);
                        if s.agent.socket != agent.socket {
                            tracing::warn!("the socket path changed; that takes a restart");
                        }
                        if s.agent.clamd.as_ref().map(|c| (&c.unix_socket, &c.tcp))
                            != agent.clamd.as_ref().map(|c| (&c.unix_socket, &c.tcp))
                        {
                            tracing::warn!("the clamd listener's sockets changed; that takes a restart");
                        }
                        cfg = s.updater;
                        agent = s.agent;
                        keys = k;
                        next_scans = next_fire_times(&agent);
                        next_check = tokio::time::Instant::now() + jittered(cfg.check_interval());
                        tracing::info!(config = %config_path.display(), schedules = agent.scheduled.len(), "SIGHUP: configuration reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "SIGHUP: the new configuration is invalid; keeping the old one"),
                }
            }
            _ = term.recv() => break 0,
            _ = int.recv() => break 0,
        }
        if service.is_finished() {
            tracing::error!("the scan service stopped");
            break exit::LOCAL;
        }
        if clamd.as_ref().is_some_and(|c| c.is_finished()) {
            tracing::error!("the clamd listener stopped");
            break exit::LOCAL;
        }
    };
    stop.store(true, Ordering::SeqCst);
    if let Some(d) = delivery.take() {
        d.stop().await;
    }
    if let Some(c) = clamd {
        match tokio::task::spawn_blocking(move || c.join()).await {
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "clamd listener"),
            Ok(Err(_)) | Err(_) => tracing::error!("the clamd listener panicked"),
            Ok(Ok(Ok(()))) => {}
        }
    }
    match tokio::task::spawn_blocking(move || service.join()).await {
        Ok(Ok(Err(e))) => {
            tracing::error!(error = %e, "scan service");
            return Ok(exit::LOCAL);
        }
        Ok(Err(_)) | Err(_) => return Ok(exit::LOCAL),
        Ok(Ok(Ok(()))) => {}
    }
    tracing::info!("stopped");
    Ok(code)
}

/// The delivery task of one configuration.
struct Delivery {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Delivery {
    /// Stops the task at its next await point (an interrupted delivery is resent: at least
    /// once) and waits for it.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// The responder of the config at `path` and its delivery task.
async fn respond_from(path: &Path, cfg: &Config) -> Result<(Arc<Responder>, Delivery), AgentError> {
    let rc = ResponseConfig::parse(
        &cfg.findings,
        &cfg.outputs,
        &cfg.actions,
        &cfg.quarantine,
        path,
        &cfg.database_dir,
    )
    .map_err(|e| AgentError::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let respond_err = |e: vigil_respond::RespondError| AgentError::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    // Opening may ask IMDS (a second at most, once per process): off the async workers.
    let responder = {
        let rc = rc.clone();
        tokio::task::spawn_blocking(move || Responder::open(&rc))
            .await
            .map_err(|e| AgentError::Config {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
            .map_err(respond_err)?
    };
    let responder = Arc::new(responder);
    let deliverer: Option<Arc<Deliverer>> =
        vigil_respond::sinks::deliverer(&responder, &rc.outputs)
            .await
            .map_err(respond_err)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        if let Some(d) = deliverer {
            tracing::info!(outputs = rc.outputs.len(), "delivering findings");
            d.run(async {
                let _ = rx.await;
            })
            .await;
        }
    });
    Ok((responder, Delivery { stop: tx, task }))
}

fn sig_err(e: std::io::Error) -> AgentError {
    AgentError::Signals(e)
}

fn service_config(path: &Path, agent: &AgentConfig) -> Result<ServiceConfig, AgentError> {
    let socket_group = match &agent.socket_group {
        None => None,
        Some(g) => Some(group_id(g).ok_or_else(|| AgentError::Config {
            path: path.to_path_buf(),
            message: format!(
                "agent.socket_group: no group {g:?} in /etc/group (give a name or a numeric gid)"
            ),
        })?),
    };
    Ok(ServiceConfig {
        socket: agent.socket.clone(),
        socket_mode: agent.socket_mode,
        socket_group,
        threads: agent.scan_threads.max(1),
        max_connections: agent.max_connections.max(1),
        max_connections_per_uid: agent.max_connections_per_uid.max(1),
        limits: agent.limits(),
        request_timeout: Duration::from_secs(agent.request_timeout_secs.max(1)),
        ..ServiceConfig::default()
    })
}

/// The clamd listener's settings from `[agent.clamd]` (None: not configured), with the scan
/// service's threads, limits and socket group.
fn clamd_config(
    path: &Path,
    agent: &AgentConfig,
    svc: &ServiceConfig,
) -> Result<Option<crate::clamd::ClamdConfig>, AgentError> {
    let Some(c) = &agent.clamd else {
        return Ok(None);
    };
    let tcp = c.tcp_addr().map_err(|message| AgentError::Config {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(Some(crate::clamd::ClamdConfig {
        unix_socket: c.unix_socket.clone(),
        socket_mode: c.socket_mode,
        socket_group: svc.socket_group,
        tcp,
        tcp_path_scans: c.tcp_path_scans,
        stream_max_length: c.stream_max_length,
        max_connections: c.max_connections.max(1),
        idle_timeout: Duration::from_secs(c.idle_timeout_secs.max(1)),
        threads: svc.threads,
        limits: svc.limits,
        responder: None,
    }))
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
        match load_and_smoke_test(&installed.db.verified(), &cache, smoke.as_deref()) {
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

/// One update check and its check-in (which logs its own trouble and never changes this).
async fn run_update(cfg: &Config, keys: &[PublicKey]) -> Option<Engine> {
    let (result, _checkin) = check(cfg, keys, &Options::default()).await;
    match result {
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
    agent: &AgentConfig,
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
            let on_disk = std::fs::read(dirs.root.join(ACTIVE))
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
    let limit =
        Duration::from_secs(agent.scan_timeout_secs.max(1)).saturating_add(Duration::from_secs(60));
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
