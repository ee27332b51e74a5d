//! `vigil-build publish --goodware`: the release gate in front of a directory repository. A
//! clean release passes and is published; a planted rule that fires on every ELF file, or a
//! failing per-signature test, is refused with exit 5 and leaves every byte of the repository
//! as it was; `--override-gate` publishes the same release anyway and records the reason in the
//! target's metadata, where `info` shows it.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use vigil_tests::rules::repo_root;
use vigil_tests::{bin, copy_tree, run, Run};

/// The ELF planted in the candidate release: a "rule" that matches every executable.
const PLANTED: &str = r#"
rule Planted_Every_Elf_1
{
    meta:
        severity = "high"
        description = "planted false positive: matches every ELF file"
        author = "vigil tests"
        reference = "https://example.invalid/planted"
        date = "2026-12-01"
    condition:
        uint32(0) == 0x464c457f
}
"#;

fn vigil_build(dir: &Path, args: &[&str]) -> Run {
    run(Command::new(bin("vigil-build"))
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", "1764547200")
        .args(args))
}

/// Every file of a tree with its bytes: "byte-identical" made checkable.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A few real ELF programs and some text: goodware the planted rule is sure to hit.
fn goodware(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut elves = 0;
    for name in ["ls", "cat", "true", "env", "sort", "grep"] {
        let p = Path::new("/usr/bin").join(name);
        if let Ok(bytes) = std::fs::read(&p) {
            if bytes.starts_with(b"\x7fELF") {
                std::fs::write(dir.join(name), bytes).unwrap();
                elves += 1;
            }
        }
    }
    assert!(elves >= 2, "this machine has no ELF programs in /usr/bin");
    std::fs::write(dir.join("README"), "plain text, nothing to see\n").unwrap();
}

fn newest_targets(repo: &Path) -> Value {
    let newest = std::fs::read_dir(repo.join("metadata"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".targets.json")?.parse::<u64>().ok()
        })
        .max()
        .unwrap();
    let text =
        std::fs::read_to_string(repo.join(format!("metadata/{newest}.targets.json"))).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["signed"]["targets"].clone()
}

#[test]
fn the_gate_refuses_a_bad_release_leaves_the_repository_untouched_and_records_an_override() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    copy_tree(&repo_root().join("rules-src"), &d.join("rules"));
    goodware(&d.join("goodware"));
    assert_eq!(vigil_build(d, &["keygen", "-o", "keys"]).code, 0, "keygen");
    let r = vigil_build(d, &["repo", "init", "--repo", "repo", "--tuf-keys", "tuf"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let publish = [
        "publish",
        "--repo",
        "repo",
        "--tuf-keys",
        "tuf",
        "--rules",
        "rules",
        "--key",
        "keys/vigil.key",
        "--goodware",
        "goodware",
    ];

    // Version 1: the project's own rules pass their tests and are silent on goodware.
    let r = vigil_build(d, &publish);
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("gate: passed"), "{}", r.stderr);
    assert!(r.stderr.contains("published version 1"), "{}", r.stderr);

    // Version 2 plants a rule that fires on every ELF file: refused, nothing written.
    std::fs::write(d.join("rules/yara/planted_every_elf.yar"), PLANTED).unwrap();
    let before = snapshot(&d.join("repo"));
    let r = vigil_build(d, &publish);
    assert_eq!(r.code, 5, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Planted_Every_Elf_1"), "{}", r.stdout);
    assert!(
        r.stdout.contains("yara/planted_every_elf.yar:"),
        "the false positive is reported at the rule's file: {}",
        r.stdout
    );
    assert!(r.stderr.contains("publish refused"), "{}", r.stderr);
    assert!(r.stderr.contains("new false positives"), "{}", r.stderr);
    assert_eq!(
        snapshot(&d.join("repo")),
        before,
        "a refused publish changed the repository"
    );

    // A failing per-signature test blocks it too, even with nothing on goodware.
    std::fs::remove_file(d.join("rules/yara/planted_every_elf.yar")).unwrap();
    let test_file = d.join("rules/yara/linux_miner_xmrig.test.toml");
    let text = std::fs::read_to_string(&test_file).unwrap();
    // Swap what must be detected and what must be ignored: every check of the file fails.
    let broken = text
        .replace("detect =", "\0 =")
        .replace("ignore =", "detect =")
        .replace("\0 =", "ignore =");
    assert_ne!(broken, text);
    std::fs::write(&test_file, &broken).unwrap();
    let r = vigil_build(d, &publish);
    assert_eq!(r.code, 5, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("test/"), "{}", r.stdout);
    assert!(
        r.stderr.contains("per-signature test(s) failed"),
        "{}",
        r.stderr
    );
    assert_eq!(snapshot(&d.join("repo")), before);
    std::fs::write(&test_file, &text).unwrap();

    // The operator overrides: published, the reason in the target's metadata and in `info`.
    std::fs::write(d.join("rules/yara/planted_every_elf.yar"), PLANTED).unwrap();
    let reason = "vendor agent flagged on purpose for the audit drill (CHG-2041)";
    let r = vigil_build(d, &[&publish[..], &["--override-gate", reason]].concat());
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("gate: FAILED"), "{}", r.stderr);
    assert!(r.stderr.contains("published version 2"), "{}", r.stderr);
    let targets = newest_targets(&d.join("repo"));
    assert_eq!(targets["vigil-2.vdb"]["custom"]["gate_override"], reason);
    assert!(targets["vigil-1.vdb"]["custom"]
        .get("gate_override")
        .is_none());
    let r = vigil_build(
        d,
        &[
            "info",
            "--json",
            "--repo",
            "repo",
            "--root",
            "tuf/root.json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(reason), "{}", r.stdout);
}
