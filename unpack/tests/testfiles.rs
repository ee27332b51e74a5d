//! Every format against real files: Debian's clamav-testfiles (each holds ClamAV's 544-byte
//! test executable somewhere inside), when installed.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use sha2::{Digest, Sha256};
use vigil_unpack::{detect, extract, Sink, Stop};

// `sha256sum /usr/share/clamav-testfiles/clam.exe` (Debian clamav-testfiles 1.4).
const CLAM_EXE_SHA256: &str = "71e7b604d18aefd839e51a39c88df8383bb4c071dc31f87f00a2b5df580d4495";

/// Unpacks recursively (depth 8) and records every member's SHA-256 with its chain.
#[derive(Default)]
struct Collect {
    chain: Vec<String>,
    found: Vec<(String, String)>,
    notes: Vec<String>,
    depth: usize,
}

impl Sink for Collect {
    fn budget(&self) -> u64 {
        64 << 20
    }
    fn member(&mut self, name: &str, data: &[u8]) -> Result<(), Stop> {
        self.chain.push(name.to_string());
        self.found
            .push((self.chain.join("!"), hex::encode(Sha256::digest(data))));
        if self.depth < 8 {
            self.depth += 1;
            extract(detect(data), data, self)?;
            self.depth -= 1;
        }
        self.chain.pop();
        Ok(())
    }
    fn encrypted(&mut self, name: &str) {
        self.notes.push(format!("encrypted {name}"));
    }
    fn too_large(&mut self, name: &str) {
        self.notes.push(format!("too large {name}"));
    }
    fn corrupt(&mut self, why: &str) {
        self.notes.push(format!("corrupt {why}"));
    }
    fn anomaly(&mut self, h: &'static str) {
        self.notes.push(h.to_string());
    }
}

fn unpack_all(data: &[u8]) -> Collect {
    let mut c = Collect::default();
    extract(detect(data), data, &mut c).unwrap();
    c
}

/// Prints, for each test file, its type and whether clam.exe came out (run with --nocapture).
#[test]
fn clamav_testfiles_survey() {
    let dir = Path::new("/usr/share/clamav-testfiles");
    if !dir.is_dir() {
        eprintln!("SKIP: clamav-testfiles is not installed (apt-get install clamav-testfiles)");
        return;
    }
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut hits = 0;
    for p in &names {
        let data = std::fs::read(p).unwrap();
        let c = unpack_all(&data);
        let hit = c.found.iter().find(|(_, h)| h == CLAM_EXE_SHA256);
        if hit.is_some() {
            hits += 1;
        }
        eprintln!(
            "{:<24} {:<8} {:<5} {} {:?}",
            p.file_name().unwrap().to_string_lossy(),
            detect(&data).name(),
            if hit.is_some() { "YES" } else { "no" },
            hit.map(|h| h.0.as_str()).unwrap_or(""),
            c.notes
        );
    }
    eprintln!("clam.exe found inside {hits} of {}", names.len());
}

#[test]
#[ignore]
fn dump_one() {
    let p = std::env::var("DUMP").unwrap();
    let data = std::fs::read(p).unwrap();
    let c = unpack_all(&data);
    for (n, h) in &c.found {
        eprintln!("{n} {h}");
    }
    eprintln!("{:?}", c.notes);
}

/// Installers and script wrappers: clam.exe comes out of NSIS (non-solid LZMA), both
/// InstallShield shapes (overlay files and ISc( cabinets; the MSI setup stream), and AutoIt
/// EA05/EA06 FileInstall resources.
#[test]
fn installers_and_script_wrappers_yield_clam_exe() {
    let dir = Path::new("/usr/share/clamav-testfiles");
    if !dir.is_dir() {
        eprintln!("SKIP: clamav-testfiles is not installed (apt-get install clamav-testfiles)");
        return;
    }
    for name in [
        "clam-nsis.exe",
        "clam_IScab_ext.exe",
        "clam_IScab_int.exe",
        "clam_ISmsi_ext.exe",
        "clam.ea05.exe",
        "clam.ea06.exe",
    ] {
        let data = std::fs::read(dir.join(name)).unwrap();
        let c = unpack_all(&data);
        let hit = c.found.iter().find(|(_, h)| h == CLAM_EXE_SHA256);
        assert!(
            hit.is_some(),
            "{name}: clam.exe not found among {:?}; notes {:?}",
            c.found.iter().map(|f| &f.0).collect::<Vec<_>>(),
            c.notes
        );
        eprintln!("{name}: {}", hit.unwrap().0);
    }
}

/// The mail and document formats: clam.exe (by its SHA-256) comes out of each.
const DOCUMENT_FILES: &[&str] = &[
    "clam.mail",
    "clam.exe.mbox.base64",
    "clam.exe.mbox.uu",
    "clam.exe.binhex",
    "clam.exe.szdd",
    "clam.tnef",
    "clam.exe.html",
    "clam.pdf",
    "clam.ole.doc",
    "clam.ppt",
    "clam.exe.rtf",
    "clam.sis",
    "clam.chm",
];

#[test]
fn clam_exe_comes_out_of_mail_and_documents() {
    let dir = Path::new("/usr/share/clamav-testfiles");
    if !dir.is_dir() {
        eprintln!("SKIP: clamav-testfiles is not installed (apt-get install clamav-testfiles)");
        return;
    }
    let mut missed = Vec::new();
    for name in DOCUMENT_FILES {
        let data = std::fs::read(dir.join(name)).unwrap();
        let c = unpack_all(&data);
        match c.found.iter().find(|(_, h)| h == CLAM_EXE_SHA256) {
            Some((chain, _)) => eprintln!("{name}: {chain}"),
            None => missed.push(format!(
                "{name} ({:?}; {:?}; {:?})",
                detect(&data),
                c.notes,
                c.found
            )),
        }
    }
    assert!(missed.is_empty(), "clam.exe not found in: {missed:?}");
}

/// The same files cut short and with bytes flipped (a deterministic, small fuzz run that CI
/// does every time): extraction returns, whatever the damage, for the detected type and for
/// every document format's extractor.
#[test]
fn damaged_documents_never_panic() {
    use vigil_unpack::FileType;
    if !Path::new("/usr/share/clamav-testfiles").is_dir() {
        eprintln!("SKIP: clamav-testfiles is not installed (apt-get install clamav-testfiles)");
        return;
    }
    let types = [
        FileType::Mail,
        FileType::Pdf,
        FileType::Ole2,
        FileType::Rtf,
        FileType::BinHex,
        FileType::Szdd,
        FileType::Tnef,
        FileType::Html,
        FileType::Sis,
        FileType::Chm,
    ];
    survives_damage(DOCUMENT_FILES, &types, 40, 0x9e37_79b9_7f4a_7c15);
}

/// ARJ (method 1, Huffman-coded LZ77): clam.exe comes out of clam.arj whole, its CRC-32 holding;
/// every truncation and a few hundred byte-flipped copies return without a panic, a member
/// whose data is cut gives nothing, and whatever comes out unflagged is clam.exe itself.
#[test]
fn clam_exe_comes_out_of_arj_and_damage_is_caught() {
    use vigil_unpack::FileType;
    let path = Path::new("/usr/share/clamav-testfiles/clam.arj");
    if !path.is_file() {
        eprintln!("SKIP: clamav-testfiles is not installed (apt-get install clamav-testfiles)");
        return;
    }
    let data = std::fs::read(path).unwrap();
    assert_eq!(detect(&data), FileType::Arj);
    let c = unpack_all(&data);
    assert_eq!(
        c.found,
        vec![("clam.exe".to_string(), CLAM_EXE_SHA256.to_string())]
    );
    assert!(c.notes.is_empty(), "{:?}", c.notes);
    // The member's compressed data runs from 0x78 to 0x185, then the end-of-archive header.
    for cut in 0..data.len() {
        let mut c = Collect::default();
        extract(FileType::Arj, &data[..cut], &mut c).unwrap();
        assert!(
            c.notes.iter().any(|n| n.starts_with("corrupt")),
            "cut at {cut}: {:?}",
            c.notes
        );
        if cut < 0x185 {
            assert!(c.found.is_empty(), "cut at {cut}: {:?}", c.found);
        }
        let _ = unpack_all(&data[..cut]);
    }
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..500 {
        let mut v = data.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % v.len() as u64) as usize;
            v[i] = next() as u8;
        }
        let mut c = Collect::default();
        extract(FileType::Arj, &v, &mut c).unwrap();
        if !c.notes.iter().any(|n| n.starts_with("corrupt")) {
            assert!(
                c.found.iter().all(|(_, h)| h == CLAM_EXE_SHA256),
                "{:?}",
                c.found
            );
        }
        let _ = unpack_all(&v);
    }
}

/// The archive and compression formats, and the executables they hide in, under damage: every
/// truncation point in sixteen and a thousand random byte changes per file, each unpacked
/// recursively and also as every archive type. Nothing may panic or hang.
#[test]
fn damaged_archives_never_panic() {
    use vigil_unpack::FileType;
    if !Path::new("/usr/share/clamav-testfiles").is_dir() {
        eprintln!("SKIP: clamav-testfiles is not installed (apt-get install clamav-testfiles)");
        return;
    }
    let files = [
        "clam.zip",
        "clam.bz2.zip",
        "clam.d64.zip",
        "clam.impl.zip",
        "clam.7z",
        "clam.cab",
        "clam.tar.gz",
        "clam.exe.bz2",
        "clam.bin-be.cpio",
        "clam.bin-le.cpio",
        "clam.newc.cpio",
        "clam.odc.cpio",
        "clam-nsis.exe",
    ];
    let types = [
        FileType::Zip,
        FileType::Gzip,
        FileType::Bzip2,
        FileType::Xz,
        FileType::Zstd,
        FileType::Tar,
        FileType::SevenZip,
        FileType::Cpio,
        FileType::Cab,
        FileType::Pe,
    ];
    survives_damage(&files, &types, 1000, 0x2545_f491_4f6c_dd1d);
}

/// Damaged copies of `data`: sixteen truncation points, then `flips` copies with one to eight
/// random bytes changed (xorshift from `seed`, so a failure reproduces).
fn damaged(data: &[u8], flips: usize, seed: &mut u64) -> Vec<Vec<u8>> {
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    let mut variants: Vec<Vec<u8>> = (1..16)
        .map(|k| data[..data.len() * k / 16].to_vec())
        .collect();
    for _ in 0..flips {
        let mut v = data.to_vec();
        for _ in 0..1 + next() % 8 {
            let i = (next() % v.len() as u64) as usize;
            v[i] = next() as u8;
        }
        variants.push(v);
    }
    variants
}

/// Every damaged copy of each of `files` unpacked recursively and as each of `types`: none may
/// panic or hang.
fn survives_damage(files: &[&str], types: &[vigil_unpack::FileType], flips: usize, mut seed: u64) {
    let dir = Path::new("/usr/share/clamav-testfiles");
    for name in files {
        let data = std::fs::read(dir.join(name)).unwrap();
        for v in &damaged(&data, flips, &mut seed) {
            let _ = unpack_all(v);
            for &ft in types {
                let mut c = Collect::default();
                extract(ft, v, &mut c).unwrap();
            }
        }
    }
}
