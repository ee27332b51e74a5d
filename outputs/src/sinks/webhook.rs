//! `webhook`: one signed POST per record, per Standard Webhooks 1.0.
//!
//! - Body: `{"type":"vigil.finding.new|updated|resolved","timestamp":RFC 3339,"data":{finding}}`
//!   (the spec's recommended envelope; `timestamp` is when the record was queued, so a retry
//!   sends the same bytes).
//! - Headers: `content-type: application/json`; `webhook-id: <finding id>-<seq>`, the delivery
//!   id, the same on every retry of this record, so a receiver deduplicates on it (the
//!   finding's own id, in `data.id`, says which finding the event is about);
//!   `webhook-timestamp`: Unix seconds at send time; `webhook-signature: v1,<base64
//!   HMAC-SHA256 of id.timestamp.body>` with the secret from `secret_file` or `secret_env`
//!   (`whsec_<base64>` or raw text).
//! - Answers: 2xx delivered; 408, 429, 5xx and network errors retried (Retry-After honoured);
//!   400, 413, 422 reject the record; 401, 403, 404 and the rest are the configuration's
//!   problem ([`super::http::classify`]).

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use serde::Serialize;
use vigil_findings::Finding;

use super::http::{self, Verdict};
use crate::config::WebhookConfig;
use crate::error::OutputError;
use crate::sink::{EntryResult, Record, SendError, Sink};

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: String,
    timestamp: String,
    data: &'a Finding,
}

/// The delivery id of a record: stable across retries, distinct per event.
pub fn delivery_id(record: &Record) -> String {
    format!("{}-{}", record.finding.id, record.seq)
}

/// The body POSTed for a record.
pub fn body(record: &Record) -> Vec<u8> {
    let timestamp = jiff::Timestamp::from_second(record.queued_at)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string();
    let env = Envelope {
        kind: format!("vigil.finding.{}", record.event.as_str()),
        timestamp,
        data: &record.finding,
    };
    serde_json::to_vec(&env).unwrap_or_default()
}

pub struct WebhookSink {
    name: String,
    url: String,
    key: Vec<u8>,
    client: reqwest::Client,
}

impl WebhookSink {
    pub fn new(name: &str, cfg: &WebhookConfig) -> Result<Self, OutputError> {
        let secret = http::credential(
            name,
            "webhook secret",
            cfg.secret_file.as_deref(),
            cfg.secret_env.as_deref(),
        )?;
        let key = vigil_findings::webhook::key(&secret).map_err(|e| OutputError::Setup {
            name: name.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self {
            name: name.to_owned(),
            url: cfg.url.clone(),
            key,
            client: http::client(name, cfg.timeout_secs)?,
        })
    }

    async fn post(&self, record: &Record) -> Result<EntryResult, SendError> {
        let id = delivery_id(record);
        let body = body(record);
        let ts = jiff::Timestamp::now().as_second();
        let sig = vigil_findings::webhook::sign(&self.key, &id, ts, &body);
        let resp = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body)
            .send()
            .await
            .map_err(|e| http::network(&e))?;
        if resp.status().is_success() {
            return Ok(EntryResult::Delivered);
        }
        let status = resp.status();
        let after = http::retry_after_of(&resp);
        let detail = http::snippet(resp).await;
        match http::classify(status, after, &detail) {
            Verdict::Reject(why) => Ok(EntryResult::Rejected(why)),
            Verdict::Fail(e) => Err(e),
        }
    }
}

#[async_trait]
impl Sink for WebhookSink {
    /// One POST per record: a receiver answers for exactly one finding, so a rejection or a
    /// retry never concerns its neighbours.
    fn max_batch(&self) -> usize {
        1
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<EntryResult>, SendError> {
        let mut out = Vec::with_capacity(batch.len());
        for r in batch {
            match self.post(r).await {
                Ok(res) => out.push(res),
                Err(e) if out.is_empty() => return Err(e),
                Err(e) => {
                    out.push(EntryResult::Retry(e.to_string()));
                    break;
                }
            }
        }
        tracing::trace!(output = %self.name, n = out.len(), "webhook batch sent");
        Ok(out)
    }
}
