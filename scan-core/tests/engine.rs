//! The engine on the starter rule set: detections, allowlists, refusals, limits, hot swap.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::SecretKey;
use vigil_scan_core::{Engine, EngineError, Limits, ScanError, SharedEngine, SigKind};

const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn key() -> SecretKey {
    SecretKey::from_seed([11; 32])
}

fn db_from(dir: &std::path::Path, version: u64) -> Vec<u8> {
    let files = sources::collect(&[dir.to_path_buf()]).expect("collect");
    build(&files, &key(), &BuildOptions::new(version))
        .expect("build")
        .bytes
}

fn starter_db() -> Vec<u8> {
    db_from(&root().join("rules-src"), 1)
}

fn names(engine: &Engine, data: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = engine
        .scan_bytes(data, &Limits::default())
        .expect("scan")
        .findings
        .into_iter()
        .map(|f| f.signature)
        .collect();
    v.sort();
    v
}

#[test]
fn starter_set_detects_and_allowlists() {
    let engine = Engine::load(&starter_db(), &[key().public()]).expect("load");
    assert_eq!(
        names(&engine, EICAR),
        [
            "Multi.Test.Eicar-Body",
            "Multi.Test.Eicar-MD5",
            "Multi.Test.Eicar-SHA256"
        ]
    );
    let shell = std::fs::read(root().join("samples/webshell.php")).expect("sample");
    assert_eq!(
        names(&engine, &shell),
        ["Php.Webshell.EvalBase64-1", "Php_Webshell_EvalRequest_1"]
    );
    let r = engine.scan_bytes(&shell, &Limits::default()).expect("scan");
    let yara = r
        .findings
        .iter()
        .find(|f| f.kind == SigKind::Yara)
        .expect("yara finding");
    assert_eq!(yara.severity.as_deref(), Some("critical"));
    assert!(yara.description.is_some());
    assert_eq!(r.sha256.as_deref().map(str::len), Some(64));
    let fixture = std::fs::read(root().join("samples/waf-test-fixture.php")).expect("sample");
    let r = engine
        .scan_bytes(&fixture, &Limits::default())
        .expect("scan");
    assert!(r.findings.is_empty(), "allowlisted: {:?}", r.findings);
    assert_eq!(
        r.allowlisted.as_deref(),
        Some("Vigil.Allow.WafTestFixture-MD5")
    );
    assert!(names(&engine, b"#!/bin/sh\necho hello\n").is_empty());
}

#[test]
fn allowlist_entries_lists_every_entry_the_scan_names_only_one_of() {
    let engine = Engine::load(&starter_db(), &[key().public()]).expect("load");
    let fixture = std::fs::read(root().join("samples/waf-test-fixture.php")).expect("sample");
    let mut all = engine.allowlist_entries(&fixture);
    all.sort();
    assert_eq!(
        all,
        [
            "Vigil.Allow.WafTestFixture-MD5",
            "Vigil.Allow.WafTestFixture-SHA256"
        ]
    );
    // The scan reports one of them, which is why the gate needs the full list.
    let r = engine
        .scan_bytes(&fixture, &Limits::default())
        .expect("scan");
    assert!(all.contains(&r.allowlisted.expect("cleared")));
    let shell = std::fs::read(root().join("samples/webshell.php")).expect("sample");
    assert!(engine.allowlist_entries(&shell).is_empty());
    assert!(engine.allowlist_entries(b"").is_empty());
}

#[test]
fn refuses_bad_databases_without_building_anything() {
    let db = starter_db();
    let other = SecretKey::from_seed([12; 32]).public();
    assert!(matches!(
        Engine::load(&db, &[other]),
        Err(EngineError::Format(_))
    ));
    let mut bad = db.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x40;
    assert!(Engine::load(&bad, &[key().public()]).is_err());
    assert!(Engine::load(&db[..db.len() - 1], &[key().public()]).is_err());
}

#[test]
fn streams_spool_to_disk_and_limits_hold() {
    let engine = Engine::load(&starter_db(), &[key().public()]).expect("load");
    // 40 MB of zeros then the webshell sample: beyond the in-memory part of scan_reader.
    let shell = std::fs::read(root().join("samples/webshell.php")).expect("sample");
    let at = shell.windows(5).position(|w| w == b"eval(").expect("eval") as u64;
    let big = std::io::repeat(0).take(40 << 20).chain(&shell[..]);
    let r = engine.scan_reader(big, &Limits::default()).expect("scan");
    assert!(
        r.findings.iter().any(
            |f| f.signature == "Php.Webshell.EvalBase64-1" && f.offset == Some((40 << 20) + at)
        ),
        "{:?}",
        r.findings
    );
    let limits = Limits {
        max_filesize: 1000,
        timeout: None,
        ..Limits::default()
    };
    assert!(matches!(
        engine.scan_reader(std::io::repeat(1).take(5000), &limits),
        Err(ScanError::TooLarge { .. })
    ));
    assert!(matches!(
        engine.scan_bytes(&[0; 2000], &limits),
        Err(ScanError::TooLarge { .. })
    ));
}

#[test]
fn pathological_body_signature_is_bounded_by_the_timeout() {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        t.path().join("slow.ndb"),
        "Slow.Sig-1:0:*:41414141*42424242*43434343\n",
    )
    .expect("write");
    let engine = Engine::load(&db_from(t.path(), 1), &[key().public()]).expect("load");
    let data = vec![b'A'; 8 << 20];
    let limits = Limits {
        max_filesize: 1 << 30,
        timeout: Some(Duration::from_millis(200)),
        ..Limits::default()
    };
    let t0 = std::time::Instant::now();
    assert!(matches!(
        engine.scan_bytes(&data, &limits),
        Err(ScanError::Timeout)
    ));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "stopped near the timeout"
    );
}

/// One scanner reused across files (as each vigil-scan thread does) gives every file the
/// verdict a fresh scan gives it, also after a scan that timed out or failed.
#[test]
fn reused_scanner_gives_fresh_verdicts() {
    let engine = Engine::load(&starter_db(), &[key().public()]).expect("load");
    let shell = std::fs::read(root().join("samples/webshell.php")).expect("sample");
    let clean = std::fs::read(root().join("samples/clean.sh")).expect("sample");
    let files: Vec<&[u8]> = vec![EICAR, &clean, &shell, &clean, EICAR, &shell];
    let mut scanner = engine.scanner();
    let tight = Limits {
        max_filesize: 1 << 30,
        timeout: Some(Duration::ZERO),
        ..Limits::default()
    };
    for f in &files {
        assert!(matches!(
            scanner.scan_bytes(f, &tight),
            Err(ScanError::Timeout)
        ));
        let mut got: Vec<String> = scanner
            .scan_bytes(f, &Limits::default())
            .expect("scan")
            .findings
            .into_iter()
            .map(|x| x.signature)
            .collect();
        got.sort();
        assert_eq!(got, names(&engine, f));
    }
    assert!(!names(&engine, &shell).is_empty() && names(&engine, &clean).is_empty());
}

#[test]
fn compiled_rules_cache_is_used_and_checked() {
    let db = starter_db();
    let cache = tempfile::tempdir().expect("tempdir");
    let cold = Engine::load_with_cache(&db, &[key().public()], Some(cache.path())).expect("cold");
    let entries: Vec<_> = std::fs::read_dir(cache.path())
        .expect("ls")
        .flatten()
        .collect();
    assert_eq!(entries.len(), 1, "one cache file written");
    assert_eq!(cold.yara_from_cache(), Some(false));
    let warm = Engine::load_with_cache(&db, &[key().public()], Some(cache.path())).expect("warm");
    assert_eq!(
        warm.yara_from_cache(),
        Some(true),
        "second load uses the cache"
    );
    assert_eq!(names(&warm, EICAR), names(&cold, EICAR));
    let shell = std::fs::read(root().join("samples/webshell.php")).expect("sample");
    assert_eq!(names(&warm, &shell), names(&cold, &shell));
    // The cache holds native code: one that others could have written is not used.
    {
        use std::os::unix::fs::PermissionsExt;
        let path = entries[0].path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let open = Engine::load_with_cache(&db, &[key().public()], Some(cache.path()))
            .expect("recompiled");
        assert_eq!(
            open.yara_from_cache(),
            Some(false),
            "world-writable cache ignored"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    // A corrupted cache is ignored (recompiled), never trusted.
    let path = entries[0].path();
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).expect("write");
    let again =
        Engine::load_with_cache(&db, &[key().public()], Some(cache.path())).expect("recompiled");
    assert_eq!(
        again.yara_from_cache(),
        Some(false),
        "corrupted cache ignored"
    );
    assert_eq!(names(&again, &shell), names(&cold, &shell));
}

#[test]
fn hot_swap_under_load() {
    // Database B = A plus one rule that only B has; a sample that only B detects.
    let t = tempfile::tempdir().expect("tempdir");
    let rules_b = t.path().join("b");
    copy_dir(&root().join("rules-src"), &rules_b);
    std::fs::write(
        rules_b.join("clamav/swap.ndb"),
        "Test.Swap.OnlyB-1:0:*:6f6e6c792d696e2d62\n",
    )
    .expect("write");
    let (db_a, db_b) = (starter_db(), db_from(&rules_b, 2));
    let trusted = [key().public()];
    let samples: Vec<Vec<u8>> = vec![
        EICAR.to_vec(),
        b"xx only-in-b xx".to_vec(),
        std::fs::read(root().join("samples/webshell.php")).expect("sample"),
    ];
    let expect = |e: &Engine| samples.iter().map(|s| names(e, s)).collect::<Vec<_>>();
    let (want_a, want_b) = (
        expect(&Engine::load(&db_a, &trusted).expect("a")),
        expect(&Engine::load(&db_b, &trusted).expect("b")),
    );
    assert_ne!(want_a, want_b);
    let shared = Arc::new(SharedEngine::new(Engine::load(&db_a, &trusted).expect("a")));
    let stop = Arc::new(AtomicBool::new(false));
    let (scans, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (shared, stop, scans, failures) = (
                shared.clone(),
                stop.clone(),
                scans.clone(),
                failures.clone(),
            );
            let (samples, want_a, want_b) = (samples.clone(), want_a.clone(), want_b.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // One "scan" covers all samples on one engine: it must be all-A or all-B.
                    let engine = shared.current();
                    let got: Option<Vec<Vec<String>>> = samples
                        .iter()
                        .map(|s| {
                            engine.scan_bytes(s, &Limits::default()).ok().map(|r| {
                                let mut v: Vec<String> =
                                    r.findings.into_iter().map(|f| f.signature).collect();
                                v.sort();
                                v
                            })
                        })
                        .collect();
                    match got {
                        Some(g) if g == want_a || g == want_b => {}
                        _ => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    scans.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let cache = tempfile::tempdir().expect("tempdir");
    for i in 0..100 {
        let db = if i % 2 == 0 { &db_b } else { &db_a };
        // Built off the scan path, then installed in one step.
        let next = Engine::load_with_cache(db, &trusted, Some(cache.path())).expect("load");
        shared.swap(next);
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(
        scans.load(Ordering::Relaxed) > 100,
        "scans ran during the swaps"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("ls").flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}
