//! The findings bench's quarantine rows: `Store::quarantine`, `list` and `Store::restore` over
//! many small files (VIGIL_BENCH_FILES, default 1000, of VIGIL_BENCH_FILE_KIB, default 64 KiB),
//! as the agent runs them: each file opened without following symlinks, hashed, transformed
//! into a fsynced entry, the store directory fsynced, the original unlinked and its directory
//! fsynced; each restore decoded, verified, given its owner, mode and times, fsynced and
//! renamed into place. Three fsyncs per file set the pace on a disk.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vigil_quarantine::Store;

use super::knob;

fn row(what: &str, files: u64, bytes: u64, took: Duration) -> (String, String, String) {
    let s = took.as_secs_f64();
    (
        format!("quarantine store: {what}"),
        format!("{:.0} files/s", files as f64 / s),
        format!(
            "{files} files of {} KiB, {:.1} MB/s, {:.2} ms/file",
            bytes / files.max(1) / 1024,
            bytes as f64 / s / 1e6,
            s * 1e3 / files as f64
        ),
    )
}

/// The rows (measurement, value, notes), with the files and the store under `dir`.
pub fn rows(dir: &Path) -> Vec<(String, String, String)> {
    let n = knob("VIGIL_BENCH_FILES", 1000).max(1);
    let kib = knob("VIGIL_BENCH_FILE_KIB", 64);
    let files = dir.join("quarantine-files");
    std::fs::create_dir_all(&files).expect("create the files' directory");
    let store = Store::open(&dir.join("quarantine")).expect("open the store");
    eprintln!(
        "quarantine: {n} files of {kib} KiB under {}",
        files.display()
    );
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
    let mut out = Vec::new();

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
    out.push(row("quarantine", n, bytes, t.elapsed()));

    let t = Instant::now();
    let listed = store.list().expect("list").len();
    let took = t.elapsed();
    assert_eq!(listed as u64, n);
    out.push((
        "quarantine store: list (headers only)".into(),
        format!("{:.0} entries/s", n as f64 / took.as_secs_f64()),
        format!("{n} entries"),
    ));

    let t = Instant::now();
    for id in &ids {
        store.restore(id).expect("restore");
    }
    out.push(row("restore", n, bytes, t.elapsed()));
    assert!(paths.iter().all(|p| p.exists()));
    out
}
