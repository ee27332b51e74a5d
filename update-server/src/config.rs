//! Settings, from a TOML file (every key optional) with command-line flags on top.
//!
//! ```toml
//! repo = "/srv/vigil"            # or "s3://bucket/prefix"
//! listen = "0.0.0.0:8080"
//! tokens_file = "/etc/vigil/tokens"   # private feed: hashes of accepted bearer tokens
//! log_format = "json"            # "text" (default) or "json"
//! log_level = "info"             # RUST_LOG and --log-level take precedence
//! access_log = true
//! timestamp_max_age_s = 60       # Cache-Control max-age of timestamp.json
//! metadata_cache_ms = 1000       # in-memory life of timestamp.json and "not found" answers
//! health_cache_ms = 1000         # /healthz asks storage at most this often
//! immutable_cache_s = 3600       # in-memory life of versioned metadata and blobs
//! metadata_cache_mb = 32
//! blob_cache_mb = 64             # 0 disables; blobs over 1/8 of it are always streamed
//! drain_timeout_s = 30
//! header_read_timeout_s = 10     # 0 disables; also closes idle keep-alive connections
//! request_timeout_s = 60         # 0 disables; see `Config::request_timeout_s`
//! max_connections = 1024         # 0: no cap
//!
//! state_dir = "/var/lib/vigil-server"  # fleet check-ins in STATE_DIR/fleet.sqlite3
//! fleet_db = "postgres://vigil@db:5432/vigil"  # instead: PostgreSQL, for several replicas
//! admin_tokens_file = "/etc/vigil/admin-tokens"  # hashes of tokens for the fleet's reads
//!
//! [fleet]                        # check-in limits; 0 disables each
//! checkin_interval_s = 1         # one check-in per client id per this many seconds
//! requests_per_second = 100      # per address: generous, for fleets behind one NAT
//! burst = 1000
//! forget_after_s = 2592000       # hosts not seen for 30 days are forgotten; 0 keeps them
//!
//! [rate_limit]                   # per client IP (IPv6: per /64); 0 in either disables
//! requests_per_second = 20
//! burst = 100
//!
//! [s3]
//! endpoint = "http://127.0.0.1:9000"
//! path_style = true
//! region = "us-east-1"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Error;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// A directory or `s3://bucket/prefix`.
    pub repo: Option<String>,
    pub listen: String,
    pub tokens_file: Option<PathBuf>,
    pub log_format: LogFormat,
    pub log_level: Option<String>,
    pub access_log: bool,
    pub timestamp_max_age_s: u64,
    pub metadata_cache_ms: u64,
    pub health_cache_ms: u64,
    pub immutable_cache_s: u64,
    pub metadata_cache_mb: u64,
    pub blob_cache_mb: u64,
    pub drain_timeout_s: u64,
    /// A connection must deliver a request's whole head (line and headers) within this many
    /// seconds of its first byte being awaited, else it is closed; an idle keep-alive
    /// connection is closed after as long. Bounds what a client that trickles its headers
    /// (slowloris), or sends nothing, can hold. 0 disables.
    pub header_read_timeout_s: u64,
    /// The longest vigil-server waits on either side while answering, so that no request can
    /// hang: for the response head (storage lookups; past it the answer is 504), for the next
    /// piece of a body streamed from storage, and for a client to take any bytes of a response
    /// it is sending. Each wait starts afresh whenever bytes move, so a long download that
    /// keeps moving is never cut, however long it takes; one that stalls is (as nginx's
    /// `send_timeout`). 0 disables.
    pub request_timeout_s: u64,
    /// Connections served at once. At the cap, vigil-server stops accepting: new connections
    /// wait in the kernel's listen backlog until one closes, and those in flight are
    /// untouched. 0: no cap.
    pub max_connections: usize,
    pub rate_limit: RateLimitConfig,
    pub s3: S3Config,
    /// Fleet check-ins in `STATE_DIR/fleet.sqlite3`.
    pub state_dir: Option<PathBuf>,
    /// `postgres://...`: the fleet store in PostgreSQL instead (wins over `state_dir`).
    pub fleet_db: Option<String>,
    /// Hashes of the tokens that may read the fleet (same format as `tokens_file`).
    pub admin_tokens_file: Option<PathBuf>,
    pub fleet: FleetConfig,
}

/// Limits on check-ins (`POST /fleet/checkin`), apart from the general per-address limit.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// One check-in per client id per this many seconds; 0 disables.
    pub checkin_interval_s: u64,
    /// Check-ins per second per address, and the burst; 0 in either disables.
    pub requests_per_second: f64,
    pub burst: u32,
    /// Hosts not seen for this many seconds are forgotten (terminated instances would
    /// otherwise stay in the console and the compliance report as silent forever); 0 keeps
    /// them. Default 30 days.
    pub forget_after_s: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        // A client checks in after each update check (minutes apart); ten thousand hosts
        // behind one NAT checking in every five minutes are about 33 a second.
        Self {
            checkin_interval_s: 1,
            requests_per_second: 100.0,
            burst: 1000,
            forget_after_s: 30 * 86_400,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub requests_per_second: f64,
    pub burst: u32,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub region: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            repo: None,
            listen: "127.0.0.1:8080".into(),
            tokens_file: None,
            log_format: LogFormat::Text,
            log_level: None,
            access_log: true,
            timestamp_max_age_s: 60,
            metadata_cache_ms: 1000,
            health_cache_ms: 1000,
            immutable_cache_s: 3600,
            metadata_cache_mb: 32,
            blob_cache_mb: 64,
            drain_timeout_s: 30,
            // A real client sends its whole head in one packet; 10 s leaves room for a slow
            // link and frees an idle keep-alive slot soon enough under a connection flood.
            header_read_timeout_s: 10,
            // nginx's send_timeout: a minute without any progress is a stuck peer, not a slow
            // one.
            request_timeout_s: 60,
            // Memory per idle connection is a few KiB, per download a 256 KiB chunk: 1024 stay
            // well under 1 GiB even if every one is streaming. Each takes a file descriptor and
            // a download from a directory a second; the program raises the soft open-file limit
            // to fit (the usual 1024 would not).
            max_connections: 1024,
            rate_limit: RateLimitConfig::default(),
            s3: S3Config::default(),
            state_dir: None,
            fleet_db: None,
            admin_tokens_file: None,
            fleet: FleetConfig::default(),
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        // Generous for an updater (a few requests a minute) yet stops one client from
        // monopolising the server; a NAT of many hosts may need more.
        Self {
            requests_per_second: 20.0,
            burst: 100,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::ConfigParse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_s)
    }

    /// `None`: disabled.
    pub fn header_read_timeout(&self) -> Option<Duration> {
        secs_or_off(self.header_read_timeout_s)
    }

    /// `None`: disabled.
    pub fn request_timeout(&self) -> Option<Duration> {
        secs_or_off(self.request_timeout_s)
    }

    /// `None`: no cap.
    pub fn max_connections(&self) -> Option<usize> {
        (self.max_connections > 0).then_some(self.max_connections)
    }
}

fn secs_or_off(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file() {
        let c = Config::parse(
            r#"
            repo = "s3://b-1/p"
            listen = "0.0.0.0:1"
            log_format = "json"
            blob_cache_mb = 0
            header_read_timeout_s = 3
            request_timeout_s = 0
            max_connections = 2
            [rate_limit]
            requests_per_second = 0.5
            burst = 3
            [s3]
            path_style = true
            "#,
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.repo.as_deref(), Some("s3://b-1/p"));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.blob_cache_mb, 0);
        assert_eq!(c.rate_limit.burst, 3);
        assert!(c.s3.path_style);
        assert_eq!(c.header_read_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(c.request_timeout(), None, "0 disables");
        assert_eq!(c.max_connections(), Some(2));
        assert_eq!(c.metadata_cache_ms, 1000, "defaults fill the rest");
    }

    #[test]
    fn connection_limits_are_on_by_default() {
        let c = Config::default();
        assert_eq!(c.header_read_timeout(), Some(Duration::from_secs(10)));
        assert_eq!(c.request_timeout(), Some(Duration::from_secs(60)));
        assert_eq!(c.max_connections(), Some(1024));
        assert_eq!(
            Config {
                max_connections: 0,
                ..c
            }
            .max_connections(),
            None
        );
    }

    #[test]
    fn fleet_keys() {
        let c = Config::parse(
            "state_dir = \"/var/lib/v\"\nadmin_tokens_file = \"/etc/a\"\n\
             [fleet]\ncheckin_interval_s = 0\nburst = 5\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.state_dir.as_deref(), Some(Path::new("/var/lib/v")));
        assert_eq!(c.fleet.checkin_interval_s, 0);
        assert_eq!(c.fleet.burst, 5);
        assert_eq!(c.fleet.requests_per_second, 100.0, "defaults fill the rest");
        assert!(c.fleet_db.is_none());
        assert!(Config::parse("[fleet]\ninterval = 1\n", Path::new("c.toml")).is_err());
    }

    #[test]
    fn typos_are_errors() {
        let e = Config::parse("blob_cache = 1\n", Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("blob_cache"), "{e}");
        assert!(Config::parse("[rate_limit]\nrps = 1\n", Path::new("c.toml")).is_err());
    }
}
