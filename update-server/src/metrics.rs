//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format.
//!
//! - `vigil_http_requests_total{route,status}`: `route` is metadata, targets, health, metrics,
//!   fleet_checkin (check-ins by status: 204 stored, 400, 401, 413, 429), fleet_admin or other
//!   (bad paths and unknown prefixes), so label cardinality stays fixed.
//! - `vigil_http_response_bytes_total{route}`: body bytes of the responses (their
//!   Content-Length; a download the client abandons still counts whole).
//! - `vigil_http_request_duration_seconds{route}`: time to the response headers.
//! - `vigil_backend_errors_total`: storage failures, including ones in the middle of a stream.
//! - `vigil_cache_requests_total{cache,result}`: hits and misses of the in-memory caches
//!   (`metadata`, `blob`, `negative`).
//! - `vigil_storage_reads_total{op}`: requests the server made to storage (`head`, `get`,
//!   `stream`), so the effect of the caches, single flight and the health cache on the
//!   backend (on S3: the bill) can be watched.
//! - `vigil_connections_open`: connections being served (at most `max_connections`).
//! - `vigil_connections_dropped_total{reason}`: connections the server closed on a limit:
//!   `header_timeout` (no complete request head in time, or idle keep-alive),
//!   `client_stalled` (took no bytes of a response for the request timeout), `drain_timeout`
//!   (still open when the drain after SIGTERM ended).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    result: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    bytes: Family<RouteLabels, Counter>,
    latency: HistogramFamily,
    backend_errors: Counter,
    cache: Family<CacheLabels, Counter>,
    storage_reads: Family<OpLabels, Counter>,
    connections_open: Gauge,
    connections_dropped: Family<ReasonLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~26 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vigil");
        let requests = Family::<RequestLabels, Counter>::default();
        let bytes = Family::<RouteLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let backend_errors = Counter::default();
        let cache = Family::<CacheLabels, Counter>::default();
        let storage_reads = Family::<OpLabels, Counter>::default();
        let connections_open = Gauge::default();
        let connections_dropped = Family::<ReasonLabels, Counter>::default();
        // Present from the start, so a scrape can tell "none yet" from "not exported".
        for op in ["head", "get", "stream"] {
            drop(storage_reads.get_or_create(&OpLabels { op }));
        }
        for reason in ["header_timeout", "client_stalled", "drain_timeout"] {
            drop(connections_dropped.get_or_create(&ReasonLabels { reason }));
        }
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_response_bytes",
            "Response body bytes by route",
            bytes.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers",
            latency.clone(),
        );
        registry.register(
            "backend_errors",
            "Failed storage operations",
            backend_errors.clone(),
        );
        registry.register(
            "cache_requests",
            "In-memory cache lookups by cache and result",
            cache.clone(),
        );
        registry.register(
            "storage_reads",
            "Requests made to storage, by operation",
            storage_reads.clone(),
        );
        registry.register(
            "connections_open",
            "Connections being served",
            connections_open.clone(),
        );
        registry.register(
            "connections_dropped",
            "Connections closed by the server on a limit, by reason",
            connections_dropped.clone(),
        );
        Self {
            registry,
            requests,
            bytes,
            latency,
            backend_errors,
            cache,
            storage_reads,
            connections_open,
            connections_dropped,
        }
    }

    pub fn record(&self, route: &'static str, status: u16, bytes: u64, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        let labels = RouteLabels { route };
        if bytes > 0 {
            self.bytes.get_or_create(&labels).inc_by(bytes);
        }
        self.latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn backend_error(&self) {
        self.backend_errors.inc();
    }

    pub fn cache(&self, cache: &'static str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache
            .get_or_create(&CacheLabels { cache, result })
            .inc();
    }

    /// `op`: head, get or stream.
    pub fn storage_read(&self, op: &'static str) {
        self.storage_reads.get_or_create(&OpLabels { op }).inc();
    }

    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// `reason`: one of those listed in the module documentation.
    pub fn connection_dropped(&self, reason: &'static str) {
        self.connections_dropped
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear() {
        let m = Metrics::new();
        m.record("metadata", 200, 123, Duration::from_millis(2));
        m.record("metadata", 200, 7, Duration::from_millis(2));
        m.backend_error();
        m.storage_read("get");
        let text = m.encode();
        assert!(
            text.contains("vigil_http_requests_total{route=\"metadata\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("vigil_http_response_bytes_total{route=\"metadata\"} 130"));
        assert!(text.contains("vigil_backend_errors_total 1"));
        assert!(
            text.contains("vigil_storage_reads_total{op=\"get\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vigil_storage_reads_total{op=\"head\"} 0"),
            "{text}"
        );
        assert!(text.contains("vigil_http_request_duration_seconds_count{route=\"metadata\"} 2"));
        assert!(text.contains("vigil_connections_open 0"), "{text}");
        assert!(
            text.contains("vigil_connections_dropped_total{reason=\"client_stalled\"} 0"),
            "{text}"
        );
    }
}
