//! The fleet summary behind `/api/fleet` and the console: the store's aggregates joined with
//! the repository's releases.

use serde::Serialize;

use super::releases::{self, ReleaseView};
use super::store::{Failure, FleetError, FleetStore, Host, OverviewQuery};

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub now: i64,
    pub stale_hours: u64,
    pub hosts: i64,
    pub channels: Vec<Channel>,
    pub stale: Listed<HostLine>,
    /// Hosts that have not checked in within `stale_hours` (counted among the stale).
    pub silent: i64,
    pub failures: Vec<Failure>,
    pub findings: Listed<HostLine>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Listed<T> {
    pub total: i64,
    /// The first entries only (see `store::LIST_LIMIT`).
    pub hosts: Vec<T>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Channel {
    pub channel: String,
    pub hosts: i64,
    /// Newest first; `version` null: no database installed.
    pub versions: Vec<Share>,
    /// The repository's releases on this channel, newest first.
    pub releases: Vec<ReleaseView>,
    /// The newest version offered to every client of the channel.
    pub offered: Option<i64>,
    /// Hosts below `offered`.
    pub behind: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Share {
    pub version: Option<i64>,
    pub hosts: i64,
    /// Parts per million of the channel's hosts.
    pub ppm: u64,
    /// "90%", "0.5%".
    pub percent: String,
}

/// A host as the lists show it.
#[derive(Clone, Debug, Serialize)]
pub struct HostLine {
    pub client_id: String,
    pub hostname: String,
    pub channel: String,
    pub version: Option<i64>,
    pub last_seen: i64,
    /// Hours since the installed version was published (`None`: unknown, or none installed).
    pub definitions_age_hours: Option<i64>,
    /// In the stale list, why: "no check-in for 30 h", "definitions 50 h old", ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub scan_at: Option<i64>,
    pub scanned: Option<i64>,
    pub infected: Option<i64>,
    pub errors: Option<i64>,
}

pub fn published_of(releases: &[ReleaseView], version: Option<i64>) -> Option<i64> {
    let v = u64::try_from(version?).ok()?;
    releases
        .iter()
        .find(|r| r.version == v)
        .and_then(|r| r.published)
}

pub fn age_hours(now: i64, since: Option<i64>) -> Option<i64> {
    since.map(|p| now.saturating_sub(p).max(0) / 3600)
}

fn line(h: Host, releases: &[ReleaseView], now: i64, stale_before: Option<i64>) -> HostLine {
    let age = age_hours(now, published_of(releases, h.installed_version));
    let reason = stale_before.map(|before| {
        if h.last_seen < before {
            format!("no check-in for {} h", (now - h.last_seen).max(0) / 3600)
        } else if h.installed_version.is_none() {
            "no definitions installed".to_owned()
        } else {
            match age {
                Some(a) => format!("definitions {a} h old"),
                None => "definitions of unknown age (no longer in the repository)".to_owned(),
            }
        }
    });
    HostLine {
        client_id: h.client_id,
        hostname: h.hostname,
        channel: h.channel,
        version: h.installed_version,
        last_seen: h.last_seen,
        definitions_age_hours: age,
        reason,
        scan_at: h.scan_at,
        scanned: h.scanned,
        infected: h.infected,
        errors: h.errors,
    }
}

pub async fn build(
    store: &dyn FleetStore,
    releases: Vec<ReleaseView>,
    stale_hours: u64,
    now: i64,
) -> Result<Summary, FleetError> {
    let stale_before = now.saturating_sub(i64::try_from(stale_hours * 3600).unwrap_or(0));
    let offered = releases::offered(&releases);
    let q = OverviewQuery {
        stale_before,
        fresh_versions: releases::fresh(&releases, stale_before),
        offered: offered.clone(),
    };
    let o = store.overview(&q).await?;
    let mut channels: Vec<Channel> = Vec::new();
    for v in o.versions {
        let i = match channels.iter().position(|c| c.channel == v.channel) {
            Some(i) => i,
            None => {
                channels.push(Channel {
                    channel: v.channel.clone(),
                    hosts: 0,
                    versions: Vec::new(),
                    releases: Vec::new(),
                    offered: None,
                    behind: 0,
                });
                channels.len() - 1
            }
        };
        channels[i].hosts += v.hosts;
        channels[i].versions.push(Share {
            version: v.version,
            hosts: v.hosts,
            ppm: 0,
            percent: String::new(),
        });
    }
    // Channels that have releases but no hosts yet are shown too.
    for r in &releases {
        if !channels.iter().any(|c| c.channel == r.channel) {
            channels.push(Channel {
                channel: r.channel.clone(),
                hosts: 0,
                versions: Vec::new(),
                releases: Vec::new(),
                offered: None,
                behind: 0,
            });
        }
    }
    for c in &mut channels {
        let total = u64::try_from(c.hosts).unwrap_or(0);
        for s in &mut c.versions {
            let n = u64::try_from(s.hosts).unwrap_or(0);
            s.ppm = if total == 0 {
                0
            } else {
                (u128::from(n) * 1_000_000 / u128::from(total)) as u64
            };
            s.percent = vigil_fleet::health::percent(s.ppm);
        }
        // Newest first, "none installed" last.
        c.versions.sort_by(|a, b| {
            b.version
                .is_some()
                .cmp(&a.version.is_some())
                .then(b.version.cmp(&a.version))
        });
        c.releases = releases
            .iter()
            .filter(|r| r.channel == c.channel)
            .cloned()
            .collect();
        c.offered = offered
            .iter()
            .find(|(ch, _)| *ch == c.channel)
            .map(|(_, v)| *v);
        c.behind = o
            .behind
            .iter()
            .find(|(ch, _)| *ch == c.channel)
            .map_or(0, |(_, n)| *n);
    }
    channels.sort_by(|a, b| a.channel.cmp(&b.channel));
    let lines = |hosts: Vec<Host>, stale: Option<i64>| -> Vec<HostLine> {
        hosts
            .into_iter()
            .map(|h| line(h, &releases, now, stale))
            .collect()
    };
    Ok(Summary {
        now,
        stale_hours,
        hosts: o.hosts,
        channels,
        stale: Listed {
            total: o.stale_total,
            hosts: lines(o.stale, Some(stale_before)),
        },
        silent: o.silent_total,
        failures: o.failures,
        findings: Listed {
            total: o.with_findings,
            hosts: lines(o.findings, None),
        },
    })
}
