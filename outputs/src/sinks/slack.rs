//! `slack`: a Slack incoming webhook, one message per record: `blocks` (a header, a section
//! whose fields give severity, host, instance, path, SHA-256, signature, action and database
//! version, and a context line with the finding id and times) and a `text` fallback for
//! notifications. A resolution says so in its header and text. Slack answers 429 with
//! Retry-After when rate-limited, which the back-off honours. The URL is a credential: from
//! `url_file` or `url_env`.

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};
use vigil_findings::{Action, Finding};

use super::http::{self, Verdict};
use crate::config::{Event, SlackConfig};
use crate::error::OutputError;
use crate::sink::{EntryResult, Record, SendError, Sink};

pub struct SlackSink {
    url: String,
    client: reqwest::Client,
}

/// Slack's limit on a header's text.
const HEADER_MAX: usize = 150;
/// Slack's limit on a field's text.
const FIELD_MAX: usize = 2000;

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Text for mrkdwn with Slack's three control characters escaped.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn action(a: Action) -> &'static str {
    match a {
        Action::None => "none",
        Action::Quarantined => "quarantined",
        Action::Removed => "removed",
    }
}

fn when(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| secs.to_string())
}

/// The message for a record.
pub fn message(record: &Record) -> Value {
    let f: &Finding = &record.finding;
    let (headline, text) = match record.event {
        Event::Resolved => (
            format!("Resolved: {} on {}", f.threat, f.resource.hostname),
            format!(
                "Resolved: {} no longer found at {} on {}",
                f.threat, f.file.path, f.resource.hostname
            ),
        ),
        Event::New | Event::Updated => (
            format!(
                "{} malware: {} on {}",
                f.severity.label(),
                f.threat,
                f.resource.hostname
            ),
            format!(
                "{} malware {} found at {} on {} (action: {})",
                f.severity.label(),
                f.threat,
                f.file.path,
                f.resource.hostname,
                action(f.action)
            ),
        ),
    };
    let field = |label: &str, value: &str| json!({"type": "mrkdwn", "text": cut(&format!("*{label}*\n{}", esc(value)), FIELD_MAX)});
    let fields = vec![
        field("Severity", f.severity.label()),
        field("Host", &f.resource.hostname),
        field("Instance", f.resource.instance_id.as_deref().unwrap_or("-")),
        field("Path", &f.file.path),
        field("SHA-256", &f.file.sha256),
        field("Signature", &f.threat),
        field("Action", action(f.action)),
        field("Database version", &f.db_version.to_string()),
    ];
    json!({
        "text": cut(&text, 3000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": cut(&headline, HEADER_MAX), "emoji": false}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": esc(&format!(
                "vigil finding {} · first seen {} · last seen {} · engine {}",
                f.id, when(f.first_seen), when(f.last_seen), f.engine_version
            ))}]},
        ],
    })
}

impl SlackSink {
    pub fn new(name: &str, cfg: &SlackConfig) -> Result<Self, OutputError> {
        let url = http::credential(
            name,
            "Slack webhook URL",
            cfg.url_file.as_deref(),
            cfg.url_env.as_deref(),
        )?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(OutputError::Setup {
                name: name.to_owned(),
                message: "the Slack webhook URL is not an http(s) URL".into(),
            });
        }
        Ok(Self {
            url,
            client: http::client(name, cfg.timeout_secs)?,
        })
    }
}

#[async_trait]
impl Sink for SlackSink {
    fn max_batch(&self) -> usize {
        1
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<EntryResult>, SendError> {
        let mut out = Vec::with_capacity(batch.len());
        for r in batch {
            let body = serde_json::to_vec(&message(r)).unwrap_or_default();
            let resp = match self
                .client
                .post(&self.url)
                .header(CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(resp) => resp,
                Err(e) if out.is_empty() => return Err(http::network(&e)),
                Err(e) => {
                    out.push(EntryResult::Retry(http::network(&e).to_string()));
                    break;
                }
            };
            if resp.status().is_success() {
                out.push(EntryResult::Delivered);
                continue;
            }
            let status = resp.status();
            let after = http::retry_after_of(&resp);
            // Slack says why in the body (`invalid_payload`, `no_service`...); the URL itself
            // is never logged.
            let detail = http::snippet(resp).await;
            match http::classify(status, after, &detail) {
                Verdict::Reject(why) => out.push(EntryResult::Rejected(why)),
                Verdict::Fail(e) if out.is_empty() => return Err(e),
                Verdict::Fail(e) => {
                    out.push(EntryResult::Retry(e.to_string()));
                    break;
                }
            }
        }
        Ok(out)
    }
}
