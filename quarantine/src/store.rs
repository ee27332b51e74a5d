//! The quarantine store: a root-only directory of entry files (format in [`crate::entry`]).
//!
//! Every file the store touches may be hostile: a symlink swapped in, a FIFO, a file replaced
//! between the scan and the move. So the original is opened with `O_NOFOLLOW|O_NONBLOCK`
//! relative to its parent directory (itself reached without following symlinks), checked to
//! be a regular file, read through that descriptor, and unlinked only if the name still
//! refers to the inode that was read. The entry is durable (fsynced, renamed, directory
//! fsynced) before the original goes.
//!
//! Entry files are `<id>.vq` (id: 32 lowercase hex characters); names starting with `.` are
//! temporary files of an operation in progress (or one a crash interrupted) and are ignored.
//! Any other name, or an entry that fails to parse, is *damaged*: [`Store::scan`] reports it
//! beside the good entries, [`Store::list`] logs a warning naming the file and skips it,
//! [`Store::purge`] leaves it alone, and [`Store::delete`] removes it by id.
//!
//! What is not kept: extended attributes (incl. file capabilities and SELinux labels), ACLs
//! and other hard links to the file (only the scanned name is removed).

use std::ffi::OsStr;
use std::fs::{File, Permissions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{
    fstat, fsync, linkat, openat, renameat_with, statat, unlinkat, AtFlags, Dir, FileType, Mode,
    OFlags, RenameFlags, CWD,
};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use crate::dirfd::{open_parent, random_hex};
use crate::entry::{decode_header, encode_header, Entry, Keystream};
use crate::QuarantineError;

/// Where the agent and `vigil-scan quarantine` keep the store unless configured otherwise.
pub const DEFAULT_DIR: &str = "/var/lib/vigil/quarantine";

const CHUNK: usize = 64 * 1024;

/// An open quarantine store. Operations go through the directory descriptor opened (and
/// checked) by [`Store::open`], so the store cannot be swapped under a running agent.
pub struct Store {
    dir: PathBuf,
    fd: OwnedFd,
}

/// Everything in the store: the readable entries (oldest first) and the damaged files.
pub struct Listing {
    pub entries: Vec<Entry>,
    pub damaged: Vec<QuarantineError>,
}

impl Store {
    /// Opens the store at `dir`, creating it 0700 (and its parents) when missing. Refuses a
    /// store that is a symlink, is not owned by the effective user, or that group or others
    /// can access: someone who could write there could plant entries that restore as root.
    pub fn open(dir: &Path) -> Result<Store, QuarantineError> {
        let unsafe_store = |message: String| QuarantineError::UnsafeStore {
            path: dir.to_path_buf(),
            message,
        };
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| QuarantineError::io("create", parent, e))?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(QuarantineError::io("create", dir, e)),
        }
        let fd = openat(
            CWD,
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::LOOP | Errno::NOTDIR => {
                unsafe_store("is a symbolic link or not a directory".into())
            }
            e => QuarantineError::io("open", dir, e),
        })?;
        let st = fstat(&fd).map_err(|e| QuarantineError::io("stat", dir, e))?;
        let euid = rustix::process::geteuid().as_raw();
        if st.st_uid != euid {
            return Err(unsafe_store(format!(
                "owned by uid {}, not by this user (uid {euid})",
                st.st_uid
            )));
        }
        if st.st_mode & 0o077 != 0 {
            return Err(unsafe_store(format!(
                "mode {:o} lets group or others in (must be 0700)",
                st.st_mode & 0o7777
            )));
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            fd,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves the regular file at `path` into the store. With `expect_sha256` (what the scan
    /// saw), a file whose content differs is refused: it changed since it was scanned.
    /// The original is removed only after the entry is durable, and only if the name still
    /// refers to the file that was read.
    pub fn quarantine(
        &self,
        path: &Path,
        expect_sha256: Option<&str>,
        finding_id: &str,
        threat: &str,
    ) -> Result<Entry, QuarantineError> {
        self.quarantine_with(path, expect_sha256, finding_id, threat, &|| {})
    }

    /// [`Store::quarantine`] with a hook between writing the entry and the unlink, where tests
    /// swap the file.
    pub(crate) fn quarantine_with(
        &self,
        path: &Path,
        expect_sha256: Option<&str>,
        finding_id: &str,
        threat: &str,
        before_unlink: &dyn Fn(),
    ) -> Result<Entry, QuarantineError> {
        let (parent, name) = open_parent(path)?;
        // Look before opening: opening a FIFO or a device can block or have side effects.
        let st = statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| QuarantineError::io("stat", path, e))?;
        check_regular(path, FileType::from_raw_mode(st.st_mode))?;
        let fd = openat(
            &parent,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::LOOP => QuarantineError::Symlink {
                path: path.to_path_buf(),
                what: "it is a symbolic link (never followed)",
            },
            e => QuarantineError::io("open", path, e),
        })?;
        let file = File::from(fd);
        let meta = file
            .metadata()
            .map_err(|e| QuarantineError::io("stat", path, e))?;
        check_regular(path, FileType::from_raw_mode(meta.mode()))?;
        if meta.nlink() > 1 {
            tracing::warn!(path = %path.display(), links = meta.nlink(),
                "quarantining one name of a file with other hard links; the others remain");
        }

        // First pass: the hash, so a changed file is refused before anything is written.
        let (sha256, size) = hash_at(&file, path)?;
        if let Some(expected) = expect_sha256 {
            if !expected.eq_ignore_ascii_case(&sha256) {
                return Err(QuarantineError::Changed {
                    path: path.to_path_buf(),
                    detail: format!("SHA-256 {sha256}, scanned {expected}"),
                });
            }
        }
        if size != meta.len() {
            return Err(QuarantineError::Changed {
                path: path.to_path_buf(),
                detail: format!("{size} bytes read of {} stated: being written", meta.len()),
            });
        }

        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| {
            QuarantineError::io("getrandom", path, std::io::Error::other(e.to_string()))
        })?;
        let entry = Entry {
            id: random_hex()?,
            original_path: path.to_path_buf(),
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            atime: meta.atime(),
            atime_nsec: meta.atime_nsec(),
            sha256,
            size,
            finding_id: finding_id.to_string(),
            threat: threat.to_string(),
            quarantined_at: jiff::Timestamp::now().as_second(),
        };
        let entry_name = entry_file(&entry.id)?;
        let tmp = format!(".tmp-{}", random_hex()?);
        let written = self.write_entry(&tmp, &key, &entry, &file, path);
        let renamed = written.and_then(|()| {
            rename_noreplace(&self.fd, &tmp, &entry_name)
                .map_err(|e| QuarantineError::io("rename into", &self.dir, e))
        });
        if let Err(e) = renamed {
            let _ = unlinkat(&self.fd, &tmp, AtFlags::empty());
            return Err(e);
        }
        self.sync_dir()?;

        before_unlink();
        let rollback = |e: QuarantineError| {
            let _ = unlinkat(&self.fd, &entry_name, AtFlags::empty());
            let _ = fsync(&self.fd);
            e
        };
        if !still_there(&parent, name, &file) {
            return Err(rollback(QuarantineError::Swapped {
                path: path.to_path_buf(),
            }));
        }
        unlinkat(&parent, name, AtFlags::empty())
            .map_err(|e| rollback(QuarantineError::io("remove", path, e)))?;
        if let Err(e) = fsync(&parent) {
            // The file is in the store and unlinked; only the unlink's durability is unsure.
            tracing::warn!(path = %path.display(), error = %e, "fsync of the directory after the unlink failed");
        }
        Ok(entry)
    }

    /// Writes header and transformed content to `tmp` in the store, re-hashing what it reads:
    /// a file that changed between the two passes is refused.
    fn write_entry(
        &self,
        tmp: &str,
        key: &[u8; 32],
        entry: &Entry,
        src: &File,
        path: &Path,
    ) -> Result<(), QuarantineError> {
        let header = encode_header(key, entry).map_err(|e| QuarantineError::Corrupt {
            path: path.to_path_buf(),
            message: format!("metadata: {e}"),
        })?;
        let out = openat(
            &self.fd,
            tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| QuarantineError::io("create in", &self.dir, e))?;
        let mut out = File::from(out);
        let werr = |e| QuarantineError::io("write into", &self.dir, e);
        out.write_all(&header).map_err(werr)?;
        let mut ks = Keystream::new(key);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut off = 0u64;
        loop {
            let n = read_at(src, &mut buf, off, path)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            ks.apply(&mut buf[..n]);
            out.write_all(&buf[..n]).map_err(werr)?;
            off += n as u64;
        }
        let again = hex::encode(hasher.finalize());
        if again != entry.sha256 || off != entry.size {
            return Err(QuarantineError::Changed {
                path: path.to_path_buf(),
                detail: "it changed while it was read".into(),
            });
        }
        out.sync_all()
            .map_err(|e| QuarantineError::io("fsync", &self.dir, e))
    }

    /// The readable entries, oldest first (by the second; then by id). Damaged entry files are
    /// skipped with a warning naming each; [`Store::scan`] returns them.
    pub fn list(&self) -> Result<Vec<Entry>, QuarantineError> {
        let listing = self.scan()?;
        for d in &listing.damaged {
            tracing::warn!("{d}");
        }
        Ok(listing.entries)
    }

    /// The readable entries (oldest first) and an error for each damaged or foreign file.
    pub fn scan(&self) -> Result<Listing, QuarantineError> {
        let mut dir =
            Dir::read_from(&self.fd).map_err(|e| QuarantineError::io("list", &self.dir, e))?;
        let mut listing = Listing {
            entries: Vec::new(),
            damaged: Vec::new(),
        };
        while let Some(e) = dir.read() {
            let e = e.map_err(|e| QuarantineError::io("list", &self.dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match name.strip_suffix(".vq").filter(|id| valid_id(id)) {
                Some(id) => match self.get(id) {
                    Ok(entry) => listing.entries.push(entry),
                    Err(err) => listing.damaged.push(err),
                },
                None => listing.damaged.push(QuarantineError::Corrupt {
                    path: self.dir.join(&name),
                    message: "not a quarantine entry (foreign file name)".into(),
                }),
            }
        }
        listing
            .entries
            .sort_by(|a, b| (a.quarantined_at, &a.id).cmp(&(b.quarantined_at, &b.id)));
        Ok(listing)
    }

    /// The entry `id` (an error naming the file if it is damaged).
    pub fn get(&self, id: &str) -> Result<Entry, QuarantineError> {
        self.open_entry(id).map(|(_, entry, _)| entry)
    }

    /// Opens entry `id`, positioned at its content.
    fn open_entry(&self, id: &str) -> Result<(File, Entry, [u8; 32]), QuarantineError> {
        let name = entry_file(id)?;
        let path = self.dir.join(&name);
        let fd = openat(
            &self.fd,
            &name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOENT => QuarantineError::NotFound { id: id.to_string() },
            e => QuarantineError::io("open", &path, e),
        })?;
        let mut file = File::from(fd);
        let meta = file
            .metadata()
            .map_err(|e| QuarantineError::io("stat", &path, e))?;
        if !meta.file_type().is_file() {
            return Err(QuarantineError::Corrupt {
                path,
                message: "not a regular file".into(),
            });
        }
        let (entry, key) = decode_header(&mut file, &path)?;
        if entry.id != id {
            return Err(QuarantineError::Corrupt {
                path,
                message: format!("holds entry {:?}, not {id}", entry.id),
            });
        }
        Ok((file, entry, key))
    }

    /// Puts entry `id` back: the same bytes (checked against the SHA-256), path, mode, owner,
    /// atime and mtime. Never overwrites a file that has appeared at the path, never creates
    /// a missing parent directory. The file appears complete or not at all (written under a
    /// temporary name and renamed without replacement); the entry is removed after.
    pub fn restore(&self, id: &str) -> Result<Entry, QuarantineError> {
        let (mut src, entry, key) = self.open_entry(id)?;
        let path = entry.original_path.as_path();
        let (parent, name) = open_parent(path)?;
        match statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => {
                return Err(QuarantineError::Exists {
                    path: path.to_path_buf(),
                })
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(QuarantineError::io("stat", path, e)),
        }
        let tmp = format!(".vigil-restore-{}", random_hex()?);
        let out = openat(
            &parent,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| QuarantineError::io("create beside", path, e))?;
        let done = write_restored(
            &mut src,
            File::from(out),
            &entry,
            &key,
            &self.dir.join(entry_file(id)?),
        )
        .and_then(|()| match rename_noreplace(&parent, &tmp, name) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => Err(QuarantineError::Exists {
                path: path.to_path_buf(),
            }),
            Err(e) => Err(QuarantineError::io("rename onto", path, e)),
        });
        if let Err(e) = done {
            let _ = unlinkat(&parent, tmp.as_str(), AtFlags::empty());
            return Err(e);
        }
        fsync(&parent).map_err(|e| QuarantineError::io("fsync the directory of", path, e))?;
        self.delete(id)?;
        Ok(entry)
    }

    /// Removes entry `id` for good (also a damaged one).
    pub fn delete(&self, id: &str) -> Result<(), QuarantineError> {
        let name = entry_file(id)?;
        unlinkat(&self.fd, &name, AtFlags::empty()).map_err(|e| match e {
            Errno::NOENT => QuarantineError::NotFound { id: id.to_string() },
            e => QuarantineError::io("remove", self.dir.join(&name), e),
        })?;
        self.sync_dir()
    }

    /// Removes the entries quarantined more than `older_than` ago; returns them.
    pub fn purge(&self, older_than: Duration) -> Result<Vec<Entry>, QuarantineError> {
        let age = i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX);
        self.purge_before(jiff::Timestamp::now().as_second().saturating_sub(age))
    }

    /// Removes the entries quarantined at or before `cutoff` (Unix seconds); returns them.
    /// Damaged entries are left for an operator to look at.
    pub fn purge_before(&self, cutoff: i64) -> Result<Vec<Entry>, QuarantineError> {
        let mut purged = Vec::new();
        for e in self.list()? {
            if e.quarantined_at <= cutoff {
                self.delete(&e.id)?;
                purged.push(e);
            }
        }
        Ok(purged)
    }

    fn sync_dir(&self) -> Result<(), QuarantineError> {
        fsync(&self.fd).map_err(|e| QuarantineError::io("fsync", &self.dir, e))
    }
}

/// Decodes the content into `out`, checks it, and gives it the entry's owner, mode and times.
fn write_restored(
    src: &mut File,
    mut out: File,
    entry: &Entry,
    key: &[u8; 32],
    entry_path: &Path,
) -> Result<(), QuarantineError> {
    let path = entry.original_path.as_path();
    let mut ks = Keystream::new(key);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(QuarantineError::io("read", entry_path, e)),
        };
        if n == 0 {
            break;
        }
        ks.apply(&mut buf[..n]);
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| QuarantineError::io("write", path, e))?;
        size += n as u64;
    }
    let sha = hex::encode(hasher.finalize());
    if sha != entry.sha256 || size != entry.size {
        return Err(QuarantineError::Corrupt {
            path: entry_path.to_path_buf(),
            message: format!(
                "content decodes to {size} bytes with SHA-256 {sha}, not {} bytes with {}",
                entry.size, entry.sha256
            ),
        });
    }
    // Owner before mode: chown clears the setuid and setgid bits.
    std::os::unix::fs::fchown(&out, Some(entry.uid), Some(entry.gid))
        .map_err(|e| QuarantineError::io("chown", path, e))?;
    out.set_permissions(Permissions::from_mode(entry.mode & 0o7777))
        .map_err(|e| QuarantineError::io("chmod", path, e))?;
    let times = std::fs::FileTimes::new()
        .set_accessed(system_time(entry.atime, entry.atime_nsec))
        .set_modified(system_time(entry.mtime, entry.mtime_nsec));
    out.set_times(times)
        .map_err(|e| QuarantineError::io("set the times of", path, e))?;
    out.sync_all()
        .map_err(|e| QuarantineError::io("fsync", path, e))
}

fn check_regular(path: &Path, t: FileType) -> Result<(), QuarantineError> {
    let kind = match t {
        FileType::RegularFile => return Ok(()),
        FileType::Symlink => {
            return Err(QuarantineError::Symlink {
                path: path.to_path_buf(),
                what: "it is a symbolic link (never followed)",
            })
        }
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "unknown type",
    };
    Err(QuarantineError::NotRegular {
        path: path.to_path_buf(),
        kind,
    })
}

/// Whether `name` in `parent` is still the inode `file` was opened on (not swapped).
pub(crate) fn still_there(parent: &OwnedFd, name: &OsStr, file: &File) -> bool {
    match (statat(parent, name, AtFlags::SYMLINK_NOFOLLOW), fstat(file)) {
        (Ok(now), Ok(read)) => now.st_dev == read.st_dev && now.st_ino == read.st_ino,
        _ => false,
    }
}

/// SHA-256 (hex) and length of `file`'s content, read from offset 0.
fn hash_at(file: &File, path: &Path) -> Result<(String, u64), QuarantineError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0u64;
    loop {
        let n = read_at(file, &mut buf, off, path)?;
        if n == 0 {
            return Ok((hex::encode(hasher.finalize()), off));
        }
        hasher.update(&buf[..n]);
        off += n as u64;
    }
}

fn read_at(file: &File, buf: &mut [u8], off: u64, path: &Path) -> Result<usize, QuarantineError> {
    loop {
        match file.read_at(buf, off) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r.map_err(|e| QuarantineError::io("read", path, e)),
        }
    }
}

/// Renames with RENAME_NOREPLACE; on a filesystem without it, link then unlink (which also
/// fails rather than replace).
fn rename_noreplace(
    dir: &OwnedFd,
    from: &str,
    to: impl rustix::path::Arg + Copy,
) -> Result<(), Errno> {
    match renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL) | Err(Errno::NOSYS) => {
            linkat(dir, from, dir, to, AtFlags::empty())?;
            unlinkat(dir, from, AtFlags::empty())
        }
        r => r,
    }
}

fn system_time(secs: i64, nsec: i64) -> SystemTime {
    let nanos = Duration::from_nanos(u64::try_from(nsec.clamp(0, 999_999_999)).unwrap_or(0));
    let base = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    base.and_then(|t| t.checked_add(nanos))
        .unwrap_or(UNIX_EPOCH)
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The entry file's name for `id`; an id that could not be one is simply not found (so no
/// path ever reaches the file system from user input).
fn entry_file(id: &str) -> Result<String, QuarantineError> {
    if valid_id(id) {
        Ok(format!("{id}.vq"))
    } else {
        Err(QuarantineError::NotFound { id: id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A file renamed over the path after it was read (the classic swap) is left in place, and
    /// the entry already written is rolled back.
    #[test]
    fn a_file_swapped_in_before_the_unlink_is_refused_and_rolled_back() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("q")).unwrap();
        let path = tmp.path().join("victim");
        let decoy = tmp.path().join("decoy");
        std::fs::write(&path, b"malware").unwrap();
        std::fs::write(&decoy, b"innocent").unwrap();
        let err = store
            .quarantine_with(&path, None, "f", "T", &|| {
                std::fs::rename(&decoy, &path).unwrap();
            })
            .unwrap_err();
        assert!(matches!(err, QuarantineError::Swapped { .. }), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"innocent",
            "the swapped-in file stays"
        );
        assert_eq!(
            std::fs::read_dir(store.dir()).unwrap().count(),
            0,
            "entry rolled back"
        );

        // A path that vanished is no better than a swapped one.
        std::fs::write(&decoy, b"x").unwrap();
        let err = store
            .quarantine_with(&decoy, None, "f", "T", &|| {
                std::fs::remove_file(&decoy).unwrap()
            })
            .unwrap_err();
        assert!(matches!(err, QuarantineError::Swapped { .. }), "{err}");
        assert_eq!(std::fs::read_dir(store.dir()).unwrap().count(), 0);
    }

    #[test]
    fn times_before_the_epoch_convert() {
        let t = system_time(-1, 500_000_000);
        assert_eq!(
            UNIX_EPOCH.duration_since(t).unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            system_time(i64::MIN, -5),
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(i64::MIN.unsigned_abs()))
                .unwrap_or(UNIX_EPOCH)
        );
    }
}
