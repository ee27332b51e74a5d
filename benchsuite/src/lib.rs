//! vigil-benchsuite: benchmarks that span crates and programs (as ripgrep's benchsuite/), each
//! printing a plain table with vigil beside the reference tools (yara, clamscan, nginx, wrk).
//!
//! Run them with `cargo test --workspace --release --no-run && cargo bench --workspace --bench
//! NAME`. The first is the test build: it builds every program (with the features the tests
//! use) beside the bench binaries, where [`program`] finds them; `cargo bench` alone does not
//! rebuild another package's program, so without it a stale one would be measured. This
//! library holds only what the benches share.

use std::path::PathBuf;

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
