//! ARJ through the public API: hand-built archives (stored, garbled, a method-4 stream and a
//! method-1 block written bit by bit here), damage, budgets, and, when the `arj` program is
//! installed, its own archives in every method.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use vigil_unpack::{detect, extract, FileType, Sink, Stop};

/// Records members and notes, one layer deep.
struct Record {
    budget: u64,
    members: Vec<(String, Vec<u8>)>,
    notes: Vec<String>,
}

impl Record {
    fn with_budget(budget: u64, data: &[u8]) -> Record {
        let mut r = Record {
            budget,
            members: Vec::new(),
            notes: Vec::new(),
        };
        extract(FileType::Arj, data, &mut r).unwrap();
        r
    }
    fn run(data: &[u8]) -> Record {
        Record::with_budget(1 << 20, data)
    }
    fn corrupt(&self) -> bool {
        self.notes.iter().any(|n| n.starts_with("corrupt"))
    }
}

impl Sink for Record {
    fn budget(&self) -> u64 {
        self.budget
    }
    fn member(&mut self, name: &str, data: &[u8]) -> Result<(), Stop> {
        self.members.push((name.to_string(), data.to_vec()));
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

fn crc32(d: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(d);
    c.sum()
}

/// One member of a hand-built archive.
struct Entry<'a> {
    name: &'a str,
    flags: u8,
    method: u8,
    packed: Vec<u8>,
    original: &'a [u8],
}

/// A header: id, size, the 30 fixed bytes, name and empty comment, CRC-32, no extended
/// headers.
fn header(
    flags: u8,
    method: u8,
    file_type: u8,
    packed: u32,
    original: &[u8],
    name: &str,
) -> Vec<u8> {
    let mut b = vec![30, 11, 1, 2, flags, method, file_type, 0];
    b.extend_from_slice(&0x5a21_2c00u32.to_le_bytes());
    b.extend_from_slice(&packed.to_le_bytes());
    b.extend_from_slice(&(original.len() as u32).to_le_bytes());
    b.extend_from_slice(&crc32(original).to_le_bytes());
    b.extend_from_slice(&[0; 6]);
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&[0, 0]);
    let mut h = vec![0x60, 0xea];
    h.extend_from_slice(&(b.len() as u16).to_le_bytes());
    h.extend_from_slice(&b);
    h.extend_from_slice(&crc32(&b).to_le_bytes());
    h.extend_from_slice(&[0, 0]);
    h
}

fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut a = header(0, 0, 2, 0, b"", "test.arj");
    for e in entries {
        a.extend(header(
            e.flags,
            e.method,
            0,
            e.packed.len() as u32,
            e.original,
            e.name,
        ));
        a.extend_from_slice(&e.packed);
    }
    a.extend_from_slice(&[0x60, 0xea, 0, 0]);
    a
}

/// Bits most significant first, the last byte padded with zeros.
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    bits: usize,
}

impl BitWriter {
    fn put(&mut self, v: u32, n: u32) {
        for i in (0..n).rev() {
            if self.bits.is_multiple_of(8) {
                self.out.push(0);
            }
            if (v >> i) & 1 == 1 {
                *self.out.last_mut().unwrap() |= 0x80 >> (self.bits % 8);
            }
            self.bits += 1;
        }
    }

    /// Method 4's numbers: one 1 bit per width step past `start` (a 0 ends them unless the
    /// width reached `stop`), then the value less the narrower widths' ranges in that width.
    fn number(&mut self, v: u32, start: u32, stop: u32) {
        let (mut width, mut plus) = (start, 0);
        while width < stop && v >= plus + (1 << width) {
            self.put(1, 1);
            plus += 1 << width;
            width += 1;
        }
        if width < stop {
            self.put(0, 1);
        }
        self.put(v - plus, width);
    }

    fn literal(&mut self, b: u8) {
        self.number(0, 0, 7);
        self.put(u32::from(b), 8);
    }

    /// A copy of `len` bytes from `back` bytes behind the end.
    fn copy(&mut self, len: u32, back: u32) {
        self.number(len - 2, 0, 7);
        self.number(back - 1, 9, 13);
    }
}

/// A method-4 stream with short and long lengths and offsets of every width, and what it
/// decodes to.
fn method4_sample() -> (Vec<u8>, Vec<u8>) {
    let mut w = BitWriter::default();
    let mut want = Vec::new();
    for i in 0..9000u32 {
        let b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
        w.literal(b);
        want.push(b);
    }
    for (len, back) in [
        (3, 1),
        (9, 3),
        (256, 8999),
        (100, 600),
        (40, 1500),
        (17, 5000),
    ] {
        w.copy(len, back);
        for _ in 0..len {
            want.push(want[want.len() - back as usize]);
        }
    }
    (w.out, want)
}

#[test]
fn stored_members_come_out_with_their_names() {
    let a = archive(&[
        Entry {
            name: "dir/one.txt",
            flags: 0x10,
            method: 0,
            packed: b"first member".to_vec(),
            original: b"first member",
        },
        Entry {
            name: "empty",
            flags: 0,
            method: 0,
            packed: vec![],
            original: b"",
        },
        Entry {
            name: "two.bin",
            flags: 0,
            method: 0,
            packed: vec![0, 1, 2, 0xff],
            original: &[0, 1, 2, 0xff],
        },
    ]);
    assert_eq!(detect(&a), FileType::Arj);
    let r = Record::run(&a);
    assert_eq!(
        r.members,
        vec![
            ("dir/one.txt".to_string(), b"first member".to_vec()),
            ("empty".to_string(), vec![]),
            ("two.bin".to_string(), vec![0, 1, 2, 0xff]),
        ]
    );
    assert!(r.notes.is_empty(), "{:?}", r.notes);
}

#[test]
fn garbled_members_are_reported_encrypted_and_the_rest_extracted() {
    let a = archive(&[
        Entry {
            name: "secret.exe",
            flags: 0x01,
            method: 0,
            packed: b"xored bytes".to_vec(),
            original: b"plain bytes",
        },
        Entry {
            name: "open.txt",
            flags: 0,
            method: 0,
            packed: b"open".to_vec(),
            original: b"open",
        },
    ]);
    let r = Record::run(&a);
    assert_eq!(r.notes, vec!["encrypted secret.exe"]);
    assert_eq!(r.members, vec![("open.txt".to_string(), b"open".to_vec())]);
}

#[test]
fn method4_stream_decodes() {
    let (packed, want) = method4_sample();
    let a = archive(&[Entry {
        name: "m4",
        flags: 0,
        method: 4,
        packed,
        original: &want,
    }]);
    let r = Record::run(&a);
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    assert_eq!(r.members.len(), 1);
    assert!(r.members[0].1 == want, "method 4 output differs");
}

#[test]
fn method1_single_symbol_block_decodes() {
    // A block of 5 symbols whose codes are all "one symbol, no bits": the literal 'A'.
    let mut w = BitWriter::default();
    w.put(5, 16); // symbols in the block
    w.put(0, 5); // code-length code: a single symbol...
    w.put(0, 5); // ...0
    w.put(0, 9); // literal/length code: a single symbol...
    w.put(u32::from(b'A'), 9);
    w.put(0, 5); // offset code: a single symbol...
    w.put(0, 5);
    let a = archive(&[Entry {
        name: "a",
        flags: 0,
        method: 1,
        packed: w.out,
        original: b"AAAAA",
    }]);
    let r = Record::run(&a);
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    assert_eq!(r.members, vec![("a".to_string(), b"AAAAA".to_vec())]);
}

#[test]
fn crc_mismatch_hands_out_the_data_and_says_corrupt() {
    let a = archive(&[Entry {
        name: "x",
        flags: 0,
        method: 0,
        packed: b"tampered".to_vec(),
        original: b"original",
    }]);
    let r = Record::run(&a);
    assert_eq!(r.members, vec![("x".to_string(), b"tampered".to_vec())]);
    assert!(r.corrupt(), "{:?}", r.notes);
}

#[test]
fn over_budget_members_are_not_decoded() {
    let (packed, want) = method4_sample();
    let a = archive(&[
        Entry {
            name: "big",
            flags: 0,
            method: 4,
            packed,
            original: &want,
        },
        Entry {
            name: "small",
            flags: 0,
            method: 0,
            packed: b"ok".to_vec(),
            original: b"ok",
        },
    ]);
    let r = Record::with_budget(1000, &a);
    assert_eq!(r.notes, vec!["too large big"]);
    assert_eq!(r.members, vec![("small".to_string(), b"ok".to_vec())]);
}

#[test]
fn detection_needs_a_header_whose_crc_holds() {
    let a = archive(&[]);
    assert_eq!(detect(&a), FileType::Arj);
    let mut bad = a.clone();
    bad[10] ^= 1;
    assert_ne!(detect(&bad), FileType::Arj);
    assert_ne!(
        detect(b"\x60\xea\x20\x00 not an arj header at all......"),
        FileType::Arj
    );
    assert_ne!(detect(b"\x60\xea"), FileType::Arj);
}

/// Truncated copies: the member whose data is cut gives nothing, the archive is corrupt; byte
/// flips: never a panic, and whatever comes out unflagged is the original (the CRCs hold).
#[test]
fn damaged_archives_never_panic() {
    let (packed, want) = method4_sample();
    let a = archive(&[Entry {
        name: "m4",
        flags: 0,
        method: 4,
        packed,
        original: &want,
    }]);
    let data_start = archive(&[]).len() - 4 + header(0, 4, 0, 0, b"", "m4").len();
    for cut in (0..a.len()).step_by(7) {
        let r = Record::run(&a[..cut]);
        assert!(r.corrupt(), "cut at {cut}: {:?}", r.notes);
        if cut >= data_start {
            assert!(r.members.is_empty(), "cut at {cut}");
        }
    }
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let mut v = a.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % v.len() as u64) as usize;
            v[i] = next() as u8;
        }
        let r = Record::run(&v);
        if !r.corrupt() {
            assert!(r.members.iter().all(|(_, d)| *d == want));
        }
        let _ = detect(&v);
    }
}

/// The real archiver's output in every method (stored, 1-3, 4), when `arj` is installed.
#[test]
fn arj_program_archives_in_every_method() {
    if Command::new("arj").arg("-?").output().is_err() {
        eprintln!("SKIP: the arj program is not installed (apt-get install arj)");
        return;
    }
    let dir = tempfile_dir();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("text.txt", b"hello arj world line\n".repeat(5000)),
        (
            "noise.bin",
            (0..150_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8 ^ (i / 97) as u8)
                .collect(),
        ),
        ("tiny", b"x".to_vec()),
    ];
    for (n, d) in &files {
        std::fs::write(dir.join(n), d).unwrap();
    }
    for m in 0..=4 {
        let name = format!("m{m}.arj");
        let out = Command::new("arj")
            .current_dir(&dir)
            .args(["a", &format!("-m{m}"), "-y", &name])
            .args(files.iter().map(|f| f.0))
            .output()
            .unwrap();
        assert!(out.status.success(), "arj -m{m}: {out:?}");
        let a = std::fs::read(dir.join(&name)).unwrap();
        assert_eq!(detect(&a), FileType::Arj);
        let r = Record::with_budget(1 << 20, &a);
        assert!(r.notes.is_empty(), "-m{m}: {:?}", r.notes);
        let got: Vec<_> = r.members.iter().map(|(n, d)| (n.as_str(), d)).collect();
        let expected: Vec<_> = files.iter().map(|(n, d)| (*n, d)).collect();
        assert!(got == expected, "-m{m}: members differ");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fresh directory under cargo's per-target scratch space (not the shared /tmp).
fn tempfile_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("arj-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
