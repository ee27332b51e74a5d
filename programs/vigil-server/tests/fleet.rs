//! The fleet endpoints of the real vigil-server over real sockets: check-ins stored and read
//! back through `/api/fleet`, the CSV, the console and `/api/fleet/health`, with SQLite and
//! with a real PostgreSQL (Debian's `postgresql`, started here; skipped when absent), the
//! refusals (413, 400, 401, 403, 404, 429), and the console in headless Chromium (Debian's
//! `chromium`; skipped when absent).
//!
//! The repository served holds targets metadata written here with the library's own
//! `TargetInfo::to_custom` (one release complete, one rolling at canary+10%), unsigned: the
//! server reads it for display only and never verifies it.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{spawn_server, Server, BIN};
use serde_json::Value;
use vigil_repository::layout::TargetInfo;
use vigil_repository::rollout::{parse_plan, Release, Rollout};
use vigil_tests::postgres::start_postgres;

const ADMIN: &str = "adm1n-t0ken";
const FEED: &str = "feed-t0ken";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hash_file(dir: &Path, name: &str, token: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{}\n", common::sha256_hex(token.as_bytes()))).unwrap();
    path
}

/// A repository whose targets metadata holds v6 (published 48 h ago, no plan: complete) and
/// v7 (published an hour ago, plan canary,10%:6h,100%, at its second stage).
fn repository(dir: &Path) -> PathBuf {
    let root = dir.join("repo");
    std::fs::create_dir_all(root.join("metadata")).unwrap();
    std::fs::create_dir_all(root.join("targets")).unwrap();
    let t = now();
    let mut rolling = Rollout::start(parse_plan("canary,10%:6h,100%").unwrap(), t - 3600);
    rolling.stage = 1;
    let full = |v: u64, published: i64, rollout: Option<Rollout>| TargetInfo::Full {
        db_version: v,
        min_engine_version: 1,
        gate_override: None,
        release: Release {
            channel: None,
            published: Some(published),
            rollout,
            revoked: None,
        },
    };
    let target = |info: TargetInfo| serde_json::json!({"length": 1, "hashes": {"sha256": "00"}, "custom": info.to_custom()});
    let targets = serde_json::json!({"signed": {"_type": "targets", "version": 3, "targets": {
        "vigil-6.vdb": target(full(6, t - 48 * 3600, None)),
        "vigil-7.vdb": target(full(7, t - 3600, Some(rolling))),
    }}, "signatures": []});
    let write = |name: &str, v: Value| {
        std::fs::write(root.join("metadata").join(name), v.to_string()).unwrap();
    };
    write("3.targets.json", targets);
    write(
        "2.snapshot.json",
        serde_json::json!({"signed": {"_type": "snapshot", "version": 2,
            "meta": {"targets.json": {"version": 3}}}, "signatures": []}),
    );
    write(
        "timestamp.json",
        serde_json::json!({"signed": {"_type": "timestamp", "version": 2,
            "meta": {"snapshot.json": {"version": 2}}}, "signatures": []}),
    );
    root
}

struct Setup {
    dir: tempfile::TempDir,
    repo: PathBuf,
    admin: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path());
    let admin = hash_file(dir.path(), "admin-tokens", ADMIN);
    Setup { dir, repo, admin }
}

/// `store`: `["--state-dir", DIR]` or `["--fleet-db", URL]`; a config with a 1 s check-in
/// interval (the health test checks a client in twice).
fn start(s: &Setup, store: &[&str], extra: &[&str]) -> Server {
    start_with(
        s,
        "server.toml",
        "[fleet]\ncheckin_interval_s = 1\n",
        store,
        extra,
    )
}

/// [`start`] with another config file (`name`, holding `text`).
fn start_with(s: &Setup, name: &str, text: &str, store: &[&str], extra: &[&str]) -> Server {
    let config = s.dir.path().join(name);
    std::fs::write(&config, text).unwrap();
    let mut args = vec![
        "--repo",
        s.repo.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--admin-tokens",
        s.admin.to_str().unwrap(),
    ];
    args.extend_from_slice(store);
    args.extend_from_slice(extra);
    spawn_server(&args)
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// One HTTP/1.1 request on its own connection; a chunked body is decoded.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status = head[9..12].parse().unwrap();
    let reply = Reply {
        status,
        head,
        body: Vec::new(),
    };
    if reply
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    Reply { body, ..reply }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A check-in body. `installed`: the running version; `update`: (result, version, message).
fn checkin(
    id: &str,
    host: &str,
    ring: Option<&str>,
    installed: Option<u64>,
    update: (&str, Option<u64>, Option<&str>),
    infected: Option<u64>,
) -> String {
    let mut v = serde_json::json!({
        "schema": 1, "client_id": id, "hostname": host, "channel": "stable",
        "engine_version": 1,
        "last_update": {"result": update.0, "at": now()},
    });
    if let Some(r) = ring {
        v["ring"] = r.into();
    }
    if let Some(i) = installed {
        v["installed"] = serde_json::json!({"version": i, "sha256": "ab".repeat(32)});
    }
    if let Some(u) = update.1 {
        v["last_update"]["version"] = u.into();
    }
    if let Some(m) = update.2 {
        v["last_update"]["message"] = m.into();
    }
    if let Some(n) = infected {
        v["last_scan"] =
            serde_json::json!({"at": now(), "scanned": 100, "infected": n, "errors": 0});
    }
    v.to_string()
}

fn post(addr: SocketAddr, body: &str, extra: &[(&str, &str)]) -> Reply {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(extra);
    http(addr, "POST", "/fleet/checkin", &h, body.as_bytes())
}

const XSS: &str = "smoke test: <script>alert(1)</script> did not detect the sample";

/// c1 canary on v7; c2 on v6 with 3 findings; c3 failed v7's smoke test and stayed on v6;
/// c4 has nothing installed and no network.
fn fleet_of_four(addr: SocketAddr) {
    for body in [
        checkin(
            "c1",
            "canary-1",
            Some("canary"),
            Some(7),
            ("ok", Some(7), None),
            Some(0),
        ),
        checkin(
            "c2",
            "web-2",
            None,
            Some(6),
            ("up_to_date", None, None),
            Some(3),
        ),
        checkin(
            "c3",
            "web-3",
            None,
            Some(6),
            ("smoke_test", Some(7), Some(XSS)),
            None,
        ),
        checkin(
            "c4",
            "db-4",
            None,
            None,
            ("network", None, Some("no mirror reachable")),
            None,
        ),
    ] {
        let r = post(addr, &body, &[]);
        assert_eq!(r.status, 204, "{}", r.text());
    }
}

/// What every backend must answer for [`fleet_of_four`].
fn reads_back(addr: SocketAddr) {
    let auth = bearer(ADMIN);
    let r = http(addr, "GET", "/api/fleet", &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["hosts"], 4);
    let stable = &j["channels"][0];
    assert_eq!(stable["channel"], "stable");
    let shares: Vec<(Value, String)> = stable["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].clone(),
                v["percent"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        shares,
        vec![
            (7.into(), "25%".into()),
            (6.into(), "50%".into()),
            (Value::Null, "25%".into())
        ]
    );
    // v6 is complete, v7 still rolling: v6 is what everyone is offered; only c4 is behind.
    assert_eq!(stable["offered"], 6);
    assert_eq!(stable["behind"], 1);
    assert_eq!(stable["releases"][0]["reach"], "canary+10%");
    // Stale: v6 was published 48 h ago (c2, c3), c4 has nothing; c1's v7 is an hour old.
    assert_eq!(j["stale"]["total"], 3);
    let stale: Vec<&str> = j["stale"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["client_id"].as_str().unwrap())
        .collect();
    assert!(!stale.contains(&"c1") && stale.len() == 3, "{stale:?}");
    assert_eq!(j["silent"], 0);
    let failures: Vec<(&str, &str)> = j["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["client_id"].as_str().unwrap(),
                f["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(failures, vec![("c4", "network"), ("c3", "smoke_test")]);
    assert_eq!(j["findings"]["total"], 1);
    assert_eq!(j["findings"]["hosts"][0]["client_id"], "c2");
    assert_eq!(j["findings"]["hosts"][0]["infected"], 3);
    // With a 100-hour limit only c4 (no definitions) is stale.
    let r = http(
        addr,
        "GET",
        "/api/fleet?stale_hours=100",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.json()["stale"]["total"], 1);

    let r = http(
        addr,
        "GET",
        "/fleet/compliance.csv",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    let csv = r.text();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[0].starts_with("client_id,hostname,instance_id,channel,ring,version,sha256,"));
    assert!(lines[2].starts_with("c2,web-2,,stable,,6,"), "{}", lines[2]);
    assert!(
        lines[2].contains(",48,false,"),
        "v6 is 48 h old, not behind: {}",
        lines[2]
    );
    assert!(
        lines[4].starts_with("c4,db-4,,stable,,,,,,true,"),
        "{}",
        lines[4]
    );
    assert!(lines[2].ends_with(",100,3,0"), "{}", lines[2]);

    let r = http(addr, "GET", "/fleet", &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(!html.contains("<script>"), "check-in text must be escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("v7 25%") && html.contains("v6 50%"), "{html}");
}

/// reporting/failed/installed/silent and the baseline for v7, before and after a silence.
fn health_counts(addr: SocketAddr) {
    let auth = bearer(ADMIN);
    let get = |q: &str| {
        let r = http(
            addr,
            "GET",
            &format!("/api/fleet/health?{q}"),
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let h = get("channel=stable&version=7&since=0&silent_after=3600");
    let counts = |h: &Value| {
        [
            "reporting",
            "failed",
            "installed",
            "silent",
            "others_installed",
            "others_silent",
        ]
        .map(|k| h[k].as_u64().unwrap())
    };
    // c1 runs 7, c3 tried it (reporting 2); c3 failed; c1 installed; c2 and c3 on v6.
    assert_eq!(counts(&h), [2, 1, 1, 0, 2, 0]);
    assert_eq!(h["failures"][0]["client_id"], "c3");
    assert_eq!(h["failures"][0]["result"], "smoke_test");
    // A window starting in the future sees no reports.
    let h = get(&format!("channel=stable&version=7&since={}", now() + 100));
    assert_eq!(counts(&h)[..2], [0, 0]);
    // After 2 s of silence with silent_after=1, everyone is silent but c2, who checks in again.
    std::thread::sleep(Duration::from_millis(2200));
    let r = post(
        addr,
        &checkin(
            "c2",
            "web-2",
            None,
            Some(6),
            ("up_to_date", None, None),
            Some(3),
        ),
        &[],
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let h = get("channel=stable&version=7&since=0&silent_after=1");
    assert_eq!(counts(&h), [2, 1, 1, 1, 2, 1]);
    assert_eq!(h["silent_hosts"][0]["client_id"], "c1");
    // Bad queries are refused, naming the parameter.
    let r = http(
        addr,
        "GET",
        "/api/fleet/health?channel=stable",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("version"), "{}", r.text());
}

#[test]
fn sqlite_checkins_reads_and_health() {
    let s = setup();
    let state = s.dir.path().join("state");
    let srv = start(&s, &["--state-dir", state.to_str().unwrap()], &[]);
    fleet_of_four(srv.addr);
    reads_back(srv.addr);
    health_counts(srv.addr);
    assert!(state.join("fleet.sqlite3").is_file());
}

#[test]
fn refusals() {
    let s = setup();
    let state = s.dir.path().join("state");
    let feed = hash_file(s.dir.path(), "feed-tokens", FEED);
    let srv = start(
        &s,
        &["--state-dir", state.to_str().unwrap()],
        &["--tokens", feed.to_str().unwrap()],
    );
    let a = srv.addr;
    let fb = bearer(FEED);
    let body = checkin("r1", "h1", None, Some(6), ("ok", Some(6), None), None);
    // Feed token required on check-ins when --tokens is set.
    let r = post(a, &body, &[]);
    assert_eq!(r.status, 401);
    let r = post(a, &body, &[("Authorization", &bearer("nope"))]);
    assert_eq!(r.status, 401);
    let r = post(a, &body, &[("Authorization", &fb)]);
    assert_eq!(r.status, 204, "{}", r.text());
    // The same client again at once: 429 with Retry-After.
    let r = post(a, &body, &[("Authorization", &fb)]);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    // Oversized: by Content-Length, and chunked without one.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(5000));
    let r = post(a, &big, &[("Authorization", &fb)]);
    assert_eq!(r.status, 413);
    let chunked = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    let r = http(
        a,
        "POST",
        "/fleet/checkin",
        &[("Authorization", &fb), ("Transfer-Encoding", "chunked")],
        chunked.as_bytes(),
    );
    assert_eq!(r.status, 413);
    // Malformed: the answer names the field.
    let bad = checkin("r2", "bad host!", None, None, ("ok", None, None), None);
    let r = post(a, &bad, &[("Authorization", &fb)]);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("hostname"), "{}", r.text());
    let r = post(a, "{not json", &[("Authorization", &fb)]);
    assert_eq!(r.status, 400);
    // Admin reads: none, wrong, a feed token, then right (Bearer and Basic).
    for auth in [
        None,
        Some(bearer("wrong")),
        Some(fb.clone()),
        Some("Basic YTpiYWQ=".into()),
    ] {
        let h: Vec<(&str, &str)> = auth.iter().map(|v| ("Authorization", v.as_str())).collect();
        for path in [
            "/api/fleet",
            "/fleet",
            "/fleet/compliance.csv",
            "/api/fleet/health?channel=stable&version=1",
        ] {
            let r = http(a, "GET", path, &h, b"");
            assert_eq!(r.status, 401, "{path} {auth:?}");
            assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
        }
    }
    let basic = format!("Basic {}", base64(&format!("admin:{ADMIN}")));
    let r = http(a, "GET", "/api/fleet", &[("Authorization", &basic)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["hosts"], 1);

    // Without admin tokens: 403 saying why. Without a store: 404.
    let srv2 = spawn_server(&[
        "--repo",
        s.repo.to_str().unwrap(),
        "--state-dir",
        s.dir.path().join("state2").to_str().unwrap(),
    ]);
    let r = http(
        srv2.addr,
        "GET",
        "/fleet",
        &[("Authorization", &bearer(ADMIN))],
        b"",
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("--admin-tokens"), "{}", r.text());
    let srv3 = spawn_server(&["--repo", s.repo.to_str().unwrap()]);
    let r = post(srv3.addr, &body, &[]);
    assert_eq!(r.status, 404);
    // Repository serving is unchanged alongside.
    let r = http(
        a,
        "GET",
        "/metadata/timestamp.json",
        &[("Authorization", &fb)],
        b"",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn unopenable_store_is_exit_5() {
    let s = setup();
    let file = s.dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = Command::new(BIN)
        .args([
            "--repo",
            s.repo.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--state-dir", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fleet store"));
}

fn base64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---- PostgreSQL, for real ----

#[test]
fn postgres_checkins_reads_and_health() {
    let Some(pg) = start_postgres() else { return };
    let s = setup();
    let srv = start(&s, &["--fleet-db", &pg.url], &[]);
    fleet_of_four(srv.addr);
    reads_back(srv.addr);
    health_counts(srv.addr);
    // A second replica on the same database sees the same fleet.
    let replica = start(&s, &["--fleet-db", &pg.url], &[]);
    let r = http(
        replica.addr,
        "GET",
        "/api/fleet",
        &[("Authorization", &bearer(ADMIN))],
        b"",
    );
    assert_eq!(r.json()["hosts"], 4);
}

/// A host not seen for `forget_after_s` is forgotten (terminated instances do not stay in the
/// console and the compliance report forever); one still checking in stays.
fn forgets_hosts_not_seen_for_long(s: &Setup, store: &[&str]) {
    let srv = start_with(
        s,
        "forget.toml",
        "[fleet]\ncheckin_interval_s = 0\nforget_after_s = 2\n",
        store,
        &[],
    );
    let hosts = || {
        let r = http(
            srv.addr,
            "GET",
            "/api/fleet",
            &[("Authorization", &bearer(ADMIN))],
            b"",
        );
        r.json()["hosts"].as_i64().unwrap()
    };
    for id in ["gone", "alive"] {
        let body = checkin(id, id, None, Some(6), ("ok", Some(6), None), None);
        assert_eq!(post(srv.addr, &body, &[]).status, 204);
    }
    assert_eq!(hosts(), 2);
    // Longer than forget_after_s (plus a second of rounding); then the live host checks in,
    // and that request forgets before it records (so the answer does not hang on timing).
    std::thread::sleep(Duration::from_millis(3500));
    let body = checkin(
        "alive",
        "alive",
        None,
        Some(6),
        ("up_to_date", None, None),
        None,
    );
    assert_eq!(post(srv.addr, &body, &[]).status, 204);
    assert_eq!(hosts(), 1, "the host unseen for 3.5 s is forgotten");
    let csv = http(
        srv.addr,
        "GET",
        "/fleet/compliance.csv",
        &[("Authorization", &bearer(ADMIN))],
        b"",
    )
    .text();
    assert!(csv.contains("\nalive,") && !csv.contains("gone"), "{csv}");
}

#[test]
fn sqlite_forgets_hosts_not_seen_for_long() {
    let s = setup();
    let state = s.dir.path().join("state-forget");
    forgets_hosts_not_seen_for_long(&s, &["--state-dir", state.to_str().unwrap()]);
}

#[test]
fn postgres_forgets_hosts_not_seen_for_long() {
    let Some(pg) = start_postgres() else { return };
    let s = setup();
    forgets_hosts_not_seen_for_long(&s, &["--fleet-db", &pg.url]);
}

#[test]
fn unreachable_postgres_is_exit_5() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = setup();
    let out = Command::new(BIN)
        .args([
            "--repo",
            s.repo.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args([
            "--fleet-db",
            &format!("postgres://vigil@127.0.0.1:{port}/x"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
}

// ---- the console in a real browser ----

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn console_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("SKIP: chromium is not installed (apt-get install chromium)");
        return;
    };
    let s = setup();
    let state = s.dir.path().join("state");
    let srv = start(&s, &["--state-dir", state.to_str().unwrap()], &[]);
    fleet_of_four(srv.addr);
    // The token as the password of URL credentials: Chromium sends them as Basic on the
    // top-level navigation (answering the 401 challenge).
    let url = format!("http://admin:{ADMIN}@{}/fleet", srv.addr);
    let profile = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let out = run(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        dom.contains("id=\"versions\""),
        "no console in the DOM: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Version shares in the chart.
    let versions = section(&dom, "versions");
    assert!(
        versions.contains("v7 25%") && versions.contains("v6 50%") && versions.contains("none 25%"),
        "{versions}"
    );
    // The stale hosts (v6 is 48 h old; db-4 has nothing), not the fresh canary.
    let stale = section(&dom, "stale");
    for host in ["web-2", "web-3", "db-4"] {
        assert!(stale.contains(host), "{host} not stale: {stale}");
    }
    assert!(!stale.contains("canary-1"));
    // The failures, with the untrusted message as text, never as markup.
    let failures = section(&dom, "failures");
    assert!(
        failures.contains("web-3") && failures.contains("smoke_test"),
        "{failures}"
    );
    assert!(
        failures.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{failures}"
    );
    assert!(!dom.contains("<script>alert"));
    let rollout = section(&dom, "rollout");
    assert!(
        rollout.contains("canary,10%:6h,100%") && rollout.contains("canary+10%"),
        "{rollout}"
    );
    let shot = artifacts().join("fleet-console.png");
    let _ = std::fs::remove_file(&shot);
    let out = run(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,2000",
    ]);
    assert!(
        shot.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("screenshot: {}", shot.display());
}

/// The element with `id` up to the next `<h2` (each section is a heading and its content).
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let rest = &dom[at..];
    &rest[..rest.find("<h2").unwrap_or(rest.len())]
}
