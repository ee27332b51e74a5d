//! What slow, idle and greedy clients can hold, against the real binary on 127.0.0.1 with short
//! limits set by flag or config file, over raw sockets: a client that trickles its headers is
//! dropped after the header-read timeout while others are served; past the connection cap new
//! connections wait without disturbing those in flight; a download that keeps moving outlives
//! the request timeout, one whose reader stopped does not.
//!
//! Timing: every limit is a second or more and every wait for the server to act allows several
//! times that, so a loaded machine makes the tests slower, not wrong. Waits that must see
//! nothing happen are bounded below by the server's own timers, which never fire early.

// The helpers below are test code too; clippy.toml's allow-unwrap-in-tests covers only the
// #[test] functions themselves.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{repo_with_blob, spawn_server, Repo, Server};

/// Flags every test passes: no rate limit (the tests make many requests from one address), no
/// access log.
fn base_args(r: &Repo) -> Vec<String> {
    [
        "--repo",
        r.root.to_str().unwrap(),
        "--rate-limit",
        "0",
        "--no-access-log",
    ]
    .map(String::from)
    .to_vec()
}

fn start(r: &Repo, extra: &[&str]) -> Server {
    let mut args = base_args(r);
    args.extend(extra.iter().map(|a| a.to_string()));
    spawn_server(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn get_request(path: &str, close: bool) -> String {
    let conn = if close { "close" } else { "keep-alive" };
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: {conn}\r\n\r\n")
}

/// A fresh connection with a request sent on it.
fn send(addr: SocketAddr, path: &str, close: bool) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(get_request(path, close).as_bytes()).unwrap();
    s
}

/// The status and body of a `Connection: close` response read to its end.
fn read_all(s: &mut TcpStream, within: Duration) -> (u16, Vec<u8>) {
    s.set_read_timeout(Some(within)).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    split_response(&all)
}

fn split_response(all: &[u8]) -> (u16, Vec<u8>) {
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(all)))
        + 4;
    let head = String::from_utf8_lossy(&all[..split]);
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, all[split..].to_vec())
}

/// One keep-alive GET answered with a Content-Length; the connection stays open.
fn keep_alive_get(s: &mut TcpStream, path: &str) -> (u16, Vec<u8>) {
    s.write_all(get_request(path, false).as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed mid-head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body)
}

/// Whether the server closed `s` (EOF or reset) within `within`, reading and discarding
/// whatever it sent first; `Err` with the bytes seen if it was still open.
fn closed_within(s: &mut TcpStream, within: Duration) -> Result<Vec<u8>, Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 64 << 10];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(seen);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Ok(seen),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(seen)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Reset or broken: closed.
            Err(_) => return Ok(seen),
        }
    }
}

/// The value of one line of /metrics.
fn metric(addr: SocketAddr, name: &str) -> u64 {
    let mut s = send(addr, "/metrics", true);
    let (status, body) = read_all(&mut s, Duration::from_secs(20));
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn a_client_trickling_its_headers_is_dropped_while_others_are_served() {
    let r = repo_with_blob(1000);
    let srv = start(&r, &["--header-read-timeout", "1"]);
    let addr = srv.addr;

    // A request head one byte every 150 ms, never finished: 8 s of trickle if nobody stops it.
    let trickler = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let mut reader = s.try_clone().unwrap();
        let start = Instant::now();
        let watcher = std::thread::spawn(move || {
            let closed = closed_within(&mut reader, Duration::from_secs(30));
            (closed, start.elapsed())
        });
        for b in b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\n" {
            if s.write_all(&[*b]).is_err() {
                break; // the server closed it
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        let trickle_ended = start.elapsed();
        let (closed, at) = watcher.join().unwrap();
        (closed, at, trickle_ended)
    });
    // A client that sends nothing at all is no better off.
    let mut silent = TcpStream::connect(addr).unwrap();
    let silent_start = Instant::now();

    // Meanwhile normal clients are served, on fresh and keep-alive connections.
    std::thread::sleep(Duration::from_millis(300));
    let mut s = send(addr, "/metadata/timestamp.json", true);
    let (status, body) = read_all(&mut s, Duration::from_secs(20));
    assert_eq!(status, 200);
    assert_eq!(body, r.timestamp);
    let mut keep = TcpStream::connect(addr).unwrap();
    for _ in 0..3 {
        let (status, body) = keep_alive_get(&mut keep, "/metadata/timestamp.json");
        assert_eq!(status, 200);
        assert_eq!(body, r.timestamp);
    }

    let silent_closed = closed_within(&mut silent, Duration::from_secs(30));
    let silent_at = silent_start.elapsed();
    assert_eq!(silent_closed, Ok(vec![]), "a silent connection stayed open");
    // Never before the timeout (the server's clock starts after our connect returned).
    assert!(silent_at >= Duration::from_millis(500), "{silent_at:?}");

    let (closed, at, trickle_ended) = trickler.join().unwrap();
    let seen = closed.expect("the trickling client was never dropped");
    assert!(
        !String::from_utf8_lossy(&seen).contains(" 200 "),
        "the trickled request was answered"
    );
    // Dropped after the timeout, and well before it finished trickling.
    assert!(at >= Duration::from_millis(500), "dropped at {at:?}");
    assert!(
        at < trickle_ended,
        "dropped at {at:?}, after the trickle ({trickle_ended:?})"
    );
    assert!(
        metric(
            addr,
            "vigil_connections_dropped_total{reason=\"header_timeout\"}"
        ) >= 2
    );
}

#[test]
fn an_idle_keep_alive_connection_gives_its_slot_back() {
    let r = repo_with_blob(1000);
    let srv = start(
        &r,
        &["--max-connections", "1", "--header-read-timeout", "2"],
    );
    let addr = srv.addr;
    let mut idle = TcpStream::connect(addr).unwrap();
    let (status, _) = keep_alive_get(&mut idle, "/metadata/timestamp.json");
    assert_eq!(status, 200);
    let idle_since = Instant::now();

    // The one slot is held by the idle connection: the next one waits in the backlog...
    let mut next = send(addr, "/metadata/timestamp.json", true);
    next.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = next.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "served beside an idle connection at the cap: {early:?}"
    );
    // ...until the header-read timeout closes the idle one.
    let (status, body) = read_all(&mut next, Duration::from_secs(30));
    assert_eq!(status, 200);
    assert_eq!(body, r.timestamp);
    assert!(idle_since.elapsed() >= Duration::from_secs(1));
    assert_eq!(closed_within(&mut idle, Duration::from_secs(5)), Ok(vec![]));
}

#[test]
fn past_the_connection_cap_new_connections_wait_and_those_in_flight_finish() {
    // Larger than the kernel's socket buffers on both sides, so a download whose reader pauses
    // is still in flight on the server.
    let r = repo_with_blob(32 << 20);
    let config = r.root.parent().unwrap().join("server.toml");
    std::fs::write(&config, "max_connections = 2\n").unwrap();
    let srv = start(&r, &["--config", config.to_str().unwrap()]);
    let addr = srv.addr;
    let path = format!("/{}", r.blob_key);

    // Two downloads in flight: their heads and first bytes arrived, the rest waits on us.
    let mut downloads: Vec<(TcpStream, Vec<u8>)> = (0..2)
        .map(|_| {
            let mut s = send(addr, &path, true);
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut first = vec![0u8; 64 << 10];
            let n = s.read(&mut first).unwrap();
            assert!(n > 0);
            first.truncate(n);
            (s, first)
        })
        .collect();

    // A third connection is not refused (it waits in the listen backlog) and is not served.
    let mut waiting = send(addr, "/metadata/timestamp.json", true);
    waiting
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = waiting.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "a third connection was served at a cap of 2: {early:?}"
    );

    // The first download completes, whole; its connection closes and frees a slot...
    let (mut s, mut all) = downloads.remove(0);
    s.read_to_end(&mut all).unwrap();
    let (status, body) = split_response(&all);
    assert_eq!(status, 200);
    assert!(body == r.blob, "first download incomplete or wrong");
    drop(s);

    // ...which the waiting connection gets.
    let (status, body) = read_all(&mut waiting, Duration::from_secs(20));
    assert_eq!(status, 200);
    assert_eq!(body, r.timestamp);

    // The second download was in flight all along and completes too.
    let (mut s, mut all) = downloads.remove(0);
    s.read_to_end(&mut all).unwrap();
    let (status, body) = split_response(&all);
    assert_eq!(status, 200);
    assert!(body == r.blob, "second download incomplete or wrong");
}

#[test]
fn a_slow_download_outlives_the_request_timeout_and_a_stopped_one_is_cut() {
    const TIMEOUT_SECS: u64 = 2;
    // Far more than the socket buffers hold (a few MiB each side), so the server waits on the
    // reader for most of the download.
    let r = repo_with_blob(48 << 20);
    let srv = start(&r, &["--request-timeout", &TIMEOUT_SECS.to_string()]);
    let addr = srv.addr;
    let timeout = Duration::from_secs(TIMEOUT_SECS);
    let path = format!("/{}", r.blob_key);

    // The stopped reader: takes the head and a little, then nothing.
    let mut stopped = send(addr, &path, true);
    stopped
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut first = vec![0u8; 64 << 10];
    let n = stopped.read(&mut first).unwrap();
    assert!(n > 0);
    first.truncate(n);
    let stopped_at = Instant::now();

    // The slow reader, at a steady 6 MB/s: the download takes about 8 s, four times the
    // timeout, while the server never waits long for it to take bytes (it is woken each time
    // about half its send buffer drains, a fraction of a second). Paced by the clock, not by
    // fixed sleeps, so a loaded machine cannot make it slower than the pace.
    let rate = 6_000_000.0;
    let mut slow = send(addr, &path, true);
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let start = Instant::now();
    let mut all = Vec::with_capacity(r.blob.len() + 1024);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let due = Duration::from_secs_f64(all.len() as f64 / rate);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let n = slow.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    let took = start.elapsed();
    let (status, body) = split_response(&all);
    assert_eq!(status, 200);
    assert!(
        body.len() == r.blob.len() && body == r.blob,
        "slow download cut or wrong: {} of {} bytes after {took:?}",
        body.len(),
        r.blob.len()
    );
    assert!(
        took > timeout * 2,
        "not slow enough to prove anything: {took:?}"
    );

    // By now (8 s after it stopped, four timeouts) the stopped reader has been cut: what is
    // left is what sat in the socket buffers, then the end.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(
        addr,
        "vigil_connections_dropped_total{reason=\"client_stalled\"}",
    ) < 1
    {
        assert!(
            Instant::now() < deadline,
            "the stopped reader was not cut {:?} after it stopped",
            stopped_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rest = closed_within(&mut stopped, Duration::from_secs(30))
        .unwrap_or_else(|seen| panic!("still open after {} more bytes", seen.len()));
    assert!(
        first.len() + rest.len() < r.blob.len(),
        "the stopped reader got the whole blob"
    );
}
