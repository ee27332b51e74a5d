//! The seam between the fleet endpoints and where check-ins live: the [`FleetStore`] trait,
//! the rows it returns, and the SQL both backends share (written with SQLite's `?N`
//! placeholders; the PostgreSQL backend turns them into `$N`).
//!
//! One row per client (its latest check-in, upserted by `client_id`) plus a bounded table of
//! recent update failures. Every aggregate is computed in SQL, and every list is cut to a
//! fixed length with its total beside it, so the console costs the same at 100 hosts and at
//! 100,000.

use serde::Serialize;
use thiserror::Error;
use vigil_fleet::{CheckIn, VersionHealth};

/// Rows kept in the failures table; older ones are deleted as new ones arrive.
pub const MAX_FAILURE_ROWS: i64 = 1000;
/// Hosts listed per section of the summary (stale, findings).
pub const LIST_LIMIT: i64 = 100;
/// Recent update failures in the summary.
pub const FAILURE_LIMIT: i64 = 50;

#[derive(Debug, Error)]
pub enum FleetError {
    #[error("fleet store: {0}")]
    Backend(String),
}

/// What the health endpoint asks; see `vigil_fleet::health` for each count's definition.
#[derive(Clone, Debug)]
pub struct HealthQuery {
    pub channel: String,
    pub version: i64,
    pub since: i64,
    pub silent_after_secs: u64,
    pub now: i64,
}

impl HealthQuery {
    /// Clients last seen before this are silent.
    pub fn silent_before(&self) -> i64 {
        self.now
            .saturating_sub(i64::try_from(self.silent_after_secs).unwrap_or(i64::MAX))
    }
}

/// What the summary needs from the repository, decided by the caller (the store knows no
/// releases).
#[derive(Clone, Debug, Default)]
pub struct OverviewQuery {
    /// Hosts last seen before this are silent (and so stale).
    pub stale_before: i64,
    /// Versions published at or after `stale_before`: a host running any other version (or
    /// none) has definitions older than the limit.
    pub fresh_versions: Vec<i64>,
    /// Per channel, the newest version offered to every client: hosts below it are behind.
    pub offered: Vec<(String, i64)>,
}

/// A host: its latest check-in, flattened, and what the server stamped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Host {
    pub client_id: String,
    pub hostname: String,
    pub instance_id: Option<String>,
    pub channel: String,
    pub ring: Option<String>,
    pub installed_version: Option<i64>,
    pub installed_sha256: Option<String>,
    pub engine_version: i64,
    pub update_result: String,
    pub update_at: i64,
    pub update_version: Option<i64>,
    pub update_message: Option<String>,
    pub scan_at: Option<i64>,
    pub scanned: Option<i64>,
    pub infected: Option<i64>,
    pub errors: Option<i64>,
    /// Server clock: first and latest check-in, and when the installed version last changed.
    pub first_seen: i64,
    pub last_seen: i64,
    pub installed_since: i64,
}

/// The columns of [`Host`], in its field order, for every SELECT of hosts.
pub const HOST_COLUMNS: &str = "client_id, hostname, instance_id, channel, ring, \
    installed_version, installed_sha256, engine_version, update_result, update_at, \
    update_version, update_message, scan_at, scanned, infected, errors, first_seen, last_seen, \
    installed_since";

/// One update failure as a host reported it (kept in order of arrival).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Server clock.
    pub at: i64,
    pub client_id: String,
    pub hostname: String,
    pub channel: String,
    pub version: Option<i64>,
    pub result: String,
    pub message: Option<String>,
}

/// Hosts per channel and installed version (`None`: no database installed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionCount {
    pub channel: String,
    pub version: Option<i64>,
    pub hosts: i64,
}

/// Everything the console, `/api/fleet` and their totals need, from the store.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overview {
    pub hosts: i64,
    pub versions: Vec<VersionCount>,
    pub stale_total: i64,
    /// The first [`LIST_LIMIT`] stale hosts, longest silent first.
    pub stale: Vec<Host>,
    /// Of the stale hosts, those that have not checked in since `stale_before`.
    pub silent_total: i64,
    /// Per channel, hosts below the version it offers to everyone.
    pub behind: Vec<(String, i64)>,
    pub failures: Vec<Failure>,
    pub with_findings: i64,
    /// The first [`LIST_LIMIT`] hosts by infected files found in their last scan.
    pub findings: Vec<Host>,
}

/// Where the fleet's check-ins live. Implementations: [`super::sqlite`] (one server) and
/// [`super::postgres`] (replicas sharing one database); the same queries, the same answers.
#[async_trait::async_trait]
pub trait FleetStore: Send + Sync + std::fmt::Debug {
    /// Upserts `c` as its client's latest check-in, received at `now` (server clock), and
    /// records a failed update once (not again when the same failure is repeated).
    async fn record(&self, c: &CheckIn, now: i64) -> Result<(), FleetError>;
    async fn health(&self, q: &HealthQuery) -> Result<VersionHealth, FleetError>;
    async fn overview(&self, q: &OverviewQuery) -> Result<Overview, FleetError>;
    /// Up to `limit` hosts with `client_id` after `after`, in `client_id` order: the CSV
    /// walks the whole table a page at a time.
    async fn hosts_page(&self, after: &str, limit: i64) -> Result<Vec<Host>, FleetError>;
    /// Deletes the hosts last seen before `seen_before` (instances terminated long ago);
    /// returns how many.
    async fn forget(&self, seen_before: i64) -> Result<u64, FleetError>;
    /// For the startup log: "sqlite /var/lib/vigil/fleet.sqlite3", "postgres db@host".
    fn describe(&self) -> String;
}

/// The values a check-in writes that need converting for SQL.
pub(crate) struct Row<'a> {
    pub c: &'a CheckIn,
}

impl Row<'_> {
    pub fn installed_version(&self) -> Option<i64> {
        self.c
            .installed
            .as_ref()
            .and_then(|i| i64::try_from(i.version).ok())
    }
    pub fn update_version(&self) -> Option<i64> {
        self.c
            .last_update
            .version
            .and_then(|v| i64::try_from(v).ok())
    }
    pub fn scan(&self) -> (Option<i64>, Option<i64>, Option<i64>, Option<i64>) {
        // Counts are checked to fit in i64 by `CheckIn::validate`.
        let c = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        match &self.c.last_scan {
            Some(s) => (
                Some(s.at),
                Some(c(s.scanned)),
                Some(c(s.infected)),
                Some(c(s.errors)),
            ),
            None => (None, None, None, None),
        }
    }
    pub fn is_failure(&self) -> bool {
        self.c.last_update.result.is_failure()
    }
}

pub(crate) const FORGET: &str = "DELETE FROM hosts WHERE last_seen < ?1";

pub(crate) const SCHEMA_HOSTS: &str = "CREATE TABLE IF NOT EXISTS hosts (
    client_id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    instance_id TEXT,
    channel TEXT NOT NULL,
    ring TEXT,
    installed_version BIGINT,
    installed_sha256 TEXT,
    engine_version BIGINT NOT NULL,
    update_result TEXT NOT NULL,
    update_at BIGINT NOT NULL,
    update_version BIGINT,
    update_message TEXT,
    scan_at BIGINT,
    scanned BIGINT,
    infected BIGINT,
    errors BIGINT,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    installed_since BIGINT NOT NULL
)";

pub(crate) const SCHEMA_INDEXES: [&str; 3] = [
    "CREATE INDEX IF NOT EXISTS hosts_channel_version ON hosts (channel, installed_version)",
    "CREATE INDEX IF NOT EXISTS hosts_last_seen ON hosts (last_seen)",
    "CREATE INDEX IF NOT EXISTS hosts_infected ON hosts (infected)",
];

/// `?20`: whether the new check-in reports a failure. The row's previous `update_at` and
/// `update_result` are read first, so a host repeating its last failure at every check is
/// recorded once.
pub(crate) const UPSERT: &str = "INSERT INTO hosts (client_id, hostname, instance_id, channel, \
    ring, installed_version, installed_sha256, engine_version, update_result, update_at, \
    update_version, update_message, scan_at, scanned, infected, errors, first_seen, last_seen, \
    installed_since) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
    ?16, ?17, ?17, ?17) \
    ON CONFLICT (client_id) DO UPDATE SET hostname = excluded.hostname, \
    instance_id = excluded.instance_id, channel = excluded.channel, ring = excluded.ring, \
    installed_since = CASE WHEN hosts.installed_version IS NOT DISTINCT FROM \
        excluded.installed_version THEN hosts.installed_since ELSE excluded.installed_since END, \
    installed_version = excluded.installed_version, \
    installed_sha256 = excluded.installed_sha256, engine_version = excluded.engine_version, \
    update_result = excluded.update_result, update_at = excluded.update_at, \
    update_version = excluded.update_version, update_message = excluded.update_message, \
    scan_at = excluded.scan_at, scanned = excluded.scanned, infected = excluded.infected, \
    errors = excluded.errors, last_seen = excluded.last_seen";

pub(crate) const TRIM_FAILURES: &str =
    "DELETE FROM failures WHERE id <= (SELECT max(id) FROM failures) - 1000";

/// `?1` channel, `?2` version, `?3` since, `?4` silent before.
pub(crate) const HEALTH_COUNTS: &str = "SELECT \
    count(*) FILTER (WHERE last_seen >= ?3 AND (installed_version = ?2 OR update_version = ?2)), \
    count(*) FILTER (WHERE last_seen >= ?3 AND update_version = ?2 \
        AND update_result IN ('smoke_test', 'load')), \
    count(*) FILTER (WHERE installed_version = ?2), \
    count(*) FILTER (WHERE installed_version = ?2 AND last_seen < ?4), \
    count(*) FILTER (WHERE installed_version <> ?2), \
    count(*) FILTER (WHERE installed_version <> ?2 AND last_seen < ?4) \
    FROM hosts WHERE channel = ?1";

/// `?1` channel, `?2` version, `?3` since.
pub(crate) const HEALTH_FAILURES: &str = "SELECT client_id, hostname, update_result, \
    update_message, last_seen FROM hosts WHERE channel = ?1 AND last_seen >= ?3 \
    AND update_version = ?2 AND update_result IN ('smoke_test', 'load') \
    ORDER BY last_seen DESC, client_id LIMIT 20";

/// `?1` channel, `?2` version, `?3` silent before.
pub(crate) const HEALTH_SILENT: &str = "SELECT client_id, hostname, update_result, \
    update_message, last_seen FROM hosts WHERE channel = ?1 AND installed_version = ?2 \
    AND last_seen < ?3 ORDER BY last_seen, client_id LIMIT 20";

pub(crate) const COUNT_HOSTS: &str = "SELECT count(*) FROM hosts";
pub(crate) const VERSIONS: &str = "SELECT channel, installed_version, count(*) FROM hosts \
    GROUP BY channel, installed_version ORDER BY channel, installed_version DESC";
pub(crate) const COUNT_SILENT: &str = "SELECT count(*) FROM hosts WHERE last_seen < ?1";
pub(crate) const COUNT_BEHIND: &str = "SELECT count(*) FROM hosts WHERE channel = ?1 \
    AND (installed_version IS NULL OR installed_version < ?2)";
pub(crate) const RECENT_FAILURES: &str = "SELECT at, client_id, hostname, channel, version, \
    result, message FROM failures ORDER BY id DESC LIMIT 50";
pub(crate) const COUNT_FINDINGS: &str = "SELECT count(*) FROM hosts WHERE infected > 0";

/// The condition for a stale host, `?1` = stale_before. The fresh versions are integers the
/// server parsed itself, so they are written into the SQL (an `IN` list of any length).
pub(crate) fn stale_condition(fresh: &[i64]) -> String {
    let fresh = if fresh.is_empty() {
        "1 = 0".to_owned()
    } else {
        let list: Vec<String> = fresh.iter().map(i64::to_string).collect();
        format!("installed_version IN ({})", list.join(", "))
    };
    format!("(last_seen < ?1 OR installed_version IS NULL OR NOT ({fresh}))")
}

pub(crate) fn count_stale(fresh: &[i64]) -> String {
    format!(
        "SELECT count(*) FROM hosts WHERE {}",
        stale_condition(fresh)
    )
}

pub(crate) fn list_stale(fresh: &[i64]) -> String {
    format!(
        "SELECT {HOST_COLUMNS} FROM hosts WHERE {} ORDER BY last_seen, client_id LIMIT {LIST_LIMIT}",
        stale_condition(fresh)
    )
}

pub(crate) fn list_findings() -> String {
    format!(
        "SELECT {HOST_COLUMNS} FROM hosts WHERE infected > 0 \
         ORDER BY infected DESC, client_id LIMIT {LIST_LIMIT}"
    )
}

pub(crate) fn hosts_page() -> String {
    format!("SELECT {HOST_COLUMNS} FROM hosts WHERE client_id > ?1 ORDER BY client_id LIMIT ?2")
}

/// `?1` client_id.
pub(crate) const PREVIOUS_UPDATE: &str =
    "SELECT update_at, update_result FROM hosts WHERE client_id = ?1";

pub(crate) const INSERT_FAILURE: &str = "INSERT INTO failures (at, client_id, hostname, \
    channel, version, result, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
