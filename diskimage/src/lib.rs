//! vigil-diskimage: the files inside a disk image or a block device, read without mounting
//! (no root, no kernel filesystem code on hostile metadata).
//!
//! Input: a raw image file or a block device (a snapshot's volume attached read-only).
//! [`Image::open`] reads its layout ([`table`]: GPT, checked by CRC32, or MBR with logical
//! partitions, or one bare filesystem) and names each [`Volume`] `p1`, `p2`, … as Linux does.
//! An ext2/3/4 volume opens as an [`ExtFs`], whose walk hands every regular file to the caller
//! with its in-image path (`/home/user/x`), and whose files read as streams: memory stays
//! bounded whatever the image's size. Other filesystems are named and skipped, a truncated
//! volume is an error of that volume alone. The `vigil-scan --image` program is the user.

pub mod ext;
pub mod gpt;
pub mod mbr;
pub mod probe;
pub mod source;
pub mod table;

use std::path::Path;
use std::sync::Arc;

pub use ext::{ExtFs, FileReader, InPath, WalkLimits, WalkStats, Walked};
pub use probe::Fs;
pub use source::{Device, ReadAt, Window};
pub use table::{Partition, Scheme, Table, TableError};

/// Why an image could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot open: {0}")]
    Open(#[source] std::io::Error),
    #[error(transparent)]
    Table(#[from] TableError),
}

/// Why one volume could not be read (the others may still be).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("truncated image: {what}")]
    Truncated { what: String },
    #[error("ext filesystem: {0}")]
    Ext(String),
    #[error("not scanned: {0}")]
    Unsupported(String),
    #[error("walk limit reached: {0}")]
    Limit(String),
}

/// What a volume holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    Ext,
    /// A filesystem this crate does not read (FAT, xfs, LUKS, ...), by name.
    Unsupported(&'static str),
    /// No filesystem signature (an empty partition, a BIOS boot partition, random data).
    Unknown,
    /// The partition table places it (partly) past the image's end.
    PastEnd {
        end: u64,
        image: u64,
    },
}

/// One partition, or the whole image when it is a bare filesystem.
pub struct Volume {
    pub partition: Partition,
    pub content: Content,
    window: Window,
}

impl Volume {
    /// `p1`, `p5`, …; `None` for a bare filesystem (the image is the volume).
    pub fn label(&self) -> Option<String> {
        (self.partition.number > 0).then(|| format!("p{}", self.partition.number))
    }

    /// Opens the volume's ext filesystem. Each thread that reads files opens its own.
    pub fn open(&self) -> Result<ExtFs, VolumeError> {
        match &self.content {
            Content::Ext => ExtFs::open(&self.window),
            Content::Unsupported(name) => Err(VolumeError::Unsupported(format!(
                "{name} filesystem (only ext2/3/4 is read)"
            ))),
            Content::Unknown => Err(VolumeError::Unsupported(
                "no filesystem recognised".into(),
            )),
            Content::PastEnd { end, image } => Err(VolumeError::Truncated {
                what: format!(
                    "the partition table places it up to byte {end} but the image ends at byte {image}"
                ),
            }),
        }
    }
}

/// A disk image or block device and its volumes.
pub struct Image {
    pub scheme: Scheme,
    pub volumes: Vec<Volume>,
    /// What was odd but not fatal (see [`Table::notes`]).
    pub notes: Vec<String>,
    pub size: u64,
}

impl Image {
    /// Opens a raw image file or a block device, read-only.
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let dev = Device::open(path).map_err(ImageError::Open)?;
        Self::from_source(Arc::new(dev))
    }

    /// The image in `src` (bytes in memory for tests and the fuzz target).
    pub fn from_source(src: Arc<dyn ReadAt>) -> Result<Self, ImageError> {
        let t = table::read(&*src)?;
        let size = src.size();
        let volumes = t
            .partitions
            .into_iter()
            .map(|p| {
                let end = p.start.saturating_add(p.len);
                if end > size {
                    let content = Content::PastEnd { end, image: size };
                    let window = Window::new(src.clone(), 0, 0);
                    return Volume {
                        partition: p,
                        content,
                        window,
                    };
                }
                let window = Window::new(src.clone(), p.start, p.len);
                let content = match probe::volume(&window) {
                    Some(Fs::Ext) => Content::Ext,
                    Some(Fs::Other(name)) => Content::Unsupported(name),
                    None => Content::Unknown,
                };
                Volume {
                    partition: p,
                    content,
                    window,
                }
            })
            .collect();
        Ok(Self {
            scheme: t.scheme,
            volumes,
            notes: t.notes,
            size,
        })
    }
}
