//! The one parallel scan: a walk feeding a bounded queue that N scan threads drain, each with
//! its own [`Scanner`]. `vigil-scan`, the agent's scan service and its scheduled scans all scan
//! paths through [`Pool::scan`] (or [`Pool::scan_as`]), so they share one behaviour for limits,
//! skips, errors and stopping.
//!
//! - **Bounded memory.** The queue holds at most four paths per thread; the walk waits when
//!   the scanners fall behind, so a tree of a million files costs a million paths of time, not
//!   of memory.
//! - **Threads as needed.** Scan threads start as files arrive: a one-file request pays for
//!   one scanner (yara-x's per-thread state), not for `threads` of them.
//! - **Every path gets one outcome.** A file scanned, a file that failed, a special file
//!   skipped, a broken link: each reaches the sink once, as a [`Scanned`] with a typed
//!   [`ScanError`] when it was not scanned ([`ScanError::is_skip`] tells skips from errors).
//! - **Rights.** [`Pool::scan_as`] runs an `enter` step first on the walk thread and then on
//!   every scan thread, all of them started by the walk thread: the scan service takes its
//!   client's filesystem rights there, so the calling thread keeps its own. A scan thread that
//!   cannot take them reports its files as errors; it never opens them with other rights.
//! - **Stopping.** When the sink returns `Break` (the client hung up) or `cancel` says so
//!   (SIGTERM), the walk ends, queued paths are dropped unscanned, and the call returns
//!   [`Finish::Stopped`].
//! - **Own work per thread.** [`Pool::scan_with`] lets each scan thread run a [`Worker`] of the
//!   caller's instead of a bare [`Scanner`]: the release gate's check keeps a second engine's
//!   scanner beside the first on each thread and collects each thread's cost profile when it
//!   ends, with the same walk, queue and outcomes as every other scan.

use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex, PoisonError};
use std::thread;

use thiserror::Error;

use crate::engine::{Engine, ScanReport, Scanner};
use crate::error::{Limits, ScanError};
use crate::walk::{walk, Item};

/// What to scan: paths, walked as [`crate::walk::walk`] walks them.
#[derive(Clone, Copy, Debug)]
pub struct Targets<'a> {
    pub paths: &'a [PathBuf],
    /// Enter subdirectories (a directory named in `paths` is always listed).
    pub recursive: bool,
    /// Paths at or below these are neither scanned nor reported.
    pub exclude: &'a [PathBuf],
}

/// One path's outcome: a [`ScanReport`], or what a [`Worker`] of [`Pool::scan_with`] reports.
#[derive(Debug)]
pub struct Scanned<R = ScanReport> {
    pub path: PathBuf,
    pub outcome: Result<R, ScanError>,
}

/// What one scan thread of [`Pool::scan_with`] runs: made on that thread before its first file
/// (so it needs not be `Send`: a yara-x scanner is not), given each file the thread takes, and
/// finished after its last, however the scan ended.
pub trait Worker {
    type Report;
    fn scan(&mut self, path: &Path, limits: &Limits) -> Result<Self::Report, ScanError>;
    /// After the thread's last file (per-thread results are handed over here).
    fn finish(self)
    where
        Self: Sized,
    {
    }
}

/// The plain worker: one [`Scanner`] per thread.
impl Worker for Scanner<'_> {
    type Report = ScanReport;
    fn scan(&mut self, path: &Path, limits: &Limits) -> Result<ScanReport, ScanError> {
        self.scan_file(path, limits)
    }
}

/// How a scan ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Every path was walked and every file found was scanned.
    Complete,
    /// The sink or `cancel` stopped it; some paths may have no outcome.
    Stopped,
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PoolError {
    #[error("cannot start a scan thread: {0}")]
    Spawn(io::Error),
    /// The walk thread could not take the rights the scan must run with: nothing was scanned.
    #[error("cannot take the client's rights: {0}")]
    Enter(io::Error),
    #[error("the walk thread panicked")]
    Panicked,
}

/// A parallel scanner over one engine, with per-file limits.
#[derive(Clone, Copy)]
pub struct Pool<'e> {
    engine: &'e Engine,
    threads: usize,
    limits: Limits,
}

impl<'e> Pool<'e> {
    /// `threads` scan threads at most (at least one).
    pub fn new(engine: &'e Engine, threads: usize, limits: Limits) -> Self {
        Self {
            engine,
            threads: threads.max(1),
            limits,
        }
    }

    pub fn engine(&self) -> &'e Engine {
        self.engine
    }

    /// Scans `targets` with this process's rights, handing every outcome to `sink` from the
    /// scan threads (so `sink` must be `Sync`; outcomes arrive in no fixed order).
    pub fn scan(
        &self,
        targets: &Targets<'_>,
        sink: &(dyn Fn(Scanned) -> ControlFlow<()> + Sync),
    ) -> Result<Finish, PoolError> {
        self.scan_as(targets, &|| Ok(()), &|| false, sink)
    }

    /// As [`Pool::scan`], with the walk and every scan thread first running `enter` (which
    /// must be idempotent: scan threads inherit what the walk thread took and run it again
    /// only to check), and stopping early once `cancel` returns true.
    pub fn scan_as(
        &self,
        targets: &Targets<'_>,
        enter: &(dyn Fn() -> io::Result<()> + Sync),
        cancel: &(dyn Fn() -> bool + Sync),
        sink: &(dyn Fn(Scanned) -> ControlFlow<()> + Sync),
    ) -> Result<Finish, PoolError> {
        let engine = self.engine;
        self.run(targets, enter, cancel, &|| engine.scanner(), sink)
    }

    /// As [`Pool::scan`], each scan thread running the [`Worker`] `make` gives it (this pool's
    /// engine is then only the caller's: `make` chooses what to scan with), stopping early once
    /// `cancel` returns true.
    pub fn scan_with<W: Worker>(
        &self,
        targets: &Targets<'_>,
        make: &(dyn Fn() -> W + Sync),
        cancel: &(dyn Fn() -> bool + Sync),
        sink: &(dyn Fn(Scanned<W::Report>) -> ControlFlow<()> + Sync),
    ) -> Result<Finish, PoolError> {
        self.run(targets, &|| Ok(()), cancel, make, sink)
    }

    fn run<W: Worker>(
        &self,
        targets: &Targets<'_>,
        enter: &(dyn Fn() -> io::Result<()> + Sync),
        cancel: &(dyn Fn() -> bool + Sync),
        make: &(dyn Fn() -> W + Sync),
        sink: &(dyn Fn(Scanned<W::Report>) -> ControlFlow<()> + Sync),
    ) -> Result<Finish, PoolError> {
        let threads = self.threads;
        let halted = AtomicBool::new(false);
        let stop = || halted.load(Ordering::SeqCst) || cancel();
        let deliver = |s: Scanned<W::Report>| {
            if sink(s).is_break() {
                halted.store(true, Ordering::SeqCst);
            }
        };
        let (tx, rx) = mpsc::sync_channel::<PathBuf>(threads * 4);
        let rx = Mutex::new(rx);
        let walked = thread::scope(|scope| -> Result<(), PoolError> {
            let walker = thread::Builder::new()
                .name("vigil-walk".into())
                .spawn_scoped(scope, || -> Result<(), PoolError> {
                    // Moved in, so the queue closes when the walk ends, however it ends.
                    let tx = tx;
                    enter().map_err(PoolError::Enter)?;
                    let mut workers = 0;
                    let mut queued = 0;
                    let mut emit = |item: Item| {
                        if stop() {
                            return ControlFlow::Break(());
                        }
                        match item {
                            Item::File(path) => {
                                if workers < threads && queued >= workers {
                                    let (rx, deliver, stop) = (&rx, &deliver, &stop);
                                    let spawned = thread::Builder::new()
                                        .name("vigil-scan".into())
                                        .spawn_scoped(scope, move || {
                                            self.worker(enter, make, rx, deliver, stop)
                                        });
                                    if spawned.is_ok() {
                                        workers += 1;
                                    } else if workers == 0 {
                                        deliver(Scanned {
                                            path,
                                            outcome: Err(ScanError::Io(io::Error::other(
                                                "cannot start a scan thread",
                                            ))),
                                        });
                                        return ControlFlow::Continue(());
                                    }
                                }
                                queued += 1;
                                if tx.send(path).is_err() {
                                    return ControlFlow::Break(());
                                }
                            }
                            Item::Unscannable(path, e) => deliver(Scanned {
                                path,
                                outcome: Err(e),
                            }),
                        }
                        ControlFlow::Continue(())
                    };
                    for p in targets.paths {
                        if walk(p, targets.recursive, targets.exclude, &mut emit).is_break() {
                            break;
                        }
                    }
                    Ok(())
                })
                .map_err(PoolError::Spawn)?;
            walker.join().unwrap_or(Err(PoolError::Panicked))
        });
        walked?;
        Ok(if stop() {
            Finish::Stopped
        } else {
            Finish::Complete
        })
    }

    fn worker<W: Worker>(
        &self,
        enter: &(dyn Fn() -> io::Result<()> + Sync),
        make: &(dyn Fn() -> W + Sync),
        rx: &Mutex<mpsc::Receiver<PathBuf>>,
        deliver: &(dyn Fn(Scanned<W::Report>) + Sync),
        stop: &(dyn Fn() -> bool + Sync),
    ) {
        // Started by the walk thread, this thread inherits the rights it took; entering again
        // only checks. Should it fail, files are reported, never opened with other rights.
        let entered = enter();
        let mut worker = make();
        loop {
            let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
            let Ok(path) = next else { break };
            // Once stopped, keep receiving (so the walk never blocks on a full queue) but
            // scan nothing more.
            if stop() {
                continue;
            }
            let outcome = match &entered {
                Ok(()) => worker.scan(&path, &self.limits),
                Err(e) => Err(ScanError::Io(io::Error::new(e.kind(), e.to_string()))),
            };
            deliver(Scanned { path, outcome });
        }
        worker.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicUsize;
    use vigil_format::{DatabaseBuilder, SecretKey, SectionKind};

    fn engine() -> Engine {
        let key = SecretKey::from_seed([5; 32]);
        let mut b = DatabaseBuilder::new(3, 0);
        b.section(
            SectionKind::Ndb,
            1,
            b"Test.Marker:0:*:6d61726b6572\n".to_vec(),
        );
        let db = b.build(&key).expect("build");
        Engine::load(&db, &[key.public()]).expect("load")
    }

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        for i in 0..40 {
            let body: &[u8] = if i % 10 == 0 {
                b"a marker here"
            } else {
                b"clean"
            };
            std::fs::write(t.path().join(format!("f{i:02}")), body).expect("write");
        }
        std::fs::create_dir(t.path().join("sub")).expect("mkdir");
        std::fs::write(t.path().join("sub/deep"), b"marker").expect("write");
        std::os::unix::fs::symlink("nowhere", t.path().join("dangling")).expect("symlink");
        t
    }

    fn recursive(paths: &[PathBuf]) -> Targets<'_> {
        Targets {
            paths,
            recursive: true,
            exclude: &[],
        }
    }

    type Outcomes = BTreeMap<PathBuf, Result<usize, String>>;

    fn run(pool: &Pool<'_>, targets: &Targets<'_>) -> (Finish, Outcomes) {
        let seen = Mutex::new(Outcomes::new());
        let finish = pool
            .scan(targets, &|s| {
                let o = s
                    .outcome
                    .map(|r| r.findings.len())
                    .map_err(|e| e.to_string());
                let dup = seen.lock().expect("lock").insert(s.path, o);
                assert!(dup.is_none(), "a path reported twice");
                ControlFlow::Continue(())
            })
            .expect("scan");
        (finish, seen.into_inner().expect("lock"))
    }

    #[test]
    fn every_path_gets_one_outcome_whatever_the_thread_count() {
        let e = engine();
        let t = tree();
        let paths = [t.path().to_path_buf()];
        let targets = recursive(&paths);
        let (finish, one) = run(&Pool::new(&e, 1, Limits::default()), &targets);
        assert_eq!(finish, Finish::Complete);
        assert_eq!(one.len(), 42, "40 files, sub/deep and the dangling link");
        let found = one.values().filter(|o| matches!(o, Ok(1))).count();
        assert_eq!(found, 5, "f00, f10, f20, f30 and sub/deep");
        assert!(one[&t.path().join("dangling")].is_err());
        for threads in [2, 3, 8] {
            let (_, many) = run(&Pool::new(&e, threads, Limits::default()), &targets);
            assert_eq!(many, one, "{threads} threads");
        }
        let flat = Targets {
            recursive: false,
            ..targets
        };
        let (_, top) = run(&Pool::new(&e, 2, Limits::default()), &flat);
        assert!(!top.contains_key(&t.path().join("sub/deep")));
        let ex = [t.path().join("sub")];
        let (_, excluded) = run(
            &Pool::new(&e, 2, Limits::default()),
            &Targets {
                exclude: &ex,
                ..targets
            },
        );
        assert_eq!(excluded.len(), 41);
    }

    /// Counts its files and hands the count over when its thread ends.
    struct Counting<'a> {
        scanner: Scanner<'a>,
        files: usize,
        total: &'a AtomicUsize,
        finished: &'a AtomicUsize,
    }

    impl Worker for Counting<'_> {
        type Report = (usize, usize);
        fn scan(&mut self, path: &Path, limits: &Limits) -> Result<(usize, usize), ScanError> {
            self.files += 1;
            let r = self.scanner.scan_file(path, limits)?;
            Ok((r.findings.len(), self.files))
        }
        fn finish(self) {
            self.total.fetch_add(self.files, Ordering::SeqCst);
            self.finished.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn workers_of_the_caller_see_every_file_and_finish_once_per_thread() {
        let e = engine();
        let t = tree();
        let paths = [t.path().to_path_buf()];
        let targets = recursive(&paths);
        let (total, finished) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let found = AtomicUsize::new(0);
        let errors = AtomicUsize::new(0);
        let finish = Pool::new(&e, 3, Limits::default())
            .scan_with(
                &targets,
                &|| Counting {
                    scanner: e.scanner(),
                    files: 0,
                    total: &total,
                    finished: &finished,
                },
                &|| false,
                &|s| {
                    match s.outcome {
                        Ok((n, _)) => found.fetch_add(n, Ordering::SeqCst),
                        Err(_) => errors.fetch_add(1, Ordering::SeqCst),
                    };
                    ControlFlow::Continue(())
                },
            )
            .expect("scan");
        assert_eq!(finish, Finish::Complete);
        assert_eq!(
            total.load(Ordering::SeqCst),
            41,
            "every file, on some thread"
        );
        assert_eq!(found.load(Ordering::SeqCst), 5);
        assert_eq!(errors.load(Ordering::SeqCst), 1, "the dangling link");
        let threads = finished.load(Ordering::SeqCst);
        assert!((1..=3).contains(&threads), "{threads} workers finished");
    }

    #[test]
    fn a_break_stops_the_walk_and_drops_the_queue() {
        let e = engine();
        let t = tree();
        let paths = [t.path().to_path_buf()];
        let targets = recursive(&paths);
        let delivered = AtomicUsize::new(0);
        let finish = Pool::new(&e, 2, Limits::default())
            .scan(&targets, &|_| {
                if delivered.fetch_add(1, Ordering::SeqCst) >= 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .expect("scan");
        assert_eq!(finish, Finish::Stopped);
        // Outcomes already being produced may still arrive, but never the whole tree.
        let n = delivered.load(Ordering::SeqCst);
        assert!(
            (3..20).contains(&n),
            "{n} outcomes after a break at the third"
        );
    }

    #[test]
    fn refused_rights_scan_nothing() {
        let e = engine();
        let t = tree();
        let paths = [t.path().to_path_buf()];
        let targets = recursive(&paths);
        let delivered = AtomicUsize::new(0);
        let r = Pool::new(&e, 2, Limits::default()).scan_as(
            &targets,
            &|| Err(io::Error::from(io::ErrorKind::PermissionDenied)),
            &|| false,
            &|_| {
                delivered.fetch_add(1, Ordering::SeqCst);
                ControlFlow::Continue(())
            },
        );
        assert!(matches!(r, Err(PoolError::Enter(_))), "{r:?}");
        assert_eq!(delivered.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn cancel_stops_before_scanning() {
        let e = engine();
        let t = tree();
        let paths = [t.path().to_path_buf()];
        let targets = recursive(&paths);
        let delivered = AtomicUsize::new(0);
        let finish = Pool::new(&e, 2, Limits::default())
            .scan_as(&targets, &|| Ok(()), &|| true, &|_| {
                delivered.fetch_add(1, Ordering::SeqCst);
                ControlFlow::Continue(())
            })
            .expect("scan");
        assert_eq!(finish, Finish::Stopped);
        assert_eq!(delivered.load(Ordering::SeqCst), 0);
    }
}
