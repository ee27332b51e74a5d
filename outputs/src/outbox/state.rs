//! Per-output state under `cursors/`: `NAME.json` (the cursor, counters and last error,
//! written only by the process delivering that output, which holds `NAME.lock`), and
//! `NAME.dropped.json` (how many records the bound dropped before that output reached them,
//! written only by appenders, which hold the outbox lock), so the two writers never race on
//! one file. Both are written atomically (temp file, fsync, rename): a crash leaves the old or
//! the new state, never half of one.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_findings::Severity;

use crate::config::{Event, OutputConfig};
use crate::error::OutputError;

/// What `status` reports per output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutputStatus {
    pub name: String,
    /// The output's type (`webhook`, `securityhub`...).
    pub kind: String,
    /// Records after the cursor that this output wants.
    pub pending: u64,
    /// When the oldest of them was queued, Unix seconds.
    pub oldest_queued_at: Option<i64>,
    pub delivered: u64,
    pub rejected: u64,
    /// Records the outbox's bound dropped before this output reached them.
    pub dropped: u64,
    /// The last failure (kept after later successes: compare with `last_success`).
    pub last_error: Option<String>,
    pub last_attempt: Option<i64>,
    pub last_success: Option<i64>,
}

/// Which records an output wants, kept with its cursor so an appender that drops records can
/// count, per output, only the ones it would have sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Filter {
    pub(crate) min_severity: Severity,
    pub(crate) events: BTreeSet<Event>,
}

impl Filter {
    pub(crate) fn of(output: &OutputConfig) -> Self {
        Self {
            min_severity: output.min_severity,
            events: output.events.clone(),
        }
    }

    /// The same rule as [`OutputConfig::wants`].
    pub(crate) fn wants(&self, event: Event, severity: Severity) -> bool {
        self.events.contains(&event) && (event == Event::Resolved || severity >= self.min_severity)
    }
}

/// `cursors/NAME.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    /// The last seq this output has handled (delivered, rejected or did not want).
    pub(crate) cursor: u64,
    pub(crate) kind: String,
    pub(crate) filter: Filter,
    #[serde(default)]
    pub(crate) delivered: u64,
    #[serde(default)]
    pub(crate) rejected: u64,
    #[serde(default)]
    pub(crate) last_error: Option<String>,
    #[serde(default)]
    pub(crate) last_attempt: Option<i64>,
    #[serde(default)]
    pub(crate) last_success: Option<i64>,
}

impl State {
    pub(crate) fn new(output: &OutputConfig) -> Self {
        Self {
            cursor: 0,
            kind: output.kind.type_name().to_owned(),
            filter: Filter::of(output),
            delivered: 0,
            rejected: 0,
            last_error: None,
            last_attempt: None,
            last_success: None,
        }
    }
}

/// `cursors/NAME.dropped.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Dropped {
    pub(crate) dropped: u64,
}

pub(crate) fn state_path(cursors: &Path, name: &str) -> PathBuf {
    cursors.join(format!("{name}.json"))
}
pub(crate) fn dropped_path(cursors: &Path, name: &str) -> PathBuf {
    cursors.join(format!("{name}.dropped.json"))
}
pub(crate) fn lock_path(cursors: &Path, name: &str) -> PathBuf {
    cursors.join(format!("{name}.lock"))
}

/// The output names with a state file in `cursors/`.
pub(crate) fn names(cursors: &Path) -> Result<Vec<String>, OutputError> {
    let io = |cause| OutputError::Outbox {
        path: cursors.to_path_buf(),
        cause,
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir(cursors).map_err(io)? {
        let e = e.map_err(io)?;
        if let Some(n) = e.file_name().to_str() {
            if let Some(name) = n.strip_suffix(".json") {
                if !name.ends_with(".dropped") && !name.contains(".tmp") {
                    out.push(name.to_owned());
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a JSON state file; `None` when absent.
pub(crate) fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, OutputError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| OutputError::Corrupt {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(cause) => Err(OutputError::Outbox {
            path: path.to_path_buf(),
            cause,
        }),
    }
}

fn temp_for(path: &Path) -> PathBuf {
    let mut rnd = [0u8; 8];
    let _ = getrandom::fill(&mut rnd);
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".tmp{}", hex::encode(rnd)));
    PathBuf::from(p)
}

fn write_temp<T: Serialize>(path: &Path, value: &T) -> Result<PathBuf, OutputError> {
    let tmp = temp_for(path);
    let io = |cause| OutputError::Outbox {
        path: tmp.clone(),
        cause,
    };
    let bytes = serde_json::to_vec(value).map_err(|e| OutputError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(tmp)
}

/// Replaces `path` with `value` atomically.
pub(crate) fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), OutputError> {
    let tmp = write_temp(path, value)?;
    std::fs::rename(&tmp, path).map_err(|cause| {
        let _ = std::fs::remove_file(&tmp);
        OutputError::Outbox {
            path: path.to_path_buf(),
            cause,
        }
    })
}

/// Creates `path` with `value` unless it exists (a hard link fails on an existing name, so two
/// processes registering the same output cannot overwrite a cursor one of them has moved).
pub(crate) fn create<T: Serialize>(path: &Path, value: &T) -> Result<(), OutputError> {
    let tmp = write_temp(path, value)?;
    let r = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(cause) => Err(OutputError::Outbox {
            path: path.to_path_buf(),
            cause,
        }),
    }
}

/// An exclusive `flock` on a lock file, released when dropped (with the file).
pub(crate) struct FileLock {
    _file: File,
}

/// Takes the lock on `path`, waiting for it (`block`) or not (`None` when another holder has
/// it).
pub(crate) fn lock(path: &Path, block: bool) -> Result<Option<FileLock>, OutputError> {
    let io = |cause| OutputError::Outbox {
        path: path.to_path_buf(),
        cause,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    lock_file(&file, block)
        .map_err(io)
        .map(|got| got.then_some(FileLock { _file: file }))
}

/// `flock` on an open file: `Ok(false)` when non-blocking and held elsewhere.
pub(crate) fn lock_file(file: &File, block: bool) -> std::io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    let op = if block {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    loop {
        match flock(file, op) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::WOULDBLOCK) if !block => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
}

pub(crate) fn unlock_file(file: &File) {
    let _ = rustix::fs::flock(file, rustix::fs::FlockOperation::Unlock);
}
