//! .ndb line parser: errors, never panics; whatever parses renders back to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_format::sigs::parse_ndb_line;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        if let Ok(sig) = parse_ndb_line(line) {
            let again = parse_ndb_line(&sig.to_string()).expect("canonical form parses");
            assert_eq!(again, sig, "render/parse round trip");
        }
    }
});
