//! The findings outbox's line decoder over any bytes: what a torn write, a disk error or a
//! foreign file leaves in a segment. It must never panic, and a line it accepts must encode
//! back to a line that decodes to the same record.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_outputs::outbox::{decode_line, encode_line};

fuzz_target!(|data: &[u8]| {
    if let Some(r) = decode_line(data) {
        let line = encode_line(&r);
        let again = decode_line(&line[..line.len() - 1]).expect("own line decodes");
        assert_eq!(again, r);
    }
});
