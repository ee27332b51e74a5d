//! The repository in a real S3-compatible server (s3s-fs on 127.0.0.1 with SigV4), published
//! by the library and by `vigil-build publish`, served by `vigil-server`, read back by tough's
//! HTTP loader; and two publishers racing for the same version.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::Arc;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use vigil_repository::layout::{self, TargetInfo};
use vigil_repository::publish::{self, OnlineKeys, PublishOptions};
use vigil_repository::storage::{S3Location, S3Storage, Storage};
use vigil_repository::tuf::{self, Expiry, StorageTransport};
use vigil_repository::RepoError;
use vigil_tests::s3::{S3Server, ACCESS_KEY, BUCKET, SECRET_KEY};
use vigil_tests::{bin, free_port, wait_for_port, ChildGuard};

const PREFIX: &str = "feeds/main";

fn db(version: u64, n: usize) -> Vec<u8> {
    vigil_tests::sample_db(version, n, 0x5eed)
}

fn storage(s3: &S3Server) -> Arc<dyn Storage> {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(s3.endpoint())
        .force_path_style(true)
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .build();
    let loc = S3Location::parse(&format!("s3://{BUCKET}/{PREFIX}"))
        .unwrap()
        .unwrap();
    Arc::new(S3Storage::from_client(
        aws_sdk_s3::Client::from_conf(conf),
        loc,
    ))
}

fn opts() -> PublishOptions {
    PublishOptions {
        keep: 2,
        gc_grace: std::time::Duration::ZERO,
        ..PublishOptions::default()
    }
}

/// Every blob in the bucket is listed by the live metadata, and every listed blob is there.
async fn assert_nothing_dangles(
    s3: &S3Server,
    st: &Arc<dyn Storage>,
    root: &[u8],
) -> tough::Repository {
    let repo = tuf::load(StorageTransport::new(st.clone()), root, false)
        .await
        .unwrap();
    let live: BTreeSet<String> = repo
        .targets()
        .signed
        .targets
        .iter()
        .map(|(n, t)| {
            format!(
                "{PREFIX}/{}",
                layout::target_key(&hex::encode(&t.hashes.sha256), n.raw())
            )
        })
        .collect();
    let stored: BTreeSet<String> = s3
        .objects(&format!("{PREFIX}/targets"))
        .into_iter()
        .collect();
    assert_eq!(stored, live, "bucket blobs vs. live metadata");
    repo
}

/// A started S3 server, the repository in it initialised, the TUF keys and the trusted root.
async fn setup() -> (S3Server, Arc<dyn Storage>, tempfile::TempDir, Vec<u8>) {
    let s3 = S3Server::start().await;
    let st = storage(&s3);
    let keys = tempfile::tempdir().unwrap();
    publish::init(st.as_ref(), keys.path(), &Expiry::default())
        .await
        .unwrap();
    let root = std::fs::read(keys.path().join("root.json")).unwrap();
    (s3, st, keys, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_versions_published_to_s3_read_back_through_vigil_server() {
    let (s3, st, keys, root) = setup().await;
    let online = OnlineKeys::load(keys.path()).unwrap();
    let dbs: Vec<Vec<u8>> = (1..=3).map(|v| db(v, 3000 + v as usize)).collect();
    for d in &dbs[..2] {
        publish::publish(st.clone(), &root, &online, Some(d.clone()), &opts())
            .await
            .unwrap();
    }
    // The third through the CLI and the standard AWS credential chain.
    let work = tempfile::tempdir().unwrap();
    let db3 = work.path().join("vigil-3.vdb");
    std::fs::write(&db3, &dbs[2]).unwrap();
    let cli_publish = || {
        Command::new(bin("vigil-build"))
            .args(["publish", "--repo", &format!("s3://{BUCKET}/{PREFIX}")])
            .args(["--s3-endpoint", &s3.endpoint(), "--s3-path-style"])
            .arg("--tuf-keys")
            .arg(keys.path())
            .arg("--db")
            .arg(&db3)
            .args(["--keep", "2", "--gc-grace", "0"])
            .envs(s3.env())
            .output()
            .unwrap()
    };
    let out = cli_publish();
    assert!(
        out.status.success(),
        "vigil-build publish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Publishing version 3 again is refused with its own exit code.
    let again = cli_publish();
    assert_eq!(
        again.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    assert_nothing_dangles(&s3, &st, &root).await;

    // Serve the bucket and read everything back over HTTP with tough's verifying loader.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _server = ChildGuard(
        Command::new(bin("vigil-server"))
            .args([
                "--repo",
                &format!("s3://{BUCKET}/{PREFIX}"),
                "--listen",
                &addr,
            ])
            .args(["--s3-endpoint", &s3.endpoint(), "--s3-path-style"])
            .envs(s3.env())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(&addr, 30);
    let base = url::Url::parse(&format!("http://{addr}/")).unwrap();
    let repo = tough::RepositoryLoader::new(
        &root,
        base.join("metadata/").unwrap(),
        base.join("targets/").unwrap(),
    )
    .transport(tough::HttpTransportBuilder::new().build())
    .load()
    .await
    .unwrap();
    assert_eq!(repo.timestamp().signed.version.get(), 3);
    let mut names: Vec<String> = repo
        .targets()
        .signed
        .targets
        .keys()
        .map(|n| n.raw().to_owned())
        .collect();
    names.sort();
    // keep = 2: versions 1..3 in full and deltas into the newest only (1->3, 2->3).
    assert_eq!(
        names,
        [
            "vigil-1-3.vdelta",
            "vigil-1.vdb",
            "vigil-2-3.vdelta",
            "vigil-2.vdb",
            "vigil-3.vdb"
        ]
    );
    for (v, d) in dbs.iter().enumerate() {
        let name = tough::TargetName::new(layout::full_name(v as u64 + 1)).unwrap();
        let t = &repo.targets().signed.targets[&name];
        // Every release is stamped with its publish time; the rest is as before rollouts.
        let mut info = TargetInfo::from_custom(&t.custom);
        if let Some(TargetInfo::Full { release, .. }) = &mut info {
            assert!(release.published.take().is_some(), "published is stamped");
        }
        assert_eq!(
            info,
            Some(TargetInfo::Full {
                db_version: v as u64 + 1,
                min_engine_version: vigil_format::container::Parsed::parse(d)
                    .unwrap()
                    .header
                    .min_engine_version,
                gate_override: None,
                release: Default::default(),
            })
        );
        let stream = repo.read_target(&name).await.unwrap().unwrap();
        let bytes = tough::IntoVec::into_vec(stream).await.unwrap();
        assert_eq!(
            &bytes,
            d,
            "version {} read back through vigil-server",
            v + 1
        );
    }
    let delta = tough::TargetName::new(layout::delta_name(2, 3)).unwrap();
    let bytes = tough::IntoVec::into_vec(repo.read_target(&delta).await.unwrap().unwrap())
        .await
        .unwrap();
    assert_eq!(
        vigil_format::delta::Delta::apply(&dbs[1], &bytes).unwrap(),
        dbs[2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_s3_publishers_one_wins_nothing_regresses_nothing_dangles() {
    let (s3, st, keys, root) = setup().await;
    let online = Arc::new(OnlineKeys::load(keys.path()).unwrap());
    publish::publish(st.clone(), &root, &online, Some(db(1, 2000)), &opts())
        .await
        .unwrap();
    for round in 2..=4u64 {
        // Two CI jobs publish different builds of the same version at the same moment.
        let run = |n: usize| {
            let (st, root, online) = (st.clone(), root.clone(), online.clone());
            tokio::spawn(async move {
                publish::publish(st, &root, &online, Some(db(round, 2000 + n)), &opts()).await
            })
        };
        let (a, b) = tokio::join!(run(1), run(2));
        let (a, b) = (a.unwrap(), b.unwrap());
        let wins = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {a:?} / {b:?}");
        let loser = if a.is_ok() { &b } else { &a };
        assert!(
            matches!(
                loser,
                Err(RepoError::Conflict { .. } | RepoError::VersionNotNewer { .. })
            ),
            "round {round}: {loser:?}"
        );
        let repo = assert_nothing_dangles(&s3, &st, &root).await;
        let newest = repo
            .targets()
            .signed
            .targets
            .values()
            .filter_map(|t| TargetInfo::from_custom(&t.custom))
            .map(|i| i.db_version())
            .max();
        assert_eq!(newest, Some(round), "round {round}: the winner is live");
        assert_eq!(repo.timestamp().signed.version.get(), round);
    }
    // A stale publisher can never roll the repository back.
    match publish::publish(st.clone(), &root, &online, Some(db(3, 2100)), &opts()).await {
        Err(RepoError::VersionNotNewer {
            version: 3,
            current: 4,
        }) => {}
        other => panic!("{other:?}"),
    }
}

/// Two operators (or a scheduled `rollout advance` and an operator's `pause`) amend the same
/// rolling release at the same moment: each commits like a publish, so one wins, the loser gets
/// `Conflict` (the CLI's exit 4) and nothing of it is live, and the release carries exactly the
/// winners' changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_s3_amendments_one_wins_the_loser_writes_nothing() {
    use publish::Amendment;
    let (s3, st, keys, root) = setup().await;
    let online = Arc::new(OnlineKeys::load(keys.path()).unwrap());
    publish::publish(st.clone(), &root, &online, Some(db(1, 2000)), &opts())
        .await
        .unwrap();
    let staged = PublishOptions {
        stages: Some(vigil_repository::rollout::parse_plan("canary,50%,100%").unwrap()),
        ..opts()
    };
    let mut conflicts = 0;
    for round in 2..=5u64 {
        publish::publish(st.clone(), &root, &online, Some(db(round, 2000)), &staged)
            .await
            .unwrap();
        let before = tuf::load(StorageTransport::new(st.clone()), &root, false)
            .await
            .unwrap()
            .timestamp()
            .signed
            .version
            .get();
        let run = |change: Amendment| {
            let (st, root, online) = (st.clone(), root.clone(), online.clone());
            tokio::spawn(async move {
                publish::amend(st, &root, &online, round, &change, &opts()).await
            })
        };
        let (adv, pause) = tokio::join!(
            run(Amendment::Advance { to: None }),
            run(Amendment::Pause {
                reason: format!("operator, round {round}"),
            })
        );
        let (adv, pause) = (adv.unwrap(), pause.unwrap());
        for r in [&adv, &pause] {
            assert!(
                matches!(
                    r,
                    Ok(_) | Err(RepoError::Conflict { .. } | RepoError::InvalidAmendment { .. })
                ),
                "round {round}: {r:?}"
            );
        }
        let won = [&adv, &pause].iter().filter(|r| r.is_ok()).count();
        assert!(won >= 1, "round {round}: {adv:?} / {pause:?}");
        if [&adv, &pause]
            .iter()
            .any(|r| matches!(r, Err(RepoError::Conflict { .. })))
        {
            conflicts += 1;
        }
        let repo = assert_nothing_dangles(&s3, &st, &root).await;
        assert_eq!(
            repo.timestamp().signed.version.get(),
            before + won as u64,
            "round {round}: one metadata version per winner"
        );
        let name = tough::TargetName::new(layout::full_name(round)).unwrap();
        let info = TargetInfo::from_custom(&repo.targets().signed.targets[&name].custom).unwrap();
        let rollout = info.release().unwrap().rollout.clone().unwrap();
        assert_eq!(
            rollout.stage,
            u32::from(adv.is_ok()),
            "round {round}: advanced only if the advance won"
        );
        assert_eq!(
            rollout.paused.is_some(),
            pause.is_ok(),
            "round {round}: paused only if the pause won"
        );
    }
    assert!(
        conflicts >= 1,
        "concurrent amendments never collided in 4 rounds: the race was not exercised"
    );
}
