//! Parity with clamscan (Debian's clamav is the oracle) on a generated set: random files,
//! body signatures cut from them in every wildcard and offset form, near-misses, wrong
//! offsets, hash signatures with right and wrong sizes, allowlisted detections, and EICAR.
//! Skips, saying so, when clamscan is not installed (.ci/run installs it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::SecretKey;
use vigil_scan_core::{Engine, Limits};

const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// A byte other than `b`.
fn other(b: u8) -> u8 {
    b.wrapping_add(1)
}

/// Builds a pattern over `data[p..p+len]` that exercises `form`, with 6-byte literal runs
/// around it so ClamAV's per-part anchoring is satisfied. Returns the hex and whether the
/// pattern still matches at `p` (forms are built to match; near-misses flip a literal).
fn pattern(rng: &mut Rng, data: &[u8], p: usize, form: usize) -> String {
    let lit = |a: usize, b: usize| hex(&data[a..b]);
    let m = p + 6; // where the form starts
    match form {
        0 => format!("{}??{}", lit(p, m), lit(m + 1, m + 7)),
        1 => format!("{}{:x}?{}", lit(p, m), data[m] >> 4, lit(m + 1, m + 7)),
        2 => format!("{}?{:x}{}", lit(p, m), data[m] & 15, lit(m + 1, m + 7)),
        3 => format!("{}{{3}}{}", lit(p, m), lit(m + 3, m + 9)),
        4 => {
            let gap = 2 + rng.below(4);
            format!(
                "{}{{{}-{}}}{}",
                lit(p, m),
                gap - 1,
                gap + 1,
                lit(m + gap, m + gap + 6)
            )
        }
        5 => format!("{}{{-4}}{}", lit(p, m), lit(m + 3, m + 9)),
        6 => format!("{}{{2-}}{}", lit(p, m), lit(m + 5, m + 11)),
        7 => format!("{}*{}", lit(p, m), lit(m + 9, m + 15)),
        8 => format!(
            "{}({}|{}){}",
            lit(p, m),
            lit(m, m + 1),
            hex(&[other(data[m])]),
            lit(m + 1, m + 7)
        ),
        9 => format!(
            "{}!({}|{}){}",
            lit(p, m),
            hex(&[other(data[m])]),
            hex(&[other(other(data[m]))]),
            lit(m + 1, m + 7)
        ),
        _ => format!(
            "{}({}|{}){}",
            lit(p, m),
            lit(m, m + 2),
            hex(&[other(data[m]), 0x11]),
            lit(m + 2, m + 8)
        ),
    }
}

#[test]
fn same_verdicts_as_clamscan() {
    if Command::new("clamscan").arg("--version").output().is_err() {
        eprintln!(
            "SKIP same_verdicts_as_clamscan: clamscan not installed (apt-get install clamav)"
        );
        return;
    }
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let t = tempfile::tempdir().expect("tempdir");
    let (files_dir, rules_dir) = (t.path().join("files"), t.path().join("rules"));
    std::fs::create_dir_all(&files_dir).expect("mkdir");
    std::fs::create_dir_all(&rules_dir).expect("mkdir");
    let mut files: Vec<(String, Vec<u8>)> = (0..48)
        .map(|i| {
            let n = 200 + rng.below(6000);
            (format!("f{i:02}.bin"), rng.bytes(n))
        })
        .collect();
    files.push(("eicar.com".into(), EICAR.to_vec()));
    let mut ndb = String::new();
    let (mut hdb, mut hsb, mut fp) = (String::new(), String::new(), String::new());
    for (i, (name, data)) in files.iter().enumerate().take(48) {
        let size = data.len();
        let p = rng.below(size - 40);
        let form = i % 11;
        let pat = pattern(&mut rng, data, p, form);
        let tail = size - p;
        // Every offset form, cycling with the file: all must match.
        let offset = match i % 6 {
            0 => "*".to_string(),
            1 => p.to_string(),
            2 => format!("{},{}", p.saturating_sub(3), 3 + rng.below(3)),
            3 => format!("EOF-{tail}"),
            4 => format!("EOF-{},{}", tail + 2, 2 + rng.below(3)),
            _ => format!("{},0", p),
        };
        let _ = writeln!(ndb, "Par.Body.F{i:02}-Form{form}:0:{offset}:{pat}");
        // Wrong offset: must not match.
        let _ = writeln!(ndb, "Par.WrongOffset.F{i:02}-1:0:{}:{pat}", p + 1);
        // Near miss: the first literal byte changed.
        let near = format!("{:02x}{}", other(data[p]), &pat[2..]);
        let _ = writeln!(ndb, "Par.NearMiss.F{i:02}-1:0:*:{near}");
        // Hash signatures with the right and the wrong size.
        let (md5, sha1, sha256) = (Md5::digest(data), Sha1::digest(data), Sha256::digest(data));
        match i % 4 {
            0 => {
                let _ = writeln!(hdb, "{}:{size}:Par.Md5.F{i:02}-1", hex(&md5));
                let _ = writeln!(hdb, "{}:{}:Par.Md5Wrong.F{i:02}-1", hex(&md5), size + 1);
            }
            1 => {
                let _ = writeln!(hsb, "{}:{size}:Par.Sha1.F{i:02}-1", hex(&sha1));
                let _ = writeln!(hsb, "{}:{}:Par.Sha1Wrong.F{i:02}-1", hex(&sha1), size - 1);
            }
            2 => {
                let _ = writeln!(hsb, "{}:{size}:Par.Sha256.F{i:02}-1", hex(&sha256));
                let _ = writeln!(hsb, "{}:*:Par.Sha256Any.F{i:02}-1:73", hex(&sha256));
            }
            _ => {
                // Digests in the "other" file: clamscan loads SHA-1 and SHA-256 from .hdb and
                // MD5 from .hsb, so vigil does too.
                let _ = writeln!(hdb, "{}:{size}:Par.Sha256InHdb.F{i:02}-1", hex(&sha256));
                let _ = writeln!(hdb, "{}:{size}:Par.Sha1InHdb.F{i:02}-1", hex(&sha1));
                let _ = writeln!(hsb, "{}:{size}:Par.Md5InHsb.F{i:02}-1", hex(&md5));
            }
        }
        // Every seventh file is allowlisted: all its detections must disappear (by MD5, or
        // by SHA-256 in the same .fp file).
        if i % 7 == 3 {
            let _ = writeln!(fp, "{}:{size}:Par.Allow.F{i:02}-1", hex(&md5));
        } else if i % 21 == 5 {
            let _ = writeln!(fp, "{}:{size}:Par.AllowSha256.F{i:02}-1", hex(&sha256));
        }
        let _ = name;
    }
    let _ = writeln!(ndb, "Par.Eicar.Body-1:0:0:{}", hex(EICAR));
    let _ = writeln!(hdb, "{}:68:Par.Eicar.Md5-1", hex(&Md5::digest(EICAR)));
    for (name, data) in &files {
        std::fs::write(files_dir.join(name), data).expect("write");
    }
    for (name, text) in [
        ("par.ndb", &ndb),
        ("par.hdb", &hdb),
        ("par.hsb", &hsb),
        ("par.fp", &fp),
    ] {
        std::fs::write(rules_dir.join(name), text).expect("write");
    }

    let theirs = clamscan(&rules_dir, &files_dir);
    let ours = vigil(&rules_dir, &files_dir);
    let expected_some = theirs.values().filter(|v| !v.is_empty()).count();
    assert!(
        expected_some >= 35,
        "clamscan found too little ({expected_some} files): the generator is broken"
    );
    for mixed in ["Par.Sha256InHdb.", "Par.Sha1InHdb.", "Par.Md5InHsb."] {
        assert!(
            theirs.values().flatten().any(|n| n.starts_with(mixed)),
            "clamscan detected no {mixed}*: the mixed-digest lines are not exercised"
        );
    }
    let total: usize = theirs.values().map(BTreeSet::len).sum();
    eprintln!(
        "clamscan parity: {} files, {expected_some} detected, {total} detections",
        theirs.len()
    );
    assert_eq!(ours, theirs, "vigil and clamscan disagree");
}

fn clamscan(rules: &Path, files: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new("clamscan")
        .args(["--no-summary", "--allmatch", "--stdout", "-d"])
        .arg(rules)
        .arg(files)
        .output()
        .expect("run clamscan");
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "clamscan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((path, rest)) = line.rsplit_once(": ") else {
            continue;
        };
        let file = Path::new(path)
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let entry = map.entry(file).or_default();
        if let Some(name) = rest.strip_suffix(" FOUND") {
            // clamscan marks signatures from unsigned databases as UNOFFICIAL.
            entry.insert(name.trim_end_matches(".UNOFFICIAL").to_string());
        }
    }
    map
}

fn vigil(rules: &Path, files: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let key = SecretKey::from_seed([21; 32]);
    let srcs = sources::collect(&[rules.to_path_buf()]).expect("collect");
    let db = build(&srcs, &key, &BuildOptions::new(1))
        .expect("our lint accepts what clamscan loads")
        .bytes;
    let engine = Engine::load(&db, &[key.public()]).expect("load");
    let mut map = BTreeMap::new();
    for e in std::fs::read_dir(files).expect("ls").flatten() {
        let r = engine
            .scan_file(&e.path(), &Limits::default())
            .expect("scan");
        map.insert(
            e.file_name().to_string_lossy().into_owned(),
            r.findings.into_iter().map(|f| f.signature).collect(),
        );
    }
    map
}
