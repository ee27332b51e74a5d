//! `vigil-scan --daemon` against local mode: the same paths, stdin and options through the scan
//! service give the same output lines and exit codes as a local scan with the same database;
//! the socket comes from `--socket` or `$VIGIL_SOCKET`, and a service that cannot be reached is
//! exit code 2.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::Value;
use vigil_agent::service::{bind, serve, ServiceConfig, ServiceError};
use vigil_scan_core::{Engine, SharedEngine};
use vigil_tests::rules::{db_from, repo_root as root, test_key as key};

const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

fn engine(db: &[u8]) -> Engine {
    Engine::load(db, &[key().public()]).expect("load")
}

/// A service on a socket in its own temporary directory, stopped when dropped.
struct Server {
    _dir: tempfile::TempDir,
    socket: PathBuf,
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
        let st = stop.clone();
        let thread = std::thread::spawn(move || serve(listener, shared, cfg, st));
        Self {
            _dir: dir,
            socket,
            stop,
            thread: Some(thread),
        }
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

fn vigil_scan(
    cwd: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
    env_socket: Option<&Path>,
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil-scan"));
    cmd.current_dir(cwd).args(args).env_remove("VIGIL_SOCKET");
    if let Some(s) = env_socket {
        cmd.env("VIGIL_SOCKET", s);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run vigil-scan");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.unwrap_or_default().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    out
}

/// Output lines in a stable order, without the timing line.
fn lines(bytes: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.starts_with("Time: "))
        .map(|l| {
            // The JSON summary's time differs run to run.
            match serde_json::from_str::<Value>(l) {
                Ok(mut v) if v.get("summary").is_some() => {
                    v["summary"]["time_secs"] = Value::Null;
                    v.to_string()
                }
                _ => l.to_string(),
            }
        })
        .collect();
    v.sort();
    v
}

#[test]
fn vigil_scan_daemon_matches_local_mode() {
    let t = tempfile::tempdir().expect("tempdir");
    let db = db_from(&root().join("rules-src"), 9);
    let (db_path, pub_path) = (t.path().join("v9.vdb"), t.path().join("test.pub"));
    std::fs::write(&db_path, &db).expect("write");
    std::fs::write(&pub_path, key().public().to_text()).expect("write");
    tree(t.path());
    std::fs::copy(root().join("samples/clean.sh"), t.path().join("clean.sh")).expect("copy");
    let server = Server::start(engine(&db), cfg(2));
    let sock = server.socket.display().to_string();
    let local = |args: &[&str], stdin: Option<&[u8]>| {
        let mut all = vec![
            "-d",
            db_path.to_str().unwrap(),
            "--pubkey",
            pub_path.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        vigil_scan(t.path(), &all, stdin, None)
    };
    let daemon = |args: &[&str], stdin: Option<&[u8]>| {
        let mut all = vec!["--daemon", "--socket", sock.as_str()];
        all.extend_from_slice(args);
        vigil_scan(t.path(), &all, stdin, None)
    };

    // Arguments, stdin, the exit code both modes must give.
    type Case<'a> = (&'a [&'a str], Option<&'a [u8]>, i32);
    let cases: &[Case] = &[
        (&["clean.sh"], None, 0),
        (&["-r", "tree", "clean.sh"], None, 1),
        (&["-r", "./tree/", "missing"], None, 1),
        (&["tree"], None, 0),
        (&["-r", "-i", "tree"], None, 1),
        (&["-r", "--json", "tree"], None, 1),
        (&["--json", "--no-summary", "-r", "tree"], None, 1),
        (&["missing"], None, 2),
        (&["--max-filesize", "10", "tree/sub/eicar.com"], None, 0),
        (&["-", "clean.sh"], Some(EICAR), 1),
        (&["-"], Some(&b"harmless"[..]), 0),
        (&["--max-filesize", "10", "-"], Some(EICAR), 0),
    ];
    for (args, stdin, code) in cases {
        let (l, d) = (local(args, *stdin), daemon(args, *stdin));
        assert_eq!(l.status.code(), Some(*code), "local {args:?}: {l:?}");
        assert_eq!(d.status.code(), Some(*code), "daemon {args:?}: {d:?}");
        assert_eq!(lines(&l.stdout), lines(&d.stdout), "stdout {args:?}");
        assert_eq!(lines(&l.stderr), lines(&d.stderr), "stderr {args:?}");
    }
    // What the comparison covered, spelt out once.
    let d = daemon(&["-r", "tree", "-"], Some(EICAR));
    let out = String::from_utf8_lossy(&d.stdout);
    assert!(
        out.contains("tree/sub/eicar.com: Multi.Test.Eicar-Body FOUND"),
        "{out}"
    );
    assert!(out.contains("stdin: Multi.Test.Eicar-Body FOUND"), "{out}");
    assert!(
        out.contains("Database version: 9") && out.contains("Infected files: 2"),
        "{out}"
    );
    assert!(String::from_utf8_lossy(&d.stderr).contains("tree/fifo: not a regular file"));

    // The socket from the environment; no database needed.
    let e = vigil_scan(
        t.path(),
        &["--daemon", "clean.sh"],
        None,
        Some(&server.socket),
    );
    assert_eq!(e.status.code(), Some(0), "{e:?}");
    assert!(String::from_utf8_lossy(&e.stdout).contains("clean.sh: OK"));

    // No service: exit 2, naming the socket.
    let gone = t.path().join("nobody.sock");
    for o in [
        vigil_scan(
            t.path(),
            &["--daemon", "--socket", gone.to_str().unwrap(), "clean.sh"],
            None,
            None,
        ),
        vigil_scan(t.path(), &["--daemon", "clean.sh"], None, Some(&gone)),
    ] {
        assert_eq!(o.status.code(), Some(2), "{o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("cannot connect to scan service at") && err.contains("nobody.sock"),
            "{err}"
        );
        assert!(o.stdout.is_empty());
    }
    // Without --daemon a database is still required.
    let o = vigil_scan(t.path(), &["clean.sh"], None, None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--database"));
}
