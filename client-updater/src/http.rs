//! HTTP for the updater: one client per run with the token, proxy and timeouts; a guard that
//! aborts transfers that are too slow or too long (slow-retrieval and endless-data attacks);
//! status codes turned into the errors the mirror back-off needs; and a tough [`Transport`]
//! that revalidates `timestamp.json` with If-None-Match and serves immutable versioned
//! metadata from a local cache (tough verifies both exactly as if they came off the wire).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RANGE, RETRY_AFTER,
};
use reqwest::StatusCode;
use thiserror::Error;
use tough::{Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

use crate::config::Network;

#[derive(Debug, Error, Clone)]
pub enum FetchError {
    #[error("{url}: not found (HTTP {status})")]
    NotFound { url: String, status: u16 },
    #[error("{url}: HTTP {status}{}", retry_after.map(|s| format!(", Retry-After {s} s")).unwrap_or_default())]
    Throttled {
        url: String,
        status: u16,
        retry_after: Option<u64>,
    },
    #[error("{url}: unexpected HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {message}")]
    Network { url: String, message: String },
    #[error("{url}: too slow: {bytes} bytes in the last {secs} s (minimum {limit} bytes/s)")]
    TooSlow {
        url: String,
        bytes: u64,
        secs: u64,
        limit: u64,
    },
    #[error("{url}: transfer took longer than {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("{url}: more than the expected {limit} bytes")]
    TooLarge { url: String, limit: u64 },
}

impl FetchError {
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Bytes received, split the way the benchmark reports them.
#[derive(Debug, Default)]
pub struct Counters {
    pub metadata_bytes: AtomicU64,
    pub target_bytes: AtomicU64,
    pub requests: AtomicU64,
}

#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
    token: Option<HeaderValue>,
    net: Network,
    pub counters: Arc<Counters>,
}

pub enum Body {
    /// 200 or 206 and the (guarded) body stream.
    Stream {
        partial: bool,
        len: Option<u64>,
        etag: Option<String>,
        stream: futures::stream::BoxStream<'static, Result<Bytes, FetchError>>,
    },
    NotModified,
    /// 416: the range asked for starts at or past the end.
    RangeNotSatisfiable,
}

/// Why an HTTP client cannot be made: a setting from the configuration is unusable.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HttpSetupError {
    // `cause`, not `source`: the message includes it, and a source would print it twice in
    // an error chain.
    #[error("proxy {proxy:?}: {cause}")]
    Proxy {
        proxy: String,
        cause: reqwest::Error,
    },
    #[error("the token has characters not allowed in a header")]
    Token,
    #[error("{0}")]
    Client(reqwest::Error),
}

impl Http {
    pub fn new(
        net: &Network,
        token: Option<&str>,
        proxy: Option<&str>,
    ) -> Result<Self, HttpSetupError> {
        // reqwest is built with rustls but no crypto provider; a second install is harmless.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut b = reqwest::Client::builder()
            .connect_timeout(net.connect_timeout())
            .user_agent(concat!("vigil-update/", env!("CARGO_PKG_VERSION")));
        if let Some(p) = proxy {
            b = b.proxy(
                reqwest::Proxy::all(p).map_err(|cause| HttpSetupError::Proxy {
                    proxy: p.to_owned(),
                    cause,
                })?,
            );
        }
        let token = match token {
            Some(t) => Some(
                HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| HttpSetupError::Token)?,
            ),
            None => None,
        };
        Ok(Self {
            client: b.build().map_err(HttpSetupError::Client)?,
            token,
            net: net.clone(),
            counters: Arc::default(),
        })
    }

    /// A GET with optional `If-None-Match` and `Range: bytes=N-`.
    pub async fn get(
        &self,
        url: &Url,
        if_none_match: Option<&str>,
        from: u64,
        metadata: bool,
    ) -> Result<Body, FetchError> {
        let u = url.to_string();
        let mut headers = HeaderMap::new();
        if let Some(t) = &self.token {
            headers.insert(AUTHORIZATION, t.clone());
        }
        if let Some(e) = if_none_match.and_then(|e| HeaderValue::from_str(e).ok()) {
            headers.insert(IF_NONE_MATCH, e);
        }
        if from > 0 {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes={from}-")) {
                headers.insert(RANGE, v);
            }
        }
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let send = self.client.get(url.clone()).headers(headers).send();
        let resp = match tokio::time::timeout(
            self.low_speed_window().max(self.net.connect_timeout()),
            send,
        )
        .await
        {
            Err(_) => {
                return Err(FetchError::Timeout {
                    url: u,
                    secs: self.low_speed_window().as_secs(),
                })
            }
            Ok(Err(e)) => {
                return Err(FetchError::Network {
                    url: u,
                    message: error_chain(&e),
                })
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        match status {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {
                let etag = resp
                    .headers()
                    .get(ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let len = resp.content_length();
                let stream = guard(
                    resp.bytes_stream(),
                    u,
                    self.net.clone(),
                    started,
                    self.counters.clone(),
                    metadata,
                );
                Ok(Body::Stream {
                    partial: status == StatusCode::PARTIAL_CONTENT,
                    len,
                    etag,
                    stream,
                })
            }
            StatusCode::NOT_MODIFIED => Ok(Body::NotModified),
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(Body::RangeNotSatisfiable),
            StatusCode::NOT_FOUND | StatusCode::GONE => Err(FetchError::NotFound {
                url: u,
                status: status.as_u16(),
            }),
            // freshclam's reading: 429 and 503 are "slow down", 403 is "you are blocked"; all
            // three mean leave this mirror alone for a while.
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::FORBIDDEN => Err(FetchError::Throttled {
                url: u,
                status: status.as_u16(),
                retry_after: resp.headers().get(RETRY_AFTER).and_then(parse_retry_after),
            }),
            s => Err(FetchError::Status {
                url: u,
                status: s.as_u16(),
            }),
        }
    }

    /// The whole body, at most `limit` bytes.
    pub async fn get_bytes(
        &self,
        url: &Url,
        if_none_match: Option<&str>,
        limit: u64,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, FetchError> {
        match self.get(url, if_none_match, 0, true).await? {
            Body::NotModified => Ok(None),
            Body::RangeNotSatisfiable => Err(FetchError::Status {
                url: url.to_string(),
                status: 416,
            }),
            Body::Stream {
                mut stream, etag, ..
            } => {
                let mut out = Vec::new();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    if out.len() as u64 + chunk.len() as u64 > limit {
                        return Err(FetchError::TooLarge {
                            url: url.to_string(),
                            limit,
                        });
                    }
                    out.extend_from_slice(&chunk);
                }
                Ok(Some((out, etag)))
            }
        }
    }

    /// POSTs a small JSON body (a check-in) with the feed token, and returns the status. The
    /// whole exchange, connect included, is bounded by `timeout`; the response body is
    /// ignored.
    pub async fn post_json(
        &self,
        url: &Url,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<u16, FetchError> {
        let u = url.to_string();
        let mut req = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, t.clone());
        }
        match tokio::time::timeout(timeout, req.send()).await {
            Err(_) => Err(FetchError::Timeout {
                url: u,
                secs: timeout.as_secs(),
            }),
            Ok(Err(e)) => Err(FetchError::Network {
                url: u,
                message: error_chain(&e),
            }),
            Ok(Ok(r)) => Ok(r.status().as_u16()),
        }
    }

    fn low_speed_window(&self) -> Duration {
        Duration::from_secs(self.net.low_speed_time_secs.max(1))
    }
}

fn parse_retry_after(v: &HeaderValue) -> Option<u64> {
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(secs);
    }
    let when = httpdate_parse(s)?;
    Some(when.saturating_sub(crate::state::now()).max(0) as u64)
}

/// Retry-After as an HTTP date (RFC 9110 IMF-fixdate), in Unix seconds.
fn httpdate_parse(s: &str) -> Option<i64> {
    let t = jiff::fmt::rfc2822::parse(s).ok()?;
    Some(t.timestamp().as_second())
}

pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

struct Guard<S> {
    inner: S,
    url: String,
    net: Network,
    started: Instant,
    window_start: Instant,
    window_bytes: u64,
    counters: Arc<Counters>,
    metadata: bool,
    done: bool,
}

/// Wraps a body so that it fails when a `low_speed_time` window brings fewer than
/// `low_speed_limit` bytes per second, or the whole transfer exceeds `max_transfer_secs`.
/// A server that sends nothing at all is caught by the same window.
fn guard<S>(
    inner: S,
    url: String,
    net: Network,
    started: Instant,
    counters: Arc<Counters>,
    metadata: bool,
) -> futures::stream::BoxStream<'static, Result<Bytes, FetchError>>
where
    S: futures::Stream<Item = reqwest::Result<Bytes>> + Send + Unpin + 'static,
{
    let g = Guard {
        inner,
        url,
        net,
        started,
        window_start: Instant::now(),
        window_bytes: 0,
        counters,
        metadata,
        done: false,
    };
    futures::stream::unfold(g, |mut g| async move {
        if g.done {
            return None;
        }
        let window = Duration::from_secs(g.net.low_speed_time_secs.max(1));
        let total = Duration::from_secs(g.net.max_transfer_secs.max(1));
        loop {
            let deadline = (g.window_start + window).min(g.started + total);
            let wait = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(wait, g.inner.next()).await {
                Ok(Some(Ok(chunk))) => {
                    g.window_bytes += chunk.len() as u64;
                    let c = if g.metadata {
                        &g.counters.metadata_bytes
                    } else {
                        &g.counters.target_bytes
                    };
                    c.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if let Some(e) = g.check(window, total) {
                        g.done = true;
                        return Some((Err(e), g));
                    }
                    return Some((Ok(chunk), g));
                }
                Ok(Some(Err(e))) => {
                    g.done = true;
                    let e = FetchError::Network {
                        url: g.url.clone(),
                        message: error_chain(&e),
                    };
                    return Some((Err(e), g));
                }
                Ok(None) => return None,
                Err(_) => {
                    if let Some(e) = g.check(window, total) {
                        g.done = true;
                        return Some((Err(e), g));
                    }
                }
            }
        }
    })
    .boxed()
}

impl<S> Guard<S> {
    fn check(&mut self, window: Duration, total: Duration) -> Option<FetchError> {
        let now = Instant::now();
        if now.duration_since(self.started) >= total {
            return Some(FetchError::Timeout {
                url: self.url.clone(),
                secs: total.as_secs(),
            });
        }
        if now.duration_since(self.window_start) >= window {
            let need = self.net.low_speed_limit.saturating_mul(window.as_secs());
            if self.window_bytes < need {
                return Some(FetchError::TooSlow {
                    url: self.url.clone(),
                    bytes: self.window_bytes,
                    secs: window.as_secs(),
                    limit: self.net.low_speed_limit,
                });
            }
            self.window_start = now;
            self.window_bytes = 0;
        }
        None
    }
}

/// tough's view of one mirror.
#[derive(Clone, Debug)]
pub struct MirrorTransport {
    pub http: Http,
    /// Per-mirror directory holding `timestamp.json` with its ETag, and immutable metadata.
    pub cache: Option<PathBuf>,
    /// Size caps per metadata role, applied while reading (tough checks them again).
    pub limits: tough::Limits,
    /// Keeps the exact bytes of every file tough verified (the offline mirror copies them).
    pub record: Option<Arc<std::sync::Mutex<std::collections::BTreeMap<String, Bytes>>>>,
    /// The first network failure of this run. Later fetches fail at once with it: a throttling
    /// mirror gets no more requests, and a failure tough would swallow (it reads any error on
    /// the next root.json as "no newer root") still ends the run with the right class.
    pub failed: Arc<std::sync::Mutex<Option<FetchError>>>,
}

impl MirrorTransport {
    fn recorded(&self, name: &str, b: Bytes) -> TransportStream {
        if let Some(r) = &self.record {
            if let Ok(mut m) = r.lock() {
                m.insert(name.to_owned(), b.clone());
            }
        }
        one(b)
    }
}

#[async_trait::async_trait]
impl Transport for MirrorTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        let name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or("")
            .to_owned();
        let versioned = name
            .split_once('.')
            .is_some_and(|(v, _)| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
        let cache = self
            .cache
            .as_ref()
            .filter(|_| !name.is_empty() && !name.starts_with('.'));
        if let (true, Some(dir)) = (versioned, cache) {
            if let Ok(b) = std::fs::read(dir.join(&name)) {
                return Ok(self.recorded(&name, Bytes::from(b)));
            }
        }
        let etag_path = cache.map(|d| d.join(format!("{name}.etag")));
        let etag = match (&etag_path, name == "timestamp.json") {
            (Some(p), true) => std::fs::read_to_string(p).ok(),
            _ => None,
        };
        if let Some(f) = self.failed.lock().ok().and_then(|g| g.clone()) {
            return Err(TransportError::new_with_cause(
                TransportErrorKind::Other,
                url,
                f,
            ));
        }
        let l = &self.limits;
        let limit = if name == "timestamp.json" {
            l.max_timestamp_size
        } else if name.ends_with(".root.json") {
            l.max_root_size
        } else if name.ends_with(".snapshot.json") {
            l.max_snapshot_size
        } else {
            l.max_targets_size
        };
        match self.http.get_bytes(&url, etag.as_deref(), limit).await {
            Ok(Some((bytes, new_etag))) => {
                if let Some(dir) = cache {
                    // Best effort: the cache only saves bytes; it is never trusted unverified.
                    let _ = std::fs::create_dir_all(dir);
                    if versioned {
                        let _ = std::fs::write(dir.join(&name), &bytes);
                    } else if name == "timestamp.json" {
                        let _ = std::fs::write(dir.join(&name), &bytes);
                        if let (Some(p), Some(e)) = (&etag_path, new_etag) {
                            let _ = std::fs::write(p, e);
                        }
                    }
                }
                Ok(self.recorded(&name, Bytes::from(bytes)))
            }
            Ok(None) => match cache.and_then(|d| std::fs::read(d.join(&name)).ok()) {
                Some(b) => Ok(self.recorded(&name, Bytes::from(b))),
                None => Err(TransportError::new_with_cause(
                    TransportErrorKind::Other,
                    url,
                    FetchError::Status {
                        url: name,
                        status: 304,
                    },
                )),
            },
            Err(FetchError::NotFound { .. }) => {
                Err(TransportError::new(TransportErrorKind::FileNotFound, url))
            }
            Err(e) => {
                if let Ok(mut g) = self.failed.lock() {
                    g.get_or_insert_with(|| e.clone());
                }
                Err(TransportError::new_with_cause(
                    TransportErrorKind::Other,
                    url,
                    e,
                ))
            }
        }
    }
}

fn one(b: Bytes) -> TransportStream {
    Box::pin(futures::stream::iter([Ok(b)]))
}

/// Finds our [`FetchError`] inside whatever tough wrapped it in.
pub fn find_fetch_error(e: &(dyn std::error::Error + 'static)) -> Option<FetchError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(f) = c.downcast_ref::<FetchError>() {
            return Some(f.clone());
        }
        cur = c.source();
    }
    None
}
