//! The tags a scan leaves on an object: GuardDuty Malware Protection's status values under a
//! configurable key (so bucket policies written for `GuardDutyMalwareScanStatus` work with
//! `--tag-key GuardDutyMalwareScanStatus`), and the database version that decided it (what
//! `--rescan` compares with).
//!
//! S3 allows 10 tags per object. The object's own tags are never dropped: when ours do not all
//! fit, the database-version tag goes first (the object then counts as "scanned by an unknown
//! database": a rescan scans it again), and when not even the status fits nothing is written
//! and [`Merged::NoRoom`] says so, so the worker logs an error (the object stays untagged, and
//! a policy that requires the clean tag keeps denying reads).

use std::fmt;

/// S3's limit on tags per object.
pub const MAX_TAGS: usize = 10;
pub const DEFAULT_STATUS_KEY: &str = "VigilMalwareScanStatus";
pub const DEFAULT_DB_KEY: &str = "VigilDatabaseVersion";

/// The scan's verdict as GuardDuty writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanStatus {
    NoThreatsFound,
    ThreatsFound,
    /// Not completely scanned: encrypted archives, limits reached, too large.
    Unsupported,
    /// The worker may not read the object.
    AccessDenied,
    /// The scan failed (a timeout, a broken body).
    Failed,
}

impl ScanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::NoThreatsFound => "NO_THREATS_FOUND",
            ScanStatus::ThreatsFound => "THREATS_FOUND",
            ScanStatus::Unsupported => "UNSUPPORTED",
            ScanStatus::AccessDenied => "ACCESS_DENIED",
            ScanStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<ScanStatus> {
        [
            ScanStatus::NoThreatsFound,
            ScanStatus::ThreatsFound,
            ScanStatus::Unsupported,
            ScanStatus::AccessDenied,
            ScanStatus::Failed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

impl fmt::Display for ScanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tag keys in use.
#[derive(Clone, Debug)]
pub struct TagSettings {
    pub status_key: String,
    pub db_key: String,
}

impl Default for TagSettings {
    fn default() -> Self {
        Self {
            status_key: DEFAULT_STATUS_KEY.into(),
            db_key: DEFAULT_DB_KEY.into(),
        }
    }
}

impl TagSettings {
    /// What an object's tags say an earlier scan decided: its status and database version
    /// (None where a tag is missing or unreadable).
    pub fn read(&self, tags: &[(String, String)]) -> (Option<ScanStatus>, Option<u64>) {
        let get = |k: &str| {
            tags.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        (
            get(&self.status_key).and_then(ScanStatus::parse),
            get(&self.db_key).and_then(|v| v.parse().ok()),
        )
    }

    /// The object's tags with ours set (see the module's note on the 10-tag limit).
    pub fn merge(&self, existing: &[(String, String)], status: ScanStatus, db: u64) -> Merged {
        let mut own: Vec<(String, String)> = existing
            .iter()
            .filter(|(k, _)| *k != self.status_key && *k != self.db_key)
            .cloned()
            .collect();
        let room = MAX_TAGS.saturating_sub(own.len());
        if room == 0 {
            return Merged::NoRoom { own: own.len() };
        }
        own.push((self.status_key.clone(), status.as_str().to_owned()));
        if room >= 2 {
            own.push((self.db_key.clone(), db.to_string()));
            Merged::Full(own)
        } else {
            Merged::WithoutDbVersion(own)
        }
    }
}

/// What [`TagSettings::merge`] could fit.
#[derive(Debug, PartialEq, Eq)]
pub enum Merged {
    Full(Vec<(String, String)>),
    /// The object has 9 tags of its own: the status fits, the database version does not.
    WithoutDbVersion(Vec<(String, String)>),
    /// The object has 10 tags of its own: nothing of ours fits, nothing is written.
    NoRoom {
        own: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect()
    }

    #[test]
    fn merge_keeps_the_owners_tags() {
        let t = TagSettings::default();
        let mut old = tags(3);
        old.push((DEFAULT_STATUS_KEY.into(), "FAILED".into()));
        let Merged::Full(m) = t.merge(&old, ScanStatus::ThreatsFound, 7) else {
            panic!("expected room");
        };
        assert_eq!(m.len(), 5);
        assert_eq!(&m[..3], &tags(3)[..]);
        assert_eq!(
            t.read(&m),
            (Some(ScanStatus::ThreatsFound), Some(7)),
            "ours replaced, not duplicated"
        );
    }

    #[test]
    fn the_ten_tag_limit() {
        let t = TagSettings::default();
        let Merged::Full(m) = t.merge(&tags(8), ScanStatus::NoThreatsFound, 1) else {
            panic!("8 + 2 fit");
        };
        assert_eq!(m.len(), 10);
        let Merged::WithoutDbVersion(m) = t.merge(&tags(9), ScanStatus::NoThreatsFound, 1) else {
            panic!("9 + status fit");
        };
        assert_eq!(m.len(), 10);
        assert_eq!(t.read(&m), (Some(ScanStatus::NoThreatsFound), None));
        assert_eq!(
            t.merge(&tags(10), ScanStatus::NoThreatsFound, 1),
            Merged::NoRoom { own: 10 }
        );
    }
}
