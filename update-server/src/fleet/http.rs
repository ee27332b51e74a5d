//! The fleet's HTTP answers, called from the request handler once routing has picked a fleet
//! path. Check-ins: address bucket, feed token, size (before reading the body), schema,
//! per-client interval, store. Admin reads: admin token (Bearer or Basic), then the query.

use std::net::IpAddr;
use std::time::Instant;

use axum::body::Body;
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use vigil_fleet::checkin::{CheckIn, MAX_BYTES};

use super::{console, csv, query, releases, summary, Fleet};
use crate::route::FleetPage;
use crate::state::AppState;

type Answer = (Response, u64);

fn text(status: StatusCode, body: String) -> Answer {
    let n = body.len() as u64;
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    (resp, n)
}

fn typed(body: String, content_type: &'static str) -> Answer {
    let n = body.len() as u64;
    let mut resp = Response::new(Body::from(body));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Admin pages hold host names: not for shared caches.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (resp, n)
}

fn too_many(retry_after_secs: u64, why: &str) -> Answer {
    let (mut resp, n) = text(StatusCode::TOO_MANY_REQUESTS, format!("{why}\n"));
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    (resp, n)
}

fn no_store() -> Answer {
    text(
        StatusCode::NOT_FOUND,
        "not found: this server keeps no fleet store (start it with --state-dir or --fleet-db)\n"
            .into(),
    )
}

fn store_error(e: &super::FleetError) -> Answer {
    tracing::warn!(error = %e, "fleet store error");
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "fleet store unavailable\n".into(),
    )
}

pub(crate) async fn checkin(state: &AppState, parts: &Parts, body: Body, peer: IpAddr) -> Answer {
    let s = &*state.0;
    let Some(fleet) = &s.fleet else {
        return no_store();
    };
    if let Some(l) = &fleet.per_ip {
        if let crate::ratelimit::Decision::Deny { retry_after_secs } = l.check(peer, Instant::now())
        {
            return too_many(retry_after_secs, "too many check-ins from this address");
        }
    }
    if parts.method != Method::POST {
        let (mut resp, n) = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
        resp.headers_mut()
            .insert(axum::http::header::ALLOW, HeaderValue::from_static("POST"));
        return (resp, n);
    }
    if let Some(tokens) = &s.tokens {
        if !tokens.allows(parts.headers.get(AUTHORIZATION)) {
            let (mut resp, n) = text(StatusCode::UNAUTHORIZED, "unauthorized\n".into());
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"vigil\""),
            );
            return (resp, n);
        }
    }
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BYTES as u64) {
        return too_large();
    }
    // Chunked (or lying) bodies: read at most one byte past the cap.
    let mut bytes = Vec::with_capacity(declared.map_or(1024, |n| n as usize));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return text(StatusCode::BAD_REQUEST, "unreadable body\n".into());
        };
        if bytes.len() + chunk.len() > MAX_BYTES {
            return too_large();
        }
        bytes.extend_from_slice(&chunk);
    }
    let c = match CheckIn::parse(&bytes) {
        Ok(c) => c,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    if let Some(l) = &fleet.per_client {
        if let Err(wait) = l.check(&c.client_id, Instant::now()) {
            return too_many(wait, "this client checked in too recently");
        }
    }
    let now = super::now();
    fleet.forget_if_due(now).await;
    match fleet.store.record(&c, now).await {
        Ok(()) => {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            (resp, 0)
        }
        Err(e) => store_error(&e),
    }
}

fn too_large() -> Answer {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("check-in over the {MAX_BYTES}-byte limit\n"),
    )
}

/// `Some(refusal)` unless the request carries an admin token.
fn admin_refusal(fleet: &Fleet, parts: &Parts) -> Option<Answer> {
    let Some(tokens) = &fleet.admin else {
        return Some(text(
            StatusCode::FORBIDDEN,
            "forbidden: no admin tokens are configured; start vigil-server with \
             --admin-tokens FILE (hashes made by `vigil-server hash-token`) to read the fleet\n"
                .into(),
        ));
    };
    if tokens.allows_admin(parts.headers.get(AUTHORIZATION)) {
        return None;
    }
    let (mut resp, n) = text(StatusCode::UNAUTHORIZED, "unauthorized\n".into());
    // Basic, so that a browser asks for the token (any user name, the token as password).
    resp.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"vigil fleet\", charset=\"UTF-8\""),
    );
    Some((resp, n))
}

pub(crate) async fn admin(state: &AppState, parts: &Parts, page: FleetPage) -> Answer {
    let s = &*state.0;
    let Some(fleet) = &s.fleet else {
        return no_store();
    };
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let (mut resp, n) = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
        resp.headers_mut().insert(
            axum::http::header::ALLOW,
            HeaderValue::from_static("GET, HEAD"),
        );
        return (resp, n);
    }
    if let Some(refused) = admin_refusal(fleet, parts) {
        return refused;
    }
    let q = parts.uri.query().unwrap_or("");
    let now = super::now();
    fleet.forget_if_due(now).await;
    if page == FleetPage::Health {
        let hq = match query::health(q, now) {
            Ok(hq) => hq,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        };
        return match fleet.store.health(&hq).await {
            Ok(h) => typed(
                serde_json::to_string_pretty(&h).unwrap_or_default(),
                "application/json",
            ),
            Err(e) => store_error(&e),
        };
    }
    let stale_hours = match query::stale_hours(q) {
        Ok(h) => h,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let releases = releases::load(s).await;
    if page == FleetPage::Csv {
        return compliance(fleet, releases, now);
    }
    let sum = match summary::build(&*fleet.store, releases, stale_hours, now).await {
        Ok(sum) => sum,
        Err(e) => return store_error(&e),
    };
    match page {
        FleetPage::Console => typed(console::render(&sum), "text/html; charset=utf-8"),
        _ => typed(
            serde_json::to_string_pretty(&sum).unwrap_or_default(),
            "application/json",
        ),
    }
}

/// Hosts per page of the CSV.
const CSV_PAGE: i64 = 2000;

/// Streams every host, a page at a time, in client id order. A store error midway cuts the
/// response (the client sees an incomplete body rather than a report that looks whole).
fn compliance(fleet: &Fleet, releases: Vec<releases::ReleaseView>, now: i64) -> Answer {
    let offered = releases::offered(&releases);
    let store = fleet.store.clone();
    let pages = futures::stream::unfold(Some(String::new()), move |after| {
        let store = store.clone();
        let releases = releases.clone();
        let offered = offered.clone();
        async move {
            let after = after?;
            match store.hosts_page(&after, CSV_PAGE).await {
                Ok(hosts) => {
                    let next = (hosts.len() as i64 == CSV_PAGE)
                        .then(|| hosts.last().map(|h| h.client_id.clone()))
                        .flatten();
                    let mut out = String::with_capacity(hosts.len() * 200);
                    for h in &hosts {
                        let off = offered
                            .iter()
                            .find(|(c, _)| *c == h.channel)
                            .map(|(_, v)| *v);
                        out.push_str(&csv::row(h, &releases, off, now));
                    }
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(out)), next))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fleet store error while writing the CSV");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    let head =
        futures::stream::once(async { Ok(bytes::Bytes::from_static(csv::HEADER.as_bytes())) });
    let mut resp = Response::new(Body::from_stream(head.chain(pages)));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        axum::http::header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"vigil-compliance.csv\""),
    );
    (resp, 0)
}
