//! `*.test.toml` files come with rule authors' pull requests: any text must give tests or
//! problems with positions, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_gate::sigtest::testfile::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse(text);
    }
});
