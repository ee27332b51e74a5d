//! The shared fleet store: PostgreSQL (`--fleet-db postgres://user@host:port/db`), for
//! vigil-server run as several replicas behind a load balancer, all writing one database.
//!
//! The same SQL as SQLite (placeholders `?N` become `$N`). A check-in is one statement (the
//! previous update result, the upsert and the failure row in one `WITH`), so it needs no
//! transaction and any number of them pipeline on one connection. The pool is a few
//! connections used in turn, each reopened when found closed. The schema is created if missing,
//! under an advisory lock so replicas starting together do not race. No TLS: keep the
//! database on a private network or a local socket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_postgres::{Client, NoTls};
use vigil_fleet::health::HostEvidence;
use vigil_fleet::{CheckIn, UpdateResult, VersionHealth};

use super::sqlite::health_of;
use super::store::{self, *};

/// Connections kept; each pipelines many concurrent queries.
const POOL: usize = 4;
/// An arbitrary constant naming this schema's advisory lock.
const SCHEMA_LOCK: i64 = 0x7669_6769_6c14;

pub struct PostgresStore {
    url: String,
    what: String,
    slots: Vec<Mutex<Arc<Client>>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may hold a password.
        f.debug_struct("PostgresStore")
            .field("db", &self.what)
            .finish()
    }
}

fn err(e: impl std::fmt::Display) -> FleetError {
    FleetError::Backend(e.to_string())
}

/// `?N` → `$N`; the shared SQL has no other question marks.
fn pg(sql: &str) -> String {
    sql.replace('?', "$")
}

async fn connect(url: &str) -> Result<Arc<Client>, FleetError> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.map_err(err)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "fleet database connection closed");
        }
    });
    Ok(Arc::new(client))
}

impl PostgresStore {
    pub async fn open(url: &str) -> Result<Self, FleetError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| err(format!("--fleet-db: not a PostgreSQL URL: {e}")))?;
        let what = format!(
            "{}@{}",
            config.get_dbname().unwrap_or("(default db)"),
            config
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_default()
        );
        let first = connect(url)
            .await
            .map_err(|e| err(format!("cannot connect to the fleet database {what}: {e}")))?;
        let schema = format!(
            "SELECT pg_advisory_lock({SCHEMA_LOCK});\n{};\n{};\n\
             CREATE TABLE IF NOT EXISTS failures (id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL,
                client_id TEXT NOT NULL, hostname TEXT NOT NULL, channel TEXT NOT NULL,
                version BIGINT, result TEXT NOT NULL, message TEXT);\n\
             SELECT pg_advisory_unlock({SCHEMA_LOCK});",
            store::SCHEMA_HOSTS,
            store::SCHEMA_INDEXES.join(";\n")
        );
        first
            .batch_execute(&schema)
            .await
            .map_err(|e| err(format!("fleet database {what}: creating the schema: {e}")))?;
        let mut slots = vec![Mutex::new(first)];
        for _ in 1..POOL {
            slots.push(Mutex::new(connect(url).await?));
        }
        Ok(Self {
            url: url.to_owned(),
            what,
            slots,
            next: AtomicUsize::new(0),
        })
    }

    fn slot(&self, i: usize) -> Arc<Client> {
        match self.slots[i].lock() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The next connection in turn, reopened if it has closed (the database restarted).
    async fn client(&self) -> Result<Arc<Client>, FleetError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let c = self.slot(i);
        if !c.is_closed() {
            return Ok(c);
        }
        let fresh = connect(&self.url).await?;
        match self.slots[i].lock() {
            Ok(mut s) => *s = fresh.clone(),
            Err(p) => *p.into_inner() = fresh.clone(),
        }
        Ok(fresh)
    }
}

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

async fn count(client: &Client, sql: &str, p: &[Param<'_>]) -> Result<i64, FleetError> {
    let r = client.query_one(&pg(sql), p).await.map_err(err)?;
    r.try_get::<_, i64>(0).map_err(err)
}

async fn hosts_of(client: &Client, sql: &str, p: &[Param<'_>]) -> Result<Vec<Host>, FleetError> {
    let rows = client.query(&pg(sql), p).await.map_err(err)?;
    rows.iter().map(host_from).collect()
}

fn host_from(r: &tokio_postgres::Row) -> Result<Host, FleetError> {
    let h = || -> Result<Host, tokio_postgres::Error> {
        Ok(Host {
            client_id: r.try_get(0)?,
            hostname: r.try_get(1)?,
            instance_id: r.try_get(2)?,
            channel: r.try_get(3)?,
            ring: r.try_get(4)?,
            installed_version: r.try_get(5)?,
            installed_sha256: r.try_get(6)?,
            engine_version: r.try_get(7)?,
            update_result: r.try_get(8)?,
            update_at: r.try_get(9)?,
            update_version: r.try_get(10)?,
            update_message: r.try_get(11)?,
            scan_at: r.try_get(12)?,
            scanned: r.try_get(13)?,
            infected: r.try_get(14)?,
            errors: r.try_get(15)?,
            first_seen: r.try_get(16)?,
            last_seen: r.try_get(17)?,
            installed_since: r.try_get(18)?,
        })
    };
    h().map_err(err)
}

fn evidence(r: &tokio_postgres::Row) -> Result<HostEvidence, FleetError> {
    let result: String = r.try_get(2).map_err(err)?;
    Ok(HostEvidence {
        client_id: r.try_get(0).map_err(err)?,
        hostname: r.try_get(1).map_err(err)?,
        result: UpdateResult::parse(&result).unwrap_or(UpdateResult::Local),
        message: r.try_get(3).map_err(err)?,
        last_seen: r.try_get(4).map_err(err)?,
    })
}

#[async_trait::async_trait]
impl FleetStore for PostgresStore {
    async fn record(&self, c: &CheckIn, now: i64) -> Result<(), FleetError> {
        let row = Row { c };
        let sql = format!(
            "WITH prev AS ({}), up AS ({} RETURNING 1) \
             INSERT INTO failures (at, client_id, hostname, channel, version, result, message) \
             SELECT ?17, ?1, ?2, ?4, ?11, ?9, ?12 FROM up WHERE ?18::boolean AND NOT EXISTS \
             (SELECT 1 FROM prev WHERE prev.update_at = ?10 AND prev.update_result = ?9)",
            store::PREVIOUS_UPDATE,
            store::UPSERT
        );
        let client = self.client().await?;
        let (scan_at, scanned, infected, errors) = row.scan();
        let inserted = client
            .execute(
                &pg(&sql),
                &[
                    &c.client_id,
                    &c.hostname,
                    &c.instance_id,
                    &c.channel,
                    &c.ring,
                    &row.installed_version(),
                    &c.installed.as_ref().map(|i| i.sha256.clone()),
                    &i64::from(c.engine_version),
                    &c.last_update.result.as_str(),
                    &c.last_update.at,
                    &row.update_version(),
                    &c.last_update.message,
                    &scan_at,
                    &scanned,
                    &infected,
                    &errors,
                    &now,
                    &row.is_failure(),
                ],
            )
            .await
            .map_err(err)?;
        if inserted > 0 {
            client
                .execute(store::TRIM_FAILURES, &[])
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn health(&self, q: &HealthQuery) -> Result<VersionHealth, FleetError> {
        let client = self.client().await?;
        let silent_before = q.silent_before();
        let p: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&q.channel, &q.version, &q.since, &silent_before];
        let r = client
            .query_one(&pg(store::HEALTH_COUNTS), &p)
            .await
            .map_err(err)?;
        let mut counts = [0i64; 6];
        for (i, c) in counts.iter_mut().enumerate() {
            *c = r.try_get(i).map_err(err)?;
        }
        let mut lists = Vec::new();
        for (sql, third) in [
            (store::HEALTH_FAILURES, &q.since),
            (store::HEALTH_SILENT, &silent_before),
        ] {
            let rows = client
                .query(&pg(sql), &[&q.channel, &q.version, third])
                .await
                .map_err(err)?;
            lists.push(rows.iter().map(evidence).collect::<Result<Vec<_>, _>>()?);
        }
        let silent_hosts = lists.pop().unwrap_or_default();
        let failures = lists.pop().unwrap_or_default();
        Ok(health_of(q, counts, failures, silent_hosts))
    }

    async fn overview(&self, q: &OverviewQuery) -> Result<Overview, FleetError> {
        let client = self.client().await?;
        let client = &*client;
        let versions = client
            .query(store::VERSIONS, &[])
            .await
            .map_err(err)?
            .iter()
            .map(|r| {
                Ok(VersionCount {
                    channel: r.try_get(0).map_err(err)?,
                    version: r.try_get(1).map_err(err)?,
                    hosts: r.try_get(2).map_err(err)?,
                })
            })
            .collect::<Result<Vec<_>, FleetError>>()?;
        let mut behind = Vec::new();
        for (channel, version) in &q.offered {
            let n = count(client, store::COUNT_BEHIND, &[channel, version]).await?;
            behind.push((channel.clone(), n));
        }
        let failures = client
            .query(store::RECENT_FAILURES, &[])
            .await
            .map_err(err)?
            .iter()
            .map(|r| {
                Ok(Failure {
                    at: r.try_get(0).map_err(err)?,
                    client_id: r.try_get(1).map_err(err)?,
                    hostname: r.try_get(2).map_err(err)?,
                    channel: r.try_get(3).map_err(err)?,
                    version: r.try_get(4).map_err(err)?,
                    result: r.try_get(5).map_err(err)?,
                    message: r.try_get(6).map_err(err)?,
                })
            })
            .collect::<Result<Vec<_>, FleetError>>()?;
        Ok(Overview {
            hosts: count(client, store::COUNT_HOSTS, &[]).await?,
            versions,
            stale_total: count(
                client,
                &store::count_stale(&q.fresh_versions),
                &[&q.stale_before],
            )
            .await?,
            stale: hosts_of(
                client,
                &store::list_stale(&q.fresh_versions),
                &[&q.stale_before],
            )
            .await?,
            silent_total: count(client, store::COUNT_SILENT, &[&q.stale_before]).await?,
            behind,
            failures,
            with_findings: count(client, store::COUNT_FINDINGS, &[]).await?,
            findings: hosts_of(client, &store::list_findings(), &[]).await?,
        })
    }

    async fn hosts_page(&self, after: &str, limit: i64) -> Result<Vec<Host>, FleetError> {
        let client = self.client().await?;
        let rows = client
            .query(&pg(&store::hosts_page()), &[&after, &limit])
            .await
            .map_err(err)?;
        rows.iter().map(host_from).collect()
    }

    async fn forget(&self, seen_before: i64) -> Result<u64, FleetError> {
        let client = self.client().await?;
        client
            .execute(&pg(store::FORGET), &[&seen_before])
            .await
            .map_err(err)
    }

    fn describe(&self) -> String {
        format!("postgres {}", self.what)
    }
}
