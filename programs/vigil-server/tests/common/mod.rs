//! What the program's tests share: a repository in a temp directory, and the real vigil-server
//! started on 127.0.0.1:0 with the address read from its log.

// Each test file uses its own part of this module; the helpers are test code, where unwrap says
// "this must hold" (clippy.toml's allow-unwrap-in-tests covers only #[test] functions).
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub const BIN: &str = env!("CARGO_BIN_EXE_vigil-server");

pub struct Repo {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub timestamp: Vec<u8>,
    pub blob: Vec<u8>,
    pub blob_key: String,
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Deterministic bytes that do not compress or repeat within a blob.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
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

/// `metadata/timestamp.json` and one content-addressed blob of `blob_len` bytes.
pub fn repo_with_blob(blob_len: usize) -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    std::fs::create_dir_all(root.join("metadata")).unwrap();
    std::fs::create_dir_all(root.join("targets")).unwrap();
    let timestamp = br#"{"signed":{"_type":"timestamp","version":7},"signatures":[]}"#.to_vec();
    std::fs::write(root.join("metadata/timestamp.json"), &timestamp).unwrap();
    let blob = noise(blob_len, 42);
    let blob_key = format!("targets/{}.vigil-7.vdb", sha256_hex(&blob));
    std::fs::write(root.join(&blob_key), &blob).unwrap();
    Repo {
        _dir: dir,
        root,
        timestamp,
        blob,
        blob_key,
    }
}

pub fn repo() -> Repo {
    repo_with_blob(300_000)
}

/// A running vigil-server, killed when dropped (a failed assertion must not leave it behind).
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Its stdout, line by line.
    pub logs: Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts vigil-server with `args` and `--listen 127.0.0.1:0`, and waits for the address it
/// prints.
pub fn spawn_server(args: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Keep reading so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not say where it listens");
        };
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split([' ', ',', '"']).next().unwrap().parse().unwrap();
            return Server {
                child,
                addr,
                logs: rx,
            };
        }
    }
}

pub fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("server did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
