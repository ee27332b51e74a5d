//! The scan service against hostile local users (issue 18): files truncated mid-scan, FIFOs
//! swapped in between check and open, clients that trickle their requests or take every
//! connection, and the socket's group. (A peer asking for files it cannot read goes through
//! `vigil-scan --daemon`: programs/vigil-scan/tests/hostile.rs.)
//!
//! Run as root, the socket test gives the socket another user's group; otherwise its own.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_agent::service::{bind, serve, ServiceConfig, ServiceError};
use vigil_scan_core::{Engine, SharedEngine};
use vigil_tests::hostile::{big_file, truncate_when_opened, FifoSwapper};
use vigil_tests::rules::{repo_root as root, starter_db, test_key as key};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A temporary directory that other users may enter (tempdir makes them 0700).
fn open_tempdir() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    t
}

/// The scan service on a socket anyone may connect to, stopped when dropped.
struct Service {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), ServiceError>>>,
}

impl Service {
    fn start(dir: &Path, engine: Engine, cfg: ServiceConfig) -> Self {
        let socket = dir.join("vigil.sock");
        let listener = bind(&socket, 0o666, None).expect("bind");
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(SharedEngine::new(engine));
        let st = stop.clone();
        let thread = std::thread::spawn(move || serve(listener, shared, cfg, st));
        Self {
            socket,
            stop,
            thread: Some(thread),
        }
    }

    fn connect(&self) -> BufReader<UnixStream> {
        let s = UnixStream::connect(&self.socket).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        BufReader::new(s)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn send(conn: &mut BufReader<UnixStream>, line: &str) {
    let w = conn.get_mut();
    w.write_all(line.as_bytes()).unwrap();
    w.write_all(b"\n").unwrap();
}

/// Reads reply lines up to and including the `done` line (or an error line).
fn replies(conn: &mut BufReader<UnixStream>) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let mut line = String::new();
        let n = conn.read_line(&mut line).expect("reply");
        assert!(n > 0, "connection closed after {out:?}");
        let v: Value = serde_json::from_str(&line).unwrap();
        let last = v.get("done").is_some() || v.get("error").is_some() && v.get("path").is_none();
        out.push(v);
        if last {
            return out;
        }
    }
}

fn scan_request(paths: &[&Path], recursive: bool) -> String {
    serde_json::json!({"cmd": "scan", "paths": paths, "recursive": recursive}).to_string()
}

/// What a scan of a file truncated under it may say: scanned as it was at open (the read
/// finished first), or an error that says it changed. Never a crash.
/// Returns whether it was the error.
fn assert_truncation_result(status: &str, error: &str) -> bool {
    assert!(
        status == "ok" || status == "error" && error.contains("changed while being read"),
        "{status}: {error}"
    );
    status == "error"
}

// ---- Finding 1: SIGBUS from a file truncated while it is scanned ----

#[test]
fn service_survives_a_file_truncated_mid_scan() {
    let t = open_tempdir();
    let svc = Service::start(
        t.path(),
        Engine::load(&starter_db(), &[key().public()]).unwrap(),
        ServiceConfig::default(),
    );
    let mut errors = 0;
    for delay_ms in [0, 20, 150] {
        let big = big_file(t.path());
        let watcher = truncate_when_opened(&big, Duration::from_millis(delay_ms));
        let mut c = svc.connect();
        send(&mut c, &scan_request(&[&big], false));
        let r = replies(&mut c);
        assert!(watcher.done(), "the scan never opened the file");
        assert_eq!(r.len(), 2, "{r:?}");
        errors += usize::from(assert_truncation_result(
            r[0]["status"].as_str().unwrap(),
            r[0]["error"].as_str().unwrap_or(""),
        ));
        assert_eq!(r[1]["done"], true);
    }
    // Truncated at the open, the file shrinks while it is copied: that run reports it.
    assert!(errors >= 1, "no run saw the file change");
    // Alive and scanning.
    let mut c = svc.connect();
    send(
        &mut c,
        &scan_request(&[&root().join("samples/webshell.php")], false),
    );
    assert_eq!(replies(&mut c)[0]["status"], "found");
}

// ---- Finding 2: a FIFO swapped in between the walk's check and the open ----

#[test]
fn fifo_swap_race_never_blocks_a_scan() {
    let t = open_tempdir();
    let svc = Service::start(
        t.path(),
        Engine::load(&starter_db(), &[key().public()]).unwrap(),
        ServiceConfig {
            threads: 2,
            ..ServiceConfig::default()
        },
    );
    let swapper = FifoSwapper::start(t.path(), 2000);
    let links = swapper.links().to_path_buf();
    for round in 0..5 {
        let mut c = svc.connect();
        // Bounded: a thread blocked in a FIFO open would leave this read waiting; the reply
        // must come well within the client's timeout.
        c.get_ref()
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        send(&mut c, &scan_request(&[&links], false));
        let r = replies(&mut c);
        let done = r.last().unwrap();
        assert_eq!(done["done"], true, "round {round}: {done}");
        assert_eq!(r.len(), 2001, "round {round}: one line per link and done");
        for line in &r[..2000] {
            let status = line["status"].as_str().unwrap();
            assert!(status == "ok" || status == "skipped", "{line}");
        }
    }
    assert!(swapper.stop() > 0, "the swapper never swapped");
}

// ---- Finding 8: slow clients and per-user connection caps ----

#[test]
fn a_trickling_client_is_cut_at_the_request_deadline() {
    let t = open_tempdir();
    let svc = Service::start(
        t.path(),
        Engine::load(&starter_db(), &[key().public()]).unwrap(),
        ServiceConfig {
            max_connections: 1,
            request_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(60),
            ..ServiceConfig::default()
        },
    );
    // A request line trickled byte by byte, and a stream whose header comes at once and whose
    // body trickles: each read is quick, the request never completes in time.
    let cases: [(&[u8], &'static [u8]); 2] = [
        (b"", b"{\"cmd\":\"ping\"}\n"),
        (b"{\"cmd\":\"stream\",\"len\":100}\n", b"abcdefghij"),
    ];
    for (prefix, trickled) in cases {
        let mut slow = svc.connect();
        let started = Instant::now();
        let mut writer = slow.get_ref().try_clone().unwrap();
        writer.write_all(prefix).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let c2 = cut.clone();
        let trickle = std::thread::spawn(move || {
            for b in trickled.iter().cycle() {
                if c2.load(Ordering::SeqCst) || writer.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        let mut all = String::new();
        let _ = slow.read_to_string(&mut all);
        cut.store(true, Ordering::SeqCst);
        let took = started.elapsed();
        trickle.join().unwrap();
        assert!(took < Duration::from_secs(15), "held for {took:?}: {all}");
        assert!(all.contains("\"error\""), "{all}");
        // The slot is free again (the count drops just after the hang-up).
        ping_soon(&svc);
    }
}

/// Pings until a connection is served rather than refused as busy, for up to 10 s.
fn ping_soon(svc: &Service) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = svc.connect();
        send(&mut c, "{\"cmd\":\"ping\"}");
        let mut line = String::new();
        let _ = c.read_line(&mut line);
        if line.trim() == "{\"pong\":true}" {
            return;
        }
        assert!(Instant::now() < deadline, "slot never freed: {line}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_user_cannot_take_every_slot() {
    let t = open_tempdir();
    let svc = Service::start(
        t.path(),
        Engine::load(&starter_db(), &[key().public()]).unwrap(),
        ServiceConfig {
            max_connections: 16,
            max_connections_per_uid: 2,
            ..ServiceConfig::default()
        },
    );
    let ping = |c: &mut BufReader<UnixStream>| {
        send(c, "{\"cmd\":\"ping\"}");
        let mut line = String::new();
        c.read_line(&mut line).unwrap();
        line
    };
    let mut a = svc.connect();
    let mut b = svc.connect();
    assert!(ping(&mut a).contains("pong"));
    assert!(ping(&mut b).contains("pong"));
    let mut third = svc.connect();
    let mut line = String::new();
    third.read_line(&mut line).unwrap();
    assert!(
        line.contains("too many connections from this user"),
        "{line}"
    );
    drop(a);
    ping_soon(&svc);
    drop(b);
}

#[test]
fn socket_takes_its_group() {
    use std::os::unix::fs::MetadataExt;
    let t = open_tempdir();
    // Root may give the socket any group; another user only one of its own.
    let gid = if is_root() {
        NOBODY
    } else {
        rustix::process::getegid().as_raw()
    };
    let path = t.path().join("g.sock");
    let _l = bind(&path, 0o660, Some(gid)).unwrap();
    let m = fs::metadata(&path).unwrap();
    assert_eq!((m.gid(), m.mode() & 0o777), (gid, 0o660));
}
