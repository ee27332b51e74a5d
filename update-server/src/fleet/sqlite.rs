//! The embedded fleet store: SQLite in `STATE_DIR/fleet.sqlite3`, for a single server.
//!
//! WAL mode with `synchronous = NORMAL`: a check-in commits without waiting for the disk (a
//! crash may lose the last moments of check-ins, which clients repeat at their next check),
//! and reads never block the writer. One connection writes and one reads, each behind a
//! mutex, and every call runs on tokio's blocking pool so the async workers never wait on
//! SQLite. Growth is bounded: one row per client, and at most
//! [`MAX_FAILURE_ROWS`](super::store::MAX_FAILURE_ROWS) failures.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use vigil_fleet::health::HostEvidence;
use vigil_fleet::{CheckIn, UpdateResult, VersionHealth};

use super::store::{self, *};

#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

fn err(e: impl std::fmt::Display) -> FleetError {
    FleetError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/fleet.sqlite3`; `dir` is created too.
    pub fn open(dir: &Path) -> Result<Self, FleetError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            err(format!(
                "cannot create state directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join("fleet.sqlite3");
        let open = || -> Result<Connection, FleetError> {
            let c = Connection::open(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
            c.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(err)?;
            c.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
            c.pragma_update(None, "synchronous", "NORMAL")
                .map_err(err)?;
            Ok(c)
        };
        let writer = open()?;
        writer
            .execute_batch(&format!(
                "{};\n{};\nCREATE TABLE IF NOT EXISTS failures (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    at BIGINT NOT NULL, client_id TEXT NOT NULL, hostname TEXT NOT NULL,
                    channel TEXT NOT NULL, version BIGINT, result TEXT NOT NULL, message TEXT);",
                store::SCHEMA_HOSTS,
                store::SCHEMA_INDEXES.join(";\n")
            ))
            .map_err(|e| err(format!("{}: creating the schema: {e}", path.display())))?;
        let reader = open()?;
        Ok(Self {
            path,
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    async fn with<T: Send + 'static>(
        conn: &Arc<Mutex<Connection>>,
        f: impl FnOnce(&mut Connection) -> Result<T, FleetError> + Send + 'static,
    ) -> Result<T, FleetError> {
        let conn = conn.clone();
        tokio::task::spawn_blocking(move || {
            // A poisoned lock means a panic mid-call; SQLite rolled the transaction back.
            let mut c = match conn.lock() {
                Ok(c) => c,
                Err(p) => p.into_inner(),
            };
            f(&mut c)
        })
        .await
        .map_err(err)?
    }
}

pub(crate) fn host_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Host> {
    Ok(Host {
        client_id: r.get(0)?,
        hostname: r.get(1)?,
        instance_id: r.get(2)?,
        channel: r.get(3)?,
        ring: r.get(4)?,
        installed_version: r.get(5)?,
        installed_sha256: r.get(6)?,
        engine_version: r.get(7)?,
        update_result: r.get(8)?,
        update_at: r.get(9)?,
        update_version: r.get(10)?,
        update_message: r.get(11)?,
        scan_at: r.get(12)?,
        scanned: r.get(13)?,
        infected: r.get(14)?,
        errors: r.get(15)?,
        first_seen: r.get(16)?,
        last_seen: r.get(17)?,
        installed_since: r.get(18)?,
    })
}

fn evidence(r: &rusqlite::Row<'_>) -> rusqlite::Result<HostEvidence> {
    let result: String = r.get(2)?;
    Ok(HostEvidence {
        client_id: r.get(0)?,
        hostname: r.get(1)?,
        // Stored from a parsed check-in, so it parses back.
        result: UpdateResult::parse(&result).unwrap_or(UpdateResult::Local),
        message: r.get(3)?,
        last_seen: r.get(4)?,
    })
}

#[async_trait::async_trait]
impl FleetStore for SqliteStore {
    async fn record(&self, c: &CheckIn, now: i64) -> Result<(), FleetError> {
        let c = c.clone();
        Self::with(&self.writer, move |conn| {
            let row = Row { c: &c };
            let tx = conn.transaction().map_err(err)?;
            let previous: Option<(i64, String)> = tx
                .query_row(store::PREVIOUS_UPDATE, [&c.client_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(err)?;
            let (scan_at, scanned, infected, errors) = row.scan();
            tx.execute(
                store::UPSERT,
                params![
                    c.client_id,
                    c.hostname,
                    c.instance_id,
                    c.channel,
                    c.ring,
                    row.installed_version(),
                    c.installed.as_ref().map(|i| i.sha256.clone()),
                    i64::from(c.engine_version),
                    c.last_update.result.as_str(),
                    c.last_update.at,
                    row.update_version(),
                    c.last_update.message,
                    scan_at,
                    scanned,
                    infected,
                    errors,
                    now,
                ],
            )
            .map_err(err)?;
            let repeated = previous.is_some_and(|(at, result)| {
                at == c.last_update.at && result == c.last_update.result.as_str()
            });
            if row.is_failure() && !repeated {
                tx.execute(
                    store::INSERT_FAILURE,
                    params![
                        now,
                        c.client_id,
                        c.hostname,
                        c.channel,
                        row.update_version(),
                        c.last_update.result.as_str(),
                        c.last_update.message,
                    ],
                )
                .map_err(err)?;
                tx.execute(store::TRIM_FAILURES, []).map_err(err)?;
            }
            tx.commit().map_err(err)
        })
        .await
    }

    async fn health(&self, q: &HealthQuery) -> Result<VersionHealth, FleetError> {
        let q = q.clone();
        Self::with(&self.reader, move |conn| {
            let p = params![q.channel, q.version, q.since, q.silent_before()];
            let counts = conn
                .query_row(store::HEALTH_COUNTS, p, |r| {
                    Ok([
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ])
                })
                .map_err(err)?;
            let list = |sql: &str, third: i64| -> Result<Vec<HostEvidence>, FleetError> {
                let mut st = conn.prepare_cached(sql).map_err(err)?;
                let rows = st
                    .query_map(params![q.channel, q.version, third], evidence)
                    .map_err(err)?;
                rows.collect::<Result<_, _>>().map_err(err)
            };
            let failures = list(store::HEALTH_FAILURES, q.since)?;
            let silent_hosts = list(store::HEALTH_SILENT, q.silent_before())?;
            Ok(health_of(&q, counts, failures, silent_hosts))
        })
        .await
    }

    async fn overview(&self, q: &OverviewQuery) -> Result<Overview, FleetError> {
        let q = q.clone();
        Self::with(&self.reader, move |conn| {
            let count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<i64, FleetError> {
                conn.query_row(sql, p, |r| r.get(0)).map_err(err)
            };
            let hosts_of =
                |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<Vec<Host>, FleetError> {
                    let mut st = conn.prepare(sql).map_err(err)?;
                    let rows = st.query_map(p, host_from).map_err(err)?;
                    rows.collect::<Result<_, _>>().map_err(err)
                };
            let mut versions = Vec::new();
            {
                let mut st = conn.prepare_cached(store::VERSIONS).map_err(err)?;
                let rows = st
                    .query_map([], |r| {
                        Ok(VersionCount {
                            channel: r.get(0)?,
                            version: r.get(1)?,
                            hosts: r.get(2)?,
                        })
                    })
                    .map_err(err)?;
                for v in rows {
                    versions.push(v.map_err(err)?);
                }
            }
            let mut behind = Vec::new();
            for (channel, version) in &q.offered {
                behind.push((
                    channel.clone(),
                    count(store::COUNT_BEHIND, &[channel, version])?,
                ));
            }
            let mut failures = Vec::new();
            {
                let mut st = conn.prepare_cached(store::RECENT_FAILURES).map_err(err)?;
                let rows = st
                    .query_map([], |r| {
                        Ok(Failure {
                            at: r.get(0)?,
                            client_id: r.get(1)?,
                            hostname: r.get(2)?,
                            channel: r.get(3)?,
                            version: r.get(4)?,
                            result: r.get(5)?,
                            message: r.get(6)?,
                        })
                    })
                    .map_err(err)?;
                for f in rows {
                    failures.push(f.map_err(err)?);
                }
            }
            Ok(Overview {
                hosts: count(store::COUNT_HOSTS, &[])?,
                versions,
                stale_total: count(&store::count_stale(&q.fresh_versions), &[&q.stale_before])?,
                stale: hosts_of(&store::list_stale(&q.fresh_versions), &[&q.stale_before])?,
                silent_total: count(store::COUNT_SILENT, &[&q.stale_before])?,
                behind,
                failures,
                with_findings: count(store::COUNT_FINDINGS, &[])?,
                findings: hosts_of(&store::list_findings(), &[])?,
            })
        })
        .await
    }

    async fn hosts_page(&self, after: &str, limit: i64) -> Result<Vec<Host>, FleetError> {
        let after = after.to_owned();
        Self::with(&self.reader, move |conn| {
            let mut st = conn.prepare_cached(&store::hosts_page()).map_err(err)?;
            let rows = st
                .query_map(params![after, limit], host_from)
                .map_err(err)?;
            rows.collect::<Result<_, _>>().map_err(err)
        })
        .await
    }

    async fn forget(&self, seen_before: i64) -> Result<u64, FleetError> {
        Self::with(&self.writer, move |conn| {
            conn.execute(store::FORGET, [seen_before])
                .map(|n| n as u64)
                .map_err(err)
        })
        .await
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }
}

/// The health report from the six counts of [`store::HEALTH_COUNTS`], in its order.
pub(crate) fn health_of(
    q: &HealthQuery,
    counts: [i64; 6],
    failures: Vec<HostEvidence>,
    silent_hosts: Vec<HostEvidence>,
) -> VersionHealth {
    let n = |i: usize| u64::try_from(counts[i]).unwrap_or(0);
    VersionHealth {
        channel: q.channel.clone(),
        version: u64::try_from(q.version).unwrap_or(0),
        since: q.since,
        now: q.now,
        silent_after_secs: q.silent_after_secs,
        reporting: n(0),
        failed: n(1),
        installed: n(2),
        silent: n(3),
        others_installed: n(4),
        others_silent: n(5),
        failures,
        silent_hosts,
    }
}
