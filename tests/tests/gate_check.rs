//! `vigil-build check` through the CLI with the real engine on real files: new false positives
//! against a baseline (a file, or the live database of a served repository) next to old ones
//! that are only listed; a rule over the cost budget; rules yara-x flags as slow; a planted
//! rule that matches every ELF file, caught on /usr/bin; goodware in S3; and the inputs that
//! are errors (exit 2), not failures (exit 1).
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use vigil_tests::rules::{db_from, repo_root, test_key};
use vigil_tests::{bin, run};

const META: &str = r#"
    meta:
        severity = "low"
        description = "a release-gate test rule"
        author = "vigil tests"
        reference = "https://example.invalid/gate"
        date = "2026-12-01""#;

/// A rule with vigil's meta; `body` holds its strings and condition.
fn rule(name: &str, body: &str) -> String {
    format!("rule {name}\n{{{META}\n{body}\n}}\n")
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn p(x: &Path) -> String {
    x.display().to_string()
}

/// Runs `vigil-build check ARGS`: (exit code, stdout, stderr).
fn check(args: &[String]) -> (i32, String, String) {
    check_env(args, &[])
}

fn check_env(args: &[String], env: &[(&str, String)]) -> (i32, String, String) {
    let r = run(Command::new(bin("vigil-build"))
        .arg("check")
        .args(args)
        .args(["--progress", "never"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
    (r.code, r.stdout, r.stderr)
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// The false-positive entry of `name` in a JSON report.
fn fp<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["false_positives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["signature"] == name)
        .unwrap_or_else(|| panic!("{name} not reported: {report:#}"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// A baseline with one body signature, a candidate that adds a YARA rule and an allowlist
/// entry, and goodware on which both fire.
struct Fixture {
    _tmp: tempfile::TempDir,
    baseline_rules: PathBuf,
    candidate: PathBuf,
    baseline_db: PathBuf,
    pubkey: PathBuf,
    corpus: PathBuf,
}

const OLD: &[u8] = b"OLDMARKER-1234";
const NEW: &str = "NEWMARKER-5678";

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let base = t.join("baseline-rules");
    let ndb = format!("# markers\nGate.Old.Marker-1:0:*:{}\n", hex(OLD));
    write(&base.join("old.ndb"), &ndb);
    let cand = t.join("candidate");
    write(&cand.join("old.ndb"), &ndb);
    // The rule starts on line 3: the reports must say so.
    write(
        &cand.join("new.yar"),
        format!(
            "// a rule new in this release\n\n{}",
            rule(
                "New_Marker",
                &format!("    strings:\n        $a = \"{NEW}\"\n    condition:\n        $a")
            )
        ),
    );
    let corpus = t.join("goodware");
    write(&corpus.join("old.txt"), [b"x ", OLD, b" y"].concat());
    write(&corpus.join("new.txt"), format!("a {NEW} b"));
    write(
        &corpus.join("sub/both.txt"),
        [OLD, b" and ", NEW.as_bytes()].concat(),
    );
    write(&corpus.join("clean.txt"), "nothing to see");
    // Detected by the new rule, but the candidate's allowlist clears it.
    let allowed = format!("allowed {NEW} by the allowlist");
    write(&corpus.join("allowed.txt"), &allowed);
    let md5 = {
        use md5::{Digest, Md5};
        hex(&Md5::digest(allowed.as_bytes()))
    };
    write(
        &cand.join("goodware.fp"),
        format!("{md5}:{}:Gate.Allow.Allowed\n", allowed.len()),
    );
    let baseline_db = t.join("baseline.vdb");
    std::fs::write(&baseline_db, db_from(&base, 1)).unwrap();
    let pubkey = t.join("test.pub");
    std::fs::write(&pubkey, test_key().public().to_text()).unwrap();
    Fixture {
        _tmp: tmp,
        baseline_rules: base,
        candidate: cand,
        baseline_db,
        pubkey,
        corpus,
    }
}

/// The report's verdict on the fixture with the baseline applied.
fn assert_new_and_old(f: &Fixture, report: &Value) {
    assert_eq!(report["passed"], false);
    assert_eq!(report["baseline_version"], 1);
    assert_eq!(report["corpus"]["files"], 5, "{report:#}");
    assert_eq!(report["corpus"]["allowlisted"], 1);
    let new = fp(report, "New_Marker");
    assert_eq!(new["kind"], "yara");
    assert_eq!(new["file"], p(&f.candidate.join("new.yar")));
    assert_eq!(new["line"], 3);
    assert_eq!(new["new"]["files"], 2);
    assert_eq!(
        strs(&new["new"]["paths"]),
        [
            p(&f.corpus.join("new.txt")),
            p(&f.corpus.join("sub/both.txt"))
        ]
    );
    assert_eq!(new["old"]["files"], 0);
    let old = fp(report, "Gate.Old.Marker-1");
    assert_eq!(old["kind"], "body");
    assert_eq!(old["file"], p(&f.candidate.join("old.ndb")));
    assert_eq!(old["line"], 2);
    assert_eq!(old["new"]["files"], 0, "the baseline has it: old, not new");
    assert_eq!(old["old"]["files"], 2);
    assert_eq!(
        strs(&old["old"]["paths"]),
        [
            p(&f.corpus.join("old.txt")),
            p(&f.corpus.join("sub/both.txt"))
        ]
    );
    assert_eq!(report["false_positives"].as_array().unwrap().len(), 2);
}

#[test]
fn new_false_positives_fail_against_a_baseline_and_old_ones_are_listed() {
    let f = fixture();
    let common = |format: &str| {
        let mut a = args(&["--rules", &p(&f.candidate), "--goodware", &p(&f.corpus)]);
        a.extend(args(&["--baseline", &p(&f.baseline_db)]));
        a.extend(args(&["--pubkey", &p(&f.pubkey), "--format", format]));
        a
    };
    let (code, out, err) = check(&common("json"));
    assert_eq!(code, 1, "{out}\n{err}");
    assert_new_and_old(&f, &json(&out));

    // Human: one table, the new one marked NEW, the old one "old", and why it failed.
    let (code, out, _) = check(&common("human"));
    assert_eq!(code, 1);
    let line_of = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle) && l.contains(".txt"))
            .unwrap_or_else(|| panic!("no row for {needle}:\n{out}"))
            .to_string()
    };
    assert!(
        line_of("New_Marker").trim_start().starts_with("NEW"),
        "{out}"
    );
    assert!(
        line_of("Gate.Old.Marker-1").trim_start().starts_with("old"),
        "{out}"
    );
    assert!(
        out.contains("FAILED: 1 signature(s) with new false positives"),
        "{out}"
    );

    // GitHub: an error at the new rule's line, a warning at the old signature's.
    let (code, out, _) = check(&common("github"));
    assert_eq!(code, 1);
    let yar = p(&f.candidate.join("new.yar")).replace(':', "%3A");
    let ndb = p(&f.candidate.join("old.ndb")).replace(':', "%3A");
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "::error file={yar},line=3,col=1,title=check/new-false-positive::New_Marker"
        ))),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "::warning file={ndb},line=2,col=1,title=check/known-false-positive::Gate.Old.Marker-1"
        ))),
        "{out}"
    );

    // Without a baseline, both are new.
    let (code, out, _) = check(&args(&[
        "--rules",
        &p(&f.candidate),
        "--goodware",
        &p(&f.corpus),
        "--format",
        "json",
    ]));
    assert_eq!(code, 1);
    let r = json(&out);
    assert_eq!(fp(&r, "Gate.Old.Marker-1")["new"]["files"], 2);
    assert_eq!(r["baseline_version"], Value::Null);

    // The baseline checked against itself: only old false positives, so it passes.
    let (code, out, err) = check(&args(&[
        "--rules",
        &p(&f.baseline_rules),
        "--goodware",
        &p(&f.corpus),
        "--baseline",
        &p(&f.baseline_db),
        "--pubkey",
        &p(&f.pubkey),
    ]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("check: passed"), "{out}");
}

#[test]
fn the_baseline_can_be_the_live_database_of_a_served_repository() {
    let f = fixture();
    let work = tempfile::tempdir().unwrap();
    let (repo, tuf) = (work.path().join("repo"), work.path().join("tuf"));
    let build = |a: &[&str]| {
        let out = Command::new(bin("vigil-build")).args(a).output().unwrap();
        assert!(
            out.status.success(),
            "{a:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    build(&["repo", "init", "--repo", &p(&repo), "--tuf-keys", &p(&tuf)]);
    build(&[
        "publish",
        "--repo",
        &p(&repo),
        "--tuf-keys",
        &p(&tuf),
        "--db",
        &p(&f.baseline_db),
    ]);
    let server = vigil_tests::updater::vigil_server(&repo);
    let live = |pubkey: &Path| {
        check(&args(&[
            "--rules",
            &p(&f.candidate),
            "--goodware",
            &p(&f.corpus),
            "--baseline-url",
            &server.url,
            "--root",
            &p(&tuf.join("root.json")),
            "--pubkey",
            &p(pubkey),
            "--format",
            "json",
        ]))
    };
    let (code, out, err) = live(&f.pubkey);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("baseline: version 1"), "{err}");
    assert_new_and_old(&f, &json(&out));

    // TUF-verified is not enough: the database must be signed by a key we trust.
    let other = work.path().join("other.pub");
    std::fs::write(
        &other,
        vigil_format::SecretKey::from_seed([9; 32])
            .public()
            .to_text(),
    )
    .unwrap();
    let (code, _, err) = live(&other);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("baseline"), "{err}");
}

/// A xorshift stream: incompressible-looking bytes, fast to make.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_rule_over_the_cost_budget_fails_and_body_signatures_show_their_work() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let rules = t.join("rules");
    // Legal, but it hashes every byte of every file three ways.
    let costly = rule(
        "Costly_Hashes",
        "    condition:\n        hash.sha256(0, filesize) == \"00\" or hash.md5(0, filesize) == \"00\" \
         or math.entropy(0, filesize) < 0.0001",
    );
    write(
        &rules.join("costly.yar"),
        format!("import \"hash\"\nimport \"math\"\n{costly}"),
    );
    write(
        &rules.join("cheap.yar"),
        rule(
            "Cheap_String",
            "    strings:\n        $a = \"no such string anywhere\"\n    condition:\n        $a",
        ),
    );
    // Its window is planted all over one file, its whole literal run nowhere.
    write(
        &rules.join("partial.ndb"),
        format!("Gate.Body.Partial-1:0:*:{}\n", hex(b"GATEBODYZZZZ")),
    );
    let db = t.join("costly.vdb");
    std::fs::write(&db, db_from(&rules, 1)).unwrap();
    let pubkey = t.join("test.pub");
    std::fs::write(&pubkey, test_key().public().to_text()).unwrap();
    // 64 MB: past yara-x's 100 ms itemisation threshold on one thread (the rule costs a few
    // hundred ms here).
    let corpus = t.join("goodware");
    for i in 0..32 {
        write(&corpus.join(format!("f{i:02}.bin")), noise(i + 1, 2 << 20));
    }
    let mut planted = noise(99, 4096);
    for k in 0..100 {
        let at = 13 * k + 7;
        planted[at..at + 8].copy_from_slice(b"GATEBODY");
    }
    write(&corpus.join("planted.bin"), planted);

    let (code, out, err) = check(&args(&[
        "--db",
        &p(&db),
        "--pubkey",
        &p(&pubkey),
        "--goodware",
        &p(&corpus),
        "--threads",
        "1",
        "--max-rule-ms-per-gb",
        "100",
        "--format",
        "json",
    ]));
    assert_eq!(code, 1, "{out}\n{err}");
    let r = json(&out);
    assert!(r["false_positives"].as_array().unwrap().is_empty(), "{r:#}");
    let over = r["cost"]["over_budget"].as_array().unwrap();
    assert_eq!(over.len(), 1, "{r:#}");
    assert_eq!(over[0]["rule"], "Costly_Hashes");
    // From a database: the source path inside it, and the rule's line there.
    assert_eq!(over[0]["file"], "costly.yar");
    assert_eq!(over[0]["line"], 3);
    let ms_per_gb = over[0]["ms_per_gb"].as_f64().unwrap();
    assert!(ms_per_gb > 100.0, "{ms_per_gb}");
    assert!(over[0]["condition_ms"].as_f64().unwrap() > 50.0, "{r:#}");
    let body = &r["cost"]["body_top"][0];
    assert_eq!(body["signature"], "Gate.Body.Partial-1");
    assert_eq!(body["file"], "ndb");
    assert!(body["candidates"].as_u64().unwrap() > 0, "{r:#}");
    assert_eq!(body["confirmations"], 0);
    eprintln!("Costly_Hashes: {ms_per_gb:.0} ms/GB");

    // The same run within a generous budget passes.
    let (code, out, err) = check(&args(&[
        "--db",
        &p(&db),
        "--pubkey",
        &p(&pubkey),
        "--goodware",
        &p(&corpus),
        "--threads",
        "1",
        "--max-rule-ms-per-gb",
        "10000000",
    ]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Costly_Hashes"), "{out}");
}

#[test]
fn rules_yara_x_flags_as_slow_are_cost_errors_at_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    let slow = format!(
        "// slow ones\n{}\n{}",
        rule(
            "Slow_Pattern",
            "    strings:\n        $a = { 00 [1-10] 01 }\n    condition:\n        $a"
        ),
        rule(
            "Slow_Loop",
            "    condition:\n        for any i in (0..filesize) : (uint8(i) == 0xfe)"
        ),
    );
    write(&rules.join("slow.yar"), &slow);
    let line = |name: &str| {
        slow.lines()
            .position(|l| l.starts_with(&format!("rule {name}")))
            .unwrap()
            + 1
    };
    let corpus = tmp.path().join("goodware");
    write(&corpus.join("a.txt"), "plain text");
    // vigil's own lint refuses them; check measures them and says why they fail.
    let lint = Command::new(bin("vigil-build"))
        .args(["lint", &p(&rules)])
        .output()
        .unwrap();
    assert_eq!(lint.status.code(), Some(1));

    let run = |format: &str| {
        check(&args(&[
            "--rules",
            &p(&rules),
            "--goodware",
            &p(&corpus),
            "--format",
            format,
        ]))
    };
    let (code, out, err) = run("json");
    assert_eq!(code, 1, "{out}\n{err}");
    let r = json(&out);
    let slow_rules: Vec<(String, u64, String)> = r["cost"]["slow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["rule"].as_str().unwrap().to_string(),
                s["line"].as_u64().unwrap(),
                s["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        slow_rules,
        [
            (
                "Slow_Pattern".to_string(),
                line("Slow_Pattern") as u64,
                "yara/slow_pattern".to_string()
            ),
            (
                "Slow_Loop".to_string(),
                line("Slow_Loop") as u64,
                "yara/potentially_slow_loop".to_string()
            ),
        ]
    );
    let (code, out, _) = run("github");
    assert_eq!(code, 1);
    let file = p(&rules.join("slow.yar")).replace(':', "%3A");
    for name in ["Slow_Pattern", "Slow_Loop"] {
        let want = format!(
            "::error file={file},line={},col=1,title=check/slow-rule::{name}: yara-x warns it is slow",
            line(name)
        );
        assert!(out.lines().any(|l| l.starts_with(&want)), "{want}\n{out}");
    }
}

/// Regular files under `dir` (symlinks to files followed, symlinked directories not: as the
/// scan walks) that start with the ELF magic.
fn elf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let path = e.path();
        let Ok(link) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if !link.file_type().is_symlink() {
                elf_files(&path, out);
            }
        } else if meta.is_file() {
            let mut magic = [0u8; 4];
            let ok = std::fs::File::open(&path)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
                .is_ok();
            if ok && magic == *b"\x7fELF" {
                out.push(path);
            }
        }
    }
}

#[test]
fn a_planted_rule_matching_every_elf_file_is_caught_on_usr_bin() {
    let usr_bin = Path::new("/usr/bin");
    let mut elves = Vec::new();
    elf_files(usr_bin, &mut elves);
    if elves.is_empty() {
        eprintln!("SKIP: no ELF files in /usr/bin");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    let src = repo_root().join("rules-src");
    for kind in ["yara", "clamav"] {
        for e in std::fs::read_dir(src.join(kind)).unwrap() {
            let e = e.unwrap();
            write(
                &rules.join(kind).join(e.file_name()),
                std::fs::read(e.path()).unwrap(),
            );
        }
    }
    write(
        &rules.join("yara/planted.yar"),
        rule(
            "Planted_Every_Elf",
            "    condition:\n        uint32(0) == 0x464c457f",
        ),
    );
    let (code, out, err) = check(&args(&[
        "--rules",
        &p(&rules),
        "--goodware",
        "/usr/bin",
        "--format",
        "json",
    ]));
    assert_eq!(code, 1, "{out}\n{err}");
    let r = json(&out);
    let planted = fp(&r, "Planted_Every_Elf");
    assert_eq!(planted["file"], p(&rules.join("yara/planted.yar")));
    assert_eq!(planted["line"], 1);
    // Every ELF file in /usr/bin, each once, and the paths listed are real ones.
    assert_eq!(
        planted["new"]["files"].as_u64().unwrap(),
        elves.len() as u64,
        "{r:#}"
    );
    let listed = strs(&planted["new"]["paths"]);
    assert_eq!(listed.len(), elves.len().min(5));
    for l in &listed {
        assert!(
            elves.contains(&PathBuf::from(l)),
            "{l} is not an ELF file of /usr/bin"
        );
    }
    // A real system binary: with ls on its own, it is the one listed.
    let ls = elves
        .iter()
        .find(|p| p.ends_with("ls"))
        .unwrap_or(&elves[0])
        .clone();
    let (code, out, _) = check(&args(&[
        "--rules",
        &p(&rules),
        "--goodware",
        &p(&ls),
        "--format",
        "json",
    ]));
    assert_eq!(code, 1);
    assert_eq!(
        strs(&fp(&json(&out), "Planted_Every_Elf")["new"]["paths"]),
        [p(&ls)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goodware_in_s3_is_listed_streamed_and_scanned() {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use vigil_tests::s3::{S3Server, ACCESS_KEY, BUCKET, SECRET_KEY};

    let s3 = S3Server::start().await;
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(s3.endpoint())
            .force_path_style(true)
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .build(),
    );
    // A big one (spooled, not held in memory) with the marker at its end, small ones, and
    // ones outside the prefix (`goodware` is a directory: `goodware2/` is not in it).
    let mut big = noise(5, 9 << 20);
    big.extend_from_slice(NEW.as_bytes());
    let objects: Vec<(&str, Vec<u8>)> = vec![
        ("goodware/bin/big.bin", big),
        ("goodware/a.txt", format!("x {NEW} y").into_bytes()),
        ("goodware/deep/er/clean.txt", b"clean".to_vec()),
        ("elsewhere/b.txt", format!("x {NEW} y").into_bytes()),
        ("goodware2/c.txt", format!("x {NEW} y").into_bytes()),
    ];
    for (key, body) in &objects {
        client
            .put_object()
            .bucket(BUCKET)
            .key(*key)
            .body(body.clone().into())
            .send()
            .await
            .unwrap();
    }
    let f = fixture();
    let (code, out, err) = check_env(
        &args(&[
            "--rules",
            &p(&f.candidate),
            "--goodware",
            &format!("s3://{BUCKET}/goodware"),
            "--s3-endpoint",
            &s3.endpoint(),
            "--s3-path-style",
            "--threads",
            "2",
            "--format",
            "json",
        ]),
        &s3.env(),
    );
    assert_eq!(code, 1, "{out}\n{err}");
    let r = json(&out);
    assert_eq!(r["corpus"]["files"], 3, "{r:#}");
    let bytes: usize = objects[..3].iter().map(|(_, b)| b.len()).sum();
    assert_eq!(r["corpus"]["bytes"], bytes as u64);
    let new = fp(&r, "New_Marker");
    assert_eq!(
        strs(&new["new"]["paths"]),
        [
            format!("s3://{BUCKET}/goodware/a.txt"),
            format!("s3://{BUCKET}/goodware/bin/big.bin"),
        ]
    );
}

#[test]
fn bad_inputs_are_errors_not_failures() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let code_of = |a: Vec<String>| {
        let (code, out, err) = check(&a);
        (code, format!("{out}\n{err}"))
    };
    // Rules that do not compile.
    let broken = t.join("broken");
    write(
        &broken.join("x.yar"),
        "rule Broken { condition: nonsense( }\n",
    );
    let (code, out) = code_of(args(&["--rules", &p(&broken), "--goodware", &p(&f.corpus)]));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("x.yar"), "{out}");
    // A goodware directory that is not there, and one with nothing in it.
    let (code, out) = code_of(args(&[
        "--rules",
        &p(&f.candidate),
        "--goodware",
        &p(&t.join("missing")),
    ]));
    assert_eq!(code, 2, "{out}");
    std::fs::create_dir(t.join("empty")).unwrap();
    let (code, out) = code_of(args(&[
        "--rules",
        &p(&f.candidate),
        "--goodware",
        &p(&t.join("empty")),
    ]));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no file that could be scanned"), "{out}");
    // A database or baseline not signed by a trusted key.
    let other = t.join("other.pub");
    std::fs::write(
        &other,
        vigil_format::SecretKey::from_seed([9; 32])
            .public()
            .to_text(),
    )
    .unwrap();
    let (code, out) = code_of(args(&[
        "--db",
        &p(&f.baseline_db),
        "--pubkey",
        &p(&other),
        "--goodware",
        &p(&f.corpus),
    ]));
    assert_eq!(code, 2, "{out}");
    let (code, out) = code_of(args(&[
        "--rules",
        &p(&f.candidate),
        "--goodware",
        &p(&f.corpus),
        "--baseline",
        &p(&f.baseline_db),
        "--pubkey",
        &p(&other),
    ]));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("baseline"), "{out}");
    // A file that cannot be read (a dangling link) is counted and listed, not fatal.
    let corpus = t.join("corpus");
    write(&corpus.join("ok.txt"), "fine");
    std::os::unix::fs::symlink("nowhere", corpus.join("dangling")).unwrap();
    let (code, out) = code_of(args(&[
        "--rules",
        &p(&f.baseline_rules),
        "--goodware",
        &p(&corpus),
        "--format",
        "json",
    ]));
    assert_eq!(code, 0, "{out}");
    let r = json(out.split("\ncheck:").next().unwrap_or(&out));
    assert_eq!(r["corpus"]["errors"], 1, "{r:#}");
    assert_eq!(
        r["corpus"]["error_list"][0]["path"],
        p(&corpus.join("dangling"))
    );
}
