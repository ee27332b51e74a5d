//! ext2/3/4 through `ext4-view`: a size check against the volume (a truncated image is named
//! as such, not discovered file by file), the walk over every directory, and opening a file
//! by its in-image path as a stream.
//!
//! The walk is bounded on its own, whatever the filesystem says: at most
//! [`WalkLimits::max_depth`] directory levels and [`WalkLimits::max_entries`] entries, and it
//! stops reading a directory at its first error (a corrupt directory cannot make it spin).
//! Types are taken from the inodes, not from the directory entries that point to them:
//! symlinks are never followed, device files, FIFOs and sockets are skipped.
//! `ext4_view::Ext4` is single-threaded (`Rc`), so each scanning thread opens its own
//! [`ExtFs`] over the same [`Window`]; that reads a few blocks (superblock, group
//! descriptors, journal) and shares the open file.

use std::io::{self, Read};
use std::ops::ControlFlow;

use ext4_view::{Ext4, Ext4Error, PathBuf as ExtPath};

use crate::source::Window;
use crate::VolumeError;

/// Bounds on one walk.
#[derive(Clone, Copy, Debug)]
pub struct WalkLimits {
    /// Directory levels below the root (Linux's PATH_MAX of 4096 allows about 2000; real
    /// trees stay under 50).
    pub max_depth: usize,
    /// Directory entries read in all (files, directories and the rest).
    pub max_entries: u64,
}

impl Default for WalkLimits {
    fn default() -> Self {
        Self {
            max_depth: 256,
            max_entries: 50_000_000,
        }
    }
}

/// A path inside the filesystem, as stored (ext names are bytes, not necessarily UTF-8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InPath(Vec<u8>);

impl InPath {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// For output: invalid UTF-8 replaced, control characters (a newline in a hostile name
    /// would forge an output line) escaped.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0)
            .chars()
            .flat_map(|c| {
                if c.is_control() {
                    c.escape_default().collect::<Vec<_>>()
                } else {
                    vec![c]
                }
            })
            .collect()
    }
}

/// What the walk found.
#[derive(Debug)]
pub enum Walked {
    /// A regular file, with its size from the inode.
    File { path: InPath, size: u64 },
    /// A directory (or the walk itself) that could not be read all through.
    Error { path: InPath, error: VolumeError },
}

/// Totals of one walk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkStats {
    pub files: u64,
    pub dirs: u64,
    /// Symlinks, device files, FIFOs and sockets: not scanned.
    pub special: u64,
    pub entries: u64,
}

/// An opened ext2/3/4 filesystem.
pub struct ExtFs {
    fs: Ext4,
}

/// Bytes the superblock says the filesystem spans (blocks × block size).
fn claimed_size(w: &Window) -> Result<u64, VolumeError> {
    let mut sb = [0u8; 1024];
    w.read_at(1024, &mut sb)
        .map_err(|e| VolumeError::Truncated {
            what: format!("the ext superblock cannot be read: {e}"),
        })?;
    let u32_at = |at: usize| u32::from_le_bytes([sb[at], sb[at + 1], sb[at + 2], sb[at + 3]]);
    let log = u32_at(24);
    if log > 6 {
        return Err(VolumeError::Ext(format!(
            "corrupt superblock: block size 1024 << {log}"
        )));
    }
    let block = 1024u64 << log;
    let mut blocks = u64::from(u32_at(4));
    // INCOMPAT_64BIT: the high half of the block count is at 0x150.
    if u32_at(0x60) & 0x80 != 0 {
        blocks |= u64::from(u32_at(0x150)) << 32;
    }
    blocks.checked_mul(block).ok_or_else(|| {
        VolumeError::Ext(format!(
            "corrupt superblock: {blocks} blocks of {block} bytes"
        ))
    })
}

fn ext_err(e: Ext4Error) -> VolumeError {
    VolumeError::Ext(e.to_string())
}

impl ExtFs {
    /// Opens the filesystem in `w`, after checking that `w` holds all of it.
    pub fn open(w: &Window) -> Result<Self, VolumeError> {
        let claims = claimed_size(w)?;
        if claims > w.len() {
            return Err(VolumeError::Truncated {
                what: format!(
                    "the filesystem spans {claims} bytes but only {} are there",
                    w.len()
                ),
            });
        }
        let fs = Ext4::load(Box::new(w.clone())).map_err(ext_err)?;
        Ok(Self { fs })
    }

    /// The filesystem's label, if set.
    pub fn label(&self) -> Option<String> {
        let l = self.fs.label().display().to_string();
        (!l.is_empty()).then_some(l)
    }

    /// Calls `visit` with every regular file and every error, depth first, until it returns
    /// `Break`. Fails only when the root directory cannot be read.
    pub fn walk(
        &self,
        limits: &WalkLimits,
        visit: &mut dyn FnMut(Walked) -> ControlFlow<()>,
    ) -> Result<WalkStats, VolumeError> {
        let mut stats = WalkStats::default();
        let root = ExtPath::new("/");
        let mut stack: Vec<(ExtPath, usize)> = vec![(root, 0)];
        let mut first = true;
        while let Some((dir, depth)) = stack.pop() {
            let entries = match self.fs.read_dir(&dir) {
                Ok(e) => e,
                Err(e) if first => return Err(ext_err(e)),
                Err(e) => {
                    let error = ext_err(e);
                    if visit(Walked::Error {
                        path: InPath(dir.as_ref().to_vec()),
                        error,
                    })
                    .is_break()
                    {
                        return Ok(stats);
                    }
                    continue;
                }
            };
            first = false;
            stats.dirs += 1;
            let mut subdirs = Vec::new();
            for entry in entries {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        // Stop at the first error: a corrupt block may repeat it forever.
                        let w = Walked::Error {
                            path: InPath(dir.as_ref().to_vec()),
                            error: ext_err(e),
                        };
                        if visit(w).is_break() {
                            return Ok(stats);
                        }
                        break;
                    }
                };
                let name = entry.file_name();
                if name == "." || name == ".." {
                    continue;
                }
                stats.entries += 1;
                if stats.entries > limits.max_entries {
                    let w = Walked::Error {
                        path: InPath(dir.as_ref().to_vec()),
                        error: VolumeError::Limit(format!(
                            "more than {} directory entries; the walk stopped here",
                            limits.max_entries
                        )),
                    };
                    let _ = visit(w);
                    return Ok(stats);
                }
                let path = entry.path();
                // The inode's type, not the entry's (a hostile entry may say "directory" and
                // point at a symlink).
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    Err(e) => {
                        let w = Walked::Error {
                            path: InPath(path.as_ref().to_vec()),
                            error: ext_err(e),
                        };
                        if visit(w).is_break() {
                            return Ok(stats);
                        }
                        continue;
                    }
                };
                let ft = meta.file_type();
                if ft.is_dir() {
                    if depth + 1 > limits.max_depth {
                        let w = Walked::Error {
                            path: InPath(path.as_ref().to_vec()),
                            error: VolumeError::Limit(format!(
                                "deeper than {} directory levels; not entered",
                                limits.max_depth
                            )),
                        };
                        if visit(w).is_break() {
                            return Ok(stats);
                        }
                        continue;
                    }
                    subdirs.push((path, depth + 1));
                } else if ft.is_regular_file() {
                    stats.files += 1;
                    let w = Walked::File {
                        path: InPath(path.as_ref().to_vec()),
                        size: meta.len(),
                    };
                    if visit(w).is_break() {
                        return Ok(stats);
                    }
                } else {
                    stats.special += 1;
                }
            }
            // Reversed, so the stack pops them in directory order.
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(stats)
    }

    /// The regular file at `path` as a stream. `path` comes from [`ExtFs::walk`], whose
    /// components are real directories, so the lookup follows no symlink; `ext4-view` checks
    /// that the last one is a regular file.
    pub fn open_file(&self, path: &InPath) -> Result<FileReader, VolumeError> {
        let p = ExtPath::try_from(path.as_bytes())
            .map_err(|_| VolumeError::Ext(format!("malformed path {}", path.display())))?;
        let file = self.fs.open(&p).map_err(ext_err)?;
        Ok(FileReader { file })
    }
}

/// A file's contents; read errors keep `ext4-view`'s description (its own conversion to
/// `io::Error` drops it).
pub struct FileReader {
    file: ext4_view::File,
}

impl FileReader {
    pub fn len(&self) -> u64 {
        self.file.metadata().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file
            .read_bytes(buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }
}
