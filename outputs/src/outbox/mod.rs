//! The durable outbox: every finding event is appended here, and fsynced, before any delivery
//! is tried; each output then reads it from its own cursor ([`crate::deliver`]).
//!
//! Layout of the directory (created 0700; files 0600):
//! - `lock`: appends (and deletions of segments) hold an exclusive `flock` on it, so the agent
//!   and a cron `vigil-scan --config` can share one outbox;
//! - `seg-<first seq>.log`: the records, as checksummed lines ([`segment`]); a new segment
//!   starts at 4 MiB (or an eighth of the bound, so the bound can drop a small part) and after a
//!   torn tail, which is left as it is and never trusted;
//! - `cursors/NAME.json`, `NAME.dropped.json`, `NAME.lock`: each output's cursor and counters
//!   ([`state`]); the process delivering an output holds `NAME.lock`, so two processes never
//!   deliver the same output at once.
//!
//! Segments every registered output has passed are deleted. The outbox is bounded
//! ([`OutboxLimits`]): when an append takes it over the bound, the oldest whole segments are
//! deleted, each output's `dropped` counter grows by the records it wanted and had not reached,
//! and a warning says so. Dropping the oldest keeps the newest detections, which matter most
//! when a receiver has been down for long; the alternative, refusing appends, would lose the
//! new ones instead and stall scans. The bound is checked after writing, so one append larger
//! than the whole bound is kept whole.

mod segment;
mod state;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use vigil_findings::Finding;

pub use segment::{decode as decode_line, encode as encode_line};
pub use state::OutputStatus;

use crate::config::{Event, OutputConfig};
use crate::error::OutputError;
use crate::sink::Record;
use state::{Dropped, FileLock, Filter, State};

/// The outbox's bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxLimits {
    pub max_records: u64,
    pub max_bytes: u64,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        Self {
            max_records: 100_000,
            max_bytes: 256 << 20,
        }
    }
}

impl OutboxLimits {
    fn segment_records(&self) -> u64 {
        (self.max_records / 8).max(1)
    }
    fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 8).clamp(1, 4 << 20)
    }
}

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The seq of the first record appended (the rest follow one by one).
    pub first_seq: u64,
    pub count: u64,
    /// Records the bound dropped to make room (oldest first).
    pub dropped: u64,
}

/// Records after a cursor that one output wants, and how far they reach.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pending {
    pub records: Vec<Record>,
    /// The last seq looked at: the cursor may move here once `records` are handled (records
    /// in between were not wanted by the output).
    pub through: u64,
}

/// What this process knows of the newest segment since its last append, so an append does
/// not reread it unless another process wrote to it meanwhile.
#[derive(Clone, Copy, Debug)]
struct Tail {
    first: u64,
    len: u64,
    valid: u64,
    next_seq: u64,
}

/// Where an output's last read stopped, so reading on from its cursor does not rescan the
/// segment from its start.
#[derive(Clone, Copy, Debug)]
struct Hint {
    first: u64,
    offset: u64,
    after: u64,
}

pub struct Outbox {
    dir: PathBuf,
    cursors: PathBuf,
    limits: OutboxLimits,
    /// The lock file: the mutex serialises this handle's threads, `flock` other handles.
    lock: Mutex<File>,
    tail: Mutex<Option<Tail>>,
    hints: Mutex<HashMap<String, Hint>>,
}

/// Holds the outbox lock; released when dropped.
struct Locked<'a> {
    file: MutexGuard<'a, File>,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        state::unlock_file(&self.file);
    }
}

/// Holds an output's delivery lock.
pub struct OutputLock {
    _lock: FileLock,
}

fn mkdir(path: &Path) -> Result<(), OutputError> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(cause) => Err(OutputError::Outbox {
            path: path.to_path_buf(),
            cause,
        }),
    }
}

fn lock_poisoned<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these cannot leave the disk inconsistent (every write is
    // checked on the next read), so a poisoned mutex is used as it is.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl Outbox {
    /// Opens (creating it 0700) the outbox in `dir`.
    pub fn open(dir: &Path, limits: OutboxLimits) -> Result<Outbox, OutputError> {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|cause| OutputError::Outbox {
                path: parent.to_path_buf(),
                cause,
            })?;
        }
        mkdir(dir)?;
        let cursors = dir.join("cursors");
        mkdir(&cursors)?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|cause| OutputError::Outbox {
                path: lock_path,
                cause,
            })?;
        Ok(Outbox {
            dir: dir.to_path_buf(),
            cursors,
            limits,
            lock: Mutex::new(lock),
            tail: Mutex::new(None),
            hints: Mutex::new(HashMap::new()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> OutputError {
        let path = path.to_path_buf();
        move |cause| OutputError::Outbox {
            path: path.clone(),
            cause,
        }
    }

    fn lock_all(&self) -> Result<Locked<'_>, OutputError> {
        let file = lock_poisoned(&self.lock);
        state::lock_file(&file, true).map_err(self.io(&self.dir.join("lock")))?;
        Ok(Locked { file })
    }

    /// Appends `entries` as records, in order, and fsyncs them before returning.
    pub fn append(&self, entries: &[(Event, Finding)]) -> Result<Appended, OutputError> {
        let _locked = self.lock_all()?;
        let mut segs = segment::list(&self.dir)?;
        let mut cache = lock_poisoned(&self.tail);
        let mut tail = match segs.last() {
            None => Tail {
                first: 0,
                len: 0,
                valid: 0,
                next_seq: self.max_cursor()?.unwrap_or(0) + 1,
            },
            Some((first, path)) => {
                let len = std::fs::metadata(path).map_err(self.io(path))?.len();
                match *cache {
                    Some(t) if t.first == *first && t.len == len => t,
                    _ => {
                        let s = segment::scan(path)?.ok_or_else(|| OutputError::Corrupt {
                            path: path.clone(),
                            message: "the newest segment vanished under the outbox lock".into(),
                        })?;
                        let mut next_seq = (*first).max(s.last_seq + 1);
                        // After a power loss the disk may hold fewer records than outputs
                        // have passed; new records must still land after every cursor.
                        next_seq = next_seq.max(self.max_cursor()?.unwrap_or(0) + 1);
                        if s.len != s.valid_end && s.valid == 0 {
                            // Nothing intact in it: start it over.
                            let f = OpenOptions::new()
                                .write(true)
                                .open(path)
                                .map_err(self.io(path))?;
                            f.set_len(0).map_err(self.io(path))?;
                            f.sync_all().map_err(self.io(path))?;
                            Tail {
                                first: *first,
                                len: 0,
                                valid: 0,
                                next_seq: *first,
                            }
                        } else if s.len != s.valid_end {
                            tracing::warn!(
                                segment = %path.display(),
                                bytes = s.len - s.valid_end,
                                "outbox segment ends in a torn or damaged record (a crash mid-append?): ignored; appending to a new segment"
                            );
                            // Forces a new segment below.
                            Tail {
                                first: *first,
                                len: u64::MAX,
                                valid: s.valid,
                                next_seq,
                            }
                        } else {
                            Tail {
                                first: *first,
                                len: s.len,
                                valid: s.valid,
                                next_seq,
                            }
                        }
                    }
                }
            }
        };
        *cache = None; // Until this append has succeeded.
        if entries.is_empty() {
            return Ok(Appended {
                first_seq: tail.next_seq,
                count: 0,
                dropped: 0,
            });
        }
        let created = segs.is_empty()
            || tail.valid >= self.limits.segment_records()
            || tail.len >= self.limits.segment_bytes();
        if created {
            tail = Tail {
                first: tail.next_seq,
                len: 0,
                valid: 0,
                next_seq: tail.next_seq,
            };
        }
        let path = self.dir.join(segment::name(tail.first));
        let queued_at = now();
        let mut buf = Vec::with_capacity(entries.len() * 1024);
        for (i, (event, finding)) in entries.iter().enumerate() {
            buf.extend(segment::encode(&Record {
                seq: tail.next_seq + i as u64,
                event: *event,
                queued_at,
                finding: finding.clone(),
            }));
        }
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(self.io(&path))?;
        f.write_all(&buf).map_err(self.io(&path))?;
        f.sync_data().map_err(self.io(&path))?;
        if created {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(self.io(&self.dir))?;
            segs.push((tail.first, path));
        }
        let first_seq = tail.next_seq;
        let count = entries.len() as u64;
        *cache = Some(Tail {
            first: tail.first,
            len: tail.len + buf.len() as u64,
            valid: tail.valid + count,
            next_seq: first_seq + count,
        });
        drop(cache);
        let dropped = self.enforce_bound(&mut segs, first_seq + count)?;
        if created {
            self.collect_locked(&segs)?;
        }
        Ok(Appended {
            first_seq,
            count,
            dropped,
        })
    }

    /// Deletes the oldest segments (never the newest) while the outbox is over its bound.
    fn enforce_bound(
        &self,
        segs: &mut Vec<(u64, PathBuf)>,
        next_seq: u64,
    ) -> Result<u64, OutputError> {
        let mut sizes = Vec::with_capacity(segs.len());
        for (_, p) in segs.iter() {
            sizes.push(std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
        }
        let mut bytes: u64 = sizes.iter().sum();
        let mut dropped_total = 0u64;
        let mut per_output: Vec<(String, u64)> = Vec::new();
        let mut states: Option<Vec<(String, State)>> = None;
        while segs.len() > 1 {
            let records = next_seq.saturating_sub(segs[0].0);
            if records <= self.limits.max_records && bytes <= self.limits.max_bytes {
                break;
            }
            if states.is_none() {
                states = Some(self.states()?);
            }
            let states = states.as_deref().unwrap_or_default();
            let (_, path) = segs.remove(0);
            let mut lost = vec![0u64; states.len()];
            if let Some(mut r) = segment::Reader::open(&path, 0)? {
                while let Some(rec) = r.next_record()? {
                    dropped_total += 1;
                    for (i, (_, s)) in states.iter().enumerate() {
                        if rec.seq > s.cursor && s.filter.wants(rec.event, rec.finding.severity) {
                            lost[i] += 1;
                        }
                    }
                }
            }
            std::fs::remove_file(&path).map_err(self.io(&path))?;
            bytes -= sizes.remove(0);
            for (i, (name, _)) in states.iter().enumerate() {
                if lost[i] > 0 {
                    match per_output.iter_mut().find(|(n, _)| n == name) {
                        Some((_, n)) => *n += lost[i],
                        None => per_output.push((name.clone(), lost[i])),
                    }
                }
            }
        }
        for (name, n) in &per_output {
            let p = state::dropped_path(&self.cursors, name);
            let mut d: Dropped = state::read(&p)?.unwrap_or_default();
            d.dropped += n;
            state::write(&p, &d)?;
        }
        if dropped_total > 0 {
            tracing::warn!(
                dropped = dropped_total,
                max_records = self.limits.max_records,
                max_bytes = self.limits.max_bytes,
                outputs = ?per_output,
                outbox = %self.dir.display(),
                "OUTBOX FULL: dropped the {dropped_total} oldest finding records to stay within its bound; outputs that had not delivered them lost them (see `status`). Is a receiver down?"
            );
        }
        Ok(dropped_total)
    }

    /// The state of every registered output, by name.
    fn states(&self) -> Result<Vec<(String, State)>, OutputError> {
        let mut out = Vec::new();
        for name in state::names(&self.cursors)? {
            if let Some(s) = state::read::<State>(&state::state_path(&self.cursors, &name))? {
                out.push((name, s));
            }
        }
        Ok(out)
    }

    fn max_cursor(&self) -> Result<Option<u64>, OutputError> {
        Ok(self.states()?.iter().map(|(_, s)| s.cursor).max())
    }

    /// Deletes the segments every registered output has passed (none while no output is
    /// registered: a first output must still find them).
    pub fn collect(&self) -> Result<(), OutputError> {
        let _locked = self.lock_all()?;
        let segs = segment::list(&self.dir)?;
        self.collect_locked(&segs)
    }

    fn collect_locked(&self, segs: &[(u64, PathBuf)]) -> Result<(), OutputError> {
        let Some(min) = self.states()?.iter().map(|(_, s)| s.cursor).min() else {
            return Ok(());
        };
        for pair in segs.windows(2) {
            // Every record of pair[0] is below the next segment's first seq.
            if pair[1].0 > min.saturating_add(1) {
                break;
            }
            match std::fs::remove_file(&pair[0].1) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(cause) => {
                    return Err(OutputError::Outbox {
                        path: pair[0].1.clone(),
                        cause,
                    })
                }
            }
        }
        Ok(())
    }

    /// Registers `output` (its cursor at the start of the outbox) unless it already has a
    /// cursor. From then on the bound counts what it loses and segments wait for it.
    pub fn register(&self, output: &OutputConfig) -> Result<(), OutputError> {
        state::create(
            &state::state_path(&self.cursors, &output.name),
            &State::new(output),
        )
    }

    /// The delivery lock of the output `name`: `None` while another handle (process) holds it.
    pub fn try_lock_output(&self, name: &str) -> Result<Option<OutputLock>, OutputError> {
        Ok(state::lock(&state::lock_path(&self.cursors, name), false)?
            .map(|l| OutputLock { _lock: l }))
    }

    pub(crate) fn load_state(&self, output: &OutputConfig) -> Result<State, OutputError> {
        let mut s = state::read::<State>(&state::state_path(&self.cursors, &output.name))?
            .unwrap_or_else(|| State::new(output));
        s.filter = Filter::of(output);
        s.kind = output.kind.type_name().to_owned();
        Ok(s)
    }

    pub(crate) fn save_state(&self, name: &str, s: &State) -> Result<(), OutputError> {
        state::write(&state::state_path(&self.cursors, name), s)
    }

    /// Up to `max` records after seq `after` that `output` wants, oldest first.
    pub fn pending(
        &self,
        output: &OutputConfig,
        after: u64,
        max: usize,
    ) -> Result<Pending, OutputError> {
        let segs = segment::list(&self.dir)?;
        let hint = lock_poisoned(&self.hints)
            .get(&output.name)
            .copied()
            .filter(|h| h.after == after);
        let (start, mut offset, mut floor) =
            match hint.and_then(|h| segs.iter().position(|(f, _)| *f == h.first).map(|i| (i, h))) {
                Some((i, h)) => (i, h.offset, h.after),
                None => (
                    segs.iter()
                        .rposition(|(f, _)| *f <= after.saturating_add(1))
                        .unwrap_or(0),
                    0,
                    0,
                ),
            };
        let mut out = Pending {
            records: Vec::new(),
            through: after,
        };
        let mut stop = None;
        for (first, path) in segs.iter().skip(start) {
            let Some(mut r) = segment::Reader::open(path, offset)? else {
                offset = 0;
                floor = 0;
                continue;
            };
            r.last_seq = floor;
            while let Some(rec) = r.next_record()? {
                if rec.seq <= after {
                    continue;
                }
                out.through = rec.seq;
                if output.wants(rec.event, rec.finding.severity) {
                    out.records.push(rec);
                    if out.records.len() >= max {
                        break;
                    }
                }
            }
            stop = Some((*first, r.offset));
            if out.records.len() >= max {
                break;
            }
            offset = 0;
            floor = 0;
        }
        if let Some((first, offset)) = stop {
            lock_poisoned(&self.hints).insert(
                output.name.clone(),
                Hint {
                    first,
                    offset,
                    after: out.through,
                },
            );
        }
        Ok(out)
    }

    /// Per output: what is pending, what was delivered, rejected and dropped, the last error.
    pub fn status(&self, outputs: &[OutputConfig]) -> Result<Vec<OutputStatus>, OutputError> {
        let segs = segment::list(&self.dir)?;
        let mut out = Vec::with_capacity(outputs.len());
        for o in outputs {
            let s = self.load_state(o)?;
            let d: Dropped =
                state::read(&state::dropped_path(&self.cursors, &o.name))?.unwrap_or_default();
            let mut st = OutputStatus {
                name: o.name.clone(),
                kind: s.kind.clone(),
                pending: 0,
                oldest_queued_at: None,
                delivered: s.delivered,
                rejected: s.rejected,
                dropped: d.dropped,
                last_error: s.last_error.clone(),
                last_attempt: s.last_attempt,
                last_success: s.last_success,
            };
            let start = segs
                .iter()
                .rposition(|(f, _)| *f <= s.cursor.saturating_add(1))
                .unwrap_or(0);
            for (_, path) in segs.iter().skip(start) {
                let Some(mut r) = segment::Reader::open(path, 0)? else {
                    continue;
                };
                while let Some(rec) = r.next_record()? {
                    if rec.seq > s.cursor && o.wants(rec.event, rec.finding.severity) {
                        st.pending += 1;
                        st.oldest_queued_at.get_or_insert(rec.queued_at);
                    }
                }
            }
            out.push(st);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
