//! The engine inside containers: every layer matched with every signature kind, findings named
//! by their member chain, ClamAV's limits reported (never a silent clean), bombs bounded,
//! encrypted members reported, allowlists per member, and `.ndb` target types by content.

#![allow(clippy::unwrap_used)]

use std::io::{Cursor, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::SecretKey;
use vigil_scan_core::{Engine, Limits, ScanReport, SigKind, Unscannable};
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const INNER: &[u8] = b"an inner payload only its hash signature knows";

fn key() -> SecretKey {
    SecretKey::from_seed([12; 32])
}

/// An engine over rule files written to a temporary directory.
fn engine(files: &[(&str, String)]) -> Engine {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let files = sources::collect(&[dir.path().to_path_buf()]).unwrap();
    let db = build(&files, &key(), &BuildOptions::new(1)).unwrap().bytes;
    Engine::load(&db, &[key().public()]).unwrap()
}

fn sha256(d: &[u8]) -> String {
    hex::encode(Sha256::digest(d))
}

fn standard() -> Engine {
    engine(&[
        (
            "test.ndb",
            format!("Test.Eicar-Body:0:*:{}\n", hex::encode(&EICAR[..32])),
        ),
        (
            "test.hsb",
            format!("{}:{}:Test.Inner-SHA256\n", sha256(INNER), INNER.len()),
        ),
    ])
}

fn zip_of(entries: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(
            *name,
            SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn tar_gz_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut t = tar::Builder::new(gz);
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, *data).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap()
}

fn found(r: &ScanReport) -> Vec<(String, Option<String>)> {
    let mut v: Vec<_> = r
        .findings
        .iter()
        .map(|f| (f.signature.clone(), f.path.clone()))
        .collect();
    v.sort();
    v
}

#[test]
fn every_layer_and_every_kind_with_the_member_chain() {
    let e = standard();
    let inner_zip = zip_of(
        &[("eicar.com", EICAR), ("payload.bin", INNER)],
        CompressionMethod::Deflated,
    );
    let tgz = tar_gz_of(&[("dir/inner.zip", &inner_zip), ("readme.txt", b"hello")]);
    let outer = zip_of(&[("a.tar.gz", &tgz)], CompressionMethod::Stored);
    let r = e.scan_bytes(&outer, &Limits::default()).unwrap();
    assert_eq!(
        found(&r),
        [
            (
                "Test.Eicar-Body".to_string(),
                Some("a.tar.gz!dir/inner.zip!eicar.com".to_string())
            ),
            (
                "Test.Inner-SHA256".to_string(),
                Some("a.tar.gz!dir/inner.zip!payload.bin".to_string())
            ),
        ]
    );
    assert!(r.unscanned.is_empty(), "{:?}", r.unscanned);
    assert_eq!(r.sha256.as_deref(), Some(sha256(&outer).as_str()));
    // Turned off, only the object's own bytes are matched.
    let off = Limits {
        scan_archives: false,
        ..Limits::default()
    };
    assert!(e.scan_bytes(&outer, &off).unwrap().findings.is_empty());
}

#[test]
fn each_limit_is_reported_and_alerts_on_request() {
    let e = standard();
    let inner = zip_of(&[("eicar.com", EICAR)], CompressionMethod::Deflated);
    let mut nested = inner.clone();
    for i in 0..5 {
        nested = zip_of(
            &[(&format!("level{i}.zip"), &nested)],
            CompressionMethod::Deflated,
        );
    }
    let shallow = Limits {
        max_recursion: 3,
        ..Limits::default()
    };
    let r = e.scan_bytes(&nested, &shallow).unwrap();
    assert!(r.findings.is_empty());
    assert!(r.is_incomplete());
    assert_eq!(r.unscanned[0].reason, Unscannable::MaxRecursion);
    assert_eq!(r.unscanned[0].path, "level4.zip!level3.zip!level2.zip");
    let alerting = Limits {
        alert_exceeds_max: true,
        ..shallow
    };
    let r = e.scan_bytes(&nested, &alerting).unwrap();
    assert_eq!(r.findings.len(), 1);
    assert_eq!(
        r.findings[0].signature,
        "Heuristics.Limits.Exceeded.MaxRecursion"
    );
    assert_eq!(r.findings[0].kind, SigKind::Heuristic);
    // Deep enough by default.
    let r = e.scan_bytes(&nested, &Limits::default()).unwrap();
    assert_eq!(r.findings[0].signature, "Test.Eicar-Body");

    let many: Vec<(String, Vec<u8>)> = (0..20).map(|i| (format!("f{i}"), vec![b'a'; 10])).collect();
    let refs: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let z = zip_of(&refs, CompressionMethod::Deflated);
    let few = Limits {
        max_files: 5,
        ..Limits::default()
    };
    let r = e.scan_bytes(&z, &few).unwrap();
    assert_eq!(r.members, 5);
    assert_eq!(r.unscanned[0].reason, Unscannable::MaxFiles);

    let big = zip_of(
        &[("big.bin", &vec![0u8; 100_000]), ("eicar.com", EICAR)],
        CompressionMethod::Deflated,
    );
    let small = Limits {
        max_filesize: 50_000,
        ..Limits::default()
    };
    let r = e.scan_bytes(&big, &small).unwrap();
    assert_eq!(found(&r).len(), 1, "the next member is still scanned");
    assert_eq!(r.unscanned[0].reason, Unscannable::MaxFileSize);
    assert_eq!(r.unscanned[0].path, "big.bin");
    let scansize = Limits {
        max_scansize: 50_000,
        ..Limits::default()
    };
    let r = e.scan_bytes(&big, &scansize).unwrap();
    assert_eq!(r.unscanned[0].reason, Unscannable::MaxScanSize);
}

#[test]
fn the_ratio_limit_stops_a_small_file_expanding_without_bound() {
    let e = standard();
    // 40 MiB of zeros deflate to ~40 KiB: a ratio near 1000.
    let z = zip_of(
        &[("zeros", &vec![0u8; 40 << 20])],
        CompressionMethod::Deflated,
    );
    let r = e.scan_bytes(&z, &Limits::default()).unwrap();
    assert_eq!(r.unscanned[0].reason, Unscannable::MaxRatio);
    let lenient = Limits {
        max_ratio: 10_000,
        ..Limits::default()
    };
    assert!(e.scan_bytes(&z, &lenient).unwrap().unscanned.is_empty());
}

/// 42.zip's construction: each layer holds 16 copies of the layer below; the last holds 16
/// files of zeros. Fully expanded it would be 16^5 * 4 MiB = 4 TiB.
#[test]
fn a_nested_zip_bomb_stays_within_time_and_memory() {
    let e = standard();
    let mut layer = zip_of(
        &[("zeros", &vec![0u8; 4 << 20][..])],
        CompressionMethod::Deflated,
    );
    for depth in 0..5 {
        let names: Vec<String> = (0..16).map(|i| format!("l{depth}-{i}.zip")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &layer[..])).collect();
        layer = zip_of(&entries, CompressionMethod::Deflated);
    }
    assert!(layer.len() < 4 << 20, "the bomb itself is small");
    let t = Instant::now();
    let r = e.scan_bytes(&layer, &Limits::default()).unwrap();
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    assert!(r.is_incomplete());
    assert!(r
        .unscanned
        .iter()
        .any(|u| matches!(u.reason, Unscannable::MaxScanSize | Unscannable::MaxFiles)));
}

/// Fifield's overlapping-entry bomb in its simplest form: every central-directory entry points
/// at the same compressed data. Refused after the first entry, with ClamAV's heuristic.
#[test]
fn an_overlapping_entry_zip_is_refused() {
    let e = standard();
    let one = zip_of(
        &[("kernel", &vec![0u8; 1 << 20][..])],
        CompressionMethod::Deflated,
    );
    let bomb = overlapping(&one, 1000);
    let t = Instant::now();
    let r = e.scan_bytes(&bomb, &Limits::default()).unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(r.members, 1);
    assert_eq!(
        found(&r),
        [("Heuristics.Zip.OverlappingFiles".to_string(), None)]
    );
    let quiet = Limits {
        heuristic_alerts: false,
        ..Limits::default()
    };
    assert!(e.scan_bytes(&bomb, &quiet).unwrap().findings.is_empty());
}

/// Rewrites a one-entry zip so its central directory lists the entry `n` times.
fn overlapping(one: &[u8], n: u16) -> Vec<u8> {
    let cd_at = u32::from_le_bytes(one[one.len() - 6..one.len() - 2].try_into().unwrap()) as usize;
    let eocd_at = one.len() - 22;
    let cd = &one[cd_at..eocd_at];
    let mut out = one[..cd_at].to_vec();
    let new_cd_at = out.len() as u32;
    for i in 0..n {
        let mut entry = cd.to_vec();
        // A distinct name per entry (same length), as the bomb's entries have.
        let name_len = u16::from_le_bytes([entry[28], entry[29]]) as usize;
        let tag = format!("{:06}", i);
        entry[46 + name_len - 6..46 + name_len].copy_from_slice(tag.as_bytes());
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

#[test]
fn an_encrypted_member_is_reported_as_encrypted() {
    let e = standard();
    // Deflated, so the plain bytes are not visible in the archive itself either.
    let z = encrypted_zip(&zip_of(
        &[("eicar.com", EICAR)],
        CompressionMethod::Deflated,
    ));
    let r = e.scan_bytes(&z, &Limits::default()).unwrap();
    assert!(r.findings.is_empty());
    assert!(r.is_incomplete());
    assert_eq!(r.unscanned[0].reason, Unscannable::Encrypted);
    assert_eq!(r.unscanned[0].path, "eicar.com");
    let alerting = Limits {
        alert_encrypted: true,
        ..Limits::default()
    };
    let r = e.scan_bytes(&z, &alerting).unwrap();
    assert_eq!(found(&r)[0].0, "Heuristics.Encrypted.Zip");
}

/// Sets the "encrypted" flag of every entry (local header and central directory), as a
/// ZipCrypto archive has it: the engine must read the flag and never the bytes as plain.
pub fn encrypted_zip(z: &[u8]) -> Vec<u8> {
    let mut z = z.to_vec();
    let mut i = 0;
    while i + 4 <= z.len() {
        match &z[i..i + 4] {
            b"PK\x03\x04" => z[i + 6] |= 1,
            b"PK\x01\x02" => z[i + 8] |= 1,
            _ => {}
        }
        i += 1;
    }
    z
}

#[test]
fn an_allowlisted_member_is_clean_with_all_it_holds() {
    let inner = zip_of(&[("eicar.com", EICAR)], CompressionMethod::Deflated);
    let e = engine(&[
        (
            "test.ndb",
            format!("Test.Eicar-Body:0:*:{}\n", hex::encode(&EICAR[..32])),
        ),
        (
            "allow.sfp",
            format!("{}:{}:Known.Good.Bundle\n", sha256(&inner), inner.len()),
        ),
    ]);
    let outer = zip_of(
        &[("bundle.zip", &inner), ("loose.com", EICAR)],
        CompressionMethod::Deflated,
    );
    let r = e.scan_bytes(&outer, &Limits::default()).unwrap();
    assert_eq!(
        found(&r),
        [("Test.Eicar-Body".to_string(), Some("loose.com".to_string()))]
    );
}

#[test]
fn ndb_target_types_follow_the_content() {
    let pattern = b"TARGETED-PATTERN-0123456789";
    let e = engine(&[(
        "t.ndb",
        format!(
            "Test.Any:0:*:{p}\nTest.PE:1:*:{p}\nTest.ELF:6:*:{p}\nTest.MachO:9:*:{p}\n",
            p = hex::encode(pattern)
        ),
    )]);
    let mut pe = vec![0u8; 0x200];
    pe[..2].copy_from_slice(b"MZ");
    pe[0x3c] = 0x80;
    pe[0x80..0x84].copy_from_slice(b"PE\0\0");
    pe.extend_from_slice(pattern);
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.extend_from_slice(&[0; 56]);
    elf.extend_from_slice(pattern);
    let mut macho = vec![0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1];
    macho.extend_from_slice(&[0; 24]);
    macho.extend_from_slice(pattern);
    let mut text = b"plain words then ".to_vec();
    text.extend_from_slice(pattern);
    let names = |d: &[u8]| -> Vec<String> {
        found(&e.scan_bytes(d, &Limits::default()).unwrap())
            .into_iter()
            .map(|f| f.0)
            .collect()
    };
    assert_eq!(names(&pe), ["Test.Any", "Test.PE"]);
    assert_eq!(names(&elf), ["Test.Any", "Test.ELF"]);
    assert_eq!(names(&macho), ["Test.Any", "Test.MachO"]);
    assert_eq!(names(&text), ["Test.Any"]);
    // Inside a container, a member's type is its own.
    let z = zip_of(&[("setup.exe", &pe)], CompressionMethod::Deflated);
    assert_eq!(names(&z), ["Test.Any", "Test.PE"]);
}

#[test]
fn a_file_given_as_path_is_scanned_inside_too() {
    let e = standard();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.tar.gz");
    std::fs::write(&p, tar_gz_of(&[("eicar.com", EICAR)])).unwrap();
    let r = e.scan_file(Path::new(&p), &Limits::default()).unwrap();
    // The tar layer holds EICAR's bytes too: reported once, where it is most precise.
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].located("x.tar.gz"), "x.tar.gz!eicar.com");
}
