//! vigil-client-updater: the freshclam of vigil, and the agent that pairs it with the engine.
//!
//! Input: a repository URL or mirror and a trusted TUF root. Output: a verified database on
//! disk, installed atomically, with the previous one kept as last-known-good, and a hot-swapped
//! engine in the agent. It never activates a database it has not verified, loaded and
//! smoke-tested. Neighbours: `vigil-update-server` (or any static mirror) and `vigil-scan-core`.

pub mod agent;
pub mod config;
pub mod error;
pub mod fetch;
pub mod http;
pub mod install;
pub mod mirror;
pub mod plan;
pub mod schedule;
pub mod state;
pub mod update;

pub use config::Config;
pub use error::{exit, UpdateError};
pub use update::{update, Options, Outcome, Report};
