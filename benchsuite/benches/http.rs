//! vigil-server beside nginx, measured with wrk, on the same repository directory; and
//! vigil-server against itself with its caches flooded.
//!
//! ```sh
//! cargo bench --workspace --bench http            # every case
//! cargo bench --workspace --bench http -- flood   # only the cases named so
//! ```
//!
//! Arguments that do not start with `-` select the cases whose names contain one of them:
//! "metadata GET", "304 revalidation", "2 MB blob GET" (each beside nginx) and "cache flooded
//! with unique names". Needs `wrk`, and `nginx` for the comparisons (Debian packages of the
//! same names); without them those cases say SKIP and it exits 0. Both servers run with access
//! logging off; vigil-server also without rate limiting and with its default caches.
//!
//! Beside nginx: a ~1 KB `timestamp.json`, its revalidation (each server's own ETag in
//! If-None-Match, so every answer is a 304), and a 2 MB blob. Goals: at least 0.8x nginx's
//! requests/s on the metadata GET and the 304, at least 0.5x its throughput on the blob.
//!
//! Cache flooded: `timestamp.json` idle, then again after `VIGIL_BENCH_FLOOD_NAMES` (default
//! 70,000) requests for unique 250-byte metadata names and while more of them keep coming at
//! `VIGIL_BENCH_FLOOD_RPS` (default 1,000/s). The old cache, scanned whole on every insert,
//! fell from ~15,000 to under 1,000 requests/s once that many names filled it. Goal: the
//! flooded median, p99 and requests/s within 2x of idle.
//!
//! `VIGIL_BENCH_SECS` (default 10) and `VIGIL_BENCH_CONNECTIONS` (default 32) tune wrk;
//! `VIGIL_BENCH_SERVER` runs another vigil-server binary (say, an older build) instead of
//! the one built with the bench.

// A bench is a harness: a setup step that fails should stop it loudly, as in a test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const NGINX_CASES: [&str; 3] = ["metadata GET", "304 revalidation", "2 MB blob GET"];
const FLOOD_CASE: &str = "cache flooded with unique names";

fn main() {
    // cargo passes `--bench`; everything else is a case filter.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |case: &str| filters.is_empty() || filters.iter().any(|f| case.contains(f));
    let Some(wrk) = find(&["/usr/bin/wrk", "/usr/local/bin/wrk"], "wrk") else {
        println!("SKIP: wrk not found (apt-get install wrk)");
        return;
    };
    let bench = Bench {
        wrk,
        secs: env_or("VIGIL_BENCH_SECS", 10),
        conns: env_or("VIGIL_BENCH_CONNECTIONS", 32),
        server: std::env::var_os("VIGIL_BENCH_SERVER")
            .map_or_else(|| vigil_benchsuite::program("vigil-server"), PathBuf::from),
        work: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-server"),
    };
    let _ = std::fs::remove_dir_all(&bench.work);
    let repo = bench.work.join("repo");
    let blob_key = build_repo(&repo);

    let nginx_cases: Vec<&str> = NGINX_CASES.into_iter().filter(|c| wanted(c)).collect();
    if !nginx_cases.is_empty() {
        match find(&["/usr/sbin/nginx", "/usr/bin/nginx"], "nginx") {
            Some(nginx) => beside_nginx(&bench, &nginx, &repo, &blob_key, &nginx_cases),
            None => println!("SKIP: nginx not found (apt-get install nginx)"),
        }
    }
    if wanted(FLOOD_CASE) {
        flooded(&bench, &repo);
    }
}

struct Bench {
    wrk: PathBuf,
    secs: u64,
    conns: u64,
    /// The vigil-server binary to run.
    server: PathBuf,
    work: PathBuf,
}

impl Bench {
    fn header(&self) -> String {
        format!(
            "wrk -t2 -c{} -d{}s --latency, 127.0.0.1, {} CPUs shared by wrk and the server; \
             access logs off, rate limiting off on vigil-server ({})",
            self.conns,
            self.secs,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            self.server.display()
        )
    }
}

fn beside_nginx(bench: &Bench, nginx: &Path, repo: &Path, blob_key: &str, cases: &[&'static str]) {
    let mut vigil = start_vigil(&bench.server, repo);
    let mut ngx = start_nginx(nginx, &bench.work, repo);
    let servers = [("vigil-server", vigil.addr), ("nginx", ngx.addr)];

    let mut rows: Vec<Row> = Vec::new();
    for &scenario in cases {
        let path = if scenario.contains("blob") {
            blob_key
        } else {
            "/metadata/timestamp.json"
        };
        for (server, addr) in servers {
            let mut headers = Vec::new();
            if scenario == "304 revalidation" {
                let etag = etag_of(addr, path);
                assert_eq!(
                    status_of(addr, path, Some(&etag)),
                    304,
                    "{server} does not answer 304 to its own ETag"
                );
                headers.push(format!("If-None-Match: {etag}"));
            } else {
                // Warm up caches and check the server answers at all.
                assert_eq!(status_of(addr, path, None), 200, "{server} {path}");
            }
            let r = run_wrk(bench, addr, path, &headers);
            rows.push(Row {
                scenario,
                server,
                result: r,
            });
        }
    }
    vigil.stop();
    ngx.stop();

    println!("\n{}\n", bench.header());
    println!("| scenario | server | req/s | throughput MB/s | p99 latency ms | ratio vs nginx |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut verdicts = Vec::new();
    for pair in rows.chunks(2) {
        let [v, n] = pair else { continue };
        let blob = v.scenario.contains("blob");
        let ratio = if blob {
            v.result.mb_per_s / n.result.mb_per_s
        } else {
            v.result.req_per_s / n.result.req_per_s
        };
        for (row, ratio) in [(v, ratio), (n, 1.0)] {
            println!(
                "| {} | {} | {:.0} | {:.1} | {:.2} | {:.2}x |",
                row.scenario,
                row.server,
                row.result.req_per_s,
                row.result.mb_per_s,
                row.result.p99_ms,
                ratio
            );
            if !row.result.problems.is_empty() {
                println!("|  | ({}) |  |  |  |  |", row.result.problems.join("; "));
            }
        }
        let (goal, what) = if blob {
            (0.5, "throughput")
        } else {
            (0.8, "req/s")
        };
        verdicts.push(format!(
            "{}: {ratio:.2}x nginx {what} (goal >= {goal}x): {}",
            v.scenario,
            if ratio >= goal { "met" } else { "MISSED" }
        ));
    }
    println!();
    for v in verdicts {
        println!("- {v}");
    }
}

/// `timestamp.json` idle, then with the caches flooded by unique names and a flood still
/// running; one fresh server for both, so the idle numbers are its own.
fn flooded(bench: &Bench, repo: &Path) {
    let names = env_or("VIGIL_BENCH_FLOOD_NAMES", 70_000);
    let rate = env_or("VIGIL_BENCH_FLOOD_RPS", 1_000);
    let path = "/metadata/timestamp.json";
    let mut vigil = start_vigil(&bench.server, repo);
    let addr = vigil.addr;
    assert_eq!(status_of(addr, path, None), 200);

    let idle_cpu = CpuClock::start(vigil.child.id());
    let idle = run_wrk(bench, addr, path, &[]);
    let idle_cpu = idle_cpu.percent();
    let idle_rss = rss_mib(vigil.child.id());

    // Fill: as fast as the server takes them, in batches of 10k to show any slowdown.
    let mut batches = Vec::new();
    let mut next = 0;
    while next < names {
        let end = (next + 10_000).min(names);
        let t = Instant::now();
        let flood = Flood::start(addr, next, end, None);
        flood.wait();
        batches.push((end - next) as f64 / t.elapsed().as_secs_f64());
        next = end;
    }

    // Measure while new unique names keep arriving at a steady rate.
    let flood = Flood::start(addr, next, u64::MAX, Some(rate));
    let t = Instant::now();
    let cpu = CpuClock::start(vigil.child.id());
    let busy = run_wrk(bench, addr, path, &[]);
    let busy_cpu = cpu.percent();
    let sent = flood.stop();
    let flood_rate = sent as f64 / t.elapsed().as_secs_f64();
    let busy_rss = rss_mib(vigil.child.id());
    vigil.stop();

    println!("\n{}\n", bench.header());
    println!(
        "{FLOOD_CASE}: {names} unique 250-byte metadata names first (req/s per 10k: {}), then \
         more at {rate}/s during the measurement (achieved {flood_rate:.0}/s)\n",
        batches
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("| timestamp.json | req/s | p50 ms | p99 ms | server CPU | server RSS MiB |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, r, cpu, rss) in [
        ("idle", &idle, idle_cpu, idle_rss),
        ("cache flooded", &busy, busy_cpu, busy_rss),
    ] {
        println!(
            "| {label} | {:.0} | {:.2} | {:.2} | {cpu:.0}% | {rss:.0} |",
            r.req_per_s, r.p50_ms, r.p99_ms
        );
        if !r.problems.is_empty() {
            println!("| ({}) |  |  |  |  |  |", r.problems.join("; "));
        }
    }
    let slower = [
        idle.req_per_s / busy.req_per_s,
        busy.p50_ms / idle.p50_ms,
        busy.p99_ms / idle.p99_ms,
    ];
    println!(
        "| flooded vs idle | {:.2}x slower | {:.2}x | {:.2}x |  |  |",
        slower[0], slower[1], slower[2]
    );
    let worst = slower.iter().copied().fold(0.0, f64::max);
    println!(
        "\n- {FLOOD_CASE}: worst {worst:.2}x of idle (goal <= 2x): {}",
        if worst <= 2.0 { "met" } else { "MISSED" }
    );
}

/// Requests for unique 250-byte names `/metadata/f000…<i>`, `first..end`, on four keep-alive
/// connections, as fast as answered or at `rate` per second in all.
struct Flood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Flood {
    const CONNECTIONS: u64 = 4;

    fn start(addr: SocketAddr, first: u64, end: u64, rate: Option<u64>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(first));
        let gap = rate.map(|r| Duration::from_secs_f64(Self::CONNECTIONS as f64 / r as f64));
        let threads = (0..Self::CONNECTIONS)
            .map(|_| {
                let (stop, sent, next) = (stop.clone(), sent.clone(), next.clone());
                std::thread::spawn(move || {
                    let mut conn = KeepAlive::connect(addr);
                    let mut due = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= end {
                            break;
                        }
                        if let Some(gap) = gap {
                            due += gap;
                            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                        }
                        let status = conn.get(&format!("/metadata/f{i:0>240}"));
                        assert_eq!(status, 404, "a flood name was found");
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Self {
            stop,
            sent,
            threads,
        }
    }

    fn wait(self) -> u64 {
        for t in self.threads {
            t.join().unwrap();
        }
        self.sent.load(Ordering::Relaxed)
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.wait()
    }
}

/// A minimal HTTP/1.1 client on one connection, for answers with a Content-Length.
struct KeepAlive {
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        Self {
            reader: BufReader::new(s),
        }
    }

    fn get(&mut self, path: &str) -> u16 {
        write!(
            self.reader.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        .unwrap();
        let mut status = 0;
        let mut len = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            assert!(self.reader.read_line(&mut line).unwrap() > 0, "closed");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if status == 0 {
                status = l
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
            } else if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).unwrap();
        status
    }
}

/// CPU time of a process over an interval, as a percentage of one CPU.
struct CpuClock {
    pid: u32,
    ticks: u64,
    at: Instant,
}

impl CpuClock {
    fn start(pid: u32) -> Self {
        Self {
            pid,
            ticks: cpu_ticks(pid),
            at: Instant::now(),
        }
    }

    fn percent(self) -> f64 {
        // USER_HZ is 100 on every Linux target that matters here.
        let secs = (cpu_ticks(self.pid) - self.ticks) as f64 / 100.0;
        100.0 * secs / self.at.elapsed().as_secs_f64()
    }
}

/// utime + stime from /proc/PID/stat (fields 14 and 15, after the parenthesised name).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Row {
    scenario: &'static str,
    server: &'static str,
    result: WrkResult,
}

#[derive(Debug, Default)]
struct WrkResult {
    req_per_s: f64,
    mb_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    problems: Vec<String>,
}

fn find(paths: &[&str], name: &str) -> Option<PathBuf> {
    if let Some(p) = paths.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn noise(len: usize, mut x: u64) -> Vec<u8> {
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

/// A ~1 KB timestamp.json and a 2 MB random blob named after its SHA-256.
fn build_repo(repo: &Path) -> String {
    std::fs::create_dir_all(repo.join("metadata")).unwrap();
    std::fs::create_dir_all(repo.join("targets")).unwrap();
    let sig = hex::encode(noise(64, 7));
    let snap = hex::encode(noise(32, 8));
    let timestamp = format!(
        "{{\"signatures\":[{{\"keyid\":\"{}\",\"sig\":\"{sig}\"}}],\"signed\":{{\"_type\":\
         \"timestamp\",\"expires\":\"2031-01-01T00:00:00Z\",\"meta\":{{\"snapshot.json\":\
         {{\"hashes\":{{\"sha256\":\"{snap}\"}},\"length\":1234,\"version\":42}}}},\
         \"spec_version\":\"1.0.0\",\"version\":42,\"padding\":\"{}\"}}}}",
        hex::encode(noise(32, 9)),
        "x".repeat(560)
    );
    std::fs::write(repo.join("metadata/timestamp.json"), &timestamp).unwrap();
    let blob = noise(2 << 20, 10);
    let key = format!(
        "/targets/{}.vigil-1.vdb",
        hex::encode(Sha256::digest(&blob))
    );
    std::fs::write(repo.join(&key[1..]), &blob).unwrap();
    key
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start_vigil(bin: &Path, repo: &Path) -> Server {
    let mut child = Command::new(bin)
        .args(["--repo", repo.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--no-access-log"])
        .args(["--rate-limit", "0", "--rate-burst", "0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting vigil-server");
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("vigil-server exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split([' ', ',']).next().unwrap().parse().unwrap();
        }
    };
    // Keep draining stdout so the server never blocks on logging.
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
}

fn start_nginx(nginx: &Path, work: &Path, repo: &Path) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = work.join("nginx");
    std::fs::create_dir_all(&tmp).unwrap();
    let t = tmp.display();
    // As root nginx would switch its workers to `nobody`; keep them as the current user so
    // they can read the repository wherever the target directory is.
    let user = if running_as_root() {
        "user root root;"
    } else {
        ""
    };
    let conf = format!(
        "{user}
daemon off;
master_process on;
worker_processes 2;
error_log stderr;
pid {t}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    types {{ application/json json; }}
    default_type application/octet-stream;
    client_body_temp_path {t}/client_body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {};
        etag on;
    }}
}}
",
        repo.display()
    );
    let conf_path = tmp.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(nginx)
        .args(["-e", "stderr", "-p"])
        .arg(&tmp)
        .arg("-c")
        .arg(&conf_path)
        .spawn()
        .expect("starting nginx");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { child, addr }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// One HTTP/1.0 request; returns the status line's code and the headers.
fn request(addr: SocketAddr, path: &str, inm: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let extra = inm.map_or(String::new(), |e| format!("If-None-Match: {e}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n{extra}\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(resp.len());
    let head = String::from_utf8_lossy(&resp[..end]).to_string();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head)
}

fn status_of(addr: SocketAddr, path: &str, inm: Option<&str>) -> u16 {
    request(addr, path, inm).0
}

fn etag_of(addr: SocketAddr, path: &str) -> String {
    let (_, head) = request(addr, path, None);
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("etag").then(|| v.trim().to_owned())
        })
        .expect("no ETag")
}

fn run_wrk(bench: &Bench, addr: SocketAddr, path: &str, headers: &[String]) -> WrkResult {
    let mut cmd = Command::new(&bench.wrk);
    cmd.args([
        "-t2",
        &format!("-c{}", bench.conns),
        &format!("-d{}s", bench.secs),
        "--latency",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd.arg(format!("http://{addr}{path}"));
    let out = cmd.output().expect("running wrk");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    parse_wrk(&text)
}

/// Reads `Requests/sec:`, `Transfer/sec:` and the 50% and 99% lines of `--latency`, and notes
/// socket errors and non-2xx/3xx answers, which would make a fast number meaningless.
fn parse_wrk(text: &str) -> WrkResult {
    let mut r = WrkResult::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            r.req_per_s = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("Transfer/sec:") {
            r.mb_per_s = bytes(v.trim()) / 1e6;
        } else if let Some(v) = line.strip_prefix("50%") {
            r.p50_ms = millis(v.trim());
        } else if let Some(v) = line.strip_prefix("99%") {
            r.p99_ms = millis(v.trim());
        } else if line.starts_with("Socket errors") || line.starts_with("Non-2xx") {
            r.problems.push(line.to_owned());
        }
    }
    if r.req_per_s == 0.0 {
        r.problems.push(format!("unparsed wrk output: {text}"));
    }
    r
}

/// wrk's binary units: `12.34MB` is 12.34 MiB.
fn bytes(v: &str) -> f64 {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().unwrap_or(0.0);
    n * match unit {
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    }
}

fn millis(v: &str) -> f64 {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().unwrap_or(0.0);
    n * match unit {
        "us" => 0.001,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => 1.0,
    }
}
