//! Symbian installation files (SIS, EPOC release 6 and earlier, the layout ClamAV's sis.c
//! reads): a header with the file count and option flags, then file records pointing at each
//! file's data, zlib-compressed per file unless the NOCOMPRESS option is set. Each file is a
//! member named by its destination (or source) path's last component. SIS 9.x (SISX) is not
//! read.

use crate::bounded::{deliver, read_bounded};
use crate::{Sink, Stop};

/// UID2 of release 6 files; their file records carry uncompressed lengths and a MIME type.
const UID2_RELEASE6: u32 = 0x1000_3a12;
const OPT_UNICODE: u16 = 0x1;
const OPT_NOCOMPRESS: u16 = 0x8;
/// Records read from one file: a bound on work for a hostile count.
const MAX_RECORDS: u32 = 10_000;

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let r = Reader(data);
    let (Some(uid2), Some(nlangs), Some(nfiles), Some(options), Some(files_ptr)) =
        (r.u32(4), r.u16(18), r.u16(20), r.u16(36), r.u32(52))
    else {
        sink.corrupt("sis: header cut short");
        return Ok(());
    };
    let release6 = uid2 == UID2_RELEASE6;
    let unicode = options & OPT_UNICODE != 0;
    let compressed = options & OPT_NOCOMPRESS == 0;
    let nlangs = u32::from(nlangs.max(1));
    let mut p = files_ptr as usize;
    let mut count = 0;
    for _ in 0..u32::from(nfiles).min(MAX_RECORDS) {
        let Some(kind) = r.u32(p) else {
            sink.corrupt("sis: file records cut short");
            return Ok(());
        };
        p += 4;
        match kind {
            0 | 1 => {
                let langs = if kind == 1 { nlangs } else { 1 };
                let Some(f) = FileRecord::parse(&r, p, langs, release6) else {
                    sink.corrupt("sis: file record cut short");
                    return Ok(());
                };
                p = f.next;
                let name = f
                    .dest
                    .or(f.source)
                    .and_then(|(len, ptr)| r.name(ptr, len, unicode))
                    .and_then(|n| super::mail::sanitize(&n));
                for (i, (len, ptr, orig)) in f.data.iter().copied().enumerate() {
                    count += 1;
                    let name = match (&name, langs) {
                        (Some(n), 1) => n.clone(),
                        (Some(n), _) => format!("{n}.lang{i}"),
                        (None, _) => format!("file-{count}"),
                    };
                    if len == 0 {
                        continue;
                    }
                    let Some(raw) = r.slice(ptr, len) else {
                        sink.corrupt(&format!("sis: {name} lies past the end"));
                        continue;
                    };
                    if !compressed {
                        sink.member(&name, raw)?;
                    } else if orig.is_some_and(|o| u64::from(o) > sink.budget()) {
                        sink.too_large(&name);
                    } else {
                        let got = read_bounded(flate2::read::ZlibDecoder::new(raw), sink.budget());
                        deliver(sink, &name, got)?;
                    }
                }
            }
            // Options: a count, then a (length, pointer) pair per option per language.
            2 => {
                let Some(n) = r.u32(p) else {
                    sink.corrupt("sis: options record cut short");
                    return Ok(());
                };
                let skip = u64::from(n) * u64::from(nlangs) * 8;
                p = p
                    .saturating_add(4)
                    .saturating_add(usize::try_from(skip).unwrap_or(usize::MAX));
            }
            // If and else-if: an expression of the given size.
            3 | 4 => {
                let Some(n) = r.u32(p) else {
                    sink.corrupt("sis: condition record cut short");
                    return Ok(());
                };
                p = p.saturating_add(4).saturating_add(n as usize);
            }
            5 | 6 => {}
            _ => {
                sink.corrupt("sis: unknown file record type");
                return Ok(());
            }
        }
    }
    Ok(())
}

struct FileRecord {
    source: Option<(u32, u32)>,
    dest: Option<(u32, u32)>,
    /// Per language: stored length, pointer, uncompressed length (release 6).
    data: Vec<(u32, u32, Option<u32>)>,
    next: usize,
}

impl FileRecord {
    /// The fields after the record type: file type, details, source and destination names,
    /// then per language the lengths and pointers (and in release 6 the uncompressed lengths
    /// and a MIME type).
    fn parse(r: &Reader, p: usize, langs: u32, release6: bool) -> Option<FileRecord> {
        let src = (r.u32(p + 8)?, r.u32(p + 12)?);
        let dst = (r.u32(p + 16)?, r.u32(p + 20)?);
        let n = langs as usize;
        let lens = p + 24;
        let ptrs = lens + 4 * n;
        let origs = ptrs + 4 * n;
        let mut data = Vec::with_capacity(n.min(64));
        for i in 0..n {
            let orig = if release6 {
                Some(r.u32(origs + 4 * i)?)
            } else {
                None
            };
            data.push((r.u32(lens + 4 * i)?, r.u32(ptrs + 4 * i)?, orig));
        }
        let next = if release6 {
            origs + 4 * n + 8
        } else {
            ptrs + 4 * n
        };
        let named = |(len, ptr): (u32, u32)| (len > 0).then_some((len, ptr));
        Some(FileRecord {
            source: named(src),
            dest: named(dst),
            data,
            next,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn slice(&self, ptr: u32, len: u32) -> Option<&[u8]> {
        let start = ptr as usize;
        self.0.get(start..start.checked_add(len as usize)?)
    }
    fn u16(&self, p: usize) -> Option<u16> {
        Some(u16::from_le_bytes(self.0.get(p..p + 2)?.try_into().ok()?))
    }
    fn u32(&self, p: usize) -> Option<u32> {
        super::ole2::u32_at(self.0, p)
    }
    fn name(&self, ptr: u32, len: u32, unicode: bool) -> Option<String> {
        let b = self.slice(ptr, len.min(1024))?;
        Some(if unicode {
            let units: Vec<u16> = b
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        } else {
            String::from_utf8_lossy(b).into_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::formats::testsink::Record;
    use std::io::Write;

    /// A release-6 SIS with one file, `payload` stored (compressed unless `nocompress`).
    fn sis(payload: &[u8], nocompress: bool) -> Vec<u8> {
        let stored = if nocompress {
            payload.to_vec()
        } else {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(payload).unwrap();
            z.finish().unwrap()
        };
        let mut h = vec![0u8; 0x64];
        h[4..8].copy_from_slice(&UID2_RELEASE6.to_le_bytes());
        h[8..12].copy_from_slice(&0x1000_0419u32.to_le_bytes());
        h[18..20].copy_from_slice(&1u16.to_le_bytes());
        h[20..22].copy_from_slice(&1u16.to_le_bytes());
        let opts = if nocompress { OPT_NOCOMPRESS } else { 0 };
        h[36..38].copy_from_slice(&opts.to_le_bytes());
        h[52..56].copy_from_slice(&0x64u32.to_le_bytes());
        let rec_len = 4 + 24 + 12 + 8;
        let name_ptr = 0x64 + rec_len as u32;
        let data_ptr = name_ptr + 11;
        for v in [
            0u32,
            0,
            0,
            0,
            0,
            11,
            name_ptr,
            stored.len() as u32,
            data_ptr,
        ] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(b"!:\\sys\\a.js");
        h.extend_from_slice(&stored);
        h
    }

    #[test]
    fn compressed_and_stored_files() {
        for nocompress in [false, true] {
            let r = Record::run(|s| extract(&sis(b"var x = 1;", nocompress), s));
            assert_eq!(
                r.members,
                vec![("a.js".to_string(), b"var x = 1;".to_vec())]
            );
            assert!(r.notes.is_empty(), "{:?}", r.notes);
        }
    }

    #[test]
    fn truncated_is_corrupt() {
        let f = sis(&[b'x'; 4000], false);
        for cut in [10, 0x70, f.len() - 5] {
            let r = Record::run(|s| extract(&f[..cut], s));
            assert!(r.corrupt(), "cut {cut}: {:?}", r.notes);
        }
    }
}
