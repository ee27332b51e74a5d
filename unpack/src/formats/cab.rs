//! Microsoft Cabinet through the `cab` crate (stored, MSZIP and LZX folders). Quantum folders
//! are reported as unreadable members.

use std::io::Cursor;

use crate::bounded::{deliver, read_bounded};
use crate::{Sink, Stop};

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let mut cabinet = match cab::Cabinet::new(Cursor::new(data)) {
        Ok(c) => c,
        Err(e) => {
            sink.corrupt(&format!("cab: {e}"));
            return Ok(());
        }
    };
    let files: Vec<(String, u64)> = cabinet
        .folder_entries()
        .flat_map(|folder| folder.file_entries())
        .map(|f| (f.name().to_string(), u64::from(f.uncompressed_size())))
        .collect();
    for (name, size) in files {
        if size > sink.budget() {
            sink.too_large(&name);
            continue;
        }
        match cabinet.read_file(&name) {
            Ok(r) => {
                let got = read_bounded(r, sink.budget());
                deliver(sink, &name, got)?;
            }
            Err(e) => sink.corrupt(&format!("cab: {name}: {e}")),
        }
    }
    Ok(())
}
