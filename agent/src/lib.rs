//! vigil-agent: the long-running process on each machine, freshclam and clamd in one (run by
//! the `vigil-agent` program).
//!
//! It holds one engine in a `SharedEngine` and keeps it current: updates through
//! `vigil-client-updater` `checks_per_day` times a day, each verified, smoke-tested database
//! hot-swapped without pausing scans ([`run`]); it answers scan requests from local clients on
//! a Unix socket, each with the client's own file rights ([`service`]; the protocol and the
//! client are `vigil-scan-core`'s); and it runs the `[[agent.scheduled]]` scans on their cron
//! schedules ([`schedule`], [`scheduled`]), appending findings as JSON lines. Input:
//! `vigil.toml` (the updater's keys and the `[agent]` section, [`config`]) and signals. Output:
//! scan replies, findings files, log lines, an exit code ([`AgentError::exit_code`]).
//! Neighbours: `vigil-client-updater` and `vigil-scan-core` below; `vigil-scan --daemon` and
//! other local clients on the socket. Findings of scheduled and on-demand scans go through
//! `vigil-respond` ([`responder`]): the ledger, the outbox and its deliverer (run here, rebuilt
//! on SIGHUP), quarantine for scheduled scans when enabled, the `[[actions]]` hooks. Opt-in,
//! it also speaks clamd's own protocol on a Unix socket and/or loopback TCP ([`clamd`]), so
//! clamdscan, pyclamd and mail filters use it unchanged.

pub mod clamd;
pub mod config;
pub mod error;
pub mod responder;
mod run;
pub mod schedule;
pub mod scheduled;
pub mod service;

pub use config::{AgentConfig, ScheduledScan, Settings};
pub use error::AgentError;
pub use run::{retire, run};
