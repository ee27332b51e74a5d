//! `vigil-build test` through the binary, on the real engine: the project's own rules pass with
//! full coverage, and each kind of failure (a positive missed, a negative matched, allowlist
//! entries that do or do not clear, missing coverage, bad test files, rules that do not build)
//! is reported where it should be, in every output format, with the documented exit code.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use md5::{Digest, Md5};
use vigil_tests::rules::repo_root;
use vigil_tests::{bin, copy_tree, run};

/// Runs `vigil-build test ARGS...`: (exit code, stdout, stderr).
fn test_cmd(args: &[&str], rules: &Path) -> (i32, String, String) {
    let r = run(Command::new(bin("vigil-build"))
        .arg("test")
        .args(args)
        .arg(rules));
    (r.code, r.stdout, r.stderr)
}

/// A copy of rules-src (rules, tests and samples) to break on purpose.
fn rules_copy() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let rules = t.path().join("rules");
    copy_tree(&repo_root().join("rules-src"), &rules);
    (t, rules)
}

/// Replaces `from` (which must be there) by `to` in `file`.
fn edit(file: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", file.display());
    fs::write(file, text.replacen(from, to, 1)).unwrap();
}

/// 1-based line of the first line containing `needle`.
fn line_of(file: &Path, needle: &str) -> usize {
    fs::read_to_string(file)
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{} has no {needle:?}", file.display()))
        + 1
}

fn errors(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("error[")).collect()
}

#[test]
fn rules_src_passes_with_every_signature_covered() {
    let rules = repo_root().join("rules-src");
    let (code, out, err) = test_cmd(&["--require-coverage"], &rules);
    assert_eq!(code, 0, "{out}{err}");
    assert!(errors(&out).is_empty(), "{out}");
    assert!(
        err.contains(
            "coverage: 24/24 signature(s) with a positive test, 24/24 with a negative test"
        ),
        "{err}"
    );

    let (code, out, _) = test_cmd(&["--require-coverage", "--format", "json"], &rules);
    assert_eq!(code, 0);
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["signatures"], 24);
    // Every signature at least twice (once each way), some samples shared between tests.
    assert!(summary["cases"].as_u64().unwrap() >= 48, "{summary}");
    assert!(summary["samples"].as_u64().unwrap() < summary["cases"].as_u64().unwrap());
}

#[test]
fn a_yara_rule_that_misses_its_positive_sample_fails_at_the_rule() {
    let (_t, rules) = rules_copy();
    let yar = rules.join("yara/multi_ransom_note.yar");
    // A regression: the payment string no longer matches the note's "Bitcoin".
    edit(
        &yar,
        "$pay1 = \"bitcoin\" nocase",
        "$pay1 = \"bitcoins\" nocase",
    );
    let (code, out, err) = test_cmd(&[], &rules);
    assert_eq!(code, 1, "{out}{err}");
    let sample = rules.join("samples/ransom-note.txt");
    assert_eq!(
        errors(&out),
        [format!(
            "error[test/missed]: Multi_Ransom_Note_Generic_1 missed {}: nothing detected it",
            sample.display()
        )],
        "{out}"
    );
    let rule_line = line_of(&yar, "rule Multi_Ransom_Note_Generic_1");
    assert!(
        out.contains(&format!("  --> {}:{rule_line}:6\n", yar.display())),
        "{out}"
    );
    let toml = rules.join("yara/multi_ransom_note.test.toml");
    let test_line = line_of(&toml, "../samples/ransom-note.txt");
    assert!(
        out.contains(&format!(
            "  = test: {}:{test_line} (detect)",
            toml.display()
        )),
        "{out}"
    );
    // The inline note (Monero) is still detected: one failure, not two.
    assert!(err.contains(", 1 failed"), "{err}");

    // json and github carry the rule's file and line and the test's.
    let (code, out, _) = test_cmd(&["--format", "json"], &rules);
    assert_eq!(code, 1);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let f = &lines[0];
    assert_eq!(f["type"], "failure");
    assert_eq!(f["code"], "test/missed");
    assert_eq!(f["kind"], "yara");
    assert_eq!(f["file"], yar.display().to_string());
    assert_eq!(f["line"], rule_line);
    assert_eq!(f["sample"], sample.display().to_string());
    assert_eq!(f["test_file"], toml.display().to_string());
    assert_eq!(f["test_line"], test_line);
    assert_eq!(f["expect"], "detect");
    assert_eq!(lines.last().unwrap()["ok"], false);

    let (code, out, _) = test_cmd(&["--format", "github"], &rules);
    assert_eq!(code, 1);
    assert!(
        out.starts_with(&format!(
            "::error file={},line={rule_line},col=6,title=test/missed::Multi_Ransom_Note_Generic_1 missed",
            yar.display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("(test: {}:{test_line})", toml.display())),
        "{out}"
    );
}

#[test]
fn body_and_hash_signatures_that_miss_say_what_detected_the_sample() {
    let (_t, rules) = rules_copy();
    // The MD5 of EICAR with one digit changed; the WSO title signature narrowed to WSO 5.x.
    let hdb = rules.join("clamav/eicar.hdb");
    edit(&hdb, "44d88612", "44d88613");
    let ndb = rules.join("clamav/webshell.ndb");
    edit(&ndb, "57534f20(32|33|34)2e", "57534f20352e");
    let (code, out, err) = test_cmd(&[], &rules);
    assert_eq!(code, 1, "{out}{err}");
    let errs = errors(&out);
    assert_eq!(errs.len(), 2, "{out}");
    assert_eq!(
        errs[0],
        "error[test/missed]: Multi.Test.Eicar-MD5 missed inline \"eicar\": detected only by Multi.Test.Eicar-Body, Multi.Test.Eicar-SHA256"
    );
    assert!(
        out.contains(&format!("  --> {}:1:37\n", hdb.display())),
        "{out}"
    );
    assert_eq!(
        errs[1],
        format!(
            "error[test/missed]: Php.Webshell.Wso-1 missed {}: nothing detected it",
            rules.join("samples/wso-shell.html").display()
        )
    );
    let line = line_of(&ndb, "Php.Webshell.Wso-1");
    assert!(
        out.contains(&format!("  --> {}:{line}:1\n", ndb.display())),
        "{out}"
    );
}

#[test]
fn a_negative_sample_matched_fails() {
    let (_t, rules) = rules_copy();
    // Loosened: any "<title>...WSO" now fires, WSO2's console included; and XMRig on one
    // indicator instead of two.
    let ndb = rules.join("clamav/webshell.ndb");
    edit(&ndb, "57534f20(32|33|34)2e", "57534f");
    let yar = rules.join("yara/linux_miner_xmrig.yar");
    edit(&yar, "$a and 2 of", "$a and 1 of");
    let (code, out, err) = test_cmd(&[], &rules);
    assert_eq!(code, 1, "{out}{err}");
    let errs = errors(&out);
    assert_eq!(errs.len(), 2, "{out}");
    assert_eq!(
        errs[0],
        format!(
            "error[test/matched]: Php.Webshell.Wso-1 matched {}, which it must ignore (at offset 12)",
            rules.join("samples/wso2-console.html").display()
        )
    );
    assert!(errs[1].starts_with(&format!(
        "error[test/matched]: Linux_Miner_XMRig_1 matched {}, which it must ignore",
        rules.join("samples/miner-blocklist.txt").display()
    )));
    let toml = rules.join("yara/linux_miner_xmrig.test.toml");
    let test_line = line_of(&toml, "../samples/miner-blocklist.txt");
    assert!(
        out.contains(&format!(
            "  = test: {}:{test_line} (ignore)",
            toml.display()
        )),
        "{out}"
    );
}

#[test]
fn allowlist_entries_are_tested_one_by_one() {
    // rules-src: the SHA-256 entry with a wrong size no longer clears the fixture, although
    // the MD5 entry still does (and the engine reports only that one).
    let (_t, rules) = rules_copy();
    let sfp = rules.join("clamav/allow.sfp");
    edit(&sfp, ":192:", ":193:");
    let (code, out, err) = test_cmd(&[], &rules);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        errors(&out),
        [format!(
            "error[test/not-cleared]: Vigil.Allow.WafTestFixture-SHA256 did not clear {}: the entry's digest or size does not match the sample (allowlist entry Vigil.Allow.WafTestFixture-MD5 cleared it)",
            rules.join("samples/waf-test-fixture.php").display()
        )]
    );
    assert!(
        out.contains(&format!("  --> {}:1:", sfp.display())),
        "{out}"
    );

    // A small rule set: one body signature, two allowlist entries.
    let t = tempfile::tempdir().unwrap();
    let rules = t.path().join("rules");
    fs::create_dir_all(&rules).unwrap();
    let fixture = b"a fixture with marker-marker in it\n";
    let clean = b"nothing to see\n";
    let md5 = |b: &[u8]| hex::encode(Md5::digest(b));
    fs::write(
        rules.join("marker.ndb"),
        "Test.Body.Marker-1:0:*:6d61726b65722d6d61726b6572\n",
    )
    .unwrap();
    fs::write(
        rules.join("allow.fp"),
        format!(
            "{}:{}:Test.Allow.Fixture\n{}:{}:Test.Allow.Clean\n",
            md5(fixture),
            fixture.len(),
            md5(clean),
            clean.len()
        ),
    )
    .unwrap();
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap().replace('\n', "\\n");
    let tests = format!(
        r#"[[test]]
signature = "Test.Allow.Fixture"
detect = [{{ name = "fixture", text = "{f}" }}]
ignore = [{{ name = "other", text = "another file with marker-marker\n" }}]

[[test]]
signature = "Test.Body.Marker-1"
detect = [{{ name = "fixture", text = "{f}" }}, {{ name = "other", text = "another file with marker-marker\n" }}]
ignore = [{{ name = "clean", text = "{c}" }}]

[[test]]
signature = "Test.Allow.Clean"
detect = [{{ name = "clean", text = "{c}" }}]
"#,
        f = text(fixture),
        c = text(clean)
    );
    fs::write(rules.join("allow.test.toml"), tests).unwrap();
    let (code, out, err) = test_cmd(&[], &rules);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        errors(&out),
        [
            // The fixture is cleared, so to a user the body signature missed it.
            "error[test/missed]: Test.Body.Marker-1 missed inline \"fixture\": the sample was cleared by allowlist entry Test.Allow.Fixture",
            "error[test/not-cleared]: Test.Allow.Clean did not clear inline \"clean\": nothing detected the sample, and an allowlist entry only clears a detected file",
        ],
        "{out}"
    );
    // Test.Allow.Fixture passed both ways: it cleared the fixture, not the other file.
    assert!(
        err.contains("6 check(s) on 3 sample(s): 4 passed, 2 failed"),
        "{err}"
    );
}

#[test]
fn missing_coverage_fails_only_when_required() {
    let (_t, rules) = rules_copy();
    let toml = rules.join("yara/linux_rootkit_ldpreload.test.toml");
    edit(&toml, "ignore = [\"../samples/ld-loader.so\"]", "");
    fs::remove_file(rules.join("clamav/revshell.test.toml")).unwrap();
    let (code, out, err) = test_cmd(&[], &rules);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains(
            "coverage: 22/24 signature(s) with a positive test, 21/24 with a negative test"
        ),
        "{err}"
    );
    let yar = rules.join("yara/linux_rootkit_ldpreload.yar");
    let line = line_of(&yar, "rule Linux_Rootkit_LdPreload_1");
    assert!(
        err.contains(&format!(
            "  no negative test: Linux_Rootkit_LdPreload_1 ({}:{line})",
            yar.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("  no positive test: Elf.Rootkit.Diamorphine-1 ("),
        "{err}"
    );
    assert!(!err.contains("coverage incomplete"), "{err}");

    let (code, _, err) = test_cmd(&["--require-coverage"], &rules);
    assert_eq!(code, 1);
    assert!(
        err.contains("coverage incomplete: --require-coverage fails the run"),
        "{err}"
    );

    let (code, out, _) = test_cmd(&["--require-coverage", "--format", "github"], &rules);
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!(
            "::error file={},line={line},col=1,title=test/coverage::Linux_Rootkit_LdPreload_1 has no negative test",
            yar.display()
        )),
        "{out}"
    );
    let (_, out, _) = test_cmd(&["--format", "github"], &rules);
    assert!(
        out.contains("title=test/coverage::Unix.Trojan.RevShellDevTcp-1 has no test at all"),
        "{out}"
    );
    assert!(out.lines().all(|l| l.starts_with("::warning ")), "{out}");
}

#[test]
fn bad_test_files_are_errors_at_their_line() {
    let (t, rules) = rules_copy();
    fs::write(t.path().join("outside.txt"), "not a rule sample").unwrap();
    let extra = rules.join("yara/extra.test.toml");
    fs::write(
        &extra,
        r#"[[test]]
signature = "No_Such_Rule"
detect = ["../samples/xmrig-config.json"]

[[test]]
signature = "Linux_Miner_XMRig_1"
detect = ["../samples/missing.json", "/etc/hostname", "../../outside.txt"]
ignore = [{ name = "bad", hex = "58zz" }]

[[test]]
signature = "Linux.Miner.XMRig-1"
ignore = ["../samples/xmrig-config.json"]
"#,
    )
    .unwrap();
    let typo = rules.join("clamav/typo.test.toml");
    fs::write(
        &typo,
        "[[test]]\nsignature = \"Php.Webshell.Wso-1\"\ndetekt = []\n",
    )
    .unwrap();
    let syntax = rules.join("clamav/syntax.test.toml");
    fs::write(
        &syntax,
        "[[test]]\nsignature = \"Php.Webshell.Wso-1\ndetect = []\n",
    )
    .unwrap();

    let (code, out, err) = test_cmd(&[], &rules);
    assert_eq!(code, 2, "{out}{err}");
    let at = |file: &Path, line: usize| format!("  --> {}:{line}:", file.display());
    let expect = [
        (
            "error[test/toml]: unknown field `detekt`, expected one of `signature`, `detect`, `ignore`",
            at(&typo, 3),
        ),
        ("error[test/toml]: ", at(&syntax, 2)),
        (
            "error[test/unknown-signature]: no signature named \"No_Such_Rule\"",
            at(&extra, 2),
        ),
        ("error[test/hex]: inline sample \"bad\": bad hex character 'z'", at(&extra, 8)),
        ("error[test/sample]: sample ", at(&extra, 7)),
    ];
    for (message, position) in expect {
        let block = out
            .split("\n\n")
            .find(|b| b.starts_with(message) && b.contains(&position))
            .unwrap_or_else(|| panic!("no {message:?} at {position:?} in\n{out}"));
        assert!(!block.is_empty());
    }
    assert!(
        out.contains(&format!(
            "sample {} not found",
            rules.join("yara/../samples/missing.json").display()
        )),
        "{out}"
    );
    assert!(
        out.contains("sample path \"/etc/hostname\" is absolute"),
        "{out}"
    );
    assert!(out.contains("is outside the rules directory"), "{out}");
    assert!(
        out.contains("no signature named \"Linux.Miner.XMRig-1\" in ")
            && out.contains("(did you mean \"Linux_Miner_XMRig_1\"?)"),
        "{out}"
    );
    assert!(
        err.contains("problem(s) in the test files: nothing was run"),
        "{err}"
    );
    // Nothing was judged.
    assert!(
        !out.contains("test/missed") && !err.contains("coverage:"),
        "{out}{err}"
    );

    // github: the test file and line.
    let (code, out, _) = test_cmd(&["--format", "github"], &rules);
    assert_eq!(code, 2);
    assert!(
        out.contains(&format!(
            "::error file={},line=2,col=13,title=test/unknown-signature::",
            extra.display()
        )),
        "{out}"
    );
}

#[test]
fn rules_that_do_not_build_fail_with_their_lint_errors() {
    let (_t, rules) = rules_copy();
    fs::write(
        rules.join("clamav/broken.ndb"),
        "Broken.Sig-1:0:*:41zz4344\n",
    )
    .unwrap();
    let (code, out, err) = test_cmd(&[], &rules);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("error[ndb/hex]"), "{out}");
    assert!(err.contains("the rules do not build"), "{err}");
    assert!(!err.contains("coverage:"), "{err}");
}

#[test]
fn usage_and_io_errors_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let (code, _, err) = test_cmd(&[], &t.path().join("nowhere"));
    assert_eq!(code, 2, "{err}");
    // A directory without rule files.
    let (code, _, err) = test_cmd(&[], t.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no rule files"), "{err}");
    let (code, _, _) = test_cmd(&["--format", "xml"], t.path());
    assert_eq!(code, 2);
}
