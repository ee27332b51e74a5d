//! vigil-update-server: serves a vigil repository (TUF metadata, databases, deltas) read-only
//! over HTTP, from a directory or an S3 bucket prefix, through [`vigil_repository::storage`].
//!
//! Input: a repository store and a [`Config`]. Output: HTTP responses with ETags, ranges,
//! cache headers, rate limits, optional bearer-token auth, metrics and access logs.
//! Main types: [`AppState`] (storage, caches, limits), [`app`] (the router), [`serve`] (a
//! listener until shutdown, then a bounded drain; with a header-read timeout, a request timeout
//! that spares downloads still moving, and a cap on connections). It never serves a byte from
//! outside the repository and never writes to it. It knows nothing of command lines or logging
//! setup: the `vigil-server` program (programs/vigil-server) reads flags and config, installs
//! the logger and handles signals. Neighbours: `vigil-build publish` writes the repository;
//! `vigil-update` reads it.

pub mod auth;
pub mod cache;
pub mod conditional;
pub mod config;
mod connections;
pub mod fleet;
mod flight;
mod handler;
mod health;
pub mod metrics;
pub mod range;
pub mod ratelimit;
pub mod route;
mod stall;
mod state;

use std::path::PathBuf;

use axum::Router;
use thiserror::Error;
use vigil_repository::storage::StorageError;

pub use config::{Config, LogFormat};
pub use connections::serve;
pub use fleet::open_store;
pub use state::{open_storage, AppState};

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    ConfigParse { path: PathBuf, message: String },
    #[error("no repository given: pass --repo DIR|s3://bucket/prefix or set `repo` in the config")]
    NoRepository,
    #[error("cannot read tokens file {path}: {source}")]
    TokensRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tokens file {path}, line {line}: {why}")]
    TokensLine {
        path: PathBuf,
        line: usize,
        why: &'static str,
    },
    #[error("tokens file {path} holds no token hashes, so nobody could download anything")]
    TokensEmpty { path: PathBuf },
    #[error("repository directory {path} does not exist or is not a directory")]
    RepositoryMissing { path: PathBuf },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot open the fleet store: {0}")]
    FleetStore(String),
}

/// How [`serve`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drain {
    /// Every in-flight request finished after the shutdown signal.
    Complete,
    /// The drain timeout passed with requests still running; their connections are closed.
    TimedOut,
}

/// The whole HTTP surface. One fallback handler does its own routing on the raw path, so that
/// path checks, 405s, rate limits, metrics and access logs apply to every request alike.
pub fn app(state: AppState) -> Router {
    Router::new().fallback(handler::handle).with_state(state)
}
