//! Zip bombs against the real `vigil-scan` process: a nested bomb (42.zip's construction) and
//! Fifield's overlapping-entry zip finish quickly and within bounded memory, never pass as
//! completely scanned, and an encrypted zip is reported as encrypted.

#![allow(clippy::unwrap_used)]

use std::io::{Cursor, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::SecretKey;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// Peak RSS the scanner may reach on any bomb: far below what the bombs expand to.
const MAX_RSS: u64 = 512 << 20;

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(
            *name,
            SimpleFileOptions::default().compression_method(CompressionMethod::Deflated),
        )
        .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// 16 copies of 16 copies ... five levels over 16 files of 4 MiB of zeros: 4 TiB expanded.
fn nested_bomb() -> Vec<u8> {
    let zeros = vec![0u8; 4 << 20];
    let leaves: Vec<(String, &[u8])> = (0..16)
        .map(|i| (format!("zeros-{i}"), &zeros[..]))
        .collect();
    let refs: Vec<(&str, &[u8])> = leaves.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    let mut layer = zip_of(&refs);
    for depth in 0..5 {
        let names: Vec<String> = (0..16).map(|i| format!("l{depth}-{i}.zip")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &layer[..])).collect();
        layer = zip_of(&entries);
    }
    layer
}

/// One deflated entry listed `n` times in the central directory, each pointing at the same
/// local header and data.
fn overlapping_bomb(n: u16) -> Vec<u8> {
    let one = zip_of(&[("kernel-000000", &vec![0u8; 8 << 20][..])]);
    let cd_at = u32::from_le_bytes(one[one.len() - 6..one.len() - 2].try_into().unwrap()) as usize;
    let eocd_at = one.len() - 22;
    let cd = &one[cd_at..eocd_at];
    let mut out = one[..cd_at].to_vec();
    let new_cd_at = out.len() as u32;
    for i in 0..n {
        // Distinct names, as the bomb's entries have (a reader may fold duplicates).
        let mut entry = cd.to_vec();
        let end = 46 + "kernel-000000".len();
        entry[end - 6..end].copy_from_slice(format!("{i:06}").as_bytes());
        out.extend_from_slice(&entry);
    }
    let cd_len = out.len() as u32 - new_cd_at;
    let mut eocd = one[eocd_at..].to_vec();
    eocd[8..10].copy_from_slice(&n.to_le_bytes());
    eocd[10..12].copy_from_slice(&n.to_le_bytes());
    eocd[12..16].copy_from_slice(&cd_len.to_le_bytes());
    eocd[16..20].copy_from_slice(&new_cd_at.to_le_bytes());
    out.extend_from_slice(&eocd);
    out
}

/// EICAR deflated in a zip whose entries carry the "encrypted" flag, as a ZipCrypto archive's do.
fn encrypted_zip() -> Vec<u8> {
    let mut z = zip_of(&[("eicar.com", EICAR)]);
    for i in 0..z.len().saturating_sub(4) {
        match &z[i..i + 4] {
            b"PK\x03\x04" => z[i + 6] |= 1,
            b"PK\x01\x02" => z[i + 8] |= 1,
            _ => {}
        }
    }
    z
}

struct Scan {
    code: Option<i32>,
    stdout: String,
    elapsed: Duration,
    /// The scanner's peak RSS (VmHWM, a high-water mark) as last read before it exited.
    peak_rss: u64,
}

fn setup(dir: &Path) {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("eicar.ndb"),
        format!("Test.Eicar:0:*:{}\n", hex::encode(&EICAR[..32])),
    )
    .unwrap();
    let key = SecretKey::from_seed([33; 32]);
    let db = build(
        &sources::collect(std::slice::from_ref(&rules)).unwrap(),
        &key,
        &BuildOptions::new(1),
    )
    .unwrap()
    .bytes;
    std::fs::write(dir.join("t.vdb"), db).unwrap();
    std::fs::write(dir.join("t.pub"), key.public().to_text()).unwrap();
}

fn scan(dir: &Path, file: &Path, extra: &[&str]) -> Scan {
    let t = Instant::now();
    let mut child = Command::new(vigil_tests::bin("vigil-scan"))
        .arg("-d")
        .arg(dir.join("t.vdb"))
        .arg("--pubkey")
        .arg(dir.join("t.pub"))
        .args(extra)
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let status = format!("/proc/{}/status", child.id());
    let mut peak_rss = 0;
    let code = loop {
        if let Some(kb) = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            peak_rss = peak_rss.max(kb * 1024);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Scan {
        code,
        stdout: reader.join().unwrap(),
        elapsed: t.elapsed(),
        peak_rss,
    }
}

#[test]
fn bombs_stay_within_time_and_memory_and_encryption_is_reported() {
    let t = tempfile::tempdir().unwrap();
    setup(t.path());

    let nested = t.path().join("42.zip");
    std::fs::write(&nested, nested_bomb()).unwrap();
    let r = scan(t.path(), &nested, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert!(r.stdout.contains("Not fully scanned: 1"), "{}", r.stdout);
    assert!(r.elapsed < Duration::from_secs(60), "{:?}", r.elapsed);
    assert!(
        r.peak_rss > 0 && r.peak_rss < MAX_RSS,
        "peak RSS {} MiB",
        r.peak_rss >> 20
    );
    let r = scan(t.path(), &nested, &["--alert-exceeds-max", "--no-summary"]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout.contains("Heuristics.Limits.Exceeded.Max"),
        "{}",
        r.stdout
    );

    let overlapping = t.path().join("overlap.zip");
    std::fs::write(&overlapping, overlapping_bomb(2000)).unwrap();
    let r = scan(t.path(), &overlapping, &["--no-summary"]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("overlap.zip: Heuristics.Zip.OverlappingFiles FOUND"),
        "{}",
        r.stdout
    );
    assert!(r.elapsed < Duration::from_secs(20), "{:?}", r.elapsed);
    assert!(
        r.peak_rss > 0 && r.peak_rss < MAX_RSS,
        "peak RSS {} MiB",
        r.peak_rss >> 20
    );

    let enc = t.path().join("secret.zip");
    std::fs::write(&enc, encrypted_zip()).unwrap();
    let r = scan(t.path(), &enc, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert!(r.stdout.contains("Not fully scanned: 1"), "{}", r.stdout);
    let r = scan(t.path(), &enc, &["--alert-encrypted", "--no-summary"]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout
            .contains("secret.zip!eicar.com: Heuristics.Encrypted.Zip FOUND"),
        "{}",
        r.stdout
    );
}
