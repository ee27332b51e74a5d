//! Scheduled scans: `[[agent.scheduled]]` entries fire on their cron schedule (or all at once
//! on SIGUSR2), each run walks its paths with one engine on the agent's scan threads; its
//! findings go through a `vigil-respond` scan session (the ledger, quarantine when
//! `[quarantine] enabled`, the outbox for the `[[outputs]]`, the hooks); when the schedule has
//! an `output` file it also gets one JSON line per finding, one per file that could not be
//! read, and a summary line. The run's summary is recorded in `database_dir/last-scan.json`
//! for the fleet check-ins. A schedule still running when it fires again is skipped.

use std::collections::HashMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use vigil_client_updater::checkin::write_last_scan;
use vigil_fleet::checkin::LastScan;
use vigil_respond::respond::{FileFacts, Hit};
use vigil_respond::Responder;
use vigil_scan_core::{Engine, Limits, Pool, Scanned, SharedEngine, Targets, ENGINE_VERSION};

use crate::config::{AgentConfig, ScheduledScan};

/// When each schedule fires next, by name (a schedule that never fires again is left out).
pub(crate) fn next_fire_times(agent: &AgentConfig) -> Vec<(String, tokio::time::Instant)> {
    let now = jiff::Zoned::now();
    agent
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
/// A finished run's summary goes to `db_dir/last-scan.json` for the next check-in.
pub(crate) fn start_scan(
    s: ScheduledScan,
    agent: &AgentConfig,
    db_dir: &Path,
    shared: Arc<SharedEngine>,
    running: Arc<Mutex<HashMap<String, Instant>>>,
    responder: Option<Arc<Responder>>,
) {
    {
        let Ok(mut r) = running.lock() else { return };
        if let Some(since) = r.get(&s.name) {
            tracing::warn!(scan = %s.name, running_for_secs = since.elapsed().as_secs(), "previous run still going; skipped");
            return;
        }
        r.insert(s.name.clone(), Instant::now());
    }
    let (threads, limits) = (agent.scan_threads.max(1), agent.limits());
    let db_dir = db_dir.to_path_buf();
    std::thread::spawn(move || {
        tracing::info!(scan = %s.name, paths = ?s.paths, "scheduled scan started");
        match scheduled_scan_with(
            &s,
            &shared.current(),
            threads,
            &limits,
            responder.as_deref(),
        ) {
            Ok(t) => {
                tracing::info!(scan = %s.name, scanned = t.scanned, infected = t.infected, errors = t.errors, "scheduled scan finished");
                if let Err(e) = record_last_scan(&db_dir, &t) {
                    tracing::warn!(error = %e, "the scan summary for check-ins was not recorded");
                }
            }
            Err(e) => {
                tracing::error!(scan = %s.name, output = ?s.output, error = %e, "scheduled scan failed")
            }
        }
        if let Ok(mut r) = running.lock() {
            r.remove(&s.name);
        }
    });
}

/// Writes `t` as the last scan (`database_dir/last-scan.json`), stamped now: the time the
/// run finished, which is what "last scanned" means in the fleet's compliance report.
pub fn record_last_scan(
    db_dir: &Path,
    t: &Totals,
) -> Result<(), vigil_client_updater::UpdateError> {
    let scan = LastScan {
        at: jiff::Timestamp::now().as_second(),
        scanned: t.scanned,
        infected: t.infected,
        errors: t.errors,
    };
    write_last_scan(db_dir, &scan)
}

/// What one run of a scheduled scan saw.
#[derive(Default, Debug, Clone, Copy)]
pub struct Totals {
    pub scanned: u64,
    pub infected: u64,
    pub errors: u64,
    pub skipped: u64,
    pub bytes: u64,
    /// Clean as far as the scan could see, with encrypted members or container limits reached.
    pub incomplete: u64,
}

/// Scans `s.paths` (recursively, minus `s.exclude`) with one engine on `threads` threads and
/// appends one JSON line per finding and a summary line to `s.output` (when set).
pub fn scheduled_scan(
    s: &ScheduledScan,
    engine: &Engine,
    threads: usize,
    limits: &Limits,
) -> std::io::Result<Totals> {
    scheduled_scan_with(s, engine, threads, limits, None)
}

/// [`scheduled_scan`], with each file's result handed to a scan session of `responder`
/// (quarantining when its `[quarantine]` is enabled).
pub fn scheduled_scan_with(
    s: &ScheduledScan,
    engine: &Engine,
    threads: usize,
    limits: &Limits,
    responder: Option<&Responder>,
) -> std::io::Result<Totals> {
    let out = match &s.output {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ))
        }
        None => None,
    };
    let session = responder.map(|r| r.session(true, &s.paths, engine.db_version(), ENGINE_VERSION));
    let started = Instant::now();
    let run_id = jiff::Timestamp::now().to_string();
    let totals = Mutex::new(Totals::default());
    let write = |v: serde_json::Value| -> std::io::Result<()> {
        let Some(out) = &out else { return Ok(()) };
        let mut o = out.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        writeln!(o, "{v}")
    };
    let write_err: Mutex<Option<std::io::Error>> = Mutex::new(None);
    let sink = |scanned: Scanned| {
        let path = scanned.path;
        let mut lines = Vec::new();
        {
            let mut t = totals.lock().unwrap_or_else(|p| p.into_inner());
            match scanned.outcome {
                Ok(r) => {
                    if let Some(session) = &session {
                        respond(session, &path, &r);
                    }
                    t.scanned += 1;
                    t.bytes += r.size;
                    if !r.findings.is_empty() {
                        t.infected += 1;
                    } else if !r.unscanned.is_empty() {
                        t.incomplete += 1;
                    }
                    for f in &r.findings {
                        lines.push(json!({
                            "time": jiff::Timestamp::now().to_string(), "scan": s.name, "run": run_id,
                            "path": f.located(&path.to_string_lossy()), "file": path,
                            "signature": f.signature, "kind": f.kind,
                            "severity": f.severity, "description": f.description,
                            "offset": f.offset, "sha256": r.sha256,
                            "db_version": engine.db_version(), "engine_version": ENGINE_VERSION,
                        }));
                    }
                }
                Err(e) if e.is_skip() => t.skipped += 1,
                Err(e) => {
                    // An unreadable file, or one that changed under the scan (a user
                    // truncating it, say): a line of its own, so no file goes unseen.
                    t.errors += 1;
                    lines.push(json!({
                        "time": jiff::Timestamp::now().to_string(), "scan": s.name, "run": run_id,
                        "path": path, "error": e.to_string(), "db_version": engine.db_version(),
                    }));
                }
            }
        }
        for line in lines {
            if let Err(e) = write(line) {
                *write_err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
        }
        ControlFlow::Continue(())
    };
    let targets = Targets {
        paths: &s.paths,
        recursive: true,
        exclude: &s.exclude,
    };
    Pool::new(engine, threads, *limits)
        .scan(&targets, &sink)
        .map_err(std::io::Error::other)?;
    if let Some(e) = write_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let t = *totals.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(session) = session {
        match session.finish() {
            Ok(sum) => {
                tracing::info!(scan = %s.name, new = sum.new, updated = sum.updated, resolved = sum.resolved, quarantined = sum.quarantined, refused = sum.refused, mass_detection = sum.mass_detection, "scheduled scan findings recorded")
            }
            Err(e) => {
                tracing::error!(scan = %s.name, error = %e, "the scheduled scan's findings were not recorded")
            }
        }
    }
    write(json!({
        "time": jiff::Timestamp::now().to_string(), "scan": s.name, "run": run_id,
        "summary": {"paths": s.paths, "scanned": t.scanned, "infected": t.infected,
            "errors": t.errors, "skipped": t.skipped, "bytes": t.bytes,
            "not_fully_scanned": t.incomplete,
            "secs": started.elapsed().as_secs_f64(), "db_version": engine.db_version()},
    }))?;
    if let Some(out) = out {
        out.lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .sync_data()?;
    }
    Ok(t)
}

/// Hands a scanned file to the scan session: its findings, or that it is clean.
pub(crate) fn respond(
    session: &vigil_respond::ScanSession<'_>,
    path: &Path,
    r: &vigil_scan_core::ScanReport,
) {
    if r.findings.is_empty() {
        session.clean(path);
        return;
    }
    let hits = Hit::all(&r.findings);
    let facts = FileFacts {
        sha256: r.sha256.as_deref().unwrap_or_default(),
        size: r.size,
        allowlisted: r.allowlisted.is_some(),
    };
    session.file(path, facts, &hits);
}
