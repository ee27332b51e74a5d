//! Compiler and format together: reproducible builds, tamper detection, and deltas that
//! rebuild exactly the new database for random edits of a rule set.

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::container::verify;
use vigil_format::delta::Delta;
use vigil_format::SecretKey;

fn rules_src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules-src")
}

fn key() -> SecretKey {
    SecretKey::from_seed([42; 32])
}

/// All files under `dir` as (relative path, bytes), sorted.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("prefix").to_path_buf();
                out.push((rel, fs::read(&p).expect("read")));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn write_tree(dir: &Path, files: &[(PathBuf, Vec<u8>)]) {
    for (rel, bytes) in files {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, bytes).expect("write");
    }
}

fn build_dir(dir: &Path, version: u64) -> Vec<u8> {
    let files = sources::collect(&[dir.to_path_buf()]).expect("collect");
    build(&files, &key(), &BuildOptions::new(version))
        .expect("build")
        .bytes
}

#[test]
fn same_sources_same_bytes_whatever_the_directory_or_file_order() {
    let files = snapshot(&rules_src());
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let b_nested = b.path().join("some/where/else");
    write_tree(a.path(), &files);
    // Create files in the opposite order, so directory listing order differs.
    let mut reversed = files.clone();
    reversed.reverse();
    write_tree(&b_nested, &reversed);
    let da = build_dir(a.path(), 7);
    let db = build_dir(&b_nested, 7);
    assert_eq!(da, db, "byte-identical databases");
    // ...and CRLF line endings from a Windows checkout change nothing either.
    let crlf: Vec<_> = files
        .iter()
        .map(|(p, b)| {
            (
                p.clone(),
                String::from_utf8_lossy(b)
                    .replace('\n', "\r\n")
                    .into_bytes(),
            )
        })
        .collect();
    let c = tempfile::tempdir().expect("tempdir");
    write_tree(c.path(), &crlf);
    assert_eq!(build_dir(c.path(), 7), da);
    // A different version is a different database.
    assert_ne!(build_dir(a.path(), 8), da);
}

#[test]
fn flipping_any_single_byte_fails_verification() {
    let db = build_dir(&rules_src(), 1);
    let trusted = [key().public()];
    assert!(verify(&db, &trusted).is_ok());
    let mut copy = db.clone();
    for i in 0..db.len() {
        for bit in [0x01u8, 0x80] {
            copy[i] ^= bit;
            assert!(
                verify(&copy, &trusted).is_err(),
                "flip of bit {bit:#x} at byte {i} went unnoticed"
            );
            copy[i] ^= bit;
        }
    }
}

/// A random edit of a rule set, applied to the starter set.
#[derive(Clone, Debug)]
enum Edit {
    AddYara(u32),
    AddNdb(u32),
    RemoveFile(usize),
    ChangeHashSize(u64),
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<u32>().prop_map(Edit::AddYara),
        any::<u32>().prop_map(Edit::AddNdb),
        any::<usize>().prop_map(Edit::RemoveFile),
        (1u64..1_000_000).prop_map(Edit::ChangeHashSize),
    ]
}

fn apply_edit(files: &mut Vec<(PathBuf, Vec<u8>)>, edit: &Edit) {
    match edit {
        Edit::AddYara(n) => files.push((
            PathBuf::from(format!("yara/test_added_{n}.yar")),
            format!(
                "rule Test_Added_{n}\n{{\n    meta:\n        severity = \"low\"\n        description = \"d\"\n        author = \"t\"\n        reference = \"r\"\n        date = \"2026-11-25\"\n    strings:\n        $a = \"added-{n}\"\n    condition:\n        $a\n}}\n"
            )
            .into_bytes(),
        )),
        Edit::AddNdb(n) => files.push((
            PathBuf::from(format!("clamav/test_added_{n}.ndb")),
            format!("Test.Added.Body-{n}:0:*:{}\n", hex_of(&format!("body-{n}"))).into_bytes(),
        )),
        Edit::RemoveFile(i) => {
            if files.len() > 1 {
                let i = i % files.len();
                files.remove(i);
            }
        }
        Edit::ChangeHashSize(size) => {
            for (p, b) in files.iter_mut() {
                if p.extension().is_some_and(|e| e == "hdb") {
                    let text = String::from_utf8_lossy(b).replace(":68:", &format!(":{size}:"));
                    *b = text.into_bytes();
                }
            }
        }
    }
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn delta_apply_rebuilds_exactly_the_new_database(edits in proptest::collection::vec(arb_edit(), 1..4)) {
        let old_files = snapshot(&rules_src());
        let mut new_files = old_files.clone();
        for e in &edits {
            apply_edit(&mut new_files, e);
        }
        let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        write_tree(a.path(), &old_files);
        write_tree(b.path(), &new_files);
        let old = build_dir(a.path(), 1);
        let new = build_dir(b.path(), 2);
        let d = Delta::create(&old, &new).expect("delta");
        prop_assert_eq!(Delta::apply(&old, &d).expect("apply"), new.clone());
        // Small edits give small deltas: far below the database itself.
        prop_assert!(d.len() < new.len() / 2, "delta {} bytes for a {}-byte database", d.len(), new.len());
    }
}
