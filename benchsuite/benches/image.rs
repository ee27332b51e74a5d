//! Image scan benchmark: `vigil-scan --image` over an ext4 image of a /usr/bin subset built
//! with `mkfs.ext4 -d` (read without mounting), beside `vigil-scan -r` and `clamscan -r` over
//! the same tree on disk, with the same signatures (rules-src's ClamAV files: body, hash and
//! allowlist lines clamscan reads as they are). One table: wall time, MB/s of file data, peak
//! RSS. Load time (a run over one tiny file) is subtracted for the MB/s column, so it measures
//! the scan, not the database load.
//! `cargo test --workspace --release --no-run && cargo bench --workspace --bench image`
//! ($VIGIL_BENCH_IMAGE_BYTES: tree size, default 150 MB).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use vigil_benchsuite::{program, timed};
use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::SecretKey;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Regular files of /usr/bin (no symlinks, each up to 32 MB) copied into `dest` until
/// `budget` bytes: (bytes, files).
fn tree(dest: &Path, budget: u64) -> (u64, usize) {
    let _ = std::fs::remove_dir_all(dest);
    std::fs::create_dir_all(dest).expect("mkdir");
    let mut names: Vec<_> = std::fs::read_dir("/usr/bin")
        .expect("/usr/bin")
        .filter_map(Result::ok)
        .collect();
    names.sort_by_key(|e| e.file_name());
    let (mut total, mut n) = (0u64, 0usize);
    for e in names {
        let Ok(m) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if !m.is_file() || m.len() > 32 << 20 || total >= budget {
            continue;
        }
        // Spread over nested directories, as a real root filesystem is.
        let sub = dest.join(format!("d{}/e{}", n % 7, n % 3));
        std::fs::create_dir_all(&sub).expect("mkdir");
        if std::fs::copy(e.path(), sub.join(e.file_name())).is_ok() {
            total += m.len();
            n += 1;
        }
    }
    (total, n)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn main() {
    if !have("mkfs.ext4") {
        eprintln!("SKIP: mkfs.ext4 is not installed (apt-get install e2fsprogs)");
        return;
    }
    let budget = std::env::var("VIGIL_BENCH_IMAGE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150_000_000u64);
    let work = root().join("target/bench-image");
    let dir = work.join("tree");
    let (bytes, files) = tree(&dir, budget);
    let img = work.join("usr-bin.ext4");
    let size_mb = bytes / 1_000_000 * 13 / 10 + 64;
    let made = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&dir)
        .arg(&img)
        .arg(format!("{size_mb}M"))
        .status()
        .expect("mkfs.ext4");
    assert!(made.success(), "mkfs.ext4 failed");

    // The same signatures for both: rules-src's ClamAV files.
    let sigs = work.join("sigs");
    let _ = std::fs::remove_dir_all(&sigs);
    std::fs::create_dir_all(&sigs).expect("mkdir");
    for e in std::fs::read_dir(root().join("rules-src/clamav")).expect("rules-src") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), sigs.join(e.file_name())).expect("copy");
    }
    let clam_sigs = work.join("clam-sigs");
    let _ = std::fs::remove_dir_all(&clam_sigs);
    std::fs::create_dir_all(&clam_sigs).expect("mkdir");
    for e in std::fs::read_dir(&sigs).expect("sigs") {
        let p = e.expect("entry").path();
        let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
        if ["ndb", "hdb", "hsb", "fp", "sfp"].contains(&ext) {
            std::fs::copy(&p, clam_sigs.join(p.file_name().expect("name"))).expect("copy");
        }
    }
    let key = SecretKey::from_seed([7; 32]);
    let srcs = sources::collect(&[sigs]).expect("collect");
    let db = build(&srcs, &key, &BuildOptions::new(1))
        .expect("build")
        .bytes;
    let db_path = work.join("bench.vdb");
    let pub_path = work.join("bench.pub");
    std::fs::write(&db_path, db).expect("write");
    std::fs::write(&pub_path, key.public().to_text()).expect("write");
    let tiny = work.join("tiny.txt");
    std::fs::write(&tiny, b"tiny\n").expect("write");

    let scan = s(&program("vigil-scan"));
    let vigil = |threads: usize, args: &[String]| {
        let mut v = vec![
            scan.clone(),
            "-d".into(),
            s(&db_path),
            "--pubkey".into(),
            s(&pub_path),
            "--no-summary".into(),
            "-i".into(),
            "--threads".into(),
            threads.to_string(),
        ];
        v.extend_from_slice(args);
        v
    };
    let mut rows: Vec<(String, f64, f64, f64)> = Vec::new();
    let mut row = |name: String, load: &[String], full: &[String]| {
        let (l, _) = timed(load, Stdio::null());
        let (w, rss) = timed(full, Stdio::null());
        let mbs = bytes as f64 / 1e6 / (w - l).max(1e-3);
        rows.push((name, w, mbs, rss));
    };
    for t in [1, 2] {
        row(
            format!("vigil-scan --image (ext4 image), {t} thread(s)"),
            &vigil(t, &[s(&tiny)]),
            &vigil(t, &["--image".into(), s(&img)]),
        );
    }
    for t in [1, 2] {
        row(
            format!("vigil-scan -r (same tree on disk), {t} thread(s)"),
            &vigil(t, &[s(&tiny)]),
            &vigil(t, &["-r".into(), s(&dir)]),
        );
    }
    if have("clamscan") {
        let c = |target: &Path| {
            vec![
                "clamscan".into(),
                "--no-summary".into(),
                "-i".into(),
                "-r".into(),
                "--bytecode=no".into(),
                "-d".into(),
                s(&clam_sigs),
                s(target),
            ]
        };
        row(
            "clamscan -r (same tree on disk, single-threaded)".into(),
            &c(&tiny),
            &c(&dir),
        );
    } else {
        eprintln!("note: clamscan not installed; its row is left out");
    }
    println!(
        "\nImage scan: {files} files, {:.1} MB of /usr/bin in {} ({} MB image)",
        bytes as f64 / 1e6,
        img.display(),
        size_mb
    );
    println!(
        "{:<52} {:>9} {:>9} {:>9}",
        "tool", "wall s", "MB/s", "RSS MB"
    );
    for (name, w, mbs, rss) in rows {
        println!("{name:<52} {w:>9.2} {mbs:>9.1} {rss:>9.1}");
    }
}
