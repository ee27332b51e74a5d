//! AutoIt v3 compiled scripts (facts from ClamAV's libclamav/autoit.c): a 16-byte GUID and
//! `AU3!EA05` or `AU3!EA06` mark the resources appended to AutoIt's interpreter. Each resource
//! (the script itself, and every file it `FileInstall`s) is a magic word, an obfuscated tag and
//! original file name, a method byte, sizes XORed with constants, and the data, obfuscated with
//! a Mersenne-Twister keystream (EA05) or a lagged-Fibonacci one (EA06) and, when the method
//! says so, compressed with AutoIt's LZSS ("EA05"/"EA06" magic, big-endian size, then a
//! bitstream of literals and 15-bit-distance back references).
//!
//! Members are named by the resource's original file name (the script's is
//! `>>>AUTOIT SCRIPT<<<`), or `autoit-N` when it does not decode. The compiled script is handed
//! out as AutoIt stores it (tokens), not decompiled to text.

use memchr::memmem;

use crate::{Sink, Stop};

/// AutoIt's resource GUID and the `AU3!EA0` that follows it; the next byte is '5' or '6'.
pub(crate) const MARKER: &[u8] =
    b"\xa3\x48\x4b\xbe\x98\x6c\x4a\xa9\x99\x4c\x53\x0a\x86\xd6\x48\x7dAU3!EA0";
/// Markers tried per file (a script ends with a second copy of it).
const MAX_CANDIDATES: usize = 4;
/// Resources read per script: each costs at least 41 bytes of input anyway.
const MAX_RESOURCES: usize = 1 << 16;
/// Longest tag or file name decoded (in bytes; ClamAV prints at most 300 and 600).
const MAX_NAME: usize = 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    Ea05,
    Ea06,
}

/// The constants each version XORs into its header fields, and its keystream seeds.
struct Keys {
    magic: u32,
    tag_len: u32,
    tag_seed: u32,
    name_len: u32,
    name_seed: u32,
    size: u32,
    data_seed: u32,
    /// Characters are UTF-16 (EA06) or bytes (EA05).
    wide: bool,
    /// LZSS magic at the start of compressed data.
    lzss: &'static [u8; 4],
}

const EA05: Keys = Keys {
    magic: 0xceb0_6dff,
    tag_len: 0x29bc,
    tag_seed: 0xa25e,
    name_len: 0x29ac,
    name_seed: 0xf25e,
    size: 0x45aa,
    data_seed: 0x22af,
    wide: false,
    lzss: b"EA05",
};

const EA06: Keys = Keys {
    magic: 0x52ca_436b,
    tag_len: 0xadbc,
    tag_seed: 0xb33f,
    name_len: 0xf820,
    name_seed: 0xf479,
    size: 0x87bc,
    data_seed: 0x2477,
    wide: true,
    lzss: b"EA06",
};

pub fn extract(data: &[u8], sink: &mut dyn Sink) -> Result<(), Stop> {
    for at in memmem::find_iter(data, MARKER).take(MAX_CANDIDATES) {
        let v = at + MARKER.len();
        let version = match data.get(v) {
            Some(b'5') => Version::Ea05,
            Some(b'6') => Version::Ea06,
            _ => continue,
        };
        if let Some(rest) = data.get(v + 1..) {
            if resources(version, rest, sink)? {
                break;
            }
        }
    }
    Ok(())
}

fn le32(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The resources after the marker. `Ok(true)` when at least one was read.
fn resources(version: Version, d: &[u8], sink: &mut dyn Sink) -> Result<bool, Stop> {
    let keys = match version {
        Version::Ea05 => &EA05,
        Version::Ea06 => &EA06,
    };
    let Some(head) = d.get(..16) else {
        return Ok(false);
    };
    // EA05 seeds the data keystream with the sum of the 16 bytes after the marker; EA06 meant
    // to and does not (its checksum is broken), so it skips them.
    let sum: u32 = head.iter().map(|&b| u32::from(b)).sum();
    let data_seed = match version {
        Version::Ea05 => keys.data_seed.wrapping_add(sum),
        Version::Ea06 => keys.data_seed,
    };
    let mut off = 16usize;
    let mut found = false;
    for i in 0..MAX_RESOURCES {
        match resource(keys, version, d, off, data_seed, i + 1, sink)? {
            Next::At(next) => {
                off = next;
                found = true;
            }
            Next::End => return Ok(found),
            Next::Broken(why) => {
                if found {
                    sink.corrupt(&format!("autoit: resource {}: {why}", i + 1));
                }
                return Ok(found);
            }
        }
    }
    Ok(found)
}

enum Next {
    /// The next resource starts here.
    At(usize),
    /// No further resource (no magic): the ordinary end.
    End,
    /// A resource that claims more than there is.
    Broken(String),
}

/// One resource at `off`: decoded and handed to the sink.
fn resource(
    keys: &Keys,
    version: Version,
    d: &[u8],
    off: usize,
    data_seed: u32,
    n: usize,
    sink: &mut dyn Sink,
) -> Result<Next, Stop> {
    if le32(d, off) != Some(keys.magic) {
        return Ok(Next::End);
    }
    let (tag, p) = match string(d, off + 4, keys.tag_len, keys.tag_seed, keys) {
        Ok(x) => x,
        Err(why) => return Ok(Next::Broken(format!("tag: {why}"))),
    };
    let (name, p) = match string(d, p, keys.name_len, keys.name_seed, keys) {
        Ok(x) => x,
        Err(why) => return Ok(Next::Broken(format!("name: {why}"))),
    };
    // Method byte, compressed size, uncompressed size, checksum; then 16 bytes of times.
    let (Some(&method), Some(csize)) = (d.get(p), le32(d, p + 1)) else {
        return Ok(Next::Broken("header cut short".to_string()));
    };
    let csize = csize ^ keys.size;
    if csize > i32::MAX as u32 {
        return Ok(Next::Broken(format!("size {csize} out of range")));
    }
    let start = p + 13 + 16;
    let Some(stored) = d.get(start..start + csize as usize) else {
        return Ok(Next::Broken(format!(
            "{csize} bytes of data past the end of the file"
        )));
    };
    let next = start + csize as usize;
    let member = if tag == ">>>AUTOIT SCRIPT<<<" {
        tag
    } else if name.is_empty() {
        format!("autoit-{n}")
    } else {
        name
    };
    if stored.is_empty() {
        return Ok(Next::At(next));
    }
    if stored.len() as u64 > sink.budget() {
        sink.too_large(&member);
        return Ok(Next::At(next));
    }
    let mut plain = stored.to_vec();
    match version {
        Version::Ea05 => Mt::new(data_seed).apply(&mut plain),
        Version::Ea06 => Lame::new(data_seed).apply(&mut plain),
    }
    if method != 1 {
        sink.member(&member, &plain)?;
        return Ok(Next::At(next));
    }
    match lzss(version, keys, &plain, sink.budget()) {
        Lzss::Whole(out) => sink.member(&member, &out)?,
        Lzss::Partial(out, why) => {
            // As ClamAV: a damaged stream's output so far is still worth scanning.
            if !out.is_empty() {
                sink.member(&member, &out)?;
            }
            sink.corrupt(&format!("autoit: {member}: {why}"));
        }
        Lzss::TooLarge => sink.too_large(&member),
    }
    Ok(Next::At(next))
}

/// A length-prefixed obfuscated string at `off` (the length XORed with `len_key`, in
/// characters), decoded with the version's keystream seeded by `seed + length`.
fn string(
    d: &[u8],
    off: usize,
    len_key: u32,
    seed: u32,
    keys: &Keys,
) -> Result<(String, usize), String> {
    let chars = le32(d, off).ok_or("length cut short")? ^ len_key;
    let bytes = if keys.wide {
        chars.checked_mul(2)
    } else {
        Some(chars)
    }
    .filter(|&b| b <= i32::MAX as u32)
    .ok_or_else(|| format!("length {chars} out of range"))? as usize;
    let start = off + 4;
    let raw = d
        .get(start..start + bytes)
        .ok_or_else(|| format!("{bytes} bytes past the end of the file"))?;
    let next = start + bytes;
    if bytes > MAX_NAME {
        return Ok((String::new(), next));
    }
    let mut plain = raw.to_vec();
    let seed = seed.wrapping_add(chars);
    let text = if keys.wide {
        Lame::new(seed).apply(&mut plain);
        let units: Vec<u16> = plain
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        Mt::new(seed).apply(&mut plain);
        String::from_utf8_lossy(&plain).into_owned()
    };
    // A name is for reports: control characters out.
    Ok((text.chars().filter(|c| !c.is_control()).collect(), next))
}

enum Lzss {
    Whole(Vec<u8>),
    Partial(Vec<u8>, String),
    TooLarge,
}

/// AutoIt's LZSS: after the 4-byte magic and the big-endian output size, a bit per item (EA05:
/// 1 = back reference, EA06: 0 = back reference), a reference being a 15-bit distance and a
/// length coded in 2, 3, 5, 8 and then 8-bit steps; a literal being 8 bits.
fn lzss(version: Version, keys: &Keys, d: &[u8], budget: u64) -> Lzss {
    if d.get(..4) != Some(&keys.lzss[..]) {
        return Lzss::Partial(Vec::new(), "compressed data without its magic".to_string());
    }
    let Some(size) = d
        .get(4..8)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return Lzss::Partial(Vec::new(), "compressed data cut short".to_string());
    };
    // A zero size is a crafted or damaged file: ClamAV falls back to the stored size.
    let size = if size == 0 {
        d.len() as u64
    } else {
        u64::from(size)
    };
    if size > budget {
        return Lzss::TooLarge;
    }
    let size = size as usize;
    let mut out: Vec<u8> = Vec::with_capacity(size.min(d.len().saturating_mul(8)));
    let mut bits = Bits {
        d,
        pos: 8,
        word: 0,
        avail: 0,
    };
    let reference_bit = match version {
        Version::Ea05 => 1,
        Version::Ea06 => 0,
    };
    // Every round reads at least one bit, and `Bits` fails once the input is spent.
    while out.len() < size {
        let item = (|| -> Result<(), String> {
            if bits.get(1)? == reference_bit {
                let dist = bits.get(15)? as usize;
                let mut len = bits.get(2)?;
                let mut add = 0;
                if len == 3 {
                    add = 3;
                    len = bits.get(3)?;
                    if len == 7 {
                        add = 10;
                        len = bits.get(5)?;
                        if len == 31 {
                            add = 41;
                            len = bits.get(8)?;
                            if len == 255 {
                                add = 296;
                                loop {
                                    len = bits.get(8)?;
                                    if len != 255 {
                                        break;
                                    }
                                    add += 255;
                                    if add as usize > size {
                                        return Err("reference longer than the file".into());
                                    }
                                }
                            }
                        }
                    }
                }
                let len = (len + 3 + add) as usize;
                if dist == 0 || dist > out.len() || out.len() + len > size {
                    return Err(format!(
                        "reference ({dist} back, {len} long) outside the output at {}",
                        out.len()
                    ));
                }
                for _ in 0..len {
                    out.push(out[out.len() - dist]);
                }
            } else {
                out.push(bits.get(8)? as u8);
            }
            Ok(())
        })();
        if let Err(why) = item {
            return Lzss::Partial(out, why);
        }
    }
    Lzss::Whole(out)
}

/// AutoIt's bit reader: 16-bit big-endian words, most significant bit first.
struct Bits<'a> {
    d: &'a [u8],
    pos: usize,
    word: u32,
    avail: u32,
}

impl Bits<'_> {
    fn get(&mut self, n: u32) -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..n {
            if self.avail == 0 {
                let (Some(&hi), Some(&lo)) = (self.d.get(self.pos), self.d.get(self.pos + 1))
                else {
                    return Err("compressed data ends early".to_string());
                };
                self.pos += 2;
                self.word = u32::from(u16::from_be_bytes([hi, lo]));
                self.avail = 16;
            }
            self.avail -= 1;
            v = (v << 1) | ((self.word >> self.avail) & 1);
        }
        Ok(v)
    }
}

/// EA05's keystream: a Mersenne Twister with AutoIt's own tempering; each byte of the stream
/// is bits 1..9 of a tempered word.
struct Mt {
    state: [u32; 624],
    next: usize,
}

impl Mt {
    fn new(seed: u32) -> Mt {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let p = state[i - 1];
            state[i] = (i as u32).wrapping_add(0x6c07_8965u32.wrapping_mul((p >> 30) ^ p));
        }
        Mt { state, next: 624 }
    }

    fn twist(&mut self) {
        let mt = &mut self.state;
        let mix = |a: u32, b: u32, c: u32| {
            ((((a ^ b) & 0x7fff_fffe) ^ a) >> 1) ^ (0u32.wrapping_sub(b & 1) & 0x9908_b0df) ^ c
        };
        for i in 0..227 {
            mt[i] = mix(mt[i], mt[i + 1], mt[i + 397]);
        }
        for i in 227..623 {
            mt[i] = mix(mt[i], mt[i + 1], mt[i - 227]);
        }
        mt[623] = mix(mt[623], mt[0], mt[396]);
        self.next = 0;
    }

    fn byte(&mut self) -> u8 {
        if self.next == 624 {
            self.twist();
        }
        let mut r = self.state[self.next];
        self.next += 1;
        r ^= r >> 11;
        r ^= (r & 0xff3a_58ad) << 7;
        r ^= (r & 0xffff_df8c) << 15;
        r ^= r >> 18;
        (r >> 1) as u8
    }

    fn apply(mut self, buf: &mut [u8]) {
        for b in buf {
            *b ^= self.byte();
        }
    }
}

/// EA06's keystream: a lagged-Fibonacci generator over 17 words with rotations. AutoIt turns
/// each word into a double in [0, 1) (the word as the top 32 bits of the mantissa) and takes
/// its product with 256: that is the word's top byte, computed here without floating point.
struct Lame {
    words: [u32; 17],
    c0: usize,
    c1: usize,
}

impl Lame {
    fn new(seed: u32) -> Lame {
        let mut words = [0u32; 17];
        let mut s = seed;
        for w in &mut words {
            s = 1u32.wrapping_sub(s.wrapping_mul(0x53a9_b4fb));
            *w = s;
        }
        let mut l = Lame {
            words,
            c0: 0,
            c1: 10,
        };
        for _ in 0..9 {
            l.step();
        }
        l
    }

    fn step(&mut self) -> u32 {
        let r = self.words[self.c0]
            .rotate_left(9)
            .wrapping_add(self.words[self.c1].rotate_left(13));
        self.words[self.c0] = r;
        self.c0 = if self.c0 == 0 { 16 } else { self.c0 - 1 };
        self.c1 = if self.c1 == 0 { 16 } else { self.c1 - 1 };
        r
    }

    fn byte(&mut self) -> u8 {
        self.step();
        (self.step() >> 24) as u8
    }

    fn apply(mut self, buf: &mut [u8]) {
        for b in buf {
            *b ^= self.byte();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    use crate::formats::testsink::Record;

    fn run(d: &[u8]) -> Record {
        Record::run(|s| extract(d, s))
    }

    /// The 8 bits of `v` in `n` bits, most significant first, into a bit vector.
    fn push_bits(bits: &mut Vec<u8>, v: u32, n: u32) {
        for i in (0..n).rev() {
            bits.push(((v >> i) & 1) as u8);
        }
    }

    fn pack(bits: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for word in bits.chunks(16) {
            let mut w = 0u16;
            for (i, &b) in word.iter().enumerate() {
                w |= u16::from(b) << (15 - i);
            }
            out.extend_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// "abcabcabcabcX" in EA06's LZSS: three literals, a reference 3 back of length 9, a
    /// literal.
    fn ea06_lzss() -> Vec<u8> {
        let mut bits = Vec::new();
        for c in b"abc" {
            push_bits(&mut bits, 1, 1);
            push_bits(&mut bits, u32::from(*c), 8);
        }
        push_bits(&mut bits, 0, 1);
        push_bits(&mut bits, 3, 15);
        // Length 9 = 3 + 3 (first step full) + 3 (second step value).
        push_bits(&mut bits, 3, 2);
        push_bits(&mut bits, 3, 3);
        push_bits(&mut bits, 1, 1);
        push_bits(&mut bits, u32::from(b'X'), 8);
        let mut d = b"EA06".to_vec();
        d.extend_from_slice(&13u32.to_be_bytes());
        d.extend(pack(&bits));
        d
    }

    #[test]
    fn lzss_references_and_literals() {
        match lzss(Version::Ea06, &EA06, &ea06_lzss(), 1 << 20) {
            Lzss::Whole(out) => assert_eq!(out, b"abcabcabcabcX"),
            _ => panic!("not whole"),
        }
    }

    #[test]
    fn lzss_hostile_streams() {
        let good = ea06_lzss();
        for n in 0..good.len() {
            assert!(!matches!(
                lzss(Version::Ea06, &EA06, &good[..n], 1 << 20),
                Lzss::Whole(_)
            ));
        }
        // A declared size over budget is refused before anything is allocated.
        let mut big = good.clone();
        big[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            lzss(Version::Ea06, &EA06, &big, 1 << 20),
            Lzss::TooLarge
        ));
        // A reference before the start of the output.
        let mut bits = Vec::new();
        push_bits(&mut bits, 0, 1);
        push_bits(&mut bits, 5, 15);
        push_bits(&mut bits, 0, 2);
        let mut d = b"EA06".to_vec();
        d.extend_from_slice(&10u32.to_be_bytes());
        d.extend(pack(&bits));
        assert!(matches!(
            lzss(Version::Ea06, &EA06, &d, 1 << 20),
            Lzss::Partial(..)
        ));
    }

    /// A script with one EA06 resource, built the way AutoIt's compiler writes it.
    fn ea06_script(name: &str, content: &[u8], method: u8) -> Vec<u8> {
        let mut d = b"MZ stub ".to_vec();
        d.extend_from_slice(MARKER);
        d.push(b'6');
        d.extend_from_slice(&[0x55; 16]);
        d.extend_from_slice(&EA06.magic.to_le_bytes());
        for (text, len_key, seed) in [
            ("FILE", EA06.tag_len, EA06.tag_seed),
            (name, EA06.name_len, EA06.name_seed),
        ] {
            let units: Vec<u16> = text.encode_utf16().collect();
            let mut bytes: Vec<u8> = units.iter().flat_map(|u| u.to_le_bytes()).collect();
            Lame::new(seed.wrapping_add(units.len() as u32)).apply(&mut bytes);
            d.extend_from_slice(&(units.len() as u32 ^ len_key).to_le_bytes());
            d.extend(bytes);
        }
        let mut data = content.to_vec();
        Lame::new(EA06.data_seed).apply(&mut data);
        d.push(method);
        d.extend_from_slice(&(data.len() as u32 ^ EA06.size).to_le_bytes());
        d.extend_from_slice(&[0u8; 8 + 16]);
        d.extend(data);
        d
    }

    #[test]
    fn ea06_resource_stored_and_compressed() {
        let r = run(&ea06_script("C:\\x\\dropped.exe", b"MZ payload", 0));
        assert_eq!(
            r.members,
            [("C:\\x\\dropped.exe".to_string(), b"MZ payload".to_vec())]
        );
        let r = run(&ea06_script("packed.bin", &ea06_lzss(), 1));
        assert_eq!(
            r.members,
            [("packed.bin".to_string(), b"abcabcabcabcX".to_vec())]
        );
    }

    #[test]
    fn truncated_scripts_do_not_panic() {
        let d = ea06_script("packed.bin", &ea06_lzss(), 1);
        for n in 0..d.len() {
            run(&d[..n]);
        }
        for i in 8..d.len() {
            let mut m = d.clone();
            m[i] ^= 0xa5;
            run(&m);
        }
    }

    #[test]
    fn keystreams_are_involutions() {
        let mut b = b"some bytes".to_vec();
        Mt::new(7).apply(&mut b);
        assert_ne!(b, b"some bytes");
        Mt::new(7).apply(&mut b);
        assert_eq!(b, b"some bytes");
    }
}
