//! Opening and reading the files we scan. They belong to whoever wrote them, and the agent
//! that reads them runs as root, so every step assumes the file is hostile:
//!
//! - **Open without blocking, then decide.** A path is opened `O_RDONLY|O_NONBLOCK|O_NOCTTY`
//!   (so a FIFO swapped in after the walk looked at the path cannot block the open, and a
//!   terminal never becomes ours), then the descriptor is `fstat`ed and anything but a regular
//!   file is refused. From then on only the descriptor is used: what was checked is what is
//!   read. Files on pseudo-filesystems (proc, sysfs, debugfs, …) are refused too: their
//!   "regular files" are kernel interfaces (a sysfs `resource` file maps device memory).
//! - **Never map another user's file.** A mapped file that its owner truncates raises SIGBUS
//!   in the reader, which kills the process. Files are read with `read(2)` into a buffer the
//!   scanner reuses; files larger than [`READ_MEMORY`] are copied into a [`Spool`] (an unnamed
//!   temporary file only this process holds) and the spool is mapped, since no one else can
//!   truncate it. A file that shrinks while it is read is an error for that file
//!   ([`ScanError::Changed`]); one that grows is read up to its size at open.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{fstatfs, Mode, OFlags};

use crate::error::{Limits, ScanError};

/// Files up to this size are read into the scanner's buffer; larger ones go through a
/// [`Spool`], so a scan thread never holds more than this in heap for one file.
pub const READ_MEMORY: u64 = 64 << 20;

/// A scanner's buffer above this size is released after the file, so one large file does not
/// keep a thread's memory high for the rest of the scan.
pub(crate) const KEEP_BUFFER: usize = 8 << 20;

/// An open regular file, checked through its descriptor, with its size at open. Its offset
/// is at the start; reading it ([`read_exact_into`], [`Spool::copy_of`]) consumes it.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    pub size: u64,
}

/// Opens `path` for scanning, following symlinks, without blocking on FIFOs or devices, and
/// refuses anything that is not a regular file on a real filesystem (see the module docs).
pub fn open_regular(path: &Path) -> Result<Opened, ScanError> {
    let fd: OwnedFd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)?;
    checked(File::from(fd))
}

/// Checks an already open descriptor as [`open_regular`] does.
pub fn checked(file: File) -> Result<Opened, ScanError> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ScanError::NotRegular);
    }
    if let Some(fs) = pseudo_filesystem(&file) {
        return Err(ScanError::PseudoFilesystem { fs });
    }
    Ok(Opened {
        file,
        size: meta.len(),
    })
}

/// The name of the pseudo-filesystem `file` lives on, if it does. devtmpfs reports tmpfs's
/// magic and cannot be told apart, but it holds device nodes, which `fstat` already refuses.
fn pseudo_filesystem(file: &File) -> Option<&'static str> {
    // A filesystem that cannot be asked is not refused: the fstat check still holds.
    let magic = fstatfs(file).ok()?.f_type as u64;
    Some(match magic {
        0x9fa0 => "proc",
        0x6265_6572 => "sysfs",
        0x6462_6720 => "debugfs",
        0x7472_6163 => "tracefs",
        0x7363_6673 => "securityfs",
        0x0027_e0eb => "cgroup",
        0x6367_7270 => "cgroup2",
        0x6265_6570 => "configfs",
        0xcafe_4a11 => "bpf",
        0xde5e_81e4 => "efivarfs",
        0x6165_676c => "pstore",
        0xf97c_ff8c => "selinuxfs",
        0x6573_5543 => "fusectl",
        _ => return None,
    })
}

/// Reads exactly `size` bytes of `file` into `buf` (replacing its contents). Fewer bytes mean
/// the file shrank since it was opened: [`ScanError::Changed`].
pub fn read_exact_into(file: &File, size: u64, buf: &mut Vec<u8>) -> Result<(), ScanError> {
    buf.clear();
    let want = usize::try_from(size).map_err(|_| ScanError::TooLarge {
        size,
        limit: usize::MAX as u64,
    })?;
    buf.try_reserve_exact(want)
        .map_err(|e| ScanError::Io(io::Error::new(io::ErrorKind::OutOfMemory, e.to_string())))?;
    read_all(file, size, buf)?;
    Ok(())
}

fn read_all(file: &File, size: u64, out: &mut impl Write) -> Result<(), ScanError> {
    let got = io::copy(&mut file.take(size), out)?;
    if got < size {
        return Err(ScanError::Changed {
            expected: size,
            got,
        });
    }
    Ok(())
}

/// An unnamed temporary file that only this process holds (`O_TMPFILE` where available), so
/// mapping it is safe: no one else can truncate it under the mapping.
#[derive(Debug)]
pub struct Spool(File);

impl Spool {
    pub fn new() -> io::Result<Self> {
        tempfile::tempfile().map(Self)
    }

    /// Copies exactly `size` bytes of `file` into a new spool ([`ScanError::Changed`] when it
    /// has fewer).
    pub fn copy_of(file: &File, size: u64) -> Result<Self, ScanError> {
        let mut spool = Self::new()?;
        read_all(file, size, &mut spool.0)?;
        Ok(spool)
    }

    pub fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Maps the spool read-only. An empty spool maps to an empty slice.
    pub(crate) fn map(&self) -> io::Result<SpoolMap> {
        if self.is_empty()? {
            return Ok(SpoolMap::Empty);
        }
        map_private(&self.0).map(SpoolMap::Mapped)
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Seek for Spool {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.0.seek(pos)
    }
}

pub(crate) enum SpoolMap {
    Empty,
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for SpoolMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SpoolMap::Empty => &[],
            SpoolMap::Mapped(m) => m,
        }
    }
}

/// The one place vigil uses `unsafe` to read: mapping a [`Spool`]. Only spools are mapped,
/// never a file someone else could truncate (which would raise SIGBUS in the reader).
#[allow(unsafe_code)]
fn map_private(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: the file is an unnamed temporary file that only this process holds open and
    // no one else can reach by name, so it cannot change while it is mapped; the map is
    // read-only and lives no longer than the scan that uses it.
    unsafe { memmap2::Mmap::map(file) }
}

/// How a file's bytes are held for one scan.
pub(crate) enum Contents {
    /// In the scanner's reusable buffer.
    Buffer,
    Spool(SpoolMap),
}

/// Reads an opened file for scanning: into `buf` when small, else through a [`Spool`].
pub(crate) fn load(
    opened: &Opened,
    limits: &Limits,
    buf: &mut Vec<u8>,
) -> Result<Contents, ScanError> {
    if opened.size > limits.max_filesize {
        return Err(ScanError::TooLarge {
            size: opened.size,
            limit: limits.max_filesize,
        });
    }
    if opened.size <= READ_MEMORY {
        read_exact_into(&opened.file, opened.size, buf)?;
        Ok(Contents::Buffer)
    } else {
        let spool = Spool::copy_of(&opened.file, opened.size)?;
        Ok(Contents::Spool(spool.map()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_is_refused_without_blocking() {
        let t = tempfile::tempdir().expect("tempdir");
        let fifo = t.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_raw_mode(0o600)).expect("mkfifo");
        // A blocking open of a FIFO with no writer would hang this test forever.
        assert!(matches!(open_regular(&fifo), Err(ScanError::NotRegular)));
        assert!(matches!(open_regular(t.path()), Err(ScanError::NotRegular)));
    }

    #[test]
    fn pseudo_filesystems_are_refused() {
        for p in [
            "/proc/self/status",
            "/sys/kernel/mm/transparent_hugepage/enabled",
        ] {
            if Path::new(p).exists() {
                let e = open_regular(Path::new(p)).expect_err(p);
                assert!(
                    matches!(e, ScanError::PseudoFilesystem { .. }),
                    "{p}: {e:?}"
                );
            }
        }
    }

    #[test]
    fn a_file_that_shrinks_after_open_is_an_error() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("f");
        std::fs::write(&p, vec![7u8; 1 << 20]).expect("write");
        let opened = open_regular(&p).expect("open");
        assert_eq!(opened.size, 1 << 20);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_len(100))
            .expect("truncate");
        let mut buf = Vec::new();
        let e = read_exact_into(&opened.file, opened.size, &mut buf).expect_err("shrank");
        assert!(
            matches!(e, ScanError::Changed { expected, got: 100 } if expected == 1 << 20),
            "{e:?}"
        );
        // Through a spool (large files) the same.
        let again = open_regular(&p).expect("open");
        let e = Spool::copy_of(&again.file, 1 << 20).expect_err("shrank");
        assert!(matches!(e, ScanError::Changed { .. }), "{e:?}");
    }

    #[test]
    fn a_file_that_grows_is_read_to_its_size_at_open() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("f");
        std::fs::write(&p, b"hello").expect("write");
        let opened = open_regular(&p).expect("open");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .and_then(|mut f| f.write_all(b" world"))
            .expect("append");
        let mut buf = Vec::new();
        read_exact_into(&opened.file, opened.size, &mut buf).expect("read");
        assert_eq!(buf, b"hello");
        let again = open_regular(&p).expect("open");
        let spool = Spool::copy_of(&again.file, 5).expect("spool");
        assert_eq!(&*spool.map().expect("map"), b"hello");
    }
}
