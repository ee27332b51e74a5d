//! The vigil-server program: signals, logs, exit codes and `hash-token`, through the real
//! binary. The HTTP semantics are tested on the library, in update-server/tests/server.rs.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{repo, repo_with_blob, sha256_hex, spawn_server, wait_exit, BIN};

#[test]
fn sigterm_lets_a_download_finish_and_refuses_new_connections() {
    let r = repo_with_blob(64 << 20);
    let mut srv = spawn_server(&[
        "--repo",
        r.root.to_str().unwrap(),
        "--log-format",
        "json",
        "--blob-cache-mb",
        "0",
    ]);
    let addr = srv.addr;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        r.blob_key
    )
    .unwrap();
    let mut first = vec![0u8; 16 << 10];
    let n = s.read(&mut first).unwrap();
    assert!(n > 0);
    first.truncate(n);

    let kill = Command::new("kill")
        .args(["-TERM", &srv.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // The listening socket closes promptly, while our download is still open.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "exited mid-download"
    );

    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let mut all = first;
    all.extend_from_slice(&rest);
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&all[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {}\r\n", 64 << 20)));
    assert!(all[split..] == r.blob[..], "download incomplete or wrong");

    let st = wait_exit(&mut srv.child, Duration::from_secs(15));
    assert_eq!(st.code(), Some(0));
    // The JSON access log recorded the download, with the client's address.
    let lines: Vec<String> = srv.logs.try_iter().collect();
    assert!(
        lines.iter().any(|l| l.contains("\"status\":200")
            && l.contains("\"client\":\"127.0.0.1\"")
            && l.contains(&r.blob_key)
            && l.contains(&format!("\"bytes\":{}", 64 << 20))),
        "no access log line in {lines:#?}"
    );
}

#[test]
fn exit_codes() {
    let r = repo();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let dir = r.root.parent().unwrap();
    let missing = dir.join("nope");
    let (code, err) = run(&["--repo", missing.to_str().unwrap()]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("does not exist"), "{err}");

    let (code, err) = run(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no repository"), "{err}");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "blob_cache = 3\n").unwrap();
    let (code, err) = run(&["--config", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");

    let plain = dir.join("plain-tokens");
    std::fs::write(&plain, "my-plain-token\n").unwrap();
    let (code, err) = run(&[
        "--repo",
        r.root.to_str().unwrap(),
        "--tokens",
        plain.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("line 1"), "{err}");

    let (code, err) = run(&["--repo", "s3://X/y"]);
    assert_eq!(code, Some(2), "{err}");

    // The port is taken by someone else.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = run(&["--repo", r.root.to_str().unwrap(), "--listen", &addr]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("cannot listen"), "{err}");

    let (code, _) = run(&["--no-such-flag"]);
    assert_eq!(code, Some(2));
}

#[test]
fn hash_token_prints_the_tokens_file_line() {
    let mut child = Command::new(BIN)
        .arg("hash-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret-token\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\n", sha256_hex(b"s3cret-token"))
    );
}
