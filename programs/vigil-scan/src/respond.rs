//! `vigil-scan --config` and `--quarantine`: what happens after a detection, for cron-style
//! users. With `--config` the scan's findings go through `vigil-respond` (the ledger: new,
//! updated, resolved; the outbox; `[[actions]]`) and are delivered to the `[[outputs]]` for up
//! to `--deliver-timeout` seconds; what is not delivered stays queued for the agent or the next
//! run. With `--quarantine` detections are moved into the quarantine store under the policy
//! (`[quarantine]`, or without a config: the paths given, the protected list, at most
//! `--max-quarantine` files).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use vigil_client_updater::install::ACTIVE;
use vigil_client_updater::Config;
use vigil_findings::Severity;
use vigil_quarantine::{Policy, Store};
use vigil_respond::respond::Disposition;
use vigil_respond::{FileFacts, Hit, Responder, ResponseConfig, ScanSession};
use vigil_scan_core::service::{FileResult, Status};

/// What `--config` brings: the updater's settings (database, keys) and the response's.
pub struct Loaded {
    pub updater: Config,
    pub response: ResponseConfig,
}

pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let updater = Config::parse(&text, path)?;
    let response = ResponseConfig::parse(
        &updater.findings,
        &updater.outputs,
        &updater.actions,
        &updater.quarantine,
        path,
        &updater.database_dir,
    )?;
    Ok(Loaded { updater, response })
}

/// The installed database of a config (`database_dir/vigil.vdb`).
pub fn installed_database(cfg: &Config) -> PathBuf {
    cfg.database_dir.join(ACTIVE)
}

/// Quarantine options from the command line.
pub struct QuarantineArgs<'a> {
    pub dir: Option<&'a Path>,
    pub max: Option<usize>,
    pub paths: &'a [PathBuf],
}

/// The responder of this run: from the config, with quarantine as the flags ask; or, without a
/// config, a quarantine-only one; or none.
pub fn responder(
    loaded: Option<&Loaded>,
    quarantine: Option<QuarantineArgs<'_>>,
) -> anyhow::Result<Option<Responder>> {
    let given: Vec<PathBuf> = quarantine
        .as_ref()
        .map(|q| {
            q.paths
                .iter()
                .filter(|p| p.as_os_str() != "-")
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
                .collect()
        })
        .unwrap_or_default();
    match (loaded, quarantine) {
        (None, None) => Ok(None),
        (None, Some(q)) => {
            let dir = q.dir.map_or_else(
                || PathBuf::from(vigil_respond::config::DEFAULT_QUARANTINE_DIR),
                Path::to_path_buf,
            );
            let store =
                Store::open(&dir).with_context(|| format!("quarantine store {}", dir.display()))?;
            let policy = Policy {
                paths: given,
                protected: vigil_quarantine::DEFAULT_PROTECTED
                    .iter()
                    .map(PathBuf::from)
                    .collect(),
                allow: Vec::new(),
                max_per_scan: q.max.unwrap_or(vigil_respond::config::DEFAULT_MAX_PER_SCAN),
            };
            Ok(Some(Responder::quarantine_only(
                store,
                policy,
                Severity::Medium,
            )))
        }
        (Some(l), q) => {
            let mut r = Responder::open(&l.response)?;
            if let Some(q) = q {
                let c = &l.response.quarantine;
                let dir = q.dir.map_or_else(|| c.dir.clone(), Path::to_path_buf);
                let store = Store::open(&dir)
                    .with_context(|| format!("quarantine store {}", dir.display()))?;
                let mut policy = c.policy();
                if policy.paths.is_empty() {
                    policy.paths = given;
                }
                if let Some(n) = q.max {
                    policy.max_per_scan = n;
                }
                r.set_quarantine(store, policy, c.min_severity);
            }
            Ok(Some(r))
        }
    }
}

/// Hands one file's result to the session; returns what to add to its FOUND lines.
pub fn file(session: &ScanSession<'_>, path: &Path, r: &FileResult) -> Option<String> {
    match r.status {
        Status::Ok => {
            session.clean(path);
            None
        }
        Status::Found => {
            let hits = Hit::all(&r.findings);
            let facts = FileFacts {
                sha256: r.sha256.as_deref().unwrap_or_default(),
                size: r.size,
                allowlisted: r.allowlisted.is_some(),
            };
            match session.file(path, facts, &hits).1 {
                Disposition::Reported => None,
                Disposition::Quarantined(id) => Some(format!("(quarantined {id})")),
                Disposition::Refused(why) => Some(format!("(quarantine refused: {why})")),
                Disposition::LimitReached => {
                    Some("(not quarantined: this scan's quarantine limit is reached)".into())
                }
            }
        }
        Status::Error | Status::Skipped => None,
    }
}

/// After the scan: settles the session, delivers for up to `within` and waits for the hooks.
/// Returns false when something went wrong that the exit code should say.
pub fn finish(
    responder: &Responder,
    session: ScanSession<'_>,
    loaded: Option<&Loaded>,
    within: Duration,
) -> bool {
    let summary = match session.finish() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ERROR: findings not recorded: {e}");
            return false;
        }
    };
    eprintln!(
        "Findings: {} new, {} updated, {} resolved; {} quarantined, {} refused{}",
        summary.new,
        summary.updated,
        summary.resolved,
        summary.quarantined,
        summary.refused,
        if summary.mass_detection {
            "; MASS DETECTION: quarantine stopped at the limit"
        } else {
            ""
        }
    );
    let mut ok = true;
    if let (Some(l), Some(outbox)) = (loaded, responder.outbox()) {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("ERROR: starting the async runtime: {e}");
                return false;
            }
        };
        let statuses = rt.block_on(async {
            let d = vigil_respond::sinks::deliverer(responder, &l.response.outputs).await?;
            Ok::<_, vigil_respond::RespondError>(match d {
                Some(d) => d.flush(within).await,
                None => Vec::new(),
            })
        });
        match statuses {
            Ok(s) => {
                let pending: u64 = s.iter().map(|o| o.pending).sum();
                for o in s.iter().filter(|o| o.pending > 0) {
                    eprintln!(
                        "Output {}: {} pending{}",
                        o.name,
                        o.pending,
                        o.last_error
                            .as_deref()
                            .map(|e| format!(" (last error: {e})"))
                            .unwrap_or_default()
                    );
                }
                if pending > 0 {
                    eprintln!(
                        "{pending} record(s) not delivered within {}s stay queued in {} for the agent or the next run",
                        within.as_secs(),
                        outbox.dir().display()
                    );
                } else if summary.queued > 0 {
                    eprintln!("Delivered: every queued finding");
                }
            }
            Err(e) => {
                eprintln!(
                    "ERROR: outputs: {e}; findings stay queued in {}",
                    outbox.dir().display()
                );
                ok = false;
            }
        }
    }
    let hooks = loaded.map_or(Duration::ZERO, |l| {
        l.response
            .actions
            .iter()
            .map(|a| a.timeout)
            .max()
            .unwrap_or_default()
    });
    if !responder
        .actions()
        .wait_idle(hooks.saturating_mul(4) + Duration::from_secs(5))
    {
        eprintln!("WARNING: some [[actions]] hooks were still running at exit");
    }
    ok
}
