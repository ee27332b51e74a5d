//! Delta apply on arbitrary delta bytes against a real base database, and on a mutated base:
//! must error, never panic, never allocate past its caps, and never return anything but the
//! database the delta names.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use vigil_format::delta::{Delta, DeltaHeader};
use vigil_format::{DatabaseBuilder, SecretKey, SectionKind};

fn base() -> &'static (Vec<u8>, Vec<u8>) {
    static BASE: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let key = SecretKey::from_seed([5; 32]);
        let mut b = DatabaseBuilder::new(1, 0);
        b.section(SectionKind::Yara, 1, b"rule a { strings: $a = \"abcd\" condition: $a }".to_vec());
        b.section(SectionKind::Ndb, 1, b"X.Y.Z-1:0:*:41424344\n".to_vec());
        let old = b.build(&key).expect("build");
        let mut b = DatabaseBuilder::new(2, 0);
        b.section(SectionKind::Yara, 1, b"rule a { strings: $a = \"abce\" condition: $a }".to_vec());
        let new = b.build(&key).expect("build");
        let delta = Delta::create(&old, &new).expect("delta");
        (old, delta)
    })
}

fuzz_target!(|data: &[u8]| {
    let (old, good_delta) = base();
    // Arbitrary bytes as a delta.
    if let Ok(out) = Delta::apply(old, data) {
        let (header, _) = DeltaHeader::parse(data).expect("apply accepted the header");
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&out)), header.new_sha256);
    }
    // The real delta with the fuzz input spliced over its patch.
    if data.len() > 2 {
        let mut d = good_delta.clone();
        let at = (usize::from(data[0]) << 8 | usize::from(data[1])) % d.len();
        for (i, b) in data[2..].iter().enumerate() {
            if let Some(slot) = d.get_mut(at + i) {
                *slot ^= b;
            }
        }
        let _ = Delta::apply(old, &d);
    }
});
