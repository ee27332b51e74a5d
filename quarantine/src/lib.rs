//! vigil-quarantine: the quarantine store and its safety policy (issue 15).
//!
//! - [`Store`]: detected files moved into a root-only store (0700), their content transformed
//!   so it is neither executable nor recognisable, restorable byte for byte with path, mode,
//!   owner and times. Every file it touches is treated as hostile (symlinks, FIFOs, swaps).
//! - [`Policy`]: which files may be quarantined at all (configured paths, a protected list,
//!   an allow list) and how many per scan, so a bad rule cannot take a server down.

mod dirfd;
pub mod entry;
mod error;
pub mod policy;
pub mod store;

pub use entry::Entry;
pub use error::QuarantineError;
pub use policy::{Decision, Policy, Refusal, Session, DEFAULT_PROTECTED};
pub use store::{Listing, Store, DEFAULT_DIR};
