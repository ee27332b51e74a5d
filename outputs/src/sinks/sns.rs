//! The `sns` output: each finding event published to an SNS topic, for people (e-mail, SMS,
//! chat) and for queues subscribed to it.
//!
//! One message per record, sent with `PublishBatch` (10 per call, 256 KB per call): a
//! `Subject` people read in a mail client (at most 100 printable ASCII characters, e.g.
//! `vigil: HIGH Php_Webshell_C99_1 on web-1`), the `Message` a program reads (the event
//! envelope the webhook output sends: `{"type": "vigil.finding.new", "timestamp": …, "data":
//! {finding}}`), and the message attributes `severity` and `event` so a subscription's filter
//! policy can pick, say, only HIGH and CRITICAL news.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use aws_sdk_sns::Client;
use vigil_findings::State;

use crate::config::{Event, SnsConfig};
use crate::error::OutputError;
use crate::sink::{EntryResult, Record, SendError, Sink, SinkContext};
use crate::sinks::aws;

/// SNS's limits: messages per `PublishBatch`, and bytes per call (all messages and
/// attributes together) and so per message.
pub const MAX_PER_CALL: usize = 10;
pub const MAX_CALL_BYTES: usize = 256 * 1024;
pub const MAX_SUBJECT: usize = 100;

pub struct SnsSink {
    name: String,
    client: Client,
    topic_arn: String,
}

impl SnsSink {
    /// A sink with credentials from the standard chain.
    pub async fn new(name: &str, cfg: &SnsConfig, ctx: &SinkContext) -> Result<Self, OutputError> {
        let shared = aws::sdk_config(cfg.region.as_deref(), ctx).await;
        Self::from_sdk_config(name, cfg, ctx, &shared)
    }

    /// A sink over an SDK configuration built by the caller (tests give static credentials).
    /// The region defaults to the topic ARN's, where the topic lives.
    pub fn from_sdk_config(
        name: &str,
        cfg: &SnsConfig,
        ctx: &SinkContext,
        shared: &SdkConfig,
    ) -> Result<Self, OutputError> {
        let arn_region = cfg
            .topic_arn
            .split(':')
            .nth(3)
            .filter(|r| !r.is_empty() && cfg.topic_arn.starts_with("arn:"));
        if arn_region.is_none() {
            return Err(OutputError::Setup {
                name: name.to_owned(),
                message: format!(
                    "topic_arn {:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
                    cfg.topic_arn
                ),
            });
        }
        let region = aws::region(name, cfg.region.as_deref().or(arn_region), ctx, shared)?;
        let mut conf =
            aws_sdk_sns::config::Builder::from(shared).region(aws_config::Region::new(region));
        if let Some(ep) = &cfg.endpoint_url {
            conf = conf.endpoint_url(ep);
        }
        Ok(Self {
            name: name.to_owned(),
            client: Client::from_conf(conf.build()),
            topic_arn: cfg.topic_arn.clone(),
        })
    }
}

/// The subject line: what, how bad, where; printable ASCII only (SNS refuses others and
/// newlines), cut to 100 characters.
pub fn subject(r: &Record) -> String {
    let f = &r.finding;
    let s = if r.event == Event::Resolved || f.state == State::Resolved {
        format!("vigil: resolved {} on {}", f.threat, f.resource.hostname)
    } else {
        format!(
            "vigil: {} {} on {}",
            f.severity.label(),
            f.threat,
            f.resource.hostname
        )
    };
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(MAX_SUBJECT)
        .collect()
}

/// The message body: the webhook output's body, byte for byte, so one consumer reads both.
pub fn message(r: &Record) -> String {
    String::from_utf8_lossy(&super::webhook::body(r)).into_owned()
}

fn attribute(value: &str) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .ok()
}

#[async_trait]
impl Sink for SnsSink {
    fn max_batch(&self) -> usize {
        MAX_PER_CALL
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<EntryResult>, SendError> {
        let mut results: Vec<Option<EntryResult>> = vec![None; batch.len()];
        let mut calls: Vec<Vec<(usize, PublishBatchRequestEntry)>> = Vec::new();
        let mut call: Vec<(usize, PublishBatchRequestEntry)> = Vec::new();
        let mut bytes = 0;
        for (i, r) in batch.iter().enumerate() {
            let (subject, body) = (subject(r), message(r));
            let severity = r.finding.severity.label();
            let event = r.event.as_str();
            // SNS counts the message and its attributes' names, types and values.
            let size = body.len()
                + "severity".len()
                + severity.len()
                + "event".len()
                + event.len()
                + 2 * "String".len();
            if size > MAX_CALL_BYTES {
                results[i] = Some(EntryResult::Rejected(format!(
                    "the message is {size} bytes, over SNS's {MAX_CALL_BYTES}-byte limit"
                )));
                continue;
            }
            let mut attrs = HashMap::new();
            for (k, v) in [("severity", severity), ("event", event)] {
                if let Some(a) = attribute(v) {
                    attrs.insert(k.to_owned(), a);
                }
            }
            // Ids only have to be distinct within one call: the position will do.
            let entry = match PublishBatchRequestEntry::builder()
                .id(format!("r{i}"))
                .subject(subject)
                .message(body)
                .set_message_attributes(Some(attrs))
                .build()
            {
                Ok(e) => e,
                Err(e) => {
                    results[i] = Some(EntryResult::Rejected(e.to_string()));
                    continue;
                }
            };
            if call.len() == MAX_PER_CALL || bytes + size > MAX_CALL_BYTES {
                calls.push(std::mem::take(&mut call));
                bytes = 0;
            }
            bytes += size;
            call.push((i, entry));
        }
        if !call.is_empty() {
            calls.push(call);
        }
        let mut sent_any = false;
        for call in calls {
            let indices: Vec<usize> = call.iter().map(|(i, _)| *i).collect();
            let out = self
                .client
                .publish_batch()
                .topic_arn(&self.topic_arn)
                .set_publish_batch_request_entries(Some(call.into_iter().map(|(_, e)| e).collect()))
                .send()
                .await;
            match out {
                Ok(out) => {
                    sent_any = true;
                    for i in indices {
                        let id = format!("r{i}");
                        let failed = out.failed().iter().find(|f| f.id() == id);
                        let ok = out.successful().iter().any(|s| s.id() == Some(id.as_str()));
                        results[i] = Some(match failed {
                            Some(f) => {
                                let why = format!("{}: {}", f.code(), f.message().unwrap_or(""));
                                // SNS says whose fault it was: the sender's is for good.
                                if f.sender_fault() && !aws::transient_code(f.code()) {
                                    EntryResult::Rejected(why)
                                } else {
                                    EntryResult::Retry(why)
                                }
                            }
                            None if ok => EntryResult::Delivered,
                            None => EntryResult::Retry("PublishBatch did not mention it".into()),
                        });
                    }
                }
                Err(e) if !sent_any => return Err(aws::classify("PublishBatch", &e)),
                Err(e) => {
                    let why = aws::classify("PublishBatch", &e).to_string();
                    for i in indices {
                        results[i] = Some(EntryResult::Retry(why.clone()));
                    }
                }
            }
        }
        tracing::debug!(output = %self.name, messages = batch.len(), "PublishBatch");
        Ok(aws::settle(results))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_findings::{FileFacts, Finding, Resource, Severity};

    fn record(event: Event, threat: &str, host: &str) -> Record {
        let f = Finding::new(
            Resource {
                hostname: host.into(),
                ..Resource::default()
            },
            FileFacts::default(),
            threat,
            "yara",
            Severity::High,
            None,
            1,
            "0.1.0",
            1_764_600_000,
        );
        Record {
            seq: 1,
            event,
            queued_at: 1_764_600_000,
            finding: f,
        }
    }

    #[test]
    fn subjects_are_short_printable_ascii() {
        assert_eq!(
            subject(&record(Event::New, "Php_Webshell_C99_1", "web-1")),
            "vigil: HIGH Php_Webshell_C99_1 on web-1"
        );
        assert_eq!(
            subject(&record(Event::Resolved, "X", "h")),
            "vigil: resolved X on h"
        );
        let s = subject(&record(Event::New, &"Ä\n".repeat(200), "h"));
        assert_eq!(s.len(), MAX_SUBJECT);
        assert!(s.bytes().all(|b| b.is_ascii_graphic() || b == b' '), "{s}");
    }

    #[test]
    fn the_message_is_the_event_envelope() {
        let m: serde_json::Value =
            serde_json::from_str(&message(&record(Event::Updated, "X", "h"))).unwrap_or_default();
        assert_eq!(m["type"], "vigil.finding.updated");
        assert_eq!(m["timestamp"], "2025-12-01T14:40:00Z");
        assert_eq!(m["data"]["threat"], "X");
    }
}
