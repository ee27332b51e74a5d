//! vigil-benchsuite: benchmarks that span crates and programs (as ripgrep's benchsuite/), each
//! printing a plain table with vigil beside the reference tools (yara, clamscan, nginx, wrk).
//!
//! Run them with `cargo test --workspace --release --no-run && cargo bench --workspace --bench
//! NAME`. The first is the test build: it builds every program (with the features the tests
//! use) beside the bench binaries, where [`program`] finds them; `cargo bench` alone does not
//! rebuild another package's program, so without it a stale one would be measured. This
//! library holds only what the benches share.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The path of one of vigil's programs (`vigil-scan`, `vigil-server`, ...) from the same
/// build as the running bench: cargo puts bench binaries in `<target>/<profile>/deps/` and
/// programs in `<target>/<profile>/`. Says on stderr which file and how old, so a stale
/// program shows; panics with what to run when it is missing (a bench cannot go on without it).
pub fn program(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("bench binary inside <target>/<profile>/deps");
    let path = dir.join(name);
    let built = std::fs::metadata(&path).and_then(|m| m.modified());
    let Ok(built) = built else {
        panic!(
            "{} is missing: run `cargo test --workspace --release --no-run` first, which builds \
             every program",
            path.display()
        );
    };
    let age = built.elapsed().map_or(0, |d| d.as_secs());
    eprintln!(
        "{name}: {} (built {age} s ago; `cargo test --workspace --release --no-run` rebuilds it)",
        path.display()
    );
    path
}

/// Runs `cmd` (program and arguments) under `/usr/bin/time`, with its stdout going to `stdout`
/// (a file, or null): (wall seconds, max RSS in MB). Exit codes 0 and 1 (clean, found
/// something) are the tools' normal answers; any other is noted on stderr with the tool's first
/// line of complaint, and the run still counts, so a table shows it rather than stopping.
pub fn timed(cmd: &[String], stdout: Stdio) -> (f64, f64) {
    let run = Command::new("/usr/bin/time")
        .args(["-f", "VIGILTIME %e %M"])
        .args(cmd)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("run /usr/bin/time");
    let err = String::from_utf8_lossy(&run.stderr);
    let line = err
        .lines()
        .rev()
        .find(|l| l.starts_with("VIGILTIME"))
        .unwrap_or("VIGILTIME 0 0");
    let mut it = line.split_whitespace().skip(1);
    let wall: f64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let rss_kb: f64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let code = run.status.code().unwrap_or(-1);
    if !matches!(code, 0 | 1) {
        let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        eprintln!(
            "  note: {} exited {code}: {first}",
            cmd.first().map_or("", String::as_str)
        );
    }
    (wall, rss_kb / 1024.0)
}
