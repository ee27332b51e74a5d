//! The check-in: a small JSON document a client POSTs to `/fleet/checkin` after each update
//! check. Schema version 1:
//!
//! ```json
//! {"schema":1,"client_id":"i-0abc…","hostname":"web-1","instance_id":"i-0abc…",
//!  "channel":"stable","ring":"canary",
//!  "installed":{"version":7,"sha256":"…64 hex…"},"engine_version":1,
//!  "last_update":{"result":"ok","at":1764600000,"version":7,"message":null},
//!  "last_scan":{"at":1764590000,"scanned":1200,"infected":0,"errors":2}}
//! ```
//!
//! Unknown fields are ignored (a newer client may add some); known ones are checked for type,
//! length and character set, so what is stored and later rendered in the console is bounded
//! and cannot carry markup or control characters.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The only schema this build understands.
pub const SCHEMA: u32 = 1;
/// Largest body accepted; a real check-in is about 500 bytes.
pub const MAX_BYTES: usize = 4096;
/// Longest free-text message kept (the reason of a failed update).
pub const MAX_MESSAGE: usize = 300;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckIn {
    pub schema: u32,
    /// Stable, random per client (or set by the operator, e.g. the EC2 instance id).
    pub client_id: String,
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<String>,
    /// The active database, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<Installed>,
    pub engine_version: u32,
    pub last_update: LastUpdate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan: Option<LastScan>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub version: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastUpdate {
    pub result: UpdateResult,
    /// When the check ran (Unix seconds, client clock).
    pub at: i64,
    /// The version the check installed or tried to install (absent: nothing to do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The outcome of the last update check, by `vigil-update`'s exit-code classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateResult {
    /// Installed a new database.
    Ok,
    /// Nothing to do (including held back by a rollout).
    UpToDate,
    /// No mirror reachable or every mirror throttling.
    Network,
    /// Metadata or a file failed verification.
    Verification,
    /// The new database verified but failed the smoke test (it did not detect a sample).
    SmokeTest,
    /// The new database verified but did not load (compile) in the engine.
    Load,
    /// Disk, permissions, the database directory.
    Local,
    /// A configuration problem.
    Config,
}

impl UpdateResult {
    pub const ALL: [Self; 8] = [
        Self::Ok,
        Self::UpToDate,
        Self::Network,
        Self::Verification,
        Self::SmokeTest,
        Self::Load,
        Self::Local,
        Self::Config,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::UpToDate => "up_to_date",
            Self::Network => "network",
            Self::Verification => "verification",
            Self::SmokeTest => "smoke_test",
            Self::Load => "load",
            Self::Local => "local",
            Self::Config => "config",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The new database was bad on this host: what the automatic halt counts.
    pub fn is_release_failure(self) -> bool {
        matches!(self, Self::SmokeTest | Self::Load)
    }

    pub fn is_failure(self) -> bool {
        !matches!(self, Self::Ok | Self::UpToDate)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastScan {
    pub at: i64,
    pub scanned: u64,
    pub infected: u64,
    pub errors: u64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckInError {
    #[error("check-in of {0} bytes is over the {MAX_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("check-in is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error("check-in schema {0} is not supported (this server reads {SCHEMA})")]
    Schema(u32),
    #[error("check-in field {field}: {why}")]
    Field {
        field: &'static str,
        why: &'static str,
    },
}

impl CheckIn {
    /// Parses and checks an untrusted body.
    pub fn parse(body: &[u8]) -> Result<Self, CheckInError> {
        if body.len() > MAX_BYTES {
            return Err(CheckInError::TooLarge(body.len()));
        }
        let c: CheckIn =
            serde_json::from_slice(body).map_err(|e| CheckInError::Json(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The rules [`parse`](Self::parse) enforces; a client checks its own check-in with them
    /// too, so a bad setting is reported at home rather than refused by the server.
    pub fn validate(&self) -> Result<(), CheckInError> {
        let field = |field, why| Err(CheckInError::Field { field, why });
        if self.schema != SCHEMA {
            return Err(CheckInError::Schema(self.schema));
        }
        if !is_id(&self.client_id, 128) {
            return field("client_id", "1 to 128 of A-Z a-z 0-9 . _ : -");
        }
        if !is_hostname(&self.hostname) {
            return field("hostname", "1 to 253 of A-Z a-z 0-9 . _ -");
        }
        if let Some(i) = &self.instance_id {
            if !is_id(i, 64) {
                return field("instance_id", "1 to 64 of A-Z a-z 0-9 . _ : -");
            }
        }
        if !is_name(&self.channel) {
            return field("channel", "1 to 32 of a-z 0-9 -");
        }
        if let Some(r) = &self.ring {
            if !is_name(r) {
                return field("ring", "1 to 32 of a-z 0-9 -");
            }
        }
        if let Some(i) = &self.installed {
            if i.sha256.len() != 64
                || !i
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return field("installed.sha256", "64 lowercase hex digits");
            }
            if i.version == 0 || i.version > i64::MAX as u64 {
                return field("installed.version", "1 to 2^63-1");
            }
        }
        if self
            .last_update
            .version
            .is_some_and(|v| v == 0 || v > i64::MAX as u64)
        {
            return field("last_update.version", "1 to 2^63-1");
        }
        if let Some(m) = &self.last_update.message {
            if m.chars().count() > MAX_MESSAGE || m.chars().any(char::is_control) {
                return field(
                    "last_update.message",
                    "at most 300 characters, no control characters",
                );
            }
        }
        if !plausible_time(self.last_update.at) {
            return field("last_update.at", "Unix seconds between 2000 and 2200");
        }
        if let Some(s) = &self.last_scan {
            if !plausible_time(s.at) {
                return field("last_scan.at", "Unix seconds between 2000 and 2200");
            }
            if s.scanned > i64::MAX as u64
                || s.infected > i64::MAX as u64
                || s.errors > i64::MAX as u64
            {
                return field("last_scan", "counts up to 2^63-1");
            }
        }
        Ok(())
    }
}

fn is_id(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn is_hostname(s: &str) -> bool {
    (1..=253).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Channel and ring names (the same rule as the rollout's, in vigil-repository).
fn is_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn plausible_time(t: i64) -> bool {
    (946_684_800..=7_258_118_400).contains(&t)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    pub(crate) fn sample() -> CheckIn {
        CheckIn {
            schema: 1,
            client_id: "4f1c2a9e0b7d4e1f".into(),
            hostname: "web-1.example".into(),
            instance_id: Some("i-0abc123".into()),
            channel: "stable".into(),
            ring: Some("canary".into()),
            installed: Some(Installed {
                version: 7,
                sha256: "ab".repeat(32),
            }),
            engine_version: 1,
            last_update: LastUpdate {
                result: UpdateResult::Ok,
                at: 1_764_600_000,
                version: Some(7),
                message: None,
            },
            last_scan: Some(LastScan {
                at: 1_764_590_000,
                scanned: 1200,
                infected: 1,
                errors: 0,
            }),
        }
    }

    #[test]
    fn round_trips_and_ignores_unknown_fields() {
        let c = sample();
        let json = c.to_json();
        assert!(json.contains("\"result\":\"ok\""), "{json}");
        assert_eq!(CheckIn::parse(json.as_bytes()).unwrap(), c);
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["added_by_a_newer_client"] = serde_json::json!([1, 2]);
        assert_eq!(CheckIn::parse(v.to_string().as_bytes()).unwrap(), c);
    }

    #[test]
    fn refuses_what_the_schema_does_not_allow() {
        assert!(matches!(
            CheckIn::parse(&vec![b' '; MAX_BYTES + 1]),
            Err(CheckInError::TooLarge(_))
        ));
        assert!(matches!(CheckIn::parse(b"{"), Err(CheckInError::Json(_))));
        assert!(matches!(CheckIn::parse(b"[]"), Err(CheckInError::Json(_))));
        type Edit = Box<dyn Fn(&mut CheckIn)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("schema", Box::new(|c| c.schema = 2)),
            ("client_id", Box::new(|c| c.client_id = "<script>".into())),
            ("client_id", Box::new(|c| c.client_id = String::new())),
            ("hostname", Box::new(|c| c.hostname = "a b".into())),
            ("channel", Box::new(|c| c.channel = "Stable".into())),
            ("ring", Box::new(|c| c.ring = Some("x".repeat(33)))),
            (
                "sha256",
                Box::new(|c| c.installed.as_mut().unwrap().sha256 = "AB".repeat(32)),
            ),
            (
                "message",
                Box::new(|c| c.last_update.message = Some("a\u{1b}[31m".into())),
            ),
            ("last_update.at", Box::new(|c| c.last_update.at = -5)),
        ];
        for (want, f) in cases {
            let mut c = sample();
            f(&mut c);
            let e = CheckIn::parse(c.to_json().as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
