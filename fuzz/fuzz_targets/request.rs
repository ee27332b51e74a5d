//! vigil-server's handling of untrusted request parts: the URL path (which must never name
//! anything outside `metadata/` and `targets/`) and the Range header (which must never produce
//! a range outside the object).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_update_server::range::{resolve, RangeReply};
use vigil_update_server::route::{route, Route};

fuzz_target!(|data: &[u8]| {
    let (len_bytes, rest) = data.split_at(data.len().min(8));
    let mut len = [0u8; 8];
    len[..len_bytes.len()].copy_from_slice(len_bytes);
    let len = u64::from_le_bytes(len) >> (len[0] % 64);
    if let RangeReply::Partial { start, end } = resolve(rest, len) {
        assert!(start <= end && end < len, "range {start}-{end} of {len}");
    }
    if let Ok(path) = std::str::from_utf8(rest) {
        if let Route::Object(key) = route(path) {
            assert!(key.starts_with("metadata/") || key.starts_with("targets/"));
            assert!(!key.split('/').any(|s| s.is_empty() || s.starts_with('.')));
            assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)));
        }
    }
});
