//! What the updater remembers between runs (`database_dir/state.json`): per-mirror cool-downs,
//! so a throttled or dead mirror is left alone across one-shot runs as freshclam does, and
//! database versions that failed to load or smoke-test, so they are not fetched at every check.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::UpdateError;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub mirrors: BTreeMap<String, MirrorState>,
    /// Keyed by database version; the hash makes a re-published version (new build) eligible.
    #[serde(default)]
    pub bad: BTreeMap<u64, BadVersion>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MirrorState {
    pub failures: u32,
    /// Unix seconds before which the mirror is not contacted.
    pub cooldown_until: i64,
    pub last_error: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BadVersion {
    pub sha256: String,
    pub reason: String,
    pub at: i64,
}

pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl State {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// A missing or unreadable state is a fresh start, not an error: it holds only hints.
    pub fn load(dir: &Path) -> Self {
        std::fs::read(Self::path(dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, dir: &Path) -> Result<(), UpdateError> {
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|e| UpdateError::Other(e.to_string()))?;
        write_atomic(&Self::path(dir), &bytes, 0o644)
    }

    /// Seconds until `mirror` may be contacted again (0: now).
    pub fn cooldown_left(&self, mirror: &str) -> u64 {
        self.mirrors
            .get(mirror)
            .map_or(0, |m| (m.cooldown_until - now()).max(0) as u64)
    }

    /// Records a failure: exponential back-off with ±25% jitter, at least `retry_after`.
    pub fn mirror_failed(
        &mut self,
        mirror: &str,
        error: &str,
        retry_after: Option<u64>,
        base: Duration,
        max: Duration,
    ) -> u64 {
        let m = self.mirrors.entry(mirror.to_owned()).or_default();
        m.failures = m.failures.saturating_add(1);
        let exp = base
            .as_secs()
            .saturating_mul(1u64 << (m.failures - 1).min(20))
            .min(max.as_secs());
        let mut secs = jitter(exp);
        if let Some(ra) = retry_after {
            // A hostile mirror can only silence itself; still, keep it within a day of sanity.
            secs = secs.max(ra.min(max.as_secs().max(86_400)));
        }
        m.cooldown_until = now() + secs as i64;
        m.last_error = error.to_owned();
        secs
    }

    pub fn mirror_ok(&mut self, mirror: &str) {
        self.mirrors.remove(mirror);
    }

    pub fn is_bad(&self, version: u64, sha256: &str) -> Option<&BadVersion> {
        self.bad.get(&version).filter(|b| b.sha256 == sha256)
    }

    pub fn mark_bad(&mut self, version: u64, sha256: &str, reason: &str) {
        self.bad.insert(
            version,
            BadVersion {
                sha256: sha256.to_owned(),
                reason: reason.to_owned(),
                at: now(),
            },
        );
        // Only recent history matters.
        while self.bad.len() > 32 {
            self.bad.pop_first();
        }
    }
}

/// ±25% so a fleet throttled at the same moment does not come back at the same moment.
fn jitter(secs: u64) -> u64 {
    let mut b = [0u8; 2];
    let r = if getrandom::fill(&mut b).is_ok() {
        u16::from_le_bytes(b)
    } else {
        u16::MAX / 2
    };
    let factor = 0.75 + 0.5 * f64::from(r) / f64::from(u16::MAX);
    ((secs as f64) * factor).round().max(1.0) as u64
}

/// Write to a temporary file in the same directory, fsync it, rename it over `path`, and fsync
/// the directory: after a crash `path` holds either the old or the new bytes, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), UpdateError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".vigil-tmp-")
        .tempfile_in(dir)
        .map_err(|e| UpdateError::io("creating a temporary file in", dir, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| UpdateError::io("writing", tmp.path().to_path_buf(), e))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| UpdateError::io("setting permissions on", path, e))?;
    tmp.persist(path)
        .map_err(|e| UpdateError::io("renaming into place", path, e.error))?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> Result<(), UpdateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| UpdateError::io("syncing directory", dir, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn backoff_grows_honours_retry_after_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::default();
        let (base, max) = (Duration::from_secs(60), Duration::from_secs(3600));
        let a = s.mirror_failed("m", "503", None, base, max);
        assert!((45..=75).contains(&a), "{a}");
        let b = s.mirror_failed("m", "503", None, base, max);
        assert!((90..=150).contains(&b), "{b}");
        let c = s.mirror_failed("m", "429", Some(2000), base, max);
        assert!(c >= 2000, "{c}");
        for _ in 0..30 {
            s.mirror_failed("m", "x", None, base, max);
        }
        assert!(s.cooldown_left("m") <= 4500);
        s.save(dir.path()).unwrap();
        let back = State::load(dir.path());
        assert!(back.cooldown_left("m") > 0);
        assert_eq!(back.cooldown_left("other"), 0);
        let mut back = back;
        back.mirror_ok("m");
        assert_eq!(back.cooldown_left("m"), 0);
    }

    #[test]
    fn bad_versions_are_keyed_by_hash() {
        let mut s = State::default();
        s.mark_bad(3, "aa", "smoke test");
        assert!(s.is_bad(3, "aa").is_some());
        assert!(s.is_bad(3, "bb").is_none());
        assert!(s.is_bad(4, "aa").is_none());
    }
}
