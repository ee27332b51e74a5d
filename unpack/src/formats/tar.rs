//! tar (POSIX ustar, GNU, pax and pre-POSIX) through the `tar` crate: regular files only,
//! names as the archive gives them (nothing is written to disk, so `../` is harmless here).

use crate::bounded::{deliver, read_bounded};
use crate::{Sink, Stop};

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let mut archive = tar::Archive::new(data);
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => {
            sink.corrupt(&format!("tar: {e}"));
            return Ok(());
        }
    };
    for (i, entry) in entries.enumerate() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                sink.corrupt(&format!("tar entry {i}: {e}"));
                return Ok(());
            }
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("entry-{i}"));
        if entry.size() > sink.budget() {
            sink.too_large(&name);
            continue;
        }
        let got = read_bounded(entry, sink.budget());
        deliver(sink, &name, got)?;
    }
    Ok(())
}
