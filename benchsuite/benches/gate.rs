//! Release-gate benchmark: `vigil-build check` on about 1 GB of goodware (/usr/bin, then whole
//! directories of /usr/lib in name order while they fit) with the community YARA set (the files
//! vigil's lint accepts) plus rules-src, beside plain `vigil-scan` on the same files and rules.
//! Prints:
//! - files/s and MB/s at 1 and 2 threads, load time and peak RSS of each (every run is its own
//!   process under /usr/bin/time; throughput is corpus bytes / (full run - load run), the load
//!   run being a scan of one tiny file, so `check`'s in-memory lint and build do not count;
//!   the fastest of VIGIL_BENCH_RUNS, default 2, of each);
//! - `check`'s scan time over `vigil-scan`'s (the goal is at most 1.3x);
//! - the distribution of per-rule YARA costs (ms per GB, one thread, so yara-x itemises every
//!   rule above 100 ms/GB) behind `check`'s default `--max-rule-ms-per-gb`;
//! - what the community files vigil's lint refuses as slow cost (`check --rules` on them, on a
//!   smaller corpus, VIGIL_BENCH_SLOW_BYTES, 50 MB by default: the worst scan at megabytes per
//!   second, a gigabyte would take hours).
//!
//! Both programs come from the same workspace build, where cargo's feature unification compiles
//! yara-x's rules profiling into vigil-scan too: the ratio is then `check`'s own extra work. To
//! set the profiling itself against a build without it, build vigil-scan alone
//! (`cargo build --release -p vigil-scan --target-dir target/plain`) and name it in
//! VIGIL_BENCH_PLAIN_SCAN: its rows are added beside the others.
//!
//! `cargo test --workspace --release --no-run && cargo bench --workspace --bench gate`
//! (VIGIL_BENCH_BYTES to change the corpus size; the community set is read from
//! ../shared/corpora/yara-rules-community and never copied into the repository).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use vigil_compiler::{build, sources, BuildOptions, LintOptions};
use vigil_format::SecretKey;
use vigil_tests::thirdparty;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn work_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("bench-gate")
}

/// Bytes and files the scan would see under `path`: regular files, symlinks to files, no
/// symlinked directories below the top (as scan-core's walk does).
fn measure(path: &Path, top: bool) -> (u64, u64) {
    let Ok(link) = std::fs::symlink_metadata(path) else {
        return (0, 0);
    };
    let Ok(meta) = std::fs::metadata(path) else {
        return (0, 0);
    };
    if meta.is_dir() {
        if link.file_type().is_symlink() && !top {
            return (0, 0);
        }
        let Ok(rd) = std::fs::read_dir(path) else {
            return (0, 0);
        };
        rd.flatten()
            .map(|e| measure(&e.path(), false))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    } else if meta.is_file() {
        (meta.len(), 1)
    } else {
        (0, 0)
    }
}

/// Files of /usr/bin up to 32 MB each (its few larger ones, Go and Node binaries, would fill
/// half the budget), then entries of /usr/lib in name order, each whole, while they fit in
/// `budget` bytes (no symlinks at the top of /usr/lib: they would count files twice). Each is
/// passed as a path of its own, so both programs scan exactly these.
fn corpus(budget: u64) -> (Vec<PathBuf>, u64, u64) {
    let listed = |dir: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let bin = listed("/usr/bin")
        .into_iter()
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() <= 32 << 20));
    let lib = listed("/usr/lib")
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| !m.file_type().is_symlink()));
    let mut roots = Vec::new();
    let (mut bytes, mut files) = (0, 0);
    for c in bin.chain(lib) {
        let (b, f) = measure(&c, true);
        if f == 0 || bytes + b > budget {
            continue;
        }
        bytes += b;
        files += f;
        roots.push(c);
    }
    (roots, bytes, files)
}

/// Runs `cmd` under /usr/bin/time with stdout to `out`: (wall seconds, max RSS MB).
fn timed(cmd: &[String], out: &Path) -> (f64, f64) {
    let stdout = std::fs::File::create(out).expect("stdout file");
    vigil_benchsuite::timed(cmd, Stdio::from(stdout))
}

fn s(x: impl AsRef<std::ffi::OsStr>) -> String {
    x.as_ref().to_string_lossy().into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Row {
    tool: String,
    threads: usize,
    load: f64,
    scan: f64,
    rss: f64,
}

fn main() {
    if !Path::new("/usr/bin/time").exists() {
        println!("SKIP: needs /usr/bin/time (Debian package time)");
        return;
    }
    let build_exe = vigil_benchsuite::program("vigil-build");
    let scan = vigil_benchsuite::program("vigil-scan");
    let plain = std::env::var_os("VIGIL_BENCH_PLAIN_SCAN").map(PathBuf::from);
    let runs: usize = std::env::var("VIGIL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
        .max(1);
    let budget = std::env::var("VIGIL_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000_000u64);

    let work = work_dir();
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("mkdir");
    let rules = work.join("rules");
    let slow_rules = work.join("slow-rules");
    let community = root().join("../shared/corpora/yara-rules-community");
    if community.is_dir() {
        // What a vigil rule set could ship, and apart from it what lint refuses as slow.
        let strict = thirdparty::import_yara_dir(&community);
        let lenient = thirdparty::import_yara_dir_with(
            &community,
            &LintOptions {
                slow_as_warnings: true,
            },
        );
        let shipped: std::collections::HashSet<&str> =
            strict.kept.iter().map(|(r, _)| r.as_str()).collect();
        let slow_only: Vec<(String, String)> = lenient
            .kept
            .iter()
            .filter(|(r, _)| !shipped.contains(r.as_str()))
            .cloned()
            .collect();
        println!(
            "community set: {} files kept, {} dropped; {} more kept with slow rules allowed",
            strict.kept.len(),
            strict.dropped.len(),
            slow_only.len()
        );
        thirdparty::write_tree(&rules.join("community"), &strict.kept).expect("write");
        thirdparty::write_tree(&slow_rules, &slow_only).expect("write");
    } else {
        println!("note: community rules absent: rules-src alone");
    }
    copy_dir(&root().join("rules-src"), &rules.join("rules-src"));
    let key = SecretKey::from_seed([78; 32]);
    let files = sources::collect(std::slice::from_ref(&rules)).expect("collect");
    let built = build(&files, &key, &BuildOptions::new(1)).expect("build the rule set");
    let db = work.join("gate.vdb");
    std::fs::write(&db, &built.bytes).expect("write");
    let pubkey = work.join("bench.pub");
    std::fs::write(&pubkey, key.public().to_text()).expect("write");
    println!(
        "rules: {} YARA rules, {} bytes of database",
        built.lint.yara_rules.len(),
        built.bytes.len()
    );

    let (roots, bytes, nfiles) = corpus(budget);
    let in_lib: Vec<String> = roots
        .iter()
        .filter(|r| r.starts_with("/usr/lib"))
        .map(s)
        .collect();
    println!(
        "corpus: {nfiles} files, {:.0} MB: {} files of /usr/bin, and {}",
        bytes as f64 / 1e6,
        roots.len() - in_lib.len(),
        in_lib.join(" ")
    );
    // Warm the page cache so the first run does not pay for the disk.
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find {} -type f -exec cat {{}} + > /dev/null 2>&1",
            roots.iter().map(s).collect::<Vec<_>>().join(" ")
        ))
        .status();
    let tiny = work.join("tiny.txt");
    std::fs::write(&tiny, b"x").expect("write");
    let root_args: Vec<String> = roots.iter().map(s).collect();

    let scan_cmd = |exe: &Path, threads: usize, targets: &[String]| -> Vec<String> {
        let mut v = vec![s(exe), "-d".into(), s(&db), "--pubkey".into(), s(&pubkey)];
        v.extend(["-r", "-i", "--no-summary", "--threads"].map(String::from));
        v.push(threads.to_string());
        v.extend(targets.iter().cloned());
        v
    };
    let check_cmd = |threads: usize, targets: &[String]| -> Vec<String> {
        let mut v = vec![s(&build_exe), "check".into(), "--db".into(), s(&db)];
        v.extend(["--pubkey".into(), s(&pubkey)]);
        for t in targets {
            v.extend(["--goodware".into(), t.clone()]);
        }
        v.extend(["--threads".into(), threads.to_string()]);
        v.extend(
            [
                "--format",
                "json",
                "--top",
                "1000000",
                "--progress",
                "never",
            ]
            .map(String::from),
        );
        v
    };
    let tiny_arg = [s(&tiny)];
    let mut rows: Vec<Row> = Vec::new();
    let mut reports: Vec<(usize, Value)> = Vec::new();
    println!("\nruns:");
    for threads in [1, 2] {
        let mut tools: Vec<(String, Vec<String>, Vec<String>)> = vec![(
            "vigil-scan".into(),
            scan_cmd(&scan, threads, &tiny_arg),
            scan_cmd(&scan, threads, &root_args),
        )];
        if let Some(p) = &plain {
            tools.push((
                "vigil-scan without profiling".into(),
                scan_cmd(p, threads, &tiny_arg),
                scan_cmd(p, threads, &root_args),
            ));
        }
        tools.push((
            "vigil-build check".into(),
            check_cmd(threads, &tiny_arg),
            check_cmd(threads, &root_args),
        ));
        for (tool, load_cmd, full_cmd) in tools {
            let out = work.join(format!("out-{}-{threads}.txt", tool.replace(' ', "-")));
            // Once to warm vigil-scan's compiled-rule cache, then timed: the fastest of
            // `runs` (the machine may be shared; the slower runs are someone else's noise).
            let _ = timed(&load_cmd, &out);
            let (mut load, mut full, mut rss) = (f64::MAX, f64::MAX, 0f64);
            for _ in 0..runs {
                load = load.min(timed(&load_cmd, &out).0);
                let (wall, r) = timed(&full_cmd, &out);
                full = full.min(wall);
                rss = rss.max(r);
            }
            let scan_s = (full - load).max(0.001);
            println!(
                "  {tool:<30} {threads} thread(s): load {load:>5.2} s  scan {scan_s:>6.2} s  \
                 {:>7.0} files/s  {:>6.1} MB/s  peak RSS {rss:>5.0} MB",
                nfiles as f64 / scan_s,
                bytes as f64 / 1e6 / scan_s
            );
            if tool == "vigil-build check" {
                let text = std::fs::read_to_string(&out).unwrap_or_default();
                match serde_json::from_str::<Value>(&text) {
                    Ok(v) => reports.push((threads, v)),
                    Err(e) => eprintln!("  note: check's report is not JSON: {e}"),
                }
            }
            rows.push(Row {
                tool,
                threads,
                load,
                scan: scan_s,
                rss,
            });
        }
    }

    println!("\n| tool | threads | files/s | MB/s | load s | peak RSS MB | time / vigil-scan's |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let base = rows
            .iter()
            .find(|b| b.tool == "vigil-scan" && b.threads == r.threads)
            .map_or(r.scan, |b| b.scan);
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.2} | {:.0} | {:.2}x |",
            r.tool,
            r.threads,
            nfiles as f64 / r.scan,
            bytes as f64 / 1e6 / r.scan,
            r.load,
            r.rss,
            r.scan / base
        );
    }

    // The budget: per-rule costs on one thread (the lowest itemisation floor).
    match reports.iter().find(|(t, _)| *t == 1) {
        Some((_, report)) => costs(report, "community (lint-accepted) + rules-src"),
        None => println!("\nno report from check: budget measurements skipped"),
    }

    if slow_rules.is_dir() {
        let slow_budget = std::env::var("VIGIL_BENCH_SLOW_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50_000_000u64);
        let (small, small_bytes, small_files) = corpus(slow_budget);
        let mut cmd = vec![
            s(&build_exe),
            "check".into(),
            "--rules".into(),
            s(&slow_rules),
        ];
        for t in &small {
            cmd.extend(["--goodware".into(), s(t)]);
        }
        cmd.extend(
            [
                "--threads",
                "1",
                "--format",
                "json",
                "--top",
                "1000000",
                "--progress",
                "never",
            ]
            .map(String::from),
        );
        let out = work.join("out-slow.txt");
        let (wall, _) = timed(&cmd, &out);
        println!(
            "\nthe community files lint refuses as slow, `check --rules` on {small_files} files, {:.0} MB ({wall:.0} s):",
            small_bytes as f64 / 1e6
        );
        match serde_json::from_str::<Value>(&std::fs::read_to_string(&out).unwrap_or_default()) {
            Ok(report) => {
                costs(&report, "slow community files");
                println!(
                    "flagged slow by yara-x: {} rule(s)",
                    report["cost"]["slow"].as_array().map_or(0, Vec::len)
                );
            }
            Err(e) => println!("  no JSON report: {e}"),
        }
    }
}

/// The distribution of itemised per-rule costs in a check report, and the costliest rules.
fn costs(report: &Value, what: &str) {
    let cost = &report["cost"];
    let rows: Vec<(String, f64, String)> = cost["yara_top"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|y| {
                    (
                        y["rule"].as_str().unwrap_or("?").to_string(),
                        y["ms_per_gb"].as_f64().unwrap_or(0.0),
                        format!(
                            "{}:{}",
                            y["file"].as_str().unwrap_or("?"),
                            y["line"].as_u64().unwrap_or(0)
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ms: Vec<f64> = rows.iter().map(|r| r.1).collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "\nper-rule YARA cost, {what}, 1 thread, {:.0} MB: {} of {} rules itemised (above {:.0} ms/GB)",
        report["corpus"]["bytes"].as_f64().unwrap_or(0.0) / 1e6,
        ms.len(),
        report["rules"]["yara"],
        cost["itemised_above_ms_per_gb"].as_f64().unwrap_or(0.0),
    );
    println!(
        "| median | p90 | p99 | max | over {:.0} ms/GB (default budget) |",
        cost["max_rule_ms_per_gb"].as_f64().unwrap_or(0.0)
    );
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {:.0} | {:.0} | {:.0} | {:.0} | {} |",
        quantile(&ms, 0.5),
        quantile(&ms, 0.9),
        quantile(&ms, 0.99),
        ms.last().copied().unwrap_or(0.0),
        cost["over_budget"].as_array().map_or(0, Vec::len),
    );
    println!("costliest (ms/GB):");
    for (rule, ms, at) in rows.iter().take(15) {
        println!("  {ms:>10.0}  {rule}  ({at})");
    }
    let fps = report["false_positives"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    println!(
        "false positives on this goodware: {} signature(s), the most frequent:",
        fps.len()
    );
    for f in fps.iter().take(8) {
        println!(
            "  {:>6} files  {}",
            f["new"]["files"].as_u64().unwrap_or(0),
            f["signature"].as_str().unwrap_or("?")
        );
    }
}
