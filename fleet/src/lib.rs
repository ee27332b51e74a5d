//! vigil-fleet: what the fleet tells the server, and what the server tells the rollout.
//!
//! Input: check-in bodies from clients ([`checkin::CheckIn::parse`], size-capped and
//! schema-checked: the endpoint is open to every client, so every byte is untrusted). Output:
//! the health of a rolling version ([`health::VersionHealth`], served by vigil-server to
//! `vigil-build rollout advance --fleet`) and the verdict of the automatic-halt rule
//! ([`health::judge`]). No I/O and no storage: `vigil-update` and the agent build check-ins,
//! `vigil-update-server` stores them (SQLite or PostgreSQL) and computes health, and CI, which
//! holds the keys, decides and signs. Neighbours: client-updater (sends), update-server
//! (receives), vigil-build (judges).

pub mod checkin;
pub mod health;

pub use checkin::{CheckIn, CheckInError, UpdateResult};
pub use health::{judge, HaltPolicy, Verdict, VersionHealth};
