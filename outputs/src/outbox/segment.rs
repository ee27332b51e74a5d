//! The outbox's segment files: `seg-<first seq, 20 digits>.log`, one record per line as
//! `<16 hex of SHA-256(json)> <json>\n`. Appends only ever add whole lines at the end, so after
//! a crash at most the last line is torn; a line is trusted only when it ends in a newline, its
//! checksum matches and its seq is above the one before it. Anything else (a torn tail, garbage,
//! a flipped bit) is skipped, never trusted and never a panic.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::OutputError;
use crate::sink::Record;

const PREFIX: &str = "seg-";
const SUFFIX: &str = ".log";
/// A record line longer than this is damage (a finding is about 1 KB): skipped, not buffered.
const MAX_LINE: u64 = 1 << 20;

pub(crate) fn name(first: u64) -> String {
    format!("{PREFIX}{first:020}{SUFFIX}")
}

/// The segments of `dir`, oldest first, as (first seq, path).
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, OutputError> {
    let io = |cause| OutputError::Outbox {
        path: dir.to_path_buf(),
        cause,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        let Some(first) = n
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_suffix(SUFFIX))
            .filter(|d| d.len() == 20)
            .and_then(|d| d.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((first, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// One line for `record`, newline included. Public, with [`decode`], for the fuzz target over
/// damaged outbox files.
pub fn encode(record: &Record) -> Vec<u8> {
    // A Record is plain data with string keys: serialising it cannot fail.
    let json = serde_json::to_vec(record).unwrap_or_default();
    let mut line = Vec::with_capacity(json.len() + 18);
    line.extend_from_slice(checksum(&json).as_bytes());
    line.push(b' ');
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

fn checksum(json: &[u8]) -> String {
    hex::encode(&Sha256::digest(json)[..8])
}

/// The record a line holds, if it is whole and intact (`line` without its newline). Any bytes
/// (a torn write, a disk error, a foreign file) give `None` or a record, never a panic.
pub fn decode(line: &[u8]) -> Option<Record> {
    let (sum, json) = (line.get(..16)?, line.get(17..)?);
    if line.get(16) != Some(&b' ') || sum != checksum(json).as_bytes() {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// A reader over one segment from a byte offset, yielding intact records in seq order.
pub(crate) struct Reader {
    inner: BufReader<File>,
    path: PathBuf,
    /// Offset just past the last line read (intact or skipped).
    pub(crate) offset: u64,
    /// Offset just past the last intact record.
    pub(crate) valid_end: u64,
    pub(crate) last_seq: u64,
    pub(crate) valid: u64,
    pub(crate) skipped: u64,
    line: Vec<u8>,
}

impl Reader {
    /// `None` when the segment has gone (dropped or collected by another process meanwhile).
    pub(crate) fn open(path: &Path, offset: u64) -> Result<Option<Self>, OutputError> {
        let io = |cause| OutputError::Outbox {
            path: path.to_path_buf(),
            cause,
        };
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        if offset > 0 {
            file.seek(SeekFrom::Start(offset)).map_err(io)?;
        }
        Ok(Some(Self {
            inner: BufReader::with_capacity(64 << 10, file),
            path: path.to_path_buf(),
            offset,
            valid_end: offset,
            last_seq: 0,
            valid: 0,
            skipped: 0,
            line: Vec::new(),
        }))
    }

    /// The next intact record; `None` at the end (or at an unterminated last line, which may
    /// be torn or still being written).
    pub(crate) fn next_record(&mut self) -> Result<Option<Record>, OutputError> {
        loop {
            self.line.clear();
            let n = (&mut self.inner)
                .take(MAX_LINE)
                .read_until(b'\n', &mut self.line)
                .map_err(|cause| OutputError::Outbox {
                    path: self.path.clone(),
                    cause,
                })?;
            if n == 0 {
                return Ok(None);
            }
            if self.line.last() != Some(&b'\n') {
                if (n as u64) < MAX_LINE {
                    return Ok(None); // unterminated: torn or in flight
                }
                // Overlong: damage. Skip to the next newline.
                let mut rest = 0u64;
                loop {
                    let buf = self.inner.fill_buf().map_err(|cause| OutputError::Outbox {
                        path: self.path.clone(),
                        cause,
                    })?;
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    match buf.iter().position(|&b| b == b'\n') {
                        Some(i) => {
                            self.inner.consume(i + 1);
                            rest += i as u64 + 1;
                            break;
                        }
                        None => {
                            let l = buf.len();
                            self.inner.consume(l);
                            rest += l as u64;
                        }
                    }
                }
                self.offset += n as u64 + rest;
                self.skipped += 1;
                continue;
            }
            self.offset += n as u64;
            match decode(&self.line[..n - 1]) {
                Some(r) if r.seq > self.last_seq => {
                    self.last_seq = r.seq;
                    self.valid_end = self.offset;
                    self.valid += 1;
                    return Ok(Some(r));
                }
                _ => self.skipped += 1,
            }
        }
    }
}

/// What a whole segment holds: its intact records' count and last seq, where they end, and its
/// length (longer than `valid_end` when its tail is torn or damaged).
pub(crate) struct Scan {
    pub(crate) valid: u64,
    pub(crate) last_seq: u64,
    pub(crate) valid_end: u64,
    pub(crate) len: u64,
}

pub(crate) fn scan(path: &Path) -> Result<Option<Scan>, OutputError> {
    let Some(mut r) = Reader::open(path, 0)? else {
        return Ok(None);
    };
    while r.next_record()?.is_some() {}
    let len = r
        .inner
        .get_ref()
        .metadata()
        .map_err(|cause| OutputError::Outbox {
            path: path.to_path_buf(),
            cause,
        })?
        .len();
    Ok(Some(Scan {
        valid: r.valid,
        last_seq: r.last_seq,
        valid_end: r.valid_end,
        len,
    }))
}
