//! The engine against hostile local users (issue 18): compiled-rule caches planted by another
//! user, symlinked, or made for another database. (The scan service's and vigil-scan's halves
//! are in agent/tests/hostile.rs and programs/vigil-scan/tests/hostile.rs.)
//!
//! The other-user half runs as root and gives files to uid `nobody` (65534); without root it
//! says SKIP and returns.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::SecretKey;
use vigil_scan_core::{Engine, Limits};

const NOBODY: u32 = 65534;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn key() -> SecretKey {
    SecretKey::from_seed([41; 32])
}

fn db_from(dir: &Path, version: u64) -> Vec<u8> {
    let files = sources::collect(&[dir.to_path_buf()]).expect("collect");
    build(&files, &key(), &BuildOptions::new(version))
        .expect("build")
        .bytes
}

fn starter_db() -> Vec<u8> {
    db_from(&root().join("rules-src"), 3)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A temporary directory that other users may enter (tempdir makes them 0700).
fn open_tempdir() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    t
}

// ---- Finding 4: the compiled-rule cache ----

/// A database whose only rule fires on the marker in `clean.txt`; the starter database does not.
fn planted_db(dir: &Path) -> Vec<u8> {
    let rules = dir.join("planted-rules");
    fs::create_dir_all(&rules).unwrap();
    fs::write(
        rules.join("planted.yar"),
        "rule Planted_Rule {\n  meta:\n    description = \"from another database\"\n  strings:\n    $a = \"harmless-marker-18\"\n  condition:\n    $a\n}\n",
    )
    .unwrap();
    db_from(&rules, 7)
}

/// Builds the cache file the planted database gets, and returns its bytes.
fn planted_cache_bytes(dir: &Path) -> Vec<u8> {
    let build = dir.join("attacker-build");
    fs::create_dir_all(&build).unwrap();
    fs::set_permissions(&build, fs::Permissions::from_mode(0o700)).unwrap();
    let e = Engine::load_with_cache(&planted_db(dir), &[key().public()], Some(&build)).unwrap();
    assert_eq!(e.yara_from_cache(), Some(false));
    let f = fs::read_dir(&build)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    fs::read(f).unwrap()
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn planted_symlinked_or_foreign_caches_are_refused() {
    let t = open_tempdir();
    let db = starter_db();
    let name = format!("{}.yarac", sha256_hex(&db));
    let planted = planted_cache_bytes(t.path());
    let clean = t.path().join("clean.txt");
    fs::write(&clean, "nothing to see: harmless-marker-18\n").unwrap();
    let detects = |e: &Engine| {
        e.scan_file(&clean, &Limits::default())
            .unwrap()
            .findings
            .iter()
            .any(|f| f.signature == "Planted_Rule")
    };

    // A cache from another database, under this one's name, in a private directory of ours:
    // intact, owned by us, and still refused (it names another database).
    let own = t.path().join("own-cache");
    fs::create_dir(&own).unwrap();
    fs::set_permissions(&own, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(own.join(&name), &planted).unwrap();
    fs::set_permissions(own.join(&name), fs::Permissions::from_mode(0o600)).unwrap();
    let e = Engine::load_with_cache(&db, &[key().public()], Some(&own)).unwrap();
    assert_eq!(
        e.yara_from_cache(),
        Some(false),
        "a foreign database's cache was used"
    );
    assert!(!detects(&e));
    // The recompile replaced it with a good one, which the next load uses.
    let e = Engine::load_with_cache(&db, &[key().public()], Some(&own)).unwrap();
    assert_eq!(e.yara_from_cache(), Some(true));

    // A symlinked cache directory is neither read nor written through.
    let elsewhere = t.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
    let link = t.path().join("linked-cache");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let e = Engine::load_with_cache(&db, &[key().public()], Some(&link)).unwrap();
    assert_eq!(e.yara_from_cache(), Some(false));
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "wrote through a symlink"
    );
    // A cache file that is a symlink to a good cache is not read either.
    let linked_file = t.path().join("linked-file");
    fs::create_dir(&linked_file).unwrap();
    fs::set_permissions(&linked_file, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(own.join(&name), linked_file.join(&name)).unwrap();
    let e = Engine::load_with_cache(&db, &[key().public()], Some(&linked_file)).unwrap();
    assert_eq!(
        e.yara_from_cache(),
        Some(false),
        "read a cache through a symlink"
    );

    if !is_root() {
        eprintln!("SKIP the other-user half of planted_symlinked_or_foreign_caches_are_refused: needs root");
        return;
    }
    // Another user's directory and file, with modes that look private: refused by owner.
    let theirs = t.path().join("their-cache");
    fs::create_dir(&theirs).unwrap();
    fs::write(theirs.join(&name), &planted).unwrap();
    for p in [&theirs, &theirs.join(&name)] {
        std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let e = Engine::load_with_cache(&db, &[key().public()], Some(&theirs)).unwrap();
    assert_eq!(
        e.yara_from_cache(),
        Some(false),
        "another user's cache was used"
    );
    assert!(!detects(&e));
    assert_eq!(
        fs::read(theirs.join(&name)).unwrap(),
        planted,
        "wrote into their directory"
    );
}
