//! The offline mirror: copy a verified repository into a directory or S3 prefix that
//! vigil-server or any static web server can serve to an air-gapped network.
//!
//! The origin is loaded with tough exactly as an instance would load it, and the mirror gets
//! the very bytes tough verified, so an instance pointed at the mirror updates as it would from
//! the origin (and the mirror cannot forge anything: it holds no keys). It copies every root
//! version (any instance can walk the rotation chain), the current snapshot and targets, the
//! full databases of the newest `keep` versions and every delta leading to one of them. Blobs go
//! first and `timestamp.json` last, as the publisher writes, so a mirror in the middle of a sync
//! never names a file it does not have. Downloads resume from `work_dir/partial`; blobs already
//! in the mirror are skipped, so an interrupted sync picks up where it stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use tough::{ExpirationEnforcement, RepositoryLoader};
use url::Url;
use vigil_repository::layout::{self, TargetInfo};
use vigil_repository::publish::retention;
use vigil_repository::rollout::Release;
use vigil_repository::storage::{PutCondition, Storage};
use vigil_repository::tuf::parse_root;

use crate::config::Network;
use crate::error::UpdateError;
use crate::fetch::{discard_partial, fetch_target, FetchFailure};
use crate::http::{error_chain, find_fetch_error, Http, MirrorTransport};
use crate::plan::{candidates, Candidate};

pub struct MirrorOptions {
    pub from: Url,
    pub trusted_root: Vec<u8>,
    /// Holds tough's datastore (rollback protection across syncs) and partial downloads.
    pub work_dir: PathBuf,
    /// Newest database versions to carry.
    pub keep: usize,
    pub token: Option<String>,
    pub network: Network,
    pub progress: bool,
}

#[derive(Debug, Default)]
pub struct MirrorReport {
    pub metadata_version: u64,
    pub versions: Vec<u64>,
    pub copied: Vec<(String, u64)>,
    pub already_present: usize,
    pub deleted: Vec<String>,
}

fn storage_err(e: impl std::fmt::Display) -> UpdateError {
    UpdateError::Other(format!("mirror destination: {e}"))
}

pub async fn sync(
    storage: Arc<dyn Storage>,
    opts: &MirrorOptions,
) -> Result<MirrorReport, UpdateError> {
    let mirror = opts.from.to_string();
    let tuf_dir = opts.work_dir.join("tuf");
    let partial = opts.work_dir.join("partial");
    for d in [&tuf_dir, &partial] {
        std::fs::create_dir_all(d).map_err(|e| UpdateError::io("creating", d.clone(), e))?;
    }
    let http = Http::new(&opts.network, opts.token.as_deref(), None)
        .map_err(|e| UpdateError::Other(e.to_string()))?;
    let record = Arc::new(Mutex::new(BTreeMap::new()));
    let transport = MirrorTransport {
        http: http.clone(),
        cache: None,
        limits: opts.network.tuf_limits(),
        record: Some(record.clone()),
        failed: Arc::default(),
    };
    // Start from the newest root a previous sync reached, as the updater does.
    let saved = std::fs::read(tuf_dir.join("root.json")).ok();
    let cv = parse_root(&opts.trusted_root)
        .map_err(|e| UpdateError::Other(e.to_string()))?
        .signed
        .version;
    let root = match saved {
        Some(s) if parse_root(&s).is_ok_and(|r| r.signed.version > cv) => s,
        _ => opts.trusted_root.clone(),
    };
    let join = |p: &str| {
        opts.from
            .join(p)
            .map_err(|e| UpdateError::Other(format!("{}: {e}", opts.from)))
    };
    let repo = RepositoryLoader::new(&root, join("metadata/")?, join("targets/")?)
        .transport(transport)
        .datastore(&tuf_dir)
        .expiration_enforcement(ExpirationEnforcement::Safe)
        .load()
        .await
        .map_err(|e| match find_fetch_error(&e) {
            Some(f @ crate::http::FetchError::TooLarge { .. }) => UpdateError::Verify {
                mirror: mirror.clone(),
                message: f.to_string(),
            },
            Some(f) => UpdateError::Network {
                mirror: mirror.clone(),
                message: f.to_string(),
            },
            None => UpdateError::Verify {
                mirror: mirror.clone(),
                message: error_chain(&e),
            },
        })?;
    let recorded = record.lock().map(|m| m.clone()).unwrap_or_default();
    let root_version = repo.root().signed.version.get();
    let snapshot_version = repo.snapshot().signed.version.get();
    let targets_version = repo.targets().signed.version.get();

    // What instances need: the full databases the publisher's retention rule keeps (the newest
    // `keep` of each channel, and where clients held back by a rollout or leaving a revoked
    // release go), and every delta into them.
    let cands = candidates(&repo);
    let releases: BTreeMap<u64, Release> = cands
        .iter()
        .filter_map(|c| match &c.info {
            TargetInfo::Full {
                db_version,
                release,
                ..
            } => Some((*db_version, release.clone())),
            TargetInfo::Delta { .. } => None,
        })
        .collect();
    let mut versions: Vec<u64> = retention(&releases, opts.keep.max(1), None)
        .into_iter()
        .collect();
    versions.reverse();
    let wanted: Vec<&Candidate> = cands
        .iter()
        .filter(|c| versions.contains(&c.info.db_version()))
        .collect();

    let mut report = MirrorReport {
        metadata_version: snapshot_version,
        versions: versions.clone(),
        ..MirrorReport::default()
    };
    let mut todo = Vec::new();
    for c in &wanted {
        let key = layout::target_key(&c.sha256, &c.name);
        match storage.head(&key).await.map_err(storage_err)? {
            Some(m) if m.len == c.len => report.already_present += 1,
            _ => todo.push(*c),
        }
    }
    let total: u64 = todo.iter().map(|c| c.len).sum();
    let bar = opts.progress.then(|| {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("mirror [{bar:30}] {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    for (i, c) in todo.iter().enumerate() {
        if bar.is_none() {
            tracing::info!(target = %c.name, bytes = c.len, "copying {}/{}", i + 1, todo.len());
        }
        let fetched = fetch_target(&http, &opts.from, &mirror, c, &partial, false)
            .await
            .map_err(|f| match f {
                FetchFailure::Net(e) => UpdateError::Network {
                    mirror: mirror.clone(),
                    message: e.to_string(),
                },
                FetchFailure::Verify(m) => UpdateError::Verify {
                    mirror: mirror.clone(),
                    message: m,
                },
                FetchFailure::Local(e) => e,
            })?;
        // No mirror state to charge here (one origin per sync), but a work directory may have
        // been filled by an earlier sync from another origin: say who lied.
        for f in &fetched.forgeries {
            tracing::warn!(origin = %f.mirror, error = %f.message, "an earlier origin sent forged bytes");
        }
        let bytes = fetched.bytes;
        let key = layout::target_key(&c.sha256, &c.name);
        storage
            .put(&key, Bytes::from(bytes), PutCondition::Always)
            .await
            .map_err(storage_err)?;
        discard_partial(&partial, c);
        report.copied.push((c.name.clone(), c.len));
        if let Some(b) = &bar {
            b.inc(c.len);
            b.set_message(c.name.clone());
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }

    // Every root version, so an instance holding any older root can walk the chain.
    for v in 1..=root_version {
        let name = format!("{v}.root.json");
        let bytes = match recorded.get(&name) {
            Some(b) => b.clone(),
            None if v == root_version
                && parse_root(&root).is_ok_and(|r| r.signed.version.get() == v) =>
            {
                Bytes::from(root.clone())
            }
            None => {
                // Older roots than the one we started from: signed, and checked by every
                // instance that walks the chain; fetch them as they are.
                let url = join(&format!("metadata/{name}"))?;
                match http
                    .get_bytes(&url, None, opts.network.max_root_bytes)
                    .await
                {
                    Ok(Some((b, _))) => Bytes::from(b),
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "older root not copied");
                        continue;
                    }
                }
            }
        };
        put_meta(&*storage, &layout::root_key(v), bytes).await?;
    }
    for (name, key) in [
        (
            format!("{targets_version}.targets.json"),
            layout::targets_key(targets_version),
        ),
        (
            format!("{snapshot_version}.snapshot.json"),
            layout::snapshot_key(snapshot_version),
        ),
        ("timestamp.json".to_owned(), layout::TIMESTAMP.to_owned()),
    ] {
        let bytes = recorded.get(&name).cloned().ok_or_else(|| {
            UpdateError::Other(format!("{name} was verified but its bytes were not kept"))
        })?;
        put_meta(&*storage, &key, bytes).await?;
    }

    // Blobs the mirror no longer carries.
    let keep: BTreeSet<String> = wanted
        .iter()
        .map(|c| layout::target_key(&c.sha256, &c.name))
        .collect();
    for (key, _) in storage
        .list(&format!("{}/", layout::TARGETS_DIR))
        .await
        .map_err(storage_err)?
    {
        if !keep.contains(&key) {
            storage.delete(&key).await.map_err(storage_err)?;
            report.deleted.push(key);
        }
    }
    Ok(report)
}

async fn put_meta(storage: &dyn Storage, key: &str, bytes: Bytes) -> Result<(), UpdateError> {
    if let Ok(Some((old, _))) = storage.get(key).await {
        if old == bytes {
            return Ok(());
        }
    }
    storage
        .put(key, bytes, PutCondition::Always)
        .await
        .map_err(storage_err)?;
    Ok(())
}
