//! The fleet check-in endpoint's parsers over untrusted bytes: `CheckIn::parse` (a body any
//! client may POST), and the admin reads' query strings. Neither may panic; an accepted
//! check-in must validate and survive a round trip through its own JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_fleet::CheckIn;
use vigil_update_server::fleet::query;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = CheckIn::parse(data) {
        assert!(c.validate().is_ok());
        let again = CheckIn::parse(c.to_json().as_bytes()).expect("own JSON parses");
        assert_eq!(again, c);
    }
    if let Ok(q) = std::str::from_utf8(data) {
        if let Ok(h) = query::health(q, 1_764_600_000) {
            assert!(h.version > 0 && h.since >= 0);
        }
        let _ = query::stale_hours(q);
    }
});
