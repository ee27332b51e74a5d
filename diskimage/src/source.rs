//! Where an image's bytes come from: a raw image file or a block device, read at offsets
//! (`pread`, so threads share one open file), or bytes in memory (tests and the fuzz target).
//! A [`Window`] is one partition's range of it, and refuses reads past its end: a truncated
//! image fails with an error naming the offset, never with data from outside the partition.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Random-access reads of an image. `read_at` fills all of `buf` or fails.
pub trait ReadAt: Send + Sync {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Size in bytes (of the file, or of the device).
    fn size(&self) -> u64;
}

/// An image file or a block device, opened read-only.
pub struct Device {
    file: File,
    size: u64,
}

impl Device {
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory, not an image or a block device",
            ));
        }
        // A block device's metadata says 0 bytes; its end does not.
        let size = file.seek(SeekFrom::End(0))?;
        Ok(Self { file, size })
    }
}

impl ReadAt for Device {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(offset, buf.len(), self.size)?;
        self.file.read_exact_at(buf, offset)
    }

    fn size(&self) -> u64 {
        self.size
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(offset, buf.len(), self.len() as u64)?;
        // In range after the check, so both conversions hold.
        let start = usize::try_from(offset).map_err(|_| past_end(offset, buf.len(), 0))?;
        let src = self
            .get(start..start + buf.len())
            .ok_or_else(|| past_end(offset, buf.len(), self.len() as u64))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.len() as u64
    }
}

fn check_range(offset: u64, len: usize, size: u64) -> io::Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= size => Ok(()),
        _ => Err(past_end(offset, len, size)),
    }
}

fn past_end(offset: u64, len: usize, size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("read of {len} bytes at byte {offset} is past the end ({size} bytes)"),
    )
}

/// `len` bytes of `src` from `start`: one partition (or the whole image when it is a bare
/// filesystem). Offsets given to it are relative to `start`.
#[derive(Clone)]
pub struct Window {
    src: Arc<dyn ReadAt>,
    start: u64,
    len: u64,
}

impl Window {
    pub fn new(src: Arc<dyn ReadAt>, start: u64, len: u64) -> Self {
        Self { src, start, len }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(offset, buf.len(), self.len)?;
        // start + offset cannot overflow: the window lies inside the source.
        self.src.read_at(self.start.saturating_add(offset), buf)
    }

    /// Up to `max` bytes from the window's start (fewer when it is smaller).
    pub fn head(&self, max: usize) -> io::Result<Vec<u8>> {
        let n = usize::try_from(self.len.min(max as u64)).unwrap_or(max);
        let mut buf = vec![0; n];
        self.read_at(0, &mut buf)?;
        Ok(buf)
    }
}

impl ext4_view::Ext4Read for Window {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Window::read_at(self, start_byte, dst).map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_refuse_reads_past_their_end() {
        let src: Arc<dyn ReadAt> = Arc::new((0u8..100).collect::<Vec<u8>>());
        let w = Window::new(src, 10, 20);
        let mut b = [0u8; 5];
        w.read_at(15, &mut b).expect("in range");
        assert_eq!(b, [25, 26, 27, 28, 29]);
        assert!(w.read_at(16, &mut b).is_err());
        assert!(w.read_at(u64::MAX, &mut b).is_err());
        assert_eq!(w.head(1000).expect("head").len(), 20);
    }
}
