//! Container parity with clamscan: one hash signature for ClamAV's 544-byte test executable
//! (the one ClamAV's own unit tests use) over Debian's clamav-testfiles, where that executable
//! sits inside archives, compressed files, mail, PDF, OLE2 documents, installers and packers.
//! clamscan finds it in all 44; the files `vigil-scan` must find it in are pinned below, so a
//! regression fails, and vigil may find it nowhere clamscan does not. Skips (saying so) without
//! clamav-testfiles or clamscan.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::SecretKey;

const TESTFILES: &str = "/usr/share/clamav-testfiles";
const CLAM_EXE_SHA256: &str = "71e7b604d18aefd839e51a39c88df8383bb4c071dc31f87f00a2b5df580d4495";
const SIGNATURE: &str = "ClamAV.Test.Exe-SHA256";

/// The files vigil finds the executable in (every archive, compression, mail, PDF and OLE2
/// file of the set among them). The packed executables (UPX, ASPack, FSG, MEW, PESpin, Petite,
/// Upack, WWPack, yC) are not unpacked yet.
const PINNED: &[&str] = &[
    "clam-nsis.exe",
    "clam.7z",
    "clam.arj",
    "clam.bin-be.cpio",
    "clam.bin-le.cpio",
    "clam.bz2.zip",
    "clam.cab",
    "clam.chm",
    "clam.d64.zip",
    "clam.ea05.exe",
    "clam.ea06.exe",
    "clam.exe",
    "clam.exe.binhex",
    "clam.exe.bz2",
    "clam.exe.html",
    "clam.exe.mbox.base64",
    "clam.exe.mbox.uu",
    "clam.exe.rtf",
    "clam.exe.szdd",
    "clam.impl.zip",
    "clam.mail",
    "clam.newc.cpio",
    "clam.odc.cpio",
    "clam.ole.doc",
    "clam.pdf",
    "clam.ppt",
    "clam.sis",
    "clam.tar.gz",
    "clam.tnef",
    "clam.zip",
    "clam_IScab_ext.exe",
    "clam_IScab_int.exe",
    "clam_ISmsi_ext.exe",
    "clam_ISmsi_int.exe",
    "clam_cache_emax.tgz",
];

fn detected(stdout: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.ends_with(" FOUND"))
        .filter_map(|l| {
            let (path, _) = l.rsplit_once(": ")?;
            // vigil names the member chain after a `!`; clamscan names the file alone.
            let file = path.split('!').next()?;
            Some(Path::new(file).file_name()?.to_string_lossy().into_owned())
        })
        .collect()
}

#[test]
fn clam_exe_inside_the_clamav_testfiles() {
    let dir = Path::new(TESTFILES);
    if !dir.is_dir() {
        eprintln!("SKIP: {TESTFILES} is absent (apt-get install clamav-testfiles)");
        return;
    }
    if Command::new("clamscan").arg("--version").output().is_err() {
        eprintln!("SKIP: clamscan is not installed (apt-get install clamav)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let rules = t.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    // An .hdb line with a SHA-256, as clamscan reads it.
    let line = format!("{CLAM_EXE_SHA256}:544:{SIGNATURE}\n");
    std::fs::write(rules.join("clam.hdb"), &line).unwrap();

    let theirs = Command::new("clamscan")
        .args(["--no-summary", "--stdout", "-d"])
        .arg(rules.join("clam.hdb"))
        .arg(dir)
        .output()
        .unwrap();
    let theirs = detected(&theirs.stdout);

    let key = SecretKey::from_seed([16; 32]);
    let db = build(
        &sources::collect(std::slice::from_ref(&rules)).unwrap(),
        &key,
        &BuildOptions::new(1),
    )
    .unwrap()
    .bytes;
    std::fs::write(t.path().join("clam.vdb"), db).unwrap();
    std::fs::write(t.path().join("test.pub"), key.public().to_text()).unwrap();
    let out = Command::new(vigil_tests::bin("vigil-scan"))
        .arg("-d")
        .arg(t.path().join("clam.vdb"))
        .arg("--pubkey")
        .arg(t.path().join("test.pub"))
        .args(["--no-summary", "-r"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = detected(&out.stdout);

    let all: BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    eprintln!("{:<24} {:<9} vigil", "file", "clamscan");
    for f in &all {
        let mark = |s: &BTreeSet<String>| if s.contains(f) { "FOUND" } else { "-" };
        eprintln!("{f:<24} {:<9} {}", mark(&theirs), mark(&ours));
    }
    eprintln!(
        "clamscan {} of {}, vigil {} of {}",
        theirs.len(),
        all.len(),
        ours.len(),
        all.len()
    );
    // Where vigil names the member, it is the executable itself.
    let lines = String::from_utf8_lossy(&out.stdout);
    assert!(
        lines.contains(&format!("clam.zip!clam.exe: {SIGNATURE} FOUND")),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("clam.tar.gz!clam.exe: {SIGNATURE} FOUND")),
        "{lines}"
    );

    let missing: Vec<&&str> = PINNED.iter().filter(|f| !ours.contains(**f)).collect();
    assert!(missing.is_empty(), "no longer detected: {missing:?}");
    let extra: Vec<&String> = ours.difference(&theirs).collect();
    assert!(
        extra.is_empty(),
        "detected where clamscan does not: {extra:?}"
    );
    assert!(ours.len() >= 30, "the goal is 30 of 44: {}", ours.len());
}
