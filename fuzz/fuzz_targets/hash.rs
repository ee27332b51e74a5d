//! .hdb/.hsb/.fp/.sfp line parser: errors, never panics; round-trips what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_format::sigs::{parse_hash_line, HashFile};

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        for file in [HashFile::Hdb, HashFile::Hsb, HashFile::Fp, HashFile::Sfp] {
            if let Ok(sig) = parse_hash_line(line, file) {
                let again = parse_hash_line(&sig.to_string(), file).expect("canonical form parses");
                assert_eq!(again, sig);
            }
        }
    }
});
