//! The finding ledger: the active findings of this host, by id and by path, kept as JSON at
//! `[findings] ledger` (default `DATABASE_DIR/findings.json`) so a finding keeps its identity
//! and its `first_seen` across scans and restarts.
//!
//! A detection whose id is new is `New`; a known id is `Updated` (`last_seen` moves,
//! `first_seen` stays); an id the path had that this scan did not see (new content, or the
//! signature gone) is `Resolved`, and so is every active finding of a path that scans clean or
//! no longer exists. Resolved findings leave the ledger. A damaged file is logged and the
//! ledger starts empty: receivers deduplicate by id, so the worst case is a repeated `New`.
//! Several processes (the agent, a cron `vigil-scan --config`) may share one ledger: each
//! applies its scan under an exclusive lock on a sidecar `.lock` file, reading the file afresh.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_findings::Finding;
use vigil_outputs::Event;

use crate::error::RespondError;

#[derive(Debug, Default)]
pub struct Ledger {
    path: PathBuf,
    by_id: BTreeMap<String, Finding>,
    by_path: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    findings: Vec<Finding>,
}

const VERSION: u32 = 1;

/// Held while a process reads, changes and writes the ledger.
pub struct LedgerLock {
    _file: File,
}

impl Ledger {
    /// An empty ledger that will be saved at `path`.
    pub fn empty(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            ..Self::default()
        }
    }

    /// Loads the ledger at `path`: empty when there is none, or (with a warning) when it is
    /// damaged.
    pub fn load(path: &Path) -> Self {
        let mut l = Self::empty(path);
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return l,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "finding ledger unreadable; starting empty (receivers deduplicate by id)");
                return l;
            }
        };
        match serde_json::from_slice::<OnDisk>(&bytes) {
            Ok(d) if d.version == VERSION => {
                for f in d.findings {
                    l.insert(f);
                }
            }
            Ok(d) => {
                tracing::warn!(path = %path.display(), version = d.version, "finding ledger of an unknown version; starting empty")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "finding ledger damaged; starting empty (receivers deduplicate by id)")
            }
        }
        l
    }

    /// Takes the exclusive lock of the ledger at `path` (`path.lock`), waiting for another
    /// process's scan to finish applying.
    pub fn lock(path: &Path) -> Result<LedgerLock, RespondError> {
        let lock_path = lock_path(path);
        let err = |cause| RespondError::Ledger {
            path: lock_path.clone(),
            cause,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(err)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| err(e.into()))?;
        Ok(LedgerLock { _file: file })
    }

    fn insert(&mut self, f: Finding) {
        self.by_path
            .entry(f.file.path.clone())
            .or_default()
            .insert(f.id.clone());
        self.by_id.insert(f.id.clone(), f);
    }

    fn remove(&mut self, id: &str) -> Option<Finding> {
        let f = self.by_id.remove(id)?;
        if let Some(ids) = self.by_path.get_mut(&f.file.path) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_path.remove(&f.file.path);
            }
        }
        Some(f)
    }

    /// What one scan of `path` found (every finding of it, built this scan): new and updated
    /// findings, and resolutions of what the path had that this scan did not see.
    pub fn observe(
        &mut self,
        path: &str,
        findings: Vec<Finding>,
        now: i64,
    ) -> Vec<(Event, Finding)> {
        let seen: BTreeSet<String> = findings.iter().map(|f| f.id.clone()).collect();
        let mut out = self.resolve_except(path, &seen, now);
        for f in findings {
            let (event, f) = match self.by_id.get(&f.id) {
                Some(old) => (Event::Updated, old.seen_again(&f)),
                None => (Event::New, f),
            };
            self.insert(f.clone());
            out.push((event, f));
        }
        out
    }

    /// `path` scanned clean (or is gone): every active finding of it is resolved.
    pub fn clean(&mut self, path: &str, now: i64) -> Vec<(Event, Finding)> {
        self.resolve_except(path, &BTreeSet::new(), now)
    }

    fn resolve_except(
        &mut self,
        path: &str,
        keep: &BTreeSet<String>,
        now: i64,
    ) -> Vec<(Event, Finding)> {
        let ids: Vec<String> = self
            .by_path
            .get(path)
            .map(|ids| ids.difference(keep).cloned().collect())
            .unwrap_or_default();
        ids.iter()
            .filter_map(|id| self.remove(id))
            .map(|f| (Event::Resolved, f.resolved(now)))
            .collect()
    }

    /// Whether `path` has an active finding.
    pub fn has_path(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }

    /// The paths with active findings.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.by_path.keys().map(String::as_str)
    }

    pub fn get(&self, id: &str) -> Option<&Finding> {
        self.by_id.get(id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Writes the ledger atomically: a temporary file in the same directory, fsynced, renamed
    /// over the old one, and the directory fsynced, so a crash leaves the old or the new.
    pub fn save(&self) -> Result<(), RespondError> {
        let err = |cause| RespondError::Ledger {
            path: self.path.clone(),
            cause,
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let body = serde_json::to_vec_pretty(&OnDisk {
            version: VERSION,
            findings: self.by_id.values().cloned().collect(),
        })
        .map_err(|e| err(e.into()))?;
        let mut tmp = tempfile_in(dir, &self.path).map_err(err)?;
        let write = (|| {
            tmp.1.write_all(&body)?;
            tmp.1.sync_all()?;
            std::fs::rename(&tmp.0, &self.path)?;
            File::open(dir)?.sync_all()
        })();
        if write.is_err() {
            let _ = std::fs::remove_file(&tmp.0);
        }
        write.map_err(err)
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// A new file next to `target` named after it and this process, mode 0600 (findings name
/// files and hosts).
fn tempfile_in(dir: &Path, target: &Path) -> std::io::Result<(PathBuf, File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = target.file_name().map_or_else(
        || "findings.json".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let p = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&p)?;
    Ok((p, f))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use vigil_findings::{FileFacts, Resource, Severity, State};

    fn finding(path: &str, sha: &str, sig: &str, now: i64) -> Finding {
        Finding::new(
            Resource {
                hostname: "h".into(),
                ..Resource::default()
            },
            FileFacts {
                path: path.into(),
                sha256: sha.into(),
                ..FileFacts::default()
            },
            sig,
            "yara",
            Severity::High,
            None,
            1,
            "e",
            now,
        )
    }

    #[test]
    fn new_updated_resolved_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("findings.json");
        let mut l = Ledger::load(&p);
        let a = finding("/x", "aa", "Sig.A", 100);
        let b = finding("/x", "aa", "Sig.B", 100);
        let ev = l.observe("/x", vec![a.clone(), b.clone()], 100);
        assert_eq!(
            ev.iter().map(|e| e.0).collect::<Vec<_>>(),
            [Event::New, Event::New]
        );
        l.save().unwrap();

        // A restart: the same detection is an update of the same finding.
        let mut l = Ledger::load(&p);
        assert_eq!(l.len(), 2);
        let ev = l.observe("/x", vec![finding("/x", "aa", "Sig.A", 200)], 200);
        let resolved: Vec<_> = ev.iter().filter(|e| e.0 == Event::Resolved).collect();
        assert_eq!(resolved.len(), 1, "Sig.B no longer seen");
        assert_eq!(resolved[0].1.id, b.id);
        assert_eq!(resolved[0].1.state, State::Resolved);
        let upd = ev.iter().find(|e| e.0 == Event::Updated).unwrap();
        assert_eq!(upd.1.id, a.id);
        assert_eq!((upd.1.first_seen, upd.1.last_seen), (100, 200));

        // New content at the path: a new finding, the old one resolved.
        let ev = l.observe("/x", vec![finding("/x", "bb", "Sig.A", 300)], 300);
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().any(|e| e.0 == Event::Resolved && e.1.id == a.id));
        assert!(ev.iter().any(|e| e.0 == Event::New && e.1.id != a.id));

        let ev = l.clean("/x", 400);
        assert_eq!(ev.len(), 1);
        assert!(l.is_empty() && !l.has_path("/x"));
        assert!(l.clean("/x", 500).is_empty(), "nothing left to resolve");
    }

    #[test]
    fn a_damaged_file_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("findings.json");
        std::fs::write(&p, b"{\"version\":1,\"findings\":[{\"id\":").unwrap();
        let mut l = Ledger::load(&p);
        assert!(l.is_empty());
        l.observe("/y", vec![finding("/y", "cc", "S", 1)], 1);
        l.save().unwrap();
        assert_eq!(Ledger::load(&p).len(), 1);
        let _g = Ledger::lock(&p).unwrap();
    }
}
