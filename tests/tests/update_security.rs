//! The updater against the TUF attack list and broken networks, each over real HTTP servers on
//! 127.0.0.1 (vigil-server, and the fault-injecting server in `vigil_tests::fault`) with
//! `vigil-update` run as a real process. In every case the database that was active stays
//! active and byte-identical, and nothing that failed a check is installed.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tough::editor::RepositoryEditor;
use tough::schema::{Hashes, Target};
use tough::TargetName;
use vigil_format::delta::Delta;
use vigil_format::SecretKey;
use vigil_repository::keys::{Role, RoleKey};
use vigil_repository::layout::{self, TargetInfo};
use vigil_repository::tuf::Expiry;
use vigil_tests::fault::{Fault, FaultServer};
use vigil_tests::updater::{database, vigil_server, Client, Repo, Run, Server};

const UPDATED: i32 = 0;
const UP_TO_DATE: i32 = 1;
const NETWORK: i32 = 3;
const VERIFY: i32 = 4;
const REJECTED: i32 = 5;
const LOCAL: i32 = 6;

/// A repository with version 1 published and a client that installed it through vigil-server.
fn with_v1() -> (Repo, Vec<u8>, Client, Server) {
    let repo = Repo::new();
    let v1 = repo.publish(1);
    let server = vigil_server(&repo.dir);
    let client = Client::new(&repo.tmp.path().join("client"), &repo, &[&server.url], "");
    let r = client.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    assert_eq!(client.active().as_deref(), Some(&v1[..]));
    (repo, v1, client, server)
}

/// The client's only mirror is `url` from now on.
fn point_at(client: &Client, repo: &Repo, url: &str, extra: &str) {
    client.write_config(repo, &[url], extra);
}

#[track_caller]
fn assert_kept(client: &Client, v1: &[u8], r: &Run) {
    assert_eq!(
        client.active().as_deref(),
        Some(v1),
        "the active database changed:\n{}",
        r.stderr
    );
}

#[test]
fn arbitrary_database_signed_with_an_unknown_key_is_rejected_and_marked_bad() {
    let (repo, v1, client, _server) = with_v1();
    // TUF-valid (the repository's keys list it), but not signed with a key the client trusts.
    let forged = database(2, repo.filler, &SecretKey::from_seed([9; 32]), 1);
    repo.publish_db(&forged);
    let server = vigil_server(&repo.dir);
    point_at(&client, &repo, &server.url, "");
    let r = client.update();
    assert_eq!(r.code, REJECTED, "{}", r.stderr);
    assert!(r.stderr.contains("version 2 rejected"), "{}", r.stderr);
    assert_kept(&client, &v1, &r);
    assert_eq!(
        client.state()["bad"]["2"]["sha256"],
        hex::encode(Sha256::digest(&forged))
    );
    // Marked bad: the next check neither downloads nor retries it.
    let r = client.update();
    assert_eq!(r.code, UP_TO_DATE, "{}", r.stderr);
    assert!(r.stderr.contains("failed here before"), "{}", r.stderr);
    assert_kept(&client, &v1, &r);
}

#[test]
fn database_failing_the_smoke_test_is_not_activated() {
    let (repo, v1, client, _server) = with_v1();
    // Signed with the right key and loads, but detects nothing: EICAR must be found.
    let mut b = vigil_format::container::DatabaseBuilder::new(2, 1);
    b.section(
        vigil_format::container::SectionKind::Ndb,
        1,
        b"Vigil.Test.Other:0:*:0102030405060708090a0b\n".to_vec(),
    );
    let blind = b.build(&repo.key).unwrap();
    repo.publish_db(&blind);
    let server = vigil_server(&repo.dir);
    point_at(&client, &repo, &server.url, "");
    let r = client.update();
    assert_eq!(r.code, REJECTED, "{}", r.stderr);
    assert!(r.stderr.contains("EICAR was not detected"), "{}", r.stderr);
    assert_kept(&client, &v1, &r);
    // A fixed version 3 is taken.
    let v3 = repo.publish(3);
    let r = client.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    assert_eq!(client.active().unwrap(), v3);
    assert_eq!(client.last_known_good().unwrap(), v1);
}

#[test]
fn tampered_database_is_refused() {
    let repo = Repo::new();
    let v1 = repo.publish(1);
    // A fresh client (full download) against a mirror that flips one byte of the database.
    let fault = FaultServer::start(&repo.dir);
    fault.set_fault(
        ".vdb",
        Fault::FlipByte {
            offset: v1.len() / 2,
        },
    );
    let client = Client::new(&repo.tmp.path().join("client"), &repo, &[&fault.url()], "");
    let r = client.update();
    assert_eq!(r.code, VERIFY, "{}", r.stderr);
    assert!(r.stderr.contains("does not match"), "{}", r.stderr);
    assert!(client.active().is_none(), "nothing may be installed");
    assert_eq!(client.partial_bytes(), 0, "the bad download is deleted");
    // Installed over an existing database: it stays.
    let (repo, v1, client, _server) = with_v1();
    repo.publish(2);
    let fault = FaultServer::start(&repo.dir);
    fault.set_fault(".vdb", Fault::FlipByte { offset: 100 });
    fault.set_fault(".vdelta", Fault::FlipByte { offset: 10 });
    point_at(&client, &repo, &fault.url(), "");
    let r = client.update();
    assert_eq!(r.code, VERIFY, "{}", r.stderr);
    assert_kept(&client, &v1, &r);
}

#[test]
fn tampered_delta_falls_back_to_the_full_database() {
    let (repo, _v1, client, _server) = with_v1();
    let v2 = repo.publish(2);
    let fault = FaultServer::start(&repo.dir);
    fault.set_fault(".vdelta", Fault::FlipByte { offset: 40 });
    point_at(&client, &repo, &fault.url(), "");
    let r = client.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    assert!(
        r.stderr.contains("fetching the full database"),
        "{}",
        r.stderr
    );
    assert_eq!(client.active().unwrap(), v2, "the genuine version 2");
    let got: Vec<_> = fault.requests().into_iter().map(|q| q.path).collect();
    assert!(got.iter().any(|p| p.ends_with(".vdelta")), "{got:?}");
    assert!(got.iter().any(|p| p.ends_with("vigil-2.vdb")), "{got:?}");
}

#[test]
fn tampered_metadata_is_refused() {
    for file in ["timestamp.json", ".snapshot.json", ".targets.json"] {
        let (repo, v1, client, _server) = with_v1();
        repo.publish(2);
        let fault = FaultServer::start(&repo.dir);
        // Inside the signed part: change one character of the JSON.
        fault.set_fault(file, Fault::FlipByte { offset: 60 });
        point_at(&client, &repo, &fault.url(), "");
        let r = client.update();
        assert_eq!(r.code, VERIFY, "{file}: {}", r.stderr);
        assert_kept(&client, &v1, &r);
    }
}

#[test]
fn rollback_to_older_metadata_is_refused() {
    let (repo, _v1, client, _server) = with_v1();
    let old_tree = repo.freeze_copy("at-version-1");
    let v2 = repo.publish(2);
    let r = client.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    assert_eq!(client.active().unwrap(), v2);
    // A mirror (or attacker) now serves the older, validly signed repository.
    let old = vigil_server(&old_tree);
    point_at(&client, &repo, &old.url, "");
    let r = client.update();
    assert_eq!(r.code, VERIFY, "{}", r.stderr);
    assert!(
        r.stderr.contains("previously fetched version 2"),
        "{}",
        r.stderr
    );
    assert_kept(&client, &v2, &r);
}

#[test]
fn freeze_with_an_expired_timestamp_is_refused() {
    let (repo, v1, client, _server) = with_v1();
    // Long enough that the publish's own reload of what it wrote still finds the timestamp
    // current on a loaded machine (a 1 s expiry failed there), short enough to wait out.
    let short = Expiry {
        timestamp: jiff::SignedDuration::from_secs(5),
        ..Expiry::default()
    };
    repo.publish_with(&repo.db(2), short).unwrap();
    std::thread::sleep(Duration::from_millis(6100));
    let r = client.update();
    assert_eq!(r.code, VERIFY, "{}", r.stderr);
    assert!(r.stderr.contains("xpired"), "{}", r.stderr);
    assert_kept(&client, &v1, &r);
}

#[test]
fn mix_and_match_metadata_is_refused() {
    let (repo, v1, client, _server) = with_v1();
    let old_targets = std::fs::read(repo.dir.join("metadata/1.targets.json")).unwrap();
    repo.publish(2);
    let fault = FaultServer::start(&repo.dir);
    // Version 1's validly signed targets served where the snapshot names version 2's.
    fault.set_fault("2.targets.json", Fault::Replace(old_targets));
    point_at(&client, &repo, &fault.url(), "");
    let r = client.update();
    assert_eq!(r.code, VERIFY, "{}", r.stderr);
    assert_kept(&client, &v1, &r);
}

#[test]
fn endless_data_is_cut_off() {
    let (repo, v1, client, _server) = with_v1();
    repo.publish(2);
    for (file, what) in [("timestamp.json", "metadata"), (".vdb", "database")] {
        let fault = FaultServer::start(&repo.dir);
        fault.set_fault(file, Fault::Endless);
        fault.set_fault(
            ".vdelta",
            Fault::Status {
                code: 404,
                retry_after: None,
            },
        );
        point_at(&client, &repo, &fault.url(), "");
        let t = Instant::now();
        let r = client.update();
        assert_eq!(r.code, VERIFY, "{what}: {}", r.stderr);
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{what}: took {:?}",
            t.elapsed()
        );
        let sent: u64 = fault
            .requests()
            .iter()
            .filter(|q| q.path.contains(file))
            .map(|q| q.body_bytes)
            .sum();
        assert!(
            sent < 64 << 20,
            "{what}: read {sent} bytes of an endless stream"
        );
        assert_kept(&client, &v1, &r);
        std::thread::sleep(Duration::from_millis(2100)); // the mirror's cool-down
    }
}

#[test]
fn slow_retrieval_is_aborted() {
    let (repo, v1, client, _server) = with_v1();
    repo.publish(2);
    for file in ["timestamp.json", ".vdelta"] {
        let fault = FaultServer::start(&repo.dir);
        fault.set_fault(file, Fault::Slow { bytes_per_sec: 20 });
        fault.set_fault(".vdb", Fault::Slow { bytes_per_sec: 20 });
        point_at(&client, &repo, &fault.url(), "");
        let t = Instant::now();
        let r = client.update();
        assert_eq!(r.code, NETWORK, "{file}: {}", r.stderr);
        assert!(r.stderr.contains("too slow"), "{file}: {}", r.stderr);
        // low_speed_time_secs = 3 in the test config: one window per slow file, not minutes.
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{file}: {:?}",
            t.elapsed()
        );
        assert_kept(&client, &v1, &r);
        std::thread::sleep(Duration::from_millis(2100));
    }
}

#[test]
fn root_rotation_is_followed_and_the_old_root_key_is_refused_afterwards() {
    let (repo, _v1, client, _server) = with_v1();
    let old_root_key = RoleKey::load_required(Role::Root, &repo.tuf_keys).unwrap();
    repo.block_on(vigil_repository::publish::rotate_root(
        &repo.tuf_keys,
        &[Role::Root, Role::Timestamp],
        &Expiry::default(),
    ))
    .unwrap();
    let v2 = repo.publish(2);
    // The client trusts root 1 (its config) and walks to root 2 through the signed chain.
    let r = client.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    assert_eq!(client.active().unwrap(), v2);
    let saved = std::fs::read(client.db_dir.join("tuf/root.json")).unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&saved).unwrap();
    assert_eq!(saved["signed"]["version"], 2);

    // Whoever still holds the old root key signs a root 3 that hands the timestamp role to
    // their own key. Root 2 does not list that key for the root role: refused.
    // (Two rotations from root 1 with the old key alone give a root numbered 3.)
    let attacker_ts = RoleKey::generate(Role::Timestamp).unwrap();
    let root1 = std::fs::read(repo.dir.join("metadata/1.root.json")).unwrap();
    let rotate = |from: &[u8]| {
        repo.block_on(vigil_repository::tuf::rotate_root(
            from,
            &old_root_key,
            &[&attacker_ts],
            &Expiry::default(),
        ))
        .unwrap()
    };
    let root3 = rotate(&rotate(&root1));
    let parsed: serde_json::Value = serde_json::from_slice(&root3).unwrap();
    assert_eq!(parsed["signed"]["version"], 3);
    std::fs::write(repo.dir.join("metadata/3.root.json"), root3).unwrap();
    let r = client.update();
    assert_eq!(r.code, VERIFY, "{}", r.stderr);
    assert_kept(&client, &v2, &r);
    // A fresh client that trusts only root 1 is refused the same way.
    let fresh = Client::new(
        &repo.tmp.path().join("fresh"),
        &repo,
        &[&client_mirror(&client)],
        "",
    );
    let r = fresh.update();
    assert_eq!(r.code, VERIFY, "{}", r.stderr);
    assert!(fresh.active().is_none());
}

fn client_mirror(c: &Client) -> String {
    let text = std::fs::read_to_string(&c.config).unwrap();
    let v: toml_like::Mirrors = toml_like::parse(&text);
    v.0
}

/// Reads the first mirror back out of a test config without a TOML dependency.
mod toml_like {
    pub struct Mirrors(pub String);
    pub fn parse(text: &str) -> Mirrors {
        let line = text.lines().find(|l| l.starts_with("mirrors")).unwrap();
        let start = line.find('"').unwrap() + 1;
        let end = start + line[start..].find('"').unwrap();
        Mirrors(line[start..end].to_owned())
    }
}

#[test]
fn database_requiring_a_newer_engine_is_not_installed() {
    let (repo, v1, client, _server) = with_v1();
    let future = database(2, repo.filler, &repo.key, vigil_format::ENGINE_VERSION + 1);
    repo.publish_db(&future);
    let r = client.update();
    assert_eq!(r.code, UP_TO_DATE, "{}", r.stderr);
    assert!(r.stderr.contains("needs engine version"), "{}", r.stderr);
    assert_eq!(
        r.field("target_bytes").unwrap_or(0),
        0,
        "nothing downloaded"
    );
    assert_kept(&client, &v1, &r);
}

/// Signs targets metadata that lists `extra` next to what is published, as a compromised or
/// buggy signer would, and writes blobs and metadata into the repository directory.
fn sign_extra_targets(repo: &Repo, extra: &[(&str, Vec<u8>, TargetInfo)]) {
    let root = std::fs::read(repo.root_json()).unwrap();
    let storage: std::sync::Arc<dyn vigil_repository::storage::Storage> =
        std::sync::Arc::new(vigil_repository::storage::DirStorage::new(&repo.dir));
    let current = repo
        .block_on(vigil_repository::tuf::load(
            vigil_repository::tuf::StorageTransport::new(storage),
            &root,
            false,
        ))
        .unwrap();
    let m = current.timestamp().signed.version.get() + 1;
    let mv = std::num::NonZeroU64::new(m).unwrap();
    let mut editor = repo
        .block_on(RepositoryEditor::new(repo.root_json()))
        .unwrap();
    for (n, t) in &current.targets().signed.targets {
        editor.add_target(n.clone(), t.clone()).unwrap();
    }
    for (name, bytes, info) in extra {
        let t = Target {
            length: bytes.len() as u64,
            hashes: Hashes {
                sha256: Sha256::digest(bytes).to_vec().into(),
                _extra: Default::default(),
            },
            custom: info.to_custom(),
            _extra: Default::default(),
        };
        let key = layout::target_key(&hex::encode(Sha256::digest(bytes)), name);
        std::fs::write(repo.dir.join(key), bytes).unwrap();
        editor
            .add_target(TargetName::new(*name).unwrap(), t)
            .unwrap();
    }
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
    editor
        .targets_version(mv)
        .unwrap()
        .targets_expires(later)
        .unwrap();
    editor
        .snapshot_version(mv)
        .snapshot_expires(later)
        .timestamp_version(mv)
        .timestamp_expires(later);
    let keys: Vec<Box<dyn tough::key_source::KeySource>> =
        [Role::Targets, Role::Snapshot, Role::Timestamp]
            .into_iter()
            .map(|r| RoleKey::load_required(r, &repo.tuf_keys).unwrap().boxed())
            .collect();
    let signed = repo.block_on(editor.sign(&keys)).unwrap();
    let out = repo.tmp.path().join(format!("signed-{m}"));
    repo.block_on(signed.write(&out)).unwrap();
    for f in [
        format!("{m}.targets.json"),
        format!("{m}.snapshot.json"),
        "timestamp.json".into(),
    ] {
        std::fs::copy(out.join(&f), repo.dir.join("metadata").join(&f)).unwrap();
    }
}

#[test]
fn delta_that_applies_but_gives_the_wrong_hash_falls_back_to_the_full_database() {
    let (repo, v1, client, _server) = with_v1();
    let v2 = repo.db(2);
    // Another build of version 2: the delta rebuilds it, not the listed version 2.
    let other = database(2, repo.filler + 1, &repo.key, 1);
    let bad_delta = Delta::create(&v1, &other).unwrap();
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    sign_extra_targets(
        &repo,
        &[
            (
                "vigil-2.vdb",
                v2.clone(),
                TargetInfo::Full {
                    db_version: 2,
                    min_engine_version: 1,
                    gate_override: None,
                    release: Default::default(),
                },
            ),
            (
                "vigil-1-2.vdelta",
                bad_delta,
                TargetInfo::Delta {
                    db_version: 2,
                    min_engine_version: 1,
                    base_version: 1,
                    base_sha256: sha(&v1),
                    result_sha256: sha(&v2),
                },
            ),
        ],
    );
    let r = client.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    assert!(
        r.stderr.contains("applied, but gave SHA-256"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("fetching the full database"),
        "{}",
        r.stderr
    );
    assert_eq!(client.active().unwrap(), v2);
    assert_ne!(client.active().unwrap(), other);
}

#[test]
fn zero_byte_and_truncated_files_are_refused_then_resumed() {
    let (repo, v1, client, _server) = with_v1();
    let v2 = repo.publish(2);
    let fault = FaultServer::start(&repo.dir);
    point_at(&client, &repo, &fault.url(), "");
    // A zero-byte timestamp.json is not metadata.
    fault.set_fault("timestamp.json", Fault::Empty);
    let r = client.update();
    assert_eq!(r.code, VERIFY, "{}", r.stderr);
    assert_kept(&client, &v1, &r);
    fault.clear_faults();
    std::thread::sleep(Duration::from_millis(2100));
    // Zero-byte delta and database.
    fault.set_fault(".vdelta", Fault::Empty);
    fault.set_fault(".vdb", Fault::Empty);
    let r = client.update();
    assert_eq!(r.code, NETWORK, "{}", r.stderr);
    assert_kept(&client, &v1, &r);
    fault.clear_faults();
    std::thread::sleep(Duration::from_millis(2100));
    // Truncated database: the prefix is kept for a resume.
    fault.set_fault(
        ".vdelta",
        Fault::Status {
            code: 404,
            retry_after: None,
        },
    );
    fault.set_fault(".vdb", Fault::Truncate { at: v2.len() / 3 });
    let r = client.update();
    assert_eq!(r.code, NETWORK, "{}", r.stderr);
    assert_kept(&client, &v1, &r);
    assert_eq!(client.partial_bytes(), (v2.len() / 3) as u64);
    fault.clear_fault(".vdb");
    std::thread::sleep(Duration::from_millis(2100));
    let r = client.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    assert_eq!(client.active().unwrap(), v2);
    let resumed = fault
        .requests()
        .into_iter()
        .rfind(|q| q.path.ends_with("vigil-2.vdb"))
        .unwrap();
    assert_eq!(
        resumed.range.as_deref(),
        Some(&*format!("bytes={}-", v2.len() / 3))
    );
    assert_eq!(resumed.status, 206);
}

#[test]
fn server_killed_mid_download_then_resumed_from_another_server() {
    let mut repo = Repo::new();
    repo.filler = 40_000;
    let v1 = repo.publish(1);
    let fault = FaultServer::start(&repo.dir);
    let half = v1.len() / 2;
    fault.set_fault(".vdb", Fault::DieAfter { bytes: half });
    let client = Client::new(&repo.tmp.path().join("client"), &repo, &[&fault.url()], "");
    let r = client.update();
    assert_eq!(r.code, NETWORK, "{}", r.stderr);
    assert!(fault.is_stopped());
    assert!(client.active().is_none());
    let kept = client.partial_bytes();
    assert!(kept > 0 && kept <= half as u64, "kept {kept} of {half}");
    // The same repository from vigil-server: only the rest is downloaded.
    let server = vigil_server(&repo.dir);
    point_at(&client, &repo, &server.url, "");
    let r = client.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    assert_eq!(client.active().unwrap(), v1);
    let fetched = r.field("target_bytes").unwrap();
    assert_eq!(fetched, v1.len() as u64 - kept, "{}", r.stderr);
}

/// A partial file mixes bytes from whichever mirrors wrote it. A mirror that plants a poisoned
/// prefix must not get the honest mirror that finishes the file blamed for the hash mismatch:
/// the honest mirror is asked once more from byte 0, and the mirror whose bytes differ from the
/// verified file is the one charged with the forgery.
#[test]
fn partial_poisoning_does_not_blame_honest_mirror() {
    let mut repo = Repo::new();
    repo.filler = 20_000;
    let v1 = repo.publish(1);
    let half = v1.len() / 2;
    let liar = FaultServer::start(&repo.dir);
    liar.set_fault(".vdb", Fault::ZerosThenClose { at: half });
    let honest = FaultServer::start(&repo.dir);
    let (a, b) = (liar.url(), honest.url());
    let client = Client::new(&repo.tmp.path().join("client"), &repo, &[&a, &b], "");
    let r = client.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    assert_eq!(client.active().as_deref(), Some(&v1[..]));
    assert_eq!(client.partial_bytes(), 0, "{}", r.stderr);
    // The honest mirror resumed the poisoned file, then fetched it whole from byte 0.
    let gets: Vec<_> = honest
        .requests()
        .into_iter()
        .filter(|q| q.path.ends_with(".vdb"))
        .map(|q| (q.range, q.status))
        .collect();
    assert_eq!(
        gets,
        [(Some(format!("bytes={half}-")), 206), (None, 200)],
        "{}",
        r.stderr
    );
    let st = client.state();
    assert!(
        st["mirrors"].get(&b).is_none(),
        "the honest mirror is not cooling down: {st}"
    );
    // The liar is charged twice: for the dropped connection and for the zeros it sent.
    let liar_state = &st["mirrors"][&a];
    assert_eq!(liar_state["failures"], 2, "{st}");
    let why = liar_state["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("verification failed") && why.contains("do not match"),
        "{st}"
    );
    assert!(
        liar_state["cooldown_until"].as_i64().unwrap_or(0) > 0,
        "{st}"
    );
}

#[test]
fn disk_full_while_writing_keeps_the_old_database() {
    if std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "true"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        panic!("unshare --user --mount is needed to give the updater a full disk of its own");
    }
    let mut repo = Repo::new();
    repo.filler = 30_000;
    let v1 = repo.publish(1);
    let server = vigil_server(&repo.dir);
    let client = Client::new(&repo.tmp.path().join("client"), &repo, &[&server.url], "");
    let r = client.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    // Version 2 comes as a small delta, but the rebuilt database does not fit.
    repo.publish(2);
    // A tmpfs just big enough for what is there now, mounted over the database directory in a
    // private mount namespace; the update runs inside and the result is checked there too.
    let db = client.db_dir.display().to_string();
    let used: u64 = walk_size(&client.db_dir);
    let size_kb = (used + v1.len() as u64 / 4) / 1024 + 64;
    let script = format!(
        "set -e; cp -a {db} {db}.orig; mount -t tmpfs -o size={size_kb}k tmpfs {db}; \
         cp -a {db}.orig/. {db}/; \
         rc=0; {bin} --config {cfg} --log-format text || rc=$?; echo \"rc=$rc\"; \
         cmp {db}/vigil.vdb {db}.orig/vigil.vdb && echo same-database; \
         ls {db}/partial | wc -l | sed 's/^/partials=/'",
        bin = vigil_tests::bin("vigil-update").display(),
        cfg = client.config.display(),
    );
    let out = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = vigil_tests::updater::strip_ansi(&String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains(&format!("rc={LOCAL}")),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stdout.contains("same-database"), "{stdout}\n{stderr}");
    // Outside the namespace the directory was never touched.
    assert_eq!(client.active().unwrap(), v1);
}

fn walk_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        walk_size(&e.path()) + 4096
                    } else {
                        m.len() + 4096
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn storm_of_429s_backs_off_and_fails_over_to_the_next_mirror() {
    let (repo, _v1, client, _server) = with_v1();
    let v2 = repo.publish(2);
    let storm = FaultServer::start(&repo.dir);
    storm.set_fault(
        vigil_tests::fault::Match::Any,
        Fault::Status {
            code: 429,
            retry_after: Some(600),
        },
    );
    let dead = format!("http://127.0.0.1:{}/", vigil_tests::free_port());
    let good = vigil_server(&repo.dir);
    let net = "[network]\nconnect_timeout_secs = 2\nbackoff_base_secs = 30\nbackoff_max_secs = 60";
    client.write_config(&repo, &[&storm.url(), &dead, &good.url], net);
    let r = client.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    assert_eq!(client.active().unwrap(), v2);
    // One exchange (tough's look for a newer root.json), then it hands off to the next mirror.
    assert_eq!(storm.requests().len(), 1, "{:?}", storm.requests());
    let st = client.state();
    let left = st["mirrors"][storm.url()]["cooldown_until"]
        .as_i64()
        .unwrap()
        - jiff::Timestamp::now().as_second();
    assert!(left >= 590, "Retry-After 600 honoured: {left}");
    assert!(st["mirrors"][&dead]["failures"].as_u64() == Some(1), "{st}");
    // The cool-down persists across runs: the throttling mirror is not asked again.
    repo.publish(3);
    let r = client.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    assert_eq!(client.version(), Some(3));
    assert_eq!(storm.requests().len(), 1, "still one request");
    // With only throttled mirrors the update says so, and changes nothing.
    client.write_config(&repo, &[&storm.url()], net);
    let r = client.update();
    assert_eq!(r.code, NETWORK, "{}", r.stderr);
    assert!(r.stderr.contains("cooling down"), "{}", r.stderr);
    assert_eq!(storm.requests().len(), 1);
    assert_eq!(client.version(), Some(3));
}

#[test]
fn damaged_active_database_is_replaced_and_last_known_good_is_kept() {
    let (repo, v1, client, _server) = with_v1();
    let v2 = repo.publish(2);
    assert_eq!(client.update().code, UPDATED);
    assert_eq!(client.last_known_good().unwrap(), v1);
    // The active file is damaged on disk (bit rot, a stray write).
    let mut bad = v2.clone();
    bad[200] ^= 0x40;
    std::fs::write(client.db_dir.join("vigil.vdb"), &bad).unwrap();
    let v3 = repo.publish(3);
    let r = client.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    assert!(r.stderr.contains("does not verify"), "{}", r.stderr);
    assert_eq!(client.active().unwrap(), v3);
    assert_eq!(
        client.last_known_good().unwrap(),
        v1,
        "the damaged file never becomes the fallback"
    );
}
