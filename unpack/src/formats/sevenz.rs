//! 7z through `sevenz-rust2` (LZMA, LZMA2, PPMd, BZip2, Deflate, Zstd, BCJ filters). Built
//! without AES: an encrypted archive or member is reported, never decrypted.

use std::io::Cursor;

use sevenz_rust2::{ArchiveReader, Error, Password};

use crate::bounded::{read_bounded, Bounded};
use crate::{Sink, Stop};

/// Set when an encrypted member is met; 7z's errors do not say which member failed.
fn is_encryption(e: &Error) -> bool {
    match e {
        Error::PasswordRequired | Error::MaybeBadPassword(_) => true,
        Error::Unsupported(m) => m.to_ascii_lowercase().contains("aes"),
        _ => false,
    }
}

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let mut reader = match ArchiveReader::new(Cursor::new(data), Password::empty()) {
        Ok(r) => r,
        Err(e) if is_encryption(&e) => {
            sink.encrypted("");
            return Ok(());
        }
        Err(e) => {
            sink.corrupt(&format!("7z: {e}"));
            return Ok(());
        }
    };
    // A solid block must be decoded in order: each entry is read (bounded) as it comes.
    let mut stopped = false;
    let result = reader.for_each_entries(|entry, r| {
        if entry.is_directory() {
            return Ok(true);
        }
        let name = entry.name().to_string();
        if entry.size() > sink.budget() {
            sink.too_large(&name);
            // Skipping means decoding through it in a solid block: stop instead.
            return Ok(false);
        }
        let got = read_bounded(r, sink.budget());
        let outcome = match got {
            Bounded::Whole(d) => sink.member(&name, &d),
            Bounded::Over => {
                sink.too_large(&name);
                return Ok(false);
            }
            Bounded::Broken(d, e) => {
                if !d.is_empty() {
                    let _ = sink.member(&name, &d);
                }
                return Err(Error::from(e));
            }
        };
        if outcome.is_err() {
            stopped = true;
            return Ok(false);
        }
        Ok(true)
    });
    if stopped {
        return Err(Stop);
    }
    match result {
        Ok(()) => {}
        Err(e) if is_encryption(&e) => sink.encrypted(""),
        Err(e) => sink.corrupt(&format!("7z: {e}")),
    }
    Ok(())
}
