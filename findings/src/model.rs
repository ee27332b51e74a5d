//! The finding: what was found, where, what was done about it, and since when.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::severity::Severity;

/// The stable id of a finding: hex SHA-256 over a versioned tag and the four parts, each
/// length-prefixed so no two different tuples can collide by moving a separator. The same file
/// content at the same path of the same host, found by the same signature, is the same finding
/// at every scan; new content at that path is a new finding.
pub fn finding_id(host: &str, path: &str, sha256: &str, signature: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"vigil-finding/1");
    for part in [host, path, sha256, signature] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Where the file is: the host, and on EC2 the instance and its account and region (from the
/// config, or IMDSv2 with a short timeout).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFacts {
    pub path: String,
    pub sha256: String,
    pub size: u64,
    /// Owner's uid, and name when it resolves.
    pub uid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Modification time, Unix seconds.
    pub mtime: i64,
}

/// What was done to the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    None,
    Quarantined,
    Removed,
}

/// Active until a clean rescan of its path resolves it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    #[default]
    Active,
    Resolved,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    /// The signature's name.
    pub threat: String,
    /// `yara`, `body` or `hash`.
    pub kind: String,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub resource: Resource,
    pub file: FileFacts,
    pub action: Action,
    pub db_version: u64,
    pub engine_version: String,
    /// Unix seconds.
    pub first_seen: i64,
    pub last_seen: i64,
    pub state: State,
}

impl Finding {
    /// A new finding seen now, its id derived from the host, file and signature.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        resource: Resource,
        file: FileFacts,
        threat: &str,
        kind: &str,
        severity: Severity,
        description: Option<String>,
        db_version: u64,
        engine_version: &str,
        now: i64,
    ) -> Self {
        Self {
            id: finding_id(&resource.hostname, &file.path, &file.sha256, threat),
            threat: threat.to_owned(),
            kind: kind.to_owned(),
            severity,
            description,
            resource,
            file,
            action: Action::None,
            db_version,
            engine_version: engine_version.to_owned(),
            first_seen: now,
            last_seen: now,
            state: State::Active,
        }
    }

    /// The same finding seen again: `first_seen` stays, the rest is this scan's.
    pub fn seen_again(&self, latest: &Finding) -> Finding {
        Finding {
            first_seen: self.first_seen.min(latest.first_seen),
            state: State::Active,
            ..latest.clone()
        }
    }

    /// A clean rescan of its path: resolved as of `now`.
    pub fn resolved(&self, now: i64) -> Finding {
        Finding {
            last_seen: now.max(self.last_seen),
            state: State::Resolved,
            ..self.clone()
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    pub(crate) fn sample(now: i64) -> Finding {
        Finding::new(
            Resource {
                hostname: "web-1".into(),
                instance_id: Some("i-0abc123".into()),
                region: Some("eu-west-1".into()),
                account_id: Some("123456789012".into()),
            },
            FileFacts {
                path: "/srv/www/shell.php".into(),
                sha256: "ab".repeat(32),
                size: 1234,
                uid: 33,
                owner: Some("www-data".into()),
                mtime: 1_764_000_000,
            },
            "Php_Webshell_C99_1",
            "yara",
            Severity::High,
            Some("c99 web shell".into()),
            7,
            "0.1.0",
            now,
        )
    }

    #[test]
    fn the_id_is_stable_and_separates_its_parts() {
        let a = finding_id("h", "/a", "s", "sig");
        assert_eq!(a, finding_id("h", "/a", "s", "sig"));
        assert_eq!(a.len(), 64);
        assert_ne!(
            a,
            finding_id("h", "/a", "t", "sig"),
            "new content, new finding"
        );
        // Moving a boundary between parts gives another id.
        assert_ne!(
            finding_id("ab", "c", "s", "x"),
            finding_id("a", "bc", "s", "x")
        );
    }

    #[test]
    fn seen_again_keeps_first_seen_and_resolving_archives() {
        let first = sample(100);
        let again = first.seen_again(&sample(200));
        assert_eq!(again.id, first.id);
        assert_eq!((again.first_seen, again.last_seen), (100, 200));
        let done = again.resolved(300);
        assert_eq!(done.state, State::Resolved);
        assert_eq!((done.first_seen, done.last_seen), (100, 300));
        let json = serde_json::to_value(&done).unwrap();
        assert_eq!(json["state"], "resolved");
        assert_eq!(json["severity"], "HIGH");
        assert_eq!(json["action"], "none");
    }
}
