//! vigil-outputs: where findings go.
//!
//! Input: findings from `vigil-findings`, each appended with what happened to it ([`Event`]:
//! new, updated, resolved) to a durable on-disk outbox ([`outbox`]) and fsynced before any
//! delivery is tried. Output: deliveries to each `[[outputs]]` entry of `vigil.toml`
//! ([`config`]): JSON lines, signed webhooks, Slack, Security Hub, EventBridge, SNS
//! ([`sinks`]), each behind the [`Sink`] seam, each output with its own cursor, at least once,
//! with back-off ([`deliver`]). Receivers deduplicate by the finding's stable id. Neighbours:
//! `vigil-respond` appends; the agent and `vigil-scan --config` deliver.

pub mod backoff;
pub mod config;
pub mod deliver;
pub mod error;
pub mod outbox;
pub mod sink;
pub mod sinks;

pub use config::{parse_outputs, Event, OutputConfig, OutputKind};
pub use deliver::Deliverer;
pub use error::OutputError;
pub use outbox::{Appended, Outbox, OutboxLimits, OutputStatus, Pending};
pub use sink::{EntryResult, Record, SendError, Sink, SinkContext};
