//! vigil-build as a user runs it: real processes, real files, exit codes and messages.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil-build"));
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

fn rules_src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../rules-src")
}

fn run(c: &mut Command) -> Output {
    c.output().expect("run vigil-build")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// keygen into `dir`, then build rules-src as version `v`.
fn keys_and_db(dir: &Path, v: u64) -> PathBuf {
    let o = run(bin().args(["keygen", "-o"]).arg(dir));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let db = dir.join(format!("v{v}.vdb"));
    let o = run(bin()
        .args(["build", "--rules"])
        .arg(rules_src())
        .arg("--key")
        .arg(dir.join("vigil.key"))
        .args(["--version", &v.to_string(), "-o"])
        .arg(&db));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    db
}

#[test]
fn keygen_writes_private_key_0600_and_refuses_to_overwrite() {
    let t = tempfile::tempdir().expect("tempdir");
    keys_and_db(t.path(), 1);
    let mode = fs::metadata(t.path().join("vigil.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let o = run(bin().args(["keygen", "-o"]).arg(t.path()));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
}

#[test]
fn build_verify_info_round_trip() {
    let t = tempfile::tempdir().expect("tempdir");
    let db = keys_and_db(t.path(), 42);
    let o = run(bin()
        .args(["verify", "--pubkey"])
        .arg(t.path().join("vigil.pub"))
        .arg(&db));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(bin().args(["info", "--json"]).arg(&db));
    assert_eq!(code(&o), 0);
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(info["db_version"], 42);
    let kinds: Vec<&str> = info["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .map(|s| s["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["yara", "ndb", "hdb", "hsb", "fp", "sfp"]);
    assert!(info["sections"][0]["records"].as_u64().expect("records") >= 10);
}

#[test]
fn key_from_environment_variable() {
    let t = tempfile::tempdir().expect("tempdir");
    keys_and_db(t.path(), 1);
    let key_text = fs::read_to_string(t.path().join("vigil.key")).expect("key");
    let db = t.path().join("env.vdb");
    let o = run(bin()
        .env("VIGIL_TEST_KEY", key_text)
        .args(["build", "--rules"])
        .arg(rules_src())
        .args(["--key", "env:VIGIL_TEST_KEY", "--version", "1", "-o"])
        .arg(&db));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Same key, same sources, same version: same bytes as the file-key build.
    assert_eq!(
        fs::read(&db).expect("db"),
        fs::read(t.path().join("v1.vdb")).expect("db")
    );
    let o = run(bin()
        .args(["build", "--rules"])
        .arg(rules_src())
        .args(["--key", "env:VIGIL_UNSET_VARIABLE", "--version", "1", "-o"])
        .arg(t.path().join("x.vdb")));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("VIGIL_UNSET_VARIABLE is not set"));
}

#[test]
fn lint_exit_codes_and_formats() {
    // The library's golden lint files: one small file per error kind.
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../compiler/tests/golden");
    assert_eq!(code(&run(bin().arg("lint").arg(rules_src()))), 0);
    let o = run(bin().args(["lint", "--format", "github"]).arg(&golden));
    assert_eq!(code(&o), 1);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.lines().any(|l| l.starts_with("::error file=")
        && l.contains("ndb_hex.ndb,line=1,col=23,title=ndb/hex::bad hex character")));
    let o = run(bin()
        .args(["lint", "--format", "json"])
        .arg(golden.join("hash_size_flevel.hsb")));
    assert_eq!(code(&o), 0, "warnings alone pass");
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one json object");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(1), Some(66))
    );
    let o = run(bin()
        .args(["lint", "--deny-warnings"])
        .arg(golden.join("hash_size_flevel.hsb")));
    assert_eq!(code(&o), 1, "--deny-warnings fails on warnings");
    let o = run(bin().args(["lint", "/nonexistent/rules"]));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("/nonexistent/rules"));
    assert_eq!(code(&run(bin().arg("lint"))), 2, "usage error");
}

#[test]
fn build_refuses_bad_sources_and_writes_nothing() {
    let t = tempfile::tempdir().expect("tempdir");
    keys_and_db(t.path(), 1);
    let rules = t.path().join("rules");
    fs::create_dir(&rules).expect("mkdir");
    fs::write(rules.join("bad.ndb"), "Bad.Sig-1:0:*:4142\n").expect("write");
    let out = t.path().join("never.vdb");
    let o = run(bin()
        .args(["build", "--rules"])
        .arg(&rules)
        .arg("--key")
        .arg(t.path().join("vigil.key"))
        .args(["--version", "1", "-o"])
        .arg(&out));
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stdout).contains("ndb/anchor"));
    assert!(!out.exists(), "no database from bad sources");
}

#[test]
fn bad_databases_get_one_line_errors_and_exit_2() {
    let t = tempfile::tempdir().expect("tempdir");
    let db = keys_and_db(t.path(), 1);
    let pubkey = t.path().join("vigil.pub");
    let bytes = fs::read(&db).expect("db");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            bytes[..bytes.len() - 100].to_vec(),
            "truncated at byte",
        ),
        (
            "foreign",
            b"%PDF-1.7 not a database at all....".to_vec(),
            "bad magic",
        ),
        (
            "version",
            {
                let mut b = bytes.clone();
                b[8] = 9;
                b
            },
            "unsupported format version 9",
        ),
        (
            "section",
            {
                let mut b = bytes.clone();
                let at = b.len() - 100;
                b[at] ^= 1;
                b
            },
            "section 5 hash mismatch",
        ),
        (
            "signature",
            {
                let mut b = bytes.clone();
                let at = b.len() - 1;
                b[at] ^= 1;
                b
            },
            "bad signature",
        ),
    ];
    for (name, data, expect) in cases {
        let f = t.path().join(format!("{name}.vdb"));
        fs::write(&f, &data).expect("write");
        for args in [
            vec!["verify", "--pubkey", pubkey.to_str().expect("utf8")],
            vec!["info"],
        ] {
            if args[0] == "info" && name == "signature" {
                continue; // info does not check signatures (it has no key)
            }
            let o = run(bin().args(&args).arg(&f));
            assert_eq!(code(&o), 2, "{name} {args:?}");
            let err = stderr(&o);
            assert_eq!(err.lines().count(), 1, "one line: {err}");
            assert!(err.contains(expect), "{name} {args:?}: {err}");
        }
    }
    // A key that did not sign it.
    let other = t.path().join("other");
    run(bin().args(["keygen", "-o"]).arg(&other));
    let o = run(bin()
        .args(["verify", "--pubkey"])
        .arg(other.join("vigil.pub"))
        .arg(&db));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("not signed by a trusted key"));
}

#[test]
fn delta_and_apply_through_the_cli() {
    let t = tempfile::tempdir().expect("tempdir");
    let v1 = keys_and_db(t.path(), 1);
    let rules2 = t.path().join("rules2");
    copy_dir(&rules_src(), &rules2);
    fs::write(
        rules2.join("clamav/extra.ndb"),
        "Unix.Test.Extra-1:0:*:766967696c2d74657374\n",
    )
    .expect("write");
    let v2 = t.path().join("v2.vdb");
    let o = run(bin()
        .args(["build", "--rules"])
        .arg(&rules2)
        .arg("--key")
        .arg(t.path().join("vigil.key"))
        .args(["--version", "2", "-o"])
        .arg(&v2));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let patch = t.path().join("1-2.vdelta");
    assert_eq!(
        code(&run(bin()
            .arg("delta")
            .arg(&v1)
            .arg(&v2)
            .arg("-o")
            .arg(&patch))),
        0
    );
    let out = t.path().join("out.vdb");
    assert_eq!(
        code(&run(bin()
            .arg("apply")
            .arg(&v1)
            .arg(&patch)
            .arg("-o")
            .arg(&out))),
        0
    );
    assert_eq!(fs::read(&out).expect("out"), fs::read(&v2).expect("v2"));
    // Applied to the wrong base: refused, nothing written.
    let wrong = t.path().join("wrong.vdb");
    let o = run(bin()
        .arg("apply")
        .arg(&v2)
        .arg(&patch)
        .arg("-o")
        .arg(&wrong));
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("the delta is for database"),
        "{}",
        stderr(&o)
    );
    assert!(!wrong.exists());
    // A corrupted delta: refused, nothing written.
    let mut bad = fs::read(&patch).expect("patch");
    let at = bad.len() - 3;
    bad[at] ^= 0xff;
    fs::write(&patch, bad).expect("write");
    let o = run(bin()
        .arg("apply")
        .arg(&v1)
        .arg(&patch)
        .arg("-o")
        .arg(&wrong));
    assert_eq!(code(&o), 2);
    assert!(!wrong.exists());
}

#[test]
fn source_date_epoch_sets_build_time() {
    let t = tempfile::tempdir().expect("tempdir");
    keys_and_db(t.path(), 1);
    let db = t.path().join("dated.vdb");
    let o = run(bin()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "--rules"])
        .arg(rules_src())
        .arg("--key")
        .arg(t.path().join("vigil.key"))
        .args(["--version", "1", "-o"])
        .arg(&db));
    assert_eq!(code(&o), 0);
    let o = run(bin().args(["info", "--json"]).arg(&db));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(info["build_time"], 1_700_000_000u64);
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).expect("copy");
        }
    }
}

/// Issue 18, finding 7: another user plants a symlink where the output's temporary file would
/// be (`.<name>.tmp-<pid>` was predictable); the build must never follow it.
#[test]
fn planted_temporary_symlink_is_never_followed() {
    let t = tempfile::tempdir().expect("tempdir");
    let db = keys_and_db(t.path(), 1);
    let shared = t.path().join("shared");
    fs::create_dir(&shared).expect("mkdir");
    let victim = t.path().join("victim.conf");
    fs::write(&victim, "root-owned configuration\n").expect("write");
    // The shell plants links under the names the old code used (its pid is the build's, as it
    // execs), and for the public key as well, then becomes vigil-build.
    let script = r#"
        ln -s "$VICTIM" "$SHARED/.out.vdb.tmp-$$"
        ln -s "$VICTIM" "$SHARED/.vigil.pub.tmp-$$"
        exec "$BIN" build --rules "$RULES" --key "$KEY" --version 2 -o "$SHARED/out.vdb"
    "#;
    let o = run(Command::new("sh")
        .args(["-c", script])
        .env("VICTIM", &victim)
        .env("SHARED", &shared)
        .env("BIN", env!("CARGO_BIN_EXE_vigil-build"))
        .env("RULES", rules_src())
        .env("KEY", t.path().join("vigil.key"))
        .env_remove("SOURCE_DATE_EPOCH"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        fs::read_to_string(&victim).expect("victim"),
        "root-owned configuration\n",
        "the planted symlink was followed"
    );
    let out = shared.join("out.vdb");
    let meta = fs::symlink_metadata(&out).expect("output");
    assert!(
        meta.is_file(),
        "the output is a regular file, not the planted link"
    );
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    assert_ne!(fs::read(&out).expect("out"), fs::read(&db).expect("db"));
    let o = run(bin()
        .args(["verify", "--pubkey"])
        .arg(t.path().join("vigil.pub"))
        .arg(&out));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Nothing else is left behind but the planted links themselves.
    let mut left: Vec<String> = fs::read_dir(&shared)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left.len(), 3, "{left:?}");
}
