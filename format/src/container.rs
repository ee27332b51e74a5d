//! The database container: a fixed header, a section table, zstd-compressed sections, and an
//! ed25519 signature over everything before it.
//!
//! Why a hand-laid table and not a serde format: every field has a fixed width and place, so the
//! verifier reads the header and table with checked slices and no allocation driven by the input,
//! the layout is documented in one place (below), and the bytes are reproducible by construction.
//! (bincode is unmaintained; postcard or rkyv would add a schema language for six integers.)
//!
//! ```text
//! header, 64 bytes, little-endian
//!   0  magic "VIGILDB\0"          8  format_version u16     10 flags u16 (0)
//!  12  section_count u32         16  min_engine_version u32 20 reserved u32 (0)
//!  24  db_version u64            32  build_time u64 (SOURCE_DATE_EPOCH)
//!  40  total_len u64 (whole file, signature included)       48 key_id [8]   56 reserved [8]
//! section table, 64 bytes per section, sorted by kind, no duplicates
//!   0  kind u16   2 encoding u8 (0 raw, 1 zstd)   3 zstd level u8   4 record_count u32
//!   8  offset u64   16 stored_len u64   24 raw_len u64   32 sha256 of stored bytes [32]
//! sections, back to back in table order, starting right after the table
//! signature, 64 bytes: ed25519 over bytes [0, total_len - 64)
//! ```
//! The layout is strict (no gaps, no overlaps, no trailing bytes), so there is exactly one
//! encoding of a given database and a tampered table cannot point two sections at one range.

use std::borrow::Cow;
use std::io::Read;

use sha2::{Digest, Sha256};

use crate::codec::{to_usize, Reader};
use crate::keys::{KeyId, PublicKey, SecretKey};
use crate::{FormatError, ENGINE_VERSION};

pub const MAGIC: [u8; 8] = *b"VIGILDB\0";
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 64;
pub const ENTRY_LEN: usize = 64;
pub const SIGNATURE_LEN: usize = 64;
/// More kinds than we will ever define; a bound so a forged count cannot make us allocate.
pub const MAX_SECTIONS: u32 = 64;
/// Cap on one decompressed section, checked before decompressing.
pub const MAX_RAW_SECTION: u64 = 2 << 30;
/// Default zstd level: the database is built once and downloaded many times, but CI builds
/// it on every push and clients recompress after each delta. On the community rules level 16
/// is within 4% of level 19's size in a third of the time (levels 17-19 buy 2-4% for 2-3x).
pub const DEFAULT_LEVEL: i32 = 16;
/// Sections larger than this are compressed at no more than [`LARGE_LEVEL`]: level 19 over a
/// million body signatures (60 MB of lines) takes minutes to build and, because a delta's
/// apply recompresses, as long again on every client, for a few percent fewer bytes.
pub const LARGE_SECTION: usize = 8 << 20;
pub const LARGE_LEVEL: i32 = 9;

/// What a section holds. The numbers are part of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SectionKind {
    /// YARA rule sources, see [`crate::sections::SourceFiles`].
    Yara = 1,
    /// ClamAV body signatures (`.ndb` lines).
    Ndb = 2,
    /// MD5 hash signatures (`.hdb` lines).
    Hdb = 3,
    /// SHA-1 / SHA-256 hash signatures (`.hsb` lines).
    Hsb = 4,
    /// MD5 allowlist (`.fp` lines).
    Fp = 5,
    /// SHA-1 / SHA-256 allowlist (`.sfp` lines).
    Sfp = 6,
}

impl SectionKind {
    pub const ALL: [SectionKind; 6] = [
        SectionKind::Yara,
        SectionKind::Ndb,
        SectionKind::Hdb,
        SectionKind::Hsb,
        SectionKind::Fp,
        SectionKind::Sfp,
    ];

    pub fn from_u16(v: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|k| *k as u16 == v)
    }

    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Yara => "yara",
            SectionKind::Ndb => "ndb",
            SectionKind::Hdb => "hdb",
            SectionKind::Hsb => "hsb",
            SectionKind::Fp => "fp",
            SectionKind::Sfp => "sfp",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub format_version: u16,
    pub flags: u16,
    pub section_count: u32,
    pub min_engine_version: u32,
    pub db_version: u64,
    pub build_time: u64,
    pub total_len: u64,
    pub key_id: KeyId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionEntry {
    pub kind: SectionKind,
    /// 0 raw, 1 zstd.
    pub encoding: u8,
    pub level: u8,
    pub record_count: u32,
    pub offset: u64,
    pub stored_len: u64,
    pub raw_len: u64,
    pub sha256: [u8; 32],
}

pub const ENCODING_RAW: u8 = 0;
pub const ENCODING_ZSTD: u8 = 1;

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.format_version.to_le_bytes());
        b[10..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..16].copy_from_slice(&self.section_count.to_le_bytes());
        b[16..20].copy_from_slice(&self.min_engine_version.to_le_bytes());
        b[24..32].copy_from_slice(&self.db_version.to_le_bytes());
        b[32..40].copy_from_slice(&self.build_time.to_le_bytes());
        b[40..48].copy_from_slice(&self.total_len.to_le_bytes());
        b[48..56].copy_from_slice(&self.key_id);
        b
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        if r.remaining() < 8 || r.array::<8>("magic")? != MAGIC {
            return Err(FormatError::BadMagic {
                expected: "database",
            });
        }
        let format_version = r.u16("header")?;
        if format_version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: format_version,
                supported: FORMAT_VERSION,
            });
        }
        let flags = r.u16("header")?;
        let section_count = r.u32("header")?;
        let min_engine_version = r.u32("header")?;
        let reserved = r.u32("header")?;
        let db_version = r.u64("header")?;
        let build_time = r.u64("header")?;
        let total_len = r.u64("header")?;
        let key_id = r.array::<8>("header")?;
        let reserved2 = r.array::<8>("header")?;
        if flags != 0 || reserved != 0 || reserved2 != [0; 8] {
            return Err(FormatError::Malformed {
                what: "header",
                detail: "reserved fields are not zero".into(),
            });
        }
        if section_count > MAX_SECTIONS {
            return Err(FormatError::Malformed {
                what: "header",
                detail: format!("{section_count} sections (at most {MAX_SECTIONS})"),
            });
        }
        Ok(Self {
            format_version,
            flags,
            section_count,
            min_engine_version,
            db_version,
            build_time,
            total_len,
            key_id,
        })
    }
}

impl SectionEntry {
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut b = [0u8; ENTRY_LEN];
        b[0..2].copy_from_slice(&(self.kind as u16).to_le_bytes());
        b[2] = self.encoding;
        b[3] = self.level;
        b[4..8].copy_from_slice(&self.record_count.to_le_bytes());
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.stored_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.raw_len.to_le_bytes());
        b[32..64].copy_from_slice(&self.sha256);
        b
    }

    pub fn decode(r: &mut Reader<'_>, index: usize) -> Result<Self, FormatError> {
        let raw_kind = r.u16("section table")?;
        let kind = SectionKind::from_u16(raw_kind).ok_or_else(|| FormatError::Malformed {
            what: "section table",
            detail: format!("section {index} has unknown kind {raw_kind}"),
        })?;
        let encoding = r.u8("section table")?;
        let level = r.u8("section table")?;
        let record_count = r.u32("section table")?;
        let offset = r.u64("section table")?;
        let stored_len = r.u64("section table")?;
        let raw_len = r.u64("section table")?;
        let sha256 = r.array::<32>("section table")?;
        let bad = |detail: String| FormatError::Malformed {
            what: "section table",
            detail: format!("section {index}: {detail}"),
        };
        match encoding {
            ENCODING_RAW if raw_len != stored_len => {
                return Err(bad("raw section with raw_len != stored_len".into()))
            }
            ENCODING_RAW | ENCODING_ZSTD => {}
            other => return Err(bad(format!("unknown encoding {other}"))),
        }
        if raw_len > MAX_RAW_SECTION {
            return Err(bad(format!("raw length {raw_len} over the cap")));
        }
        Ok(Self {
            kind,
            encoding,
            level,
            record_count,
            offset,
            stored_len,
            raw_len,
            sha256,
        })
    }
}

/// Builds a signed database. Sections are written in kind order whatever the order they were
/// added in, and nothing depends on the clock or the machine: same input, same bytes.
pub struct DatabaseBuilder {
    pub db_version: u64,
    pub build_time: u64,
    pub min_engine_version: u32,
    pub level: i32,
    sections: Vec<(SectionKind, u32, Vec<u8>)>,
}

impl DatabaseBuilder {
    pub fn new(db_version: u64, build_time: u64) -> Self {
        Self {
            db_version,
            build_time,
            min_engine_version: ENGINE_VERSION,
            level: DEFAULT_LEVEL,
            sections: Vec::new(),
        }
    }

    /// Adds a section; an empty one is left out. Adding a kind twice replaces it.
    pub fn section(&mut self, kind: SectionKind, record_count: u32, raw: Vec<u8>) -> &mut Self {
        self.sections.retain(|(k, _, _)| *k != kind);
        if !raw.is_empty() {
            self.sections.push((kind, record_count, raw));
        }
        self
    }

    pub fn build(mut self, key: &SecretKey) -> Result<Vec<u8>, FormatError> {
        self.sections.sort_by_key(|(k, _, _)| *k);
        let level = u8::try_from(self.level).map_err(|_| {
            FormatError::Compress(format!("zstd level {} out of range", self.level))
        })?;
        let mut entries = Vec::with_capacity(self.sections.len());
        let mut stored = Vec::with_capacity(self.sections.len());
        for (kind, record_count, raw) in &self.sections {
            let level = if raw.len() > LARGE_SECTION {
                level.min(LARGE_LEVEL as u8)
            } else {
                level
            };
            let data = compress(raw, level)?;
            entries.push(SectionEntry {
                kind: *kind,
                encoding: ENCODING_ZSTD,
                level,
                record_count: *record_count,
                offset: 0,
                stored_len: data.len() as u64,
                raw_len: raw.len() as u64,
                sha256: Sha256::digest(&data).into(),
            });
            stored.push(data);
        }
        let mut header = Header {
            format_version: FORMAT_VERSION,
            flags: 0,
            section_count: entries.len() as u32,
            min_engine_version: self.min_engine_version,
            db_version: self.db_version,
            build_time: self.build_time,
            total_len: 0,
            key_id: key.public().key_id(),
        };
        let mut body = layout(&mut header, &mut entries, &stored);
        let sig = key.sign(&body);
        body.extend_from_slice(&sig);
        Ok(body)
    }
}

/// Fills in offsets and total length and lays out header, table and sections (no signature).
fn layout(header: &mut Header, entries: &mut [SectionEntry], stored: &[Vec<u8>]) -> Vec<u8> {
    let mut offset = (HEADER_LEN + ENTRY_LEN * entries.len()) as u64;
    for (e, data) in entries.iter_mut().zip(stored) {
        e.offset = offset;
        offset += data.len() as u64;
    }
    header.total_len = offset + SIGNATURE_LEN as u64;
    let mut out = Vec::with_capacity(header.total_len as usize);
    out.extend_from_slice(&header.encode());
    for e in entries.iter() {
        out.extend_from_slice(&e.encode());
    }
    for data in stored {
        out.extend_from_slice(data);
    }
    out
}

/// Deterministic compression: single-threaded, no checksum (the table has SHA-256), so the
/// same zstd version and level always give the same bytes. Delta apply relies on this.
pub(crate) fn compress(raw: &[u8], level: u8) -> Result<Vec<u8>, FormatError> {
    use zstd::zstd_safe::CParameter;
    let err = |e: std::io::Error| FormatError::Compress(e.to_string());
    let mut c = zstd::bulk::Compressor::new(i32::from(level)).map_err(err)?;
    c.set_parameter(CParameter::ChecksumFlag(false))
        .map_err(err)?;
    c.set_parameter(CParameter::ContentSizeFlag(true))
        .map_err(err)?;
    c.compress(raw).map_err(err)
}

/// A database whose structure has been checked but whose signature has not: enough for `info`
/// and for computing deltas, never for scanning.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub header: Header,
    pub entries: Vec<SectionEntry>,
    bytes: &'a [u8],
}

impl<'a> Parsed<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes);
        let header = Header::decode(&mut r)?;
        let len = bytes.len() as u64;
        if len < header.total_len {
            return Err(FormatError::Truncated {
                at: len,
                need: header.total_len,
                len,
                what: "database",
            });
        }
        if len > header.total_len {
            return Err(FormatError::LengthMismatch {
                declared: header.total_len,
                actual: len,
            });
        }
        let mut entries = Vec::with_capacity(header.section_count as usize);
        let mut expect = (HEADER_LEN + ENTRY_LEN * header.section_count as usize) as u64;
        for i in 0..header.section_count as usize {
            let e = SectionEntry::decode(&mut r, i)?;
            if entries
                .last()
                .is_some_and(|p: &SectionEntry| p.kind >= e.kind)
            {
                return Err(malformed(format!("section {i} is out of kind order")));
            }
            if e.offset != expect {
                return Err(malformed(format!(
                    "section {i} starts at {} (expected {expect})",
                    e.offset
                )));
            }
            expect = e
                .offset
                .checked_add(e.stored_len)
                .ok_or_else(|| malformed(format!("section {i} length overflows")))?;
            entries.push(e);
        }
        if expect.checked_add(SIGNATURE_LEN as u64) != Some(header.total_len) {
            return Err(malformed(format!(
                "sections end at {expect} but the signature should start at {}",
                header.total_len.saturating_sub(SIGNATURE_LEN as u64)
            )));
        }
        Ok(Self {
            header,
            entries,
            bytes,
        })
    }

    fn stored(&self, e: &SectionEntry) -> &'a [u8] {
        // In range: parse() checked that sections tile [table end, total_len - 64).
        &self.bytes[e.offset as usize..(e.offset + e.stored_len) as usize]
    }

    pub fn check_hashes(&self) -> Result<(), FormatError> {
        for (i, e) in self.entries.iter().enumerate() {
            if <[u8; 32]>::from(Sha256::digest(self.stored(e))) != e.sha256 {
                return Err(FormatError::SectionHash {
                    index: i,
                    kind: e.kind.name().into(),
                });
            }
        }
        Ok(())
    }

    pub fn signature(&self) -> [u8; 64] {
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&self.bytes[self.bytes.len() - SIGNATURE_LEN..]);
        sig
    }

    pub fn signed_bytes(&self) -> &'a [u8] {
        &self.bytes[..self.bytes.len() - SIGNATURE_LEN]
    }

    /// Decompressed contents of entry `index`, checked against its declared length.
    pub fn section_bytes(&self, index: usize) -> Result<Cow<'a, [u8]>, FormatError> {
        let e = self
            .entries
            .get(index)
            .ok_or_else(|| malformed(format!("no section {index}")))?;
        let data = self.stored(e);
        if e.encoding == ENCODING_RAW {
            return Ok(Cow::Borrowed(data));
        }
        let decode_err = |detail: String| FormatError::SectionDecode {
            index,
            kind: e.kind.name().into(),
            detail,
        };
        // Stream with a bound instead of allocating `raw_len` up front: the table is not
        // trusted yet when `info` or `expand` read it, and a forged length must not cost 2 GiB.
        let mut raw = Vec::new();
        zstd::stream::read::Decoder::with_buffer(data)
            .and_then(|d| d.take(e.raw_len + 1).read_to_end(&mut raw))
            .map_err(|err| decode_err(err.to_string()))?;
        if raw.len() as u64 != e.raw_len {
            return Err(decode_err(format!(
                "{} bytes, table says {}",
                raw.len(),
                e.raw_len
            )));
        }
        Ok(Cow::Owned(raw))
    }

    /// Header, table, every section decompressed, signature: the form deltas are computed on,
    /// because one added rule changes a compressed section almost entirely.
    pub fn expand(&self) -> Result<Vec<u8>, FormatError> {
        let table_end = HEADER_LEN + ENTRY_LEN * self.entries.len();
        let mut out = self.bytes[..table_end].to_vec();
        for i in 0..self.entries.len() {
            out.extend_from_slice(&self.section_bytes(i)?);
        }
        out.extend_from_slice(&self.signature());
        Ok(out)
    }
}

/// Rebuilds a database from its expanded form by recompressing each section at the level its
/// table entry records. Every recompressed section must hash to what the table says, so a
/// different zstd build that compresses differently is caught here rather than later.
pub fn contract(expanded: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut r = Reader::new(expanded);
    let mut header = Header::decode(&mut r)?;
    let mut entries = Vec::with_capacity(header.section_count as usize);
    for i in 0..header.section_count as usize {
        entries.push(SectionEntry::decode(&mut r, i)?);
    }
    let mut stored = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let raw = r.take(to_usize(e.raw_len, "section")?, "expanded section")?;
        let data = match e.encoding {
            ENCODING_RAW => raw.to_vec(),
            _ => compress(raw, e.level)?,
        };
        if <[u8; 32]>::from(Sha256::digest(&data)) != e.sha256 {
            return Err(FormatError::DeltaMismatch(format!(
                "section {i} ({}) does not recompress to the bytes its table names",
                e.kind.name()
            )));
        }
        stored.push(data);
    }
    let sig = r.array::<SIGNATURE_LEN>("signature")?;
    if r.remaining() != 0 {
        return Err(malformed(
            "trailing bytes after the expanded signature".into(),
        ));
    }
    let declared = header.total_len;
    let mut out = layout(&mut header, &mut entries, &stored);
    out.extend_from_slice(&sig);
    if out.len() as u64 != declared {
        return Err(FormatError::DeltaMismatch(format!(
            "rebuilt database is {} bytes, header says {declared}",
            out.len()
        )));
    }
    Ok(out)
}

fn malformed(detail: String) -> FormatError {
    FormatError::Malformed {
        what: "section table",
        detail,
    }
}

/// A database whose header, section hashes and signature checked out against a trusted key.
/// Only [`verify`] makes one, so code that holds a `Verified` knows it may trust the contents.
#[derive(Debug)]
pub struct Verified<'a> {
    parsed: Parsed<'a>,
}

/// Checks structure, section hashes, the signature against `trusted`, and the engine version.
pub fn verify<'a>(bytes: &'a [u8], trusted: &[PublicKey]) -> Result<Verified<'a>, FormatError> {
    let parsed = Parsed::parse(bytes)?;
    parsed.check_hashes()?;
    let key = trusted
        .iter()
        .find(|k| k.key_id() == parsed.header.key_id)
        .ok_or_else(|| FormatError::UnknownKey {
            key_id: hex::encode(parsed.header.key_id),
        })?;
    if !key.verify(parsed.signed_bytes(), &parsed.signature()) {
        return Err(FormatError::BadSignature);
    }
    if parsed.header.min_engine_version > ENGINE_VERSION {
        return Err(FormatError::EngineTooOld {
            needed: parsed.header.min_engine_version,
            have: ENGINE_VERSION,
        });
    }
    Ok(Verified { parsed })
}

impl<'a> Verified<'a> {
    pub fn header(&self) -> &Header {
        &self.parsed.header
    }

    /// The whole database, as verified (header to signature).
    pub fn bytes(&self) -> &'a [u8] {
        self.parsed.bytes
    }

    pub fn entries(&self) -> &[SectionEntry] {
        &self.parsed.entries
    }

    /// The decompressed contents of the section of `kind`, if the database has one.
    pub fn section(&self, kind: SectionKind) -> Result<Option<Cow<'a, [u8]>>, FormatError> {
        match self.parsed.entries.iter().position(|e| e.kind == kind) {
            Some(i) => self.parsed.section_bytes(i).map(Some),
            None => Ok(None),
        }
    }
}

/// A verified database that owns its bytes: what a caller keeps when the proof must outlive
/// the buffer it was read into (the updater's installed database, handed to the engine later).
/// Only [`VerifiedDb::verify`] makes one, so holding it means the bytes verified against a
/// trusted key; [`VerifiedDb::verified`] lends the borrowed proof without checking again.
#[derive(Debug)]
pub struct VerifiedDb {
    bytes: Vec<u8>,
    header: Header,
    entries: Vec<SectionEntry>,
    sha256: [u8; 32],
}

impl VerifiedDb {
    /// Verifies `bytes` as [`verify`] does and keeps them with the proof. On failure the
    /// bytes are dropped with the error: nothing unverified escapes.
    pub fn verify(bytes: Vec<u8>, trusted: &[PublicKey]) -> Result<Self, FormatError> {
        let (header, entries) = {
            let v = verify(&bytes, trusted)?;
            (v.parsed.header, v.parsed.entries)
        };
        let sha256 = Sha256::digest(&bytes).into();
        Ok(Self {
            bytes,
            header,
            entries,
            sha256,
        })
    }

    /// The borrowed proof, for readers such as the engine. No check is repeated: the bytes
    /// cannot have changed since [`VerifiedDb::verify`] (they are owned and never lent mutably).
    pub fn verified(&self) -> Verified<'_> {
        Verified {
            parsed: Parsed {
                header: self.header.clone(),
                entries: self.entries.clone(),
                bytes: &self.bytes,
            },
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of the whole file: the name the repository and the updater know it by.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn owned_proof_lends_the_same_view_and_refuses_what_verify_refuses() {
        let db = sample();
        let owned = VerifiedDb::verify(db.clone(), &[key().public()]).expect("verify");
        let view = owned.verified();
        assert_eq!(
            view.header(),
            verify(&db, &[key().public()]).expect("v").header()
        );
        assert_eq!(view.bytes(), &db[..]);
        assert_eq!(owned.sha256(), <[u8; 32]>::from(Sha256::digest(&db)));
        let yara = view.section(SectionKind::Yara).expect("section");
        assert_eq!(yara.as_deref(), Some(&b"rule x { condition: true }"[..]));
        let mut bad = db.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            VerifiedDb::verify(bad, &[key().public()]),
            Err(FormatError::BadSignature)
        ));
        let other = SecretKey::from_seed([9; 32]).public();
        assert!(VerifiedDb::verify(db, &[other]).is_err());
    }

    fn key() -> SecretKey {
        SecretKey::from_seed([3; 32])
    }

    fn sample() -> Vec<u8> {
        let mut b = DatabaseBuilder::new(7, 1_700_000_000);
        b.section(
            SectionKind::Ndb,
            2,
            b"a:0:*:41424344\nb:0:*:45464748\n".to_vec(),
        );
        b.section(SectionKind::Yara, 1, b"rule x { condition: true }".to_vec());
        b.build(&key()).expect("build")
    }

    #[test]
    fn build_verify_read_back() {
        let db = sample();
        let v = verify(&db, &[key().public()]).expect("verify");
        assert_eq!(v.header().db_version, 7);
        assert_eq!(v.entries()[0].kind, SectionKind::Yara, "sorted by kind");
        let ndb = v.section(SectionKind::Ndb).expect("read").expect("present");
        assert_eq!(&ndb[..], b"a:0:*:41424344\nb:0:*:45464748\n");
        assert!(v.section(SectionKind::Hdb).expect("read").is_none());
    }

    #[test]
    fn wrong_key_and_truncation_are_named() {
        let db = sample();
        let other = SecretKey::from_seed([4; 32]).public();
        assert!(matches!(
            verify(&db, &[other]),
            Err(FormatError::UnknownKey { .. })
        ));
        let cut = &db[..db.len() - 10];
        assert!(matches!(
            verify(cut, &[key().public()]),
            Err(FormatError::Truncated { .. })
        ));
        assert!(matches!(
            verify(b"PK\x03\x04 not a database", &[key().public()]),
            Err(FormatError::BadMagic { .. })
        ));
    }

    #[test]
    fn forged_raw_length_is_a_decode_error() {
        let mut db = sample();
        // Section 0's raw_len field sits at table offset 24; claim 2 GiB - 1.
        let at = HEADER_LEN + 24;
        db[at..at + 8].copy_from_slice(&((2u64 << 30) - 1).to_le_bytes());
        let p = Parsed::parse(&db).expect("structure is still valid");
        assert!(matches!(
            p.section_bytes(0),
            Err(FormatError::SectionDecode { .. })
        ));
    }

    #[test]
    fn expand_contract_round_trip() {
        let db = sample();
        let expanded = Parsed::parse(&db).expect("parse").expand().expect("expand");
        assert_eq!(contract(&expanded).expect("contract"), db);
    }

    fn arb_entry() -> impl Strategy<Value = SectionEntry> {
        (
            proptest::sample::select(SectionKind::ALL.to_vec()),
            any::<u8>(),
            any::<u32>(),
            any::<u64>(),
            0u64..MAX_RAW_SECTION,
            any::<[u8; 32]>(),
        )
            .prop_map(|(kind, level, record_count, offset, raw_len, sha256)| {
                SectionEntry {
                    kind,
                    encoding: ENCODING_ZSTD,
                    level,
                    record_count,
                    offset,
                    stored_len: raw_len / 2,
                    raw_len,
                    sha256,
                }
            })
    }

    proptest! {
        #[test]
        fn section_entry_round_trip(e in arb_entry()) {
            let bytes = e.encode();
            let back = SectionEntry::decode(&mut Reader::new(&bytes), 0).expect("decode");
            prop_assert_eq!(back, e);
        }

        #[test]
        fn header_round_trip(count in 0..=MAX_SECTIONS, min in any::<u32>(), v in any::<u64>(),
                             t in any::<u64>(), len in any::<u64>(), id in any::<[u8; 8]>()) {
            let h = Header { format_version: FORMAT_VERSION, flags: 0, section_count: count,
                             min_engine_version: min, db_version: v, build_time: t,
                             total_len: len, key_id: id };
            let bytes = h.encode();
            prop_assert_eq!(Header::decode(&mut Reader::new(&bytes)).expect("decode"), h);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = verify(&bytes, &[key().public()]);
            let _ = contract(&bytes);
        }
    }
}
