//! `vigil-build diff` through the CLI: two rule sets that differ by an added, a removed and a
//! changed signature of every kind (YARA, body, hash, allowlist), built with `vigil-build
//! build` and compared in all three formats against golden files; then the OLD side as the
//! live release of a directory repository (`--repo`) and of a served one (`--url`, through a
//! real vigil-server), the diff `publish` prints, and `--override-gate` recorded in targets.json
//! and shown by `diff` and `info`, with vigil-update still installing that release.
//!
//! Golden files live in tests/golden/diff/; regenerate them with `UPDATE_GOLDEN=1 cargo test
//! --workspace --release --test gate_diff` and review the change.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use vigil_tests::rules::test_key;
use vigil_tests::updater::vigil_server;
use vigil_tests::{bin, run, Run};

const META: &str = "    meta:\n        severity = \"low\"\n        description = \"release diff fixture\"\n        author = \"vigil tests\"\n        reference = \"https://example.invalid/diff\"\n        date = \"2026-11-25\"\n";

fn yara_rule(name: &str, marker: &str) -> String {
    format!("rule {name}\n{{\n{META}    strings:\n        $a = \"{marker}\"\n    condition:\n        $a\n}}\n")
}

/// In both sets, unchanged: vigil-update's smoke test wants a database that detects EICAR.
const EICAR_BODY: &str = "Multi.Test.Eicar-Body:0:0:58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a";

/// (relative path, text) of the old rule set.
fn old_rules() -> Vec<(&'static str, String)> {
    vec![
        (
            "yara/web.yar",
            [
                yara_rule("Gate_Keep_1", "keep-marker"),
                yara_rule("Gate_Edit_1", "edit-marker-v1"),
                yara_rule("Gate_Gone_1", "gone-marker"),
            ]
            .join("\n"),
        ),
        (
            "clamav/body.ndb",
            format!(
                "Gate.Body.Keep-1:0:*:6b6565702d626f6479\n\
                 Gate.Body.Edit-1:0:*:656469742d626f6479\n\
                 Gate.Body.Gone-1:0:*:676f6e652d626f6479\n{EICAR_BODY}\n"
            ),
        ),
        (
            "clamav/hash.hdb",
            "7c92ce159c706eba03b6568750533e35:100:Gate.Hash.Keep-1\n\
             d6035aed25a31307ccec577b3c4314c5:200:Gate.Hash.Gone-1\n"
                .into(),
        ),
        (
            "clamav/hash.hsb",
            "febe063b4f03b1b2dbd2e38127ede8843404f0ccd5acfc8cc28beaaff1642de0:300:Gate.Hash.Edit-1\n"
                .into(),
        ),
        (
            "clamav/allow.fp",
            "1c3741262798fc5ed13a99feb97e59e1:10:Gate.Allow.Keep\n\
             61b0e02126fa509eb101b1e59f1b26b3:20:Gate.Allow.Edit\n"
                .into(),
        ),
        (
            "clamav/allow.sfp",
            "e364f49bbafed42011dfc54d2035d3cf1e17e1d3eea00a825b6bbe48897fca79:30:Gate.Allow.Gone\n"
                .into(),
        ),
    ]
}

/// The new rule set: of every kind, one kept, one changed, one removed, one added; and a YARA
/// rule that only moved to another file (unchanged).
fn new_rules() -> Vec<(&'static str, String)> {
    vec![
        (
            "yara/moved.yar",
            format!("// moved here\n\n{}", yara_rule("Gate_Keep_1", "keep-marker")),
        ),
        (
            "yara/web.yar",
            [
                yara_rule("Gate_Edit_1", "edit-marker-v2"),
                yara_rule("Gate_New_1", "new-marker"),
            ]
            .join("\n"),
        ),
        (
            "clamav/body.ndb",
            format!(
                "{EICAR_BODY}\nGate.Body.Keep-1:0:*:6b6565702d626f6479\n\
                 Gate.Body.Edit-1:0:*:656469742d626f64792d7632\n\
                 Gate.Body.New-1:0:*:6e65772d626f6479\n"
            ),
        ),
        (
            "clamav/hash.hdb",
            "7c92ce159c706eba03b6568750533e35:100:Gate.Hash.Keep-1\n\
             08a4975cb05c0357d59ba5e046d0ebc5:400:Gate.Hash.New-1\n"
                .into(),
        ),
        (
            "clamav/hash.hsb",
            "febe063b4f03b1b2dbd2e38127ede8843404f0ccd5acfc8cc28beaaff1642de0:301:Gate.Hash.Edit-1\n"
                .into(),
        ),
        (
            "clamav/allow.fp",
            "1c3741262798fc5ed13a99feb97e59e1:10:Gate.Allow.Keep\n\
             61b0e02126fa509eb101b1e59f1b26b3:21:Gate.Allow.Edit\n"
                .into(),
        ),
        (
            "clamav/allow.sfp",
            "dd1cf69a9af9fb98fa8b7506248feb83453f49a08d0de8a11701d829cf17fda2:40:Gate.Allow.New\n"
                .into(),
        ),
    ]
}

/// A temporary directory holding the key, both rule sets and both databases, which every
/// command runs in, so the reports name `old.vdb` and `new.vdb` and no temporary path.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let f = Self { tmp };
        std::fs::write(f.path("test.key"), test_key().to_text()).unwrap();
        std::fs::write(f.path("test.pub"), test_key().public().to_text()).unwrap();
        for (dir, rules) in [("old", old_rules()), ("new", new_rules())] {
            for (rel, text) in rules {
                let p = f.path(dir).join(rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, text).unwrap();
            }
        }
        for (dir, version) in [("old", "1"), ("new", "2")] {
            let out = format!("{dir}.vdb");
            let r = f.vigil_build(&[
                "build",
                "--rules",
                dir,
                "--key",
                "test.key",
                "--version",
                version,
                "-o",
                &out,
            ]);
            assert_eq!(r.code, 0, "build {dir}: {}", r.stderr);
        }
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn vigil_build(&self, args: &[&str]) -> Run {
        run(Command::new(bin("vigil-build"))
            .args(args)
            .current_dir(self.tmp.path())
            // Reproducible bytes: the build time comes from SOURCE_DATE_EPOCH when set.
            .env_remove("SOURCE_DATE_EPOCH")
            .env("NO_COLOR", "1"))
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/diff")
}

/// Compares `actual` with the golden file, or rewrites it under UPDATE_GOLDEN=1.
#[track_caller]
fn golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs (UPDATE_GOLDEN=1 regenerates it after review)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

fn names(v: &Value, list: &str, kind: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == kind)
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn golden_diff_of_every_kind_in_three_formats() {
    let f = Fixture::new();
    let mut outputs = Vec::new();
    for (format, file) in [
        ("human", "old-new.txt"),
        ("json", "old-new.json"),
        ("markdown", "old-new.md"),
    ] {
        let r = f.vigil_build(&["diff", "--format", format, "old.vdb", "new.vdb"]);
        assert_eq!(r.code, 0, "{format}: {}", r.stderr);
        golden(file, &r.stdout);
        outputs.push(r.stdout);
    }
    // Whatever the golden files say, the facts hold: of every kind one added, one removed,
    // one changed, and the moved YARA rule is unchanged.
    let v: Value = serde_json::from_str(&outputs[1]).unwrap();
    assert_eq!(v["schema"], "vigil-diff/1");
    for (kind, added, removed, changed) in [
        ("yara", "Gate_New_1", "Gate_Gone_1", "Gate_Edit_1"),
        (
            "body",
            "Gate.Body.New-1",
            "Gate.Body.Gone-1",
            "Gate.Body.Edit-1",
        ),
        (
            "hash",
            "Gate.Hash.New-1",
            "Gate.Hash.Gone-1",
            "Gate.Hash.Edit-1",
        ),
        (
            "allow",
            "Gate.Allow.New",
            "Gate.Allow.Gone",
            "Gate.Allow.Edit",
        ),
    ] {
        assert_eq!(names(&v, "added", kind), [added], "{kind}");
        assert_eq!(names(&v, "removed", kind), [removed], "{kind}");
        assert_eq!(names(&v, "changed", kind), [changed], "{kind}");
        let counts = v["counts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == kind)
            .unwrap();
        let unchanged = if kind == "body" { 2 } else { 1 };
        assert_eq!(counts["unchanged"], unchanged, "{kind}: {counts}");
    }
    let edit = v["changed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Gate_Edit_1")
        .unwrap();
    assert_ne!(edit["old"]["identity"], edit["new"]["identity"]);
    assert_eq!(edit["new"]["file"], "yara/web.yar");
    assert_eq!(v["db_version"]["old"], 1);
    assert_eq!(v["db_version"]["new"], 2);
    assert_eq!(v["old"]["signature_checked"], false);
    // The hsb section: one record on both sides, and a stored size per side.
    let hsb = v["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["section"] == "hsb")
        .unwrap();
    assert_eq!(hsb["old"]["records"], 1);
    assert_eq!(hsb["new"]["records"], 1);
    // No temporary path anywhere: the outputs are reproducible.
    let tmp = f.tmp.path().display().to_string();
    assert!(outputs.iter().all(|o| !o.contains(&tmp)));
    // Markdown: a summary line and tables.
    assert!(outputs[2].contains("**4 added, 4 removed, 4 changed** signatures"));
    assert!(outputs[2].contains("| yara | `Gate_New_1` | `yara/web.yar:"));

    // With the key, signatures are verified; with another key the diff is refused (exit 2).
    let r = f.vigil_build(&["diff", "--pubkey", "test.pub", "old.vdb", "new.vdb"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("signature verified"), "{}", r.stdout);
    std::fs::write(
        f.path("other.pub"),
        vigil_format::SecretKey::from_seed([9; 32])
            .public()
            .to_text(),
    )
    .unwrap();
    let r = f.vigil_build(&["diff", "--pubkey", "other.pub", "old.vdb", "new.vdb"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("old.vdb"), "{}", r.stderr);
    // Identical databases: nothing changed, still exit 0.
    let r = f.vigil_build(&["diff", "new.vdb", "new.vdb"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("no signature added, removed or changed"));
}

#[test]
fn bad_input_and_usage_exit_2() {
    let f = Fixture::new();
    let mut bytes = std::fs::read(f.path("new.vdb")).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(f.path("tampered.vdb"), bytes).unwrap();
    for args in [
        &["diff", "old.vdb", "tampered.vdb"][..],
        &["diff", "old.vdb", "missing.vdb"],
        &["diff", "new.vdb"],
        &[
            "diff", "old.vdb", "new.vdb", "--repo", "nowhere", "--root", "x.json",
        ],
        &["diff", "--url", "http://127.0.0.1:9/", "new.vdb"],
    ] {
        let r = f.vigil_build(args);
        assert_eq!(r.code, 2, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
}

/// Finds the newest `N.targets.json` of a directory repository and returns its targets.
fn targets_json(repo: &Path) -> Value {
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

const REASON: &str = "FP on vendor-tool 2.1 is known and fixed in the next release (ticket 4711)";

#[test]
fn live_release_from_a_repository_and_a_server_with_the_override() {
    let f = Fixture::new();
    let r = f.vigil_build(&["repo", "init", "--repo", "repo", "--tuf-keys", "tuf"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let live = ["--repo", "repo", "--root", "tuf/root.json"];

    // Initialised, never published: everything is added.
    let r = f.vigil_build(&[&["diff", "--format", "json"][..], &live, &["old.vdb"]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["old"].is_null());
    assert_eq!(v["total"]["added"], 13);
    let r = f.vigil_build(&[&["info"][..], &live].concat());
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no database yet"), "{}", r.stderr);
    // The same through vigil-server; a URL that is no repository is an error, not "empty".
    let server = vigil_server(&f.path("repo"));
    let url = ["--url", server.url.as_str(), "--root", "tuf/root.json"];
    let r = f.vigil_build(&[&["diff", "--format", "json"][..], &url, &["old.vdb"]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["old"].is_null());
    let elsewhere = format!("{}nothing/", server.url);
    let r = f.vigil_build(&[
        "diff",
        "--url",
        &elsewhere,
        "--root",
        "tuf/root.json",
        "old.vdb",
    ]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("not a vigil repository"), "{}", r.stderr);

    // The first publish prints its diff: everything added.
    let publish = ["publish", "--repo", "repo", "--tuf-keys", "tuf", "--db"];
    let r = f.vigil_build(&[&publish[..], &["old.vdb"]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("old  none: the repository has no database yet"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("added (13)"), "{}", r.stderr);
    assert!(
        r.stderr.contains("diff (nothing) -> old.vdb"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("gate override"), "{}", r.stderr);

    // A reason that is not one line of text is refused before anything is written.
    let before = targets_json(&f.path("repo"));
    for bad in ["", "two\nlines"] {
        let r = f.vigil_build(&[&publish[..], &["new.vdb", "--override-gate", bad]].concat());
        assert_eq!(r.code, 2, "{bad:?}: {}", r.stderr);
    }
    assert_eq!(targets_json(&f.path("repo")), before);

    // The second, past the gate: the diff against version 1, and the reason recorded.
    let r = f.vigil_build(&[&publish[..], &["new.vdb", "--override-gate", REASON]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("diff vigil-1.vdb -> new.vdb"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("changed (4)"), "{}", r.stderr);
    let recorded = format!("gate override recorded in the target's metadata: {REASON}");
    assert!(r.stderr.contains(&recorded), "{}", r.stderr);
    let targets = targets_json(&f.path("repo"));
    assert_eq!(targets["vigil-2.vdb"]["custom"]["gate_override"], REASON);
    assert_eq!(targets["vigil-2.vdb"]["custom"]["kind"], "full");
    assert!(targets["vigil-1.vdb"]["custom"]
        .get("gate_override")
        .is_none());
    assert!(targets["vigil-1-2.vdelta"]["custom"]
        .get("gate_override")
        .is_none());

    // diff and info show it, from the directory...
    let r = f.vigil_build(&[&["diff", "--format", "json"][..], &live, &["new.vdb"]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["old"]["label"], "vigil-2.vdb");
    assert_eq!(v["old"]["origin"]["gate_override"], REASON);
    assert_eq!(v["old"]["origin"]["repository"], "repo");
    assert_eq!(v["total"]["changed"], 0);
    let r = f.vigil_build(&[&["diff", "--format", "markdown"][..], &live, &["old.vdb"]].concat());
    assert!(
        r.stdout.contains("[!WARNING]") && r.stdout.contains("ticket 4711"),
        "{}",
        r.stdout
    );
    let r = f.vigil_build(&[&["info"][..], &live].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("gate override   {REASON}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("live target     vigil-2.vdb"),
        "{}",
        r.stdout
    );

    // ...and through vigil-server, as clients read it.
    let r = f.vigil_build(
        &[
            &["diff", "--format", "json", "--pubkey", "test.pub"][..],
            &url,
            &["old.vdb"],
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["old"]["origin"]["gate_override"], REASON);
    assert_eq!(v["old"]["origin"]["repository"], server.url.as_str());
    assert_eq!(v["old"]["signature_checked"], true);
    // Going back from 2 to 1 reverses every change, and publish would refuse the version.
    assert_eq!(v["total"]["added"], 4);
    assert_eq!(v["total"]["removed"], 4);
    let r = f.vigil_build(&[&["diff"][..], &url, &["old.vdb"]].concat());
    assert!(r.stdout.contains("not newer"), "{}", r.stdout);
    let r = f.vigil_build(&[&["info", "--json"][..], &url].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["target"]["gate_override"], REASON);
    assert_eq!(v["target"]["name"], "vigil-2.vdb");
    assert_eq!(v["db_version"], 2);

    // A client installs the overridden release: the new metadata field does not disturb it.
    let config = f.path("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "mirrors = [{:?}]\ndatabase_dir = \"db\"\ntrusted_root = \"tuf/root.json\"\n\
             pubkeys = [\"test.pub\"]\nchecks_per_day = 1\n",
            server.url
        ),
    )
    .unwrap();
    let out = Command::new(bin("vigil-update"))
        .args(["--config", &config.display().to_string()])
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(f.path("db/vigil.vdb")).unwrap(),
        std::fs::read(f.path("new.vdb")).unwrap(),
        "version 2 is the active database"
    );
}
