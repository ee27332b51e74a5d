//! Container parsing and verification on arbitrary bytes: must return an error, never panic,
//! and never accept bytes that were not signed by the trusted key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_format::container::{contract, verify, Parsed};
use vigil_format::sections::{decode_lines, SourceFiles};
use vigil_format::{SecretKey, SectionKind};

fuzz_target!(|data: &[u8]| {
    let key = SecretKey::from_seed([9; 32]).public();
    if let Ok(p) = Parsed::parse(data) {
        let _ = p.check_hashes();
        for i in 0..p.entries.len() {
            if let Ok(raw) = p.section_bytes(i) {
                let _ = SourceFiles::decode(&raw);
                let _ = decode_lines(&raw);
            }
        }
        let _ = p.expand();
    }
    if let Ok(v) = verify(data, &[key]) {
        for kind in SectionKind::ALL {
            let _ = v.section(kind);
        }
    }
    let _ = contract(data);
});
