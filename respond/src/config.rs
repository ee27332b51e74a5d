//! The response sections of `vigil.toml`: `[findings]` (the host's identity, severities, the
//! outbox and the ledger), `[[outputs]]` (parsed by `vigil-outputs`), `[[actions]]` (response
//! hooks) and `[quarantine]`. The updater's config carries them as raw tables; they are parsed
//! here with the same rules as the rest of the file: unknown keys are errors naming the file,
//! the section and the key, and relative paths resolve against the config file's directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use vigil_findings::{Severity, SeverityMap};
use vigil_outputs::{parse_outputs, Event, OutputConfig};

use crate::error::RespondError;

/// Everything the response to a detection is configured by.
#[derive(Clone, Debug)]
pub struct ResponseConfig {
    pub findings: FindingsConfig,
    pub severity: SeverityMap,
    pub outputs: Vec<OutputConfig>,
    pub actions: Vec<ActionConfig>,
    pub quarantine: QuarantineConfig,
}

/// `[findings]`.
#[derive(Clone, Debug, PartialEq)]
pub struct FindingsConfig {
    /// Configured host identity; what is missing comes from the system (hostname) or IMDSv2.
    pub hostname: Option<String>,
    pub instance_id: Option<String>,
    pub region: Option<String>,
    pub account_id: Option<String>,
    pub imds: bool,
    pub imds_endpoint: String,
    pub imds_timeout: Duration,
    pub outbox_dir: PathBuf,
    pub outbox_max_records: Option<u64>,
    pub outbox_max_bytes: Option<u64>,
    pub ledger: PathBuf,
}

/// One `[[actions]]` entry: a command run for each finding it wants.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionConfig {
    pub name: String,
    pub min_severity: Severity,
    /// argv; `command[0]` is an absolute path. No shell.
    pub command: Vec<String>,
    pub timeout: Duration,
    pub events: BTreeSet<Event>,
}

impl ActionConfig {
    pub fn wants(&self, event: Event, severity: Severity) -> bool {
        self.events.contains(&event) && severity >= self.min_severity
    }
}

/// `[quarantine]`.
#[derive(Clone, Debug, PartialEq)]
pub struct QuarantineConfig {
    pub enabled: bool,
    pub dir: PathBuf,
    pub paths: Vec<PathBuf>,
    pub protected: Vec<PathBuf>,
    pub allow: Vec<PathBuf>,
    pub max_per_scan: usize,
    pub min_severity: Severity,
}

impl QuarantineConfig {
    /// The policy the quarantine store's sessions are cut from.
    pub fn policy(&self) -> vigil_quarantine::Policy {
        vigil_quarantine::Policy {
            paths: self.paths.clone(),
            protected: self.protected.clone(),
            allow: self.allow.clone(),
            max_per_scan: self.max_per_scan,
        }
    }
}

pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";
pub const DEFAULT_QUARANTINE_DIR: &str = "/var/lib/vigil/quarantine";
pub const DEFAULT_MAX_PER_SCAN: usize = 20;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFindings {
    hostname: Option<String>,
    instance_id: Option<String>,
    region: Option<String>,
    account_id: Option<String>,
    imds: Option<bool>,
    imds_endpoint: Option<String>,
    imds_timeout_ms: Option<u64>,
    default_severity: Option<String>,
    severity_prefixes: Option<BTreeMap<String, String>>,
    outbox_dir: Option<PathBuf>,
    outbox_max_records: Option<u64>,
    outbox_max_bytes: Option<u64>,
    ledger: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    name: String,
    min_severity: Option<String>,
    command: Vec<String>,
    timeout_secs: Option<u64>,
    events: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawQuarantine {
    enabled: Option<bool>,
    dir: Option<PathBuf>,
    paths: Option<Vec<PathBuf>>,
    protected: Option<Vec<PathBuf>>,
    allow: Option<Vec<PathBuf>>,
    max_per_scan: Option<usize>,
    min_severity: Option<String>,
}

impl ResponseConfig {
    /// Parses the response sections of the config file at `config_path`; `database_dir` is
    /// where the outbox and the ledger live unless `[findings]` says otherwise.
    pub fn parse(
        findings: &toml::Table,
        outputs: &[toml::Table],
        actions: &[toml::Table],
        quarantine: &toml::Table,
        config_path: &Path,
        database_dir: &Path,
    ) -> Result<Self, RespondError> {
        let base = config_path.parent().unwrap_or(Path::new("."));
        let abs = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let err = |message: String| RespondError::Config {
            path: config_path.to_path_buf(),
            message,
        };
        let sev = |section: &str, key: &str, v: Option<String>, default: Severity| match v {
            None => Ok(default),
            Some(s) => s
                .parse::<Severity>()
                .map_err(|e| err(format!("{section}: {key}: {e}"))),
        };

        let f: RawFindings = toml::Value::Table(findings.clone())
            .try_into()
            .map_err(|e: toml::de::Error| err(format!("[findings]: {}", e.message())))?;
        let mut severity = SeverityMap {
            default: sev(
                "[findings]",
                "default_severity",
                f.default_severity,
                Severity::Medium,
            )?,
            ..SeverityMap::default()
        };
        for (prefix, label) in f.severity_prefixes.unwrap_or_default() {
            let s = sev(
                "[findings]",
                &format!("severity_prefixes.{prefix}"),
                Some(label),
                Severity::Medium,
            )?;
            severity.prefixes.retain(|(p, _)| *p != prefix);
            severity.prefixes.push((prefix, s));
        }
        let imds_endpoint = f
            .imds_endpoint
            .unwrap_or_else(|| DEFAULT_IMDS_ENDPOINT.into());
        if !(imds_endpoint.starts_with("http://") || imds_endpoint.starts_with("https://")) {
            return Err(err(format!(
                "[findings]: imds_endpoint: {imds_endpoint:?} is not an http(s) URL"
            )));
        }
        let findings = FindingsConfig {
            hostname: f.hostname,
            instance_id: f.instance_id,
            region: f.region,
            account_id: f.account_id,
            imds: f.imds.unwrap_or(true),
            imds_endpoint,
            imds_timeout: Duration::from_millis(f.imds_timeout_ms.unwrap_or(1000).max(1)),
            outbox_dir: f
                .outbox_dir
                .map_or_else(|| database_dir.join("outbox"), abs),
            outbox_max_records: f.outbox_max_records,
            outbox_max_bytes: f.outbox_max_bytes,
            ledger: f
                .ledger
                .map_or_else(|| database_dir.join("findings.json"), abs),
        };

        let outputs = parse_outputs(outputs, config_path)?;

        let mut parsed_actions: Vec<ActionConfig> = Vec::new();
        for (i, t) in actions.iter().enumerate() {
            let at = format!("[[actions]] entry {}", i + 1);
            let a: RawAction = toml::Value::Table(t.clone())
                .try_into()
                .map_err(|e: toml::de::Error| err(format!("{at}: {}", e.message())))?;
            let at = format!("{at} ({:?})", a.name);
            match a.command.first() {
                Some(c) if Path::new(c).is_absolute() => {}
                Some(c) => {
                    return Err(err(format!(
                        "{at}: command: {c:?} must be an absolute path (no shell, no PATH lookup)"
                    )))
                }
                None => return Err(err(format!("{at}: command: an empty argv"))),
            }
            if parsed_actions.iter().any(|p| p.name == a.name) {
                return Err(err(format!("{at}: name: another action has this name")));
            }
            let events = match a.events {
                None => [Event::New].into_iter().collect(),
                Some(list) => list
                    .iter()
                    .map(|e| {
                        Event::parse(e).ok_or_else(|| {
                            err(format!(
                                "{at}: events: {e:?} is not new, updated or resolved"
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            };
            parsed_actions.push(ActionConfig {
                min_severity: sev(&at, "min_severity", a.min_severity, Severity::High)?,
                name: a.name,
                command: a.command,
                timeout: Duration::from_secs(a.timeout_secs.unwrap_or(30).max(1)),
                events,
            });
        }

        let q: RawQuarantine = toml::Value::Table(quarantine.clone())
            .try_into()
            .map_err(|e: toml::de::Error| err(format!("[quarantine]: {}", e.message())))?;
        let quarantine = QuarantineConfig {
            enabled: q.enabled.unwrap_or(false),
            dir: q
                .dir
                .map_or_else(|| PathBuf::from(DEFAULT_QUARANTINE_DIR), abs),
            paths: q.paths.unwrap_or_default().into_iter().map(abs).collect(),
            protected: q.protected.map_or_else(
                || {
                    vigil_quarantine::DEFAULT_PROTECTED
                        .iter()
                        .map(PathBuf::from)
                        .collect()
                },
                |v| v.into_iter().map(abs).collect(),
            ),
            allow: q.allow.unwrap_or_default().into_iter().map(abs).collect(),
            max_per_scan: q.max_per_scan.unwrap_or(DEFAULT_MAX_PER_SCAN),
            min_severity: sev(
                "[quarantine]",
                "min_severity",
                q.min_severity,
                Severity::Medium,
            )?,
        };
        if quarantine.enabled && quarantine.paths.is_empty() {
            return Err(err(
                "[quarantine]: paths: name the directories where quarantining is allowed (enabled = true needs at least one)".into(),
            ));
        }
        Ok(Self {
            findings,
            severity,
            outputs,
            actions: parsed_actions,
            quarantine,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> Result<ResponseConfig, RespondError> {
        #[derive(Deserialize)]
        struct F {
            #[serde(default)]
            findings: toml::Table,
            #[serde(default)]
            outputs: Vec<toml::Table>,
            #[serde(default)]
            actions: Vec<toml::Table>,
            #[serde(default)]
            quarantine: toml::Table,
        }
        let f: F = toml::from_str(text).unwrap();
        ResponseConfig::parse(
            &f.findings,
            &f.outputs,
            &f.actions,
            &f.quarantine,
            Path::new("/etc/vigil/vigil.toml"),
            Path::new("/var/lib/vigil"),
        )
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.findings.outbox_dir, Path::new("/var/lib/vigil/outbox"));
        assert_eq!(c.findings.ledger, Path::new("/var/lib/vigil/findings.json"));
        assert!(c.findings.imds);
        assert_eq!(c.findings.imds_timeout, Duration::from_secs(1));
        assert_eq!(c.severity, SeverityMap::default());
        assert!(!c.quarantine.enabled);
        assert_eq!(c.quarantine.max_per_scan, 20);
        assert_eq!(c.quarantine.min_severity, Severity::Medium);
        assert!(c.quarantine.protected.contains(&PathBuf::from("/etc")));
        assert!(c.outputs.is_empty() && c.actions.is_empty());
    }

    #[test]
    fn every_key() {
        let c = parse(
            r#"
            [findings]
            hostname = "web-1"
            instance_id = "i-0abc"
            region = "eu-west-1"
            account_id = "123456789012"
            imds = false
            imds_timeout_ms = 200
            default_severity = "high"
            severity_prefixes = { "PUA." = "informational", "Win.Ransomware." = "critical" }
            outbox_dir = "outbox"
            outbox_max_records = 10
            ledger = "/srv/ledger.json"
            [[actions]]
            name = "isolate"
            command = ["/usr/local/bin/isolate", "--now"]
            timeout_secs = 5
            events = ["new", "updated"]
            [quarantine]
            enabled = true
            paths = ["/home", "srv"]
            protected = ["/etc"]
            allow = ["/etc/cron.d"]
            max_per_scan = 3
            "#,
        )
        .unwrap();
        assert_eq!(c.findings.hostname.as_deref(), Some("web-1"));
        assert!(!c.findings.imds);
        assert_eq!(c.findings.outbox_dir, Path::new("/etc/vigil/outbox"));
        assert_eq!(c.findings.outbox_max_records, Some(10));
        assert_eq!(c.severity.default, Severity::High);
        assert_eq!(c.severity.of("PUA.Win.Thing"), Severity::Informational);
        assert_eq!(
            c.severity.of("Heuristics.X"),
            Severity::Low,
            "built-in kept"
        );
        assert_eq!(c.severity.of("Win.Ransomware.Foo"), Severity::Critical);
        assert_eq!(c.actions[0].min_severity, Severity::High);
        assert_eq!(c.actions[0].timeout, Duration::from_secs(5));
        assert!(c.actions[0].wants(Event::Updated, Severity::Critical));
        assert!(!c.actions[0].wants(Event::New, Severity::Medium));
        assert_eq!(
            c.quarantine.paths,
            [PathBuf::from("/home"), PathBuf::from("/etc/vigil/srv")]
        );
        assert_eq!(c.quarantine.max_per_scan, 3);
    }

    #[test]
    fn errors_name_the_file_section_and_key() {
        for (text, words) in [
            ("[findings]\nbogus = 1", &["[findings]", "bogus"][..]),
            (
                "[findings]\ndefault_severity = \"dire\"",
                &["default_severity", "dire"][..],
            ),
            (
                "[findings]\nimds_endpoint = \"169.254.169.254\"",
                &["imds_endpoint"][..],
            ),
            (
                "[[actions]]\nname = \"a\"\ncommand = [\"isolate.sh\"]",
                &["[[actions]] entry 1", "command", "absolute"][..],
            ),
            ("[[actions]]\nname = \"a\"\ncommand = []", &["command"][..]),
            (
                "[[actions]]\nname = \"a\"\ncommand = [\"/x\"]\nshell = true",
                &["[[actions]] entry 1", "shell"][..],
            ),
            (
                "[[actions]]\nname = \"a\"\ncommand = [\"/x\"]\nevents = [\"born\"]",
                &["born"][..],
            ),
            (
                "[quarantine]\nenabled = true",
                &["[quarantine]", "paths"][..],
            ),
            (
                "[quarantine]\npath = [\"/srv\"]",
                &["[quarantine]", "path"][..],
            ),
            (
                "[[outputs]]\ntype = \"jsonl\"",
                &["[[outputs]]", "path"][..],
            ),
        ] {
            let e = parse(text).err().unwrap().to_string();
            assert!(e.contains("/etc/vigil/vigil.toml"), "{e}");
            for w in words {
                assert!(e.contains(w), "{text}: {e}");
            }
        }
    }
}
