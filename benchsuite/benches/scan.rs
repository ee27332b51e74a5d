//! Scan benchmark, every figure side by side in one run on the same files:
//! (a) the community YARA rules: vigil-scan vs `yr scan` (yara-x CLI) vs `yara` 4;
//! (b) 100k and 1M random 12-31-byte body signatures + 3k hash signatures vs clamscan;
//! (c) all layers at once; plus cold/warm load time, peak RSS, 1 vs 2 threads, and peak RSS
//! while a second engine is built next to a loaded one (a hot swap).
//!
//! Every run is a separate process under /usr/bin/time (wall clock, max RSS). Load time is a run
//! over one tiny file; throughput is corpus bytes / (full run - load run).
//! `cargo test --workspace --release --no-run && cargo bench --workspace --bench scan` (the
//! first builds the vigil-scan the bench runs, which `cargo bench` alone does not rebuild;
//! VIGIL_BENCH_SETS=a,b to pick sets, VIGIL_BENCH_BASELINE=old/vigil-scan to add an older
//! build's rows beside this one's).
//! Corpus: /usr/share/clamav-testfiles, /usr/bin and /usr/lib/x86_64-linux-gnu, copied once to
//! target/bench-corpus (regular files up to 32 MB each, about 1 GB in all; $VIGIL_BENCH_BYTES).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::SecretKey;
use vigil_tests::thirdparty;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// Copies regular files into one tree so every tool scans exactly the same bytes.
fn corpus(budget: u64) -> (PathBuf, u64, usize) {
    let dest = root().join("target/bench-corpus");
    let marker = dest.join(".complete");
    if let Ok(s) = std::fs::read_to_string(&marker) {
        let mut it = s.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
        return (
            dest,
            it.next().unwrap_or(0),
            it.next().unwrap_or(0) as usize,
        );
    }
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest).expect("mkdir");
    let (mut total, mut n) = (0u64, 0usize);
    for src in [
        "/usr/share/clamav-testfiles",
        "/usr/bin",
        "/usr/lib/x86_64-linux-gnu",
    ] {
        let mut files = Vec::new();
        walk(Path::new(src), &mut files);
        files.sort();
        for f in files {
            let Ok(m) = std::fs::symlink_metadata(&f) else {
                continue;
            };
            if !m.is_file() || m.len() == 0 || m.len() > 32 << 20 || total + m.len() > budget {
                continue;
            }
            let rel = f.strip_prefix("/").unwrap_or(&f);
            let to = dest.join(rel);
            std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            if std::fs::copy(&f, &to).is_ok() {
                total += m.len();
                n += 1;
            }
        }
    }
    std::fs::write(&marker, format!("{total} {n}")).expect("marker");
    (dest, total, n)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// Runs a command under /usr/bin/time: (wall seconds, max RSS MB).
/// A reference tool that runs longer than this (VIGIL_BENCH_TOOL_CAP seconds, default 600) is
/// killed and its throughput reported as an upper bound: clamscan with a million body
/// signatures scans at about 1 MB/s and would hold the bench for hours.
fn tool_cap() -> u64 {
    std::env::var("VIGIL_BENCH_TOOL_CAP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600)
}

fn timed(cmd: &[String]) -> (f64, f64) {
    let capped: Vec<String> = ["timeout", "-s", "KILL", &tool_cap().to_string()]
        .into_iter()
        .map(String::from)
        .chain(cmd.iter().cloned())
        .collect();
    vigil_benchsuite::timed(&capped, Stdio::piped())
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

struct Row {
    set: String,
    tool: String,
    load: f64,
    mbps: f64,
    rss: f64,
}

fn run_tool(
    rows: &mut Vec<Row>,
    set: &str,
    tool: &str,
    load_cmd: &[String],
    scan_cmd: &[String],
    bytes: u64,
) {
    let (load, _) = timed(load_cmd);
    let (full, rss) = timed(scan_cmd);
    let mbps = bytes as f64 / 1e6 / (full - load).max(0.001);
    let killed = full >= tool_cap() as f64;
    let tool = if killed {
        format!(
            "{tool}, killed after {} s: MB/s is an upper bound",
            tool_cap()
        )
    } else {
        tool.to_string()
    };
    println!(
        "  {set:<24} {tool:<30} load {load:>6.2} s  scan {:>7.2} s  {mbps:>8.1} MB/s  peak RSS {rss:>6.0} MB",
        full - load
    );
    rows.push(Row {
        set: set.into(),
        tool,
        load,
        mbps,
        rss,
    });
}

fn s(x: impl AsRef<std::ffi::OsStr>) -> String {
    x.as_ref().to_string_lossy().into_owned()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--swap-probe") {
        return swap_probe();
    }
    // The test build puts the program beside this bench, wherever its target directory is.
    let vigil = vigil_benchsuite::program("vigil-scan");
    if !Path::new("/usr/bin/time").exists() {
        println!("SKIP: needs /usr/bin/time (Debian package time)");
        return;
    }
    // VIGIL_BENCH_BASELINE=/path/to/an/older/vigil-scan adds its rows beside this build's, in
    // the same run on the same files (how a change's cost is measured).
    let baseline = std::env::var_os("VIGIL_BENCH_BASELINE").map(PathBuf::from);
    let budget = std::env::var("VIGIL_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000_000u64);
    let (corpus_dir, bytes, nfiles) = corpus(budget);
    // Warm the page cache so the first tool does not pay for the disk.
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find {} -type f -exec cat {{}} + > /dev/null",
            corpus_dir.display()
        ))
        .status();
    println!(
        "corpus: {nfiles} files, {:.0} MB in {}",
        bytes as f64 / 1e6,
        corpus_dir.display()
    );
    let work = root().join("target/bench-scan");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("mkdir");
    let tiny = work.join("tiny.txt");
    std::fs::write(&tiny, b"x").expect("write");
    let key = SecretKey::from_seed([77; 32]);
    let pubkey = work.join("bench.pub");
    std::fs::write(&pubkey, key.public().to_text()).expect("write");

    let community = root().join("../shared/corpora/yara-rules-community");
    let yara_kept = if community.is_dir() {
        thirdparty::import_yara_dir(&community).kept
    } else {
        println!("note: community rules absent: sets (a) and (c) skipped");
        Vec::new()
    };
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let body = |rng: &mut Rng, n: usize| -> String {
        let mut out = String::with_capacity(n * 60);
        for i in 0..n {
            let len = 12 + (rng.next() % 20) as usize;
            let b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = writeln!(out, "Bench.Body.R{i}-1:0:*:{}", hex(&b));
        }
        out
    };
    let mut hdb = String::new();
    for i in 0..3000 {
        let b: Vec<u8> = (0..16).map(|_| rng.next() as u8).collect();
        let _ = writeln!(hdb, "{}:{}:Bench.Hash.R{i}-1", hex(&b), 1000 + i);
    }
    let body100k = body(&mut rng, 100_000);
    let body1m = body(&mut rng, 1_000_000);
    let all_yar: String = yara_kept.iter().map(|(_, t)| format!("{t}\n")).collect();

    let mk = |name: &str, yara: bool, ndb: Option<&str>| -> PathBuf {
        let dir = work.join(format!("rules-{name}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        if yara {
            thirdparty::write_tree(&dir.join("yara"), &yara_kept).expect("write");
        }
        if let Some(ndb) = ndb {
            std::fs::write(dir.join("bench.ndb"), ndb).expect("write");
            std::fs::write(dir.join("bench.hdb"), &hdb).expect("write");
        }
        dir
    };
    let mut sets: Vec<(String, PathBuf)> = Vec::new();
    if !yara_kept.is_empty() {
        sets.push(("(a) community YARA".into(), mk("a", true, None)));
    }
    sets.push((
        "(b) 100k body + 3k hash".into(),
        mk("b100k", false, Some(&body100k)),
    ));
    sets.push((
        "(b) 1M body + 3k hash".into(),
        mk("b1m", false, Some(&body1m)),
    ));
    if !yara_kept.is_empty() {
        sets.push(("(c) all layers".into(), mk("c", true, Some(&body100k))));
    }
    // VIGIL_BENCH_SETS=a,c runs only those sets (letters of the issue's list).
    if let Ok(only) = std::env::var("VIGIL_BENCH_SETS") {
        sets.retain(|(name, _)| {
            only.split(',')
                .any(|l| name.starts_with(&format!("({})", l.trim())))
        });
    }
    let yara_file = work.join("community.yar");
    std::fs::write(&yara_file, &all_yar).expect("write");

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    println!("\nruns:");
    for (set, dir) in &sets {
        let t = Instant::now();
        let srcs = sources::collect(std::slice::from_ref(dir)).expect("collect");
        let db = build(&srcs, &key, &BuildOptions::new(1))
            .expect("build")
            .bytes;
        let build_s = t.elapsed().as_secs_f64();
        let db_path = work.join(format!(
            "{}.vdb",
            dir.file_name().expect("name").to_string_lossy()
        ));
        std::fs::write(&db_path, &db).expect("write");
        let cache = work.join(format!(
            "cache-{}",
            dir.file_name().expect("name").to_string_lossy()
        ));
        let vig_with = |exe: &Path, cache: &Path, threads: usize, target: &Path| -> Vec<String> {
            let mut v = vec![
                s(exe),
                "-d".into(),
                s(&db_path),
                "--pubkey".into(),
                s(&pubkey),
            ];
            v.extend([
                "--cache-dir".into(),
                s(cache),
                "-r".into(),
                "-i".into(),
                "--no-summary".into(),
            ]);
            v.extend(["--threads".into(), threads.to_string(), s(target)]);
            v
        };
        let vig = |threads: usize, target: &Path| vig_with(&vigil, &cache, threads, target);
        let (cold, cold_rss) = timed(&vig(1, &tiny));
        for threads in [1, 2] {
            run_tool(
                &mut rows,
                set,
                &format!("vigil-scan, {threads} thread(s)"),
                &vig(threads, &tiny),
                &vig(threads, &corpus_dir),
                bytes,
            );
            if let Some(old) = &baseline {
                // Its own cache directory: the two builds' cache formats may differ.
                let old_cache = cache.with_extension("baseline");
                let _ = timed(&vig_with(old, &old_cache, 1, &tiny));
                run_tool(
                    &mut rows,
                    set,
                    &format!("baseline vigil-scan, {threads} thread(s)"),
                    &vig_with(old, &old_cache, threads, &tiny),
                    &vig_with(old, &old_cache, threads, &corpus_dir),
                    bytes,
                );
            }
        }
        let swap = Command::new(std::env::current_exe().expect("exe"))
            .args(["--swap-probe", &s(&db_path), &s(&pubkey)])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        notes.push(format!(
            "| {set} | {build_s:.2} | {} | {cold:.2} | {cold_rss:.0} | {swap} |",
            db.len()
        ));
        if set.starts_with("(a)") {
            if have("yr") {
                let compiled = work.join("community.yarc");
                let _ = Command::new("yr")
                    .arg("compile")
                    .arg(&yara_file)
                    .arg("-o")
                    .arg(&compiled)
                    .output();
                let yr = |target: &Path| {
                    let mut v = strs(&["yr", "scan", "-r", "-p", "2", "-C"]);
                    v.extend([s(&compiled), s(target)]);
                    v
                };
                run_tool(
                    &mut rows,
                    set,
                    "yr scan -p 2 (precompiled)",
                    &yr(&tiny),
                    &yr(&corpus_dir),
                    bytes,
                );
                let (yr_cold, _) = timed(&[s("yr"), s("scan"), s(&yara_file), s(&tiny)]);
                notes.push(format!(
                    "| yr, compile from source | | | {yr_cold:.2} | | |"
                ));
            } else {
                println!("  note: yr not installed (cargo install yara-x-cli): skipped");
            }
            if have("yara") {
                let y = |target: &Path| {
                    let mut v = strs(&["yara", "-r", "-w", "-p", "2"]);
                    v.extend([s(&yara_file), s(target)]);
                    v
                };
                run_tool(
                    &mut rows,
                    set,
                    "yara 4 -p 2",
                    &y(&tiny),
                    &y(&corpus_dir),
                    bytes,
                );
            }
        }
        if set.starts_with("(b)") && have("clamscan") {
            let c = |target: &Path| {
                let mut v = strs(&["clamscan", "--no-summary", "-i", "-r", "--bytecode=no"]);
                // Only raw matching, like vigil's target type 0: clamscan's parsers off, no limits.
                for o in [
                    "archive", "pe", "elf", "ole2", "pdf", "html", "mail", "swf", "xmldocs", "hwp3",
                ] {
                    v.push(format!("--scan-{o}=no"));
                }
                v.extend(strs(&[
                    "--max-filesize=4000M",
                    "--max-scansize=4000M",
                    "-d",
                ]));
                v.extend([s(dir), s(target)]);
                v
            };
            run_tool(
                &mut rows,
                set,
                "clamscan (single-threaded)",
                &c(&tiny),
                &c(&corpus_dir),
                bytes,
            );
        }
    }

    println!("\n| set | tool | load s | scan MB/s | peak RSS MB |");
    println!("|---|---|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.2} | {:.1} | {:.0} |",
            r.set, r.tool, r.load, r.mbps, r.rss
        );
    }
    println!("\n| set | lint+build s | database bytes | cold load s | cold load RSS MB | RSS one engine / peak during swap |");
    println!("|---|---:|---:|---:|---:|---|");
    for n in notes {
        println!("{n}");
    }
}

/// Child mode: RSS with one engine loaded, then peak RSS while a second one is built beside
/// it and swapped in (what the agent does on an update).
fn swap_probe() {
    let args: Vec<String> = std::env::args().collect();
    let db = std::fs::read(&args[2]).expect("db");
    let key = vigil_format::PublicKey::parse(&std::fs::read_to_string(&args[3]).expect("key"))
        .expect("key");
    let rss = |field: &str| -> f64 {
        let st = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        st.lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    let shared = vigil_scan_core::SharedEngine::new(
        vigil_scan_core::Engine::load(&db, std::slice::from_ref(&key)).expect("load"),
    );
    let one = rss("VmRSS:");
    let next = vigil_scan_core::Engine::load(&db, &[key]).expect("load");
    drop(shared.swap(next));
    let peak = rss("VmHWM:");
    println!("{one:.0} / {peak:.0} MB ({:.2}x)", peak / one.max(1.0));
}
