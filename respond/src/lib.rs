//! vigil-respond: what happens after a detection.
//!
//! Input: what a scan saw, file by file (the signatures found on a path, or that it is clean
//! now). Output: [`Finding`](vigil_findings::Finding)s with the host's identity ([`resource`],
//! from the config or IMDSv2), tracked across scans in a ledger ([`ledger`]: new, updated,
//! resolved), each appended to the durable outbox of `vigil-outputs` for delivery; detected
//! files moved into quarantine when the scan asks for it and the policy allows
//! (`vigil-quarantine`); and the `[[actions]]` hooks run off the scan threads ([`actions`]).
//! [`respond`] ties them together per scan. Configured by `[findings]`, `[[outputs]]`,
//! `[[actions]]` and `[quarantine]` of `vigil.toml` ([`config`]). Neighbours: the agent
//! (scheduled and on-demand scans) and `vigil-scan --config`.

pub mod actions;
pub mod config;
pub mod error;
pub mod ledger;
pub mod resource;
pub mod respond;
pub mod sinks;

pub use config::ResponseConfig;
pub use error::RespondError;
pub use respond::{FileFacts, Hit, Responder, ScanSession, ScanSummary};
