//! The live release: the newest full database a repository lists, read as a client reads it.
//!
//! What `vigil-build diff`, `info` and `publish` compare a candidate with. The repository is
//! loaded from a trusted root through tough, so the metadata and the database bytes are the
//! ones the targets key signed; whether the database's own signature checks out is the
//! caller's business (it holds the database keys, this crate does not).

use std::sync::Arc;

use tough::schema::Target;
use tough::TargetName;

use crate::error::RepoError;
use crate::layout::{self, TargetInfo};
use crate::storage::Storage;
use crate::tuf::{self, StorageTransport};

/// The newest full database of a repository, with its target metadata.
#[derive(Clone, Debug)]
pub struct LiveDatabase {
    /// Target name, e.g. `vigil-7.vdb`.
    pub name: String,
    /// Its custom metadata: version, minimum engine, gate override.
    pub info: TargetInfo,
    /// Hex SHA-256 of `bytes`, as targets.json lists it.
    pub sha256: String,
    pub bytes: Vec<u8>,
}

/// The full-database target with the highest version among the targets the repository lists
/// (ours only: targets without our metadata are ignored).
pub fn newest_full(repo: &tough::Repository) -> Option<(TargetName, Target, TargetInfo)> {
    repo.targets()
        .signed
        .targets
        .iter()
        .filter_map(|(n, t)| match TargetInfo::from_custom(&t.custom) {
            Some(info @ TargetInfo::Full { .. }) => Some((n.clone(), t.clone(), info)),
            _ => None,
        })
        .max_by_key(|(_, _, info)| info.db_version())
}

/// Downloads the newest full database of a loaded repository; tough checks its length and
/// SHA-256 against targets.json while reading. `None` when the repository lists none.
pub async fn fetch_newest(repo: &tough::Repository) -> Result<Option<LiveDatabase>, RepoError> {
    let Some((name, target, info)) = newest_full(repo) else {
        return Ok(None);
    };
    let stream = repo
        .read_target(&name)
        .await
        .map_err(|e| RepoError::tuf(format!("fetching {}", name.raw()), e))?
        .ok_or_else(|| RepoError::Corrupt {
            key: name.raw().to_owned(),
            why: "listed in targets.json but not readable".into(),
        })?;
    let bytes = tough::IntoVec::into_vec(stream)
        .await
        .map_err(|e| RepoError::tuf(format!("downloading {}", name.raw()), e))?;
    Ok(Some(LiveDatabase {
        name: name.raw().to_owned(),
        info,
        sha256: hex::encode(&target.hashes.sha256),
        bytes,
    }))
}

/// The live database of the repository in `storage`, verified from `trusted_root`. `None` for
/// a repository that was initialised but never published. Expired metadata is accepted only
/// with `allow_expired` (a publisher about to renew it may; a reader should not).
pub async fn from_storage(
    storage: Arc<dyn Storage>,
    trusted_root: &[u8],
    allow_expired: bool,
) -> Result<Option<LiveDatabase>, RepoError> {
    if storage.head(&layout::root_key(1)).await?.is_none() {
        return Err(RepoError::NotInitialized(storage.location()));
    }
    if storage.head(layout::TIMESTAMP).await?.is_none() {
        return Ok(None);
    }
    let repo = tuf::load(StorageTransport::new(storage), trusted_root, allow_expired).await?;
    fetch_newest(&repo).await
}
