//! The places findings go, one module per output type, each a [`crate::Sink`].

mod aws;
pub mod eventbridge;
pub mod http;
pub mod jsonl;
pub mod securityhub;
pub mod slack;
pub mod sns;
pub mod webhook;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::config::{OutputConfig, OutputKind};
use crate::error::OutputError;
use crate::sink::{Sink, SinkContext};

/// A sink for each configured output, in config order, ready for a
/// [`crate::Deliverer`]. Fails on the first output that cannot be set up (an unreadable
/// secret, an AWS output with no region or account), naming it.
pub async fn build(
    outputs: &[OutputConfig],
    ctx: &SinkContext,
) -> Result<Vec<(OutputConfig, Arc<dyn Sink>)>, OutputError> {
    let mut built: Vec<(OutputConfig, Arc<dyn Sink>)> = Vec::with_capacity(outputs.len());
    for o in outputs {
        let sink: Arc<dyn Sink> = match &o.kind {
            OutputKind::Jsonl(c) => Arc::new(jsonl::JsonlSink::new(c)?),
            OutputKind::Webhook(c) => Arc::new(webhook::WebhookSink::new(&o.name, c)?),
            OutputKind::Slack(c) => Arc::new(slack::SlackSink::new(&o.name, c)?),
            OutputKind::SecurityHub(c) => {
                Arc::new(securityhub::SecurityHubSink::new(&o.name, c, ctx).await?)
            }
            OutputKind::EventBridge(c) => {
                Arc::new(eventbridge::EventBridgeSink::new(&o.name, c, ctx).await?)
            }
            OutputKind::Sns(c) => Arc::new(sns::SnsSink::new(&o.name, c, ctx).await?),
        };
        built.push((o.clone(), sink));
    }
    Ok(built)
}
