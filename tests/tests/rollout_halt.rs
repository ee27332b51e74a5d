//! The automatic halt end to end: real `vigil-update` clients check in to a real vigil-server
//! with a fleet store (SQLite), and `vigil-build rollout advance --fleet` reads the rolling
//! version's health there and either pauses the rollout (exit 6, with the evidence) or moves it
//! on. One fleet per test: canaries whose smoke test fails the new release; canaries that take
//! it and then stop checking in (a crash loop); and a healthy fleet, which must not halt.

use std::path::{Path, PathBuf};
use std::process::Command;

use vigil_format::container::{DatabaseBuilder, SectionKind};
use vigil_tests::updater::{marker, vigil_server_fleet, Client, Repo, Server};
use vigil_tests::{bin, run};

const ADMIN: &str = "halt-test-admin-token";

struct Fleet {
    repo: Repo,
    server: Server,
    token: PathBuf,
    canaries: Vec<Client>,
    others: Vec<Client>,
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A fleet of `canaries` canary clients and `others` ordinary ones, all on version 1 and all
/// checked in.
fn fleet(canaries: usize, others: usize) -> Fleet {
    let repo = Repo::new();
    let server = vigil_server_fleet(&repo.dir, ADMIN);
    let token = repo.tmp.path().join("admin-token");
    std::fs::write(&token, format!("{ADMIN}\n")).expect("writing the token file");
    repo.publish(1);
    let make = |name: &str, extra: &str| {
        Client::new(
            &repo.tmp.path().join(name),
            &repo,
            &[&server.url],
            &format!("client_id = \"{name}\"\n{extra}"),
        )
    };
    let canaries: Vec<Client> = (0..canaries)
        .map(|i| make(&format!("canary-{i}"), "ring = \"canary\""))
        .collect();
    let others: Vec<Client> = (0..others).map(|i| make(&format!("web-{i}"), "")).collect();
    for c in canaries.iter().chain(&others) {
        let r = c.update();
        assert_eq!(r.code, 0, "first install: {}", r.stderr);
    }
    Fleet {
        repo,
        server,
        token,
        canaries,
        others,
    }
}

/// Publishes `db` as version `v` with a canary-first plan, through the CLI.
fn publish_staged(f: &Fleet, v: u64, db: &[u8]) {
    let file = f.repo.tmp.path().join(format!("v{v}.vdb"));
    std::fs::write(&file, db).expect("writing the database");
    let r = run(Command::new(bin("vigil-build")).args([
        "publish",
        "--repo",
        path(&f.repo.dir),
        "--tuf-keys",
        path(&f.repo.tuf_keys),
        "--db",
        path(&file),
        "--stages",
        "canary,50%,100%",
    ]));
    assert_eq!(r.code, 0, "publish {v}: {}", r.stderr);
}

fn advance(f: &Fleet, extra: &[&str]) -> vigil_tests::Run {
    run(Command::new(bin("vigil-build"))
        .args([
            "rollout",
            "advance",
            "--repo",
            path(&f.repo.dir),
            "--tuf-keys",
            path(&f.repo.tuf_keys),
            "--force",
            "--fleet",
            &f.server.url,
            "--admin-token-file",
            path(&f.token),
        ])
        .args(extra))
}

/// The release `v` as `rollout status --json` shows it.
fn release(f: &Fleet, v: u64) -> serde_json::Value {
    let r = run(Command::new(bin("vigil-build")).args([
        "rollout",
        "status",
        "--json",
        "--repo",
        path(&f.repo.dir),
        "--root",
        path(&f.repo.root_json()),
    ]));
    assert_eq!(r.code, 0, "status: {}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("status JSON");
    doc["releases"]
        .as_array()
        .and_then(|rs| rs.iter().find(|x| x["version"] == v))
        .cloned()
        .unwrap_or_else(|| panic!("version {v} in {doc}"))
}

/// The fleet summary (`/api/fleet`), read with the admin token.
fn summary(f: &Fleet) -> serde_json::Value {
    fetch_json(&f.server.url, "api/fleet")
}

/// A GET with the admin token, over a plain socket.
fn fetch_json(base: &str, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A database that verifies and loads but does not detect EICAR: every client's smoke test
/// refuses it.
fn fails_smoke_test(repo: &Repo, v: u64) -> Vec<u8> {
    let mut body = String::new();
    for m in 1..=v {
        body.push_str(&format!(
            "Vigil.Test.Marker{m}:0:*:{}\n",
            hex::encode(marker(m))
        ));
    }
    let n = body.lines().count() as u32;
    let mut b = DatabaseBuilder::new(v, 1_700_000_000);
    b.section(SectionKind::Ndb, n, body.into_bytes());
    b.build(&repo.key).expect("building the database")
}

#[test]
fn halts_when_canaries_fail_the_smoke_test() {
    let f = fleet(3, 3);
    publish_staged(&f, 2, &fails_smoke_test(&f.repo, 2));
    for c in &f.canaries {
        let r = c.update();
        assert_eq!(r.code, 5, "the canary refuses version 2: {}", r.stderr);
        assert_eq!(c.version(), Some(1), "and keeps version 1");
    }
    for c in &f.others {
        let r = c.update();
        assert_eq!(r.code, 1, "not a canary: held: {}", r.stderr);
        assert!(r.stderr.contains("held: stable at canary"), "{}", r.stderr);
    }
    // The check-ins reached the real store: the console's summary has every host, on 1.
    let s = summary(&f);
    assert_eq!(s["hosts"], 6, "{s}");
    assert_eq!(s["channels"][0]["versions"][0]["version"], 1, "{s}");
    assert_eq!(s["channels"][0]["versions"][0]["hosts"], 6, "{s}");
    let failed: Vec<&str> = s["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter(|x| x["result"] == "smoke_test" && x["version"] == 2)
        .filter_map(|x| x["client_id"].as_str())
        .collect();
    for i in 0..3 {
        assert!(
            failed.contains(&format!("canary-{i}").as_str()),
            "canary-{i}'s failure is listed: {s}"
        );
    }

    // The operator's view of the same in the release tool.
    let r = run(Command::new(bin("vigil-build")).args([
        "rollout",
        "status",
        "--repo",
        path(&f.repo.dir),
        "--root",
        path(&f.repo.root_json()),
        "--fleet",
        &f.server.url,
        "--admin-token-file",
        path(&f.token),
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("fleet: 6 host(s)"), "{}", r.stdout);
    assert!(
        r.stdout.contains("stable: v1 100% (6 host(s))"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("failure: ") && r.stdout.contains("smoke_test"),
        "{}",
        r.stdout
    );

    let r = advance(&f, &[]);
    assert_eq!(r.code, 6, "the automatic halt: {}\n{}", r.stdout, r.stderr);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains("3 of 3") && said.contains("failed"),
        "the evidence is printed: {said}"
    );
    let rel = release(&f, 2);
    assert!(
        rel["paused"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("automatic halt: ")),
        "{rel}"
    );
    assert_eq!(rel["stage_index"], 0, "not advanced: {rel}");
    // Paused: nobody new takes it (the canaries would refuse it anyway; an ordinary client is
    // held with the pause named).
    let r = f.others[0].update();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("paused"), "{}", r.stderr);
}

#[test]
fn halts_on_a_crash_loop() {
    let f = fleet(3, 3);
    publish_staged(&f, 2, &f.repo.db(2));
    for c in &f.canaries {
        let r = c.update();
        assert_eq!(r.code, 0, "the canary takes version 2: {}", r.stderr);
    }
    // The canaries check in once on version 2 and then fall silent (crashing before their next
    // check-in); the rest of the fleet keeps checking in.
    std::thread::sleep(std::time::Duration::from_millis(3200));
    for c in &f.others {
        assert_eq!(c.update().code, 1);
    }
    let healthy_window = advance(&f, &["--silent-after", "30s"]);
    assert_eq!(
        healthy_window.code, 0,
        "with a longer silence window they are not yet silent: {}",
        healthy_window.stderr
    );
    assert_eq!(release(&f, 2)["stage_index"], 1, "so it advanced");
    // One more stage and the same fleet judged with a 2 s window: the canaries are silent.
    for c in &f.others {
        c.update();
    }
    let r = advance(&f, &["--silent-after", "2s"]);
    assert_eq!(
        r.code, 6,
        "the crash loop halts: {}\n{}",
        r.stdout, r.stderr
    );
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.contains("stopped checking in"), "{said}");
    assert!(
        said.contains("canary-0"),
        "the silent hosts are named: {said}"
    );
    assert!(release(&f, 2)["paused"].is_object());
}

#[test]
fn a_healthy_fleet_advances() {
    let f = fleet(3, 3);
    publish_staged(&f, 2, &f.repo.db(2));
    for c in &f.canaries {
        assert_eq!(c.update().code, 0);
    }
    for c in &f.others {
        assert_eq!(c.update().code, 1);
    }
    let r = advance(&f, &[]);
    assert_eq!(r.code, 0, "healthy: {}\n{}", r.stdout, r.stderr);
    let rel = release(&f, 2);
    assert_eq!(rel["stage_index"], 1, "advanced to 50%: {rel}");
    assert!(rel["paused"].is_null(), "{rel}");
    // Too few reports is a wait, not a halt and not an advance.
    let r = advance(&f, &["--min-reports", "50"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(release(&f, 2)["stage_index"], 1, "waiting: not advanced");
}
