//! Opening the directory that holds a path without following a symbolic link anywhere on the
//! way, so the file the store moves (or restores) is in the directory the policy checked.
//!
//! The policy checks paths lexically. If a directory on the way could be a symlink, a user
//! who owns `/home/u/dir` could point it at `/etc` between the scan and the quarantine and
//! make root move `/etc/passwd`. Each component is therefore opened with `O_NOFOLLOW`
//! relative to the one before; a symlinked component refuses the operation.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{openat, Mode, OFlags, CWD};
use rustix::io::Errno;

use crate::QuarantineError;

/// The open parent directory of `path` and the file's name in it.
pub(crate) fn open_parent(path: &Path) -> Result<(OwnedFd, &OsStr), QuarantineError> {
    let bad = |reason| QuarantineError::BadPath {
        path: path.to_path_buf(),
        reason,
    };
    let mut comps = path.components();
    if comps.next() != Some(Component::RootDir) {
        return Err(bad("not an absolute path"));
    }
    let names = comps
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(bad("holds a `.` or `..` component")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let Some((name, dirs)) = names.split_last() else {
        return Err(bad("names no file"));
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir =
        openat(CWD, "/", flags, Mode::empty()).map_err(|e| QuarantineError::io("open", "/", e))?;
    for d in dirs {
        dir = match openat(&dir, *d, flags, Mode::empty()) {
            Ok(fd) => fd,
            // ELOOP: the component is a symlink; ENOTDIR: a symlink to a non-directory, or a file.
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => return Err(QuarantineError::Symlink {
                path: path.to_path_buf(),
                what:
                    "a directory on the path is a symbolic link or not a directory (never followed)",
            }),
            Err(Errno::NOENT) => {
                return Err(QuarantineError::NoParent {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(QuarantineError::io("open a directory of", path, e)),
        };
    }
    Ok((dir, name))
}

/// 16 random bytes in hex: entry ids and temporary names.
pub(crate) fn random_hex() -> Result<String, QuarantineError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| QuarantineError::io("getrandom", "", std::io::Error::other(e.to_string())))?;
    Ok(hex::encode(b))
}
