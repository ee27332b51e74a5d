//! vigil-scan as a user runs it: exit codes, output lines, JSON, and bad input that is
//! reported while the scan goes on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::SecretKey;

const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A database of rules-src signed by a fresh key, and that key's public file.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let key = SecretKey::from_seed([41; 32]);
    let srcs = sources::collect(&[root().join("rules-src")]).expect("collect");
    let db = build(&srcs, &key, &BuildOptions::new(9))
        .expect("build")
        .bytes;
    let (db_path, pub_path) = (dir.join("v9.vdb"), dir.join("test.pub"));
    std::fs::write(&db_path, db).expect("write");
    std::fs::write(&pub_path, key.public().to_text()).expect("write");
    (db_path, pub_path)
}

fn scan(db: &Path, key: &Path, args: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil-scan"))
        .arg("-d")
        .arg(db)
        .arg("--pubkey")
        .arg(key)
        .args(args)
        .args(paths)
        .output()
        .expect("run vigil-scan")
}

#[test]
fn exit_codes_and_output_like_clamscan() {
    let t = tempfile::tempdir().expect("tempdir");
    let (db, key) = setup(t.path());
    let eicar = t.path().join("eicar.com");
    std::fs::write(&eicar, EICAR).expect("write");
    let clean = root().join("samples/clean.sh");

    let o = scan(&db, &key, &[], &[&clean]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("clean.sh: OK"));

    let o = scan(&db, &key, &["--threads", "2"], &[&clean, &eicar]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("eicar.com: Multi.Test.Eicar-Body FOUND"),
        "{out}"
    );
    assert!(
        out.contains("Infected files: 1") && out.contains("Scanned files: 2"),
        "{out}"
    );

    let o = scan(&db, &key, &["--json", "--no-summary"], &[&eicar]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert_eq!(l["db_version"], 9);
        assert_eq!(
            l["sha256"],
            "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
        );
        assert!(l["engine_version"].is_string() && l["kind"].is_string());
    }

    // A database signed by another key is refused: exit 2, one clear line, nothing scanned.
    let other = t.path().join("other.pub");
    std::fs::write(&other, SecretKey::from_seed([42; 32]).public().to_text()).expect("write");
    let o = scan(&db, &other, &[], &[&eicar]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not signed by a trusted key"));
    assert!(o.stdout.is_empty());
    // The built-in release key did not sign a test database either.
    let o = Command::new(env!("CARGO_BIN_EXE_vigil-scan"))
        .arg("-d")
        .arg(&db)
        .arg(&eicar)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bad_files_are_reported_and_the_scan_goes_on() {
    let t = tempfile::tempdir().expect("tempdir");
    let (db, key) = setup(t.path());
    let dir = t.path().join("tree");
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::fs::write(dir.join("sub/eicar.com"), EICAR).expect("write");
    std::os::unix::fs::symlink("loop", dir.join("loop")).expect("symlink");
    std::os::unix::fs::symlink(".", dir.join("sub/self")).expect("symlink");
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let o = scan(&db, &key, &["-r"], &[&dir, Path::new("/nonexistent/file")]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "found beats errors, as in clamscan"
    );
    assert!(
        out.contains("eicar.com: Multi.Test.Eicar-Body FOUND"),
        "{out}"
    );
    assert!(err.contains("loop: ERROR"), "{err}");
    assert!(err.contains("fifo: not a regular file"), "{err}");
    assert!(err.contains("/nonexistent/file: ERROR"), "{err}");
    assert!(out.contains("Errors: 2"), "{out}");

    let big = t.path().join("big.bin");
    std::fs::write(&big, vec![0u8; 4096]).expect("write");
    let o = scan(&db, &key, &["--max-filesize", "1K"], &[&big]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("size limit exceeded"));
}
