//! Publishing into a directory repository, read back through tough's verifying loader.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use vigil_format::delta::Delta;
use vigil_repository::layout::{self, TargetInfo};
use vigil_repository::publish::{self, OnlineKeys, PublishOptions};
use vigil_repository::storage::{DirStorage, Storage};
use vigil_repository::tuf::{self, Expiry, StorageTransport};
use vigil_repository::RepoError;

/// A database big enough that a delta is worth making: `n` body signatures, the last `extra`
/// of them new in this version.
fn db(version: u64, n: usize) -> Vec<u8> {
    vigil_tests::sample_db(version, n, 0xdead_beef)
}

struct Repo {
    _dir: tempfile::TempDir,
    storage: Arc<dyn Storage>,
    keys: std::path::PathBuf,
}

async fn init() -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let storage: Arc<dyn Storage> = Arc::new(DirStorage::new(dir.path().join("repo")));
    let report = publish::init(storage.as_ref(), &keys, &Expiry::default())
        .await
        .unwrap();
    assert_eq!(report.generated.len(), 4);
    Repo {
        _dir: dir,
        storage,
        keys,
    }
}

impl Repo {
    fn root(&self) -> Vec<u8> {
        std::fs::read(self.keys.join("root.json")).unwrap()
    }

    async fn publish(
        &self,
        db: Option<Vec<u8>>,
        keep: usize,
    ) -> Result<publish::Published, RepoError> {
        let opts = PublishOptions {
            keep,
            gc_grace: std::time::Duration::ZERO,
            ..PublishOptions::default()
        };
        publish::publish(
            self.storage.clone(),
            &self.root(),
            &OnlineKeys::load(&self.keys).unwrap(),
            db,
            &opts,
        )
        .await
    }

    async fn load(&self, root: &[u8]) -> tough::Repository {
        tuf::load(StorageTransport::new(self.storage.clone()), root, false)
            .await
            .unwrap()
    }

    fn files(&self, sub: &str) -> BTreeSet<String> {
        let d = Path::new(&self.storage.location()).join(sub);
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| format!("{sub}/{}", e.unwrap().file_name().to_string_lossy()))
            .filter(|k| !k.contains("/.tmp-"))
            .collect()
    }
}

fn listed(repo: &tough::Repository) -> Vec<(String, TargetInfo, String)> {
    let mut v: Vec<_> = repo
        .targets()
        .signed
        .targets
        .iter()
        .map(|(n, t)| {
            (
                n.raw().to_owned(),
                TargetInfo::from_custom(&t.custom).unwrap(),
                layout::target_key(&hex::encode(&t.hashes.sha256), n.raw()),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test]
async fn three_versions_with_deltas_and_garbage_collection() {
    let r = init().await;
    let dbs: Vec<Vec<u8>> = (1..=3).map(|v| db(v, 2000 + v as usize)).collect();
    for (i, d) in dbs.iter().enumerate() {
        let p = r.publish(Some(d.clone()), 1).await.unwrap();
        assert_eq!(p.db_version, Some(i as u64 + 1));
        assert_eq!(p.metadata_version, i as u64 + 1);
    }
    let repo = r.load(&r.root()).await;
    let names: Vec<_> = listed(&repo).into_iter().map(|(n, _, _)| n).collect();
    // keep = 1: the previous full database, the new one, and the delta between them.
    assert_eq!(names, ["vigil-2-3.vdelta", "vigil-2.vdb", "vigil-3.vdb"]);
    let (_, info, key) = listed(&repo).remove(0);
    match info {
        TargetInfo::Delta {
            db_version,
            base_version,
            ..
        } => assert_eq!((db_version, base_version), (3, 2)),
        other => panic!("{other:?}"),
    }
    let (delta, _) = r.storage.get(&key).await.unwrap().unwrap();
    assert!(delta.len() < 4096, "delta is {} bytes", delta.len());
    assert_eq!(Delta::apply(&dbs[1], &delta).unwrap(), dbs[2]);
    // Blobs of version 1 and the 1->2 delta are gone; everything listed is present.
    let live: BTreeSet<String> = listed(&repo).into_iter().map(|(_, _, k)| k).collect();
    assert_eq!(r.files("targets"), live);
    // Public files: a web server running as another user must be able to read them.
    #[cfg(unix)]
    for key in live.iter().chain([&layout::TIMESTAMP.to_owned()]) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(Path::new(&r.storage.location()).join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "{key}");
    }
    // Every root stays (clients walk the chain), and the live versioned metadata is there.
    assert!(r.files("metadata").contains("metadata/1.root.json"));
    assert!(r.files("metadata").contains("metadata/3.targets.json"));
}

#[tokio::test]
async fn refuses_versions_that_do_not_grow_and_changes_nothing() {
    let r = init().await;
    r.publish(Some(db(5, 1500)), 5).await.unwrap();
    let before = std::fs::read(Path::new(&r.storage.location()).join(layout::TIMESTAMP)).unwrap();
    for v in [5, 4] {
        match r.publish(Some(db(v, 1600)), 5).await {
            Err(RepoError::VersionNotNewer { version, current }) => {
                assert_eq!((version, current), (v, 5))
            }
            other => panic!("version {v}: {other:?}"),
        }
    }
    let after = std::fs::read(Path::new(&r.storage.location()).join(layout::TIMESTAMP)).unwrap();
    assert_eq!(before, after);
    assert_eq!(r.files("targets").len(), 1);
}

#[tokio::test]
async fn racing_directory_publishers_are_serialised_by_the_lock() {
    let r = init().await;
    r.publish(Some(db(1, 1500)), 5).await.unwrap();
    let (a, b) = tokio::join!(
        r.publish(Some(db(2, 1501)), 5),
        r.publish(Some(db(2, 1502)), 5)
    );
    let wins = [&a, &b].iter().filter(|x| x.is_ok()).count();
    assert_eq!(wins, 1, "{a:?} {b:?}");
    let loser = if a.is_ok() { b } else { a };
    assert!(
        matches!(loser, Err(RepoError::VersionNotNewer { .. })),
        "{loser:?}"
    );
    let repo = r.load(&r.root()).await;
    assert_eq!(repo.timestamp().signed.version.get(), 2);
    let live: BTreeSet<String> = listed(&repo).into_iter().map(|(_, _, k)| k).collect();
    assert_eq!(r.files("targets"), live, "dangling or missing blobs");
}

#[tokio::test]
async fn root_rotation_is_followed_from_the_old_root() {
    let r = init().await;
    r.publish(Some(db(1, 1500)), 5).await.unwrap();
    let old_root = r.root();
    let v = publish::rotate_root(
        &r.keys,
        &[
            vigil_repository::keys::Role::Root,
            vigil_repository::keys::Role::Timestamp,
        ],
        &Expiry::default(),
    )
    .await
    .unwrap();
    assert_eq!(v, 2);
    assert!(r.keys.join("root.key.v1").exists());
    // The repository does not have root 2 until the next publish uploads it.
    assert!(r
        .storage
        .head(&layout::root_key(2))
        .await
        .unwrap()
        .is_none());
    r.publish(Some(db(2, 1501)), 5).await.unwrap();
    assert!(r
        .storage
        .head(&layout::root_key(2))
        .await
        .unwrap()
        .is_some());
    // A client that still ships root 1 walks to root 2 and accepts the new timestamp key.
    let repo = r.load(&old_root).await;
    assert_eq!(repo.root().signed.version.get(), 2);
    assert_eq!(repo.timestamp().signed.version.get(), 2);
}

#[tokio::test]
async fn refresh_renews_an_expired_timestamp() {
    let r = init().await;
    let expired = PublishOptions {
        expiry: Expiry {
            timestamp: jiff::SignedDuration::from_secs(-60),
            ..Expiry::default()
        },
        ..PublishOptions::default()
    };
    publish::publish(
        r.storage.clone(),
        &r.root(),
        &OnlineKeys::load(&r.keys).unwrap(),
        Some(db(1, 1500)),
        &expired,
    )
    .await
    .expect_err("the publisher's own read-back refuses expired metadata");
    let loaded = tuf::load(StorageTransport::new(r.storage.clone()), &r.root(), false).await;
    assert!(loaded.is_err(), "an expired timestamp must not load");
    let p = r.publish(None, 5).await.unwrap();
    assert_eq!(p.db_version, None);
    let repo = r.load(&r.root()).await;
    assert_eq!(repo.timestamp().signed.version.get(), 2);
    assert_eq!(listed(&repo).len(), 1, "refresh keeps the targets");
}

#[tokio::test]
async fn a_damaged_base_blob_stops_the_publish() {
    let r = init().await;
    r.publish(Some(db(1, 1500)), 5).await.unwrap();
    let blob = r.files("targets").into_iter().next().unwrap();
    let path = Path::new(&r.storage.location()).join(&blob);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    match r.publish(Some(db(2, 1501)), 5).await {
        Err(RepoError::Corrupt { key, .. }) => assert_eq!(key, blob),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.load(&r.root()).await.timestamp().signed.version.get(), 1);
}

#[tokio::test]
async fn init_twice_is_refused() {
    let r = init().await;
    match publish::init(r.storage.as_ref(), &r.keys, &Expiry::default()).await {
        Err(RepoError::AlreadyInitialized(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn old_metadata_generations_are_collected() {
    let r = init().await;
    for v in 1..=5 {
        r.publish(Some(db(v, 1000)), 1).await.unwrap();
    }
    let meta = r.files("metadata");
    for v in 3..=5 {
        assert!(
            meta.contains(&format!("metadata/{v}.targets.json")),
            "{meta:?}"
        );
        assert!(
            meta.contains(&format!("metadata/{v}.snapshot.json")),
            "{meta:?}"
        );
    }
    for v in 1..=2 {
        assert!(
            !meta.contains(&format!("metadata/{v}.targets.json")),
            "{meta:?}"
        );
        assert!(
            !meta.contains(&format!("metadata/{v}.snapshot.json")),
            "{meta:?}"
        );
    }
    assert!(meta.contains("metadata/1.root.json"));
}

/// Deltas lead only to the newest version, so targets.json (fetched at every update) stays
/// small: with keep = 3 and four versions, three full predecessors and three deltas into 4.
#[tokio::test]
async fn deltas_lead_only_to_the_newest_version() {
    let r = init().await;
    for v in 1..=4u64 {
        r.publish(Some(db(v, 2000 + v as usize)), 3).await.unwrap();
    }
    let repo = r.load(&r.root()).await;
    let names: Vec<_> = listed(&repo).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(
        names,
        [
            "vigil-1-4.vdelta",
            "vigil-1.vdb",
            "vigil-2-4.vdelta",
            "vigil-2.vdb",
            "vigil-3-4.vdelta",
            "vigil-3.vdb",
            "vigil-4.vdb"
        ]
    );
    let live: BTreeSet<String> = listed(&repo).into_iter().map(|(_, _, k)| k).collect();
    assert_eq!(r.files("targets"), live, "older deltas are collected");
}
