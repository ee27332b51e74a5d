//! vigil-repository: the repository every distribution path shares.
//!
//! A repository is TUF metadata (`metadata/`: `N.root.json`, `N.targets.json`,
//! `N.snapshot.json`, `timestamp.json`, with consistent snapshots) plus content-addressed
//! targets (`targets/<sha256>.<name>`: full databases and deltas). The same tree sits in a
//! directory, an S3 prefix, an offline mirror or behind any static web server.
//! Input: signed databases from `vigil-build`, TUF role keys. Output: the tree, written in an
//! order that never shows a reader metadata naming a missing blob. Neighbours: `vigil-server`
//! serves it read-only through [`storage`]; `vigil-update` loads it with tough.

pub mod error;
pub mod keys;
pub mod layout;
pub mod live;
pub mod publish;
pub mod rollout;
pub mod storage;
pub mod tuf;

pub use error::RepoError;
