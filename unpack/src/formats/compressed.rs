//! Single-stream compressors: gzip (every member of a multi-member file), bzip2, xz, zstd.
//! Each yields one member, named after the format, since a stream has no names of its own
//! (gzip's optional FNAME is the sender's claim and is used only to name the member).

use std::io::Read;

use crate::bounded::{deliver, read_bounded};
use crate::{Sink, Stop};

pub fn gzip(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let name = gzip_name(data).unwrap_or_else(|| "gzip".to_string());
    let got = read_bounded(flate2::read::MultiGzDecoder::new(data), sink.budget());
    deliver(sink, &name, got)
}

pub fn bzip2(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let got = read_bounded(bzip2::read::MultiBzDecoder::new(data), sink.budget());
    deliver(sink, "bzip2", got)
}

pub fn xz(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    // The decoder's dictionary is bounded too: a header may ask for up to 4 GiB.
    let r = lzma_rust2::XzReader::new_mem_limit(data, true, 256 * 1024);
    let got = read_bounded(r, sink.budget());
    deliver(sink, "xz", got)
}

pub fn zstd(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let got = match zstd::stream::read::Decoder::new(data) {
        Ok(mut d) => {
            // A window above 128 MiB (2^27) is refused rather than allocated.
            if d.window_log_max(27).is_err() {
                sink.corrupt("zstd: cannot bound the window");
                return Ok(());
            }
            read_bounded(&mut d as &mut dyn Read, sink.budget())
        }
        Err(e) => {
            sink.corrupt(&format!("zstd: {e}"));
            return Ok(());
        }
    };
    deliver(sink, "zstd", got)
}

/// The FNAME field of a gzip header, if present and printable.
fn gzip_name(d: &[u8]) -> Option<String> {
    let flags = *d.get(3)?;
    if flags & 0x08 == 0 {
        return None;
    }
    let mut p = 10;
    if flags & 0x04 != 0 {
        let xlen = u16::from_le_bytes([*d.get(10)?, *d.get(11)?]) as usize;
        p += 2 + xlen;
    }
    let rest = d.get(p..)?;
    let end = memchr::memchr(0, rest)?.min(255);
    let name = String::from_utf8_lossy(&rest[..end]).into_owned();
    let name = name.rsplit(['/', '\\']).next().unwrap_or("").to_string();
    (!name.is_empty()).then_some(name)
}
