//! The scan service's request parser (the agent runs as root; any local user allowed on its
//! socket writes these lines): never panics, and whatever it accepts survives a round trip,
//! so the service and its client agree on what a line means.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_scan_core::service::Request;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::parse(data) {
        let again = serde_json::to_vec(&req).expect("a parsed request serializes");
        assert_eq!(Request::parse(&again).ok(), Some(req));
    }
});
