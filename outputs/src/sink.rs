//! The seam between the outbox and the places findings go: a [`Sink`] sends a batch of outbox
//! [`Record`]s and says, per record, whether it arrived. The delivery loop owns retries,
//! back-off and cursors; a sink only classifies what happened.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use vigil_findings::Finding;

use crate::config::Event;

/// One entry of the outbox: a finding as of one scan, and what happened to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the outbox, increasing by one per record, never reused.
    pub seq: u64,
    pub event: Event,
    /// When it was appended, Unix seconds.
    pub queued_at: i64,
    pub finding: Finding,
}

/// What became of one record of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryResult {
    Delivered,
    /// The receiver refused this record for good (Security Hub's `FailedFindings` with a
    /// validation error, an entry over a size limit): logged and counted, never retried, so it
    /// cannot block the records after it.
    Rejected(String),
    /// This record failed in a way that may pass (throttled, an internal error): it and every
    /// record after it are sent again after back-off.
    Retry(String),
}

/// A batch that failed as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Worth retrying (network, 5xx, 429, throttling); `after` is the receiver's Retry-After
    /// when it gave one, which the back-off honours when longer than its own.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Retrying the same request cannot help (401/403, a 4xx that is not 408/429, a topic that
    /// does not exist). The records stay queued and the output is retried at the longest
    /// back-off, so fixing the config or the receiver loses nothing.
    Fatal(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retry { reason, .. } | Self::Fatal(reason) => f.write_str(reason),
        }
    }
}

/// The host facts a sink may need to build its client and its payload: the AWS outputs
/// default their region and account to the host's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkContext {
    pub region: Option<String>,
    pub account_id: Option<String>,
}

#[async_trait]
pub trait Sink: Send + Sync {
    /// The most records one [`Sink::send`] call takes (Security Hub 100, EventBridge 10).
    fn max_batch(&self) -> usize;

    /// Sends `batch` (at most `max_batch` records, in outbox order). `Ok` carries one result
    /// per record, in the same order.
    async fn send(&self, batch: &[Record]) -> Result<Vec<EntryResult>, SendError>;
}
