//! `/healthz`: 200 when storage answers a HEAD of `metadata/timestamp.json` within 5 s (the
//! repository is reachable and has been published), 503 otherwise (including an empty,
//! never-published repository), so a load balancer sends clients elsewhere.
//!
//! The verdict is kept in memory for `health_cache_ms` and probes are single-flight, so storage
//! sees at most one probe per interval however many probes arrive: on S3 each would otherwise
//! be a billed request that any client could trigger at will. A verdict is never older than
//! the interval plus one probe, so the meaning is unchanged: an unreadable repository turns
//! `/healthz` to 503 within about a second.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use vigil_repository::layout;

use crate::flight::Flights;
use crate::state::Inner;

/// How long a probe may take before the storage counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Missing,
    StorageError,
    TimedOut,
}

impl Verdict {
    pub fn healthy(self) -> bool {
        self == Verdict::Ok
    }

    pub fn text(self) -> &'static str {
        match self {
            Verdict::Ok => "ok\n",
            Verdict::Missing => "metadata/timestamp.json is missing\n",
            Verdict::StorageError => "storage error\n",
            Verdict::TimedOut => "storage timed out\n",
        }
    }
}

#[derive(Debug)]
pub struct Health {
    interval: Duration,
    last: Mutex<Option<(Instant, Verdict)>>,
    probes: Flights<Verdict>,
}

impl Health {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::new(None),
            probes: Flights::default(),
        }
    }

    fn remembered(&self, now: Instant) -> Option<Verdict> {
        let last = match self.last.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        };
        last.filter(|(at, _)| now.saturating_duration_since(*at) < self.interval)
            .map(|(_, v)| v)
    }

    fn remember(&self, at: Instant, verdict: Verdict) {
        let mut last = match self.last.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *last = Some((at, verdict));
    }
}

/// The current verdict: from memory, or from one probe shared by everyone asking meanwhile.
pub async fn check(s: &Inner) -> Verdict {
    if let Some(v) = s.health.remembered(Instant::now()) {
        return v;
    }
    s.health
        .probes
        .run("healthz", || async {
            // A probe that finished while we waited for the flight slot is good enough.
            let started = Instant::now();
            if let Some(v) = s.health.remembered(started) {
                return v;
            }
            let v = probe(s).await;
            s.health.remember(started, v);
            v
        })
        .await
}

async fn probe(s: &Inner) -> Verdict {
    match tokio::time::timeout(PROBE_TIMEOUT, s.head(layout::TIMESTAMP)).await {
        Ok(Ok(Some(_))) => Verdict::Ok,
        Ok(Ok(None)) => Verdict::Missing,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: storage error");
            Verdict::StorageError
        }
        Err(_) => {
            s.metrics.backend_error();
            tracing::warn!("health check: storage did not answer within 5 s");
            Verdict::TimedOut
        }
    }
}
