//! `[[outputs]]` in `vigil.toml`: where findings are delivered. Each entry has a `type`, an
//! optional `name` (default: the type; names must be unique, as each output's delivery cursor
//! is kept under its name), the least severity it wants (`min_severity`, default LOW) and the
//! events it wants (`events`: `new`, `updated`, `resolved`). The rest of the keys are the
//! type's own. Unknown keys are errors that name the output and the key; relative paths
//! resolve against the config file's directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_findings::Severity;

use crate::error::OutputError;

/// What happened to a finding, as its outbox record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// First seen.
    New,
    /// Seen again by a later scan (`last_seen` moved).
    Updated,
    /// A clean rescan of its path: archived.
    Resolved,
}

impl Event {
    pub const ALL: [Self; 3] = [Self::New, Self::Updated, Self::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Updated => "updated",
            Self::Resolved => "resolved",
        }
    }

    /// The event named `s` (`new`, `updated`, `resolved`), as configs write them.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutputConfig {
    pub name: String,
    pub min_severity: Severity,
    pub events: BTreeSet<Event>,
    pub kind: OutputKind,
}

impl OutputConfig {
    /// Whether this output wants `event` about a finding of `severity`. A resolution is sent
    /// whatever its severity when the output takes resolutions, so no receiver keeps a finding
    /// open that it was told about.
    pub fn wants(&self, event: Event, severity: Severity) -> bool {
        self.events.contains(&event) && (event == Event::Resolved || severity >= self.min_severity)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum OutputKind {
    Jsonl(JsonlConfig),
    Webhook(WebhookConfig),
    Slack(SlackConfig),
    SecurityHub(SecurityHubConfig),
    EventBridge(EventBridgeConfig),
    Sns(SnsConfig),
}

impl OutputKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Jsonl(_) => "jsonl",
            Self::Webhook(_) => "webhook",
            Self::Slack(_) => "slack",
            Self::SecurityHub(_) => "securityhub",
            Self::EventBridge(_) => "eventbridge",
            Self::Sns(_) => "sns",
        }
    }

    /// Events sent when the entry does not say: every change to the systems of record
    /// (files, Security Hub, EventBridge), only news and resolutions to people (webhooks, Slack,
    /// SNS), who do not want a message per nightly re-detection.
    fn default_events(&self) -> BTreeSet<Event> {
        match self {
            Self::Jsonl(_) | Self::SecurityHub(_) | Self::EventBridge(_) => {
                Event::ALL.into_iter().collect()
            }
            Self::Webhook(_) | Self::Slack(_) | Self::Sns(_) => {
                [Event::New, Event::Resolved].into_iter().collect()
            }
        }
    }
}

/// JSON lines appended to a local file, one record per line, rotated by size
/// (`path.1` ... `path.KEEP`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlConfig {
    pub path: PathBuf,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    #[serde(default = "default_keep")]
    pub keep: u32,
}

fn default_max_bytes() -> u64 {
    100 << 20
}
fn default_keep() -> u32 {
    5
}

/// A secret for a webhook or a Slack URL: from a file (preferred: keeps it out of
/// world-readable configs) or an environment variable. Never inline.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub env: Option<String>,
}

/// POSTs of JSON signed per Standard Webhooks 1.0 (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// The signing secret (`whsec_…` base64, or raw text): `secret_file` or `secret_env`.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    10
}

/// A Slack incoming webhook. Its URL is a credential, so it comes from a file or the
/// environment like a webhook secret.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    #[serde(default)]
    pub url_env: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

/// Settings shared by the AWS outputs. Credentials come from the standard chain (environment,
/// profile, web identity, IMDS); `endpoint_url` overrides the service endpoint (VPC endpoints,
/// tests); `region` defaults to the host's (from `[findings]` or IMDS), then the chain's.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityHubConfig {
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// The account the findings belong to (`AwsAccountId`); default: the host's.
    #[serde(default)]
    pub account_id: Option<String>,
    /// Default: `arn:aws:securityhub:REGION:ACCOUNT:product/ACCOUNT/default`.
    #[serde(default)]
    pub product_arn: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBridgeConfig {
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Bus name or ARN.
    #[serde(default = "default_bus")]
    pub event_bus: String,
}

fn default_bus() -> String {
    "default".into()
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsConfig {
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    pub topic_arn: String,
}

/// The keys every entry has, whatever its type.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    min_severity: Option<String>,
    #[serde(default)]
    events: Option<Vec<String>>,
}

const COMMON_KEYS: [&str; 4] = ["type", "name", "min_severity", "events"];

/// Parses the `[[outputs]]` entries of the config file at `path`. An error names the entry (by
/// position and name) and what is wrong with it.
pub fn parse_outputs(
    tables: &[toml::Table],
    path: &Path,
) -> Result<Vec<OutputConfig>, OutputError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out: Vec<OutputConfig> = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        let bad = |message: String| OutputError::Config {
            path: path.to_path_buf(),
            entry: i + 1,
            message,
        };
        let (common, own): (toml::Table, toml::Table) = table
            .clone()
            .into_iter()
            .partition(|(k, _)| COMMON_KEYS.contains(&k.as_str()));
        let common: Common = toml::Value::Table(common)
            .try_into()
            .map_err(|e: toml::de::Error| bad(e.message().to_owned()))?;
        let name = common.name.clone().unwrap_or_else(|| common.kind.clone());
        let bad = |message: String| bad(format!("output {name:?}: {message}"));
        let own = toml::Value::Table(own);
        let parse_err = |e: toml::de::Error| bad(e.message().to_owned());
        let kind = match common.kind.as_str() {
            "jsonl" => {
                let mut c: JsonlConfig = own.try_into().map_err(parse_err)?;
                if c.path.is_relative() {
                    c.path = base.join(&c.path);
                }
                OutputKind::Jsonl(c)
            }
            "webhook" => {
                let mut c: WebhookConfig = own.try_into().map_err(parse_err)?;
                check_url(&c.url).map_err(|m| bad(format!("url: {m}")))?;
                if c.secret_file.is_none() && c.secret_env.is_none() {
                    return Err(bad(
                        "needs secret_file or secret_env (the signing secret)".into()
                    ));
                }
                if let Some(f) = c.secret_file.as_mut().filter(|f| f.is_relative()) {
                    *f = base.join(&*f);
                }
                OutputKind::Webhook(c)
            }
            "slack" => {
                let mut c: SlackConfig = own.try_into().map_err(parse_err)?;
                if c.url_file.is_none() && c.url_env.is_none() {
                    return Err(bad(
                        "needs url_file or url_env (the incoming-webhook URL is a credential)"
                            .into(),
                    ));
                }
                if let Some(f) = c.url_file.as_mut().filter(|f| f.is_relative()) {
                    *f = base.join(&*f);
                }
                OutputKind::Slack(c)
            }
            "securityhub" => OutputKind::SecurityHub(own.try_into().map_err(parse_err)?),
            "eventbridge" => OutputKind::EventBridge(own.try_into().map_err(parse_err)?),
            "sns" => OutputKind::Sns(own.try_into().map_err(parse_err)?),
            other => {
                return Err(bad(format!(
                "type {other:?}: expected jsonl, webhook, slack, securityhub, eventbridge or sns"
            )))
            }
        };
        let min_severity = match &common.min_severity {
            Some(s) => s
                .parse()
                .map_err(|e: vigil_findings::severity::BadSeverity| {
                    bad(format!("min_severity: {e}"))
                })?,
            None => Severity::Low,
        };
        let events = match &common.events {
            Some(list) => list
                .iter()
                .map(|e| {
                    Event::parse(e).ok_or_else(|| {
                        bad(format!("events: {e:?} is not new, updated or resolved"))
                    })
                })
                .collect::<Result<BTreeSet<_>, _>>()?,
            None => kind.default_events(),
        };
        if !valid_name(&name) {
            return Err(bad(
                "name: use letters, digits, '-' and '_' (it names the output's cursor file)".into(),
            ));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(bad(
                "another output has this name; give each a distinct `name`".into(),
            ));
        }
        out.push(OutputConfig {
            name,
            min_severity,
            events,
            kind,
        });
    }
    Ok(out)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_url(u: &str) -> Result<(), String> {
    let scheme = u.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("https") | Some("http") => Ok(()),
        _ => Err(format!("{u:?} is not an http(s) URL")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> Result<Vec<OutputConfig>, OutputError> {
        #[derive(Deserialize)]
        struct F {
            outputs: Vec<toml::Table>,
        }
        let f: F = toml::from_str(text).unwrap();
        parse_outputs(&f.outputs, Path::new("/etc/vigil/vigil.toml"))
    }

    #[test]
    fn every_type_parses_with_its_defaults() {
        let o = parse(
            r#"
            [[outputs]]
            type = "jsonl"
            path = "findings.jsonl"
            [[outputs]]
            type = "webhook"
            name = "siem"
            url = "https://siem.example/hook"
            secret_file = "hook.secret"
            min_severity = "high"
            [[outputs]]
            type = "slack"
            url_env = "SLACK_URL"
            [[outputs]]
            type = "securityhub"
            region = "eu-west-1"
            [[outputs]]
            type = "eventbridge"
            endpoint_url = "http://127.0.0.1:5000"
            [[outputs]]
            type = "sns"
            topic_arn = "arn:aws:sns:eu-west-1:123456789012:vigil"
            events = ["new"]
            "#,
        )
        .unwrap();
        assert_eq!(o.len(), 6);
        let OutputKind::Jsonl(j) = &o[0].kind else {
            panic!()
        };
        assert_eq!(j.path, Path::new("/etc/vigil/findings.jsonl"));
        assert_eq!((j.max_bytes, j.keep), (100 << 20, 5));
        assert_eq!(o[1].name, "siem");
        assert_eq!(o[1].min_severity, Severity::High);
        assert!(!o[1].wants(Event::New, Severity::Medium));
        assert!(o[1].wants(Event::New, Severity::Critical));
        assert!(
            o[1].wants(Event::Resolved, Severity::Low),
            "resolutions always go"
        );
        assert!(
            !o[1].wants(Event::Updated, Severity::Critical),
            "people get news, not re-detections"
        );
        assert!(
            o[3].wants(Event::Updated, Severity::Medium),
            "Security Hub gets updates"
        );
        assert_eq!(o[5].events, [Event::New].into_iter().collect());
        assert_eq!(o[2].name, "slack");
    }

    #[test]
    fn errors_name_the_entry_and_the_key() {
        for (text, words) in [
            ("[[outputs]]\ntype = \"carrier-pigeon\"", &["entry 1", "carrier-pigeon"][..]),
            ("[[outputs]]\ntype = \"jsonl\"\npath = \"x\"\nbogus = 1", &["bogus"][..]),
            ("[[outputs]]\ntype = \"webhook\"\nurl = \"https://h/\"", &["secret_file"][..]),
            ("[[outputs]]\ntype = \"webhook\"\nurl = \"ftp://h/\"\nsecret_env = \"S\"", &["url", "ftp"][..]),
            ("[[outputs]]\ntype = \"sns\"", &["topic_arn"][..]),
            ("[[outputs]]\ntype = \"jsonl\"\npath = \"x\"\nmin_severity = \"dire\"", &["min_severity", "dire"][..]),
            ("[[outputs]]\ntype = \"jsonl\"\npath = \"x\"\nevents = [\"born\"]", &["born"][..]),
            ("[[outputs]]\ntype = \"jsonl\"\npath = \"x\"\n[[outputs]]\ntype = \"jsonl\"\npath = \"y\"", &["entry 2", "name"][..]),
            ("[[outputs]]\ntype = \"jsonl\"\nname = \"a/b\"\npath = \"x\"", &["name"][..]),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains("/etc/vigil/vigil.toml"), "{e}");
            for w in words {
                assert!(e.contains(w), "{text}: {e}");
            }
        }
    }
}
