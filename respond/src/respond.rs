//! The response to one scan's detections. A [`Responder`] lives as long as its process (the
//! agent, or one `vigil-scan --config` run): the host's identity, the outbox, the ledger's
//! path, the quarantine store and the hook runner. Each scan opens a [`ScanSession`]; its scan
//! threads hand it every file they finish ([`ScanSession::file`]: the findings are built, and
//! the file quarantined when the scan asked for quarantine and the policy admits it) and
//! [`ScanSession::finish`] settles the scan: the ledger decides new, updated and resolved,
//! everything is appended to the outbox in one fsynced append, the deliverer is woken and the
//! hooks are queued.
//!
//! Quarantine happens only in sessions opened with it (scheduled scans with `[quarantine]
//! enabled`, `vigil-scan --quarantine`), never for requests on the agent's socket: a local
//! peer must not be able to make root move files.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use vigil_findings::{Action, Finding, Resource, Severity, SeverityMap};
use vigil_outputs::outbox::{Outbox, OutboxLimits};
use vigil_outputs::Event;
use vigil_quarantine::{Decision, Policy, Store};

use crate::actions::Actions;
use crate::config::ResponseConfig;
use crate::error::RespondError;
use crate::ledger::Ledger;

/// The threat name of the finding raised when a scan reaches its quarantine limit.
pub const MASS_DETECTION: &str = "Vigil.MassDetection";

/// What the scan knows of a file with its findings.
#[derive(Clone, Copy, Debug)]
pub struct FileFacts<'a> {
    pub sha256: &'a str,
    pub size: u64,
    /// The allowlist entry that cleared it: never quarantined.
    pub allowlisted: bool,
}

/// One signature that matched a file.
#[derive(Clone, Copy, Debug)]
pub struct Hit<'a> {
    pub signature: &'a str,
    /// `yara`, `body` or `hash`.
    pub kind: &'a str,
    /// The rule's own severity (YARA `severity` meta), if it states one.
    pub severity: Option<&'a str>,
    pub description: Option<&'a str>,
    /// Where inside the file, for a match in a container (`inner.zip!clam.exe`): the finding's
    /// path is then `file!inner`, as the scan prints it.
    pub inner: Option<&'a str>,
}

impl<'a> Hit<'a> {
    /// The hits of a scan's findings, as the agent and vigil-scan report them.
    pub fn all(findings: &'a [vigil_scan_core::Finding]) -> Vec<Hit<'a>> {
        findings
            .iter()
            .map(|f| Hit {
                signature: &f.signature,
                kind: f.kind.as_str(),
                severity: f.severity.as_deref(),
                description: f.description.as_deref(),
                inner: f.path.as_deref(),
            })
            .collect()
    }
}

/// What was done to a file with findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Not asked to quarantine (or below the quarantine severity).
    Reported,
    /// Moved into the store under this id.
    Quarantined(String),
    /// The policy or the store refused; the reason.
    Refused(String),
    /// This scan's quarantine limit was reached: reported, left in place.
    LimitReached,
}

/// What a scan's response came to.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanSummary {
    pub new: u64,
    pub updated: u64,
    pub resolved: u64,
    pub quarantined: u64,
    pub refused: u64,
    pub mass_detection: bool,
    /// Records appended to the outbox (0 without outputs).
    pub queued: u64,
}

/// Quarantine for a session: the store, the policy, and the least severity it acts on.
struct Quarantine {
    store: Store,
    policy: Policy,
    min_severity: Severity,
}

pub struct Responder {
    resource: Resource,
    severity: SeverityMap,
    /// None when no output is configured (nothing to deliver), or for a quarantine-only run.
    outbox: Option<Arc<Outbox>>,
    ledger: Option<PathBuf>,
    quarantine: Option<Quarantine>,
    actions: Actions,
    notify: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
    owners: Mutex<HashMap<u32, Option<String>>>,
    /// The ledger's paths with active findings, and the file's (mtime, length) they were read
    /// at: a session starts from them without reading the file unless it changed.
    known: Mutex<KnownPaths>,
}

/// The ledger file's (mtime, length) when read, and its paths with active findings.
type KnownPaths = (Option<(std::time::SystemTime, u64)>, Arc<BTreeSet<String>>);

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("resource", &self.resource)
            .field(
                "outbox",
                &self.outbox.as_ref().map(|o| o.dir().to_path_buf()),
            )
            .field("ledger", &self.ledger)
            .field("quarantine", &self.quarantine.is_some())
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// Resolves the host's identity (IMDS at most once per process), opens the outbox and, when
    /// `[quarantine] enabled`, the quarantine store.
    pub fn open(cfg: &ResponseConfig) -> Result<Self, RespondError> {
        let resource = crate::resource::resolve(&cfg.findings);
        let outbox = if cfg.outputs.is_empty() {
            None
        } else {
            let mut limits = OutboxLimits::default();
            if let Some(n) = cfg.findings.outbox_max_records {
                limits.max_records = n;
            }
            if let Some(n) = cfg.findings.outbox_max_bytes {
                limits.max_bytes = n;
            }
            Some(Arc::new(Outbox::open(&cfg.findings.outbox_dir, limits)?))
        };
        let quarantine = if cfg.quarantine.enabled {
            Some(Quarantine {
                store: Store::open(&cfg.quarantine.dir)?,
                policy: cfg.quarantine.policy(),
                min_severity: cfg.quarantine.min_severity,
            })
        } else {
            None
        };
        Ok(Self {
            resource,
            severity: cfg.severity.clone(),
            outbox,
            ledger: Some(cfg.findings.ledger.clone()),
            quarantine,
            actions: Actions::new(&cfg.actions),
            notify: Mutex::new(None),
            owners: Mutex::default(),
            known: Mutex::default(),
        })
    }

    /// A responder with no config (`vigil-scan --quarantine` alone): no outbox, no ledger, no
    /// hooks; findings built with the system's hostname and files quarantined under `policy`.
    pub fn quarantine_only(store: Store, policy: Policy, min_severity: Severity) -> Self {
        Self {
            resource: Resource {
                hostname: crate::resource::system_hostname(),
                ..Resource::default()
            },
            severity: SeverityMap::default(),
            outbox: None,
            ledger: None,
            quarantine: Some(Quarantine {
                store,
                policy,
                min_severity,
            }),
            actions: Actions::new(&[]),
            notify: Mutex::new(None),
            owners: Mutex::default(),
            known: Mutex::default(),
        }
    }

    /// Replaces the quarantine settings (`vigil-scan --quarantine` over a config that does not
    /// enable it, or with `--max-quarantine`).
    pub fn set_quarantine(&mut self, store: Store, policy: Policy, min_severity: Severity) {
        self.quarantine = Some(Quarantine {
            store,
            policy,
            min_severity,
        });
    }

    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    pub fn outbox(&self) -> Option<&Arc<Outbox>> {
        self.outbox.as_ref()
    }

    pub fn actions(&self) -> &Actions {
        &self.actions
    }

    /// What to call after each append (the deliverer's `notify`).
    pub fn on_append(&self, f: Arc<dyn Fn() + Send + Sync>) {
        *self.notify.lock().unwrap_or_else(PoisonError::into_inner) = Some(f);
    }

    /// A session for one scan of `roots` with the database `db_version`. With `quarantine`
    /// (and a store configured) detections are quarantined under the policy; `roots` are the
    /// paths the scan walks, so findings of files under them that have since disappeared are
    /// resolved.
    pub fn session(
        &self,
        quarantine: bool,
        roots: &[PathBuf],
        db_version: u64,
        engine_version: &str,
    ) -> ScanSession<'_> {
        let known = self.known_paths();
        let quarantine = if quarantine {
            self.quarantine.as_ref().map(|q| (q, q.policy.session()))
        } else {
            None
        };
        ScanSession {
            r: self,
            quarantine,
            roots: roots
                .iter()
                .map(|r| std::path::absolute(r).unwrap_or_else(|_| r.clone()))
                .collect(),
            db_version,
            engine_version: engine_version.to_owned(),
            known,
            state: Mutex::default(),
        }
    }

    /// The paths the ledger has active findings for, read again only when the file changed
    /// (the agent opens a session per socket request).
    fn known_paths(&self) -> Arc<BTreeSet<String>> {
        let Some(path) = self.ledger.as_deref() else {
            return Arc::default();
        };
        let stamp = std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let mut k = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if stamp.is_none() || k.0 != stamp {
            let paths = Ledger::load(path).paths().map(str::to_owned).collect();
            *k = (stamp, Arc::new(paths));
        }
        k.1.clone()
    }

    /// The owner's name for `uid`, from /etc/passwd, cached.
    fn owner(&self, uid: u32) -> Option<String> {
        let mut c = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        c.entry(uid)
            .or_insert_with(|| {
                std::fs::read_to_string("/etc/passwd")
                    .ok()?
                    .lines()
                    .find_map(|l| {
                        let mut f = l.split(':');
                        let name = f.next()?;
                        (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
                    })
            })
            .clone()
    }
}

enum Observation {
    Found {
        path: String,
        findings: Vec<Finding>,
    },
    Clean {
        path: String,
    },
}

#[derive(Default)]
struct SessionState {
    observations: Vec<Observation>,
    seen: BTreeSet<String>,
    extra: Vec<(Event, Finding)>,
    quarantined: u64,
    refused: u64,
    mass_detection: bool,
}

/// One scan's response; scan threads share it.
pub struct ScanSession<'r> {
    r: &'r Responder,
    quarantine: Option<(&'r Quarantine, vigil_quarantine::Session)>,
    roots: Vec<PathBuf>,
    db_version: u64,
    engine_version: String,
    /// Paths the ledger had findings for when the scan started: their clean results count.
    known: Arc<BTreeSet<String>>,
    state: Mutex<SessionState>,
}

impl ScanSession<'_> {
    /// A file the scan finished with findings (`hits` non-empty) or clean (`hits` empty).
    /// Returns the findings built for it and what was done to it.
    pub fn file(
        &self,
        path: &Path,
        facts: FileFacts<'_>,
        hits: &[Hit<'_>],
    ) -> (Vec<Finding>, Disposition) {
        // Findings, the ledger and the policy speak of absolute paths.
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let path = abs.as_path();
        let shown = path.to_string_lossy().into_owned();
        if hits.is_empty() {
            self.clean(path);
            return (Vec::new(), Disposition::Reported);
        }
        let now = jiff::Timestamp::now().as_second();
        let file = self.file_facts(path, &shown, facts);
        let mut findings: Vec<Finding> = hits
            .iter()
            .map(|h| {
                let mut at = file.clone();
                if let Some(inner) = h.inner {
                    at.path = format!("{}!{inner}", at.path);
                }
                Finding::new(
                    self.r.resource.clone(),
                    at,
                    h.signature,
                    h.kind,
                    self.r.severity.resolve(h.signature, h.severity),
                    h.description.map(str::to_owned),
                    self.db_version,
                    &self.engine_version,
                    now,
                )
            })
            .collect();
        let disposition = self.maybe_quarantine(path, &file, facts, &mut findings, now);
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.seen.insert(shown.clone());
        st.observations.push(Observation::Found {
            path: shown,
            findings: findings.clone(),
        });
        (findings, disposition)
    }

    /// `path` scanned clean: any active finding of it resolves at [`ScanSession::finish`].
    pub fn clean(&self, path: &Path) {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let shown = abs.to_string_lossy().into_owned();
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.seen.insert(shown.clone());
        if self.known.contains(&shown) {
            st.observations.push(Observation::Clean { path: shown });
        }
    }

    fn file_facts(
        &self,
        path: &Path,
        shown: &str,
        facts: FileFacts<'_>,
    ) -> vigil_findings::FileFacts {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path).ok();
        let uid = meta.as_ref().map_or(0, |m| m.uid());
        vigil_findings::FileFacts {
            path: shown.to_owned(),
            sha256: facts.sha256.to_owned(),
            size: facts.size,
            uid,
            owner: meta.as_ref().and_then(|_| self.r.owner(uid)),
            mtime: meta.as_ref().map_or(0, |m| m.mtime()),
        }
    }

    fn maybe_quarantine(
        &self,
        path: &Path,
        file: &vigil_findings::FileFacts,
        facts: FileFacts<'_>,
        findings: &mut [Finding],
        now: i64,
    ) -> Disposition {
        let Some((q, session)) = &self.quarantine else {
            return Disposition::Reported;
        };
        let Some(worst) = findings.iter().max_by_key(|f| f.severity) else {
            return Disposition::Reported;
        };
        if worst.severity < q.min_severity {
            return Disposition::Reported;
        }
        let (id, threat) = (worst.id.clone(), worst.threat.clone());
        let d = match session.admit(path, facts.allowlisted) {
            Decision::Quarantine => {
                match q.store.quarantine(path, Some(facts.sha256), &id, &threat) {
                    Ok(entry) => {
                        tracing::warn!(path = %path.display(), threat, quarantine_id = %entry.id, "quarantined");
                        for f in findings.iter_mut() {
                            f.action = Action::Quarantined;
                        }
                        Disposition::Quarantined(entry.id)
                    }
                    Err(e) => {
                        tracing::error!(path = %path.display(), threat, error = %e, "quarantine failed; the file stays");
                        Disposition::Refused(e.to_string())
                    }
                }
            }
            Decision::Refused(why) => {
                tracing::warn!(path = %path.display(), threat, reason = %why, "quarantine refused; the file stays");
                Disposition::Refused(why.to_string())
            }
            Decision::LimitReached { first } => {
                if first {
                    let limit = q.policy.max_per_scan;
                    tracing::error!(threat, limit, "mass detection: this scan's quarantine limit is reached; later detections are reported, not quarantined");
                    let mass = Finding::new(
                        self.r.resource.clone(),
                        file.clone(),
                        MASS_DETECTION,
                        "mass-detection",
                        Severity::Critical,
                        Some(format!(
                            "Signature {threat} matched more files in one scan than may be quarantined \
                             (max_per_scan = {limit}); quarantine stopped for the rest of the scan and \
                             the other detections were only reported. A rule that matches this much may \
                             be wrong: review it before raising the limit."
                        )),
                        self.db_version,
                        &self.engine_version,
                        now,
                    );
                    let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                    st.mass_detection = true;
                    st.extra.push((Event::New, mass));
                }
                Disposition::LimitReached
            }
        };
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match d {
            Disposition::Quarantined(_) => st.quarantined += 1,
            Disposition::Refused(_) => st.refused += 1,
            _ => {}
        }
        d
    }

    /// Settles the scan: the ledger's verdicts (and resolutions of files under the scan's
    /// roots that no longer exist), one fsynced append to the outbox, a wake-up for the
    /// deliverer, the hooks queued.
    pub fn finish(self) -> Result<ScanSummary, RespondError> {
        let st = self
            .state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let now = jiff::Timestamp::now().as_second();
        let mut events: Vec<(Event, Finding)> = Vec::new();
        let _lock;
        let mut ledger = None;
        // Nothing found, and no path the ledger knows was scanned or is under the scan's roots:
        // the ledger is neither read nor written (most on-demand scans).
        let touches_ledger = !st.observations.is_empty()
            || self
                .known
                .iter()
                .any(|p| self.roots.iter().any(|r| Path::new(p).starts_with(r)));
        if let Some(lp) = self.r.ledger.as_ref().filter(|_| touches_ledger) {
            _lock = Ledger::lock(lp)?;
            let mut l = Ledger::load(lp);
            for o in st.observations {
                match o {
                    Observation::Found { path, findings } => {
                        events.extend(l.observe(&path, findings, now))
                    }
                    Observation::Clean { path } => events.extend(l.clean(&path, now)),
                }
            }
            let gone: Vec<String> = l
                .paths()
                .filter(|p| {
                    !st.seen.contains(*p)
                        && self.roots.iter().any(|r| Path::new(p).starts_with(r))
                        && matches!(std::fs::symlink_metadata(p), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
                })
                .map(str::to_owned)
                .collect();
            for p in gone {
                events.extend(l.clean(&p, now));
            }
            ledger = Some(l);
        } else {
            for o in st.observations {
                if let Observation::Found { findings, .. } = o {
                    events.extend(findings.into_iter().map(|f| (Event::New, f)));
                }
            }
        }
        events.extend(st.extra);
        let mut summary = ScanSummary {
            quarantined: st.quarantined,
            refused: st.refused,
            mass_detection: st.mass_detection,
            ..ScanSummary::default()
        };
        for (e, _) in &events {
            match e {
                Event::New => summary.new += 1,
                Event::Updated => summary.updated += 1,
                Event::Resolved => summary.resolved += 1,
            }
        }
        // The outbox first, then the ledger: a crash between the two repeats a finding as new
        // (receivers deduplicate by id) rather than losing it.
        if let Some(outbox) = &self.r.outbox {
            if !events.is_empty() {
                let a = outbox.append(&events)?;
                summary.queued = a.count;
                if a.dropped > 0 {
                    tracing::warn!(dropped = a.dropped, outbox = %outbox.dir().display(), "the outbox is full: its oldest records were dropped");
                }
            }
        }
        if let Some(l) = ledger.filter(|_| !events.is_empty()) {
            l.save()?;
        }
        if summary.queued > 0 {
            if let Some(n) = self
                .r
                .notify
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
            {
                n();
            }
        }
        self.r.actions.submit(&events);
        Ok(summary)
    }
}
