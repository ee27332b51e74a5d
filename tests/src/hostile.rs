//! Hostile local users, for the tests of the root scanner (issue 18): a user who truncates
//! their file once the scanner has it open (as one watching it with inotify would), and one
//! who swaps a directory so that a name the scanner checked as a regular file is a FIFO when
//! it opens it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

/// A 256 MiB file named `big.bin` in `dir`: scanning it takes longer than the 0.15 s the
/// issue's attacker waits, and it is above the size the scanner reads into memory, so it is
/// copied first (a window of some 100 ms for a truncation to land in). The first MiB is data,
/// the rest a hole, so the tests do not write 256 MiB each time.
pub fn big_file(dir: &Path) -> PathBuf {
    let p = dir.join("big.bin");
    let mut f = fs::File::create(&p).expect("create");
    let chunk: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    f.write_all(&chunk).expect("write");
    f.set_len(256 << 20).expect("extend");
    p
}

/// Truncates `path` to zero once someone opens it and `delay` has passed, as the issue's
/// attacker does with inotify (IN_OPEN): the watch is in place when this returns, and the
/// thread wakes at the open itself rather than at a poll.
pub fn truncate_when_opened(path: &Path, delay: Duration) -> Truncation {
    use rustix::fs::inotify;
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC).expect("inotify_init");
    inotify::add_watch(&fd, path, inotify::WatchFlags::OPEN).expect("inotify_add_watch");
    let path = path.to_path_buf();
    let (tx, rx) = mpsc::channel();
    // Blocks until the open; if none comes the thread is left waiting (the test reports it).
    std::thread::spawn(move || {
        let mut event = [0u8; 4096];
        if rustix::io::read(&fd, &mut event).is_ok() {
            std::thread::sleep(delay);
            fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(0))
                .expect("truncate");
            let _ = tx.send(());
        }
    });
    Truncation(rx)
}

/// The attacker of [`truncate_when_opened`].
pub struct Truncation(mpsc::Receiver<()>);

impl Truncation {
    /// Whether the file was opened and truncated (waiting up to a minute).
    pub fn done(self) -> bool {
        self.0.recv_timeout(Duration::from_secs(60)).is_ok()
    }
}

/// `dir/swap` and `dir/other` trade places (`renameat2(RENAME_EXCHANGE)`) as fast as the
/// kernel allows until dropped: in one `x` is a regular file, in the other a FIFO. `links`
/// symlinks in `dir/links` point at `swap/x`.
pub struct FifoSwapper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
    links: PathBuf,
}

impl FifoSwapper {
    pub fn start(dir: &Path, links: usize) -> Self {
        let (a, b) = (dir.join("swap"), dir.join("other"));
        fs::create_dir_all(&a).expect("mkdir");
        fs::create_dir_all(&b).expect("mkdir");
        fs::write(a.join("x"), b"plain file").expect("write");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            b.join("x"),
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .expect("mkfifo");
        let link_dir = dir.join("links");
        fs::create_dir_all(&link_dir).expect("mkdir");
        for i in 0..links {
            std::os::unix::fs::symlink("../swap/x", link_dir.join(format!("l{i:04}")))
                .expect("symlink");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut swaps = 0;
            while !st.load(Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &a,
                    rustix::fs::CWD,
                    &b,
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .expect("renameat2(RENAME_EXCHANGE)");
                swaps += 1;
            }
            swaps
        });
        Self {
            stop,
            thread: Some(thread),
            links: link_dir,
        }
    }

    /// The directory of symlinks to scan.
    pub fn links(&self) -> &Path {
        &self.links
    }

    /// Stops swapping; returns how many swaps were made.
    pub fn stop(mut self) -> u64 {
        self.halt()
    }

    fn halt(&mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .map_or(0, |t| t.join().unwrap_or_default())
    }
}

impl Drop for FifoSwapper {
    fn drop(&mut self) {
        self.halt();
    }
}
