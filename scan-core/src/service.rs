//! The local scan service's protocol: clamd's role over a Unix stream socket, `vigil-scan
//! --daemon` as clamdscan.
//!
//! The agent (`vigil-agent`) loads the database once, keeps it current with hot swaps, and
//! answers scan requests from local clients with it, so no client pays for loading or
//! compiling signatures. The server is the agent's (`vigil_agent::service`: `bind`, `serve`,
//! `run`); [`Client`] is the client side, std only; the message types below are shared by
//! both.
//!
//! # Protocol
//!
//! Newline-delimited JSON: a client writes one request object per line and reads reply lines.
//! Requests on one connection are answered in order; a connection may send any number.
//!
//! | request | replies |
//! |---|---|
//! | `{"cmd":"ping"}` | `{"pong":true}` |
//! | `{"cmd":"version"}` | [`VersionInfo`]: `{"engine_version":"0.1.0","db_version":9,"db_sha256":"<hex>","signatures":{"yara":11,"body":8,"hash":2,"allowlist":2},"max_filesize":104857600,"timeout_secs":120}` |
//! | `{"cmd":"scan","paths":["/abs/path",…],"recursive":false,"exclude":[…],"max_filesize":N,"timeout_secs":N}` | one [`FileResult`] line per file, then one [`ScanDone`] line |
//! | `{"cmd":"stream","len":N}` followed by exactly `N` raw bytes | one [`FileResult`] line for path `"stream"`, then one [`ScanDone`] line |
//!
//! A file result: `{"path":"/abs/eicar.com","status":"found","findings":[{"signature":
//! "Multi.Test.Eicar-Body","kind":"body","severity":null,"description":null,"offset":0}],
//! "sha256":"<hex>","error":null,"allowlisted":null,"size":68,"db_version":9}`. `status` is
//! `ok`, `found`, `error` (unreadable, vanished, symlink loop, timeout: `error` says why) or
//! `skipped` (not a regular file, over the size limit: `error` says why). The end of a scan:
//! `{"done":true,"db_version":9,"scanned":2,"infected":1,"errors":0,"skipped":0,"bytes":130,
//! "signatures":{…}}`.
//!
//! - `paths` must be absolute (the service does not know the client's working directory).
//!   Directories are listed, and walked when `recursive` is true, as `vigil-scan` walks them
//!   ([`crate::walk`]); paths under an `exclude` entry are skipped silently. Results of one scan
//!   come back in no particular order when the service scans with several threads.
//! - `max_filesize` and `timeout_secs` (per file; 0 or absent: the service's) can only lower
//!   the service's limits, never raise them. `stream` takes them too.
//! - Every `scan` and `stream` request is answered by one engine, the one current when the
//!   request arrived: every result line and the done line carry its `db_version`. A database
//!   swapped in meanwhile serves the next request.
//! - A `stream` longer than the size limit is answered at once with a `skipped` result and a
//!   done line, and the connection is closed without reading the bytes. A stream that ends
//!   early is an error, and closes the connection.
//! - A line that is not a valid request gets `{"error":"…"}` and the connection stays usable. A
//!   request line over [`MAX_REQUEST_LINE`] bytes gets an error and the connection is closed
//!   (the rest of the line cannot be told from the next request). A connection beyond the
//!   limit gets `{"error":"busy"}` and is closed; one that stays silent, or stops reading
//!   results, for `io_timeout` is closed. On shutdown a scan in progress ends with
//!   `{"error":"shutting down"}`.
//!
//! # Security
//!
//! The service usually runs as root; every peer is untrusted. A `scan` runs with the peer's
//! filesystem rights (`vigil_agent::service::peer`): the walk and the opens happen on threads
//! that take the peer's uid, gid and groups as their effective ids, so a peer gets "permission
//! denied" exactly where it would reading the file itself and learns nothing else about it.
//! Files are opened without blocking and checked through the descriptor, and read rather than
//! mapped ([`crate::input`]), so a FIFO or a truncation cannot hang or kill the service. The
//! socket's mode and group decide who may connect at all. Requests are untrusted input: line
//! length and stream size are capped before anything is read into memory, a request line and
//! a stream must arrive within a total deadline (a client trickling bytes cannot hold a slot),
//! each uid may hold only some of the connections, and no request can panic the service.

mod client;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use client::{Client, ClientError, ScanOptions};

use crate::engine::{Engine, Finding, ScanReport};
use crate::error::ScanError;
use crate::report::Unscanned;

/// Where `vigil-scan --daemon` and the agent look for the socket unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/vigil/vigil.sock";

/// Environment variable that overrides [`DEFAULT_SOCKET`] for `vigil-scan --daemon`.
pub const SOCKET_ENV: &str = "VIGIL_SOCKET";

/// The longest request line the service reads (64 KiB: some hundreds of paths).
pub const MAX_REQUEST_LINE: usize = 64 << 10;

/// Path reported for the data of a `stream` request.
pub const STREAM_PATH: &str = "stream";

/// A request line. Unknown commands and unknown fields are refused, so a misspelt option
/// (`"recursve"`) is an error rather than silently ignored. Exhaustive on purpose: the server
/// (in vigil-agent) matches every command, so a new one cannot go unserved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    Ping,
    Version,
    Scan {
        paths: Vec<std::path::PathBuf>,
        #[serde(default)]
        recursive: bool,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        exclude: Vec<std::path::PathBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_filesize: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<u64>,
    },
    /// Followed on the connection by exactly `len` raw bytes.
    Stream {
        len: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_filesize: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<u64>,
    },
}

impl Request {
    /// Parses one request line (without its newline) as the service does. Anything but one
    /// JSON object of a known command with known fields is an error that says what is wrong.
    pub fn parse(line: &[u8]) -> Result<Self, BadRequest> {
        serde_json::from_slice(line).map_err(BadRequest)
    }
}

/// A request line that is not one JSON object of a known command with known fields; the
/// message (`bad request: …`) is what the service answers.
#[derive(Debug, Error)]
#[error("bad request: {0}")]
pub struct BadRequest(serde_json::Error);

/// Reply to `ping`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    pub pong: bool,
}

/// Reply to a request the service refuses, or a scan it cannot finish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub error: String,
}

/// Signature counts of one engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signatures {
    pub yara: usize,
    pub body: usize,
    pub hash: usize,
    /// Allowlist entries: they clear files, they detect nothing.
    pub allowlist: usize,
}

impl Signatures {
    pub fn of(engine: &Engine) -> Self {
        let (yara, body, hash, allowlist) = engine.counts();
        Self {
            yara,
            body,
            hash,
            allowlist,
        }
    }

    /// Signatures that detect something: YARA rules, body and hash signatures.
    pub fn known(&self) -> usize {
        self.yara + self.body + self.hash
    }
}

/// Reply to `version`: the engine current at that moment and the service's limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub engine_version: String,
    pub db_version: u64,
    /// Hex SHA-256 of the database file the engine was built from.
    pub db_sha256: String,
    pub signatures: Signatures,
    /// Files (and streams) larger than this are skipped.
    pub max_filesize: u64,
    /// Per-file scan timeout; `None`: no timeout.
    pub timeout_secs: Option<u64>,
}

/// What happened to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Scanned, nothing found (or only allowlisted matches).
    Ok,
    /// Scanned, something found.
    Found,
    /// Not scanned because of an error (reason in `error`).
    Error,
    /// Not scanned by choice: not a regular file, over the size limit (reason in `error`).
    Skipped,
}

/// One file's result: a line of a scan reply, and what `vigil-scan` prints from in both modes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileResult {
    pub path: String,
    pub status: Status,
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Hex SHA-256, for files with findings.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Why the file was not scanned (`error` and `skipped`).
    #[serde(default)]
    pub error: Option<String>,
    /// The allowlist entry that cleared the file, if one did.
    #[serde(default)]
    pub allowlisted: Option<String>,
    /// Bytes scanned (0 unless `ok` or `found`).
    #[serde(default)]
    pub size: u64,
    /// The database the file was scanned with.
    pub db_version: u64,
    /// Parts of the file left unscanned (encrypted members, limits reached).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unscanned: Vec<Unscanned>,
}

impl FileResult {
    /// The result of scanning `path`: over the size limit and not-a-regular-file are skipped,
    /// as in clamscan; other failures are errors.
    pub fn from_scan(path: String, db_version: u64, result: Result<ScanReport, ScanError>) -> Self {
        match result {
            Ok(r) => Self {
                path,
                status: if r.findings.is_empty() {
                    Status::Ok
                } else {
                    Status::Found
                },
                findings: r.findings,
                sha256: r.sha256,
                error: None,
                allowlisted: r.allowlisted,
                size: r.size,
                db_version,
                unscanned: r.unscanned,
            },
            Err(ScanError::TooLarge { size, limit }) => Self::not_scanned(
                path,
                db_version,
                Status::Skipped,
                format!("size limit exceeded ({size} > {limit} bytes)"),
            ),
            Err(e @ (ScanError::NotRegular | ScanError::PseudoFilesystem { .. })) => {
                Self::not_scanned(path, db_version, Status::Skipped, e.to_string())
            }
            Err(e) => Self::not_scanned(path, db_version, Status::Error, e.to_string()),
        }
    }

    fn not_scanned(path: String, db_version: u64, status: Status, why: String) -> Self {
        Self {
            path,
            status,
            findings: Vec::new(),
            sha256: None,
            error: Some(why),
            allowlisted: None,
            size: 0,
            db_version,
            unscanned: Vec::new(),
        }
    }
}

/// The last line of a scan reply: totals over its file results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanDone {
    pub done: bool,
    pub db_version: u64,
    pub scanned: u64,
    pub infected: u64,
    pub errors: u64,
    pub skipped: u64,
    pub bytes: u64,
    /// Files scanned clean but not completely: encrypted members, container limits reached.
    #[serde(default)]
    pub incomplete: u64,
    pub signatures: Signatures,
}

impl ScanDone {
    /// Zero totals for a scan with `engine`.
    pub fn new(engine: &Engine) -> Self {
        Self {
            done: true,
            db_version: engine.db_version(),
            scanned: 0,
            infected: 0,
            errors: 0,
            skipped: 0,
            bytes: 0,
            incomplete: 0,
            signatures: Signatures::of(engine),
        }
    }

    /// Adds one file to the totals.
    pub fn count(&mut self, r: &FileResult) {
        match r.status {
            Status::Ok | Status::Found => {
                self.scanned += 1;
                self.bytes += r.size;
                if r.status == Status::Found {
                    self.infected += 1;
                } else if !r.unscanned.is_empty() {
                    self.incomplete += 1;
                }
            }
            Status::Error => self.errors += 1,
            Status::Skipped => self.skipped += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_strictly() {
        let scan: Request = serde_json::from_str(r#"{"cmd":"scan","paths":["/a"]}"#).expect("ok");
        assert_eq!(
            scan,
            Request::Scan {
                paths: vec!["/a".into()],
                recursive: false,
                exclude: vec![],
                max_filesize: None,
                timeout_secs: None
            }
        );
        let line = serde_json::to_string(&scan).expect("json");
        assert_eq!(serde_json::from_str::<Request>(&line).expect("again"), scan);
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"ping"}"#).expect("ok"),
            Request::Ping
        );
        for bad in [
            r#"{"cmd":"scan","paths":["/a"],"recursve":true}"#,
            r#"{"cmd":"scan"}"#,
            r#"{"cmd":"nope"}"#,
            r#"{"paths":[]}"#,
            r#"{"cmd":"stream","len":-1}"#,
            r#"[1,2]"#,
            "",
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn results_classify_like_clamscan() {
        let big = FileResult::from_scan(
            "/f".into(),
            3,
            Err(ScanError::TooLarge { size: 10, limit: 5 }),
        );
        assert_eq!(big.status, Status::Skipped);
        assert_eq!(
            big.error.as_deref(),
            Some("size limit exceeded (10 > 5 bytes)")
        );
        let fifo = FileResult::from_scan("/f".into(), 3, Err(ScanError::NotRegular));
        assert_eq!(
            (fifo.status, fifo.error.as_deref()),
            (Status::Skipped, Some("not a regular file"))
        );
        let gone = FileResult::from_scan(
            "/f".into(),
            3,
            Err(ScanError::Io(std::io::Error::from(
                std::io::ErrorKind::NotFound,
            ))),
        );
        assert_eq!(gone.status, Status::Error);
        let mut done = ScanDone {
            done: true,
            db_version: 3,
            scanned: 0,
            infected: 0,
            errors: 0,
            skipped: 0,
            bytes: 0,
            incomplete: 0,
            signatures: Signatures::default(),
        };
        for r in [&big, &fifo, &gone] {
            done.count(r);
        }
        assert_eq!((done.scanned, done.errors, done.skipped), (0, 1, 2));
    }
}
