//! What the HTTP outputs (webhook, Slack) share: the client (rustls with the aws-lc-rs
//! provider, as the updater; no redirects, since a signed POST must not be replayed elsewhere
//! or turned into a GET), reading a credential from a file or the environment, Retry-After
//! (seconds or an HTTP date), and the status codes turned into retry, reject or fatal.

use std::path::Path;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;

use crate::error::OutputError;
use crate::sink::SendError;

pub(crate) fn client(name: &str, timeout_secs: u64) -> Result<reqwest::Client, OutputError> {
    // Another part of the program may have installed it first: either way one is in place.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let timeout = Duration::from_secs(timeout_secs.max(1));
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| OutputError::Setup {
            name: name.to_owned(),
            message: format!("HTTP client: {e}"),
        })
}

/// A credential from `file` (read now; surrounding whitespace, e.g. a trailing newline, is
/// trimmed) or the environment variable `env`.
pub(crate) fn credential(
    name: &str,
    what: &str,
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<String, OutputError> {
    let setup = |message: String| OutputError::Setup {
        name: name.to_owned(),
        message,
    };
    let value = match (file, env) {
        (Some(f), _) => std::fs::read_to_string(f)
            .map_err(|e| setup(format!("{what} file {}: {e}", f.display())))?,
        (None, Some(v)) => std::env::var(v)
            .map_err(|_| setup(format!("{what}: environment variable {v} is not set")))?,
        (None, None) => return Err(setup(format!("no {what} configured"))),
    };
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Err(setup(format!("{what} is empty")));
    }
    Ok(value)
}

/// A Retry-After header value: delta-seconds or an HTTP date (a date in the past is zero).
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

pub(crate) fn retry_after_of(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, SystemTime::now()))
}

/// How a non-2xx answer about one record is handled.
pub(crate) enum Verdict {
    /// This record is wrong (400, 413, 422): counted, logged, skipped.
    Reject(String),
    Fail(SendError),
}

/// 408, 429 and 5xx are retried (honouring Retry-After); 400, 413 and 422 reject the one
/// record; anything else (401, 403, 404, 410, a redirect) is the output's configuration,
/// retried only at the longest back-off. A 404 is not a rejection: a mistyped URL must not
/// discard every finding.
pub(crate) fn classify(status: StatusCode, after: Option<Duration>, detail: &str) -> Verdict {
    let reason = if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    };
    match status {
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
            Verdict::Fail(SendError::Retry { reason, after })
        }
        s if s.is_server_error() => Verdict::Fail(SendError::Retry { reason, after }),
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNPROCESSABLE_ENTITY => Verdict::Reject(reason),
        _ => Verdict::Fail(SendError::Fatal(reason)),
    }
}

/// A network failure (connect, timeout, reset): retried. The message never carries the URL:
/// reqwest's own Display names it, and a Slack incoming-webhook URL is a credential that must
/// not reach logs or the outbox's status files.
pub(crate) fn network(e: &reqwest::Error) -> SendError {
    let mut reason = String::from(if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else {
        "the request failed"
    });
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        src = s.source();
    }
    SendError::Retry {
        reason,
        after: None,
    }
}

/// The first bytes of a response body, for error messages.
pub(crate) async fn snippet(resp: reqwest::Response) -> String {
    match resp.bytes().await {
        Ok(b) => String::from_utf8_lossy(&b[..b.len().min(200)])
            .trim()
            .to_owned(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }
}
