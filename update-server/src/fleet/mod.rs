//! The fleet: clients' check-ins, stored and summarised for operators and for the automatic
//! halt (issue 14).
//!
//! - `POST /fleet/checkin`: write-only for clients (size cap, schema check, rate limits per
//!   client id and per address, the feed tokens when configured); the server stamps its own
//!   receive time, since a client's clock is not trusted for liveness.
//! - Admin reads (`--admin-tokens`, Bearer or HTTP Basic with the token as password):
//!   `GET /api/fleet/health` (a rolling version's [`vigil_fleet::VersionHealth`]),
//!   `GET /api/fleet` (JSON summary), `GET /fleet` (the HTML console) and
//!   `GET /fleet/compliance.csv` (every host).
//!
//! Storage sits behind [`store::FleetStore`]: [`sqlite`] (`--state-dir`) or [`postgres`]
//! (`--fleet-db`). Rollout stages and publish times come from the repository the server serves
//! ([`releases`]). The server never holds a signing key: it collects, and CI decides and signs.

pub mod console;
pub mod csv;
pub(crate) mod http;
pub mod limit;
pub mod postgres;
pub mod query;
pub mod releases;
pub mod sqlite;
pub mod store;
pub mod summary;

use std::sync::Arc;

use crate::auth::TokenSet;
use crate::config::FleetConfig;
use crate::{Config, Error};

pub use store::{FleetError, FleetStore};

/// The fleet side of the server state; absent without a store (the endpoints answer 404).
#[derive(Debug)]
pub(crate) struct Fleet {
    pub store: Arc<dyn FleetStore>,
    /// `None`: admin reads are refused with 403 (a store without a way to read it).
    pub admin: Option<TokenSet>,
    pub per_client: Option<limit::PerClient>,
    pub per_ip: Option<crate::ratelimit::RateLimiter>,
}

impl Fleet {
    pub fn new(store: Arc<dyn FleetStore>, config: &Config) -> Result<Self, Error> {
        let admin = match &config.admin_tokens_file {
            Some(path) => Some(TokenSet::load(path)?),
            None => None,
        };
        let FleetConfig {
            checkin_interval_s,
            requests_per_second,
            burst,
        } = config.fleet;
        Ok(Self {
            store,
            admin,
            per_client: limit::PerClient::new(checkin_interval_s),
            per_ip: crate::ratelimit::RateLimiter::new(requests_per_second, burst),
        })
    }
}

/// Opens the configured fleet store: PostgreSQL with `fleet_db`, else SQLite in `state_dir`,
/// else none.
pub async fn open_store(config: &Config) -> Result<Option<Arc<dyn FleetStore>>, Error> {
    if let Some(url) = &config.fleet_db {
        let s = postgres::PostgresStore::open(url)
            .await
            .map_err(|e| Error::FleetStore(e.to_string()))?;
        return Ok(Some(Arc::new(s)));
    }
    if let Some(dir) = &config.state_dir {
        let dir = dir.clone();
        let s = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&dir))
            .await
            .map_err(|e| Error::FleetStore(e.to_string()))?
            .map_err(|e| Error::FleetStore(e.to_string()))?;
        return Ok(Some(Arc::new(s)));
    }
    Ok(None)
}

/// The server's clock in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
