//! vigil-benchsuite: benchmarks that span crates and programs (as ripgrep's benchsuite/), each
//! printing a plain table with vigil beside the reference tools (yara, clamscan, nginx, wrk).
//!
//! Run them with `cargo bench --workspace --bench NAME`: `--workspace` builds every program
//! with the same features as the test build, and puts them beside the bench binaries, where
//! [`program`] finds them. This library holds only what the benches share.

use std::path::PathBuf;

/// The path of one of vigil's programs (`vigil-scan`, `vigil-server`, ...) from the same
/// build as the running bench: cargo puts bench binaries in `<target>/<profile>/deps/` and
/// programs in `<target>/<profile>/`. Panics with what to run when it is missing: a bench has
/// no way to go on without it.
pub fn program(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the bench's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("bench binary inside <target>/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the bench with `cargo bench --workspace` so every program is built",
        path.display()
    );
    path
}
