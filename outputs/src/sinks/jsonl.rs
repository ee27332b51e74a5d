//! `jsonl`: one JSON line per record appended to a local file,
//! `{"event":"new","seq":N,"queued_at":T,"finding":{...}}`, fsynced per batch. When a batch
//! would take the file past `max_bytes` it is rotated first: `path` becomes `path.1`, `path.1`
//! becomes `path.2` ... and `path.KEEP` is removed (`keep = 0`: no old files are kept).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Serialize;
use vigil_findings::Finding;

use crate::config::{Event, JsonlConfig};
use crate::error::OutputError;
use crate::sink::{EntryResult, Record, SendError, Sink};

/// The line's shape: the event first, so `grep '"event":"new"'` and eyes find it.
#[derive(Serialize)]
struct Line<'a> {
    event: Event,
    seq: u64,
    queued_at: i64,
    finding: &'a Finding,
}

pub struct JsonlSink {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    /// One batch at a time within the process (another process cannot deliver this output
    /// at the same time: it would need the output's lock).
    write: Mutex<()>,
}

impl JsonlSink {
    pub fn new(cfg: &JsonlConfig) -> Result<Self, OutputError> {
        if let Some(parent) = cfg.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|cause| OutputError::Outbox {
                path: parent.to_path_buf(),
                cause,
            })?;
        }
        Ok(Self {
            path: cfg.path.clone(),
            max_bytes: cfg.max_bytes.max(1),
            keep: cfg.keep,
            write: Mutex::new(()),
        })
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut p = self.path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&self) -> std::io::Result<()> {
        let gone = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        };
        if self.keep == 0 {
            return gone(std::fs::remove_file(&self.path));
        }
        gone(std::fs::remove_file(self.numbered(self.keep)))?;
        for n in (1..self.keep).rev() {
            gone(std::fs::rename(self.numbered(n), self.numbered(n + 1)))?;
        }
        gone(std::fs::rename(&self.path, self.numbered(1)))
    }

    fn write_batch(&self, batch: &[Record]) -> std::io::Result<()> {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = Vec::with_capacity(batch.len() * 1024);
        for r in batch {
            serde_json::to_writer(
                &mut buf,
                &Line {
                    event: r.event,
                    seq: r.seq,
                    queued_at: r.queued_at,
                    finding: &r.finding,
                },
            )?;
            buf.push(b'\n');
        }
        let len = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        if len > 0 && len + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)?;
        f.write_all(&buf)?;
        f.sync_data()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl Sink for JsonlSink {
    fn max_batch(&self) -> usize {
        100
    }

    async fn send(&self, batch: &[Record]) -> Result<Vec<EntryResult>, SendError> {
        match self.write_batch(batch) {
            Ok(()) => Ok(vec![EntryResult::Delivered; batch.len()]),
            // A full disk or a permission problem may pass; the records stay queued.
            Err(e) => Err(SendError::Retry {
                reason: format!("{}: {e}", self.path.display()),
                after: None,
            }),
        }
    }
}
