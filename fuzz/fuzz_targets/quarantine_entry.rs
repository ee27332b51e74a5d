//! The quarantine store's entry header over any bytes (a damaged or foreign file in the store):
//! an entry or a `Corrupt` error, never a panic; an entry read back must encode to a header
//! that reads as the same entry and key.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vigil_quarantine::entry::{decode_header, encode_header};

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    if let Ok((entry, key)) = decode_header(&mut r, Path::new("fuzz.vq")) {
        let header = encode_header(&key, &entry).expect("an entry serialises");
        let (again, key2) =
            decode_header(&mut header.as_slice(), Path::new("fuzz.vq")).expect("own header reads");
        assert_eq!((again, key2), (entry, key));
    }
});
