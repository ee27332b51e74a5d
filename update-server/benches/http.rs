//! vigil-server beside nginx, measured with wrk, on the same repository directory.
//!
//! ```sh
//! cargo bench -p vigil-update-server --bench http      # builds the release vigil-server too
//! ```
//!
//! Needs `nginx` and `wrk` (Debian packages of the same names); without them it says SKIP and
//! exits 0. Both servers run with access logging off; vigil-server also without rate limiting
//! and with its default caches. Scenarios: a ~1 KB `timestamp.json`, its revalidation (each
//! server's own ETag in If-None-Match, so every answer is a 304), and a 2 MB blob.
//! `VIGIL_BENCH_SECS` (default 10) and `VIGIL_BENCH_CONNECTIONS` (default 32) tune wrk.
//! Prints a markdown table and whether the goals hold: at least 0.8x nginx's requests/s on the
//! metadata GET and the 304, at least 0.5x its throughput on the blob.

// A bench is a harness: a setup step that fails should stop it loudly, as in a test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_vigil-server");

fn main() {
    let Some(nginx) = find(&["/usr/sbin/nginx", "/usr/bin/nginx"], "nginx") else {
        println!("SKIP: nginx not found (apt-get install nginx)");
        return;
    };
    let Some(wrk) = find(&["/usr/bin/wrk", "/usr/local/bin/wrk"], "wrk") else {
        println!("SKIP: wrk not found (apt-get install wrk)");
        return;
    };
    let secs: u64 = env_or("VIGIL_BENCH_SECS", 10);
    let conns: u64 = env_or("VIGIL_BENCH_CONNECTIONS", 32);

    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-server");
    let _ = std::fs::remove_dir_all(&work);
    let repo = work.join("repo");
    let blob_key = build_repo(&repo);

    let mut vigil = start_vigil(&repo);
    let mut ngx = start_nginx(&nginx, &work, &repo);
    let servers = [("vigil-server", vigil.addr), ("nginx", ngx.addr)];

    let mut rows: Vec<Row> = Vec::new();
    for (scenario, path) in [
        ("metadata GET", "/metadata/timestamp.json"),
        ("304 revalidation", "/metadata/timestamp.json"),
        ("2 MB blob GET", blob_key.as_str()),
    ] {
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
            let r = run_wrk(&wrk, addr, path, &headers, secs, conns);
            rows.push(Row {
                scenario,
                server,
                result: r,
            });
        }
    }
    vigil.stop();
    ngx.stop();

    println!(
        "\nwrk -t2 -c{conns} -d{secs}s --latency, 127.0.0.1, {} CPUs shared by wrk and the server; \
         access logs off on both, rate limiting off on vigil-server\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
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

struct Row {
    scenario: &'static str,
    server: &'static str,
    result: WrkResult,
}

#[derive(Debug, Default)]
struct WrkResult {
    req_per_s: f64,
    mb_per_s: f64,
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

fn start_vigil(repo: &Path) -> Server {
    let mut child = Command::new(BIN)
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

fn run_wrk(
    wrk: &Path,
    addr: SocketAddr,
    path: &str,
    headers: &[String],
    secs: u64,
    conns: u64,
) -> WrkResult {
    let mut cmd = Command::new(wrk);
    cmd.args([
        "-t2",
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
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

/// Reads `Requests/sec:`, `Transfer/sec:` and the 99% line of `--latency`, and notes socket
/// errors and non-2xx/3xx answers, which would make a fast number meaningless.
fn parse_wrk(text: &str) -> WrkResult {
    let mut r = WrkResult::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            r.req_per_s = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("Transfer/sec:") {
            r.mb_per_s = bytes(v.trim()) / 1e6;
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
