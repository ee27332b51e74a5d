//! TUF plumbing on top of tough: signing root.json, rotating it, and loading a repository
//! straight from storage (the publisher verifies what it builds on like any client does).

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;

use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use tough::editor::signed::SignedRole;
use tough::schema::{KeyHolder, RoleKeys, Root, Signed};
use tough::{
    ExpirationEnforcement, RepositoryLoader, Transport, TransportError, TransportErrorKind,
    TransportStream,
};
use url::Url;

use crate::error::RepoError;
use crate::keys::{Role, RoleKey};
use crate::storage::Storage;
use vigil_format::SecretKey;

/// How long each role's signature stays valid. The timestamp is short so a frozen mirror is
/// noticed; `vigil-build repo refresh` (or any publish) renews it.
#[derive(Clone, Debug)]
pub struct Expiry {
    pub root: SignedDuration,
    pub targets: SignedDuration,
    pub snapshot: SignedDuration,
    pub timestamp: SignedDuration,
}

impl Default for Expiry {
    fn default() -> Self {
        let days = |d: i64| SignedDuration::from_hours(24 * d);
        Self {
            root: days(365),
            targets: days(90),
            snapshot: days(90),
            timestamp: days(7),
        }
    }
}

/// Whole seconds, as tuftool does: sub-second timestamps serialise differently across tools.
pub(crate) fn expires_in(d: SignedDuration) -> Timestamp {
    let t = Timestamp::now().saturating_add(d).unwrap_or(Timestamp::MAX);
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn one() -> NonZeroU64 {
    NonZeroU64::MIN
}

/// A new root.json (version 1) listing one key per role, threshold 1, consistent snapshots on.
pub async fn create_root(keys: &[&RoleKey], expiry: &Expiry) -> Result<Vec<u8>, RepoError> {
    let mut root = Root {
        spec_version: "1.0.0".into(),
        consistent_snapshot: true,
        version: one(),
        expires: expires_in(expiry.root),
        keys: HashMap::new(),
        roles: HashMap::new(),
        _extra: HashMap::new(),
    };
    for role in Role::ALL {
        root.roles.insert(
            role.tuf(),
            RoleKeys {
                keyids: vec![],
                threshold: one(),
                _extra: HashMap::new(),
            },
        );
    }
    for key in keys {
        add_key(&mut root, key)?;
    }
    let root_key = keys
        .iter()
        .find(|k| k.role == Role::Root)
        .ok_or_else(|| RepoError::Key {
            role: "root",
            origin: "arguments".into(),
            message: "no root key given".into(),
        })?;
    sign_root(root, &[root_key], None).await
}

fn add_key(root: &mut Root, key: &RoleKey) -> Result<(), RepoError> {
    let tuf_key = key.tuf_key()?;
    let id = tuf_key.key_id().map_err(|e| RepoError::tuf("key id", e))?;
    root.keys.insert(id.clone(), tuf_key);
    if let Some(rk) = root.roles.get_mut(&key.role.tuf()) {
        rk.keyids.push(id);
    }
    Ok(())
}

/// Signs `root` with `keys`, and, for a rotation, with the previous root's keys too, so a
/// client that trusts only the previous root accepts it.
async fn sign_root(
    root: Root,
    keys: &[&RoleKey],
    previous: Option<(&Root, &[&RoleKey])>,
) -> Result<Vec<u8>, RepoError> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let boxed = |ks: &[&RoleKey]| -> Vec<Box<dyn tough::key_source::KeySource>> {
        ks.iter()
            .map(|k| RoleKey::new(k.role, SecretKey::from_seed(k.secret().seed())).boxed())
            .collect()
    };
    let signed = SignedRole::new(
        root.clone(),
        &KeyHolder::Root(root.clone()),
        &boxed(keys),
        &rng,
    )
    .await
    .map_err(|e| RepoError::tuf("signing root.json", e))?;
    let signed = match previous {
        None => signed,
        Some((old, old_keys)) => {
            let cross =
                SignedRole::new(root, &KeyHolder::Root(old.clone()), &boxed(old_keys), &rng)
                    .await
                    .map_err(|e| {
                        RepoError::tuf("cross-signing root.json with the old root key", e)
                    })?;
            signed
                .add_old_signatures(cross.signed().signatures.clone())
                .map_err(|e| RepoError::tuf("merging root signatures", e))?
        }
    };
    Ok(signed.buffer().clone())
}

pub fn parse_root(bytes: &[u8]) -> Result<Signed<Root>, RepoError> {
    serde_json::from_slice(bytes).map_err(|e| RepoError::tuf("parsing root.json", e))
}

/// The next root: version + 1, `new_keys` replacing the keys of their roles, signed by the new
/// root key and cross-signed by the old one.
pub async fn rotate_root(
    old_bytes: &[u8],
    old_root_key: &RoleKey,
    new_keys: &[&RoleKey],
    expiry: &Expiry,
) -> Result<Vec<u8>, RepoError> {
    let old = parse_root(old_bytes)?.signed;
    let mut root = old.clone();
    root.version = old.version.saturating_add(1);
    root.expires = expires_in(expiry.root);
    for key in new_keys {
        if let Some(rk) = root.roles.get_mut(&key.role.tuf()) {
            rk.keyids.clear();
        }
    }
    for key in new_keys {
        add_key(&mut root, key)?;
    }
    // Drop keys no role lists any more.
    let used: Vec<_> = root
        .roles
        .values()
        .flat_map(|r| r.keyids.iter().cloned())
        .collect();
    root.keys.retain(|id, _| used.contains(id));
    let new_root_key = new_keys
        .iter()
        .copied()
        .find(|k| k.role == Role::Root)
        .unwrap_or(old_root_key);
    sign_root(root, &[new_root_key], Some((&old, &[old_root_key]))).await
}

/// Lets tough read a repository straight out of a [`Storage`], with URLs of the form
/// `vigil-storage:///metadata/…`. `pinned` answers chosen keys from memory: the publisher pins
/// the timestamp.json whose ETag it will compare-and-swap against, so the two cannot disagree.
#[derive(Clone, Debug)]
pub struct StorageTransport {
    storage: Arc<dyn Storage>,
    pinned: Arc<HashMap<String, Bytes>>,
}

impl StorageTransport {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            pinned: Arc::new(HashMap::new()),
        }
    }

    pub fn pin(mut self, key: &str, bytes: Bytes) -> Self {
        Arc::make_mut(&mut self.pinned).insert(key.to_owned(), bytes);
        self
    }

    pub fn metadata_url() -> Url {
        #[allow(clippy::unwrap_used)] // a constant that parses
        Url::parse("vigil-storage:///metadata/").unwrap()
    }

    pub fn targets_url() -> Url {
        #[allow(clippy::unwrap_used)] // a constant that parses
        Url::parse("vigil-storage:///targets/").unwrap()
    }
}

#[tough::async_trait]
impl Transport for StorageTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        if url.scheme() != "vigil-storage" {
            return Err(TransportError::new(
                TransportErrorKind::UnsupportedUrlScheme,
                url,
            ));
        }
        let key = url.path().trim_start_matches('/').to_owned();
        if let Some(b) = self.pinned.get(&key) {
            let b = b.clone();
            return Ok(Box::pin(futures::stream::iter([Ok(b)])));
        }
        match self.storage.get(&key).await {
            Ok(Some((bytes, _))) => Ok(Box::pin(futures::stream::iter([Ok(bytes)]))),
            Ok(None) => Err(TransportError::new(TransportErrorKind::FileNotFound, url)),
            Err(e) => Err(TransportError::new_with_cause(
                TransportErrorKind::Other,
                url,
                e,
            )),
        }
    }
}

/// Loads and verifies the repository in `storage` from a trusted root, walking any root
/// rotations. Expired metadata is accepted when `allow_expired` (a publisher renews it).
pub async fn load(
    transport: StorageTransport,
    trusted_root: &[u8],
    allow_expired: bool,
) -> Result<tough::Repository, RepoError> {
    RepositoryLoader::new(
        &trusted_root,
        StorageTransport::metadata_url(),
        StorageTransport::targets_url(),
    )
    .transport(transport)
    .expiration_enforcement(if allow_expired {
        ExpirationEnforcement::Unsafe
    } else {
        ExpirationEnforcement::Safe
    })
    .load()
    .await
    .map_err(|e| RepoError::tuf("loading the repository's metadata", e))
}
