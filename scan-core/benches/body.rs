//! Body-signature prefilters side by side, in process, on the same files: the window index
//! (the engine's default) against one Aho-Corasick automaton over whole literal runs. Prints
//! build time, the memory the build added, and single-thread scan throughput, for 100k and 1M
//! random 12-31-byte signatures. Aho-Corasick at 1M takes minutes to build, so it runs only with
//! VIGIL_BENCH_AC_1M=1. Corpus: target/bench-corpus if the scan bench made it, else /usr/bin.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vigil_format::sigs::parse_ndb_line;
use vigil_scan_core::body::{BodyMatcherBuilder, Prefilter};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    v.sort();
    for p in v {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            files(&p, out);
        } else if m.is_file() {
            out.push(p);
        }
    }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let corpus_dir = [root.join("target/bench-corpus"), PathBuf::from("/usr/bin")]
        .into_iter()
        .find(|p| p.is_dir())
        .expect("a corpus directory");
    let budget: u64 = std::env::var("VIGIL_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000_000);
    let mut paths = Vec::new();
    files(&corpus_dir, &mut paths);
    let mut corpus = Vec::new();
    let mut total = 0u64;
    for p in paths {
        if total >= budget {
            break;
        }
        if let Ok(b) = std::fs::read(&p) {
            total += b.len() as u64;
            corpus.push(b);
        }
    }
    println!(
        "corpus: {} files, {:.0} MB from {} (held in memory)",
        corpus.len(),
        total as f64 / 1e6,
        corpus_dir.display()
    );
    let ac_1m = std::env::var("VIGIL_BENCH_AC_1M").is_ok_and(|v| v == "1");
    let mut rows = Vec::new();
    for n in [100_000usize, 1_000_000] {
        let mut rng = Rng(0x1234_5678_9abc_def1 ^ n as u64);
        let lines: Vec<String> = (0..n)
            .map(|i| {
                let len = 12 + (rng.next() % 20) as usize;
                let hex: String = (0..len)
                    .map(|_| format!("{:02x}", rng.next() as u8))
                    .collect();
                format!("Bench.Body.R{i}-1:0:*:{hex}")
            })
            .collect();
        for (label, pf) in [
            ("window index", Prefilter::Window),
            ("aho-corasick (contiguous NFA)", Prefilter::AhoCorasick),
        ] {
            if pf == Prefilter::AhoCorasick && n >= 1_000_000 && !ac_1m {
                rows.push(format!(
                    "| {n} | {label} | skipped (VIGIL_BENCH_AC_1M=1) | | |"
                ));
                continue;
            }
            let before = rss_mb();
            let t = Instant::now();
            let mut b = BodyMatcherBuilder::default();
            for l in &lines {
                b.add(&parse_ndb_line(l).expect("valid line"))
                    .expect("anchor");
            }
            let m = b.build(pf).expect("build");
            let build = t.elapsed().as_secs_f64();
            let grown = rss_mb() - before;
            let t = Instant::now();
            let mut hits = 0;
            for f in &corpus {
                hits += m.scan(f, None).expect("scan").len();
            }
            let secs = t.elapsed().as_secs_f64();
            rows.push(format!(
                "| {n} | {label} | {build:.2} | {grown:.0} | {:.0} | {hits} |",
                total as f64 / 1e6 / secs
            ));
            println!("  {}", rows.last().expect("row"));
        }
    }
    println!(
        "\n| signatures | prefilter | build s | memory added MB | scan MB/s (1 thread) | matches |"
    );
    println!("|---:|---|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
}
