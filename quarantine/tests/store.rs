//! The quarantine store against real files, as root (the agent's situation): round trips
//! with owner, setuid mode and nanosecond times; hostile paths (symlinks, FIFOs, changed
//! content); restore that never overwrites; purge by age; unsafe store directories.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use vigil_quarantine::{QuarantineError, Store};

/// Distinctive content: a marker no keystream byte pattern will reproduce by chance.
fn content() -> Vec<u8> {
    let mut v = b"#!/bin/sh\necho VIGIL-QUARANTINE-TEST-MARKER\n".to_vec();
    for i in 0..200_000u32 {
        v.push((i.wrapping_mul(2_654_435_761) >> 24) as u8);
    }
    v.extend_from_slice(b"VIGIL-QUARANTINE-TEST-MARKER at the end");
    v
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

struct Fixture {
    _tmp: tempfile::TempDir,
    store: Store,
    files: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("var/quarantine")).unwrap();
    let files = tmp.path().join("srv");
    fs::create_dir(&files).unwrap();
    Fixture {
        _tmp: tmp,
        store,
        files,
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn entry_files(store: &Store) -> Vec<PathBuf> {
    fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn round_trip_restores_bytes_mode_owner_and_times() {
    let f = fixture();
    let path = f.files.join("sample.sh");
    let data = content();
    fs::write(&path, &data).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&path, Some(1234), Some(5678)).unwrap();
    } else {
        eprintln!("SKIP (owner part): not root");
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o4750)).unwrap();
    let atime = UNIX_EPOCH + Duration::new(1_600_000_000, 123_456_789);
    let mtime = UNIX_EPOCH + Duration::new(1_700_000_000, 987_654_321);
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_times(fs::FileTimes::new().set_accessed(atime).set_modified(mtime))
        .unwrap();
    let before = fs::metadata(&path).unwrap();

    let e = f
        .store
        .quarantine(
            &path,
            Some(&sha(&data).to_uppercase()),
            "finding-1",
            "Test.Marker",
        )
        .unwrap();
    assert!(!path.exists(), "the original is gone");
    assert_eq!(e.sha256, sha(&data));
    assert_eq!(e.size, data.len() as u64);
    assert_eq!(
        (e.finding_id.as_str(), e.threat.as_str()),
        ("finding-1", "Test.Marker")
    );
    assert_eq!(e.original_path, path);
    assert_eq!(e.id.len(), 32);

    // The stored file: 0600, starts with the magic, and holds no 8-byte window of the marker.
    let stored = entry_files(&f.store);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let meta = fs::metadata(&stored[0]).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600, "not executable, root only");
    let bytes = fs::read(&stored[0]).unwrap();
    assert!(bytes.starts_with(b"VIGILQ1\0"));
    for w in b"VIGIL-QUARANTINE-TEST-MARKER".windows(8) {
        let after_header = &bytes[200..];
        assert!(
            !after_header.windows(8).any(|x| x == w),
            "stored content contains {:?}",
            String::from_utf8_lossy(w)
        );
    }
    assert!(!bytes.windows(9).any(|x| x == b"#!/bin/sh"));
    assert_eq!(f.store.list().unwrap(), vec![e.clone()]);
    assert_eq!(f.store.get(&e.id).unwrap(), e);

    let r = f.store.restore(&e.id).unwrap();
    assert_eq!(r, e);
    let after = fs::metadata(&path).unwrap(); // before reading: reading may touch atime
    assert_eq!(
        after.mode(),
        before.mode(),
        "mode incl. setuid: {:o}",
        after.mode()
    );
    assert_eq!(after.mode() & 0o7777, 0o4750);
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    if is_root() {
        assert_eq!((after.uid(), after.gid()), (1234, 5678));
    }
    assert_eq!(
        (after.mtime(), after.mtime_nsec()),
        (1_700_000_000, 987_654_321)
    );
    assert_eq!(
        (after.atime(), after.atime_nsec()),
        (1_600_000_000, 123_456_789)
    );
    assert_eq!(fs::read(&path).unwrap(), data);
    assert!(
        entry_files(&f.store).is_empty(),
        "the entry is removed after a restore"
    );
    assert!(matches!(
        f.store.get(&e.id),
        Err(QuarantineError::NotFound { .. })
    ));
    // No temporary file left beside the restored one.
    assert_eq!(fs::read_dir(&f.files).unwrap().count(), 1);
}

#[test]
fn a_changed_file_is_refused_and_left_alone() {
    let f = fixture();
    let path = f.files.join("x");
    fs::write(&path, b"now different").unwrap();
    let err = f
        .store
        .quarantine(&path, Some(&sha(b"what was scanned")), "f", "T")
        .unwrap_err();
    assert!(matches!(err, QuarantineError::Changed { .. }), "{err}");
    assert!(
        err.to_string().contains("changed since it was scanned"),
        "{err}"
    );
    assert_eq!(fs::read(&path).unwrap(), b"now different");
    assert!(entry_files(&f.store).is_empty());
}

#[test]
fn symlinks_are_never_followed() {
    let f = fixture();
    let target = f.files.join("target");
    fs::write(&target, b"precious").unwrap();
    let link = f.files.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = f.store.quarantine(&link, None, "f", "T").unwrap_err();
    assert!(matches!(err, QuarantineError::Symlink { .. }), "{err}");

    // A symlinked directory on the way (`/srv/dir -> /etc` in the attack) is refused too.
    let real = f.files.join("real");
    fs::create_dir(&real).unwrap();
    fs::write(real.join("passwd"), b"root:x:0:0").unwrap();
    std::os::unix::fs::symlink(&real, f.files.join("dir")).unwrap();
    let err = f
        .store
        .quarantine(&f.files.join("dir/passwd"), None, "f", "T")
        .unwrap_err();
    assert!(matches!(err, QuarantineError::Symlink { .. }), "{err}");

    assert_eq!(fs::read(&target).unwrap(), b"precious");
    assert_eq!(fs::read(real.join("passwd")).unwrap(), b"root:x:0:0");
    assert!(link.symlink_metadata().is_ok());
    assert!(entry_files(&f.store).is_empty());
}

#[test]
fn fifos_directories_and_bad_paths_are_refused_without_blocking() {
    let f = fixture();
    let fifo = f.files.join("fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    let err = f.store.quarantine(&fifo, None, "f", "T").unwrap_err();
    assert!(
        matches!(err, QuarantineError::NotRegular { kind: "a FIFO", .. }),
        "{err}"
    );
    let err = f.store.quarantine(&f.files, None, "f", "T").unwrap_err();
    assert!(matches!(err, QuarantineError::NotRegular { .. }), "{err}");
    let dotdot = f.files.join("../srv/x");
    assert!(matches!(
        f.store.quarantine(&dotdot, None, "f", "T"),
        Err(QuarantineError::BadPath { .. })
    ));
    assert!(matches!(
        f.store.quarantine(Path::new("relative/x"), None, "f", "T"),
        Err(QuarantineError::BadPath { .. })
    ));
    assert!(matches!(
        f.store.quarantine(&f.files.join("missing"), None, "f", "T"),
        Err(QuarantineError::Io { .. })
    ));
}

#[test]
fn restore_never_overwrites_and_keeps_the_entry() {
    let f = fixture();
    let path = f.files.join("x");
    fs::write(&path, b"malware").unwrap();
    let e = f.store.quarantine(&path, None, "f", "T").unwrap();
    fs::write(&path, b"a new file").unwrap();
    let err = f.store.restore(&e.id).unwrap_err();
    assert!(matches!(err, QuarantineError::Exists { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(fs::read(&path).unwrap(), b"a new file");
    assert_eq!(f.store.get(&e.id).unwrap(), e, "the entry remains");
    // A dangling symlink counts as a file: not replaced either.
    fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/nonexistent", &path).unwrap();
    assert!(matches!(
        f.store.restore(&e.id),
        Err(QuarantineError::Exists { .. })
    ));
    assert_eq!(
        fs::read_dir(&f.files).unwrap().count(),
        1,
        "no temporary file left"
    );
    fs::remove_file(&path).unwrap();
    f.store.restore(&e.id).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"malware");
}

#[test]
fn restore_does_not_create_missing_directories() {
    let f = fixture();
    let dir = f.files.join("gone");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("x"), b"m").unwrap();
    let e = f.store.quarantine(&dir.join("x"), None, "f", "T").unwrap();
    fs::remove_dir(&dir).unwrap();
    assert!(matches!(
        f.store.restore(&e.id),
        Err(QuarantineError::NoParent { .. })
    ));
    assert!(!dir.exists());
    assert!(f.store.get(&e.id).is_ok());
}

#[test]
fn purge_removes_by_age_and_delete_by_id() {
    let f = fixture();
    let mk = |n: &str| {
        let p = f.files.join(n);
        fs::write(&p, n).unwrap();
        f.store.quarantine(&p, None, n, "T").unwrap()
    };
    let a = mk("a");
    std::thread::sleep(Duration::from_millis(1100));
    let b = mk("b");
    let c = mk("c");
    assert!(a.quarantined_at < b.quarantined_at);
    assert_eq!(f.store.list().unwrap()[0], a, "oldest first");
    assert!(f.store.purge(Duration::from_secs(3600)).unwrap().is_empty());
    assert_eq!(f.store.purge_before(a.quarantined_at).unwrap(), vec![a]);
    f.store.delete(&c.id).unwrap();
    assert_eq!(f.store.list().unwrap(), vec![b.clone()]);
    assert!(matches!(
        f.store.delete(&c.id),
        Err(QuarantineError::NotFound { .. })
    ));
    // Ids never reach the file system unless they are ids.
    for bad in ["../../etc/passwd", "", &"A".repeat(32)] {
        assert!(matches!(
            f.store.delete(bad),
            Err(QuarantineError::NotFound { .. })
        ));
    }
    assert_eq!(f.store.purge(Duration::ZERO).unwrap(), vec![b]);
    assert!(entry_files(&f.store).is_empty());
}

#[test]
fn damaged_and_foreign_entries_are_reported_not_fatal() {
    let f = fixture();
    let p = f.files.join("ok");
    fs::write(&p, b"x").unwrap();
    let good = f.store.quarantine(&p, None, "f", "T").unwrap();
    let bad_id = "0123456789abcdef0123456789abcdef";
    fs::write(
        f.store.dir().join(format!("{bad_id}.vq")),
        b"VIGILQ1\0 truncated",
    )
    .unwrap();
    fs::write(f.store.dir().join("notes.txt"), b"hello").unwrap();
    let listing = f.store.scan().unwrap();
    assert_eq!(listing.entries, vec![good.clone()]);
    let msgs: Vec<String> = listing.damaged.iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains(bad_id)), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("notes.txt")), "{msgs:?}");
    assert_eq!(f.store.list().unwrap(), vec![good]);
    assert!(matches!(
        f.store.get(bad_id),
        Err(QuarantineError::Corrupt { .. })
    ));
    assert!(matches!(
        f.store.restore(bad_id),
        Err(QuarantineError::Corrupt { .. })
    ));
    assert!(
        f.store.purge(Duration::ZERO).unwrap().len() == 1,
        "damaged entries are not purged"
    );
    f.store.delete(bad_id).unwrap();
}

#[test]
fn unsafe_store_directories_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let open_err = |p: &Path| match Store::open(p) {
        Err(e) => e,
        Ok(_) => panic!("{} was accepted", p.display()),
    };
    let wide = tmp.path().join("wide");
    fs::create_dir(&wide).unwrap();
    fs::set_permissions(&wide, fs::Permissions::from_mode(0o755)).unwrap();
    let e = open_err(&wide);
    assert!(
        matches!(e, QuarantineError::UnsafeStore { .. }) && e.to_string().contains("755"),
        "{e}"
    );

    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(matches!(
        open_err(&link),
        QuarantineError::UnsafeStore { .. }
    ));

    if is_root() {
        let theirs = tmp.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&theirs, Some(1234), Some(1234)).unwrap();
        let e = open_err(&theirs);
        assert!(e.to_string().contains("uid 1234"), "{e}");
    }

    // A new store is created 0700 with its parents.
    let new = tmp.path().join("a/b/quarantine");
    Store::open(&new).unwrap();
    assert_eq!(fs::metadata(&new).unwrap().mode() & 0o7777, 0o700);
    Store::open(&new).unwrap();
}
