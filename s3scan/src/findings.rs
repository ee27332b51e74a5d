//! Findings of infected objects, through `vigil-respond`'s outbox to the `[[outputs]]` of
//! vigil.toml (Security Hub, EventBridge, SNS, webhooks). The finding's file is the object's
//! URL (`s3://bucket/key`, with `!member` inside a container); the resource is the worker's
//! host. No ledger: the workers keep no state, so every detection is reported as new, and
//! receivers deduplicate by the finding's id (host, URL, SHA-256, signature).

use std::sync::Arc;

use vigil_findings::{Action, FileFacts, Finding, SeverityMap};
use vigil_outputs::deliver::Deliverer;
use vigil_outputs::Event;
use vigil_respond::{Responder, ResponseConfig};
use vigil_scan_core::ENGINE_VERSION;

use crate::error::S3ScanError;
use crate::object::Scanned;

pub struct FindingsSink {
    responder: Responder,
    severity: SeverityMap,
    deliverer: Arc<Deliverer>,
}

impl FindingsSink {
    /// The sink of `cfg`'s outputs; None when it has none. Call inside the runtime.
    pub async fn open(cfg: &ResponseConfig) -> Result<Option<FindingsSink>, S3ScanError> {
        if cfg.outputs.is_empty() {
            return Ok(None);
        }
        let responder = Responder::open(cfg).map_err(|e| S3ScanError::Setup(e.to_string()))?;
        let deliverer = vigil_respond::sinks::deliverer(&responder, &cfg.outputs)
            .await
            .map_err(|e| S3ScanError::Setup(e.to_string()))?;
        Ok(deliverer.map(|deliverer| FindingsSink {
            responder,
            severity: cfg.severity.clone(),
            deliverer,
        }))
    }

    /// The deliverer: run it ([`Deliverer::run`]) for as long as the worker runs.
    pub fn deliverer(&self) -> Arc<Deliverer> {
        self.deliverer.clone()
    }

    /// Appends the findings of `scanned` (at `url`) to the outbox, fsynced, and wakes the
    /// deliverer. Returns how many.
    pub fn record(
        &self,
        url: &str,
        scanned: &Scanned,
        db_version: u64,
        quarantined: bool,
    ) -> Result<usize, S3ScanError> {
        let Some(report) = &scanned.report else {
            return Ok(0);
        };
        let now = jiff::Timestamp::now().as_second();
        let entries: Vec<(Event, Finding)> = report
            .findings
            .iter()
            .map(|f| {
                let file = FileFacts {
                    path: f.located(url),
                    sha256: report.sha256.clone().unwrap_or_default(),
                    size: scanned.size,
                    uid: 0,
                    owner: None,
                    mtime: scanned.modified,
                };
                let mut finding = Finding::new(
                    self.responder.resource().clone(),
                    file,
                    &f.signature,
                    f.kind.as_str(),
                    self.severity.resolve(&f.signature, f.severity.as_deref()),
                    f.description.clone(),
                    db_version,
                    ENGINE_VERSION,
                    now,
                );
                if quarantined {
                    finding.action = Action::Quarantined;
                }
                (Event::New, finding)
            })
            .collect();
        if entries.is_empty() {
            return Ok(0);
        }
        let Some(outbox) = self.responder.outbox() else {
            return Ok(0);
        };
        outbox
            .append(&entries)
            .map_err(|e| S3ScanError::Setup(format!("appending findings to the outbox: {e}")))?;
        self.deliverer.notify();
        Ok(entries.len())
    }
}
