//! Creating a repository, publishing a database into it, renewing and rotating its metadata.
//!
//! A publish writes in the only order that never shows a reader metadata naming a missing
//! blob: new blobs, then `N.targets.json`, `N.snapshot.json`, and `timestamp.json` last. The
//! timestamp is the commit point. Concurrent publishers are told apart by conditional writes:
//! versioned files are create-only, so the first to write `N.targets.json` owns version N, and
//! `timestamp.json` is replaced only if its ETag is still the one this publisher built on. A
//! directory adds a lock file, since its compare-and-swap is not atomic on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU64;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tough::editor::RepositoryEditor;
use tough::schema::{Hashes, Target};
use tough::TargetName;
use tracing::{info, warn};
use vigil_format::container::Parsed;
use vigil_format::delta::Delta;

use crate::error::RepoError;
use crate::keys::{write_new_key, Role, RoleKey};
use crate::layout::{self, TargetInfo};
use crate::rollout::{Pause, Release, Revocation, Rollout, Stage, DEFAULT_CHANNEL};
use crate::storage::{PutCondition, PutOutcome, Storage};
use crate::tuf::{self, Expiry, StorageTransport};

/// The trusted root a publisher starts from, kept next to the keys.
pub const ROOT_FILE: &str = "root.json";

#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// Previous versions kept in full, each with a delta to the new one.
    pub keep: usize,
    pub expiry: Expiry,
    /// Unreferenced blobs younger than this are left alone: they may belong to a publish that
    /// is still uploading.
    pub gc_grace: Duration,
    pub progress: bool,
    /// Recorded in the new database's target metadata (`TargetInfo::Full::gate_override`):
    /// why it ships although the release gate failed. Publishing itself does not look at it.
    pub gate_override: Option<String>,
    /// The new release's channel (`Release::channel`); `None` or `stable` leave the field
    /// out, so a stable release's metadata is what it was before channels existed.
    pub channel: Option<String>,
    /// The rollout plan (`rollout::parse_plan`); `None`: offered to the whole channel at once.
    pub stages: Option<Vec<Stage>>,
}

impl Default for PublishOptions {
    fn default() -> Self {
        Self {
            keep: 5,
            expiry: Expiry::default(),
            gc_grace: Duration::from_secs(3600),
            progress: false,
            gate_override: None,
            channel: None,
            stages: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitReport {
    pub generated: Vec<Role>,
}

#[derive(Clone, Debug)]
pub struct Published {
    /// `None` for a refresh that re-signs without adding a database.
    pub db_version: Option<u64>,
    pub metadata_version: u64,
    /// Target name and size of everything new.
    pub uploaded: Vec<(String, u64)>,
    pub deleted: Vec<String>,
}

/// Creates the keys that are missing in `keys_dir`, a version-1 root listing them, and writes
/// that root to `keys_dir/root.json` and to the repository.
pub async fn init(
    storage: &dyn Storage,
    keys_dir: &Path,
    expiry: &Expiry,
) -> Result<InitReport, RepoError> {
    if storage.head(&layout::root_key(1)).await?.is_some() {
        return Err(RepoError::AlreadyInitialized(storage.location()));
    }
    let mut keys = Vec::new();
    let mut generated = Vec::new();
    for role in Role::ALL {
        let key = match RoleKey::load(role, keys_dir)? {
            Some(k) => k,
            None => {
                let k = RoleKey::generate(role)?;
                write_new_key(keys_dir, &role.file_name(), k.secret())?;
                generated.push(role);
                k
            }
        };
        keys.push(key);
    }
    let refs: Vec<&RoleKey> = keys.iter().collect();
    let root = tuf::create_root(&refs, expiry).await?;
    if storage
        .put(
            &layout::root_key(1),
            Bytes::from(root.clone()),
            PutCondition::IfAbsent,
        )
        .await?
        == PutOutcome::PreconditionFailed
    {
        return Err(RepoError::AlreadyInitialized(storage.location()));
    }
    write_file(&keys_dir.join(ROOT_FILE), &root)?;
    Ok(InitReport { generated })
}

/// Makes the next root: new keys for `rotate` (the old key files are kept as
/// `<role>.key.v<N>`), signed by the new root key and the old one. It is written to
/// `keys_dir/root.json` only; the next publish or refresh uploads it, so this can run on an
/// offline machine that holds the root key. Returns the new root's version.
pub async fn rotate_root(
    keys_dir: &Path,
    rotate: &[Role],
    expiry: &Expiry,
) -> Result<u64, RepoError> {
    let root_path = keys_dir.join(ROOT_FILE);
    let old_bytes =
        std::fs::read(&root_path).map_err(|e| RepoError::io("reading", &root_path, e))?;
    let old_version = tuf::parse_root(&old_bytes)?.signed.version.get();
    let old_root_key = RoleKey::load_required(Role::Root, keys_dir)?;
    let mut new_keys = Vec::new();
    for &role in rotate {
        new_keys.push(RoleKey::generate(role)?);
    }
    let refs: Vec<&RoleKey> = new_keys.iter().collect();
    let new_bytes = tuf::rotate_root(&old_bytes, &old_root_key, &refs, expiry).await?;
    // Only now touch the key files: a failure above leaves everything as it was.
    for key in &new_keys {
        let cur = keys_dir.join(key.role.file_name());
        let kept = keys_dir.join(format!("{}.v{old_version}", key.role.file_name()));
        if cur.exists() {
            std::fs::rename(&cur, &kept).map_err(|e| RepoError::io("renaming", &cur, e))?;
        }
        write_new_key(keys_dir, &key.role.file_name(), key.secret())?;
    }
    write_file(
        &keys_dir.join(format!("{old_version}.root.json")),
        &old_bytes,
    )?;
    write_file(&root_path, &new_bytes)?;
    Ok(old_version + 1)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| RepoError::io("creating a temporary file in", dir, e))?;
    // root.json is public (clients ship it); tempfile would leave it 0600.
    #[cfg(unix)]
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(|e| RepoError::io("writing", path, e))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| RepoError::io("writing", path, e))?;
    tmp.persist(path)
        .map_err(|e| RepoError::io("renaming into", path, e.error))?;
    Ok(())
}

/// The online keys: what CI holds.
pub struct OnlineKeys {
    pub targets: RoleKey,
    pub snapshot: RoleKey,
    pub timestamp: RoleKey,
}

impl OnlineKeys {
    pub fn load(keys_dir: &Path) -> Result<Self, RepoError> {
        Ok(Self {
            targets: RoleKey::load_required(Role::Targets, keys_dir)?,
            snapshot: RoleKey::load_required(Role::Snapshot, keys_dir)?,
            timestamp: RoleKey::load_required(Role::Timestamp, keys_dir)?,
        })
    }

    fn boxed(&self) -> Vec<Box<dyn tough::key_source::KeySource>> {
        [&self.targets, &self.snapshot, &self.timestamp]
            .into_iter()
            .map(|k| {
                RoleKey::new(
                    k.role,
                    vigil_format::SecretKey::from_seed(k.secret().seed()),
                )
                .boxed()
            })
            .collect()
    }
}

/// What is live, as verified from the trusted root.
struct Current {
    repo: Option<tough::Repository>,
    /// The ETag of the timestamp.json that `repo` was loaded from.
    timestamp_etag: Option<String>,
    /// Raw bytes of the newest root, which the editor signs under.
    root: Vec<u8>,
    /// A root that is trusted but not yet in the repository (after an offline rotation).
    root_to_upload: Option<(u64, Vec<u8>)>,
}

impl Current {
    fn metadata_version(&self) -> u64 {
        self.repo.as_ref().map_or(0, |r| {
            r.targets()
                .signed
                .version
                .get()
                .max(r.snapshot().signed.version.get())
                .max(r.timestamp().signed.version.get())
        })
    }

    fn targets(&self) -> Vec<(TargetName, Target)> {
        let mut v: Vec<_> = self
            .repo
            .iter()
            .flat_map(|r| r.targets().signed.targets.iter())
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        v.sort_by(|a, b| a.0.raw().cmp(b.0.raw()));
        v
    }
}

async fn latest_root_in_storage(storage: &dyn Storage) -> Result<Option<u64>, StorageError2> {
    let mut latest = None;
    let mut v = 1;
    while storage.head(&layout::root_key(v)).await?.is_some() {
        latest = Some(v);
        v += 1;
    }
    Ok(latest)
}
type StorageError2 = crate::storage::StorageError;

async fn load_current(
    storage: &Arc<dyn Storage>,
    trusted_root: &[u8],
) -> Result<Current, RepoError> {
    let trusted = tuf::parse_root(trusted_root)?;
    let trusted_version = trusted.signed.version.get();
    let Some(stored_latest) = latest_root_in_storage(storage.as_ref()).await? else {
        return Err(RepoError::NotInitialized(storage.location()));
    };
    // After an offline rotation the trusted root is one ahead of the repository: check that the
    // repository's newest root endorses it, then verify what is live under the older one.
    let (load_root, root_to_upload) = if trusted_version == stored_latest + 1 {
        let (prev, _) = storage
            .get(&layout::root_key(stored_latest))
            .await?
            .ok_or_else(|| RepoError::NotInitialized(storage.location()))?;
        let prev_root = tuf::parse_root(&prev)?;
        prev_root
            .signed
            .verify_role(&trusted)
            .map_err(|e| RepoError::tuf("the new root is not signed by the current root key", e))?;
        (
            prev.to_vec(),
            Some((trusted_version, trusted_root.to_vec())),
        )
    } else if trusted_version > stored_latest {
        return Err(RepoError::Corrupt {
            key: layout::root_key(stored_latest + 1),
            why: format!(
                "the trusted root is version {trusted_version} but the repository's newest is {stored_latest}; upload the roots in between"
            ),
        });
    } else {
        (trusted_root.to_vec(), None)
    };

    let Some((ts_bytes, ts_meta)) = storage.get(layout::TIMESTAMP).await? else {
        // Initialised, never published: the root is the only metadata.
        let root = match &root_to_upload {
            Some((_, b)) => b.clone(),
            None => storage
                .get(&layout::root_key(stored_latest))
                .await?
                .map(|(b, _)| b.to_vec())
                .unwrap_or_default(),
        };
        // Refuse a fresh repository whose stored root chain we cannot check against ours.
        if root_to_upload.is_none() && stored_latest != trusted_version {
            let stored = tuf::parse_root(&root)?;
            let mut chain_ok = stored.signed.version.get() == trusted_version;
            if !chain_ok {
                chain_ok = trusted.signed.verify_role(&stored).is_ok();
            }
            if !chain_ok {
                return Err(RepoError::Corrupt {
                    key: layout::root_key(stored_latest),
                    why: "not endorsed by the trusted root".into(),
                });
            }
        }
        return Ok(Current {
            repo: None,
            timestamp_etag: None,
            root,
            root_to_upload,
        });
    };
    let transport = StorageTransport::new(storage.clone()).pin(layout::TIMESTAMP, ts_bytes);
    // Expired metadata is fine here: this publish is about to renew it.
    let repo = tuf::load(transport, &load_root, true).await?;
    let root = match &root_to_upload {
        Some((_, b)) => b.clone(),
        None => {
            let v = repo.root().signed.version.get();
            let (b, _) =
                storage
                    .get(&layout::root_key(v))
                    .await?
                    .ok_or_else(|| RepoError::Corrupt {
                        key: layout::root_key(v),
                        why: "vanished while loading".into(),
                    })?;
            b.to_vec()
        }
    };
    Ok(Current {
        repo: Some(repo),
        timestamp_etag: Some(ts_meta.etag),
        root,
        root_to_upload,
    })
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn target_of(bytes: &[u8], info: &TargetInfo) -> Target {
    Target {
        length: bytes.len() as u64,
        hashes: Hashes {
            sha256: Sha256::digest(bytes).to_vec().into(),
            _extra: Default::default(),
        },
        custom: info.to_custom(),
        _extra: Default::default(),
    }
}

fn key_of(name: &TargetName, t: &Target) -> String {
    layout::target_key(&hex::encode(&t.hashes.sha256), name.resolved())
}

fn tname(s: &str) -> Result<TargetName, RepoError> {
    TargetName::new(s).map_err(|e| RepoError::tuf(format!("target name {s}"), e))
}

/// Fetches a target's blob and checks it against the metadata.
async fn fetch_target(
    storage: &dyn Storage,
    name: &TargetName,
    t: &Target,
) -> Result<Bytes, RepoError> {
    let key = key_of(name, t);
    let (bytes, _) = storage.get(&key).await?.ok_or_else(|| RepoError::Corrupt {
        key: key.clone(),
        why: "listed in targets.json but missing".into(),
    })?;
    if bytes.len() as u64 != t.length
        || Sha256::digest(&bytes).as_slice() != t.hashes.sha256.as_ref()
    {
        return Err(RepoError::Corrupt {
            key,
            why: "length or SHA-256 differs".into(),
        });
    }
    Ok(bytes)
}

/// Our targets in a target list, sorted by kind.
struct Ours {
    /// Full databases by version, with their metadata.
    fulls: BTreeMap<u64, (TargetName, Target, TargetInfo)>,
    deltas: Vec<(TargetName, Target, TargetInfo)>,
    /// Targets that are not ours: carried over untouched.
    foreign: Vec<(TargetName, Target)>,
}

fn sort_targets(existing: &[(TargetName, Target)]) -> Ours {
    let mut ours = Ours {
        fulls: BTreeMap::new(),
        deltas: Vec::new(),
        foreign: Vec::new(),
    };
    for (n, t) in existing {
        match TargetInfo::from_custom(&t.custom) {
            Some(info @ TargetInfo::Full { .. }) => {
                ours.fulls
                    .insert(info.db_version(), (n.clone(), t.clone(), info));
            }
            Some(info @ TargetInfo::Delta { .. }) => ours.deltas.push((n.clone(), t.clone(), info)),
            None => ours.foreign.push((n.clone(), t.clone())),
        }
    }
    ours
}

fn release_of(info: &TargetInfo) -> Release {
    info.release().cloned().unwrap_or_default()
}

/// Whether every client of the release's channel may take it: no plan, or a plan at 100%.
fn is_complete(r: &Release) -> bool {
    r.rollout.as_ref().is_none_or(Rollout::is_complete)
}

/// The full versions a publish of `new` (with `new_release`) keeps besides the new one: the
/// newest `keep` of each channel; the newest complete, non-revoked release of each channel
/// (where clients that a rollout holds back, or that leave a revoked release, go); and revoked
/// releases newer than that (clients that installed one must read that it is revoked).
fn retained_versions(
    fulls: &BTreeMap<u64, (TargetName, Target, TargetInfo)>,
    keep: usize,
    new: Option<(u64, &Release)>,
) -> BTreeSet<u64> {
    let releases: BTreeMap<u64, Release> = fulls
        .iter()
        .map(|(&v, (_, _, info))| (v, release_of(info)))
        .collect();
    retention(&releases, keep, new)
}

/// The retention rule over full releases by version, shared by publish (what stays listed) and
/// `vigil-update mirror` (what an offline mirror copies), so a mirror holds every database its
/// instances may be sent to.
pub fn retention(
    releases: &BTreeMap<u64, Release>,
    keep: usize,
    new: Option<(u64, &Release)>,
) -> BTreeSet<u64> {
    let mut by_channel: BTreeMap<String, Vec<(u64, &Release)>> = BTreeMap::new();
    for (&v, r) in releases {
        by_channel
            .entry(r.channel().to_owned())
            .or_default()
            .push((v, r));
    }
    let mut kept = BTreeSet::new();
    for (channel, list) in &by_channel {
        // Newest first.
        for (v, _) in list.iter().rev().take(keep) {
            kept.insert(*v);
        }
        let newest_complete = list
            .iter()
            .rev()
            .find(|(_, r)| !r.is_revoked() && is_complete(r))
            .map(|(v, _)| *v);
        kept.extend(newest_complete);
        // A complete new release of the channel is where clients go from now on.
        let floor = match new {
            Some((nv, nr)) if nr.channel() == channel && is_complete(nr) => nv,
            _ => newest_complete.unwrap_or(0),
        };
        for (v, r) in list {
            if r.is_revoked() && *v > floor {
                kept.insert(*v);
            }
        }
    }
    kept
}

/// Publishes `db` (a signed vigil database), or with `None` only renews the metadata
/// signatures and expiry dates.
pub async fn publish(
    storage: Arc<dyn Storage>,
    trusted_root: &[u8],
    keys: &OnlineKeys,
    db: Option<Vec<u8>>,
    opts: &PublishOptions,
) -> Result<Published, RepoError> {
    let _guard = storage.publish_guard().await?;
    let current = load_current(&storage, trusted_root).await?;
    let existing = current.targets();
    let ours = sort_targets(&existing);
    let current_version = ours.fulls.keys().next_back().copied().unwrap_or(0);

    let mut new_blobs: Vec<(TargetName, Target, Bytes)> = Vec::new();
    let mut next: Vec<(TargetName, Target)> = ours.foreign.clone();
    let db_version = match db {
        None => {
            for (n, t, _) in ours.fulls.values() {
                next.push((n.clone(), t.clone()));
            }
            for (n, t, _) in &ours.deltas {
                next.push((n.clone(), t.clone()));
            }
            None
        }
        Some(db) => {
            let header = Parsed::parse(&db)?.header;
            let version = header.db_version;
            if version <= current_version {
                return Err(RepoError::VersionNotNewer {
                    version,
                    current: current_version,
                });
            }
            let min_engine = header.min_engine_version;
            let new_sha = sha256_hex(&db);
            let now = jiff::Timestamp::now().as_second();
            let release = Release {
                channel: opts
                    .channel
                    .clone()
                    .filter(|c| c.as_str() != DEFAULT_CHANNEL),
                published: Some(now),
                rollout: opts.stages.clone().map(|s| Rollout::start(s, now)),
                revoked: None,
            };
            let kept = retained_versions(&ours.fulls, opts.keep, Some((version, &release)));
            let full = TargetInfo::Full {
                db_version: version,
                min_engine_version: min_engine,
                gate_override: opts.gate_override.clone(),
                release: release.clone(),
            };
            let name = tname(&layout::full_name(version))?;
            new_blobs.push((name, target_of(&db, &full), Bytes::from(db.clone())));

            for &old_version in kept.iter().rev() {
                let Some((old_name, old_t, old_info)) = ours.fulls.get(&old_version) else {
                    continue;
                };
                next.push((old_name.clone(), old_t.clone()));
                let old_release = release_of(old_info);
                // Deltas into the new release from its own channel's releases that clients
                // may run (a revoked one's clients leave it for an older release instead).
                if old_release.channel() != release.channel() || old_release.is_revoked() {
                    continue;
                }
                let old = fetch_target(storage.as_ref(), old_name, old_t).await?;
                let d = Delta::create(&old, &db)?;
                // A delta as large as the database saves nothing.
                if d.len() >= db.len() {
                    continue;
                }
                let info = TargetInfo::Delta {
                    db_version: version,
                    min_engine_version: min_engine,
                    base_version: old_version,
                    base_sha256: hex::encode(&old_t.hashes.sha256),
                    result_sha256: new_sha.clone(),
                };
                let name = tname(&layout::delta_name(old_version, version))?;
                let t = target_of(&d, &info);
                new_blobs.push((name, t, Bytes::from(d)));
            }
            // Deltas are made only into the newest version: every client in the retained
            // window gets there in one step, and targets.json stays small (it is fetched at
            // every update, so its size is part of every update's cost). Older deltas are kept
            // only while they lead to a release that a rollout still sends clients to (the
            // newest complete one of a channel); the rest are collected with their blobs.
            let complete: BTreeSet<String> = kept
                .iter()
                .filter_map(|v| ours.fulls.get(v))
                .filter(|(_, _, info)| {
                    let r = release_of(info);
                    is_complete(&r) && !r.is_revoked()
                })
                .map(|(_, t, _)| hex::encode(&t.hashes.sha256))
                .collect();
            for (n, t, info) in &ours.deltas {
                if let TargetInfo::Delta { result_sha256, .. } = info {
                    if complete.contains(result_sha256) && !is_complete(&release) {
                        next.push((n.clone(), t.clone()));
                    }
                }
            }
            Some(version)
        }
    };
    for (n, t, _) in &new_blobs {
        next.push((n.clone(), t.clone()));
    }
    let (metadata_version, uploaded, deleted) = commit(
        &storage,
        trusted_root,
        keys,
        &current,
        &existing,
        next,
        new_blobs,
        opts,
    )
    .await?;
    info!(metadata_version, ?db_version, "published");
    Ok(Published {
        db_version,
        metadata_version,
        uploaded,
        deleted,
    })
}

/// A change to a published release's rollout (`vigil-build rollout`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Amendment {
    /// To the next stage, or to stage index `to` (later than the current one).
    Advance {
        to: Option<usize>,
    },
    /// Stop new clients from taking it; clients that have it keep it.
    Pause {
        reason: String,
    },
    Resume,
    /// Never installed again; clients that have it move to the newest release that is not.
    Revoke {
        reason: String,
    },
}

#[derive(Clone, Debug)]
pub struct Amended {
    pub db_version: u64,
    pub metadata_version: u64,
    pub before: Release,
    pub after: Release,
}

/// Applies `change` to a release's metadata, refusing the transitions that make no sense.
pub fn amend_release(
    version: u64,
    release: &Release,
    change: &Amendment,
    now: i64,
) -> Result<Release, RepoError> {
    let refuse = |why: String| RepoError::InvalidAmendment { version, why };
    if let Some(r) = &release.revoked {
        return Err(refuse(format!("it is revoked ({})", r.reason)));
    }
    let mut next = release.clone();
    if let Amendment::Revoke { reason } = change {
        next.revoked = Some(Revocation {
            at: now,
            reason: reason.clone(),
        });
        return Ok(next);
    }
    let Some(r) = next.rollout.as_mut() else {
        return Err(refuse(
            "it was published without a rollout plan (--stages): every client takes it already"
                .into(),
        ));
    };
    match change {
        Amendment::Advance { to } => {
            if let Some(p) = &r.paused {
                return Err(refuse(format!(
                    "it is paused ({}): resume it first",
                    p.reason
                )));
            }
            if r.is_complete() {
                return Err(refuse("its rollout is complete".into()));
            }
            let last = r.stages.len().saturating_sub(1);
            let target = to.unwrap_or(r.stage as usize + 1);
            if target <= r.stage as usize || target > last {
                return Err(refuse(format!(
                    "stage {target} is not after the current stage {} (the last is {last})",
                    r.stage
                )));
            }
            r.stage = u32::try_from(target).unwrap_or(u32::MAX);
            r.stage_started = now;
        }
        Amendment::Pause { reason } => {
            if let Some(p) = &r.paused {
                return Err(refuse(format!("it is paused already ({})", p.reason)));
            }
            if r.is_complete() {
                return Err(refuse(
                    "its rollout is complete: revoke it to move clients off it".into(),
                ));
            }
            r.paused = Some(Pause {
                at: now,
                reason: reason.clone(),
            });
        }
        Amendment::Resume => {
            if r.paused.is_none() {
                return Err(refuse("it is not paused".into()));
            }
            r.paused = None;
        }
        Amendment::Revoke { .. } => {}
    }
    Ok(next)
}

/// Changes one published release's rollout: re-signs targets (only that target's custom
/// metadata changes), snapshot and timestamp, and commits like [`publish`] (timestamp last,
/// create-only versioned metadata, `RepoError::Conflict` on a lost race).
pub async fn amend(
    storage: Arc<dyn Storage>,
    trusted_root: &[u8],
    keys: &OnlineKeys,
    version: u64,
    change: &Amendment,
    opts: &PublishOptions,
) -> Result<Amended, RepoError> {
    let _guard = storage.publish_guard().await?;
    let current = load_current(&storage, trusted_root).await?;
    let existing = current.targets();
    let mut next = Vec::with_capacity(existing.len());
    let mut found = None;
    for (n, t) in &existing {
        match TargetInfo::from_custom(&t.custom) {
            Some(TargetInfo::Full {
                db_version,
                min_engine_version,
                gate_override,
                release,
            }) if db_version == version => {
                let now = jiff::Timestamp::now().as_second();
                let after = amend_release(version, &release, change, now)?;
                let info = TargetInfo::Full {
                    db_version,
                    min_engine_version,
                    gate_override,
                    release: after.clone(),
                };
                let mut changed = t.clone();
                changed.custom = info.to_custom();
                next.push((n.clone(), changed));
                found = Some((release, after));
            }
            _ => next.push((n.clone(), t.clone())),
        }
    }
    let Some((before, after)) = found else {
        return Err(RepoError::UnknownVersion { version });
    };
    let (metadata_version, _, _) = commit(
        &storage,
        trusted_root,
        keys,
        &current,
        &existing,
        next,
        Vec::new(),
        opts,
    )
    .await?;
    info!(metadata_version, version, ?change, "amended a release");
    Ok(Amended {
        db_version: version,
        metadata_version,
        before,
        after,
    })
}

/// Signs `next` under the newest root and commits it: blobs, `N.targets.json`,
/// `N.snapshot.json` (create-only), a new root if one waits, and `timestamp.json` last, only
/// if it is still the one `current` was read from. Then reads the repository back as a client
/// would and collects garbage. Returns the metadata version, what was uploaded and deleted.
#[allow(clippy::too_many_arguments)]
async fn commit(
    storage: &Arc<dyn Storage>,
    trusted_root: &[u8],
    keys: &OnlineKeys,
    current: &Current,
    existing: &[(TargetName, Target)],
    next: Vec<(TargetName, Target)>,
    new_blobs: Vec<(TargetName, Target, Bytes)>,
    opts: &PublishOptions,
) -> Result<(u64, Vec<(String, u64)>, Vec<String>), RepoError> {
    // Sign the new metadata under the newest root.
    let m = current.metadata_version() + 1;
    let mv = NonZeroU64::new(m).unwrap_or(NonZeroU64::MIN);
    let work = tempfile::tempdir().map_err(|e| RepoError::io("creating", Path::new("temp"), e))?;
    let root_path = work.path().join("root.json");
    write_file(&root_path, &current.root)?;
    let mut editor = RepositoryEditor::new(&root_path)
        .await
        .map_err(|e| RepoError::tuf("reading the root", e))?;
    for (n, t) in &next {
        editor
            .add_target(n.clone(), t.clone())
            .map_err(|e| RepoError::tuf(format!("adding target {}", n.raw()), e))?;
    }
    editor
        .targets_version(mv)
        .map_err(|e| RepoError::tuf("targets version", e))?
        .targets_expires(tuf::expires_in(opts.expiry.targets))
        .map_err(|e| RepoError::tuf("targets expiry", e))?;
    editor
        .snapshot_version(mv)
        .snapshot_expires(tuf::expires_in(opts.expiry.snapshot))
        .timestamp_version(mv)
        .timestamp_expires(tuf::expires_in(opts.expiry.timestamp));
    let signed = editor
        .sign(&keys.boxed())
        .await
        .map_err(|e| RepoError::tuf("signing targets, snapshot and timestamp", e))?;
    let out = work.path().join("out");
    signed
        .write(&out)
        .await
        .map_err(|e| RepoError::tuf("writing metadata", e))?;
    let read = |name: String| -> Result<Bytes, RepoError> {
        let p = out.join(&name);
        std::fs::read(&p)
            .map(Bytes::from)
            .map_err(|e| RepoError::io("reading", &p, e))
    };
    let targets_json = read(format!("{m}.targets.json"))?;
    let snapshot_json = read(format!("{m}.snapshot.json"))?;
    let timestamp_json = read("timestamp.json".into())?;

    // Upload: blobs, targets, snapshot, (a new root), timestamp.
    let total: u64 = new_blobs.iter().map(|(_, _, b)| b.len() as u64).sum();
    let bar = progress_bar(opts.progress, total);
    let mut created: Vec<String> = Vec::new();
    let mut uploaded = Vec::new();
    for (n, t, bytes) in &new_blobs {
        let key = key_of(n, t);
        bar.set_message(n.raw().to_owned());
        match storage
            .put(&key, bytes.clone(), PutCondition::IfAbsent)
            .await
        {
            Ok(PutOutcome::Written { .. }) => created.push(key),
            // Content-addressed: same name, same bytes, unless the store is damaged.
            Ok(PutOutcome::PreconditionFailed) => match storage.head(&key).await? {
                Some(meta) if meta.len == t.length => {}
                _ => {
                    cleanup(storage, &created, &[]).await;
                    return Err(RepoError::Corrupt {
                        key,
                        why: "an object of another size already has this content address".into(),
                    });
                }
            },
            Err(e) => {
                cleanup(storage, &created, &[]).await;
                return Err(e.into());
            }
        }
        bar.inc(bytes.len() as u64);
        uploaded.push((n.raw().to_owned(), bytes.len() as u64));
    }
    bar.finish_and_clear();

    let mut created_meta = Vec::new();
    for (key, bytes) in [
        (layout::targets_key(m), targets_json),
        (layout::snapshot_key(m), snapshot_json),
    ] {
        match storage.put(&key, bytes, PutCondition::IfAbsent).await {
            Ok(PutOutcome::Written { .. }) => created_meta.push(key),
            Ok(PutOutcome::PreconditionFailed) => {
                cleanup(storage, &created, &created_meta).await;
                return Err(RepoError::Conflict {
                    version: m,
                    what: key,
                });
            }
            Err(e) => {
                cleanup(storage, &created, &created_meta).await;
                return Err(e.into());
            }
        }
    }
    if let Some((v, bytes)) = &current.root_to_upload {
        storage
            .put(
                &layout::root_key(*v),
                Bytes::from(bytes.clone()),
                PutCondition::IfAbsent,
            )
            .await?;
    }
    let cond = match &current.timestamp_etag {
        Some(etag) => PutCondition::IfMatch(etag.clone()),
        None => PutCondition::IfAbsent,
    };
    match storage.put(layout::TIMESTAMP, timestamp_json, cond).await {
        Ok(PutOutcome::Written { .. }) => {}
        Ok(PutOutcome::PreconditionFailed) => {
            cleanup(storage, &created, &created_meta).await;
            return Err(RepoError::Conflict {
                version: m,
                what: layout::TIMESTAMP.into(),
            });
        }
        Err(e) => {
            cleanup(storage, &created, &created_meta).await;
            return Err(e.into());
        }
    }
    // Committed. Check it reads back as a client would see it, then collect garbage.
    let check = tuf::load(StorageTransport::new(storage.clone()), trusted_root, false).await?;
    let found = check.timestamp().signed.version.get();
    if found != m {
        return Err(RepoError::NotVisible { expected: m, found });
    }
    let live: BTreeSet<String> = check
        .targets()
        .signed
        .targets
        .iter()
        .map(|(n, t)| key_of(n, t))
        .collect();
    let deleted = collect_garbage(storage.as_ref(), existing, &live, m, opts.gc_grace).await;
    Ok((m, uploaded, deleted))
}

/// Removes what a lost race left behind, but never a blob that a competing publisher's
/// targets metadata names: content addressing means an identical database has the same blob
/// name, and that publisher's `targets.json` is always written before its timestamp.
async fn cleanup(storage: &Arc<dyn Storage>, blobs: &[String], meta: &[String]) {
    let mut keep = BTreeSet::new();
    if let Ok(objs) = storage.list(layout::METADATA_DIR).await {
        for (key, _) in objs {
            if !key.ends_with(".targets.json") || meta.contains(&key) {
                continue;
            }
            if let Ok(Some((bytes, _))) = storage.get(&key).await {
                keep.extend(blob_keys_named_in(&bytes));
            }
        }
    }
    for key in blobs.iter().filter(|k| !keep.contains(*k)).chain(meta) {
        if let Err(e) = storage.delete(key).await {
            warn!(%key, error = %e, "could not remove an unpublished upload");
        }
    }
}

/// Blob keys listed in a targets.json, read without verification (only to decide what to keep).
fn blob_keys_named_in(targets_json: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(targets_json) else {
        return Vec::new();
    };
    let Some(map) = v["signed"]["targets"].as_object() else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(name, t)| {
            let sha = t["hashes"]["sha256"].as_str()?;
            Some(layout::target_key(sha, name))
        })
        .collect()
}

/// Deletes blobs that the previous metadata listed and the new one does not, orphans older
/// than the grace period, and versioned metadata more than two versions old.
async fn collect_garbage(
    storage: &dyn Storage,
    previous: &[(TargetName, Target)],
    live: &BTreeSet<String>,
    m: u64,
    grace: Duration,
) -> Vec<String> {
    let mut doomed: BTreeSet<String> = previous
        .iter()
        .map(|(n, t)| key_of(n, t))
        .filter(|k| !live.contains(k))
        .collect();
    let old_enough = |t: Option<SystemTime>| {
        t.and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age >= grace)
    };
    match storage.list(layout::TARGETS_DIR).await {
        Ok(objs) => {
            for (key, meta) in objs {
                if !live.contains(&key) && old_enough(meta.last_modified) {
                    doomed.insert(key);
                }
            }
        }
        Err(e) => warn!(error = %e, "listing targets for garbage collection"),
    }
    if let Ok(objs) = storage.list(layout::METADATA_DIR).await {
        for (key, meta) in objs {
            let name = key.trim_start_matches("metadata/");
            let version = name
                .strip_suffix(".targets.json")
                .or_else(|| name.strip_suffix(".snapshot.json"))
                .and_then(|v| v.parse::<u64>().ok());
            // Two older versions stay for clients that read the previous timestamp a moment ago.
            if version.is_some_and(|v| v + 2 < m) && old_enough(meta.last_modified) {
                doomed.insert(key);
            }
        }
    }
    let mut deleted = Vec::new();
    for key in doomed {
        match storage.delete(&key).await {
            Ok(()) => deleted.push(key),
            Err(e) => warn!(%key, error = %e, "garbage collection"),
        }
    }
    deleted
}

fn progress_bar(show: bool, total: u64) -> indicatif::ProgressBar {
    if !show || total == 0 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:30} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The newest database version the repository lists (0 if none), as verified from the root.
pub async fn current_db_version(
    storage: Arc<dyn Storage>,
    trusted_root: &[u8],
) -> Result<u64, RepoError> {
    let current = load_current(&storage, trusted_root).await?;
    Ok(current
        .targets()
        .iter()
        .filter_map(|(_, t)| match TargetInfo::from_custom(&t.custom) {
            Some(TargetInfo::Full { db_version, .. }) => Some(db_version),
            _ => None,
        })
        .max()
        .unwrap_or(0))
}

/// A full database the repository lists, with its release metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub db_version: u64,
    pub name: String,
    pub sha256: String,
    pub release: Release,
}

/// The full databases a loaded (verified) repository lists, oldest first.
pub fn listed_releases(repo: &tough::Repository) -> Vec<Listed> {
    let mut v: Vec<Listed> = repo
        .targets()
        .signed
        .targets
        .iter()
        .filter_map(|(n, t)| match TargetInfo::from_custom(&t.custom)? {
            TargetInfo::Full {
                db_version,
                release,
                ..
            } => Some(Listed {
                db_version,
                name: n.raw().to_owned(),
                sha256: hex::encode(&t.hashes.sha256),
                release,
            }),
            TargetInfo::Delta { .. } => None,
        })
        .collect();
    v.sort_by_key(|l| l.db_version);
    v
}

/// The full databases the repository in `storage` lists, verified from `trusted_root` as a
/// publisher reads them (expired metadata accepted: the next amendment renews it).
pub async fn releases(
    storage: Arc<dyn Storage>,
    trusted_root: &[u8],
) -> Result<Vec<Listed>, RepoError> {
    let current = load_current(&storage, trusted_root).await?;
    Ok(current
        .repo
        .as_ref()
        .map(listed_releases)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::rollout::{parse_plan, Revocation, Rollout};

    fn rel(channel: Option<&str>, plan: Option<&str>, stage: u32) -> Release {
        Release {
            channel: channel.map(str::to_owned),
            published: Some(0),
            rollout: plan.map(|p| Rollout {
                stage,
                ..Rollout::start(parse_plan(p).unwrap(), 0)
            }),
            revoked: None,
        }
    }

    #[test]
    fn retention_keeps_each_channels_newest_and_where_held_clients_are() {
        let mut r = BTreeMap::new();
        // stable: 1 and 2 complete, 9 rolling at its canary stage.
        r.insert(1, rel(None, None, 0));
        r.insert(2, rel(None, Some("canary,100%"), 1));
        r.insert(9, rel(None, Some("canary,100%"), 0));
        // beta publishes far more often.
        for v in 3..=8 {
            r.insert(v, rel(Some("beta"), None, 0));
        }
        let kept = retention(&r, 1, None);
        // stable's newest (9) and where its held-back clients stay (2); beta's newest (8).
        assert_eq!(kept.into_iter().collect::<Vec<_>>(), [2, 8, 9]);
        // A revoked 9 stays listed (its clients must read that), with 2 as their way back.
        r.get_mut(&9).unwrap().revoked = Some(Revocation {
            at: 1,
            reason: "bad".into(),
        });
        let kept = retention(&r, 1, None);
        assert_eq!(kept.into_iter().collect::<Vec<_>>(), [2, 8, 9]);
        let kept = retention(&r, 3, None);
        assert_eq!(kept.into_iter().collect::<Vec<_>>(), [1, 2, 6, 7, 8, 9]);
    }
}
