//! Check-ins: after each update check, whatever its outcome, a small JSON report
//! ([`vigil_fleet::CheckIn`]) POSTed to `fleet/checkin` of the mirror the check used, so the
//! server can show which hosts run which definitions and the rollout can halt on failures.
//!
//! A check-in is best effort and never changes the update's result or exit code: it is sent
//! after the update is over, bounded by `[fleet] timeout_secs`, and a mirror without a fleet
//! endpoint (a static web server answering 404 or 405) is noted at debug level only. It
//! carries the client's identity ([`Identity`]), the active database after the check, the
//! outcome by exit-code class, and the agent's last scheduled scan
//! (`database_dir/last-scan.json`, written by vigil-agent, read here by both programs).
//! `[fleet] checkin = false` turns it off.

use std::path::Path;
use std::time::{Duration, Instant};

use url::Url;
use vigil_fleet::checkin::{Installed, LastScan, LastUpdate, MAX_MESSAGE, SCHEMA};
use vigil_fleet::{CheckIn, UpdateResult};
use vigil_format::PublicKey;

use crate::config::Config;
use crate::error::{RejectKind, UpdateError};
use crate::http::Http;
use crate::identity::Identity;
use crate::install::load_installed;
use crate::state::{now, write_atomic, State};
use crate::update::{update, Options, Outcome, Report};

/// Where the check-in goes, relative to the mirror's base URL.
pub const CHECKIN_PATH: &str = "fleet/checkin";
/// The agent's last scheduled-scan summary, in the database directory.
pub const LAST_SCAN_FILE: &str = "last-scan.json";
/// Longest hostname reported (DNS's limit, and what the server accepts).
const MAX_HOSTNAME: usize = 253;

/// What the check-in cost and got, for the log and the benchmark.
#[derive(Clone, Debug, Default)]
pub struct CheckInReport {
    /// A request was made (false: turned off, nothing to report, or it could not be built).
    pub sent: bool,
    /// Where it went.
    pub url: Option<String>,
    /// The server's answer (none: no answer within the timeout, or no connection).
    pub status: Option<u16>,
    /// The JSON body's size.
    pub bytes: u64,
    pub elapsed: Duration,
    /// Why it was not sent or not stored.
    pub error: Option<String>,
}

impl CheckInReport {
    /// Stored by the server (2xx).
    pub fn stored(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// One update check as the programs run it: the update, then its check-in. The check-in
/// never alters the update's result.
pub async fn check(
    cfg: &Config,
    keys: &[PublicKey],
    opts: &Options,
) -> (Result<Outcome, UpdateError>, CheckInReport) {
    let result = update(cfg, keys, opts).await;
    let report = send(cfg, keys, opts, &result).await;
    (result, report)
}

/// Builds and POSTs the check-in for `result`, unless `[fleet] checkin = false`. Never fails:
/// what went wrong is logged and returned in the report.
pub async fn send(
    cfg: &Config,
    keys: &[PublicKey],
    opts: &Options,
    result: &Result<Outcome, UpdateError>,
) -> CheckInReport {
    let started = Instant::now();
    let mut report = CheckInReport::default();
    if !cfg.fleet.checkin {
        return report;
    }
    // Another updater holds the directory: this run did nothing, and that one reports.
    if let Err(UpdateError::Locked(_)) = result {
        return report;
    }
    let checkin = match build(cfg, keys, opts.engine_version, result).await {
        Ok(c) => c,
        Err(why) => {
            tracing::warn!(error = %why, "check-in not sent");
            report.error = Some(why);
            return report;
        }
    };
    let url = match target(cfg, result) {
        Ok(Some(u)) => u,
        Ok(None) => {
            let why = "no mirror to report to: every mirror is throttling or cooling down";
            tracing::debug!("check-in not sent: {why}");
            report.error = Some(why.to_owned());
            return report;
        }
        Err(why) => {
            tracing::warn!(error = %why, "check-in not sent");
            report.error = Some(why);
            return report;
        }
    };
    let body = checkin.to_json().into_bytes();
    report.bytes = body.len() as u64;
    report.url = Some(redact(url.as_str()));
    let http = match cfg.token().and_then(|token| {
        Http::new(&cfg.network, token.as_deref(), cfg.proxy.as_deref())
            .map_err(|e| UpdateError::Other(e.to_string()))
    }) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "check-in not sent");
            report.error = Some(e.to_string());
            return report;
        }
    };
    report.sent = true;
    let timeout = Duration::from_secs(cfg.fleet.timeout_secs.max(1));
    let answer = http.post_json(&url, body, timeout).await;
    report.elapsed = started.elapsed();
    let url_text = report.url.clone().unwrap_or_default();
    match answer {
        Ok(status) => {
            report.status = Some(status);
            match status {
                200..=299 => {}
                // A static mirror: nothing listens for check-ins there, and that is fine.
                404 | 405 => {
                    report.error = Some(format!("HTTP {status}: no fleet endpoint"));
                    tracing::debug!(url = %url_text, status, "the mirror has no fleet endpoint; check-in not stored");
                }
                _ => {
                    report.error = Some(format!("HTTP {status}"));
                    tracing::warn!(url = %url_text, status, "check-in refused");
                }
            }
        }
        // After a failed update the update's own error already says the mirror is out of
        // reach; a second warning would only repeat it.
        Err(e) if result.is_err() => {
            tracing::debug!(error = %e, "check-in not delivered");
            report.error = Some(e.to_string());
        }
        Err(e) => {
            tracing::warn!(error = %e, "check-in not delivered");
            report.error = Some(e.to_string());
        }
    }
    tracing::debug!(
        url = %url_text,
        status = report.status,
        bytes = report.bytes,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "check-in sent"
    );
    report
}

/// The check-in describing this host after `result`.
async fn build(
    cfg: &Config,
    keys: &[PublicKey],
    engine_version: u32,
    result: &Result<Outcome, UpdateError>,
) -> Result<CheckIn, String> {
    let identity = Identity::load(cfg, &cfg.database_dir).map_err(|e| e.to_string())?;
    let installed = match result {
        Ok(Outcome::Updated { engine, .. }) => Some(Installed {
            version: engine.db_version(),
            sha256: hex::encode(engine.db_sha256()),
        }),
        // The common case: the run verified the active database already.
        Ok(Outcome::UpToDate {
            report:
                Report {
                    active: Some((version, sha256)),
                    ..
                },
        }) => Some(Installed {
            version: *version,
            sha256: sha256.clone(),
        }),
        // What the agent would load: the active database, or last-known-good if that one
        // does not verify. Verifying is CPU work: off the async workers.
        _ => {
            let (dir, keys) = (cfg.database_dir.clone(), keys.to_vec());
            tokio::task::spawn_blocking(move || {
                load_installed(&dir, &keys).map(|i| Installed {
                    version: i.version(),
                    sha256: hex::encode(i.db.sha256()),
                })
            })
            .await
            .ok()
            .flatten()
        }
    };
    let mut last_update = last_update(result, now());
    if let Some(m) = last_update.message.take() {
        last_update.message = clean_message(&redact_mirrors(cfg, &m));
    }
    let mut c = CheckIn {
        schema: SCHEMA,
        client_id: identity.client_id,
        hostname: hostname(),
        instance_id: cfg.instance_id.clone(),
        channel: identity.channel,
        ring: identity.ring,
        installed,
        engine_version,
        last_update,
        last_scan: read_last_scan(&cfg.database_dir),
    };
    if c.validate().is_err() && c.last_scan.is_some() {
        // A scan summary from a clock gone wrong must not cost the whole report.
        c.last_scan = None;
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

/// The check's outcome by exit-code class, with the version installed or attempted and the
/// reason (not yet cleaned: see [`clean_message`]).
pub fn last_update(result: &Result<Outcome, UpdateError>, at: i64) -> LastUpdate {
    let (result, version, message) = match result {
        Ok(Outcome::Updated { report, .. }) => (UpdateResult::Ok, report.to, None),
        Ok(Outcome::UpToDate { report }) => (
            UpdateResult::UpToDate,
            None,
            (!report.notes.is_empty()).then(|| report.notes.join("; ")),
        ),
        Err(e) => {
            let (class, version) = match e {
                UpdateError::Config { .. } => (UpdateResult::Config, None),
                UpdateError::Network { .. }
                | UpdateError::Throttled { .. }
                | UpdateError::AllCoolingDown { .. } => (UpdateResult::Network, None),
                UpdateError::Verify { .. } => (UpdateResult::Verification, None),
                UpdateError::Rejected { version, kind, .. } => (
                    match kind {
                        RejectKind::Load => UpdateResult::Load,
                        RejectKind::SmokeTest => UpdateResult::SmokeTest,
                    },
                    Some(*version),
                ),
                UpdateError::Io { .. } | UpdateError::Locked(_) | UpdateError::Other(_) => {
                    (UpdateResult::Local, None)
                }
            };
            (class, version, Some(e.to_string()))
        }
    };
    LastUpdate {
        result,
        at,
        version: version.filter(|v| (1..=i64::MAX as u64).contains(v)),
        message,
    }
}

/// One line, no control characters, at most [`MAX_MESSAGE`] characters; `None` when empty.
pub fn clean_message(m: &str) -> Option<String> {
    let s: String = m
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let s: String = s.chars().take(MAX_MESSAGE).collect();
    (!s.is_empty()).then_some(s)
}

/// This host's name (the kernel's nodename), in the characters a check-in allows: others
/// become `-`, and it is cut at 253.
pub fn hostname() -> String {
    let raw = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    clean_hostname(&raw)
}

pub fn clean_hostname(raw: &str) -> String {
    let s: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(MAX_HOSTNAME)
        .collect();
    if s.is_empty() {
        "unknown".to_owned()
    } else {
        s
    }
}

/// `fleet/checkin` of the mirror the check used: the one it updated from, or the one its
/// failure names (the mirror it got furthest with); after a failure that names none (a
/// rejected database, a local error), the first mirror not cooling down. None when the check
/// ended throttled or with every mirror cooling down: a mirror that asked us to back off gets
/// no check-in either.
fn target(cfg: &Config, result: &Result<Outcome, UpdateError>) -> Result<Option<Url>, String> {
    let mirror = match result {
        Ok(o) => o.report().mirror.clone(),
        Err(UpdateError::Network { mirror, .. } | UpdateError::Verify { mirror, .. }) => {
            Some(mirror.clone())
        }
        Err(UpdateError::Throttled { .. } | UpdateError::AllCoolingDown { .. }) => None,
        Err(_) => {
            let state = State::load(&cfg.database_dir);
            cfg.mirrors
                .iter()
                .find(|m| state.cooldown_left(m) == 0)
                .cloned()
        }
    };
    let Some(mirror) = mirror else {
        return Ok(None);
    };
    Url::parse(&mirror)
        .and_then(|u| u.join(CHECKIN_PATH))
        .map(Some)
        .map_err(|e| format!("mirror {}: {e}", redact(&mirror)))
}

/// A URL without the user name and password it may carry.
fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Error texts name mirrors; one mirror's credentials are not another mirror's business.
fn redact_mirrors(cfg: &Config, message: &str) -> String {
    cfg.mirrors.iter().fold(message.to_owned(), |m, mirror| {
        let clean = redact(mirror);
        if clean == *mirror {
            m
        } else {
            m.replace(mirror.as_str(), &clean)
        }
    })
}

/// The agent's last scan summary, if it wrote one and it reads.
pub fn read_last_scan(db_dir: &Path) -> Option<LastScan> {
    let bytes = std::fs::read(db_dir.join(LAST_SCAN_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Records a scheduled scan's summary for the next check-in (atomically: a check-in never
/// reads half a file).
pub fn write_last_scan(db_dir: &Path, scan: &LastScan) -> Result<(), UpdateError> {
    let bytes = serde_json::to_vec(scan).map_err(|e| UpdateError::Other(e.to_string()))?;
    write_atomic(&db_dir.join(LAST_SCAN_FILE), &bytes, 0o644)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::PathBuf;

    use super::*;
    use crate::update::Report;

    #[test]
    fn outcomes_map_to_the_exit_code_classes() {
        let at = 1_764_600_000;
        let up = Ok(Outcome::UpToDate {
            report: Report::default(),
        });
        let u = last_update(&up, at);
        assert_eq!(
            (u.result, u.version, u.message),
            (UpdateResult::UpToDate, None, None)
        );
        let held = Ok(Outcome::UpToDate {
            report: Report {
                notes: vec!["held: stable at 10%, bucket 57".into()],
                ..Report::default()
            },
        });
        assert_eq!(
            last_update(&held, at).message.as_deref(),
            Some("held: stable at 10%, bucket 57")
        );
        let cases = [
            (
                UpdateError::Rejected {
                    version: 7,
                    kind: RejectKind::SmokeTest,
                    message: "smoke test: EICAR was not detected".into(),
                },
                UpdateResult::SmokeTest,
                Some(7),
            ),
            (
                UpdateError::Rejected {
                    version: 8,
                    kind: RejectKind::Load,
                    message: "the engine refused it".into(),
                },
                UpdateResult::Load,
                Some(8),
            ),
            (
                UpdateError::Network {
                    mirror: "http://m/".into(),
                    message: "refused".into(),
                },
                UpdateResult::Network,
                None,
            ),
            (
                UpdateError::AllCoolingDown { secs: 5 },
                UpdateResult::Network,
                None,
            ),
            (
                UpdateError::Verify {
                    mirror: "http://m/".into(),
                    message: "bad signature".into(),
                },
                UpdateResult::Verification,
                None,
            ),
            (
                UpdateError::Config {
                    path: PathBuf::from("vigil.toml"),
                    message: "x".into(),
                },
                UpdateResult::Config,
                None,
            ),
            (
                UpdateError::io("writing", "/db", std::io::Error::other("disk full")),
                UpdateResult::Local,
                None,
            ),
        ];
        for (e, want, version) in cases {
            let text = e.to_string();
            let u = last_update(&Err(e), at);
            assert_eq!((u.result, u.version), (want, version), "{text}");
            assert_eq!(u.message.as_deref(), Some(text.as_str()));
            assert_eq!(u.at, at);
        }
    }

    #[test]
    fn messages_and_hostnames_are_made_acceptable() {
        assert_eq!(
            clean_message("line one\nline\ttwo \u{1b}[31mred").as_deref(),
            Some("line one line two [31mred")
        );
        assert_eq!(clean_message(" \n "), None);
        let long = clean_message(&"é".repeat(1000)).unwrap();
        assert_eq!(long.chars().count(), MAX_MESSAGE);
        assert_eq!(clean_hostname("web 1.example\n"), "web-1.example");
        assert_eq!(clean_hostname("höst<b>"), "h-st-b-");
        assert_eq!(clean_hostname(""), "unknown");
        assert_eq!(clean_hostname(&"a".repeat(400)).len(), MAX_HOSTNAME);
        assert!(!hostname().is_empty());
    }

    #[test]
    fn credentials_in_mirror_urls_stay_home() {
        assert_eq!(redact("https://u:secret@h/vigil/"), "https://h/vigil/");
        assert_eq!(redact("https://h/vigil/"), "https://h/vigil/");
        let cfg = Config::parse(
            "mirrors = [\"https://u:secret@a/\", \"https://b/\"]\ntrusted_root = \"r\"",
            Path::new("/etc/vigil/vigil.toml"),
        )
        .unwrap();
        let m = redact_mirrors(&cfg, "mirror https://u:secret@a/: refused");
        assert_eq!(m, "mirror https://a/: refused");
        let up_to_date = |mirror: &str| {
            Ok(Outcome::UpToDate {
                report: Report {
                    mirror: Some(mirror.into()),
                    ..Report::default()
                },
            })
        };
        let url = |r| target(&cfg, &r).unwrap().map(|u| u.to_string());
        assert_eq!(
            url(up_to_date("https://b/")).as_deref(),
            Some("https://b/fleet/checkin")
        );
        let failed_at = |mirror: &str| {
            Err(UpdateError::Verify {
                mirror: mirror.into(),
                message: "x".into(),
            })
        };
        assert_eq!(
            url(failed_at("https://b/")).as_deref(),
            Some("https://b/fleet/checkin")
        );
        let throttled = Err(UpdateError::Throttled {
            mirror: "https://b/".into(),
            status: 429,
            secs: 600,
        });
        assert_eq!(url(throttled), None, "a throttling mirror is left alone");
        assert_eq!(url(Err(UpdateError::AllCoolingDown { secs: 9 })), None);
    }

    #[test]
    fn the_last_scan_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_last_scan(dir.path()), None);
        let s = LastScan {
            at: 1_764_590_000,
            scanned: 12,
            infected: 1,
            errors: 2,
        };
        write_last_scan(dir.path(), &s).unwrap();
        assert_eq!(read_last_scan(dir.path()), Some(s));
        std::fs::write(dir.path().join(LAST_SCAN_FILE), "{").unwrap();
        assert_eq!(read_last_scan(dir.path()), None);
    }
}
