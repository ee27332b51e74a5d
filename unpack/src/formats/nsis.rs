//! NSIS (Nullsoft) installers: a small PE stub followed by the installer's data, which starts
//! with the "firstheader": u32 flags, u32 0xDEADBEEF, "NullsoftInst", u32 length of the
//! decompressed script header, u32 length of all data from the firstheader on (itself
//! included, and a trailing CRC).
//!
//! The data is either non-solid (blocks of u32 length, high bit set when the block is
//! compressed, then that many bytes, each block compressed on its own) or solid (one
//! compressed stream of [u32 length][bytes] records). The first block or record is the
//! script header; the rest are the installed files' data in the order the script writes them.
//! File names live in the script's bytecode, which is not interpreted here: members are named
//! `nsis-header`, `nsis-1`, `nsis-2`, ... Compression is LZMA (5 bytes of properties, then a
//! raw stream of unknown size), raw deflate, or NSIS's own bzip2 variant (not supported:
//! reported as corrupt). Solid or not is guessed as ClamAV guesses it: the non-solid block
//! chain must fit in the data.

use std::io::{self, Read};

use memchr::memmem;

use crate::bounded::{deliver, read_bounded, Bounded};
use crate::{Sink, Stop};

/// The firstheader's signature and magic; the header itself starts 4 bytes (its flags) before.
pub(crate) const SIGNATURE: &[u8] = b"\xef\xbe\xad\xdeNullsoftInst";
const FIRSTHEADER_LEN: usize = 28;
/// Candidate signatures tried per file: the string may also appear in a stub's code or in a
/// file about NSIS; the first one that yields a member ends the search.
const MAX_CANDIDATES: usize = 4;
/// Records read from a solid stream, whatever it holds: each costs at least its 4-byte
/// length, so this bounds the work a stream of empty records causes.
const MAX_RECORDS: usize = 1 << 20;
/// LZMA dictionary asked of the decoder at most (NSIS's own maximum is 128 MiB, its default
/// 8 MiB). The decoder grows its window with its output, which the budget bounds anyway.
const MAX_DICT: u32 = 128 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Lzma,
    Deflate,
    Bzip2,
}

impl Method {
    /// As NSIS's data begins with each compressor's output: `1` (bzip2 block size), LZMA's
    /// properties byte 0x5d (lc=3 lp=0 pb=2, the only one NSIS writes), else deflate.
    fn guess(start: &[u8]) -> Method {
        match start {
            [b'1', ..] => Method::Bzip2,
            [0x5d, 0, 0, ..] => Method::Lzma,
            _ => Method::Deflate,
        }
    }
}

/// Extracts every NSIS installer signature in `data` that parses.
pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    for at in memmem::find_iter(data, SIGNATURE).take(MAX_CANDIDATES) {
        let Some(start) = at.checked_sub(4) else {
            continue;
        };
        if installer(&data[start..], sink)? {
            break;
        }
    }
    Ok(())
}

fn le32(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// One installer from its firstheader on. `Ok(true)` when it was recognised (members handed
/// out or errors reported), `Ok(false)` when this was no firstheader after all.
fn installer(d: &[u8], sink: &mut dyn Sink) -> Result<bool, Stop> {
    let Some(declared) = le32(d, 0x18) else {
        return Ok(false);
    };
    let declared = declared as usize;
    if declared < FIRSTHEADER_LEN + 4 {
        return Ok(false);
    }
    // A download cut short: read what is there, and say so.
    let truncated = declared > d.len();
    let Some(body) = d.get(FIRSTHEADER_LEN..declared.min(d.len())) else {
        return Ok(false);
    };
    let Some(chain) = block_chain(body, truncated) else {
        let solid = solid(body, sink);
        if truncated {
            sink.corrupt(&format!("nsis: truncated: {} of {declared} bytes", d.len()));
        }
        return solid.map(|()| true);
    };
    non_solid(body, &chain, sink)?;
    if truncated {
        sink.corrupt(&format!("nsis: truncated: {} of {declared} bytes", d.len()));
    }
    Ok(true)
}

/// One block of a non-solid installer: where its bytes are and whether they are compressed.
struct Block {
    start: usize,
    len: usize,
    compressed: bool,
}

/// The non-solid block chain, if the data reads as one: every block within the data, up to
/// its last 4 bytes (the CRC NSIS appends). `None`: the data is one solid stream.
fn block_chain(body: &[u8], truncated: bool) -> Option<Vec<Block>> {
    let mut blocks = Vec::new();
    let mut pos = 0usize;
    // Each block advances `pos` by at least 4, so this ends within body.len() / 4 rounds.
    while let Some(word) = le32(body, pos) {
        let len = (word & 0x7fff_ffff) as usize;
        let start = pos + 4;
        let end = start.checked_add(len)?;
        if end > body.len() {
            // A truncated non-solid installer still has whole blocks before the break; ClamAV
            // calls that non-solid after two blocks, and so does this.
            if truncated && blocks.len() >= 2 {
                break;
            }
            return None;
        }
        blocks.push(Block {
            start,
            len,
            compressed: word & 0x8000_0000 != 0,
        });
        pos = end;
        if body.len() - pos <= 4 {
            break;
        }
    }
    (!blocks.is_empty()).then_some(blocks)
}

fn non_solid(body: &[u8], chain: &[Block], sink: &mut dyn Sink) -> Result<(), Stop> {
    // One compressor per installer: vote over the compressed blocks, since a deflate stream
    // may begin with any byte.
    let mut votes = [0usize; 3];
    for b in chain.iter().filter(|b| b.compressed) {
        let i = match Method::guess(&body[b.start..b.start + b.len]) {
            Method::Lzma => 0,
            Method::Deflate => 1,
            Method::Bzip2 => 2,
        };
        votes[i] += 1;
    }
    let method = if votes[0] >= votes[1] && votes[0] >= votes[2] {
        Method::Lzma
    } else if votes[1] >= votes[2] {
        Method::Deflate
    } else {
        Method::Bzip2
    };
    for (i, b) in chain.iter().enumerate() {
        let name = member_name(i);
        let raw = &body[b.start..b.start + b.len];
        if raw.is_empty() {
            continue;
        }
        if !b.compressed {
            if raw.len() as u64 > sink.budget() {
                sink.too_large(&name);
            } else {
                sink.member(&name, raw)?;
            }
            continue;
        }
        let got = match decoder(method, raw) {
            Ok(r) => read_bounded(r, sink.budget()),
            Err(why) => {
                sink.corrupt(&format!("nsis: {name}: {why}"));
                continue;
            }
        };
        deliver(sink, &name, got)?;
    }
    Ok(())
}

fn solid(body: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    let method = Method::guess(body);
    let mut r = match decoder(method, body) {
        Ok(r) => r,
        Err(why) => {
            sink.corrupt(&format!("nsis: solid stream: {why}"));
            return Ok(());
        }
    };
    for i in 0..MAX_RECORDS {
        let name = member_name(i);
        let mut len = [0u8; 4];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            // The stream's end between records is its ordinary end.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => {
                sink.corrupt(&format!("nsis: solid stream before {name}: {e}"));
                return Ok(());
            }
        }
        let len = u64::from(u32::from_le_bytes(len));
        if len == 0 {
            continue;
        }
        if len > sink.budget() {
            // Reaching the next record means decompressing through this one: stop here as
            // ClamAV does, and say what was not scanned.
            sink.too_large(&name);
            return Ok(());
        }
        match read_bounded((&mut r).take(len), sink.budget()) {
            Bounded::Whole(data) if data.len() as u64 == len => sink.member(&name, &data)?,
            Bounded::Whole(data) | Bounded::Broken(data, _) => {
                if !data.is_empty() {
                    sink.member(&name, &data)?;
                }
                sink.corrupt(&format!(
                    "nsis: {name}: solid stream ends after {} of {len} bytes",
                    data.len()
                ));
                return Ok(());
            }
            Bounded::Over => {
                sink.too_large(&name);
                return Ok(());
            }
        }
    }
    Ok(())
}

fn member_name(i: usize) -> String {
    if i == 0 {
        "nsis-header".to_string()
    } else {
        format!("nsis-{i}")
    }
}

/// A decompressor over one compressed stream.
fn decoder<'a>(method: Method, raw: &'a [u8]) -> Result<Box<dyn Read + 'a>, String> {
    match method {
        Method::Deflate => Ok(Box::new(flate2::read::DeflateDecoder::new(raw))),
        Method::Lzma => {
            let (Some(&props), Some(dict)) = (raw.first(), le32(raw, 1)) else {
                return Err("LZMA properties cut short".to_string());
            };
            let stream = raw.get(5..).unwrap_or_default();
            lzma_rust2::LzmaReader::new_with_props(
                stream,
                u64::MAX,
                props,
                dict.min(MAX_DICT),
                None,
            )
            .map(|r| Box::new(r) as Box<dyn Read>)
            .map_err(|e| format!("LZMA: {e}"))
        }
        Method::Bzip2 => Err("NSIS's bzip2 variant is not supported".to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;

    use super::*;

    use crate::formats::testsink::Record;

    /// "Hello, world!" as a raw LZMA stream with an end marker, after NSIS's 5 property bytes
    /// (lzma-rust2's own example stream without the .lzma size field).
    const HELLO_LZMA: &[u8] = &[
        0x5d, 0, 0, 0x80, 0, 0, 36, 25, 73, 152, 111, 22, 2, 140, 232, 230, 91, 177, 71, 198, 206,
        183, 99, 255, 255, 60, 172, 0, 0,
    ];

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A stub, then a firstheader and `body`, and a 4-byte CRC.
    fn installer(body: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; 512];
        d[..2].copy_from_slice(b"MZ");
        let total = (FIRSTHEADER_LEN + body.len() + 4) as u32;
        d.extend_from_slice(&1u32.to_le_bytes());
        d.extend_from_slice(SIGNATURE);
        d.extend_from_slice(&100u32.to_le_bytes());
        d.extend_from_slice(&total.to_le_bytes());
        d.extend_from_slice(body);
        d.extend_from_slice(b"CRC!");
        d
    }

    fn block(data: &[u8], compressed: bool) -> Vec<u8> {
        let flag = if compressed { 0x8000_0000 } else { 0 };
        let mut b = (data.len() as u32 | flag).to_le_bytes().to_vec();
        b.extend_from_slice(data);
        b
    }

    fn run(d: &[u8]) -> Record {
        Record::run(|s| extract(d, s))
    }

    #[test]
    fn non_solid_deflate_blocks() {
        let mut body = block(&deflate(b"script header"), true);
        body.extend(block(&deflate(&[7u8; 3000]), true));
        body.extend(block(b"stored file", false));
        let r = run(&installer(&body));
        assert_eq!(r.notes, Vec::<String>::new());
        let names: Vec<_> = r.members.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(names, ["nsis-header", "nsis-1", "nsis-2"]);
        assert_eq!(r.members[1].1, vec![7u8; 3000]);
        assert_eq!(r.members[2].1, b"stored file");
    }

    #[test]
    fn non_solid_lzma_blocks() {
        let mut body = block(HELLO_LZMA, true);
        body.extend(block(HELLO_LZMA, true));
        let r = run(&installer(&body));
        assert_eq!(r.members.len(), 2, "{:?}", r.notes);
        assert_eq!(r.members[1].1, b"Hello, world!");
    }

    #[test]
    fn solid_deflate_stream() {
        let mut plain = Vec::new();
        for rec in [&b"the header"[..], b"", b"first file", b"second"] {
            plain.extend_from_slice(&(rec.len() as u32).to_le_bytes());
            plain.extend_from_slice(rec);
        }
        let r = run(&installer(&deflate(&plain)));
        let got: Vec<_> = r
            .members
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("nsis-header", &b"the header"[..]),
                ("nsis-2", b"first file"),
                ("nsis-3", b"second")
            ]
        );
    }

    #[test]
    fn solid_record_over_budget_stops() {
        let mut plain = 8u32.to_le_bytes().to_vec();
        plain.extend_from_slice(b"header!!");
        plain.extend_from_slice(&5000u32.to_le_bytes());
        plain.extend(vec![1u8; 5000]);
        let r = Record::with_budget(4096, |s| extract(&installer(&deflate(&plain)), s));
        assert_eq!(r.members.len(), 1);
        assert_eq!(r.notes, ["too large nsis-1"]);
    }

    #[test]
    fn solid_record_cut_short_is_corrupt() {
        let mut plain = 100u32.to_le_bytes().to_vec();
        plain.extend_from_slice(b"only forty bytes of the hundred promised");
        let r = run(&installer(&deflate(&plain)));
        assert_eq!(r.members.len(), 1);
        assert!(r.notes[0].contains("ends after 40 of 100"), "{:?}", r.notes);
    }

    #[test]
    fn bzip2_variant_reported() {
        let body = block(b"1BZ-ish data that is not read", true);
        let r = run(&installer(&body));
        assert!(r.members.is_empty());
        assert!(r.notes[0].contains("bzip2"), "{:?}", r.notes);
    }

    #[test]
    fn truncated_installer_reports_corrupt() {
        let mut body = block(&deflate(b"script header"), true);
        body.extend(block(&deflate(b"file one"), true));
        // Bytes deflate cannot shrink, so that cutting 300 lands inside this block.
        let noise: Vec<u8> = (0..900u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        body.extend(block(&deflate(&noise), true));
        let whole = installer(&body);
        let r = run(&whole[..whole.len() - 300]);
        assert_eq!(r.members.len(), 2, "{:?}", r.notes);
        assert!(r.notes.iter().any(|n| n.contains("truncated")));
    }

    #[test]
    fn every_prefix_and_bit_flip_is_safe() {
        let mut body = block(HELLO_LZMA, true);
        body.extend(block(&deflate(b"some file data"), true));
        let whole = installer(&body);
        for n in 0..whole.len() {
            run(&whole[..n]);
        }
        for i in 512..whole.len() {
            let mut d = whole.clone();
            d[i] ^= 0xff;
            run(&d);
        }
    }

    #[test]
    fn not_an_installer() {
        let r = run(b"xx\xef\xbe\xad\xdeNullsoftInst but nothing after");
        assert!(r.members.is_empty());
        let r = run(b"\xef\xbe\xad\xdeNullsoftInst at the very start, no flags");
        assert!(r.members.is_empty());
    }
}
