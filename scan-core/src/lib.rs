//! vigil-scan-core: the embedded scan engine, a library with no command line and no runtime.
//!
//! Input: database bytes and the trusted public keys; [`Engine::load`] verifies them through
//! `vigil-format` and builds the matchers: yara-x for YARA rules, an index of one 4-byte window
//! of every body signature's literal run with confirmation around each hit, hash tables, and
//! allowlists that clear a file of every detection. Output: [`ScanReport`]s of [`Finding`]s.
//! It never builds an engine from an unverified or partly loaded database, and [`SharedEngine`]
//! swaps engines without pausing scans. [`walk`] lists what to scan; [`input`] opens hostile
//! files safely; [`service`] holds the local scan service's protocol messages and its client
//! (`vigil-scan --daemon`, std only); the server is the agent's.
//! Neighbours: `vigil-format` below; `vigil-client-updater` (loads and smoke-tests new
//! databases), `vigil-agent` (serves scans, hot-swaps) and the `vigil-scan` program above.

pub mod body;
mod container;
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
pub use error::{BodyError, EngineError, Limits, ScanError, RATIO_FLOOR};
pub use pool::{Finish, Pool, PoolError, Scanned, Targets, Worker};
pub use report::{Unscannable, Unscanned};
pub use shared::SharedEngine;
#[cfg(feature = "profiling")]
pub use yara::RuleCost;

/// Engine version reported in JSON findings.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");
