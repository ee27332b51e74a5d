//! `--image FILE|DEVICE`: the files inside disk images and block devices, read with
//! `vigil-diskimage` (no mounting), scanned in-process. One thread walks each ext volume and
//! hands `(path, size)` to the scanning threads over a bounded channel; each scanning thread
//! opens its own view of the filesystem (`ext4-view` is single-threaded) and streams files
//! into its `Scanner`, so memory stays bounded whatever the image holds.
//!
//! Names: `IMAGE:PART:/path/in/image` (`disk.img:p1:/home/u/x`), `IMAGE:/path` for an image
//! that is one bare filesystem; a finding inside a container there adds `!member` as usual.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, PoisonError};

use vigil_diskimage::{Image, InPath, Volume, WalkLimits, Walked};
use vigil_scan_core::service::FileResult;
use vigil_scan_core::{Engine, Limits, ScanError};

/// Where a file scanned from an image is: what the JSON output reports beside the findings.
pub struct Origin {
    pub image: String,
    /// `p1`, … ; `None` for a bare filesystem.
    pub partition: Option<String>,
    /// The GPT partition name, if any.
    pub partition_name: Option<String>,
    /// The path inside the filesystem.
    pub path: String,
}

impl Origin {
    /// The name printed in text output: `IMAGE:PART:/path` or `IMAGE:/path`.
    pub fn shown(&self) -> String {
        match &self.partition {
            Some(p) => format!("{}:{p}:{}", self.image, self.path),
            None => format!("{}:{}", self.image, self.path),
        }
    }
}

/// What the image scan tells its caller, besides each file's result.
pub trait Sink: Sync {
    fn result(&self, origin: &Origin, r: FileResult);
    /// Something that could not be read (a whole image, a volume, a directory): an error.
    fn failed(&self, what: &str);
    /// A volume not scanned by design (another filesystem, no filesystem): a skip.
    fn skipped(&self, what: &str);
}

/// Channel depth between the walk and the scanners: enough to keep them busy, small enough
/// that paths waiting do not add up.
const QUEUE: usize = 1024;

/// Scans every image in `images` with `threads` scanning threads.
pub fn scan(images: &[PathBuf], engine: &Engine, limits: &Limits, threads: usize, sink: &dyn Sink) {
    for path in images {
        let name = path.display().to_string();
        let image = match Image::open(path) {
            Ok(i) => i,
            Err(e) => {
                sink.failed(&format!("{name}: {e}"));
                continue;
            }
        };
        for note in &image.notes {
            eprintln!("WARNING: {name}: {note}");
        }
        for volume in &image.volumes {
            scan_volume(&name, volume, engine, limits, threads.max(1), sink);
        }
    }
}

fn scan_volume(
    image: &str,
    volume: &Volume,
    engine: &Engine,
    limits: &Limits,
    threads: usize,
    sink: &dyn Sink,
) {
    let label = volume.label();
    let here = match &label {
        Some(l) => format!("{image}:{l}"),
        None => image.to_string(),
    };
    let fs = match volume.open() {
        Ok(fs) => fs,
        Err(e @ vigil_diskimage::VolumeError::Unsupported(_)) => {
            sink.skipped(&format!("{here}: {e}"));
            return;
        }
        Err(e) => {
            sink.failed(&format!("{here}: {e}"));
            return;
        }
    };
    let origin = |p: &InPath| Origin {
        image: image.to_string(),
        partition: label.clone(),
        partition_name: volume.partition.name.clone(),
        path: p.display(),
    };
    let (tx, rx) = mpsc::sync_channel::<(InPath, u64)>(QUEUE);
    let rx = Mutex::new(rx);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| scan_files(volume, &rx, engine, limits, &origin, sink));
        }
        let walked = fs.walk(&WalkLimits::default(), &mut |w| match w {
            Walked::File { path, size } => match tx.send((path, size)) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            },
            Walked::Error { path, error } => {
                sink.failed(&format!("{here}:{}: {error}", path.display()));
                ControlFlow::Continue(())
            }
        });
        if let Err(e) = walked {
            sink.failed(&format!("{here}: {e}"));
        }
        // Closing the channel ends the scanning threads once they have drained it.
        drop(tx);
    });
}

/// One scanning thread: its own view of the filesystem and its own scanner.
fn scan_files(
    volume: &Volume,
    rx: &Mutex<Receiver<(InPath, u64)>>,
    engine: &Engine,
    limits: &Limits,
    origin: &(dyn Fn(&InPath) -> Origin + Sync),
    sink: &dyn Sink,
) {
    // If this view cannot open (the walk's did), every file it takes is an error: it must
    // keep draining the channel, or the walk would wait on it forever.
    let fs = volume.open();
    let mut scanner = engine.scanner();
    let db = engine.db_version();
    loop {
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((path, size)) = next else { return };
        let o = origin(&path);
        let outcome = if size > limits.max_filesize {
            Err(ScanError::TooLarge {
                size,
                limit: limits.max_filesize,
            })
        } else {
            match &fs {
                Ok(fs) => match fs.open_file(&path) {
                    Ok(reader) => scanner.scan_reader(reader, limits),
                    Err(e) => Err(ScanError::Io(std::io::Error::other(e.to_string()))),
                },
                Err(e) => Err(ScanError::Io(std::io::Error::other(e.to_string()))),
            }
        };
        sink.result(&o, FileResult::from_scan(o.shown(), db, outcome));
    }
}
