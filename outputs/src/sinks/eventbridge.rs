//! The `eventbridge` output: each finding event put on an event bus with `PutEvents`
//! (`source` "vigil", `detail-type` "Vigil Malware Scan Result", `detail` as documented in
//! `vigil_findings::eventbridge`), so rules route it to SQS, Lambda, SNS or another account.
//!
//! At most 10 entries and 256 KB go in one call; an entry that alone is over 256 KB is
//! rejected without being sent. `Resources` names the EC2 instance by ARN when its id, region
//! and account are known, as GuardDuty's events do. Each entry's `ErrorCode` is classified on
//! its own.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use vigil_findings::eventbridge::{
    detail, entry_size, DETAIL_TYPE, MAX_ENTRIES_PER_CALL, MAX_ENTRY_BYTES, SOURCE,
};
use vigil_findings::Finding;

use crate::config::EventBridgeConfig;
use crate::error::OutputError;
use crate::sink::{EntryResult, Record, SendError, Sink, SinkContext};
use crate::sinks::aws;

pub struct EventBridgeSink {
    name: String,
    client: Client,
    bus: String,
    region: String,
    account_id: Option<String>,
}

impl EventBridgeSink {
    /// A sink with credentials from the standard chain.
    pub async fn new(
        name: &str,
        cfg: &EventBridgeConfig,
        ctx: &SinkContext,
    ) -> Result<Self, OutputError> {
        let shared = aws::sdk_config(cfg.region.as_deref(), ctx).await;
        Self::from_sdk_config(name, cfg, ctx, &shared)
    }

    /// A sink over an SDK configuration built by the caller (tests give static credentials).
    pub fn from_sdk_config(
        name: &str,
        cfg: &EventBridgeConfig,
        ctx: &SinkContext,
        shared: &SdkConfig,
    ) -> Result<Self, OutputError> {
        let region = aws::region(name, cfg.region.as_deref(), ctx, shared)?;
        let mut conf = aws_sdk_eventbridge::config::Builder::from(shared)
            .region(aws_config::Region::new(region.clone()));
        if let Some(ep) = &cfg.endpoint_url {
            conf = conf.endpoint_url(ep);
        }
        Ok(Self {
            name: name.to_owned(),
            client: Client::from_conf(conf.build()),
            bus: cfg.event_bus.clone(),
            region,
            account_id: ctx.account_id.clone(),
        })
    }

    /// The instance's ARN, when the finding is on EC2 and its region and account are known.
    fn resources(&self, f: &Finding) -> Vec<String> {
        let r = &f.resource;
        match (
            &r.instance_id,
            r.account_id.as_ref().or(self.account_id.as_ref()),
        ) {
            (Some(id), Some(account)) => vec![format!(
                "arn:aws:ec2:{}:{account}:instance/{id}",
                r.region.as_deref().unwrap_or(&self.region)
            )],
            _ => Vec::new(),
        }
    }
}

#[async_trait]
impl Sink for EventBridgeSink {
    fn max_batch(&self) -> usize {
        MAX_ENTRIES_PER_CALL
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<EntryResult>, SendError> {
        let mut results: Vec<Option<EntryResult>> = vec![None; batch.len()];
        let mut calls: Vec<Vec<(usize, PutEventsRequestEntry)>> = Vec::new();
        let mut call: Vec<(usize, PutEventsRequestEntry)> = Vec::new();
        let mut bytes = 0;
        for (i, r) in batch.iter().enumerate() {
            let body = detail(&r.finding).to_string();
            let resources = self.resources(&r.finding);
            let size = entry_size(&body, &resources);
            if size > MAX_ENTRY_BYTES {
                results[i] = Some(EntryResult::Rejected(format!(
                    "the event is {size} bytes, over EventBridge's {MAX_ENTRY_BYTES}-byte limit"
                )));
                continue;
            }
            // The 256 KB limit is on the whole request, too.
            if call.len() == MAX_ENTRIES_PER_CALL || bytes + size > MAX_ENTRY_BYTES {
                calls.push(std::mem::take(&mut call));
                bytes = 0;
            }
            bytes += size;
            let entry = PutEventsRequestEntry::builder()
                .source(SOURCE)
                .detail_type(DETAIL_TYPE)
                .detail(body)
                .set_resources(Some(resources))
                .event_bus_name(&self.bus)
                .time(DateTime::from_secs(r.finding.last_seen))
                .build();
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
                .put_events()
                .set_entries(Some(call.into_iter().map(|(_, e)| e).collect()))
                .send()
                .await;
            match out {
                Ok(out) => {
                    sent_any = true;
                    let entries = out.entries();
                    for (n, i) in indices.into_iter().enumerate() {
                        results[i] = Some(match entries.get(n) {
                            Some(e) => match e.error_code() {
                                None => EntryResult::Delivered,
                                Some(code) => {
                                    let why =
                                        format!("{code}: {}", e.error_message().unwrap_or(""));
                                    if aws::transient_code(code) {
                                        EntryResult::Retry(why)
                                    } else {
                                        EntryResult::Rejected(why)
                                    }
                                }
                            },
                            // Fewer results than entries: not known to have arrived.
                            None => EntryResult::Retry("PutEvents returned no result".into()),
                        });
                    }
                }
                Err(e) if !sent_any => return Err(aws::classify("PutEvents", &e)),
                Err(e) => {
                    let why = aws::classify("PutEvents", &e).to_string();
                    for i in indices {
                        results[i] = Some(EntryResult::Retry(why.clone()));
                    }
                }
            }
        }
        tracing::debug!(output = %self.name, events = batch.len(), "PutEvents");
        Ok(aws::settle(results))
    }
}
