//! The request handler: route, rate limit, authenticate, then answer from the caches or
//! storage with the right status, validators, ranges and cache headers.
//!
//! Order of checks: `/healthz` and `/metrics` need no token (load balancers and scrapers
//! have none); `/healthz` is rate limited in buckets of its own, `/metrics` (an encoding of
//! counters in memory) not at all. Everything else is rate limited first (so it also
//! throttles token guessing), then must be GET or HEAD, then authenticated, and only then is
//! the path looked at, so an unauthenticated client learns nothing about what exists. The
//! fleet's paths are the exception: check-ins (`POST /fleet/checkin`) are limited per client
//! id and per address on their own, and the admin reads take admin tokens ([`crate::fleet`]).
//!
//! An object comes from the caches, else from one load shared by every request that misses
//! the same key meanwhile ([`crate::flight`]); only a target too large to keep whole is read
//! per request, as a stream.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    ACCEPT_RANGES, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, LAST_MODIFIED, RANGE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::BytesMut;
use futures::{StreamExt, TryStreamExt};
use vigil_repository::storage::{ByteStream, StorageError};

use crate::cache::Object;
use crate::range::{self, RangeReply};
use crate::ratelimit::{Decision, RateLimiter};
use crate::route::{self, Class, Route};
use crate::state::{AppState, Inner, Loaded};
use crate::{conditional, fleet, health, stall};

const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const BYTES: HeaderValue = HeaderValue::from_static("bytes");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
/// Longest path written to the access log; the rest is cut.
const LOG_PATH_MAX: usize = 200;

pub(crate) async fn handle(State(state): State<AppState>, req: Request) -> Response {
    let start = Instant::now();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let (parts, body) = req.into_parts();
    let s = &*state.0;
    let route = route::route(parts.uri.path());
    let logged_path = parts.uri.path();
    let logged_path = logged_path.get(..LOG_PATH_MAX).unwrap_or(logged_path);
    let answer = dispatch(&state, &parts, body, route, peer, start);
    // The head half of the request timeout (the body half is in `stall`). Dropping a
    // dispatch midway is safe: a shared load passes to a request still waiting for it.
    let (resp, bytes) = match s.limits.request_timeout {
        Some(limit) => match tokio::time::timeout(limit, answer).await {
            Ok(answer) => answer,
            Err(_) => {
                tracing::warn!(path = logged_path, "no answer within the request timeout");
                plain(StatusCode::GATEWAY_TIMEOUT, "timed out\n")
            }
        },
        None => answer.await,
    };
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    s.metrics.record(route.label(), status, bytes, elapsed);
    if s.access_log {
        tracing::info!(
            target: "vigil_server::access",
            client = %peer,
            method = %parts.method,
            path = logged_path,
            status,
            bytes,
            latency_ms = elapsed.as_micros() as f64 / 1000.0,
        );
    }
    resp
}

async fn dispatch(
    state: &AppState,
    parts: &Parts,
    body: Body,
    route: Route<'_>,
    peer: IpAddr,
    now: Instant,
) -> (Response, u64) {
    let s = &*state.0;
    let readable = parts.method == Method::GET || parts.method == Method::HEAD;
    match route {
        Route::Health if readable => {
            if let Some(denied) = limit(s.health_limiter.as_ref(), peer, now) {
                return denied;
            }
            let verdict = health::check(s).await;
            let status = if verdict.healthy() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return plain(status, verdict.text());
        }
        Route::Metrics if readable => {
            let mut resp = Response::new(Body::from(s.metrics.encode()));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            return (resp, 0);
        }
        Route::Health | Route::Metrics => return method_not_allowed(),
        // Check-ins have limits of their own (per client id, and a per-address bucket sized
        // for fleets behind one NAT), and the feed tokens; see `fleet::http`.
        Route::FleetCheckin => return fleet::http::checkin(state, parts, body, peer).await,
        _ => {}
    }
    if let Some(denied) = limit(s.limiter.as_ref(), peer, now) {
        return denied;
    }
    if let Route::Fleet(page) = route {
        // Admin reads: the admin tokens, not the feed's.
        return fleet::http::admin(state, parts, page).await;
    }
    if !readable {
        return method_not_allowed();
    }
    if let Some(tokens) = &s.tokens {
        if !tokens.allows(parts.headers.get(AUTHORIZATION)) {
            let (mut resp, n) = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"vigil\""),
            );
            return (resp, n);
        }
    }
    match route {
        Route::Object(key) => match object(state, parts, key).await {
            Ok(r) => r,
            Err(e) => match &*e {
                StorageError::BadKey { .. } => plain(StatusCode::BAD_REQUEST, "bad path\n"),
                StorageError::BadRange { len, .. } => unsatisfiable(*len),
                // Counted as a backend error where storage failed, once per storage request.
                e => {
                    tracing::warn!(key, error = %e, "storage error");
                    plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
                }
            },
        },
        Route::BadPath => plain(StatusCode::BAD_REQUEST, "bad path\n"),
        Route::NotFound
        | Route::Health
        | Route::Metrics
        | Route::FleetCheckin
        | Route::Fleet(_) => not_found(),
    }
}

/// `Some(429)` when `peer` is over its limit.
fn limit(limiter: Option<&RateLimiter>, peer: IpAddr, now: Instant) -> Option<(Response, u64)> {
    let Decision::Deny { retry_after_secs } = limiter?.check(peer, now) else {
        return None;
    };
    let (mut resp, n) = plain(StatusCode::TOO_MANY_REQUESTS, "too many requests\n");
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    Some((resp, n))
}

/// What a request gets, decided from the object's validators and length alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    NotModified,
    /// HEAD: the headers of a 200 (a Range on HEAD is ignored, as RFC 9110 allows).
    Head,
    Full,
    Partial(u64, u64),
    Unsatisfiable,
}

fn plan(parts: &Parts, obj: &Object) -> Plan {
    if conditional::not_modified(&parts.headers, obj.etag.as_ref(), obj.last_modified) {
        return Plan::NotModified;
    }
    if parts.method == Method::HEAD {
        return Plan::Head;
    }
    let Some(range) = parts.headers.get(RANGE) else {
        return Plan::Full;
    };
    if !conditional::range_allowed(
        &parts.headers,
        obj.etag.as_ref(),
        obj.last_modified_header.as_ref(),
    ) {
        return Plan::Full;
    }
    match range::resolve(range.as_bytes(), obj.len) {
        RangeReply::Full => Plan::Full,
        RangeReply::Partial { start, end } => Plan::Partial(start, end),
        RangeReply::Unsatisfiable => Plan::Unsatisfiable,
    }
}

async fn object(
    state: &AppState,
    parts: &Parts,
    key: &str,
) -> Result<(Response, u64), Arc<StorageError>> {
    let s = &*state.0;
    let class = route::class_of(key);
    let now = Instant::now();

    let negative = s.negative.contains(key, now);
    s.metrics.cache("negative", negative);
    if negative {
        return Ok(not_found());
    }
    let obj = match cached(s, key, now, true) {
        Some(obj) => obj,
        None => match s.flights.run(key, || load(s, key, class)).await? {
            Some(obj) => obj,
            None => return Ok(not_found()),
        },
    };
    // Whole in memory, or no bytes needed (304s, HEADs and 416s): answered from `obj`.
    let p = plan(parts, &obj);
    if obj.body.is_some() || !matches!(p, Plan::Full | Plan::Partial(..)) {
        return Ok(respond(s, key, class, &obj, p, None));
    }
    // Too large to keep whole: streamed from storage for this request alone, 256 KiB at a
    // time, so memory per download stays small whatever the object's size.
    let range = match p {
        Plan::Partial(a, b) => Some((a, b)),
        _ => None,
    };
    let Some(stream) = s.get_stream(key, range).await? else {
        return Ok(not_found());
    };
    let obj = Object::new(&stream.meta, None);
    let errors = state.clone();
    let key_owned = key.to_owned();
    let body = stall::storage_stall(stream.body, s.limits.request_timeout, key);
    let body = Body::from_stream(body.inspect_err(move |e| {
        // The client sees a cut connection; the log and the metric say why.
        errors.0.metrics.backend_error();
        tracing::warn!(key = key_owned, error = %e, "storage error while streaming");
    }));
    Ok(respond(s, key, class, &obj, p, Some(body)))
}

/// The object from memory: whole (metadata, or a target in the blob cache), or only the head
/// of a target too large to keep whole.
fn cached(s: &Inner, key: &str, now: Instant, count: bool) -> Option<Arc<Object>> {
    let metric = |cache, hit| {
        if count {
            s.metrics.cache(cache, hit);
        }
    };
    if !key.starts_with("metadata/") && s.blob_cache.capacity() > 0 {
        let whole = s.blob_cache.get(key, now);
        metric("blob", whole.is_some());
        if whole.is_some() {
            return whole;
        }
    }
    let found = s.meta_cache.get(key, now);
    metric("metadata", found.is_some());
    found
}

/// Reads `key` from storage into the caches; run once for all concurrent misses of `key`.
async fn load(s: &Inner, key: &str, class: Class) -> Loaded {
    let now = Instant::now();
    // A load that finished just before this one began has filled the caches already.
    if let Some(obj) = cached(s, key, now, false) {
        return Ok(Some(obj));
    }
    let expires = now
        + match class {
            Class::Immutable => s.immutable_ttl,
            Class::Mutable => s.mutable_ttl,
        };
    let found = if key.starts_with("metadata/") {
        // TUF metadata is small and read whole, then kept for its TTL.
        s.get(key).await?.map(|(bytes, meta)| {
            let obj = Arc::new(Object::new(&meta, Some(bytes)));
            if obj.len <= s.max_meta_body {
                s.meta_cache.insert(key, obj.clone(), expires);
            }
            obj
        })
    } else {
        load_target(s, key, expires).await?
    };
    match &found {
        // Remembered only briefly: the object may be published a moment later.
        None => {
            s.negative.insert(key, now + s.mutable_ttl);
        }
        Some(_) => s.negative.remove(key),
    }
    Ok(found)
}

/// One storage request: a stream of the whole target, read into memory when the target is
/// small enough to keep (its bytes then serve every waiting request), else dropped after its
/// head, which is kept so that later requests know the length and validators.
async fn load_target(
    s: &Inner,
    key: &str,
    expires: Instant,
) -> Result<Option<Arc<Object>>, StorageError> {
    if s.max_blob_body == 0 {
        // Nothing is kept whole: the head is all there is to learn.
        let Some(meta) = s.head(key).await? else {
            return Ok(None);
        };
        let head = Arc::new(Object::new(&meta, None));
        s.meta_cache.insert(key, head.clone(), expires);
        return Ok(Some(head));
    }
    let Some(stream) = s.get_stream(key, None).await? else {
        return Ok(None);
    };
    if stream.meta.len > s.max_blob_body {
        let head = Arc::new(Object::new(&stream.meta, None));
        s.meta_cache.insert(key, head.clone(), expires);
        return Ok(Some(head));
    }
    let bytes = read_exactly(stream.body, stream.meta.len, key)
        .await
        .inspect_err(|_| s.metrics.backend_error())?;
    let obj = Arc::new(Object::new(&stream.meta, Some(bytes)));
    s.blob_cache.insert(key, obj.clone(), expires);
    Ok(Some(obj))
}

/// The stream's bytes, which must be exactly the `len` its head announced: an object that
/// changes while it is read is an error, not a body that disagrees with its headers.
async fn read_exactly(
    mut body: ByteStream,
    len: u64,
    key: &str,
) -> Result<bytes::Bytes, StorageError> {
    let changed = || StorageError::Io {
        what: "read",
        key: key.to_owned(),
        source: std::io::Error::other("the object changed while it was read"),
    };
    let len = usize::try_from(len).map_err(|_| changed())?;
    let mut buf = BytesMut::with_capacity(len);
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if chunk.len() > len - buf.len() {
            return Err(changed());
        }
        buf.extend_from_slice(&chunk);
    }
    if buf.len() != len {
        return Err(changed());
    }
    Ok(buf.freeze())
}

/// Builds the response for `plan`. The body comes from `obj.body` (sliced for a range) or from
/// `stream`, which already holds exactly the planned bytes.
fn respond(
    s: &Inner,
    key: &str,
    class: Class,
    obj: &Object,
    plan: Plan,
    stream: Option<Body>,
) -> (Response, u64) {
    let (status, body, len) = match plan {
        Plan::NotModified => (StatusCode::NOT_MODIFIED, Body::empty(), None),
        Plan::Head => (StatusCode::OK, Body::empty(), Some(obj.len)),
        Plan::Unsatisfiable => return unsatisfiable(obj.len),
        Plan::Full => {
            let body = match (stream, &obj.body) {
                (Some(b), _) => b,
                (None, Some(bytes)) => Body::from(bytes.clone()),
                (None, None) => Body::empty(), // not reached: callers fetch the bytes first
            };
            (StatusCode::OK, body, Some(obj.len))
        }
        Plan::Partial(start, end) => {
            let body = match (stream, &obj.body) {
                (Some(b), _) => b,
                (None, Some(bytes)) => {
                    let slice = usize::try_from(start)
                        .ok()
                        .zip(usize::try_from(end).ok())
                        .and_then(|(a, b)| bytes.get(a..=b).map(|_| bytes.slice(a..=b)));
                    match slice {
                        Some(b) => Body::from(b),
                        None => return unsatisfiable(obj.len),
                    }
                }
                (None, None) => Body::empty(),
            };
            (StatusCode::PARTIAL_CONTENT, body, Some(end - start + 1))
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Some(etag) = &obj.etag {
        h.insert(ETAG, etag.clone());
    }
    if let Some(lm) = &obj.last_modified_header {
        h.insert(LAST_MODIFIED, lm.clone());
    }
    h.insert(
        CACHE_CONTROL,
        match class {
            Class::Immutable => IMMUTABLE,
            Class::Mutable => s.mutable_cache_control.clone(),
        },
    );
    let mut sent = 0;
    if let Some(len) = len {
        h.insert(ACCEPT_RANGES, BYTES);
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(route::content_type(key)),
        );
        h.insert(CONTENT_LENGTH, HeaderValue::from(len));
        if let Plan::Partial(start, end) = plan {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{}", obj.len)) {
                h.insert(CONTENT_RANGE, v);
            }
        }
        if plan != Plan::Head {
            sent = len;
        }
    }
    (resp, sent)
}

fn plain(status: StatusCode, text: &'static str) -> (Response, u64) {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, TEXT);
    (resp, text.len() as u64)
}

fn not_found() -> (Response, u64) {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

fn method_not_allowed() -> (Response, u64) {
    let (mut resp, n) = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    (resp, n)
}

fn unsatisfiable(len: u64) -> (Response, u64) {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
        resp.headers_mut().insert(CONTENT_RANGE, v);
    }
    (resp, 0)
}
