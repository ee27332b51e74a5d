//! What the repository says about each release, for the console: channel, publish time,
//! rollout stage, pause and revocation, read from the targets metadata the server serves.
//!
//! Display only: the metadata is not verified here (the server holds no trust root, and
//! nothing is decided from it but what the page shows and which hosts count as stale or
//! behind). Clients verify everything they act on.

use serde::Serialize;
use serde_json::Value;
use vigil_repository::layout::{self, TargetInfo};

use crate::state::Inner;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReleaseView {
    pub version: u64,
    pub channel: String,
    pub published: Option<i64>,
    /// "canary,10%:6h,100%"; absent: offered to the whole channel at once.
    pub plan: Option<String>,
    /// Who it reaches now: "canary+10%", "100%".
    pub reach: Option<String>,
    pub complete: bool,
    pub paused: Option<String>,
    pub revoked: Option<String>,
}

impl ReleaseView {
    /// Offered to every client of its channel.
    pub fn offered_to_all(&self) -> bool {
        self.revoked.is_none() && self.paused.is_none() && self.complete
    }
}

/// The full releases of the repository's current targets metadata, newest first; empty when
/// there is no repository yet or its metadata does not parse.
pub(crate) async fn load(s: &Inner) -> Vec<ReleaseView> {
    read(s).await.unwrap_or_default()
}

async fn json(s: &Inner, key: &str) -> Option<Value> {
    let (bytes, _) = s.get(key).await.ok()??;
    serde_json::from_slice(&bytes).ok()
}

fn meta_version(doc: &Value, role: &str) -> Option<u64> {
    doc.get("signed")?
        .get("meta")?
        .get(role)?
        .get("version")?
        .as_u64()
}

async fn read(s: &Inner) -> Option<Vec<ReleaseView>> {
    let timestamp = json(s, layout::TIMESTAMP).await?;
    let snapshot = json(
        s,
        &layout::snapshot_key(meta_version(&timestamp, "snapshot.json")?),
    )
    .await?;
    let targets = json(
        s,
        &layout::targets_key(meta_version(&snapshot, "targets.json")?),
    )
    .await?;
    let mut out = Vec::new();
    for target in targets.get("signed")?.get("targets")?.as_object()?.values() {
        let Some(custom) = target.get("custom").and_then(Value::as_object) else {
            continue;
        };
        let custom = custom.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let Some(info) = TargetInfo::from_custom(&custom) else {
            continue;
        };
        let Some(release) = info.release() else {
            continue;
        };
        let rollout = release.rollout.as_ref();
        out.push(ReleaseView {
            version: info.db_version(),
            channel: release.channel().to_owned(),
            published: release.published,
            plan: rollout.map(|r| {
                r.stages
                    .iter()
                    .map(|st| String::from(st.clone()))
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            reach: rollout.map(|r| r.describe_reach()),
            complete: rollout.is_none_or(|r| r.is_complete()),
            paused: rollout.and_then(|r| r.paused.as_ref().map(|p| p.reason.clone())),
            revoked: release.revoked.as_ref().map(|r| r.reason.clone()),
        });
    }
    out.sort_by(|a, b| b.version.cmp(&a.version).then(a.channel.cmp(&b.channel)));
    Some(out)
}

/// Per channel, the newest version offered to all of it.
pub fn offered(releases: &[ReleaseView]) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = Vec::new();
    for r in releases.iter().filter(|r| r.offered_to_all()) {
        if !out.iter().any(|(c, _)| *c == r.channel) {
            out.push((
                r.channel.clone(),
                i64::try_from(r.version).unwrap_or(i64::MAX),
            ));
        }
    }
    out.sort();
    out
}

/// Versions published at or after `cutoff`.
pub fn fresh(releases: &[ReleaseView], cutoff: i64) -> Vec<i64> {
    releases
        .iter()
        .filter(|r| r.published.is_some_and(|p| p >= cutoff))
        .filter_map(|r| i64::try_from(r.version).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(version: u64, complete: bool, paused: bool, revoked: bool) -> ReleaseView {
        ReleaseView {
            version,
            channel: "stable".into(),
            published: Some(100 * version as i64),
            plan: None,
            reach: None,
            complete,
            paused: paused.then(|| "p".into()),
            revoked: revoked.then(|| "r".into()),
        }
    }

    #[test]
    fn offered_is_the_newest_release_everyone_may_take() {
        let rs = [
            view(5, false, false, false),
            view(4, true, false, true),
            view(3, true, true, false),
            view(2, true, false, false),
            view(1, true, false, false),
        ];
        assert_eq!(offered(&rs), vec![("stable".to_owned(), 2)]);
        assert_eq!(fresh(&rs, 300), vec![5, 4, 3]);
    }
}
