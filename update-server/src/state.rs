//! Everything a request needs, built once at startup and shared.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use bytes::Bytes;
use vigil_repository::storage::{
    self, ObjectMeta, ObjectStream, S3Location, S3Options, Storage, StorageError,
};

use crate::auth::TokenSet;
use crate::cache::{NegativeCache, Object, ObjectCache};
use crate::flight::Flights;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::{Config, Error};

/// Cheap to clone: one `Arc`.
#[derive(Clone, Debug)]
pub struct AppState(pub(crate) Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    /// Read only through the counting methods below.
    storage: Arc<dyn Storage>,
    /// Metadata objects (whole) and heads of targets too large to keep whole.
    pub meta_cache: ObjectCache,
    /// Whole targets.
    pub blob_cache: ObjectCache,
    /// "Not found" for names of the repository's scheme.
    pub negative: NegativeCache,
    /// Loads of objects in progress, shared by concurrent misses.
    pub flights: Flights<Loaded>,
    pub health: Health,
    pub max_meta_body: u64,
    pub max_blob_body: u64,
    pub mutable_ttl: Duration,
    pub immutable_ttl: Duration,
    pub mutable_cache_control: HeaderValue,
    pub tokens: Option<TokenSet>,
    pub limiter: Option<RateLimiter>,
    /// `/healthz` has buckets of its own, so that busy clients behind one address cannot
    /// starve a load balancer's probes, nor probes eat a client's allowance.
    pub health_limiter: Option<RateLimiter>,
    pub metrics: Metrics,
    pub access_log: bool,
    pub drain_timeout: Duration,
    pub limits: Limits,
    /// Check-ins and the admin reads; `None` without a store.
    pub fleet: Option<crate::fleet::Fleet>,
}

/// The bounds on what one connection may hold (see [`Config`]'s fields of the same names);
/// `None` is off.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub header_read_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub max_connections: Option<usize>,
}

/// What a load of an object gives every request that shares it: the object (`None`: not
/// found), or the storage error, shared.
pub(crate) type Loaded = Result<Option<Arc<Object>>, Arc<StorageError>>;

const MB: u64 = 1 << 20;
/// "Not found" names kept at once; a scheme name is at most ~130 bytes, so this is well under
/// 2 MiB with the bookkeeping.
const NEGATIVE_ENTRIES: usize = 4096;

impl AppState {
    /// Reads the tokens file, if any; touches nothing in `storage`. No fleet store.
    pub fn new(storage: Arc<dyn Storage>, config: &Config) -> Result<Self, Error> {
        Self::with_fleet(storage, config, None)
    }

    /// As [`new`](Self::new), with the fleet store from [`crate::open_store`] (and the admin
    /// tokens file, if any).
    pub fn with_fleet(
        storage: Arc<dyn Storage>,
        config: &Config,
        fleet: Option<Arc<dyn crate::fleet::FleetStore>>,
    ) -> Result<Self, Error> {
        let fleet = match fleet {
            Some(store) => Some(crate::fleet::Fleet::new(store, config)?),
            None => None,
        };
        let tokens = match &config.tokens_file {
            Some(path) => Some(TokenSet::load(path)?),
            None => None,
        };
        let meta_bytes = config.metadata_cache_mb.saturating_mul(MB);
        let blob_bytes = config.blob_cache_mb.saturating_mul(MB);
        let mutable_cache_control =
            HeaderValue::from_str(&format!("public, max-age={}", config.timestamp_max_age_s))
                .unwrap_or(HeaderValue::from_static("public, max-age=60"));
        Ok(Self(Arc::new(Inner {
            storage,
            meta_cache: ObjectCache::new(usize::try_from(meta_bytes).unwrap_or(usize::MAX)),
            blob_cache: ObjectCache::new(usize::try_from(blob_bytes).unwrap_or(usize::MAX)),
            negative: NegativeCache::new(NEGATIVE_ENTRIES),
            flights: Flights::default(),
            health: Health::new(Duration::from_millis(config.health_cache_ms)),
            // Bounded so one large object cannot flush everything else.
            max_meta_body: meta_bytes / 4,
            max_blob_body: blob_bytes / 8,
            mutable_ttl: Duration::from_millis(config.metadata_cache_ms),
            immutable_ttl: Duration::from_secs(config.immutable_cache_s),
            mutable_cache_control,
            tokens,
            limiter: RateLimiter::new(
                config.rate_limit.requests_per_second,
                config.rate_limit.burst,
            ),
            health_limiter: RateLimiter::new(
                config.rate_limit.requests_per_second,
                config.rate_limit.burst,
            ),
            metrics: Metrics::new(),
            access_log: config.access_log,
            drain_timeout: config.drain_timeout(),
            limits: Limits {
                header_read_timeout: config.header_read_timeout(),
                request_timeout: config.request_timeout(),
                max_connections: config.max_connections(),
            },
            fleet,
        })))
    }

    pub fn drain_timeout(&self) -> Duration {
        self.0.drain_timeout
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.0.storage
    }

    /// "sqlite DIR/fleet.sqlite3", "postgres db@host", or `None` without a fleet store.
    pub fn fleet_store(&self) -> Option<String> {
        self.0.fleet.as_ref().map(|f| f.store.describe())
    }
}

/// Every storage request the server makes goes through here, counted by operation; failures
/// other than the caller's own (a bad key or range) count as backend errors once per request
/// to storage, however many client requests shared it.
impl Inner {
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        self.metrics.storage_read("head");
        self.counted(self.storage.head(key).await)
    }

    pub async fn get(&self, key: &str) -> Result<Option<(Bytes, ObjectMeta)>, StorageError> {
        self.metrics.storage_read("get");
        self.counted(self.storage.get(key).await)
    }

    pub async fn get_stream(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<ObjectStream>, StorageError> {
        self.metrics.storage_read("stream");
        self.counted(self.storage.get_stream(key, range).await)
    }

    fn counted<T>(&self, r: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(e) = &r {
            if !matches!(
                e,
                StorageError::BadKey { .. } | StorageError::BadRange { .. }
            ) {
                self.metrics.backend_error();
            }
        }
        r
    }
}

/// Opens the configured repository. A directory must exist (a typo should stop the server, not
/// make it answer 404 forever); an S3 prefix is not contacted here, so the server can start
/// while S3 is briefly unreachable (`/healthz` reports it).
pub async fn open_storage(config: &Config) -> Result<Arc<dyn Storage>, Error> {
    let repo = config.repo.as_deref().ok_or(Error::NoRepository)?;
    if S3Location::parse(repo)?.is_none() && !repo.is_empty() && !Path::new(repo).is_dir() {
        return Err(Error::RepositoryMissing { path: repo.into() });
    }
    let opts = S3Options {
        endpoint: config.s3.endpoint.clone(),
        path_style: config.s3.path_style,
        region: config.s3.region.clone(),
    };
    Ok(storage::open(repo, &opts).await?)
}
