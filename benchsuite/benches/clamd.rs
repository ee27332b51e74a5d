//! INSTREAM throughput through vigil's clamd protocol (the agent's listener, in process, on a
//! Unix socket) beside a real clamd loaded with the same signatures (EICAR by MD5, a body
//! signature), in one run: MB/s and requests/s for 64 KiB and 1 MiB streams with 1 and 4
//! clients, each client one connection per request as clamdscan does. Needs clamd
//! (clamav-daemon); without it only vigil's column is measured.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_agent::clamd::{bind, serve, ClamdConfig};
use vigil_scan_core::{Engine, SharedEngine};
use vigil_tests::clamd::Clamd;
use vigil_tests::rules::{db_from, test_key};

const EICAR_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";
/// Time per cell.
const CELL: Duration = Duration::from_secs(3);

fn payload(len: usize) -> Vec<u8> {
    // xorshift: incompressible, deterministic, matches nothing.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn request(data: &[u8]) -> Vec<u8> {
    let mut out = b"zINSTREAM\0".to_vec();
    for c in data.chunks(64 << 10) {
        out.extend_from_slice(&(c.len() as u32).to_be_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&0u32.to_be_bytes());
    out
}

fn one(socket: &Path, req: &[u8]) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let mut reply = Vec::new();
    s.write_all(req).is_ok() && s.read_to_end(&mut reply).is_ok() && reply == b"stream: OK\0"
}

/// (MB/s, requests/s) with `clients` threads sending `req` for [`CELL`].
fn measure(socket: &Path, req: &[u8], bytes: usize, clients: usize) -> (f64, f64) {
    assert!(
        one(socket, req),
        "{}: the stream is not answered OK",
        socket.display()
    );
    let start = Instant::now();
    let done: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0;
                    while start.elapsed() < CELL {
                        assert!(one(socket, req), "a stream failed");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let secs = start.elapsed().as_secs_f64();
    let rps = done as f64 / secs;
    (rps * bytes as f64 / 1e6, rps)
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sigs: PathBuf = dir.path().join("sigs");
    std::fs::create_dir_all(&sigs).expect("mkdir");
    std::fs::write(sigs.join("b.hdb"), format!("{EICAR_MD5}:68:Bench.Eicar\n")).expect("hdb");
    std::fs::write(
        sigs.join("b.ndb"),
        "Bench.RevShell:0:*:2f6465762f7463702f{7-39}2f3434\n",
    )
    .expect("ndb");
    let max = 32 << 20;
    let engine = Engine::load(&db_from(&sigs, 1), &[test_key().public()]).expect("engine");
    let socket = dir.path().join("vigil-clamd.sock");
    let cfg = ClamdConfig {
        unix_socket: Some(socket.clone()),
        stream_max_length: max,
        max_connections: 64,
        ..ClamdConfig::default()
    };
    let listeners = bind(&cfg).expect("bind");
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (e, st) = (Arc::new(SharedEngine::new(engine)), stop.clone());
        std::thread::spawn(move || serve(listeners, e, cfg, st))
    };
    let clamd = Clamd::start(&sigs, max);

    println!(
        "INSTREAM throughput, {} s per cell, one connection per stream",
        CELL.as_secs()
    );
    println!();
    println!("| stream | clients | vigil MB/s | vigil req/s | clamd MB/s | clamd req/s |");
    println!("|---|---|---|---|---|---|");
    for (label, size) in [("64 KiB", 64usize << 10), ("1 MiB", 1 << 20)] {
        let req = request(&payload(size));
        for clients in [1, 4] {
            let (vm, vr) = measure(&socket, &req, size, clients);
            let theirs = clamd
                .as_ref()
                .map(|c| measure(&c.socket, &req, size, clients));
            let (cm, cr) = theirs.map_or(("n/a".into(), "n/a".into()), |(m, r)| {
                (format!("{m:.1}"), format!("{r:.0}"))
            });
            println!("| {label} | {clients} | {vm:.1} | {vr:.0} | {cm} | {cr} |");
        }
    }
    stop.store(true, Ordering::SeqCst);
    let _ = server.join();
}
