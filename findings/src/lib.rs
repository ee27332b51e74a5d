//! vigil-findings: one finding model, used by every output (issue 15).
//!
//! Input: what a scan found (a signature on a file of a host). Output: a [`Finding`] with a
//! stable id (host, path, content SHA-256, signature: a re-detection updates `last_seen`, a
//! clean rescan resolves it), a severity label ([`Severity`], from the YARA `severity` meta or,
//! for ClamAV-format signatures, a [`SeverityMap`] by name prefix), and its renderings: AWS
//! Security Hub's ASFF ([`asff`]), the EventBridge event detail ([`eventbridge`]), and the
//! Standard Webhooks signature for webhook deliveries ([`webhook`]). No I/O: the outputs that
//! send these (and the outbox behind them) build on this crate.

pub mod asff;
pub mod eventbridge;
pub mod model;
pub mod severity;
pub mod webhook;

pub use model::{finding_id, Action, FileFacts, Finding, Resource, State};
pub use severity::{Severity, SeverityMap};
