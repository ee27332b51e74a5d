//! Quarantine throughput: `Store::quarantine` and `Store::restore` over many small files (by
//! default 1000 files of 64 KiB), as the agent runs them: each file opened without following
//! symlinks, hashed, transformed into a fsynced entry, the store directory fsynced, the
//! original unlinked and its directory fsynced; each restore decoded, verified, given its
//! owner, mode and times, fsynced and renamed into place. Prints a markdown table on stdout.
//!
//! `cargo bench --workspace --bench quarantine`.
//! Knobs: VIGIL_BENCH_FILES (1000), VIGIL_BENCH_FILE_KIB (64), VIGIL_BENCH_DIR (where the files
//! and the store go; default: a temporary directory).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use vigil_quarantine::Store;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn row(what: &str, files: u64, bytes: u64, took: Duration) {
    let s = took.as_secs_f64();
    println!(
        "| {what} | {files} | {:.2} | {:.0} | {:.1} | {:.3} |",
        s,
        files as f64 / s,
        bytes as f64 / s / 1e6,
        s * 1e3 / files as f64
    );
}

fn main() {
    let n = knob("VIGIL_BENCH_FILES", 1000);
    let kib = knob("VIGIL_BENCH_FILE_KIB", 64);
    let tmp = match std::env::var_os("VIGIL_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("a temporary directory");
    let files = tmp.path().join("files");
    std::fs::create_dir(&files).expect("create the files' directory");
    let store = Store::open(&tmp.path().join("quarantine")).expect("open the store");

    eprintln!("writing {n} files of {kib} KiB under {}", files.display());
    let size = usize::try_from(kib * 1024).expect("file size");
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| {
            let p = files.join(format!("sample-{i:05}.bin"));
            let data: Vec<u8> = (0..size)
                .map(|j| (j as u64).wrapping_mul(31).wrapping_add(i) as u8)
                .collect();
            std::fs::write(&p, data).expect("write a sample");
            p
        })
        .collect();
    let bytes = n * kib * 1024;

    println!("| operation | files | seconds | files/s | MB/s | ms/file |");
    println!("|---|---:|---:|---:|---:|---:|");
    let t = Instant::now();
    let ids: Vec<String> = paths
        .iter()
        .map(|p| {
            store
                .quarantine(p, None, "bench", "Bench.Sample")
                .expect("quarantine")
                .id
        })
        .collect();
    row("quarantine", n, bytes, t.elapsed());

    let t = Instant::now();
    let listed = store.list().expect("list").len();
    let took = t.elapsed();
    assert_eq!(listed as u64, n);
    println!(
        "| list (headers only) | {n} | {:.3} | {:.0} | | {:.3} |",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e3 / n as f64
    );

    let t = Instant::now();
    for id in &ids {
        store.restore(id).expect("restore");
    }
    row("restore", n, bytes, t.elapsed());
    assert!(paths.iter().all(|p| p.exists()));
}
