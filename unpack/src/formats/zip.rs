//! ZIP (and JAR, APK, OOXML, ODF: all zips) through the `zip` crate, with every method ClamAV's
//! test set uses: stored, deflate, deflate64, bzip2, lzma, xz, zstd, and the legacy implode,
//! shrink and reduce. The central directory is trusted only as far as it agrees with itself:
//! entries whose data overlaps another's (the overlapping-entry zip bomb) are not extracted and
//! raise `Heuristics.Zip.OverlappingFiles`. Without a readable central directory (a truncated
//! download) the local headers are walked instead.

use std::io::Cursor;

use zip::result::ZipError;

use crate::bounded::{deliver, read_bounded};
use crate::{Sink, Stop};

/// Entries looked at, whatever the directory claims: the sink's file limit stops far sooner.
const MAX_ENTRIES: usize = 1 << 20;

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let mut archive = match zip::ZipArchive::new(Cursor::new(data)) {
        Ok(a) => a,
        Err(_) => return streamed(data, sink),
    };
    // Every entry's byte range in the file, to find entries sharing their data.
    let mut spans: Vec<(u64, u64)> = Vec::new();
    let mut overlap_reported = false;
    for i in 0..archive.len().min(MAX_ENTRIES) {
        let (name, span, size, encrypted, is_dir) = match archive.by_index_raw(i) {
            Ok(f) => {
                let start = f.header_start();
                let end = f
                    .data_start()
                    .unwrap_or(start)
                    .saturating_add(f.compressed_size());
                (
                    f.name()
                        .map(|n| n.to_string())
                        .unwrap_or_else(|_| format!("entry-{i}")),
                    (start, end),
                    f.size(),
                    f.encrypted(),
                    f.is_dir(),
                )
            }
            Err(e) => {
                sink.corrupt(&format!("zip entry {i}: {e}"));
                continue;
            }
        };
        if is_dir {
            continue;
        }
        if spans.iter().any(|&(s, e)| span.0 < e && s < span.1) {
            if !overlap_reported {
                sink.anomaly("Heuristics.Zip.OverlappingFiles");
                overlap_reported = true;
            }
            continue;
        }
        spans.push(span);
        if encrypted {
            sink.encrypted(&name);
            continue;
        }
        if size > sink.budget() {
            sink.too_large(&name);
            continue;
        }
        match archive.by_index(i) {
            Ok(f) => {
                let got = read_bounded(f, sink.budget());
                deliver(sink, &name, got)?;
            }
            Err(ZipError::UnsupportedArchive(m)) if m == ZipError::PASSWORD_REQUIRED => {
                sink.encrypted(&name)
            }
            Err(e) => sink.corrupt(&format!("{name}: {e}")),
        }
    }
    Ok(())
}

/// Walks local headers from the start when the central directory is missing or broken.
fn streamed(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let mut cursor = Cursor::new(data);
    for i in 0..MAX_ENTRIES {
        match zip::read::read_zipfile_from_stream(&mut cursor) {
            Ok(Some(f)) => {
                let name = f
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| format!("entry-{i}"));
                if f.is_dir() {
                    continue;
                }
                if f.encrypted() {
                    sink.encrypted(&name);
                    // Its data cannot be skipped without its sizes; stop here.
                    return Ok(());
                }
                let got = read_bounded(f, sink.budget());
                deliver(sink, &name, got)?;
            }
            Ok(None) => return Ok(()),
            Err(ZipError::UnsupportedArchive(m)) if m == ZipError::PASSWORD_REQUIRED => {
                sink.encrypted("");
                return Ok(());
            }
            Err(e) => {
                sink.corrupt(&format!("zip: {e}"));
                return Ok(());
            }
        }
    }
    Ok(())
}
