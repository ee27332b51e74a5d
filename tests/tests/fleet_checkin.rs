//! Fleet check-ins from the clients, over real HTTP: `vigil-update` and `vigil-agent` POST a
//! check-in to `fleet/checkin` of the mirror they updated from after every check, whatever
//! its outcome. The mirror here is the test's FaultServer, which serves the repository and
//! keeps what is POSTed (the real vigil-server endpoint has its own tests), so each test can
//! also make the endpoint answer 404, 500 or nothing at all. Every body is read back with the
//! server's parser (`CheckIn::parse`), so all of them must pass its schema checks.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_fleet::{CheckIn, UpdateResult};
use vigil_tests::fault::{Fault, FaultServer};
use vigil_tests::updater::{sha256_hex, strip_ansi, Client, Repo, EICAR};
use vigil_tests::{bin, ChildGuard};

const UPDATED: i32 = 0;
const UP_TO_DATE: i32 = 1;
const NETWORK: i32 = 3;
const REJECTED: i32 = 5;
const CHECKIN: &str = "fleet/checkin";

/// A mirror serving `repo` that takes check-ins.
fn mirror(repo: &Repo) -> FaultServer {
    let m = FaultServer::start(&repo.dir);
    m.accept_posts(CHECKIN);
    m
}

/// Every check-in the mirror received, parsed as the server parses them.
fn checkins(m: &FaultServer) -> Vec<CheckIn> {
    m.posted(CHECKIN)
        .iter()
        .map(|r| {
            assert_eq!(r.content_type.as_deref(), Some("application/json"));
            CheckIn::parse(&r.request_body)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.request_body)))
        })
        .collect()
}

fn last(m: &FaultServer) -> CheckIn {
    checkins(m).pop().expect("a check-in")
}

fn client_id(c: &Client) -> String {
    std::fs::read_to_string(c.db_dir.join("client-id"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn vigil_update_checks_in_after_every_check() {
    let repo = Repo::new();
    let v1 = repo.publish(1);
    let m = mirror(&repo);
    let c = Client::new(
        &repo.tmp.path().join("client"),
        &repo,
        &[&m.url()],
        "ring = \"canary\"\ninstance_id = \"i-0abc123\"\ntoken = \"s3cret\"\n",
    );

    let r = c.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    let posts = m.posted(CHECKIN);
    assert_eq!(posts.len(), 1, "one check-in per check");
    assert_eq!(
        posts[0].authorization.as_deref(),
        Some("Bearer s3cret"),
        "the feed token goes with it"
    );
    let ci = last(&m);
    assert_eq!(ci.client_id, client_id(&c));
    assert_eq!(
        ci.client_id.len(),
        32,
        "a random id, kept: {}",
        ci.client_id
    );
    assert_eq!(ci.channel, "stable");
    assert_eq!(ci.ring.as_deref(), Some("canary"));
    assert_eq!(ci.instance_id.as_deref(), Some("i-0abc123"));
    assert_eq!(ci.engine_version, vigil_format::ENGINE_VERSION);
    let installed = ci.installed.as_ref().unwrap();
    assert_eq!(
        (installed.version, installed.sha256.as_str()),
        (1, sha256_hex(&v1).as_str())
    );
    assert_eq!(ci.last_update.result, UpdateResult::Ok);
    assert_eq!(ci.last_update.version, Some(1));
    assert_eq!(ci.last_update.message, None);
    let now = jiff::Timestamp::now().as_second();
    assert!((now - 60..=now).contains(&ci.last_update.at), "{ci:?}");
    assert_eq!(ci.last_scan, None, "no agent has scanned here");

    // Up to date: said so, with no version attempted and the same database installed.
    let r = c.update();
    assert_eq!(r.code, UP_TO_DATE, "{}", r.stderr);
    let ci2 = last(&m);
    assert_eq!(ci2.last_update.result, UpdateResult::UpToDate);
    assert_eq!(ci2.last_update.version, None);
    assert_eq!(ci2.installed, ci.installed);
    assert_eq!(ci2.client_id, ci.client_id, "the id is stable");

    // The mirror's metadata fails: a network failure, reported to the same server.
    m.set_fault(
        "metadata/",
        Fault::Status {
            code: 500,
            retry_after: None,
        },
    );
    let r = c.update();
    assert_eq!(r.code, NETWORK, "{}", r.stderr);
    let ci3 = last(&m);
    assert_eq!(ci3.last_update.result, UpdateResult::Network);
    assert_eq!(ci3.last_update.version, None);
    let msg = ci3.last_update.message.unwrap();
    assert!(msg.contains("500"), "{msg}");
    assert_eq!(ci3.installed, ci.installed, "version 1 stays installed");
    assert_eq!(checkins(&m).len(), 3);

    // A mirror that asks us to back off gets no check-in either.
    let m2 = mirror(&repo);
    m2.set_fault(
        vigil_tests::fault::Match::Any,
        Fault::Status {
            code: 429,
            retry_after: Some(600),
        },
    );
    c.write_config(&repo, &[&m2.url()], "token = \"s3cret\"\n");
    let r = c.update();
    assert_eq!(r.code, NETWORK, "{}", r.stderr);
    assert_eq!(m2.requests().len(), 1, "{:?}", m2.requests());
    assert_eq!(m2.requests()[0].method, "GET");
}

#[test]
fn rejected_databases_are_reported_as_smoke_test_or_load_failures() {
    let repo = Repo::new();
    let v1 = repo.publish(1);
    let m = mirror(&repo);
    let c = Client::new(&repo.tmp.path().join("client"), &repo, &[&m.url()], "");
    assert_eq!(c.update().code, UPDATED);

    // Version 2 loads but detects nothing: the smoke test fails.
    let mut b = vigil_format::container::DatabaseBuilder::new(2, 1);
    b.section(
        vigil_format::container::SectionKind::Ndb,
        1,
        b"Vigil.Test.Other:0:*:0102030405060708090a0b\n".to_vec(),
    );
    repo.publish_db(&b.build(&repo.key).unwrap());
    let r = c.update();
    assert_eq!(r.code, REJECTED, "{}", r.stderr);
    let ci = last(&m);
    assert_eq!(ci.last_update.result, UpdateResult::SmokeTest);
    assert_eq!(ci.last_update.version, Some(2), "the version attempted");
    assert!(ci
        .last_update
        .message
        .as_deref()
        .is_some_and(|t| t.contains("EICAR was not detected")));
    let installed = ci.installed.unwrap();
    assert_eq!(installed.version, 1, "version 1 stays");
    assert_eq!(installed.sha256, sha256_hex(&v1));

    // Version 3 is signed but its signatures do not compile: a load failure.
    let mut b = vigil_format::container::DatabaseBuilder::new(3, 1);
    b.section(
        vigil_format::container::SectionKind::Ndb,
        1,
        b"this is not a signature\n".to_vec(),
    );
    repo.publish_db(&b.build(&repo.key).unwrap());
    let r = c.update();
    assert_eq!(r.code, REJECTED, "{}", r.stderr);
    let ci = last(&m);
    assert_eq!(ci.last_update.result, UpdateResult::Load, "{ci:?}");
    assert_eq!(ci.last_update.version, Some(3));
    assert_eq!(ci.installed.unwrap().version, 1);
}

#[test]
fn turned_off_it_sends_nothing_and_a_failing_endpoint_never_changes_the_exit_code() {
    let repo = Repo::new();
    repo.publish(1);
    let m = mirror(&repo);
    let c = Client::new(
        &repo.tmp.path().join("client"),
        &repo,
        &[&m.url()],
        "[fleet]\ncheckin = false\n",
    );
    let r = c.update();
    assert_eq!(r.code, UPDATED, "{}", r.stderr);
    assert!(
        m.posted(CHECKIN).is_empty(),
        "checkin = false sends nothing"
    );

    // A static mirror: 404, noted at debug level only.
    c.write_config(&repo, &[&m.url()], "[fleet]\ntimeout_secs = 1\n");
    m.set_fault(
        CHECKIN,
        Fault::Status {
            code: 404,
            retry_after: None,
        },
    );
    let r = c.update();
    assert_eq!(r.code, UP_TO_DATE, "{}", r.stderr);
    let posts = m.posted(CHECKIN);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].status, 404);
    CheckIn::parse(&posts[0].request_body).unwrap();
    assert!(!r.stderr.contains("check-in"), "{}", r.stderr);

    // A broken receiver: a warning, the same exit code.
    m.set_fault(
        CHECKIN,
        Fault::Status {
            code: 500,
            retry_after: None,
        },
    );
    let r = c.update();
    assert_eq!(r.code, UP_TO_DATE, "{}", r.stderr);
    assert!(r.stderr.contains("check-in refused"), "{}", r.stderr);

    // A receiver that never answers costs at most the timeout (1 s here).
    m.set_fault(CHECKIN, Fault::Hang);
    let started = Instant::now();
    let r = c.update();
    let took = started.elapsed();
    assert_eq!(r.code, UP_TO_DATE, "{}", r.stderr);
    assert!(r.stderr.contains("not delivered"), "{}", r.stderr);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(checkins(&m).len(), 3, "every body still parses");
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(pid: u32, sig: &str) {
    let s = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(s.success());
}

#[test]
fn the_agent_checks_in_with_its_last_scheduled_scan() {
    let repo = Repo::new();
    let v1 = repo.publish(1);
    let m = mirror(&repo);
    let dir = repo.tmp.path().join("agent");
    let samples = dir.join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    std::fs::write(samples.join("eicar.com"), EICAR).unwrap();
    std::fs::write(samples.join("clean.txt"), "nothing here\n").unwrap();
    let socket = dir.join("vigil.sock");
    let p = |p: &Path| p.display().to_string();
    let c = Client::new(
        &dir,
        &repo,
        &[&m.url()],
        &format!(
            "client_id = \"host-a\"\nchecks_per_day = 1\n[agent]\nsocket = {:?}\n\
             [[agent.scheduled]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\npaths = [{:?}]\n\
             output = \"findings.jsonl\"\n",
            p(&socket),
            p(&samples)
        ),
    );
    assert_eq!(c.update().code, UPDATED);
    let log = dir.join("agent.log");
    let agent = ChildGuard(
        Command::new(bin("vigil-agent"))
            .args(["--config", &p(&c.config)])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = agent.0.id();
    wait_until("the scan service", 60, || socket.exists());

    signal(pid, "USR2");
    let last_scan = c.db_dir.join("last-scan.json");
    wait_until("the scan summary", 60, || last_scan.exists());
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&last_scan).unwrap()).unwrap();
    assert_eq!(written["scanned"], 2, "{written}");
    assert_eq!(written["infected"], 1, "{written}");

    signal(pid, "USR1");
    wait_until("the agent's check-in with its scan", 60, || {
        checkins(&m).iter().any(|c| c.last_scan.is_some())
    });
    let ci = checkins(&m)
        .into_iter()
        .find(|c| c.last_scan.is_some())
        .unwrap();
    let scan = ci.last_scan.unwrap();
    assert_eq!((scan.scanned, scan.infected, scan.errors), (2, 1, 0));
    let now = jiff::Timestamp::now().as_second();
    assert!((now - 120..=now).contains(&scan.at), "{scan:?}");
    assert_eq!(ci.client_id, "host-a");
    assert_eq!(ci.last_update.result, UpdateResult::UpToDate);
    assert_eq!(ci.installed.unwrap().sha256, sha256_hex(&v1));

    // vigil-update reads the same summary for its own check-ins.
    assert_eq!(c.update().code, UP_TO_DATE);
    assert_eq!(last(&m).last_scan.unwrap().scanned, 2);
    signal(pid, "TERM");
    let mut agent = agent;
    let status = agent.0.wait().unwrap();
    assert!(
        status.success(),
        "{status:?}\n{}",
        strip_ansi(&std::fs::read_to_string(&log).unwrap())
    );
}
