//! The updater's extra cost per check for its fleet check-in: an up-to-date `vigil-update`
//! run (the common case: most checks find nothing new) with `[fleet] checkin = true` against
//! `false`, as real processes against a `vigil-server` child process on 127.0.0.1. Prints a
//! markdown table on stdout: median and p90 wall time over the runs, and the check-in's JSON
//! body as sent (progress goes to stderr).
//!
//! Rows: on against off on the same vigil-server, which keeps check-ins in its fleet store
//! (SQLite, `--state-dir`) and answers 204. The check-in costs a POST on a new connection, and
//! re-reading the installed database for its version and SHA-256.
//!
//! `cargo test --workspace --release --no-run && cargo bench --workspace --bench checkin`.
//! Knobs: VIGIL_BENCH_RUNS (20), VIGIL_BENCH_FILLER (50000 signatures in the database).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vigil_tests::updater::{strip_ansi, vigil_server_fleet, Client, Repo};

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One `vigil-update` run: wall time, exit code, and the check-in's body bytes and status
/// from its debug line (none when nothing was sent).
fn run(update: &Path, c: &Client) -> (Duration, i32, Option<u64>, Option<u64>) {
    let t = Instant::now();
    let out = Command::new(update)
        .args(["--config", &c.config.display().to_string()])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn,vigil_client_updater::checkin=debug")
        .output()
        .expect("running vigil-update");
    let took = t.elapsed();
    let err = strip_ansi(&String::from_utf8_lossy(&out.stderr));
    let field = |key: &str| {
        let line = err.lines().find(|l| l.contains("check-in sent"))?;
        let pat = format!("{key}=");
        let i = line.find(&pat)?;
        line[i + pat.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    (
        took,
        out.status.code().unwrap_or(-1),
        field("bytes"),
        field("status"),
    )
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runs = knob("VIGIL_BENCH_RUNS", 20).max(1) as usize;
    let update = vigil_benchsuite::program("vigil-update");
    let mut repo = Repo::new();
    repo.filler = knob("VIGIL_BENCH_FILLER", 50_000) as usize;
    eprintln!(
        "building and publishing a database of {} signatures …",
        repo.filler
    );
    let db = repo.publish(1);
    let server = vigil_server_fleet(&repo.dir, "bench-admin-token");
    let work = repo.tmp.path().join("clients");
    // (row, mirror, config, the row it is compared with)
    let off = "[fleet]\ncheckin = false\n";
    let setups = [
        ("vigil-server, checkin = false", server.url.clone(), off, 0),
        ("vigil-server, checkin = true", server.url.clone(), "", 0),
    ];
    let clients: Vec<Client> = setups
        .iter()
        .enumerate()
        .map(|(i, (_, url, extra, _))| {
            let c = Client::new(&work.join(i.to_string()), &repo, &[url], extra);
            let (_, code, _, _) = run(&update, &c);
            assert_eq!(code, 0, "the first update installs version 1");
            c
        })
        .collect();
    // Interleaved, so drift on a shared machine falls on every row alike.
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); clients.len()];
    let mut sent: Vec<(Option<u64>, Option<u64>)> = vec![(None, None); clients.len()];
    eprintln!("{runs} up-to-date checks per row …");
    for _ in 0..runs {
        for (i, c) in clients.iter().enumerate() {
            let (took, code, bytes, status) = run(&update, c);
            assert_eq!(code, 1, "an up-to-date check");
            times[i].push(took);
            sent[i] = (bytes, status);
        }
    }
    println!(
        "Up-to-date `vigil-update` check, {runs} runs per row, database {:.1} MB:\n",
        db.len() as f64 / 1e6
    );
    println!("| check | median wall | p90 wall | extra (median) | check-in body | answer |");
    println!("|---|---|---|---|---|---|");
    let median = |i: usize| {
        let mut t = times[i].clone();
        t.sort();
        quantile(&t, 0.5)
    };
    for (i, (name, _, _, base)) in setups.iter().enumerate() {
        let mut t = times[i].clone();
        t.sort();
        let med = quantile(&t, 0.5);
        let extra = med.as_secs_f64() - median(*base).as_secs_f64();
        let (bytes, status) = sent[i];
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            millis(med),
            millis(quantile(&t, 0.9)),
            if i == *base {
                "-".to_owned()
            } else {
                format!("{:+.1} ms", extra * 1000.0)
            },
            bytes.map_or("-".to_owned(), |b| format!("{b} B")),
            status.map_or("-".to_owned(), |s| format!("HTTP {s}")),
        );
    }
}
