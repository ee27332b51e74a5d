//! ARJ (Robert Jung's DOS archiver, still met in old mail and malware collections): a main
//! header, then per member a local header and its data. Every header is `0x60 0xEA`, a
//! 16-bit size, that many bytes (the basic header), their CRC-32 and a chain of extended
//! headers. Data is stored (method 0), or LZ77 over a 26624-byte window with block-wise
//! canonical Huffman codes (methods 1-3: Okumura's ar002 scheme, the one LHA's -lh5- to -lh7-
//! use, with 510 literal/length symbols and 17 offset classes), or LZ77 with unary-prefixed
//! lengths and offsets (method 4, "fastest"). Each member's CRC-32 is checked.
//!
//! The decoders are written here, from the format's description (about 300 lines): on crates.io,
//! `unarj-rs` was declared finished by its author after three releases in May 2024, and
//! `unarc-rs`, which is maintained, brings a whole zoo of retro formats and the unrar C++
//! library with it; neither promises anything about hostile input or memory bounds.

use std::borrow::Cow;

use flate2::Crc;

use crate::{Sink, Stop};

const HEADER_ID: [u8; 2] = [0x60, 0xea];
/// The basic header's largest size (ARJ's own limit); a bigger one is not an ARJ header.
const MAX_BASIC: usize = 2600;
/// The fixed fields of a basic header, before any extra data and the name.
const MIN_FIRST: usize = 30;
/// Header flag: the member is garbled (ARJ's password "encryption").
const GARBLED: u8 = 0x01;
/// File types that carry no content: comment (main) header, directory, volume and chapter
/// labels.
const NO_CONTENT: [u8; 4] = [2, 3, 4, 5];

fn u16le(d: &[u8], off: usize) -> Option<usize> {
    Some(usize::from(u16::from_le_bytes(
        d.get(off..off.checked_add(2)?)?.try_into().ok()?,
    )))
}

fn u32le(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = Crc::new();
    c.update(data);
    c.sum()
}

/// Whether `d` opens with an ARJ header whose CRC-32 is right: two bytes of magic alone would
/// claim too many files.
pub(crate) fn header_ok(d: &[u8]) -> bool {
    matches!(header(d, 0), Ok(Some(_)))
}

/// One basic header with what follows it up to the member's data.
struct Header {
    flags: u8,
    method: u8,
    file_type: u8,
    packed: u32,
    original: u32,
    crc: u32,
    name: String,
    /// Where the member's data starts (past the extended headers).
    data: usize,
}

/// The header at `off`: `None` for the end-of-archive marker (size 0).
fn header(d: &[u8], off: usize) -> Result<Option<Header>, String> {
    if d.get(off..off.saturating_add(2)) != Some(&HEADER_ID[..]) {
        return Err(format!("no header at offset {off}"));
    }
    let size = u16le(d, off + 2).ok_or_else(|| format!("header at {off} cut short"))?;
    if size == 0 {
        return Ok(None);
    }
    if !(MIN_FIRST..=MAX_BASIC).contains(&size) {
        return Err(format!("header at {off}: size {size} out of range"));
    }
    let start = off + 4;
    let basic = d
        .get(start..start + size)
        .ok_or_else(|| format!("header at {off} cut short"))?;
    let stored = u32le(d, start + size).ok_or_else(|| format!("header at {off} cut short"))?;
    if crc32(basic) != stored {
        return Err(format!("header at {off}: CRC mismatch"));
    }
    let first = usize::from(basic[0]);
    if !(MIN_FIRST..=size).contains(&first) {
        return Err(format!(
            "header at {off}: fixed part size {first} out of range"
        ));
    }
    let field = |i: usize| u32le(basic, i).unwrap_or(0);
    let raw_name = &basic[first..];
    let raw_name = &raw_name[..memchr::memchr(0, raw_name).unwrap_or(raw_name.len())];
    // Extended headers: a size, that many bytes and their CRC-32, until a size of 0. Nothing
    // in them is needed to extract; each step moves on at least two bytes, so this ends.
    let mut p = start + size + 4;
    loop {
        let ext =
            u16le(d, p).ok_or_else(|| format!("header at {off}: extended header cut short"))?;
        p += 2;
        if ext == 0 {
            break;
        }
        p = p
            .checked_add(ext + 4)
            .filter(|&e| e <= d.len())
            .ok_or_else(|| format!("header at {off}: extended header cut short"))?;
    }
    Ok(Some(Header {
        flags: basic[4],
        method: basic[5],
        file_type: basic[6],
        packed: field(12),
        original: field(16),
        crc: field(20),
        name: String::from_utf8_lossy(raw_name).into_owned(),
        data: p,
    }))
}

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    // The main header: the archive's name and comment, no data after it.
    let mut off = match header(data, 0) {
        Ok(Some(h)) => h.data,
        Ok(None) => return Ok(()),
        Err(why) => {
            sink.corrupt(&format!("arj: {why}"));
            return Ok(());
        }
    };
    // Every round moves `off` past a header of at least 40 bytes: bounded by the input.
    loop {
        let h = match header(data, off) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(()),
            Err(why) => {
                sink.corrupt(&format!("arj: {why}"));
                return Ok(());
            }
        };
        let name = if h.name.is_empty() {
            format!("arj-{off}")
        } else {
            h.name.clone()
        };
        let Some(packed) = usize::try_from(h.packed)
            .ok()
            .and_then(|n| h.data.checked_add(n))
            .and_then(|end| data.get(h.data..end))
        else {
            sink.corrupt(&format!("arj: {name}: data past the end"));
            return Ok(());
        };
        off = h.data + packed.len();
        if NO_CONTENT.contains(&h.file_type) {
            continue;
        }
        if h.flags & GARBLED != 0 {
            sink.encrypted(&name);
            continue;
        }
        if u64::from(h.original) > sink.budget() {
            sink.too_large(&name);
            continue;
        }
        // Checked against the budget just above, so the output is bounded by it.
        let want = h.original as usize;
        let decoded = match h.method {
            // Stored: the input itself, never more of it than the original size.
            0 => Ok(Cow::Borrowed(packed.get(..want).unwrap_or(packed))),
            1..=3 => lzh::decode(packed, want).map(Cow::Owned),
            4 => fastest::decode(packed, want).map(Cow::Owned),
            m => {
                sink.corrupt(&format!("arj: {name}: unknown method {m}"));
                continue;
            }
        };
        match decoded {
            Ok(out) => {
                let bad = out.len() != want || crc32(&out) != h.crc;
                sink.member(&name, &out)?;
                if bad {
                    sink.corrupt(&format!("arj: {name}: CRC or size mismatch"));
                }
            }
            Err((partial, why)) => {
                if !partial.is_empty() {
                    sink.member(&name, &partial)?;
                }
                sink.corrupt(&format!("arj: {name}: {why}"));
            }
        }
    }
}

/// A decoder's failure: what it produced up to there, and why it stopped.
type Decoded = Result<Vec<u8>, (Vec<u8>, &'static str)>;

const RAN_DRY: &str = "compressed data ends early";
const BEFORE_START: &str = "match reaches before the start of the file";

/// Bits most significant first, as both ARJ schemes write them. Reads past the end see
/// zeros (the Huffman decoder looks 16 bits ahead); consuming past it is an error.
struct Bits<'a> {
    src: &'a [u8],
    /// Bits consumed.
    pos: usize,
}

impl<'a> Bits<'a> {
    fn new(src: &'a [u8]) -> Self {
        Bits { src, pos: 0 }
    }

    /// The next 16 bits, not consumed.
    fn peek16(&self) -> u32 {
        let at = self.pos / 8;
        let byte = |i: usize| u32::from(self.src.get(at + i).copied().unwrap_or(0));
        let w = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        (w >> (8 - self.pos % 8)) & 0xffff
    }

    fn skip(&mut self, n: u32) -> Result<(), &'static str> {
        self.pos += n as usize;
        if self.pos > self.src.len().saturating_mul(8) {
            return Err(RAN_DRY);
        }
        Ok(())
    }

    /// `n` (at most 16) bits as a number.
    fn bits(&mut self, n: u32) -> Result<u32, &'static str> {
        let v = if n == 0 { 0 } else { self.peek16() >> (16 - n) };
        self.skip(n)?;
        Ok(v)
    }
}

/// Appends `len` bytes copied from `dist + 1` back, stopping at `want` bytes.
fn copy_match(out: &mut Vec<u8>, dist: usize, len: usize, want: usize) -> Result<(), &'static str> {
    let from = out.len().checked_sub(dist + 1).ok_or(BEFORE_START)?;
    let len = len.min(want.saturating_sub(out.len()));
    for k in 0..len {
        // `from + k` is always behind the end (the distance is at least 1).
        let b = out.get(from + k).copied().ok_or(BEFORE_START)?;
        out.push(b);
    }
    Ok(())
}

/// Methods 1-3: blocks, each with a code for the code lengths (`NT` symbols), a literal and
/// length code (`NC`) and an offset-class code (`NP`), all canonical Huffman up to 16 bits.
mod lzh {
    use super::{copy_match, Bits, Decoded};

    const NC: usize = 255 + 256 + 2 - 3;
    const NP: usize = 17;
    const NT: usize = 19;
    const CBIT: u32 = 9;
    const PBIT: u32 = 5;
    const TBIT: u32 = 5;
    const BAD_TABLE: &str = "invalid Huffman table";

    /// A prefix code: one symbol (sent as "zero lengths, then the symbol": no bits per use)
    /// or a complete canonical code.
    struct Code {
        single: Option<u16>,
        /// The first code of each length.
        first: [u32; 17],
        /// Left-justified to 16 bits, the end of the codes up to each length.
        limit: [u32; 17],
        /// Index into `symbols` of each length's first symbol.
        offset: [u16; 17],
        /// Symbols by (length, value): the canonical order.
        symbols: Vec<u16>,
    }

    impl Code {
        fn single(s: u16) -> Code {
            Code {
                single: Some(s),
                first: [0; 17],
                limit: [0; 17],
                offset: [0; 17],
                symbols: Vec::new(),
            }
        }

        fn build(lens: &[u8]) -> Result<Code, &'static str> {
            let mut count = [0u32; 17];
            for &l in lens {
                if l > 16 {
                    return Err(BAD_TABLE);
                }
                count[usize::from(l)] += 1;
            }
            // The code must fill the 16-bit space exactly (ARJ's own decoder insists too).
            let space: u32 = (1..17).map(|l| count[l] << (16 - l)).sum();
            if space != 1 << 16 {
                return Err(BAD_TABLE);
            }
            let mut code = Code::single(0);
            code.single = None;
            let mut next = 0u32;
            let mut at = 0u16;
            for (l, &n) in count.iter().enumerate().skip(1) {
                code.first[l] = next;
                code.limit[l] = (next + n) << (16 - l);
                code.offset[l] = at;
                // At most NC = 510 symbols.
                at += n as u16;
                next = (next + n) << 1;
            }
            // Symbols in canonical order by one counting pass (a hostile stream may send a
            // new table every few bytes).
            code.symbols = vec![0; usize::from(at)];
            let mut fill = code.offset;
            for (s, &l) in lens.iter().enumerate() {
                if l > 0 {
                    let slot = &mut fill[usize::from(l)];
                    if let Some(dst) = code.symbols.get_mut(usize::from(*slot)) {
                        *dst = s as u16;
                    }
                    *slot += 1;
                }
            }
            Ok(code)
        }

        fn read(&self, bits: &mut Bits) -> Result<usize, &'static str> {
            if let Some(s) = self.single {
                return Ok(usize::from(s));
            }
            let v = bits.peek16();
            // The codes of each length fill the interval after the shorter ones' (a length
            // with no codes has an empty one, so the first limit above `v` is its length).
            for l in 1..17 {
                if v < self.limit[l] {
                    let code = (v >> (16 - l))
                        .checked_sub(self.first[l])
                        .ok_or(BAD_TABLE)?;
                    let s = self
                        .symbols
                        .get(usize::from(self.offset[l]) + code as usize)
                        .copied()
                        .ok_or(BAD_TABLE)?;
                    bits.skip(l as u32)?;
                    return Ok(usize::from(s));
                }
            }
            Err(BAD_TABLE)
        }
    }

    /// The code-length code and the offset code: `nn` lengths, 3-bit numbers with longer
    /// ones in unary; after the `special`-th, a 2-bit count of zero lengths.
    fn read_pt(
        bits: &mut Bits,
        nn: usize,
        nbit: u32,
        special: Option<usize>,
    ) -> Result<Code, &'static str> {
        let n = bits.bits(nbit)? as usize;
        if n == 0 {
            let c = bits.bits(nbit)?;
            return if (c as usize) < nn {
                Ok(Code::single(c as u16))
            } else {
                Err(BAD_TABLE)
            };
        }
        if n > nn {
            return Err(BAD_TABLE);
        }
        let mut lens = [0u8; NT];
        let mut i = 0;
        while i < n {
            let mut c = bits.bits(3)?;
            if c == 7 {
                while bits.bits(1)? == 1 {
                    c += 1;
                    if c > 16 {
                        return Err(BAD_TABLE);
                    }
                }
            }
            lens[i] = c as u8;
            i += 1;
            if Some(i) == special {
                i += bits.bits(2)? as usize;
            }
        }
        Code::build(lens.get(..nn).ok_or(BAD_TABLE)?)
    }

    /// The literal/length code's lengths, themselves coded with `pt`: symbols 0-2 are runs
    /// of zero lengths (1; 3-18; 20-531), the others a length plus 2.
    fn read_c(bits: &mut Bits, pt: &Code) -> Result<Code, &'static str> {
        let n = bits.bits(CBIT)? as usize;
        if n == 0 {
            let c = bits.bits(CBIT)? as usize;
            return if c < NC {
                Ok(Code::single(c as u16))
            } else {
                Err(BAD_TABLE)
            };
        }
        if n > NC {
            return Err(BAD_TABLE);
        }
        let mut lens = [0u8; NC];
        let mut i = 0;
        while i < n {
            let c = pt.read(bits)?;
            if c <= 2 {
                let run = match c {
                    0 => 1,
                    1 => bits.bits(4)? as usize + 3,
                    _ => bits.bits(CBIT)? as usize + 20,
                };
                i += run;
                if i > NC {
                    return Err(BAD_TABLE);
                }
            } else {
                // `pt` has NT = 19 symbols, so this is at most 16.
                lens[i] = (c - 2) as u8;
                i += 1;
            }
        }
        Code::build(&lens)
    }

    /// Decodes `want` bytes (checked against the budget by the caller).
    pub fn decode(src: &[u8], want: usize) -> Decoded {
        let mut out = Vec::with_capacity(want.min(1 << 20));
        match run(src, want, &mut out) {
            Ok(()) => Ok(out),
            Err(why) => Err((out, why)),
        }
    }

    fn run(src: &[u8], want: usize, out: &mut Vec<u8>) -> Result<(), &'static str> {
        let mut bits = Bits::new(src);
        let mut left = 0u32;
        let (mut c_code, mut p_code) = (Code::single(0), Code::single(0));
        // Every symbol adds at least one byte: at most `want` rounds.
        while out.len() < want {
            if left == 0 {
                // A block's symbol count; 0 stands for 65536 (ARJ counts down a u16).
                left = match bits.bits(16)? {
                    0 => 1 << 16,
                    n => n,
                };
                let pt = read_pt(&mut bits, NT, TBIT, Some(3))?;
                c_code = read_c(&mut bits, &pt)?;
                p_code = read_pt(&mut bits, NP, PBIT, None)?;
            }
            left -= 1;
            let c = c_code.read(&mut bits)?;
            if c < 256 {
                out.push(c as u8);
                continue;
            }
            // Symbols 256.. are match lengths from 3.
            let len = c - 253;
            let class = p_code.read(&mut bits)? as u32;
            let dist = if class == 0 {
                0
            } else {
                (1usize << (class - 1)) + bits.bits(class - 1)? as usize
            };
            copy_match(out, dist, len, want)?;
        }
        Ok(())
    }
}

/// Method 4: a 0 bit and 8 bits for a literal; else the length less 2 and then the offset,
/// each a unary width prefix (lengths from 0 bits, stopping at 7; offsets from 9, at 13)
/// followed by that many bits.
mod fastest {
    use super::{copy_match, Bits, Decoded};

    /// A number: `start` bits plus one more per 1 bit before the first 0 bit (at most
    /// `stop - start` of them), each width adding the values of the narrower ones below it.
    fn number(bits: &mut Bits, start: u32, stop: u32) -> Result<usize, &'static str> {
        let mut plus = 0usize;
        let mut width = start;
        while width < stop {
            if bits.bits(1)? == 0 {
                break;
            }
            plus += 1 << width;
            width += 1;
        }
        Ok(plus + bits.bits(width)? as usize)
    }

    pub fn decode(src: &[u8], want: usize) -> Decoded {
        let mut out = Vec::with_capacity(want.min(1 << 20));
        match run(src, want, &mut out) {
            Ok(()) => Ok(out),
            Err(why) => Err((out, why)),
        }
    }

    fn run(src: &[u8], want: usize, out: &mut Vec<u8>) -> Result<(), &'static str> {
        let mut bits = Bits::new(src);
        // Every round adds at least one byte.
        while out.len() < want {
            let c = number(&mut bits, 0, 7)?;
            if c == 0 {
                out.push(bits.bits(8)? as u8);
                continue;
            }
            let dist = number(&mut bits, 9, 13)?;
            copy_match(out, dist, c + 2, want)?;
        }
        Ok(())
    }
}
