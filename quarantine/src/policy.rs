//! The quarantine policy: which detected files may be moved, and how many per scan. A bad
//! rule (one that matches `ls`, or everything) must not take a server down, so:
//!
//! - allowlisted files are never quarantined;
//! - a file must be under one of the configured `paths` (none configured: nothing moves);
//! - a file under a protected path ([`DEFAULT_PROTECTED`] unless configured) is refused
//!   unless `allow` names it or one of its parent directories;
//! - each scan quarantines at most `max_per_scan` files; the detection that crosses the limit
//!   is reported once ([`Decision::LimitReached`] with `first`), so the caller raises one
//!   CRITICAL mass-detection finding naming the signature, and nothing more is moved.
//!
//! Paths are compared lexically, component by component, and must be absolute and normalized
//! (`..` refused): the store itself then refuses symlinks on the way (see `dirfd`), so the
//! lexical path is the file that moves.
//!
//! A protected entry whose last component ends in `*` matches by name prefix: `/usr/lib*`
//! covers `/usr/lib`, `/usr/lib32`, `/usr/lib64` and `/usr/libexec`. The same rule applies to
//! `paths` and `allow` entries.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The protected paths by default: the system's programs, libraries, boot files and
/// configuration. Quarantining any of them can make a host unbootable or unreachable.
pub const DEFAULT_PROTECTED: &[&str] = &[
    "/bin",
    "/sbin",
    "/lib*",
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib*",
    "/boot",
    "/etc",
];

/// Where quarantine may act. Built from the `[quarantine]` table of vigil.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Quarantine acts only under these.
    pub paths: Vec<PathBuf>,
    /// Never under these (normally [`DEFAULT_PROTECTED`])…
    pub protected: Vec<PathBuf>,
    /// …unless one of these is the file or one of its parents.
    pub allow: Vec<PathBuf>,
    /// At most this many files per scan (0: none).
    pub max_per_scan: usize,
}

/// Why a file is not quarantined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not an absolute path")]
    NotAbsolute,
    #[error("the path holds `.` or `..` components")]
    NotNormalized,
    #[error("outside the configured quarantine paths")]
    OutsidePaths,
    #[error("under the protected path {0} (name it in quarantine.allow to permit)")]
    Protected(PathBuf),
    #[error("the file is allowlisted")]
    Allowlisted,
}

/// What to do with one detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Quarantine,
    Refused(Refusal),
    /// Past `max_per_scan`: report, do not move. `first` is true for exactly one detection
    /// per session, the one that crossed the limit.
    LimitReached {
        first: bool,
    },
}

/// [`DEFAULT_PROTECTED`] as paths.
pub fn default_protected() -> Vec<PathBuf> {
    DEFAULT_PROTECTED.iter().map(PathBuf::from).collect()
}

impl Policy {
    /// Whether the policy lets `path` be quarantined (the per-scan limit aside).
    pub fn check(&self, path: &Path) -> Result<(), Refusal> {
        let mut comps = path.components();
        if comps.next() != Some(Component::RootDir) {
            return Err(Refusal::NotAbsolute);
        }
        if !comps.all(|c| matches!(c, Component::Normal(_))) {
            return Err(Refusal::NotNormalized);
        }
        if !self.paths.iter().any(|p| covers(p, path)) {
            return Err(Refusal::OutsidePaths);
        }
        if let Some(p) = self.protected.iter().find(|p| covers(p, path)) {
            if !self.allow.iter().any(|a| covers(a, path)) {
                return Err(Refusal::Protected(p.clone()));
            }
        }
        Ok(())
    }

    /// A new scan's counter of quarantined files.
    pub fn session(&self) -> Session {
        Session {
            policy: Arc::new(self.clone()),
            admitted: AtomicUsize::new(0),
        }
    }
}

/// One scan's view of the policy: counts what it admits (shared across scan threads).
#[derive(Debug)]
pub struct Session {
    policy: Arc<Policy>,
    admitted: AtomicUsize,
}

impl Session {
    /// Decides for one detection. Only files the policy allows count towards the limit.
    pub fn admit(&self, path: &Path, allowlisted: bool) -> Decision {
        if allowlisted {
            return Decision::Refused(Refusal::Allowlisted);
        }
        if let Err(r) = self.policy.check(path) {
            return Decision::Refused(r);
        }
        // Saturating: the count never wraps back under the limit.
        let before = self
            .admitted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(1))
            })
            .unwrap_or(usize::MAX);
        let max = self.policy.max_per_scan;
        if before < max {
            Decision::Quarantine
        } else {
            Decision::LimitReached {
                first: before == max,
            }
        }
    }

    /// Detections the policy allowed so far (admitted or over the limit).
    pub fn count(&self) -> usize {
        self.admitted.load(Ordering::SeqCst)
    }
}

/// Whether `pattern` is `path` or one of its parents; a last component ending in `*`
/// matches names with that prefix.
fn covers(pattern: &Path, path: &Path) -> bool {
    let mut pat: Vec<Component> = pattern.components().collect();
    let prefix = match pat.last() {
        Some(Component::Normal(n)) => n
            .to_str()
            .and_then(|s| s.strip_suffix('*'))
            .map(str::to_owned),
        _ => None,
    };
    if prefix.is_some() {
        pat.pop();
    }
    let mut comps = path.components();
    for p in &pat {
        if comps.next() != Some(*p) {
            return false;
        }
    }
    match prefix {
        None => true,
        Some(prefix) => match comps.next() {
            Some(Component::Normal(n)) => n.to_str().is_some_and(|n| n.starts_with(&prefix)),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            paths: vec!["/".into()],
            protected: default_protected(),
            allow: vec![],
            max_per_scan: 3,
        }
    }

    fn refused(p: &Policy, path: &str) -> Option<Refusal> {
        p.check(Path::new(path)).err()
    }

    #[test]
    fn protected_paths_are_refused_by_component() {
        let p = policy();
        for path in [
            "/bin/ls",
            "/sbin/init",
            "/lib/x",
            "/lib64/ld-linux-x86-64.so.2",
            "/lib32/x",
            "/libx32/x",
            "/usr/bin/sudo",
            "/usr/sbin/sshd",
            "/usr/lib/x",
            "/usr/lib64/x",
            "/usr/libexec/x",
            "/boot/vmlinuz",
            "/etc/cron.d/x",
            "/etc",
        ] {
            assert!(
                matches!(refused(&p, path), Some(Refusal::Protected(_))),
                "{path} must be protected"
            );
        }
        // Component matching, not string prefixes.
        for path in [
            "/binary/x",
            "/etcetera/x",
            "/usr/binx/y",
            "/usr/local/lib/x",
            "/srv/etc/x",
            "/home/u/lib/x",
        ] {
            assert_eq!(refused(&p, path), None, "{path} is not protected");
        }
        assert_eq!(
            refused(&p, "/usr/lib64/x"),
            Some(Refusal::Protected("/usr/lib*".into()))
        );
    }

    #[test]
    fn paths_must_be_absolute_and_normalized() {
        let p = policy();
        assert_eq!(refused(&p, "srv/x"), Some(Refusal::NotAbsolute));
        assert_eq!(
            refused(&p, "/srv/../etc/passwd"),
            Some(Refusal::NotNormalized)
        );
        assert_eq!(refused(&p, "/srv/.."), Some(Refusal::NotNormalized));
    }

    #[test]
    fn only_under_the_configured_paths() {
        let p = Policy {
            paths: vec!["/srv".into(), "/home".into()],
            ..policy()
        };
        assert_eq!(refused(&p, "/srv/www/x.php"), None);
        assert_eq!(refused(&p, "/home/u/x"), None);
        assert_eq!(refused(&p, "/srvx/y"), Some(Refusal::OutsidePaths));
        assert_eq!(refused(&p, "/tmp/x"), Some(Refusal::OutsidePaths));
        let none = Policy {
            paths: vec![],
            ..policy()
        };
        assert_eq!(refused(&none, "/srv/x"), Some(Refusal::OutsidePaths));
    }

    #[test]
    fn allow_overrides_protection_for_the_named_path_and_below() {
        let p = Policy {
            allow: vec!["/etc/vigil-test".into()],
            ..policy()
        };
        assert_eq!(refused(&p, "/etc/vigil-test"), None);
        assert_eq!(refused(&p, "/etc/vigil-test/sub/x"), None);
        assert!(matches!(
            refused(&p, "/etc/vigil-testx"),
            Some(Refusal::Protected(_))
        ));
        assert!(matches!(
            refused(&p, "/etc/passwd"),
            Some(Refusal::Protected(_))
        ));
    }

    #[test]
    fn session_stops_at_the_limit_and_says_so_once() {
        let p = policy();
        let s = p.session();
        assert_eq!(
            s.admit(Path::new("/srv/a"), true),
            Decision::Refused(Refusal::Allowlisted)
        );
        assert!(matches!(
            s.admit(Path::new("/etc/x"), false),
            Decision::Refused(_)
        ));
        for _ in 0..3 {
            assert_eq!(s.admit(Path::new("/srv/a"), false), Decision::Quarantine);
        }
        assert_eq!(
            s.admit(Path::new("/srv/a"), false),
            Decision::LimitReached { first: true }
        );
        for _ in 0..5 {
            assert_eq!(
                s.admit(Path::new("/srv/a"), false),
                Decision::LimitReached { first: false }
            );
        }
        // Refusals and allowlisted files do not count; a new session starts from zero.
        assert_eq!(s.count(), 9);
        assert_eq!(
            p.session().admit(Path::new("/srv/a"), false),
            Decision::Quarantine
        );
    }

    #[test]
    fn session_counts_exactly_across_threads() {
        let p = Policy {
            max_per_scan: 100,
            ..policy()
        };
        let s = p.session();
        let results: Vec<Decision> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    sc.spawn(|| {
                        (0..50)
                            .map(|_| s.admit(Path::new("/srv/a"), false))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        assert_eq!(
            results
                .iter()
                .filter(|d| **d == Decision::Quarantine)
                .count(),
            100
        );
        assert_eq!(
            results
                .iter()
                .filter(|d| **d == Decision::LimitReached { first: true })
                .count(),
            1
        );
    }

    #[test]
    fn zero_means_nothing_moves() {
        let p = Policy {
            max_per_scan: 0,
            ..policy()
        };
        let s = p.session();
        assert_eq!(
            s.admit(Path::new("/srv/a"), false),
            Decision::LimitReached { first: true }
        );
    }
}
