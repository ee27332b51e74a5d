//! `vigil-scan --image`: ext4 images built by `mkfs.ext4 -d` from a tree (nested directories,
//! a sample one rule matches, EICAR, clean files, symlinks, a FIFO), bare, in a GPT partition
//! and in MBR primary and logical partitions. Findings carry the in-image path and the
//! partition; truncated, garbage and corrupt images are errors naming the image (exit 2),
//! never a panic; symlinks are not followed, least of all out of the image.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use vigil_tests::images::{gpt_disk, mbr_disk, mkfs_ext4};
use vigil_tests::rules::{db_from, repo_root, test_key};
use vigil_tests::{bin, copy_tree, run, Run};

const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// The sample's marker, matched by the test's own body signature.
const MARKER: &[u8] = b"vigil-image-test-sample: dropped into a snapshot";
const SAMPLE_SIG: &str = "Vigil.Test.ImageSample";
const SAMPLE: &str = "/home/alice/.cache/deep/er/still/payload.bin";
const EICAR_AT: &str = "/var/tmp/eicar.com";
const CLEAN: &str = "/usr/share/doc/readme.txt";
/// Regular files in the tree.
const FILES: usize = 4;

struct Setup {
    _t: tempfile::TempDir,
    dir: PathBuf,
    db: PathBuf,
    key: PathBuf,
    /// The bare ext4 image of the tree.
    fs: PathBuf,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The database (rules-src plus the sample's signature) and the image; `None` without mkfs.
fn setup() -> Option<Setup> {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let rules = dir.join("rules");
    copy_tree(&repo_root().join("rules-src"), &rules);
    std::fs::write(
        rules.join("clamav/image.ndb"),
        format!("{SAMPLE_SIG}:0:*:{}\n", hex(MARKER)),
    )
    .unwrap();
    std::fs::write(
        rules.join("clamav/image.test.toml"),
        format!(
            "[[test]]\nsignature = \"{SAMPLE_SIG}\"\ndetect = [{{ name = \"sample\", hex = \"{}\" }}]\n",
            hex(MARKER)
        ),
    )
    .unwrap();
    let db = dir.join("db.vdb");
    std::fs::write(&db, db_from(&rules, 7)).unwrap();
    let key = dir.join("test.pub");
    std::fs::write(&key, test_key().public().to_text()).unwrap();

    // On the host, outside the image: what a followed symlink would reach.
    let outside = dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("eicar.com"), EICAR).unwrap();

    let tree = dir.join("tree");
    let put = |p: &str, b: &[u8]| {
        let f = tree.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b).unwrap();
    };
    let mut sample = b"\x7fELF padding ".repeat(100);
    sample.extend_from_slice(MARKER);
    sample.extend_from_slice(&[0u8; 5000]);
    put(SAMPLE, &sample);
    put(EICAR_AT, EICAR);
    put(CLEAN, b"nothing to see here\n");
    put("/etc/hostname", b"snapshot\n");
    std::fs::create_dir_all(tree.join("empty/dir")).unwrap();
    let link = |target: &Path, at: &str| {
        std::os::unix::fs::symlink(target, tree.join(at)).unwrap();
    };
    link(Path::new("/etc/passwd"), "etc-passwd-link");
    link(&outside.join("eicar.com"), "outside-eicar-link");
    link(Path::new(EICAR_AT), "inside-eicar-link");
    link(&outside, "home/alice/outside-dir-link");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        tree.join("var/tmp/fifo"),
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();

    let fs = dir.join("fs.img");
    if !mkfs_ext4(&tree, &fs, "8M") {
        return None;
    }
    Some(Setup {
        _t: t,
        dir,
        db,
        key,
        fs,
    })
}

fn scan(s: &Setup, args: &[&str], images: &[&Path]) -> Run {
    let mut cmd = Command::new(bin("vigil-scan"));
    cmd.arg("-d")
        .arg(&s.db)
        .arg("--pubkey")
        .arg(&s.key)
        .args(args);
    for i in images {
        cmd.arg("--image").arg(i);
    }
    run(&mut cmd)
}

fn summary(out: &str, what: &str) -> usize {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{what}: ")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {what:?} in the summary:\n{out}"))
}

/// The in-image findings, the clean file, and what is never followed or scanned.
fn assert_found(r: &Run, prefix: &str) {
    assert_eq!(r.code, 1, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    assert!(
        out.contains(&format!("{prefix}{SAMPLE}: {SAMPLE_SIG} FOUND\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{prefix}{EICAR_AT}: Multi.Test.Eicar-Body FOUND\n"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("{prefix}{CLEAN}: OK\n")), "{out}");
    assert!(!out.contains(&format!("{CLEAN}: {SAMPLE_SIG}")), "{out}");
    // Symlinks (to the host's /etc/passwd, to an EICAR outside the image, to one inside) and
    // the FIFO are neither followed nor scanned.
    for never in ["link", "fifo", "passwd"] {
        assert!(!out.contains(never), "{never} in:\n{out}");
        assert!(!r.stderr.contains(never), "{never} in:\n{}", r.stderr);
    }
}

#[test]
fn a_bare_ext4_image_names_findings_by_their_path_inside() {
    let Some(s) = setup() else { return };
    let name = s.fs.display().to_string();
    let r = scan(&s, &[], &[&s.fs]);
    assert_found(&r, &format!("{name}:"));
    assert_eq!(summary(&r.stdout, "Scanned files"), FILES, "{}", r.stdout);
    assert_eq!(summary(&r.stdout, "Infected files"), 2, "{}", r.stdout);
    assert_eq!(summary(&r.stdout, "Errors"), 0, "{}", r.stderr);

    // -i: only the infected lines.
    let r = scan(&s, &["-i", "--no-summary"], &[&s.fs]);
    assert_eq!(r.code, 1);
    assert!(!r.stdout.contains("OK"), "{}", r.stdout);
    assert!(!r.stdout.contains("SUMMARY"), "{}", r.stdout);

    // JSON: `path` is the path inside the image, beside the image and (no) partition.
    let r = scan(&s, &["--json", "--no-summary"], &[&s.fs]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sample = lines
        .iter()
        .find(|l| l["signature"] == SAMPLE_SIG)
        .expect("the sample's finding");
    assert_eq!(sample["path"], SAMPLE);
    assert_eq!(sample["image"], name.as_str());
    assert!(sample["partition"].is_null());
    assert!(lines
        .iter()
        .all(|l| l["path"] == SAMPLE || l["path"] == EICAR_AT));
}

#[test]
fn gpt_and_mbr_partitions_are_followed_and_named() {
    let Some(s) = setup() else { return };
    let fs = std::fs::read(&s.fs).unwrap();
    // p2 is a FAT32 volume: skipped with a note, not an error.
    let mut fat = vec![0u8; 64 * 1024];
    fat[82..90].copy_from_slice(b"FAT32   ");
    fat[510..512].copy_from_slice(&[0x55, 0xAA]);
    let gpt = s.dir.join("gpt.img");
    std::fs::write(&gpt, gpt_disk(&[(&fs, "rootfs"), (&fat, "EFI")])).unwrap();
    let name = gpt.display().to_string();
    let r = scan(&s, &[], &[&gpt]);
    assert_found(&r, &format!("{name}:p1:"));
    assert!(
        r.stderr
            .contains(&format!("{name}:p2: not scanned: FAT32 filesystem")),
        "{}",
        r.stderr
    );
    assert_eq!(summary(&r.stdout, "Skipped files"), 1, "{}", r.stdout);
    assert_eq!(summary(&r.stdout, "Errors"), 0, "{}", r.stderr);

    let r = scan(&s, &["--json", "--no-summary"], &[&gpt]);
    let first: serde_json::Value =
        serde_json::from_str(r.stdout.lines().next().expect("a finding")).unwrap();
    assert_eq!(first["partition"], "p1");
    assert_eq!(first["partition_name"], "rootfs");

    // MBR: the filesystem in primary partition 1 and again in logical partition 5.
    let mbr = s.dir.join("mbr.img");
    std::fs::write(&mbr, mbr_disk(&fs, &fs)).unwrap();
    let name = mbr.display().to_string();
    let r = scan(&s, &[], &[&mbr]);
    assert_found(&r, &format!("{name}:p1:"));
    assert_found(&r, &format!("{name}:p5:"));
    assert_eq!(summary(&r.stdout, "Scanned files"), 2 * FILES);
    assert_eq!(summary(&r.stdout, "Infected files"), 4);
}

#[test]
fn truncated_garbage_and_corrupt_images_are_clear_errors() {
    let Some(s) = setup() else { return };
    let fs = std::fs::read(&s.fs).unwrap();
    let check = |file: &str, bytes: &[u8], says: &str| {
        let p = s.dir.join(file);
        std::fs::write(&p, bytes).unwrap();
        let r = scan(&s, &[], &[&p]);
        // Exit 2, the image's name and what was wrong; never a panic (101) or a signal.
        assert_eq!(r.code, 2, "{file}: {}\n{}", r.stdout, r.stderr);
        let line = format!("ERROR: {}", p.display());
        assert!(r.stderr.contains(&line), "{file}: {}", r.stderr);
        assert!(
            r.stderr.contains(says),
            "{file}: wanted {says:?} in {}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    };
    check(
        "truncated.img",
        &fs[..fs.len() / 2],
        "truncated image: the filesystem spans 8388608 bytes but only 4194304 are there",
    );
    check("cut-superblock.img", &fs[..1500], "truncated image");
    let gpt = gpt_disk(&[(&fs, "rootfs")]);
    check(
        "truncated-gpt.img",
        &gpt[..gpt.len() / 2],
        ":p1: truncated image: the partition table places it up to byte",
    );
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let garbage: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    check("garbage.img", &garbage, "not a disk image");
    check("empty.img", &[], "empty (0 bytes)");
    // The ext magic kept, the block group descriptors after the superblock (1 KiB blocks at
    // this size) wiped.
    let mut corrupt = fs.clone();
    corrupt[2048..3072].fill(0xff);
    check("corrupt.img", &corrupt, "ext filesystem");
    // A missing image.
    let r = scan(&s, &[], &[&s.dir.join("nope.img")]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("nope.img: cannot open"), "{}", r.stderr);
}

#[test]
fn a_clean_image_exits_0_and_other_images_still_scan_after_a_bad_one() {
    let Some(s) = setup() else { return };
    let tree = s.dir.join("clean-tree");
    std::fs::create_dir_all(tree.join("a/b")).unwrap();
    std::fs::write(tree.join("a/b/c.txt"), b"fine\n").unwrap();
    let clean = s.dir.join("clean.img");
    assert!(mkfs_ext4(&tree, &clean, "2M"));
    let r = scan(&s, &[], &[&clean]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r
        .stdout
        .contains(&format!("{}:/a/b/c.txt: OK", clean.display())));

    let bad = s.dir.join("bad.img");
    std::fs::write(&bad, b"not an image").unwrap();
    let r = scan(&s, &[], &[&bad, &s.fs]);
    // Something found wins over the error, as clamscan's codes go; both are reported.
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("bad.img: not a disk image"),
        "{}",
        r.stderr
    );
    assert_eq!(summary(&r.stdout, "Errors"), 1);
    assert_eq!(summary(&r.stdout, "Infected files"), 2);
}
