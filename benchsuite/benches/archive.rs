//! Archive scanning beside clamscan, in one run: a corpus of tar.gz and zip files built from
//! /usr/bin subsets (one of them holding EICAR), the same signatures for both (EICAR's body
//! and MD5, plus 5,000 random body signatures so matching costs something), whole processes.
//! MB/s is given over the compressed bytes read and over the bytes expanded and scanned.
//!
//! `cargo test --workspace --release --no-run && cargo bench --workspace --bench archive`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use md5::{Digest, Md5};
use vigil_benchsuite::{program, timed};
use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::SecretKey;

const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// Expanded bytes per archive, and archives per format.
const PER_ARCHIVE: u64 = 24 << 20;
const ARCHIVES: usize = 4;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn usr_bin() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/bin")
        .expect("/usr/bin")
        .flatten()
        .map(|e| e.path())
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.len() > 4096))
        .collect();
    v.sort();
    v
}

/// Builds the corpus once: ARCHIVES tar.gz and ARCHIVES zip files, each of about PER_ARCHIVE
/// expanded bytes of distinct /usr/bin programs. Returns (dir, compressed bytes, expanded bytes).
fn corpus() -> (PathBuf, u64, u64) {
    let dir = root().join("target/bench-archive/corpus");
    // Outside the corpus, so the scans do not count it.
    let stamp = root().join("target/bench-archive/corpus.done");
    let files = usr_bin();
    let mut groups: Vec<Vec<PathBuf>> = Vec::new();
    let mut cur = Vec::new();
    let mut size = 0;
    for f in files {
        size += std::fs::metadata(&f).map_or(0, |m| m.len());
        cur.push(f);
        if size >= PER_ARCHIVE {
            groups.push(std::mem::take(&mut cur));
            size = 0;
            if groups.len() == 2 * ARCHIVES {
                break;
            }
        }
    }
    if !stamp.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (i, g) in groups.iter().enumerate() {
            if i % 2 == 0 {
                let f = std::fs::File::create(dir.join(format!("bin-{i}.tar.gz"))).expect("tgz");
                let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
                let mut t = tar::Builder::new(gz);
                for p in g {
                    let name = p.file_name().expect("name");
                    t.append_path_with_name(p, name).expect("append");
                }
                if i == 0 {
                    let mut h = tar::Header::new_gnu();
                    h.set_size(EICAR.len() as u64);
                    h.set_mode(0o644);
                    h.set_cksum();
                    t.append_data(&mut h, "eicar.com", EICAR).expect("eicar");
                }
                t.into_inner().expect("tar").finish().expect("gz");
            } else {
                let f = std::fs::File::create(dir.join(format!("bin-{i}.zip"))).expect("zip");
                let mut z = zip::ZipWriter::new(f);
                let opts = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated);
                for p in g {
                    let name = p.file_name().expect("name").to_string_lossy().into_owned();
                    z.start_file(name, opts).expect("entry");
                    z.write_all(&std::fs::read(p).expect("read"))
                        .expect("write");
                }
                z.finish().expect("zip");
            }
        }
        std::fs::write(&stamp, b"").expect("stamp");
    }
    let compressed = std::fs::read_dir(&dir)
        .expect("ls")
        .flatten()
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    let expanded = groups
        .iter()
        .flatten()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum::<u64>()
        + EICAR.len() as u64;
    (dir, compressed, expanded)
}

/// The same signatures for both tools: EICAR's body and MD5 and 5,000 random 16-byte body
/// signatures (xorshift, fixed seed).
fn rules(dir: &Path) {
    std::fs::create_dir_all(dir).expect("rules dir");
    let mut ndb = format!("Bench.Eicar-Body:0:*:{}\n", hex::encode(&EICAR[..40]));
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..5000 {
        let mut b = [0u8; 16];
        for byte in &mut b {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *byte = x as u8;
        }
        ndb.push_str(&format!("Bench.Random-{i}:0:*:{}\n", hex::encode(b)));
    }
    std::fs::write(dir.join("bench.ndb"), ndb).expect("ndb");
    let md5 = hex::encode(Md5::digest(EICAR));
    std::fs::write(
        dir.join("bench.hdb"),
        format!("{md5}:{}:Bench.Eicar-MD5\n", EICAR.len()),
    )
    .expect("hdb");
}

fn main() {
    let (corpus_dir, compressed, expanded) = corpus();
    let work = root().join("target/bench-archive");
    let rules_dir = work.join("rules");
    rules(&rules_dir);
    let key = SecretKey::from_seed([7; 32]);
    let db = build(
        &sources::collect(std::slice::from_ref(&rules_dir)).expect("collect"),
        &key,
        &BuildOptions::new(1),
    )
    .expect("build")
    .bytes;
    let db_path = work.join("bench.vdb");
    std::fs::write(&db_path, db).expect("db");
    let pub_path = work.join("bench.pub");
    std::fs::write(&pub_path, key.public().to_text()).expect("pub");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let scan = program("vigil-scan");
    let vigil = |threads: &str| {
        vec![
            s(&scan),
            "-d".into(),
            s(&db_path),
            "--pubkey".into(),
            s(&pub_path),
            "--no-summary".into(),
            "-i".into(),
            "--threads".into(),
            threads.into(),
            "-r".into(),
            s(&corpus_dir),
        ]
    };
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    // One warm-up each, so neither tool pays for the page cache.
    let _ = timed(&vigil("2"), Stdio::null());
    for t in ["1", "2"] {
        let (wall, rss) = timed(&vigil(t), Stdio::null());
        rows.push((format!("vigil-scan --threads {t}"), wall, rss));
    }
    let have_clamscan = std::process::Command::new("clamscan")
        .arg("--version")
        .output()
        .is_ok();
    if have_clamscan {
        let c = vec![
            "clamscan".to_string(),
            "--no-summary".into(),
            "-i".into(),
            "--bytecode=no".into(),
            "-d".into(),
            s(&rules_dir),
            "-r".into(),
            s(&corpus_dir),
        ];
        let _ = timed(&c, Stdio::null());
        let (wall, rss) = timed(&c, Stdio::null());
        rows.push(("clamscan (single-threaded)".into(), wall, rss));
    } else {
        eprintln!("SKIP clamscan: not installed (apt-get install clamav)");
    }
    let count = |ext: &str| {
        std::fs::read_dir(&corpus_dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(ext))
                    .count()
            })
            .unwrap_or(0)
    };
    println!(
        "\narchive scanning: {} tar.gz + {} zip, {:.1} MB compressed, {:.1} MB expanded, 5001 body + 1 hash signatures",
        count(".tar.gz"),
        count(".zip"),
        compressed as f64 / 1e6,
        expanded as f64 / 1e6
    );
    println!(
        "| tool | wall s | MB/s compressed | MB/s expanded | max RSS MB |\n|---|---|---|---|---|"
    );
    for (name, wall, rss) in &rows {
        println!(
            "| {name} | {wall:.2} | {:.1} | {:.1} | {rss:.0} |",
            compressed as f64 / 1e6 / wall.max(1e-3),
            expanded as f64 / 1e6 / wall.max(1e-3)
        );
    }
    if let (Some(v), Some(c)) = (
        rows.iter().find(|r| r.0.ends_with("threads 1")),
        rows.iter().find(|r| r.0.starts_with("clamscan")),
    ) {
        println!(
            "\nvigil (1 thread) vs clamscan: {:.1}x (goal: 2x)",
            c.1 / v.1.max(1e-3)
        );
    }
}
