//! The fault-injecting server itself, checked with raw HTTP over a TcpStream so that what the
//! server puts on the wire is what the test sees (no client library smoothing it over).
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use vigil_tests::fault::{Fault, FaultServer, Match};

const TIMESTAMP: &[u8] = br#"{"signed":{"_type":"timestamp","version":7}}"#;
const DB: &[u8] = b"0123456789abcdefghij"; // 20 bytes
const DB_PATH: &str = "/targets/ab12.main.vdb";

fn repo() -> (tempfile::TempDir, FaultServer) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("metadata")).unwrap();
    std::fs::create_dir_all(dir.path().join("targets")).unwrap();
    std::fs::write(dir.path().join("metadata/timestamp.json"), TIMESTAMP).unwrap();
    std::fs::write(dir.path().join("targets/ab12.main.vdb"), DB).unwrap();
    let server = FaultServer::start(dir.path());
    (dir, server)
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn connect(server: &FaultServer) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn send(stream: &mut TcpStream, method: &str, path: &str, extra: &str, close: bool) {
    let connection = if close { "close" } else { "keep-alive" };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: {connection}\r\n{extra}\r\n"
    )
    .unwrap();
}

/// Splits a response head off `raw`; returns it and the rest.
fn parse_head(raw: &[u8]) -> (u16, Vec<(String, String)>, &[u8]) {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    (status, headers, &raw[end + 4..])
}

/// One request on a fresh connection with `Connection: close`, read to EOF.
fn request(server: &FaultServer, method: &str, path: &str, extra: &str) -> Response {
    let mut s = connect(server);
    send(&mut s, method, path, extra, true);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let (status, headers, body) = parse_head(&raw);
    Response {
        status,
        headers,
        body: body.to_vec(),
    }
}

fn get(server: &FaultServer, path: &str) -> Response {
    request(server, "GET", path, "")
}

/// Reads one response with a Content-Length off a keep-alive connection.
fn read_one(stream: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        raw.push(byte[0]);
    }
    let (status, headers, _) = parse_head(&raw);
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .unwrap()
        .1
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    stream.read_exact(&mut body).unwrap();
    Response {
        status,
        headers,
        body,
    }
}

/// Waits for the server's log to satisfy `f` (streaming responses log as they go).
fn wait_for_log(server: &FaultServer, f: impl Fn(&[vigil_tests::fault::Request]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f(&server.requests()) {
        assert!(Instant::now() < deadline, "log: {:#?}", server.requests());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn serves_files_head_and_404_and_logs_them() {
    let (_dir, server) = repo();
    assert_eq!(server.url(), format!("http://127.0.0.1:{}/", server.port()));

    let r = get(&server, "/metadata/timestamp.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, TIMESTAMP);
    assert_eq!(
        r.header("content-length"),
        Some(&*TIMESTAMP.len().to_string())
    );
    assert_eq!(r.header("content-type"), Some("application/json"));

    let h = request(&server, "HEAD", DB_PATH, "");
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-length"), Some("20"));
    assert!(h.body.is_empty());

    assert_eq!(get(&server, "/metadata/2.root.json").status, 404);
    assert_eq!(
        get(&server, "/metadata").status,
        404,
        "directories are not files"
    );
    assert_eq!(get(&server, "/../../etc/passwd").status, 404);
    assert_eq!(
        get(&server, "/metadata/%2e%2e/metadata/timestamp.json").status,
        404
    );
    assert_eq!(request(&server, "POST", DB_PATH, "").status, 405);

    let log = server.requests();
    let summary: Vec<_> = log
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status, r.body_bytes))
        .collect();
    assert_eq!(
        summary[..3],
        [
            (
                "GET",
                "/metadata/timestamp.json",
                200,
                TIMESTAMP.len() as u64
            ),
            ("HEAD", DB_PATH, 200, 0),
            ("GET", "/metadata/2.root.json", 404, 10),
        ]
    );
    assert_eq!(log.len(), 7);
    assert!(log.iter().all(|r| r.fault.is_none() && r.range.is_none()));
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let (_dir, server) = repo();
    let mut s = connect(&server);
    send(&mut s, "GET", "/metadata/timestamp.json", "", false);
    let a = read_one(&mut s);
    send(&mut s, "GET", DB_PATH, "", false);
    let b = read_one(&mut s);
    assert_eq!((a.status, a.body.as_slice()), (200, TIMESTAMP));
    assert_eq!((b.status, b.body.as_slice()), (200, DB));
    assert_eq!(b.header("connection"), Some("keep-alive"));
}

#[test]
fn ranges_and_conditional_requests() {
    let (_dir, server) = repo();
    let r = request(&server, "GET", DB_PATH, "Range: bytes=5-\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 5-19/20"));
    assert_eq!(r.header("content-length"), Some("15"));
    assert_eq!(r.body, &DB[5..]);

    let r = request(&server, "GET", DB_PATH, "Range: bytes=2-4\r\n");
    assert_eq!((r.status, r.body.as_slice()), (206, &DB[2..5]));

    let r = request(&server, "GET", DB_PATH, "Range: bytes=20-\r\n");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */20"));

    let etag = get(&server, DB_PATH).header("etag").unwrap().to_string();
    let extra = format!("If-None-Match: {etag}\r\n");
    let r = request(&server, "GET", DB_PATH, &extra);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = request(&server, "GET", DB_PATH, "If-None-Match: \"other\"\r\n");
    assert_eq!(r.status, 200);

    let log = server.requests();
    assert_eq!(log[0].range.as_deref(), Some("bytes=5-"));
    assert_eq!(log[0].body_bytes, 15);
    assert_eq!(log[2].status, 416);
    assert_eq!(log[4].if_none_match.as_deref(), Some(etag.as_str()));
    assert_eq!(log[4].status, 304);
}

#[test]
fn status_fault_with_retry_after_then_cleared() {
    let (_dir, server) = repo();
    server.set_fault(
        "timestamp.json",
        Fault::Status {
            code: 429,
            retry_after: Some(7),
        },
    );
    let r = get(&server, "/metadata/timestamp.json");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(
        get(&server, DB_PATH).status,
        200,
        "other paths are untouched"
    );

    server.set_fault(
        Match::suffix(".vdb"),
        Fault::Status {
            code: 403,
            retry_after: None,
        },
    );
    let r = get(&server, DB_PATH);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("retry-after"), None);

    server.clear_faults();
    assert_eq!(get(&server, "/metadata/timestamp.json").status, 200);
    assert_eq!(get(&server, DB_PATH).status, 200);
    let log = server.requests();
    assert_eq!(
        log[0].fault,
        Some(Fault::Status {
            code: 429,
            retry_after: Some(7)
        })
    );
    assert_eq!(log[0].status, 429);
}

#[test]
fn limited_faults_expire_and_matchers_are_precise() {
    let (_dir, server) = repo();
    let storm = Fault::Status {
        code: 503,
        retry_after: Some(1),
    };
    server.set_fault_for(Match::Any, storm, 2);
    let codes: Vec<u16> = (0..3).map(|_| get(&server, DB_PATH).status).collect();
    assert_eq!(codes, [503, 503, 200]);

    server.set_fault(Match::exact("metadata/timestamp.json"), Fault::Empty);
    assert_eq!(get(&server, "/metadata/timestamp.json").body, b"");
    assert_eq!(get(&server, "/metadata/timestamp.json?x=1").body, b"");
    assert_eq!(get(&server, DB_PATH).body, DB);
    server.clear_fault(Match::exact("/metadata/timestamp.json"));
    assert_eq!(get(&server, "/metadata/timestamp.json").body, TIMESTAMP);
}

#[test]
fn flip_replace_and_empty() {
    let (_dir, server) = repo();
    server.set_fault(".vdb", Fault::FlipByte { offset: 3 });
    let r = get(&server, DB_PATH);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), DB.len());
    let diff: Vec<usize> = (0..DB.len()).filter(|&i| r.body[i] != DB[i]).collect();
    assert_eq!(diff, [3]);
    assert_eq!(r.body[3], DB[3] ^ 0xff);

    server.set_fault(".vdb", Fault::FlipByte { offset: 1000 });
    let r = get(&server, DB_PATH);
    assert_eq!(r.body[..19], DB[..19]);
    assert_ne!(r.body[19], DB[19], "offset clamps to the last byte");

    let old = br#"{"signed":{"_type":"timestamp","version":6}}"#.to_vec();
    server.set_fault("timestamp.json", Fault::Replace(old.clone()));
    assert_eq!(get(&server, "/metadata/timestamp.json").body, old);
    // Replace serves bytes even where no file exists.
    server.set_fault("ghost", Fault::Replace(b"boo".to_vec()));
    assert_eq!(get(&server, "/metadata/ghost.json").body, b"boo");

    server.set_fault(".vdb", Fault::Empty);
    let r = get(&server, DB_PATH);
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
    assert!(r.body.is_empty());
}

#[test]
fn truncate_announces_everything_and_closes_early() {
    let (_dir, server) = repo();
    server.set_fault(".vdb", Fault::Truncate { at: 8 });
    let r = get(&server, DB_PATH);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("20"));
    assert_eq!(r.body, &DB[..8], "read_to_end ended: the server closed");
    assert_eq!(server.requests()[0].body_bytes, 8);
}

#[test]
fn zeros_then_close_sends_a_zeroed_prefix_and_closes_early() {
    let (_dir, server) = repo();
    server.set_fault(".vdb", Fault::ZerosThenClose { at: 8 });
    let r = get(&server, DB_PATH);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("20"));
    assert_eq!(r.body, [0; 8], "read_to_end ended: the server closed");
    assert_eq!(server.requests()[0].body_bytes, 8);
    // On a ranged request the zeros stand in for the start of the range.
    let r = request(&server, "GET", DB_PATH, "Range: bytes=5-\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-length"), Some("15"));
    assert_eq!(r.body, [0; 8]);
}

#[test]
fn endless_keeps_sending() {
    let (_dir, server) = repo();
    server.set_fault(".vdb", Fault::Endless);
    let mut s = connect(&server);
    send(&mut s, "GET", DB_PATH, "", true);
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while raw.len() < 2 << 20 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended after {} bytes", raw.len());
        raw.extend_from_slice(&buf[..n]);
    }
    let (status, headers, body) = parse_head(&raw);
    assert_eq!(status, 200);
    assert!(!headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length")));
    assert!(body.len() > 1 << 20);
    drop(s);
    wait_for_log(&server, |log| log[0].body_bytes > 1 << 20);

    server.set_fault(
        ".vdb",
        Fault::Huge {
            content_length: 1 << 40,
        },
    );
    let mut s = connect(&server);
    send(&mut s, "GET", DB_PATH, "", true);
    let mut raw = vec![0u8; (1 << 20) + 4096];
    s.read_exact(&mut raw).unwrap();
    let (_, headers, _) = parse_head(&raw);
    assert!(headers.contains(&("Content-Length".into(), (1u64 << 40).to_string())));
}

#[test]
fn slow_drips_the_real_file() {
    let (_dir, server) = repo();
    server.set_fault(".vdb", Fault::Slow { bytes_per_sec: 40 });
    let started = Instant::now();
    let r = get(&server, DB_PATH);
    let took = started.elapsed();
    assert_eq!(r.body, DB);
    assert!(
        took >= Duration::from_millis(450),
        "20 bytes at 40/s took {took:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn slow_zero_and_hang_stall() {
    let (_dir, server) = repo();
    server.set_fault(".vdb", Fault::Slow { bytes_per_sec: 0 });
    server.set_fault("timestamp.json", Fault::Hang);

    let mut s = connect(&server);
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    send(&mut s, "GET", DB_PATH, "", true);
    let mut raw = Vec::new();
    let err = s.read_to_end(&mut raw).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut
    ));
    let (status, _, body) = parse_head(&raw);
    assert_eq!((status, body.len()), (200, 0), "headers, then nothing");

    let mut s = connect(&server);
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    send(&mut s, "GET", "/metadata/timestamp.json", "", true);
    let mut raw = Vec::new();
    assert!(s.read_to_end(&mut raw).is_err());
    assert!(raw.is_empty(), "no response at all");
    assert_eq!(server.requests()[1].status, 0);
}

#[test]
fn die_after_kills_the_server() {
    let (_dir, server) = repo();
    // An idle keep-alive connection, to check that it is closed too.
    let mut idle = connect(&server);
    send(&mut idle, "GET", "/metadata/timestamp.json", "", false);
    assert_eq!(read_one(&mut idle).status, 200);

    server.set_fault(".vdb", Fault::DieAfter { bytes: 5 });
    let r = get(&server, DB_PATH);
    assert_eq!(r.header("content-length"), Some("20"));
    assert_eq!(r.body, &DB[..5]);

    let err = TcpStream::connect(("127.0.0.1", server.port())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    assert!(server.is_stopped());
    let mut rest = Vec::new();
    assert_eq!(
        idle.read_to_end(&mut rest).unwrap_or(0),
        0,
        "idle connection closed"
    );
    server.set_fault(".vdb", Fault::Empty); // changing faults on a dead server is harmless
}

#[test]
fn stop_and_drop_refuse_connections() {
    let (_dir, server) = repo();
    let port = server.port();
    assert_eq!(get(&server, DB_PATH).status, 200);
    server.stop();
    server.stop();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());

    let (_dir, server) = repo();
    let port = server.port();
    drop(server);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
