//! vigil-scan-core: the embedded scan engine, and the local scan service that serves it.
//!
//! Input: database bytes and the trusted public keys; [`Engine::load`] verifies them through
//! `vigil-format` and builds the matchers: yara-x for YARA rules, an index of one 4-byte window
//! of every body signature's literal run with confirmation around each hit, hash tables, and
//! allowlists that clear a file of every detection. Output: [`ScanReport`]s of [`Finding`]s.
//! It never builds an engine from an unverified or partly loaded database, and [`SharedEngine`]
//! swaps engines without pausing scans. [`walk`] lists what to scan; [`service`] answers scan
//! requests over a Unix socket (clamd's role) and is its client (`vigil-scan --daemon`).
//! Neighbours: `vigil-format` below; the updater's agent and the `vigil-scan` CLI above.

pub mod body;
pub mod engine;
pub mod error;
pub mod hashes;
pub mod input;
pub mod pool;
pub mod report;
pub mod service;
pub mod shared;
pub mod walk;
mod yara;

pub use engine::{Engine, Finding, ScanReport, Scanner, SigKind};
pub use error::{EngineError, Limits, ScanError};
pub use pool::{Finish, Pool, PoolError, Scanned, Targets};
pub use shared::SharedEngine;

/// Engine version reported in JSON findings.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");
