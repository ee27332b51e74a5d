//! One update, freshclam's job: for each mirror in order (skipping those cooling down), refresh
//! and verify the TUF metadata, choose the newest usable database, fetch it by delta chain or in
//! full, check every byte against TUF, load and smoke-test it, and install it atomically.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tough::{ExpirationEnforcement, RepositoryLoader};
use url::Url;
use vigil_format::delta::Delta;
use vigil_format::{PublicKey, VerifiedDb};
use vigil_repository::layout::TargetInfo;
use vigil_repository::tuf::parse_root;
use vigil_scan_core::{Engine, EngineError};

use crate::config::Config;
use crate::error::{RejectKind, UpdateError};
use crate::fetch::{discard_partial, fetch_target, FetchFailure, Forgery};
use crate::http::{find_fetch_error, FetchError, Http, MirrorTransport};
use crate::identity::Identity;
use crate::install::{install, load_and_smoke_test, load_installed, InstalledDb, SmokeError};
use crate::plan::{candidates, choose, Choice, Plan, REVOKED_PREFIX};
use crate::state::State;

#[derive(Clone, Debug)]
pub struct Options {
    /// Show progress bars (an interactive terminal).
    pub progress: bool,
    /// The engine version this build supports (tests lower it to play an old client).
    pub engine_version: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            progress: false,
            engine_version: vigil_format::ENGINE_VERSION,
        }
    }
}

/// What an update cost and did; the benchmark and the log line come from it.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub mirror: Option<String>,
    pub from: Option<u64>,
    pub to: Option<u64>,
    /// Deltas applied (empty: full download or nothing).
    pub deltas: Vec<String>,
    pub full_download: bool,
    /// A delta failed and the full file was fetched instead.
    pub delta_fallback: Option<String>,
    pub metadata_bytes: u64,
    pub target_bytes: u64,
    pub requests: u64,
    pub elapsed: Duration,
    pub notes: Vec<String>,
    /// Up to date: the active database as this run verified it (version, hex SHA-256), so
    /// the check-in need not read and verify it a second time.
    pub active: Option<(u64, String)>,
}

// One value per update, moved once: boxing the engine would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// Installed; the engine is the one already loaded and smoke-tested, for a hot swap.
    Updated {
        report: Report,
        engine: Engine,
    },
    UpToDate {
        report: Report,
    },
}

impl Outcome {
    pub fn report(&self) -> &Report {
        match self {
            Self::Updated { report, .. } | Self::UpToDate { report } => report,
        }
    }
}

pub fn load_keys(cfg: &Config) -> Result<Vec<PublicKey>, UpdateError> {
    if cfg.pubkeys.is_empty() {
        return vigil_keys::release_keys()
            .map_err(|e| UpdateError::Other(format!("built-in key: {e}")));
    }
    cfg.pubkeys
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| UpdateError::Config {
                path: p.clone(),
                message: format!("reading the public key: {e}"),
            })?;
            PublicKey::parse(&text).map_err(|e| UpdateError::Config {
                path: p.clone(),
                message: format!("public key: {e}"),
            })
        })
        .collect()
}

/// Paths inside the database directory.
pub struct Dirs {
    pub root: PathBuf,
    pub tuf: PathBuf,
    pub partial: PathBuf,
    pub cache: PathBuf,
    pub metadata_cache: PathBuf,
}

impl Dirs {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            tuf: root.join("tuf"),
            partial: root.join("partial"),
            cache: root.join("cache"),
            metadata_cache: root.join("metadata-cache"),
        }
    }

    pub fn create(&self) -> Result<(), UpdateError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.root)
            .map_err(|e| UpdateError::io("creating the database directory", &self.root, e))?;
        // The compiled-rule cache holds native code: private to us (the engine checks this).
        for (d, mode) in [
            (&self.tuf, 0o700),
            (&self.partial, 0o700),
            (&self.cache, 0o700),
            (&self.metadata_cache, 0o700),
        ] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(d)
                .map_err(|e| UpdateError::io("creating", d, e))?;
        }
        Ok(())
    }

    /// An exclusive lock on the directory for the whole update (freshclam's lock file).
    pub fn lock(&self) -> Result<File, UpdateError> {
        let p = self.root.join(".lock");
        let f = File::create(&p).map_err(|e| UpdateError::io("creating the lock file", &p, e))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => Err(UpdateError::Locked(self.root.clone())),
            Err(std::fs::TryLockError::Error(e)) => Err(UpdateError::io("locking", &p, e)),
        }
    }
}

/// The trusted root to start from: the configured one, or the newer one a previous run reached
/// through the signed rotation chain (tough saves it in the datastore but does not read it).
fn trusted_root(cfg: &Config, dirs: &Dirs) -> Result<Vec<u8>, UpdateError> {
    let configured = std::fs::read(&cfg.trusted_root).map_err(|e| UpdateError::Config {
        path: cfg.trusted_root.clone(),
        message: format!("reading the trusted root: {e}"),
    })?;
    let cv = parse_root(&configured)
        .map_err(|e| UpdateError::Config {
            path: cfg.trusted_root.clone(),
            message: e.to_string(),
        })?
        .signed
        .version;
    let saved = std::fs::read(dirs.tuf.join("root.json")).ok();
    Ok(match saved {
        Some(s) if parse_root(&s).is_ok_and(|r| r.signed.version > cv) => s,
        _ => configured,
    })
}

fn mirror_id(url: &str) -> String {
    hex::encode(&Sha256::digest(url.as_bytes())[..8])
}

/// Runs one update over the configured mirrors.
pub async fn update(
    cfg: &Config,
    keys: &[PublicKey],
    opts: &Options,
) -> Result<Outcome, UpdateError> {
    let started = Instant::now();
    let dirs = Dirs::new(&cfg.database_dir);
    dirs.create()?;
    let _lock = dirs.lock()?;
    let mut state = State::load(&dirs.root);
    let installed = load_installed(&dirs.root, keys);
    let identity = Identity::load(cfg, &dirs.root)?;
    let token = cfg.token()?;
    let http = Http::new(&cfg.network, token.as_deref(), cfg.proxy.as_deref()).map_err(|e| {
        UpdateError::Config {
            path: PathBuf::from("vigil.toml"),
            message: e.to_string(),
        }
    })?;
    let run = Run {
        cfg,
        keys,
        opts,
        dirs: &dirs,
        http: &http,
        installed: installed.as_ref(),
        identity: &identity,
    };
    let mut errors: Vec<UpdateError> = Vec::new();
    let mut cooling = u64::MAX;
    for mirror in &cfg.mirrors {
        let left = state.cooldown_left(mirror);
        if left > 0 {
            tracing::info!(mirror, seconds = left, "mirror is cooling down; skipped");
            cooling = cooling.min(left);
            continue;
        }
        let result = from_mirror(&run, mirror, &mut state).await;
        let finish = |mut report: Report| {
            report.mirror = Some(mirror.clone());
            report.metadata_bytes = http.counters.metadata_bytes.load(Ordering::Relaxed);
            report.target_bytes = http.counters.target_bytes.load(Ordering::Relaxed);
            report.requests = http.counters.requests.load(Ordering::Relaxed);
            report.elapsed = started.elapsed();
            report
        };
        match result {
            Ok(outcome) => {
                state.mirror_ok(mirror);
                state.save(&dirs.root)?;
                return Ok(match outcome {
                    Outcome::Updated { report, engine } => Outcome::Updated {
                        report: finish(report),
                        engine,
                    },
                    Outcome::UpToDate { report } => Outcome::UpToDate {
                        report: finish(report),
                    },
                });
            }
            Err(e) if e.try_next_mirror() => {
                let retry_after = match &e {
                    UpdateError::Throttled { secs, .. } => Some(*secs),
                    _ => None,
                };
                let secs = state.mirror_failed(
                    mirror,
                    &e.to_string(),
                    retry_after,
                    Duration::from_secs(cfg.network.backoff_base_secs),
                    Duration::from_secs(cfg.network.backoff_max_secs),
                );
                tracing::warn!(mirror, error = %e, cooldown_secs = secs, "mirror failed; trying the next");
                errors.push(e);
            }
            Err(e) => {
                state.save(&dirs.root)?;
                return Err(e);
            }
        }
    }
    state.save(&dirs.root)?;
    // Report the most serious failure: a forgery matters more than an outage.
    if let Some(i) = errors
        .iter()
        .position(|e| matches!(e, UpdateError::Verify { .. }))
    {
        return Err(errors.swap_remove(i));
    }
    match errors.pop() {
        Some(e) => Err(e),
        None => Err(UpdateError::AllCoolingDown {
            secs: if cooling == u64::MAX { 0 } else { cooling },
        }),
    }
}

fn net_error(mirror: &str, e: FetchError) -> UpdateError {
    match e {
        // More bytes than the metadata may hold or TUF lists: an attack, not an outage.
        FetchError::TooLarge { .. } => UpdateError::Verify {
            mirror: mirror.to_owned(),
            message: e.to_string(),
        },
        FetchError::Throttled {
            status,
            retry_after,
            ..
        } => UpdateError::Throttled {
            mirror: mirror.to_owned(),
            status,
            secs: retry_after.unwrap_or(0),
        },
        other => UpdateError::Network {
            mirror: mirror.to_owned(),
            message: other.to_string(),
        },
    }
}

/// One update run: what every mirror is tried with.
struct Run<'a> {
    cfg: &'a Config,
    keys: &'a [PublicKey],
    opts: &'a Options,
    dirs: &'a Dirs,
    http: &'a Http,
    /// The database installed when the run started, if one verifies.
    installed: Option<&'a InstalledDb>,
    /// Who this client is to a rollout.
    identity: &'a Identity,
}

/// The mirror a run is trying.
struct Source<'a> {
    mirror: &'a str,
    base: Url,
}

async fn from_mirror(
    run: &Run<'_>,
    mirror: &str,
    state: &mut State,
) -> Result<Outcome, UpdateError> {
    let Run {
        cfg,
        keys,
        opts,
        dirs,
        http,
        installed,
        identity,
    } = *run;
    let base = Url::parse(mirror).map_err(|e| UpdateError::Config {
        path: PathBuf::from("vigil.toml"),
        message: format!("mirror {mirror}: {e}"),
    })?;
    let src = Source { mirror, base };
    let join = |p: &str| {
        src.base.join(p).map_err(|e| UpdateError::Config {
            path: PathBuf::from("vigil.toml"),
            message: format!("mirror {mirror}: {e}"),
        })
    };
    let root = trusted_root(cfg, dirs)?;
    let limits = cfg.network.tuf_limits();
    let transport = MirrorTransport {
        http: http.clone(),
        cache: Some(dirs.metadata_cache.join(mirror_id(mirror))),
        limits,
        record: None,
        failed: Arc::default(),
    };
    let failed = transport.failed.clone();
    let loaded = RepositoryLoader::new(&root, join("metadata/")?, join("targets/")?)
        .transport(transport)
        .datastore(&dirs.tuf)
        .limits(limits)
        .expiration_enforcement(ExpirationEnforcement::Safe)
        .load()
        .await;
    let repo = match loaded {
        Ok(r) => r,
        Err(e) => {
            let remembered = failed.lock().ok().and_then(|g| g.clone());
            if let Some(f) = find_fetch_error(&e).or(remembered) {
                return Err(net_error(mirror, f));
            }
            // Whatever was cached for this mirror is suspect now.
            let _ = std::fs::remove_dir_all(dirs.metadata_cache.join(mirror_id(mirror)));
            return Err(UpdateError::Verify {
                mirror: mirror.to_owned(),
                message: crate::http::error_chain(&e),
            });
        }
    };
    let cands = candidates(&repo);
    let installed_sha = installed.map(|i| (i.version(), hex::encode(i.db.sha256())));
    let mut report = Report {
        from: installed.map(InstalledDb::version),
        ..Report::default()
    };
    let plan = match choose(
        &cands,
        installed_sha.as_ref().map(|(v, s)| (*v, s.as_str())),
        opts.engine_version,
        state,
        &identity.client(),
    ) {
        Choice::UpToDate {
            needs_newer_engine,
            known_bad,
            held,
            stuck_on_revoked,
        } => {
            if let Some((v, e)) = needs_newer_engine {
                let note = format!(
                    "database version {v} needs engine version {e}; this is {}: upgrade vigil",
                    opts.engine_version
                );
                tracing::warn!("{note}");
                report.notes.push(note);
            }
            if let Some((v, why)) = known_bad {
                let note = format!("database version {v} failed here before and is skipped: {why}");
                tracing::warn!("{note}");
                report.notes.push(note);
            }
            if let Some(why) = held {
                let note = format!("held: {why}");
                tracing::info!("{note}");
                report.notes.push(note);
            }
            if let Some(r) = stuck_on_revoked {
                state.mark_bad(
                    r.version,
                    &r.sha256,
                    &format!("{REVOKED_PREFIX}{}", r.reason),
                );
                let note = format!(
                    "the installed database version {} is revoked ({}), and no other release is offered: keeping it",
                    r.version, r.reason
                );
                tracing::warn!("{note}");
                report.notes.push(note);
            }
            report.to = report.from;
            report.active = installed_sha;
            return Ok(Outcome::UpToDate { report });
        }
        Choice::Update(p) => p,
    };
    if let Some(r) = &plan.leaving_revoked {
        // Remembered, so it is never installed again, even if the repository stops listing it.
        state.mark_bad(
            r.version,
            &r.sha256,
            &format!("{REVOKED_PREFIX}{}", r.reason),
        );
        let note = format!(
            "the installed database version {} is revoked ({}): moving to version {}",
            r.version,
            r.reason,
            plan.full.info.db_version()
        );
        tracing::warn!("{note}");
        report.notes.push(note);
    }
    report.to = Some(plan.full.info.db_version());
    let mut forgeries = Vec::new();
    let obtained = obtain(run, &src, &plan, &mut report, &mut forgeries).await;
    charge_forgers(cfg, state, &forgeries, &mut report);
    let bytes = obtained?;
    let version = plan.full.info.db_version();
    let (keys, cache, smoke_dir) = (keys.to_vec(), dirs.cache.clone(), cfg.smoke_dir.clone());
    // Verify once and hand the proof to the engine; compiling YARA rules is CPU work, so all of
    // it stays off the async workers.
    let smoke = tokio::task::spawn_blocking(
        move || -> Result<(VerifiedDb, Engine), (RejectKind, String)> {
            let load = |why: String| (RejectKind::Load, why);
            let db = VerifiedDb::verify(bytes, &keys)
                .map_err(|e| load(SmokeError::Engine(EngineError::from(e)).to_string()))?;
            // The container must say what TUF says it is.
            let header_version = db.header().db_version;
            if header_version != version {
                return Err(load(format!(
                    "the database says it is version {header_version}, TUF lists it as {version}"
                )));
            }
            let engine = load_and_smoke_test(&db.verified(), &cache, smoke_dir.as_deref())
                .map_err(|e| {
                    let kind = match e {
                        SmokeError::Engine(_) => RejectKind::Load,
                        _ => RejectKind::SmokeTest,
                    };
                    (kind, e.to_string())
                })?;
            Ok((db, engine))
        },
    )
    .await
    .unwrap_or_else(|e| Err((RejectKind::Load, format!("loading panicked: {e}"))));
    let (db, engine) = match smoke {
        Ok(ok) => ok,
        Err((kind, why)) => {
            state.mark_bad(version, &plan.full.sha256, &why);
            discard_partial(&dirs.partial, &plan.full);
            return Err(UpdateError::Rejected {
                version,
                kind,
                message: why,
            });
        }
    };
    // A revoked release is not kept as the fallback: it must not come back.
    let active_is_good =
        installed.is_some_and(InstalledDb::is_active) && plan.leaving_revoked.is_none();
    install(&dirs.root, db.bytes(), active_is_good)?;
    clear_partials(&dirs.partial);
    Ok(Outcome::Updated { report, engine })
}

/// Mirrors caught forging part of a resumed download failed verification as surely as if they
/// had sent the whole file: cool them down with that reason, not the mirror that finished it.
fn charge_forgers(cfg: &Config, state: &mut State, forgeries: &[Forgery], report: &mut Report) {
    for f in forgeries {
        let e = UpdateError::Verify {
            mirror: f.mirror.clone(),
            message: f.message.clone(),
        };
        let secs = state.mirror_failed(
            &f.mirror,
            &e.to_string(),
            None,
            Duration::from_secs(cfg.network.backoff_base_secs),
            Duration::from_secs(cfg.network.backoff_max_secs),
        );
        tracing::warn!(mirror = %f.mirror, error = %e, cooldown_secs = secs,
            "a mirror forged part of a resumed download; cooling it down");
        report.notes.push(e.to_string());
    }
}

/// The new database's bytes, by delta chain when there is one, falling back to the full file.
/// Mirrors found to have forged part of a resumed download are added to `forgeries`.
async fn obtain(
    run: &Run<'_>,
    src: &Source<'_>,
    plan: &Plan,
    report: &mut Report,
    forgeries: &mut Vec<Forgery>,
) -> Result<Vec<u8>, UpdateError> {
    let (http, dirs, opts, mirror) = (run.http, run.dirs, run.opts, src.mirror);
    if let (false, Some(installed)) = (plan.deltas.is_empty(), run.installed) {
        match apply_chain(run, src, plan, installed.bytes(), forgeries).await {
            Ok(bytes) => {
                report.deltas = plan.deltas.iter().map(|d| d.name.clone()).collect();
                return Ok(bytes);
            }
            Err(FetchFailure::Local(e)) => return Err(e),
            Err(FetchFailure::Net(e)) => {
                tracing::warn!(error = %e, "delta download failed; fetching the full database");
                report.delta_fallback = Some(e.to_string());
            }
            Err(FetchFailure::Verify(why)) => {
                tracing::warn!(error = %why, "delta failed; fetching the full database");
                report.delta_fallback = Some(why);
            }
        }
    }
    report.full_download = true;
    match fetch_target(
        http,
        &src.base,
        mirror,
        &plan.full,
        &dirs.partial,
        opts.progress,
    )
    .await
    {
        Ok(f) => {
            forgeries.extend(f.forgeries);
            Ok(f.bytes)
        }
        Err(FetchFailure::Local(e)) => Err(e),
        Err(FetchFailure::Net(e)) => Err(net_error(mirror, e)),
        Err(FetchFailure::Verify(why)) => Err(UpdateError::Verify {
            mirror: mirror.to_owned(),
            message: why,
        }),
    }
}

async fn apply_chain(
    run: &Run<'_>,
    src: &Source<'_>,
    plan: &Plan,
    current: &[u8],
    forgeries: &mut Vec<Forgery>,
) -> Result<Vec<u8>, FetchFailure> {
    let dirs = run.dirs;
    let mut db = current.to_vec();
    for d in &plan.deltas {
        let fetched = fetch_target(
            run.http,
            &src.base,
            src.mirror,
            d,
            &dirs.partial,
            run.opts.progress,
        )
        .await?;
        forgeries.extend(fetched.forgeries);
        let delta = fetched.bytes;
        let want = match &d.info {
            TargetInfo::Delta { result_sha256, .. } => result_sha256.clone(),
            TargetInfo::Full { .. } => plan.full.sha256.clone(),
        };
        db = Delta::apply(&db, &delta)
            .map_err(|e| FetchFailure::Verify(format!("applying {}: {e}", d.name)))?;
        let got = hex::encode(Sha256::digest(&db));
        if got != want {
            discard_partial(&dirs.partial, d);
            return Err(FetchFailure::Verify(format!(
                "{} applied, but gave SHA-256 {got} instead of {want}",
                d.name
            )));
        }
    }
    if hex::encode(Sha256::digest(&db)) != plan.full.sha256 || db.len() as u64 != plan.full.len {
        return Err(FetchFailure::Verify(format!(
            "the delta chain does not end at {} as TUF lists it",
            plan.full.name
        )));
    }
    Ok(db)
}

fn clear_partials(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
