//! `vigil-scan quarantine list|restore|delete|purge` as a user runs them: the real program
//! over a store that the library filled, with its exit codes.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::process::Command;

use vigil_quarantine::Store;
use vigil_tests::{bin, run, Run};

fn q(store: &Path, args: &[&str]) -> Run {
    run(Command::new(bin("vigil-scan"))
        .arg("quarantine")
        .args(args)
        .arg("--dir")
        .arg(store))
}

#[test]
fn list_restore_delete_purge() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("quarantine");
    let store = Store::open(&dir).unwrap();
    let files = tmp.path().join("srv");
    fs::create_dir(&files).unwrap();
    let mut ids = Vec::new();
    for name in ["a.php", "b.php", "c.php"] {
        fs::write(files.join(name), format!("<?php eval($_GET['{name}']);")).unwrap();
        ids.push(
            store
                .quarantine(&files.join(name), None, "fid", "Php.Webshell.Test")
                .unwrap()
                .id,
        );
    }

    let r = q(&dir, &["list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for (id, name) in ids.iter().zip(["a.php", "b.php", "c.php"]) {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(id.as_str())
                && l.contains(name)
                && l.contains("Php.Webshell.Test")),
            "{id} {name} missing from:\n{}",
            r.stdout
        );
    }
    let r = q(&dir, &["list", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let listed: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 3);
    // The same second orders by id: compare the set of paths.
    let mut paths: Vec<&str> = listed
        .iter()
        .map(|v| v["original_path"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    let want: Vec<String> = ["a.php", "b.php", "c.php"]
        .iter()
        .map(|n| files.join(n).to_str().unwrap().to_string())
        .collect();
    assert_eq!(paths, want);
    assert_eq!(listed[0]["threat"], "Php.Webshell.Test");

    // Restore puts the file back; a second restore has nothing to restore.
    let r = q(&dir, &["restore", &ids[0]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        fs::read_to_string(files.join("a.php")).unwrap(),
        "<?php eval($_GET['a.php']);"
    );
    let r = q(&dir, &["restore", &ids[0]]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no quarantine entry"), "{}", r.stderr);

    // Restore onto a file that appeared since: refused (2), both kept.
    fs::write(files.join("b.php"), "new").unwrap();
    let r = q(&dir, &["restore", &ids[1]]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("exists") && r.stderr.contains("b.php"),
        "{}",
        r.stderr
    );
    assert_eq!(fs::read_to_string(files.join("b.php")).unwrap(), "new");

    let r = q(&dir, &["delete", &ids[1]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(q(&dir, &["delete", &ids[1]]).code, 2);
    assert_eq!(q(&dir, &["delete", "../../etc/passwd"]).code, 2);

    let r = q(&dir, &["purge", "--older-than", "30d"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("0 purged"), "{}", r.stdout);
    let r = q(&dir, &["purge", "--older-than", "0s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&ids[2]) && r.stdout.contains("1 purged"),
        "{}",
        r.stdout
    );
    assert!(store.list().unwrap().is_empty());
    assert_eq!(q(&dir, &["list"]).stdout, "");

    // Usage errors are 2, as clap reports them.
    assert_eq!(q(&dir, &["purge", "--older-than", "3w"]).code, 2);
    assert_eq!(q(&dir, &["frobnicate"]).code, 2);
}

#[test]
fn an_unsafe_store_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wide");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let r = q(&dir, &["list"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("must be 0700"), "{}", r.stderr);
}

/// The scan's flat command line still works beside the subcommand: a path named like the
/// subcommand is a path once an option came first.
#[test]
fn the_scan_command_line_is_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(Command::new(bin("vigil-scan"))
        .args(["-d"])
        .arg(tmp.path().join("missing.db"))
        .arg("quarantine"));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.db"), "{}", r.stderr);
}
