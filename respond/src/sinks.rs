//! The deliverer of a responder's outbox over the configured outputs (their sinks from
//! `vigil_outputs::sinks::build`, with the host's region and account as the AWS outputs'
//! defaults), and the outbox alone for the agent's `outbox` commands.

use std::sync::Arc;

use vigil_outputs::deliver::Deliverer;
use vigil_outputs::outbox::Outbox;
use vigil_outputs::{OutputConfig, SinkContext};

use crate::error::RespondError;
use crate::respond::Responder;

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
    let sinks = vigil_outputs::sinks::build(outputs, &ctx).await?;
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
