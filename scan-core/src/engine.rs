//! The engine: built once from a verified database, then shared read-only by every scan.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};
use vigil_format::container::verify;
use vigil_format::sections::{decode_lines, SourceFiles};
use vigil_format::sigs::{parse_hash_line, parse_ndb_line, HashFile, HashKind};
use vigil_format::{PublicKey, SectionKind, Verified};

use crate::body::{BodyCost, BodyMatcher, BodyMatcherBuilder, BodyStats, Prefilter};
use crate::container::Walker;
use crate::error::{EngineError, Limits, ScanError};
use crate::hashes::{digests, HashTable};
use crate::input::{self, Contents, Opened, Spool};
pub use crate::report::{Finding, ScanReport, SigKind};
use crate::yara::{YaraRules, YaraScanner};

pub struct Engine {
    db_version: u64,
    /// The database's build time (SOURCE_DATE_EPOCH, seconds), for clamd's VERSION reply.
    db_build_time: u64,
    db_sha256: [u8; 32],
    yara: Option<YaraRules>,
    body: Option<BodyMatcher>,
    hashes: HashTable,
    allow: HashTable,
}

/// Spool to disk beyond this, so `scan_reader` stays within bounded memory.
const READER_MEMORY: usize = 32 << 20;

impl Engine {
    /// Verifies `bytes` against `trusted` and builds every matcher; any failure leaves no engine.
    pub fn load(bytes: &[u8], trusted: &[PublicKey]) -> Result<Self, EngineError> {
        Self::load_with_cache(bytes, trusted, None)
    }

    /// As [`Engine::load`], reusing compiled YARA rules cached in `cache_dir` under the
    /// database's hash (and writing them there after a cold compile).
    pub fn load_with_cache(
        bytes: &[u8],
        trusted: &[PublicKey],
        cache_dir: Option<&Path>,
    ) -> Result<Self, EngineError> {
        Self::from_verified(&verify(bytes, trusted)?, cache_dir)
    }

    /// Builds every matcher from a database its holder already verified: the proof is the
    /// argument, so a caller that verified (the updater, reading what it installed) never pays
    /// for a second check, and nothing unverified can reach here. Compiled YARA rules are
    /// reused from `cache_dir` as in [`Engine::load_with_cache`].
    pub fn from_verified(v: &Verified<'_>, cache_dir: Option<&Path>) -> Result<Self, EngineError> {
        let db_sha256: [u8; 32] = Sha256::digest(v.bytes()).into();
        let yara = match v.section(SectionKind::Yara)? {
            Some(raw) => Some(YaraRules::load(
                &SourceFiles::decode(&raw)?,
                &db_sha256,
                cache_dir,
            )?),
            None => None,
        };
        let body = match v.section(SectionKind::Ndb)? {
            Some(raw) => {
                let mut body = BodyMatcherBuilder::default();
                for (i, line) in decode_lines(&raw)?.into_iter().enumerate() {
                    let sig = parse_ndb_line(line).map_err(|e| EngineError::Record {
                        section: "ndb",
                        line: i + 1,
                        message: e.to_string(),
                    })?;
                    body.add(&sig).map_err(EngineError::Body)?;
                }
                Some(
                    body.build(Prefilter::default())
                        .map_err(EngineError::Body)?,
                )
            }
            None => None,
        };
        let mut hashes = HashTable::default();
        let mut allow = HashTable::default();
        for (kind, file, is_allow) in [
            (SectionKind::Hdb, HashFile::Hdb, false),
            (SectionKind::Hsb, HashFile::Hsb, false),
            (SectionKind::Fp, HashFile::Fp, true),
            (SectionKind::Sfp, HashFile::Sfp, true),
        ] {
            let table = if is_allow { &mut allow } else { &mut hashes };
            if let Some(raw) = v.section(kind)? {
                for (i, line) in decode_lines(&raw)?.into_iter().enumerate() {
                    let sig = parse_hash_line(line, file).map_err(|e| EngineError::Record {
                        section: kind.name(),
                        line: i + 1,
                        message: e.to_string(),
                    })?;
                    table.add(&sig);
                }
            }
        }
        Ok(Self {
            db_version: v.header().db_version,
            db_build_time: v.header().build_time,
            db_sha256,
            yara,
            body,
            hashes,
            allow,
        })
    }

    pub fn db_version(&self) -> u64 {
        self.db_version
    }

    /// When the database was built (seconds since the Unix epoch, from its header).
    pub fn db_build_time(&self) -> u64 {
        self.db_build_time
    }

    pub fn db_sha256(&self) -> [u8; 32] {
        self.db_sha256
    }

    /// Whether the YARA rules were loaded from the compiled-form cache (None: no YARA rules).
    pub fn yara_from_cache(&self) -> Option<bool> {
        self.yara.as_ref().map(YaraRules::cached)
    }

    /// Signature counts: (YARA rules, body signatures, hash signatures, allowlist entries).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        (
            self.yara.as_ref().map_or(0, YaraRules::len),
            self.body.as_ref().map_or(0, BodyMatcher::len),
            self.hashes.len(),
            self.allow.len(),
        )
    }

    /// Every allowlist entry whose digest and size match `data`, whether or not anything
    /// detected it. A scan names only the first entry that cleared a file (two entries for one
    /// file, by MD5 and by SHA-256, are common); the release gate tests each entry on its own.
    pub fn allowlist_entries(&self, data: &[u8]) -> Vec<String> {
        let size = data.len() as u64;
        if !self.allow.wants(size) {
            return Vec::new();
        }
        let d = digests(data, self.allow.kinds());
        self.allow
            .lookup(&d, size)
            .into_iter()
            .map(|n| n.to_string())
            .collect()
    }

    /// A scanner over this engine. Reuse one per thread: it keeps yara-x's scanner (a wasm
    /// instance, expensive to create) from file to file.
    pub fn scanner(&self) -> Scanner<'_> {
        Scanner {
            engine: self,
            yara: self.yara.as_ref().map(YaraRules::scanner),
            buf: Vec::new(),
            body_stats: None,
        }
    }

    /// Scans `data` with a one-off [`Scanner`].
    pub fn scan_bytes(&self, data: &[u8], limits: &Limits) -> Result<ScanReport, ScanError> {
        self.scanner().scan_bytes(data, limits)
    }

    /// Scans a regular file with a one-off [`Scanner`], see [`Scanner::scan_file`].
    pub fn scan_file(&self, path: &Path, limits: &Limits) -> Result<ScanReport, ScanError> {
        self.scanner().scan_file(path, limits)
    }

    /// Scans a stream with a one-off [`Scanner`], see [`Scanner::scan_reader`].
    pub fn scan_reader(&self, reader: impl Read, limits: &Limits) -> Result<ScanReport, ScanError> {
        self.scanner().scan_reader(reader, limits)
    }
}

/// Scans files with one engine, keeping per-thread state (yara-x's scanner) between files.
pub struct Scanner<'e> {
    engine: &'e Engine,
    yara: Option<YaraScanner<'e>>,
    /// File contents, reused from file to file (see [`crate::input`]).
    buf: Vec<u8>,
    /// Per-signature body-matcher work, counted once [`Scanner::count_body_work`] asked.
    body_stats: Option<BodyStats>,
}

impl Scanner<'_> {
    /// Per-rule YARA costs accumulated by this scanner (see [`crate::RuleCost`]); empty when
    /// the engine has no YARA rules.
    #[cfg(feature = "profiling")]
    pub fn yara_profile(&self) -> Vec<crate::RuleCost> {
        self.yara
            .as_ref()
            .map(YaraScanner::profile)
            .unwrap_or_default()
    }

    #[cfg(feature = "profiling")]
    pub fn clear_yara_profile(&mut self) {
        if let Some(y) = &mut self.yara {
            y.clear_profile();
        }
    }

    /// From now on, count each body signature's prefilter candidates and confirmations (see
    /// [`crate::body::BodyStats`]); read them with [`Scanner::body_costs`]. Off by default:
    /// the release gate's cost profile turns it on, scans for findings do not pay for it.
    pub fn count_body_work(&mut self) {
        self.body_stats.get_or_insert_with(BodyStats::default);
    }

    /// Body-signature work counted since [`Scanner::count_body_work`], by signature (only those
    /// the prefilter ever proposed).
    pub fn body_costs(&self) -> Vec<BodyCost> {
        match (&self.engine.body, &self.body_stats) {
            (Some(body), Some(stats)) => body.costs(stats),
            _ => Vec::new(),
        }
    }

    /// Scans `data`: its own bytes with every signature kind, then, unless
    /// [`Limits::scan_archives`] is off, every member of every container inside it, under the
    /// limits (see [`crate::container`]). Findings inside carry their member chain in
    /// [`Finding::path`]; what could not be scanned is listed in [`ScanReport::unscanned`].
    pub fn scan_bytes(&mut self, data: &[u8], limits: &Limits) -> Result<ScanReport, ScanError> {
        let size = data.len() as u64;
        if size > limits.max_filesize {
            return Err(ScanError::TooLarge {
                size,
                limit: limits.max_filesize,
            });
        }
        let deadline = limits.timeout.map(|t| Instant::now() + t);
        let ft = vigil_unpack::detect(data);
        let mut report = ScanReport {
            findings: self.match_layer(data, ft, deadline)?,
            size,
            ..ScanReport::default()
        };
        if limits.scan_archives && ft.is_container() {
            Walker::new(self, limits, deadline, &mut report).run(ft, data)?;
        }
        if report.findings.is_empty() {
            return Ok(report);
        }
        // Only files with detections pay for the allowlist check and the SHA-256.
        let mut kinds: Vec<HashKind> = self.engine.allow.kinds().collect();
        kinds.push(HashKind::Sha256);
        let d = digests(data, kinds);
        if self.engine.allow.wants(size) {
            if let Some(name) = self.engine.allow.lookup(&d, size).into_iter().next() {
                report.findings.clear();
                report.allowlisted = Some(name.to_string());
            }
        }
        report.sha256 = d.sha256.map(hex::encode);
        Ok(report)
    }

    /// Every signature kind over one layer's bytes (the object, or a member), not its members.
    pub(crate) fn match_layer(
        &mut self,
        data: &[u8],
        ft: vigil_unpack::FileType,
        deadline: Option<Instant>,
    ) -> Result<Vec<Finding>, ScanError> {
        let size = data.len() as u64;
        let mut findings = Vec::new();
        if self.engine.hashes.wants(size) {
            let d = digests(data, self.engine.hashes.kinds());
            for name in self.engine.hashes.lookup(&d, size) {
                findings.push(Finding {
                    signature: name.to_string(),
                    kind: SigKind::Hash,
                    severity: None,
                    description: None,
                    offset: None,
                    path: None,
                });
            }
        }
        if let Some(body) = &self.engine.body {
            let target = ft.ndb_target().unwrap_or(0);
            let matches = match &mut self.body_stats {
                None => body.scan_typed(data, deadline, target)?,
                Some(stats) => body.scan_typed_counted(data, deadline, target, stats)?,
            };
            for m in matches {
                findings.push(Finding {
                    signature: m.name.to_string(),
                    kind: SigKind::Body,
                    severity: None,
                    description: None,
                    offset: Some(m.offset),
                    path: None,
                });
            }
        }
        if let Some(yara) = &mut self.yara {
            let remaining = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ScanError::Timeout);
                    }
                    Some(left)
                }
                None => None,
            };
            findings.extend(yara.scan(data, remaining)?);
        }
        Ok(findings)
    }

    /// The allowlist entry that clears `data`, if one does.
    pub(crate) fn allowlisted(&self, data: &[u8]) -> Option<String> {
        let size = data.len() as u64;
        if !self.engine.allow.wants(size) {
            return None;
        }
        let d = digests(data, self.engine.allow.kinds());
        self.engine
            .allow
            .lookup(&d, size)
            .into_iter()
            .next()
            .map(|n| n.to_string())
    }

    /// Scans the regular file at `path` (symlinks followed). The path is opened without
    /// blocking and checked through the descriptor, and the file is read, never mapped: see
    /// [`crate::input`] for why.
    pub fn scan_file(&mut self, path: &Path, limits: &Limits) -> Result<ScanReport, ScanError> {
        let opened = input::open_regular(path)?;
        self.scan_opened(&opened, limits)
    }

    /// Scans a file the caller opened (a descriptor a client passed, say), after the same
    /// checks as [`Scanner::scan_file`]. The file's offset must be at its start.
    pub fn scan_open_file(&mut self, file: File, limits: &Limits) -> Result<ScanReport, ScanError> {
        let opened = input::checked(file)?;
        self.scan_opened(&opened, limits)
    }

    fn scan_opened(&mut self, opened: &Opened, limits: &Limits) -> Result<ScanReport, ScanError> {
        let mut buf = std::mem::take(&mut self.buf);
        let result = match input::load(opened, limits, &mut buf) {
            Ok(Contents::Buffer) => self.scan_bytes(&buf, limits),
            Ok(Contents::Spool(map)) => self.scan_bytes(&map, limits),
            Err(e) => Err(e),
        };
        if buf.capacity() <= input::KEEP_BUFFER {
            buf.clear();
            self.buf = buf;
        }
        result
    }

    /// Scans a [`Spool`] this process wrote (a received stream), mapped: no one else holds it.
    pub fn scan_spool(&mut self, spool: &Spool, limits: &Limits) -> Result<ScanReport, ScanError> {
        let size = spool.len()?;
        if size > limits.max_filesize {
            return Err(ScanError::TooLarge {
                size,
                limit: limits.max_filesize,
            });
        }
        let map = spool.map()?;
        self.scan_bytes(&map, limits)
    }

    /// Scans a stream (stdin, an object store body) in bounded memory: small streams stay in
    /// memory, larger ones are spooled to an anonymous temporary file and mapped.
    pub fn scan_reader(
        &mut self,
        mut reader: impl Read,
        limits: &Limits,
    ) -> Result<ScanReport, ScanError> {
        let mut buf = Vec::new();
        let cap = READER_MEMORY.min(limits.max_filesize.saturating_add(1) as usize);
        (&mut reader).take(cap as u64).read_to_end(&mut buf)?;
        if buf.len() < cap {
            return self.scan_bytes(&buf, limits);
        }
        if buf.len() as u64 > limits.max_filesize {
            // Already one byte over: report max + 1 as the longer path does, read no more.
            return Err(ScanError::TooLarge {
                size: buf.len() as u64,
                limit: limits.max_filesize,
            });
        }
        let mut spool = Spool::new()?;
        spool.write_all(&buf)?;
        drop(buf);
        let copied = std::io::copy(
            &mut reader.take(limits.max_filesize.saturating_sub(cap as u64) + 1),
            &mut spool,
        )?;
        let size = cap as u64 + copied;
        if size > limits.max_filesize {
            return Err(ScanError::TooLarge {
                size,
                limit: limits.max_filesize,
            });
        }
        self.scan_spool(&spool, limits)
    }
}
