//! The scan service over a real Unix socket: the protocol, bad and oversized requests, the
//! connection limit, streams, a stop, and hot swap while clients scan. (`vigil-scan --daemon`
//! against local mode is in programs/vigil-scan/tests/daemon.rs.)
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use vigil_agent::service::{bind, run, serve, ServiceConfig, ServiceError};
use vigil_scan_core::service::{Client, ClientError, FileResult, ScanOptions, Status};
use vigil_scan_core::{Engine, Limits, SharedEngine, ENGINE_VERSION};
use vigil_tests::rules::{db_from, repo_root as root, test_key as key};

const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const EICAR_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

fn engine(db: &[u8]) -> Engine {
    Engine::load(db, &[key().public()]).expect("load")
}

/// A service on a socket in its own temporary directory, stopped when dropped.
struct Server {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    shared: Arc<SharedEngine>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), ServiceError>>>,
}

impl Server {
    fn start(engine: Engine, cfg: ServiceConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("vigil.sock");
        let listener = bind(&socket, 0o600, None).expect("bind");
        let shared = Arc::new(SharedEngine::new(engine));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || serve(listener, s, cfg, st));
        Self {
            _dir: dir,
            socket,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    fn client(&self) -> Client {
        Client::connect(&self.socket).expect("connect")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn cfg(threads: usize) -> ServiceConfig {
    ServiceConfig {
        threads,
        ..ServiceConfig::default()
    }
}

/// Sends raw `line` bytes and a newline, and reads one reply line as JSON.
fn raw(conn: &mut BufReader<UnixStream>, line: &[u8]) -> Value {
    let w = conn.get_mut();
    w.write_all(line).expect("write");
    w.write_all(b"\n").expect("write");
    read_json(conn)
}

fn read_json(conn: &mut BufReader<UnixStream>) -> Value {
    let mut reply = String::new();
    conn.read_line(&mut reply).expect("read");
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
}

fn raw_conn(socket: &Path) -> BufReader<UnixStream> {
    let s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    BufReader::new(s)
}

/// A tree: sub/eicar.com, clean.txt, a FIFO.
fn tree(dir: &Path) -> PathBuf {
    let t = dir.join("tree");
    std::fs::create_dir_all(t.join("sub")).expect("mkdir");
    std::fs::write(t.join("sub/eicar.com"), EICAR).expect("write");
    std::fs::write(t.join("clean.txt"), b"hello\n").expect("write");
    let fifo = t.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    t
}

fn scan_all(client: &mut Client, paths: &[PathBuf], opts: &ScanOptions) -> (Vec<FileResult>, u64) {
    let mut results = Vec::new();
    let done = client
        .scan_with(paths, opts, |r| results.push(r))
        .expect("scan");
    results.sort_by(|a, b| a.path.cmp(&b.path));
    (results, done.db_version)
}

#[test]
fn ping_version_and_scans() {
    let db = db_from(&root().join("rules-src"), 9);
    let server = Server::start(engine(&db), cfg(2));
    let mode = std::fs::metadata(&server.socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let mut c = server.client();
    c.ping().expect("ping");
    let v = c.version().expect("version");
    assert_eq!(v.db_version, 9);
    assert_eq!(v.engine_version, ENGINE_VERSION);
    assert_eq!(v.db_sha256, hex::encode(Sha256::digest(&db)));
    assert!(v.signatures.yara > 0 && v.signatures.body > 0 && v.signatures.hash > 0);
    assert_eq!(v.max_filesize, Limits::default().max_filesize);

    let t = tempfile::tempdir().expect("tempdir");
    let tree = tree(t.path());
    let mut results = Vec::new();
    let done = c
        .scan(std::slice::from_ref(&tree), true, |r| results.push(r))
        .expect("scan");
    results.sort_by(|a, b| a.path.cmp(&b.path));
    let got: Vec<(String, Status)> = results.iter().map(|r| (r.path.clone(), r.status)).collect();
    let p = |s: &str| tree.join(s).display().to_string();
    assert_eq!(
        got,
        [
            (p("clean.txt"), Status::Ok),
            (p("fifo"), Status::Skipped),
            (p("sub/eicar.com"), Status::Found),
        ]
    );
    let eicar = &results[2];
    let mut sigs: Vec<&str> = eicar
        .findings
        .iter()
        .map(|f| f.signature.as_str())
        .collect();
    sigs.sort();
    assert_eq!(
        sigs,
        [
            "Multi.Test.Eicar-Body",
            "Multi.Test.Eicar-MD5",
            "Multi.Test.Eicar-SHA256"
        ]
    );
    assert_eq!(eicar.sha256.as_deref(), Some(EICAR_SHA256));
    assert_eq!(eicar.size, EICAR.len() as u64);
    assert_eq!(results[1].error.as_deref(), Some("not a regular file"));
    assert!(results.iter().all(|r| r.db_version == 9));
    assert_eq!(
        (
            done.db_version,
            done.scanned,
            done.infected,
            done.skipped,
            done.errors
        ),
        (9, 2, 1, 1, 0)
    );
    assert_eq!(done.bytes, EICAR.len() as u64 + 6);
    assert_eq!(done.signatures, v.signatures);

    // Not recursive: the subdirectory is not entered. Excluded: not scanned, not reported.
    let (flat, _) = scan_all(&mut c, std::slice::from_ref(&tree), &ScanOptions::default());
    assert!(flat.iter().all(|r| r.status != Status::Found), "{flat:?}");
    let opts = ScanOptions {
        recursive: true,
        exclude: vec![tree.join("sub"), tree.join("fifo")],
        ..ScanOptions::default()
    };
    let (ex, _) = scan_all(&mut c, std::slice::from_ref(&tree), &opts);
    assert_eq!(ex.len(), 1, "{ex:?}");
    assert_eq!(ex[0].path, p("clean.txt"));

    // A file named directly, a missing one (error), and the request's lower size limit.
    let missing = t.path().join("missing");
    let (r, _) = scan_all(
        &mut c,
        &[tree.join("sub/eicar.com"), missing.clone()],
        &ScanOptions {
            max_filesize: Some(10),
            ..ScanOptions::default()
        },
    );
    assert_eq!(r[0].path, missing.display().to_string());
    assert_eq!(r[0].status, Status::Error);
    assert!(r[0].error.as_deref().unwrap().contains("No such file"));
    assert_eq!(r[1].status, Status::Skipped);
    assert_eq!(
        r[1].error.as_deref(),
        Some("size limit exceeded (68 > 10 bytes)")
    );
    // A request cannot raise the service's limit.
    let (r, _) = scan_all(
        &mut c,
        &[tree.join("sub/eicar.com")],
        &ScanOptions {
            max_filesize: Some(u64::MAX),
            ..ScanOptions::default()
        },
    );
    assert_eq!(r[0].status, Status::Found);

    // Relative paths are refused, and the connection goes on.
    let e = c
        .scan(&[PathBuf::from("tree")], false, |_| {})
        .expect_err("relative");
    assert!(
        matches!(&e, ClientError::Server(m) if m.contains("absolute")),
        "{e}"
    );
    c.ping().expect("still usable");
}

#[test]
fn bind_replaces_only_dead_sockets() {
    let t = tempfile::tempdir().expect("tempdir");
    let path = t.path().join("s.sock");
    // Stale: a socket file nobody listens on any more.
    drop(UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let live = bind(&path, 0o660, None).expect("stale socket replaced");
    assert_eq!(
        std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
        0o660
    );
    // Live: refused, and the live socket still answers.
    assert!(matches!(
        bind(&path, 0o660, None),
        Err(ServiceError::InUse { .. })
    ));
    UnixStream::connect(&path).expect("still listening");
    drop(live);
    // Not a socket: never removed.
    let file = t.path().join("file");
    std::fs::write(&file, "data").expect("write");
    assert!(matches!(
        bind(&file, 0o660, None),
        Err(ServiceError::NotSocket { .. })
    ));
    assert_eq!(std::fs::read(&file).expect("kept"), b"data");
    // No leftover temporary sockets.
    let names: BTreeSet<String> = std::fs::read_dir(t.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, BTreeSet::from(["file".into(), "s.sock".into()]));
}

#[test]
fn bad_requests_get_errors_and_the_server_lives() {
    let server = Server::start(engine(&db_from(&root().join("rules-src"), 3)), cfg(1));
    let mut conn = raw_conn(&server.socket);
    let bad: &[&[u8]] = &[
        b"not json",
        br#"{"cmd":"nope"}"#,
        br#"{"cmd":"scan"}"#,
        br#"{"cmd":"scan","paths":["/"],"recursve":true}"#,
        br#"{"cmd":"scan","paths":"/"}"#,
        br#"{"cmd":"stream","len":-1}"#,
        br#"{"cmd":"stream","len":1e99}"#,
        br#"[1,2]"#,
        b"\xff\xfe\x00garbage",
        br#"{"cmd":"ping""#,
    ];
    for line in bad {
        let v = raw(&mut conn, line);
        assert!(
            v["error"].is_string(),
            "{}: {v}",
            String::from_utf8_lossy(line)
        );
    }
    // Blank lines are ignored: the next reply is the ping's.
    assert_eq!(
        raw(&mut conn, b"\n  \r\n{\"cmd\":\"ping\"}"),
        serde_json::json!({"pong": true})
    );

    // Random bytes: one error per line, never a crash.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..300 {
        let len = 1 + next() % 200;
        let line: Vec<u8> = (0..len)
            .map(|_| match (next() % 256) as u8 {
                b'\n' => b'{',
                b => b,
            })
            .collect();
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v = raw(&mut conn, &line);
        assert!(v["error"].is_string(), "{v}");
    }
    assert_eq!(
        raw(&mut conn, br#"{"cmd":"ping"}"#),
        serde_json::json!({"pong": true})
    );

    // Oversized: an error, then the connection is closed; the server goes on.
    let mut big = raw_conn(&server.socket);
    let _ = big.get_mut().write_all(&vec![b'a'; 200 << 10]);
    let v = read_json(&mut big);
    assert!(
        v["error"].as_str().unwrap().contains("longer than 65536"),
        "{v}"
    );
    let mut rest = Vec::new();
    let _ = big.read_to_end(&mut rest);
    assert!(rest.is_empty());

    // A stream that ends early: an error, and the server goes on.
    let mut short = raw_conn(&server.socket);
    short
        .get_mut()
        .write_all(b"{\"cmd\":\"stream\",\"len\":100}\n0123456789")
        .expect("write");
    short
        .get_mut()
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let v = read_json(&mut short);
    assert_eq!(v["error"], "stream ended after 10 of 100 bytes");

    server.client().ping().expect("server alive");
    assert_eq!(
        raw(&mut conn, br#"{"cmd":"version"}"#)["db_version"],
        3,
        "first connection alive"
    );
}

#[test]
fn stream_command() {
    let limits = Limits {
        max_filesize: 50 << 20,
        ..Limits::default()
    };
    let server = Server::start(
        engine(&db_from(&root().join("rules-src"), 4)),
        ServiceConfig { limits, ..cfg(1) },
    );
    let mut c = server.client();
    let (r, done) = c.scan_stream(EICAR).expect("stream");
    assert_eq!((r.path.as_str(), r.status), ("stream", Status::Found));
    assert_eq!(r.sha256.as_deref(), Some(EICAR_SHA256));
    assert_eq!((done.scanned, done.infected, done.db_version), (1, 1, 4));
    let (r, done) = c.scan_stream(&b""[..]).expect("empty");
    assert_eq!((r.status, r.size, done.infected), (Status::Ok, 0, 0));

    // Beyond the in-memory part: received into a temporary file, found at its offset.
    let shell = std::fs::read(root().join("samples/webshell.php")).expect("sample");
    let at = shell.windows(5).position(|w| w == b"eval(").expect("eval") as u64;
    let big = std::io::repeat(0).take(40 << 20).chain(&shell[..]);
    let (r, _) = c.scan_stream(big).expect("big stream");
    assert!(
        r.findings.iter().any(
            |f| f.signature == "Php.Webshell.EvalBase64-1" && f.offset == Some((40 << 20) + at)
        ),
        "{r:?}"
    );
    assert_eq!(r.size, (40 << 20) + shell.len() as u64);

    // Over the limit: skipped, as a local scan of stdin reports it; the connection then ends.
    let over = std::io::repeat(b'x').take(60 << 20);
    let (r, done) = c.scan_stream(over).expect("over the limit");
    assert_eq!(r.status, Status::Skipped);
    assert_eq!(
        r.error.as_deref(),
        Some("size limit exceeded (52428801 > 52428800 bytes)")
    );
    assert_eq!((done.skipped, done.scanned), (1, 0));
    assert!(
        c.ping().is_err(),
        "connection closed after a refused stream"
    );

    // The service answers at once, without waiting for bytes it will not read.
    let mut conn = raw_conn(&server.socket);
    let v = raw(&mut conn, br#"{"cmd":"stream","len":999999999999}"#);
    assert_eq!(v["status"], "skipped");
    assert_eq!(read_json(&mut conn)["done"], true);
    // A request may lower the limit.
    let mut c = server.client();
    let opts = ScanOptions {
        max_filesize: Some(10),
        ..ScanOptions::default()
    };
    let (r, _) = c.scan_stream_with(EICAR, &opts).expect("lowered");
    assert_eq!(
        r.error.as_deref(),
        Some("size limit exceeded (11 > 10 bytes)")
    );
}

#[test]
fn connection_limit_and_idle_timeout() {
    let server = Server::start(
        engine(&db_from(&root().join("rules-src"), 5)),
        ServiceConfig {
            max_connections: 2,
            io_timeout: Duration::from_secs(2),
            ..cfg(1)
        },
    );
    let (mut a, mut b) = (server.client(), server.client());
    a.ping().expect("a");
    b.ping().expect("b");
    let mut c = server.client();
    assert!(
        matches!(c.ping(), Err(ClientError::Server(m)) if m == "busy"),
        "third connection refused"
    );
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if server.client().ping().is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
    // An idle connection is closed after io_timeout, freeing its slot.
    std::thread::sleep(Duration::from_secs(3));
    assert!(b.ping().is_err(), "idle connection closed");
    let (mut d, mut e) = (server.client(), server.client());
    d.ping().expect("d");
    e.ping().expect("e");
}

#[test]
fn stop_flag_ends_the_service_and_removes_the_socket() {
    let t = tempfile::tempdir().expect("tempdir");
    let socket = t.path().join("run.sock");
    let shared = Arc::new(SharedEngine::new(engine(&db_from(
        &root().join("rules-src"),
        6,
    ))));
    let stop = Arc::new(AtomicBool::new(false));
    let cfg = ServiceConfig {
        socket: socket.clone(),
        socket_mode: 0o600,
        ..cfg(1)
    };
    let (s, st) = (shared.clone(), stop.clone());
    let thread = std::thread::spawn(move || run(s, cfg, st));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut idle = loop {
        if let Ok(mut c) = Client::connect(&socket) {
            if c.ping().is_ok() {
                break c;
            }
        }
        assert!(Instant::now() < deadline, "service never came up");
        std::thread::sleep(Duration::from_millis(20));
    };
    let at = Instant::now();
    stop.store(true, Ordering::SeqCst);
    thread.join().expect("join").expect("clean stop");
    assert!(at.elapsed() < Duration::from_secs(3), "{:?}", at.elapsed());
    assert!(!socket.exists(), "socket removed");
    assert!(idle.ping().is_err(), "idle connection closed");
}

#[test]
fn hot_swap_while_clients_scan() {
    let t = tempfile::tempdir().expect("tempdir");
    let rules_b = t.path().join("b");
    copy_dir(&root().join("rules-src"), &rules_b);
    std::fs::write(
        rules_b.join("clamav/swap.ndb"),
        "Test.Swap.OnlyB-1:0:*:6f6e6c792d696e2d62\n",
    )
    .expect("write");
    let (db_a, db_b) = (db_from(&root().join("rules-src"), 1), db_from(&rules_b, 2));
    let files = t.path().join("files");
    std::fs::create_dir(&files).expect("mkdir");
    std::fs::write(files.join("eicar.com"), EICAR).expect("write");
    std::fs::write(files.join("only-b.txt"), b"xx only-in-b xx").expect("write");
    std::fs::write(files.join("clean.txt"), b"nothing here").expect("write");
    std::fs::copy(
        root().join("samples/webshell.php"),
        files.join("webshell.php"),
    )
    .expect("copy");

    // Expected findings per database version, per file, from the engines themselves.
    type Verdicts = BTreeMap<String, Vec<String>>;
    let verdicts = |e: &Engine| -> Verdicts {
        std::fs::read_dir(&files)
            .expect("ls")
            .map(|d| {
                let p = d.expect("entry").path();
                let mut names: Vec<String> = e
                    .scan_file(&p, &Limits::default())
                    .expect("scan")
                    .findings
                    .into_iter()
                    .map(|f| f.signature)
                    .collect();
                names.sort();
                (p.display().to_string(), names)
            })
            .collect()
    };
    let expect: BTreeMap<u64, Verdicts> =
        BTreeMap::from([(1, verdicts(&engine(&db_a))), (2, verdicts(&engine(&db_b)))]);
    assert_ne!(expect[&1], expect[&2]);

    let server = Server::start(engine(&db_a), cfg(2));
    let stop = Arc::new(AtomicBool::new(false));
    let scans = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, scans, failures, seen) =
                (stop.clone(), scans.clone(), failures.clone(), seen.clone());
            let (socket, files, expect) = (server.socket.clone(), files.clone(), expect.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(&socket).expect("connect");
                while !stop.load(Ordering::SeqCst) {
                    let mut got = Verdicts::new();
                    let mut versions = BTreeSet::new();
                    let mut bad = Vec::new();
                    let done = c.scan(std::slice::from_ref(&files), false, |r| {
                        if !matches!(r.status, Status::Ok | Status::Found) {
                            bad.push(format!("{r:?}"));
                        }
                        versions.insert(r.db_version);
                        let mut names: Vec<String> =
                            r.findings.into_iter().map(|f| f.signature).collect();
                        names.sort();
                        got.insert(r.path, names);
                    });
                    let mut f = failures.lock().expect("lock");
                    match done {
                        Err(e) => f.push(format!("scan failed: {e}")),
                        Ok(done) => {
                            if !bad.is_empty() {
                                f.push(format!("bad results: {bad:?}"));
                            }
                            if versions.iter().any(|v| *v != done.db_version) {
                                f.push(format!(
                                    "mixed versions {versions:?} in {}",
                                    done.db_version
                                ));
                            }
                            if expect.get(&done.db_version) != Some(&got) {
                                f.push(format!("v{}: {got:?}", done.db_version));
                            }
                            if done.scanned != 4 || done.errors != 0 {
                                f.push(format!("{done:?}"));
                            }
                            seen.lock().expect("lock").insert(done.db_version);
                        }
                    }
                    drop(f);
                    scans.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let cache = tempfile::tempdir().expect("tempdir");
    let trusted = [key().public()];
    for i in 0..50 {
        // Let at least one scan finish on every engine.
        let before = scans.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(60);
        while scans.load(Ordering::SeqCst) == before {
            assert!(Instant::now() < deadline, "scans stalled");
            std::thread::sleep(Duration::from_millis(1));
        }
        let db = if i % 2 == 0 { &db_b } else { &db_a };
        let next = Engine::load_with_cache(db, &trusted, Some(cache.path())).expect("load");
        server.shared.swap(next);
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("client");
    }
    let failures = failures.lock().expect("lock");
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(scans.load(Ordering::SeqCst) >= 50);
    assert_eq!(*seen.lock().expect("lock"), BTreeSet::from([1, 2]));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("ls").flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}
