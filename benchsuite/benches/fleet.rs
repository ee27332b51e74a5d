//! vigil-server's fleet endpoints: check-ins per second (wrk posting check-ins with distinct
//! client ids, a counter per thread) with SQLite and with PostgreSQL, and their p99 latency;
//! then, with at least 100,000 hosts stored, the time of the console (`/fleet`), `/api/fleet`
//! and the compliance CSV.
//!
//! Needs `wrk` (Debian `wrk`); PostgreSQL (Debian `postgresql`) for its row, else skipped.
//! The check-in limits are turned off in the server's config, so wrk measures the store.
//! `VIGIL_BENCH_SECS` (default 10) and `VIGIL_BENCH_CONNECTIONS` (default 32) tune wrk;
//! `VIGIL_BENCH_HOSTS` (default 100000) the fleet size for the read timings.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vigil_benchsuite::program;

const ADMIN: &str = "bench-admin";

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn start(work: &Path, store: &[&str]) -> Server {
    let repo = work.join("repo");
    std::fs::create_dir_all(repo.join("metadata")).unwrap();
    let admin = work.join("admin-tokens");
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(ADMIN.as_bytes()))
    };
    std::fs::write(&admin, format!("{hash}\n")).unwrap();
    let config = work.join("server.toml");
    std::fs::write(
        &config,
        "access_log = false\n[rate_limit]\nrequests_per_second = 0\nburst = 0\n\
         [fleet]\ncheckin_interval_s = 0\nrequests_per_second = 0\nburst = 0\n",
    )
    .unwrap();
    let mut child = Command::new(program("vigil-server"))
        .args(["--repo", repo.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--config", config.to_str().unwrap()])
        .args(["--admin-tokens", admin.to_str().unwrap()])
        .args(store)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("vigil-server exited").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split([' ', ',']).next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
}

const LUA: &str = r#"
local n = 0
local run = "0"
function init(args)
  run = args[1] or "0"
end
function setup(thread)
  thread:set("tid", n)
  n = n + 1
end
local counter = 0
function request()
  counter = counter + 1
  local body = string.format('{"schema":1,"client_id":"bench-%s-%s-%d","hostname":"host-%d",'
    .. '"channel":"stable","installed":{"version":%d,"sha256":"%s"},"engine_version":1,'
    .. '"last_update":{"result":"%s","at":1764600000,"version":7},'
    .. '"last_scan":{"at":1764590000,"scanned":1200,"infected":%d,"errors":0}}',
    run, tid, counter, counter, 6 + counter % 2, string.rep("ab", 32),
    (counter % 97 == 0) and "smoke_test" or "ok", counter % 5)
  return wrk.format("POST", "/fleet/checkin", {["Content-Type"] = "application/json"}, body)
end
"#;

/// (check-ins/s, p99 ms, non-2xx responses) from one wrk run.
/// `run` makes this run's client ids distinct from every other run's.
fn wrk(addr: SocketAddr, script: &Path, secs: u64, conns: u64, run: u64) -> (f64, f64, u64) {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
        ])
        .args(["-s", script.to_str().unwrap()])
        .arg(format!("http://{addr}/"))
        .args(["--", &run.to_string()])
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()))
    };
    let rps = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let p99 = field("99%").map_or(0.0, |v| ms(&v));
    let bad = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (rps, p99, bad)
}

fn ms(v: &str) -> f64 {
    let num: f64 = v
        .trim_end_matches(|c: char| c.is_alphabetic())
        .parse()
        .unwrap_or(0.0);
    if v.ends_with("us") {
        num / 1000.0
    } else if v.ends_with("ms") {
        num
    } else if v.ends_with('s') {
        num * 1000.0
    } else {
        num
    }
}

/// GET with the admin token: (seconds, body bytes).
fn get(addr: SocketAddr, path: &str) -> (f64, Vec<u8>) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{path}: {}",
        String::from_utf8_lossy(&raw[..raw.len().min(200)])
    );
    (t.elapsed().as_secs_f64(), raw)
}

fn hosts(addr: SocketAddr) -> u64 {
    let (_, raw) = get(addr, "/api/fleet");
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let j: serde_json::Value = serde_json::from_slice(&raw[at + 4..]).unwrap();
    j["hosts"].as_u64().unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("SKIP: wrk not found (apt-get install wrk)");
        return;
    }
    let secs = env("VIGIL_BENCH_SECS", 10);
    let conns = env("VIGIL_BENCH_CONNECTIONS", 32);
    let want = env("VIGIL_BENCH_HOSTS", 100_000);
    let work = tempfile::tempdir().unwrap();
    let script = work.path().join("checkin.lua");
    std::fs::write(&script, LUA).unwrap();
    let pg = vigil_tests::postgres::start_postgres();
    let mut rows = Vec::new();
    let mut backends: Vec<(&str, Vec<String>)> = vec![(
        "SQLite",
        vec![
            "--state-dir".into(),
            work.path().join("state").display().to_string(),
        ],
    )];
    match &pg {
        Some(pg) => backends.push(("PostgreSQL", vec!["--fleet-db".into(), pg.url.clone()])),
        None => println!("SKIP PostgreSQL row: postgresql not installed"),
    }
    for (name, args) in &backends {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let srv = start(&dir, &args);
        let (rps, p99, bad) = wrk(srv.addr, &script, secs, conns, 0);
        // Fill to the fleet size for the reads, with new ids each run.
        let mut n = hosts(srv.addr);
        let mut run = 1;
        while n < want {
            let _ = wrk(srv.addr, &script, 10, conns, run);
            run += 1;
            n = hosts(srv.addr);
        }
        let time = |path: &str| {
            let mut bytes = 0;
            let t = median(
                (0..3)
                    .map(|_| {
                        let (t, b) = get(srv.addr, path);
                        bytes = b.len();
                        t
                    })
                    .collect(),
            );
            (t * 1000.0, bytes)
        };
        let console = time("/fleet");
        let api = time("/api/fleet");
        let csv = time("/fleet/compliance.csv");
        rows.push((name.to_string(), rps, p99, bad, n, console, api, csv));
    }
    println!("\nfleet check-ins: wrk -t2 -c{conns} -d{secs}s, distinct client ids, limits off\n");
    println!(
        "{:<11} {:>12} {:>9} {:>8} {:>9} {:>12} {:>14} {:>16}",
        "store",
        "check-ins/s",
        "p99 ms",
        "non-2xx",
        "hosts",
        "/fleet ms",
        "/api/fleet ms",
        "CSV ms (MB)"
    );
    for (name, rps, p99, bad, n, console, api, csv) in rows {
        println!(
            "{name:<11} {rps:>12.0} {p99:>9.2} {bad:>8} {n:>9} {:>12.1} {:>14.1} {:>9.1} ({:.1})",
            console.0,
            api.0,
            csv.0,
            csv.1 as f64 / 1e6
        );
    }
}
