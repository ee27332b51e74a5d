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

use std::sync::atomic::{AtomicI64, Ordering};
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
    /// Seconds after which an unseen host is forgotten (0: never), and when it was last done.
    forget_after: i64,
    last_forget: AtomicI64,
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
            forget_after_s,
        } = config.fleet;
        Ok(Self {
            store,
            admin,
            per_client: limit::PerClient::new(checkin_interval_s),
            per_ip: crate::ratelimit::RateLimiter::new(requests_per_second, burst),
            forget_after: i64::try_from(forget_after_s).unwrap_or(i64::MAX),
            last_forget: AtomicI64::new(0),
        })
    }

    /// Forgets hosts unseen for `forget_after`, at most every tenth of that (and at least
    /// hourly): run from the requests themselves (check-ins and reads), so a server with no
    /// traffic does no work and needs no timer. One caller wins the slot; the others go on.
    pub async fn forget_if_due(&self, now: i64) {
        if self.forget_after == 0 {
            return;
        }
        let every = (self.forget_after / 10).clamp(1, 3600);
        let last = self.last_forget.load(Ordering::Relaxed);
        if now - last < every
            || self
                .last_forget
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        match self
            .store
            .forget(now.saturating_sub(self.forget_after))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                hosts = n,
                "forgot hosts not seen for {} s",
                self.forget_after
            ),
            Err(e) => tracing::warn!(error = %e, "forgetting hosts not seen for long"),
        }
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
