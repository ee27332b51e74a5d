//! Findings reach people, end to end across real processes: `vigil-scan --config` and the
//! agent deliver findings through the outbox to a webhook receiver that checks every Standard
//! Webhooks signature (a small hyper server here, using `vigil_findings::webhook::verify`);
//! a rescan updates, a deleted sample resolves; the outbox survives a receiver that is down
//! and a kill -9 mid-delivery (`vigil-agent outbox status|flush`); quarantine stops at its
//! limit with one mass-detection finding and refuses protected paths; hooks get the finding
//! on stdin and are killed at their timeout.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use vigil_findings::webhook;
use vigil_tests::updater::{strip_ansi, Repo, EICAR};
use vigil_tests::{bin, free_port, ChildGuard};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver saw: verified deliveries (their bodies) and refused ones.
#[derive(Default)]
struct Seen {
    verified: Mutex<Vec<Value>>,
    refused: AtomicUsize,
    /// Requests that arrived while stalling.
    stalled: AtomicUsize,
}

/// A webhook receiver on 127.0.0.1: verifies each POST's signature (204, or 401 when it does
/// not verify), or, while `stall` is set, accepts the request and never answers.
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Seen>,
    stall: Arc<AtomicBool>,
    rt: tokio::runtime::Runtime,
}

impl Receiver {
    fn start(port: u16) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
        let (seen, stall) = (Arc::new(Seen::default()), Arc::new(AtomicBool::new(false)));
        let key = webhook::key(SECRET).unwrap();
        let (s, st) = (seen.clone(), stall.clone());
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (s, st, key) = (s.clone(), st.clone(), key.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(s.clone(), st.clone(), key.clone(), req)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            seen,
            stall,
            rt,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn verified(&self) -> Vec<Value> {
        self.seen.verified.lock().unwrap().clone()
    }

    /// (type, finding id) of every verified delivery.
    fn events(&self) -> Vec<(String, String)> {
        self.verified()
            .iter()
            .map(|v| {
                (
                    v["type"].as_str().unwrap().to_owned(),
                    v["data"]["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stall.store(false, Ordering::SeqCst);
        let _ = &self.rt;
    }
}

async fn handle(
    seen: Arc<Seen>,
    stall: Arc<AtomicBool>,
    key: Vec<u8>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let reply = |status: StatusCode| {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = status;
        Ok(r)
    };
    if stall.load(Ordering::SeqCst) {
        seen.stalled.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
    }
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(id), Some(ts), Some(sig)) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    ) else {
        seen.refused.fetch_add(1, Ordering::SeqCst);
        return reply(StatusCode::BAD_REQUEST);
    };
    let ts: i64 = ts.parse().unwrap_or(0);
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let now = jiff::Timestamp::now().as_second();
    if webhook::verify(&key, &id, ts, &sig, &body, now).is_err() {
        seen.refused.fetch_add(1, Ordering::SeqCst);
        return reply(StatusCode::UNAUTHORIZED);
    }
    seen.verified
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap());
    reply(StatusCode::NO_CONTENT)
}

fn p(x: &Path) -> String {
    x.display().to_string()
}

/// A test directory with a database at db/vigil.vdb (EICAR and a marker, the updater tests'
/// database, signed by the repo's key) and a config writer.
struct Env {
    _repo: Repo,
    tmp: tempfile::TempDir,
    config: PathBuf,
    pubkey: PathBuf,
}

impl Env {
    fn new() -> Self {
        let repo = Repo::new();
        let tmp = tempfile::tempdir().unwrap();
        let db_dir = tmp.path().join("db");
        std::fs::create_dir_all(&db_dir).unwrap();
        std::fs::write(db_dir.join("vigil.vdb"), repo.db(1)).unwrap();
        let config = tmp.path().join("vigil.toml");
        let pubkey = repo.pubkey.clone();
        Self {
            tmp,
            config,
            pubkey,
            _repo: repo,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The config: this database, a dead mirror (nothing here updates), host "test-host" off
    /// EC2, and `extra` (outputs, actions, quarantine).
    fn write_config(&self, extra: &str) {
        std::fs::write(self.dir().join("hook.secret"), SECRET).unwrap();
        std::fs::write(
            &self.config,
            format!(
                "mirrors = [\"http://127.0.0.1:9/\"]\ndatabase_dir = \"db\"\ntrusted_root = \"root.json\"\n\
                 pubkeys = [{:?}]\n[fleet]\ncheckin = false\n\
                 [findings]\nhostname = \"test-host\"\nimds = false\n{extra}\n",
                p(&self.pubkey)
            ),
        )
        .unwrap();
    }

    fn webhook(url: &str) -> String {
        format!(
            "[[outputs]]\ntype = \"webhook\"\nname = \"hook\"\nurl = {url:?}\nsecret_file = \"hook.secret\"\n\
             events = [\"new\", \"updated\", \"resolved\"]\ntimeout_secs = 5\n"
        )
    }

    fn scan(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(bin("vigil-scan"))
            .args(["--config", &p(&self.config)])
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            strip_ansi(&String::from_utf8_lossy(&out.stderr)),
        )
    }

    fn agent_cmd(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(bin("vigil-agent"))
            .args(args)
            .args(["--config", &p(&self.config)])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            strip_ansi(&String::from_utf8_lossy(&out.stderr)),
        )
    }
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_scan_delivers_new_then_updated_then_resolved_with_stable_ids() {
    let env = Env::new();
    let rx = Receiver::start(free_port());
    env.write_config(&Env::webhook(&rx.url()));
    let samples = env.dir().join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    std::fs::write(samples.join("eicar.com"), EICAR).unwrap();
    std::fs::write(samples.join("clean.txt"), b"nothing to see\n").unwrap();

    let (code, out, err) = env.scan(&["-r", &p(&samples)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("eicar.com: Vigil.Test.Eicar FOUND"), "{out}");
    assert!(err.contains("1 new"), "{err}");
    let first = rx.events();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].0, "vigil.finding.new");
    let id = first[0].1.clone();
    let d = &rx.verified()[0]["data"];
    assert_eq!(d["threat"], "Vigil.Test.Eicar");
    assert_eq!(d["resource"]["hostname"], "test-host");
    assert_eq!(
        d["severity"], "MEDIUM",
        "the default for ClamAV-format names"
    );
    assert_eq!(d["file"]["path"], p(&samples.join("eicar.com")));
    assert_eq!(d["state"], "active");
    assert_eq!(rx.seen.refused.load(Ordering::SeqCst), 0);

    // The same file again: the same finding, updated; no new id.
    let (code, _, err) = env.scan(&["-r", &p(&samples)]);
    assert_eq!(code, 1, "{err}");
    let second: Vec<_> = rx.events().into_iter().skip(1).collect();
    assert_eq!(
        second,
        [("vigil.finding.updated".to_string(), id.clone())],
        "{err}"
    );
    let d = &rx.verified()[1]["data"];
    assert_eq!(d["first_seen"], rx.verified()[0]["data"]["first_seen"]);

    // The sample is gone: the rescan resolves its finding.
    std::fs::remove_file(samples.join("eicar.com")).unwrap();
    let (code, out, err) = env.scan(&["-r", &p(&samples)]);
    assert_eq!(code, 0, "{out}{err}");
    let third: Vec<_> = rx.events().into_iter().skip(2).collect();
    assert_eq!(
        third,
        [("vigil.finding.resolved".to_string(), id.clone())],
        "{err}"
    );
    assert_eq!(rx.verified()[2]["data"]["state"], "resolved");
    // Nothing is left to resolve.
    let (_, _, err) = env.scan(&["-r", &p(&samples)]);
    assert_eq!(rx.events().len(), 3, "{err}");
}

#[test]
fn the_outbox_keeps_findings_through_an_outage_and_a_kill_9() {
    let env = Env::new();
    let port = free_port();
    // Nothing listens on the port yet: the receiver is down.
    env.write_config(&Env::webhook(&format!("http://127.0.0.1:{port}/hook")));
    let samples = env.dir().join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    std::fs::write(samples.join("eicar.com"), EICAR).unwrap();
    std::fs::write(samples.join("eicar2.com"), format!("{EICAR}\n")).unwrap();

    let (code, out, err) = env.scan(&["--deliver-timeout", "2", "-r", &p(&samples)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("stay queued"), "{err}");
    let (code, out, err) = env.agent_cmd(&["outbox", "status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    let hook = status
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "hook")
        .unwrap()
        .clone();
    assert_eq!(hook["pending"], 2, "{status}");
    assert!(hook["last_error"].is_string(), "{status}");
    let (code, _, _) = env.agent_cmd(&["outbox", "flush", "--timeout", "2"]);
    assert_eq!(code, 1, "still down: something stays pending");

    // The receiver is up: a flush delivers everything.
    let rx = Receiver::start(port);
    let (code, out, err) = env.agent_cmd(&["outbox", "flush", "--timeout", "60"]);
    assert_eq!(code, 0, "{out}{err}");
    let ids: BTreeSet<String> = rx.events().into_iter().map(|e| e.1).collect();
    assert_eq!(ids.len(), 2, "{:?}", rx.events());
    assert!(rx.events().iter().all(|e| e.0 == "vigil.finding.new"));

    // kill -9 while a delivery is in flight: the receiver takes the request and stalls.
    rx.stall.store(true, Ordering::SeqCst);
    let marker = samples.join("marker.bin");
    std::fs::write(&marker, vigil_tests::updater::marker(1)).unwrap();
    let mut child = ChildGuard(
        Command::new(bin("vigil-scan"))
            .args(["--config", &p(&env.config), "--deliver-timeout", "60"])
            .arg(&marker)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("a delivery reaching the stalled receiver", 60, || {
        rx.seen.stalled.load(Ordering::SeqCst) > 0
    });
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    rx.stall.store(false, Ordering::SeqCst);
    let before = rx.events().len();
    let (code, out, err) = env.agent_cmd(&["outbox", "flush", "--timeout", "60"]);
    assert_eq!(code, 0, "{out}{err}");
    let after: Vec<_> = rx.events().into_iter().skip(before).collect();
    assert!(
        after
            .iter()
            .any(|e| e.0 == "vigil.finding.new" && !ids.contains(&e.1)),
        "the marker's finding arrived after the kill: {after:?}"
    );
    // Every delivery is one of the three findings: duplicates, if any, of the same id.
    let all: BTreeSet<String> = rx.events().into_iter().map(|e| e.1).collect();
    assert_eq!(all.len(), 3, "{:?}", rx.events());
    let (_, out, _) = env.agent_cmd(&["outbox", "status", "--json"]);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status[0]["pending"], 0, "{status}");
}

/// A database of one YARA rule that matches every file, signed with the tests' key; returns
/// (database, public key file).
fn match_all_db(dir: &Path) -> (PathBuf, PathBuf) {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("match_all.yar"),
        "rule Test_Match_Everything\n{\n    meta:\n        description = \"a bad rule: matches every file\"\n        author = \"vigil tests\"\n        date = \"2026-12-01\"\n    condition:\n        true\n}\n",
    )
    .unwrap();
    let db = dir.join("match-all.vdb");
    std::fs::write(&db, vigil_tests::rules::db_from(&rules, 1)).unwrap();
    let key = dir.join("test.pub");
    std::fs::write(&key, vigil_tests::rules::test_key().public().to_text()).unwrap();
    (db, key)
}

#[test]
fn quarantine_stops_at_its_limit_with_one_mass_detection_and_refuses_protected_paths() {
    let env = Env::new();
    let t = env.dir().to_path_buf();
    let (db, key) = match_all_db(&t);
    let files = t.join("files");
    std::fs::create_dir_all(&files).unwrap();
    for i in 0..50 {
        std::fs::write(files.join(format!("f{i:02}")), format!("file {i}\n")).unwrap();
    }
    let protected = t.join("protected");
    std::fs::create_dir_all(&protected).unwrap();
    std::fs::write(protected.join("important.conf"), b"keep me\n").unwrap();
    let jsonl = t.join("findings.jsonl");
    env.write_config(&format!(
        "[[outputs]]\ntype = \"jsonl\"\npath = {:?}\n[quarantine]\ndir = {:?}\npaths = [{:?}]\nprotected = [{:?}]\n",
        p(&jsonl),
        p(&t.join("q")),
        p(&t),
        p(&protected)
    ));
    let (code, out, err) = env.scan(&[
        "-d",
        &p(&db),
        "--pubkey",
        &p(&key),
        "--quarantine",
        "--max-quarantine",
        "5",
        "-r",
        &p(&files),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(out.matches("(quarantined ").count(), 5, "{out}");
    assert_eq!(out.matches(" FOUND").count(), 50, "{out}");
    let left = std::fs::read_dir(&files).unwrap().count();
    assert_eq!(left, 45, "the other 45 stay in place");
    assert!(err.contains("5 quarantined"), "{err}");
    assert!(err.contains("MASS DETECTION"), "{err}");
    let records: Vec<Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finding = |r: &Value| {
        if r["finding"].is_object() {
            r["finding"].clone()
        } else {
            r["data"].clone()
        }
    };
    let mass: Vec<Value> = records
        .iter()
        .map(finding)
        .filter(|f| f["threat"] == "Vigil.MassDetection")
        .collect();
    assert_eq!(mass.len(), 1, "{records:?}");
    assert_eq!(mass[0]["severity"], "CRITICAL");
    assert!(
        mass[0]["description"]
            .as_str()
            .unwrap()
            .contains("Test_Match_Everything"),
        "{}",
        mass[0]
    );
    let quarantined = records
        .iter()
        .map(finding)
        .filter(|f| f["action"] == "quarantined")
        .count();
    assert_eq!(quarantined, 5);

    // A protected path: refused, and the file stays.
    let (code, out, err) = env.scan(&[
        "-d",
        &p(&db),
        "--pubkey",
        &p(&key),
        "--quarantine",
        &p(&protected.join("important.conf")),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("(quarantine refused: under the protected path"),
        "{out}"
    );
    assert!(protected.join("important.conf").exists());

    // The store lists the five.
    let (code, out, err) = {
        let o = Command::new(bin("vigil-scan"))
            .args(["quarantine", "list", "--dir", &p(&t.join("q"))])
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("Test_Match_Everything"))
            .count(),
        5,
        "{out}"
    );
}

#[test]
fn without_a_config_quarantine_acts_on_the_paths_given() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (db, key) = match_all_db(t);
    let files = t.join("files");
    std::fs::create_dir_all(&files).unwrap();
    for i in 0..3 {
        std::fs::write(files.join(format!("f{i}")), format!("file {i}\n")).unwrap();
    }
    let o = Command::new(bin("vigil-scan"))
        .args(["-d", &p(&db), "--pubkey", &p(&key), "--quarantine"])
        .args(["--quarantine-dir", &p(&t.join("q")), "-r", &p(&files)])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_eq!(out.matches("(quarantined ").count(), 3, "{out}");
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 0);
}

#[test]
fn hooks_get_the_finding_on_stdin_and_are_killed_at_their_timeout() {
    let env = Env::new();
    let t = env.dir().to_path_buf();
    let record = t.join("hook-stdin.json");
    let hook = t.join("record.sh");
    std::fs::write(&hook, "#!/bin/sh\ncat > \"$1\"\n").unwrap();
    let pidfile = t.join("sleeper.pid");
    let sleeper = t.join("sleep.sh");
    std::fs::write(&sleeper, "#!/bin/sh\necho $$ > \"$1\"\nexec sleep 60\n").unwrap();
    for s in [&hook, &sleeper] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(s, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    env.write_config(&format!(
        "[[actions]]\nname = \"record\"\nmin_severity = \"MEDIUM\"\ncommand = [{:?}, {:?}]\n\
         [[actions]]\nname = \"critical-only\"\nmin_severity = \"CRITICAL\"\ncommand = [\"/bin/sh\", \"-c\", \"touch {}\"]\n\
         [[actions]]\nname = \"sleeper\"\nmin_severity = \"LOW\"\ncommand = [{:?}, {:?}]\ntimeout_secs = 1\n",
        p(&hook),
        p(&record),
        p(&t.join("critical-ran")),
        p(&sleeper),
        p(&pidfile),
    ));
    let sample = t.join("eicar.com");
    std::fs::write(&sample, EICAR).unwrap();
    let started = Instant::now();
    let (code, out, err) = env.scan(&[&p(&sample)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.contains("hook timed out"),
        "the timeout is logged: {err}"
    );
    assert!(err.contains("hook ran"), "the exit status is logged: {err}");
    let got: Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(got["threat"], "Vigil.Test.Eicar");
    assert_eq!(got["severity"], "MEDIUM");
    assert_eq!(got["file"]["path"], p(&sample));
    assert_eq!(got["id"].as_str().unwrap().len(), 64);
    assert!(
        !t.join("critical-ran").exists(),
        "a MEDIUM finding does not run a CRITICAL hook"
    );
    // The sleeper started, and is gone: killed at its timeout.
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let alive = Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(!alive, "the hook outlived its timeout");
}

#[test]
fn the_agent_delivers_scheduled_and_on_demand_findings_and_quarantines_nothing_on_demand() {
    let env = Env::new();
    let t = env.dir().to_path_buf();
    let rx = Receiver::start(free_port());
    let samples = t.join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    std::fs::write(samples.join("eicar.com"), EICAR).unwrap();
    let other = t.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let on_demand = other.join("eicar-too.com");
    std::fs::write(&on_demand, format!("{EICAR}  ")).unwrap();
    let socket = t.join("vigil.sock");
    let clamd_socket = t.join("clamd.sock");
    // Quarantine is enabled, but only under a directory the scans do not touch: nothing
    // may move, neither for the scheduled scan nor for the socket's request.
    env.write_config(&format!(
        "{}[quarantine]\nenabled = true\ndir = {:?}\npaths = [{:?}]\n\
         [agent]\nsocket = {:?}\nscan_threads = 1\n\
         [agent.clamd]\nunix_socket = {:?}\n\
         [[agent.scheduled]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\npaths = [{:?}]\n",
        Env::webhook(&rx.url()),
        p(&t.join("q")),
        p(&t.join("elsewhere")),
        p(&socket),
        p(&clamd_socket),
        p(&samples),
    ));
    let log = t.join("agent.log");
    let agent = ChildGuard(
        Command::new(bin("vigil-agent"))
            .args(["--config", &p(&env.config)])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = agent.0.id();
    wait_until("the scan service", 60, || socket.exists());
    std::thread::sleep(Duration::from_millis(300));
    let kill = |sig: &str| {
        assert!(Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap()
            .success());
    };
    kill("USR2");
    let path_of = |v: &Value| v["data"]["file"]["path"].as_str().unwrap_or("").to_owned();
    wait_until("the scheduled scan's finding at the receiver", 60, || {
        rx.verified()
            .iter()
            .any(|v| path_of(v) == p(&samples.join("eicar.com")))
    });
    let o = Command::new(bin("vigil-scan"))
        .args(["--daemon", "--socket", &p(&socket), &p(&on_demand)])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    wait_until("the on-demand finding at the receiver", 60, || {
        rx.verified().iter().any(|v| path_of(v) == p(&on_demand))
    });
    assert!(on_demand.exists() && samples.join("eicar.com").exists());
    assert!(rx
        .verified()
        .iter()
        .all(|v| v["data"]["action"] == "none" && v["type"] == "vigil.finding.new"));
    // Cleaned in place and scanned on demand again: its finding is resolved.
    std::fs::write(&on_demand, b"cleaned\n").unwrap();
    let o = Command::new(bin("vigil-scan"))
        .args(["--daemon", "--socket", &p(&socket), &p(&on_demand)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    wait_until("the on-demand resolution at the receiver", 60, || {
        rx.verified()
            .iter()
            .any(|v| path_of(v) == p(&on_demand) && v["type"] == "vigil.finding.resolved")
    });
    // clamd's protocol on the same agent (`[agent.clamd]`): a stream, and a path scan whose
    // finding goes to the outputs like the socket's.
    wait_until("the clamd socket", 30, || clamd_socket.exists());
    let clamd = |request: &[u8]| -> String {
        use std::io::{Read, Write};
        let mut c = std::os::unix::net::UnixStream::connect(&clamd_socket).unwrap();
        c.write_all(request).unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        reply
    };
    assert_eq!(clamd(b"zPING\0"), "PONG\0");
    let mut stream = b"zINSTREAM\0".to_vec();
    stream.extend_from_slice(&(EICAR.len() as u32).to_be_bytes());
    stream.extend_from_slice(EICAR.as_bytes());
    stream.extend_from_slice(&0u32.to_be_bytes());
    let reply = clamd(&stream);
    assert!(
        reply.starts_with("stream: ") && reply.ends_with(" FOUND\0"),
        "{reply:?}"
    );
    let via_clamd = other.join("via-clamd.com");
    std::fs::write(&via_clamd, format!("{EICAR} \n")).unwrap();
    let reply = clamd(format!("zSCAN {}\0", p(&via_clamd)).as_bytes());
    assert!(reply.ends_with(" FOUND\0"), "{reply:?}");
    wait_until("the clamd scan's finding at the receiver", 60, || {
        rx.verified().iter().any(|v| path_of(v) == p(&via_clamd))
    });
    kill("TERM");
    let log = strip_ansi(&std::fs::read_to_string(&log).unwrap());
    assert!(log.contains("delivering findings"), "{log}");
}

/// The README's isolation hook, with a fake `aws` on PATH that records its argv (the script's
/// environment; nothing reaches AWS).
#[test]
fn the_isolation_hook_calls_the_aws_cli_with_the_instance_and_group() {
    if Command::new("jq").arg("--version").output().is_err() {
        eprintln!("SKIP: jq is not installed (the isolation hook reads the finding with it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let fake = t.join("bin");
    std::fs::create_dir_all(&fake).unwrap();
    let argv = t.join("aws-argv");
    std::fs::write(
        fake.join("aws"),
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\n", p(&argv)),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(fake.join("aws"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let script =
        vigil_tests::rules::repo_root().join("programs/vigil-agent/dist/isolate-instance.sh");
    let run = |finding: &str, sg: &str| {
        use std::io::Write;
        let mut c = Command::new(&script)
            .arg(sg)
            .env(
                "PATH",
                format!("{}:{}", p(&fake), std::env::var("PATH").unwrap_or_default()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The script may exit before reading (a bad group): a broken pipe is its right.
        let _ = c.stdin.take().unwrap().write_all(finding.as_bytes());
        let o = c.wait_with_output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let finding = r#"{"id":"ab12","threat":"Win.Test.EICAR","severity":"CRITICAL","file":{"path":"/srv/x"},
        "resource":{"hostname":"web-1","instance_id":"i-0123456789abcdef0","region":"eu-west-1"}}"#;
    let (code, out) = run(finding, "sg-0fedcba9876543210");
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read_to_string(&argv).unwrap(),
        "--region\neu-west-1\nec2\nmodify-instance-attribute\n--instance-id\ni-0123456789abcdef0\n--groups\nsg-0fedcba9876543210\n"
    );
    assert!(out.contains("isolated i-0123456789abcdef0"), "{out}");
    std::fs::remove_file(&argv).unwrap();
    // Off EC2 (no instance id) or a bad group: nothing is called.
    let (code, _) = run(
        r#"{"resource":{"hostname":"laptop"}}"#,
        "sg-0fedcba9876543210",
    );
    assert_eq!(code, 3);
    let (code, _) = run(finding, "--groups=everything");
    assert_eq!(code, 2);
    assert!(!argv.exists(), "aws was not run");
}
