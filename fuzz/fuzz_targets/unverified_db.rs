//! `vigil-build diff` and `info` read databases without a key: the container, its sections and
//! every record and YARA source are parsed from untrusted bytes. Must return an error or a
//! diff, never panic, and render every diff in every format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_gate::diff::{diff, render, DiffFormat, Side};

fuzz_target!(|data: &[u8]| {
    if let Ok(side) = Side::read("fuzz.vdb", data, &[], None) {
        let d = diff(None, &side);
        for format in [DiffFormat::Human, DiffFormat::Json, DiffFormat::Markdown] {
            let _ = render(&d, format);
        }
        let d = diff(Some(&side), &side);
        let _ = render(&d, DiffFormat::Markdown);
    }
});
