//! OLE2 / Compound File Binary (doc, xls, ppt, msg, msi): every stream is a member, named by
//! its path with control characters dropped (`ObjectPool/_1234/Ole10Native`). Two kinds of
//! stream carry whole files and get those files handed out instead of (or besides) their raw
//! bytes: `\x01Ole10Native` (an embedded "Package": the file itself, named by its label) and
//! PowerPoint's ExOleObjStg records (embedded OLE objects, usually zlib-compressed). The
//! directory and sector chains are read by the `cfb` crate.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::bounded::{read_bounded, Bounded};
use crate::{Sink, Stop};

/// Streams read from one compound file: a bound on work for a hostile directory.
const MAX_STREAMS: usize = 10_000;
/// PowerPoint records walked in one stream.
const MAX_RECORDS: usize = 1_000_000;

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    // cfb validates chains and sizes and returns errors for what it rejects; a panic on some
    // input it did not foresee is still contained here and reported as corruption.
    match catch_unwind(AssertUnwindSafe(|| streams(data, sink))) {
        Ok(r) => r,
        Err(_) => {
            sink.corrupt("ole2: the compound file reader failed on this file");
            Ok(())
        }
    }
}

fn streams(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let mut cf = match cfb::CompoundFile::open(Cursor::new(data)) {
        Ok(cf) => cf,
        Err(e) => {
            sink.corrupt(&format!("ole2: {e}"));
            return Ok(());
        }
    };
    let entries: Vec<(std::path::PathBuf, u64)> = cf
        .walk()
        .filter(|e| e.is_stream())
        .take(MAX_STREAMS + 1)
        .map(|e| (e.path().to_path_buf(), e.len()))
        .collect();
    if entries.len() > MAX_STREAMS {
        sink.corrupt("ole2: too many streams");
    }
    for (path, len) in entries.into_iter().take(MAX_STREAMS) {
        let name = readable(&path.to_string_lossy());
        if len > sink.budget() {
            sink.too_large(&name);
            continue;
        }
        let got = match cf.open_stream(&path) {
            Ok(s) => read_bounded(s, sink.budget()),
            Err(e) => {
                sink.corrupt(&format!("ole2: {name}: {e}"));
                continue;
            }
        };
        let (bytes, broken) = match got {
            Bounded::Whole(b) => (b, None),
            Bounded::Over => {
                sink.too_large(&name);
                continue;
            }
            Bounded::Broken(b, e) => (b, Some(e)),
        };
        let leaf = name.rsplit('/').next().unwrap_or("");
        if leaf == "Ole10Native" {
            match bytes.get(4..).and_then(package) {
                Some((label, payload)) => {
                    let label = super::mail::sanitize(&label).unwrap_or_else(|| name.clone());
                    sink.member(&label, payload)?;
                }
                None => sink.member(&name, &bytes)?,
            }
        } else {
            if !bytes.is_empty() {
                sink.member(&name, &bytes)?;
            }
            if leaf == "PowerPoint Document" {
                powerpoint_objects(&bytes, sink)?;
            }
        }
        if let Some(e) = broken {
            sink.corrupt(&format!("ole2: {name}: {e}"));
        }
    }
    Ok(())
}

/// A stream path without the leading `/` and without control characters (`\x01CompObj`).
fn readable(path: &str) -> String {
    path.trim_start_matches(['/', '\\'])
        .replace('\\', "/")
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// An OLE "Package" (the Ole10Native stream after its size, or an OLE1 object's native data):
/// flags u16, label, original path, u32, temporary path (u32-prefixed), then u32 size + the
/// file. The label and the file.
pub(crate) fn package(b: &[u8]) -> Option<(String, &[u8])> {
    let mut p = 2;
    let label = cstr(b, &mut p)?;
    let _path = cstr(b, &mut p)?;
    p = p.checked_add(4)?;
    let cmd_len = u32_at(b, p)? as usize;
    p = p.checked_add(4)?.checked_add(cmd_len)?;
    let size = u32_at(b, p)? as usize;
    p = p.checked_add(4)?;
    let end = p.checked_add(size)?.min(b.len());
    Some((label, b.get(p..end)?))
}

fn cstr(b: &[u8], p: &mut usize) -> Option<String> {
    let rest = b.get(*p..)?;
    let n = memchr::memchr(0, rest)?;
    if n > 1024 {
        return None;
    }
    *p += n + 1;
    Some(String::from_utf8_lossy(&rest[..n]).into_owned())
}

pub(crate) fn u32_at(b: &[u8], p: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(p..p.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// PowerPoint's ExOleObjStg records (type 0x1011): instance 1 holds a u32 size and a zlib
/// stream, instance 0 the object as it is. Containers (version 0xF) are walked into.
fn powerpoint_objects(s: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let mut p = 0usize;
    let mut n = 0;
    for _ in 0..MAX_RECORDS {
        let (Some(vi), Some(ty), Some(len)) = (
            s.get(p..p + 2).map(|b| u16::from_le_bytes([b[0], b[1]])),
            s.get(p + 2..p + 4)
                .map(|b| u16::from_le_bytes([b[0], b[1]])),
            u32_at(s, p + 4),
        ) else {
            break;
        };
        let body_start = p + 8;
        if vi & 0xf == 0xf {
            p = body_start;
            continue;
        }
        let Some(body) = body_start
            .checked_add(len as usize)
            .and_then(|e| s.get(body_start..e))
        else {
            break;
        };
        if ty == 0x1011 {
            n += 1;
            let name = format!("object-{n}");
            if vi >> 4 == 1 {
                let declared = u64::from(u32_at(body, 0).unwrap_or(0));
                if declared > sink.budget() {
                    sink.too_large(&name);
                } else {
                    let z = flate2::read::ZlibDecoder::new(body.get(4..).unwrap_or(&[]));
                    let got = read_bounded(z, sink.budget());
                    crate::bounded::deliver(sink, &name, got)?;
                }
            } else {
                sink.member(&name, body)?;
            }
        }
        p = body_start + body.len();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::formats::testsink::Record;
    use std::io::Write;

    fn compound(streams: &[(&str, &[u8])]) -> Vec<u8> {
        let mut cf = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        for (path, data) in streams {
            if let Some((dir, _)) = path.rsplit_once('/') {
                cf.create_storage_all(dir).unwrap();
            }
            cf.create_stream(path).unwrap().write_all(data).unwrap();
        }
        cf.flush().unwrap();
        cf.into_inner().into_inner()
    }

    fn package_bytes(label: &str, payload: &[u8]) -> Vec<u8> {
        let mut b = 2u16.to_le_bytes().to_vec();
        b.extend_from_slice(label.as_bytes());
        b.push(0);
        b.extend_from_slice(b"C:\\x\\a.exe\0");
        b.extend_from_slice(&[0, 0, 3, 0]);
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(b"tmp\0");
        b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn streams_and_ole10native_payload() {
        let pkg = package_bytes("evil.exe", b"MZ payload");
        let mut native = (pkg.len() as u32).to_le_bytes().to_vec();
        native.extend_from_slice(&pkg);
        let f = compound(&[
            ("/WordDocument", b"text"),
            ("/ObjectPool/_1/\u{1}Ole10Native", &native),
        ]);
        let r = Record::run(|s| extract(&f, s));
        assert!(r
            .members
            .contains(&("WordDocument".to_string(), b"text".to_vec())));
        assert!(r
            .members
            .contains(&("evil.exe".to_string(), b"MZ payload".to_vec())));
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn powerpoint_compressed_object() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"inner ole").unwrap();
        let z = z.finish().unwrap();
        let mut rec = 9u32.to_le_bytes().to_vec();
        rec.extend_from_slice(&z);
        // A container (ver 0xF) holding one ExOleObjStg, instance 1.
        let mut inner = 0x0010u16.to_le_bytes().to_vec();
        inner.extend_from_slice(&0x1011u16.to_le_bytes());
        inner.extend_from_slice(&(rec.len() as u32).to_le_bytes());
        inner.extend_from_slice(&rec);
        let mut doc = 0x000fu16.to_le_bytes().to_vec();
        doc.extend_from_slice(&0x03e8u16.to_le_bytes());
        doc.extend_from_slice(&(inner.len() as u32).to_le_bytes());
        doc.extend_from_slice(&inner);
        let r = Record::run(|s| powerpoint_objects(&doc, s));
        assert_eq!(
            r.members,
            vec![("object-1".to_string(), b"inner ole".to_vec())]
        );
    }

    #[test]
    fn truncated_is_corrupt() {
        let f = compound(&[("/A", &[7u8; 10_000])]);
        for cut in [100, 600, f.len() / 2] {
            let r = Record::run(|s| extract(&f[..cut], s));
            assert!(r.corrupt() || r.members.iter().all(|m| m.1.len() < 10_000));
        }
        let r = Record::run(|s| extract(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", s));
        assert!(r.corrupt());
    }
}
