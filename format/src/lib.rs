//! vigil-format: the database container, signature records, signing and verification.
//!
//! Input: rule sources already linted by the compiler (to build) or untrusted database and
//! delta bytes (to read). Output: signed `.vdb` files, [`Verified`] databases, deltas.
//! Main types: [`container::DatabaseBuilder`], [`container::Verified`] (and the owned
//! [`container::VerifiedDb`]), [`sigs::BodySig`],
//! [`sigs::HashSig`], [`delta::Delta`]. It never hands out a section of a database whose
//! signature and hashes it has not checked, and it never panics on input bytes.
//! Neighbours: `vigil-compiler` writes with it, `vigil-scan-core` and the updater read with it.
//! There is no yara-x in here, so the server and small tools stay small.

pub mod codec;
pub mod container;
pub mod delta;
pub mod error;
pub mod keys;
pub mod sections;
pub mod sigs;

pub use container::{DatabaseBuilder, Header, SectionEntry, SectionKind, Verified, VerifiedDb};
pub use error::FormatError;
pub use keys::{KeyError, PublicKey, SecretKey};

/// The engine feature level this build of vigil understands. A database whose header asks
/// for more is refused by readers instead of being half-understood.
pub const ENGINE_VERSION: u32 = 1;
