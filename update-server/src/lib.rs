//! vigil-update-server: serves a vigil repository (TUF metadata, databases, deltas) read-only
//! over HTTP, from a directory or an S3 bucket prefix, through [`vigil_repository::storage`].
//!
//! Input: a repository store and a [`Config`]. Output: HTTP responses with ETags, ranges,
//! cache headers, rate limits, optional bearer-token auth, metrics and access logs.
//! Main types: [`AppState`] (storage, caches, limits), [`app`] (the router), [`serve`] (a
//! listener until shutdown, then a bounded drain). It never serves a byte from outside the
//! repository and never writes to it. It knows nothing of command lines or logging setup: the
//! `vigil-server` program (programs/vigil-server) reads flags and config, installs the logger
//! and handles signals. Neighbours: `vigil-build publish` writes the repository; `vigil-update`
//! reads it.

pub mod auth;
pub mod cache;
pub mod conditional;
pub mod config;
mod flight;
mod handler;
mod health;
pub mod metrics;
pub mod range;
pub mod ratelimit;
pub mod route;
mod state;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::serve::ListenerExt;
use axum::Router;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil_repository::storage::StorageError;

pub use config::{Config, LogFormat};
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
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

/// How [`serve`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drain {
    /// Every in-flight request finished after the shutdown signal.
    Complete,
    /// The drain timeout passed with requests still running; they are cut off when the
    /// runtime stops.
    TimedOut,
}

/// The whole HTTP surface. One fallback handler does its own routing on the raw path, so that
/// path checks, 405s, rate limits, metrics and access logs apply to every request alike.
pub fn app(state: AppState) -> Router {
    Router::new().fallback(handler::handle).with_state(state)
}

/// Serves `listener` until `shutdown` completes, then stops accepting (the listening socket
/// is closed at once), lets in-flight requests finish, and returns after at most the
/// configured drain timeout.
pub async fn serve<F>(listener: TcpListener, state: AppState, shutdown: F) -> Result<Drain, Error>
where
    F: Future<Output = ()> + Send + 'static,
{
    let drain = state.drain_timeout();
    let stopping = CancellationToken::new();
    let signal = {
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, draining in-flight requests");
            stopping.cancel();
        }
    };
    // Responses are written whole or in large chunks; Nagle would only delay the last packet.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    tokio::select! {
        r = server.into_future() => {
            r.map_err(Error::Serve)?;
            Ok(Drain::Complete)
        }
        () = async {
            stopping.cancelled().await;
            tokio::time::sleep(drain).await;
        } => Ok(Drain::TimedOut),
    }
}
