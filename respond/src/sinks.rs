//! The sinks of the configured outputs and the deliverer over them. A stand-in for
//! `vigil_outputs::sinks::build` (written when the outputs branches merge): a match over each
//! output's type calling that type's constructor.

use std::sync::Arc;

use vigil_outputs::deliver::Deliverer;
use vigil_outputs::outbox::Outbox;
use vigil_outputs::sinks::{jsonl::JsonlSink, slack::SlackSink, webhook::WebhookSink};
use vigil_outputs::{OutputConfig, OutputError, OutputKind, Sink, SinkContext};

use crate::error::RespondError;
use crate::respond::Responder;

/// A sink for each output.
pub async fn build_sinks(
    outputs: &[OutputConfig],
    _ctx: &SinkContext,
) -> Result<Vec<(OutputConfig, Arc<dyn Sink>)>, OutputError> {
    let mut out: Vec<(OutputConfig, Arc<dyn Sink>)> = Vec::new();
    for o in outputs {
        let sink: Arc<dyn Sink> = match &o.kind {
            OutputKind::Jsonl(c) => Arc::new(JsonlSink::new(c)?),
            OutputKind::Webhook(c) => Arc::new(WebhookSink::new(&o.name, c)?),
            OutputKind::Slack(c) => Arc::new(SlackSink::new(&o.name, c)?),
            OutputKind::SecurityHub(_) | OutputKind::EventBridge(_) | OutputKind::Sns(_) => {
                return Err(OutputError::Setup {
                    name: o.name.clone(),
                    message: "this build has no AWS outputs yet".into(),
                })
            }
        };
        out.push((o.clone(), sink));
    }
    Ok(out)
}

/// The deliverer of `responder`'s outbox over `outputs` (None without an outbox), wired so
/// every append wakes it.
pub async fn deliverer(
    responder: &Responder,
    outputs: &[OutputConfig],
) -> Result<Option<Arc<Deliverer>>, RespondError> {
    let Some(outbox) = responder.outbox() else {
        return Ok(None);
    };
    let r = responder.resource();
    let ctx = SinkContext {
        region: r.region.clone(),
        account_id: r.account_id.clone(),
    };
    let sinks = build_sinks(outputs, &ctx).await?;
    let d = Arc::new(Deliverer::new(outbox.clone(), sinks));
    let weak = Arc::downgrade(&d);
    responder.on_append(Arc::new(move || {
        if let Some(d) = weak.upgrade() {
            d.notify();
        }
    }));
    Ok(Some(d))
}

/// The outbox of `outputs` in `dir`, without a responder (the agent's `outbox` commands).
pub fn open_outbox(cfg: &crate::config::ResponseConfig) -> Result<Arc<Outbox>, RespondError> {
    let mut limits = vigil_outputs::outbox::OutboxLimits::default();
    if let Some(n) = cfg.findings.outbox_max_records {
        limits.max_records = n;
    }
    if let Some(n) = cfg.findings.outbox_max_bytes {
        limits.max_bytes = n;
    }
    Ok(Arc::new(Outbox::open(&cfg.findings.outbox_dir, limits)?))
}
