//! vigil-client-updater: the freshclam of vigil, as a library: one update ([`update()`]), the
//! installed database ([`install`]), and offline mirrors ([`mirror`]).
//!
//! Input: `vigil.toml` ([`Config`]: repository URLs, a trusted TUF root, signing keys) and
//! the mirrors over HTTP. Output: a verified database on disk, installed atomically, with the
//! previous one kept as last-known-good, and the engine already loaded from it (an
//! [`Outcome`]), for a caller that hot-swaps. It never activates a database it has not
//! verified, loaded and smoke-tested. After each check it reports to the fleet ([`check`],
//! [`checkin`]). Neighbours: `vigil-update-server` (or any static
//! mirror) and `vigil-repository` below, `vigil-scan-core` for loading; the `vigil-update`
//! program and `vigil-agent` (which runs updates on a schedule) above.

pub mod checkin;
pub mod config;
pub mod error;
pub mod fetch;
pub mod http;
pub mod identity;
pub mod install;
pub mod mirror;
pub mod plan;
pub mod state;
pub mod update;

pub use checkin::{check, CheckInReport};
pub use config::Config;
pub use error::{exit, RejectKind, UpdateError};
pub use update::{update, Options, Outcome, Report};
