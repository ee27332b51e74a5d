//! A repository in a local directory: the layout an offline mirror or any static web server
//! serves as is.
//!
//! Writes go to a hidden temporary file in the same directory, are fsynced, then appear under
//! their final name in one step: `link` for create-only writes (it fails atomically if the name
//! exists) and `rename` otherwise. Readers therefore never see a partial file. Compare-and-swap
//! writes are atomic only between holders of the publish lock, which every publisher takes.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    check_key, etag_of, reader_stream, ObjectMeta, ObjectStream, PublishGuard, PutCondition,
    PutOutcome, Storage, StorageError,
};

/// The lock file publishers hold; hidden, so it is never served.
pub const LOCK_FILE: &str = ".vigil-publish.lock";

#[derive(Clone, Debug)]
pub struct DirStorage {
    root: PathBuf,
}

impl DirStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io_err<'a>(what: &'static str, key: &'a str) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        what,
        key: key.to_owned(),
        source,
    }
}

/// Content-addressed names carry their SHA-256, which is also their ETag; other files (the
/// metadata, all small) are hashed.
fn etag_for(key: &str, path: &Path) -> io::Result<String> {
    if let Some(hash) = content_hash(key) {
        return Ok(format!("\"{hash}\""));
    }
    Ok(etag_of(&fs::read(path)?))
}

/// The SHA-256 a `targets/<sha256>.<name>` key is named after.
pub(crate) fn content_hash(key: &str) -> Option<&str> {
    let name = key.rsplit('/').next()?;
    let (hash, _) = name.split_once('.')?;
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hash)
}

fn meta_of(key: &str, path: &Path, md: &fs::Metadata) -> io::Result<ObjectMeta> {
    Ok(ObjectMeta {
        len: md.len(),
        etag: etag_for(key, path)?,
        last_modified: md.modified().ok(),
    })
}

fn not_found_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StorageError::Io {
            what: "background task",
            key: String::new(),
            source: io::Error::other(e.to_string()),
        })
    })
}

fn write_temp(dir: &Path, data: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    // tempfile creates 0600; a repository is public and is often served by another user
    // (nginx's www-data, a mirror's web server).
    #[cfg(unix)]
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

struct DirGuard(#[allow(dead_code)] File);
impl PublishGuard for DirGuard {}

#[async_trait]
impl Storage for DirStorage {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        let path = self.path(key)?;
        let key = key.to_owned();
        blocking(move || {
            let md = match not_found_is_none(fs::metadata(&path)).map_err(io_err("stat", &key))? {
                Some(md) if md.is_file() => md,
                _ => return Ok(None),
            };
            not_found_is_none(meta_of(&key, &path, &md)).map_err(io_err("read", &key))
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<(Bytes, ObjectMeta)>, StorageError> {
        let path = self.path(key)?;
        let key = key.to_owned();
        blocking(move || {
            let read = || -> io::Result<Option<(Bytes, ObjectMeta)>> {
                let Some(mut f) = not_found_is_none(File::open(&path))? else {
                    return Ok(None);
                };
                let md = f.metadata()?;
                if !md.is_file() {
                    return Ok(None);
                }
                let mut buf = Vec::with_capacity(md.len() as usize);
                f.read_to_end(&mut buf)?;
                let etag = match content_hash(&key) {
                    Some(h) => format!("\"{h}\""),
                    None => etag_of(&buf),
                };
                let meta = ObjectMeta {
                    len: buf.len() as u64,
                    etag,
                    last_modified: md.modified().ok(),
                };
                Ok(Some((Bytes::from(buf), meta)))
            };
            read().map_err(io_err("read", &key))
        })
        .await
    }

    async fn get_stream(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<ObjectStream>, StorageError> {
        let path = self.path(key)?;
        let key_owned = key.to_owned();
        let opened = blocking(move || {
            let open = || -> io::Result<Option<(File, ObjectMeta)>> {
                let Some(f) = not_found_is_none(File::open(&path))? else {
                    return Ok(None);
                };
                let md = f.metadata()?;
                if !md.is_file() {
                    return Ok(None);
                }
                let meta = meta_of(&key_owned, &path, &md)?;
                Ok(Some((f, meta)))
            };
            open().map_err(io_err("open", &key_owned))
        })
        .await?;
        let Some((mut file, meta)) = opened else {
            return Ok(None);
        };
        let (start, end) = range.unwrap_or((0, meta.len.saturating_sub(1)));
        if meta.len > 0 && (start > end || end >= meta.len) {
            return Err(StorageError::BadRange {
                key: key.to_owned(),
                start,
                end,
                len: meta.len,
            });
        }
        file.seek(SeekFrom::Start(start))
            .map_err(io_err("seek", key))?;
        let want = if meta.len == 0 { 0 } else { end - start + 1 };
        let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), want);
        Ok(Some(ObjectStream {
            meta,
            body: reader_stream(reader, "read", key.to_owned()),
        }))
    }

    async fn put(
        &self,
        key: &str,
        data: Bytes,
        cond: PutCondition,
    ) -> Result<PutOutcome, StorageError> {
        let path = self.path(key)?;
        let key = key.to_owned();
        blocking(move || {
            let dir = path.parent().unwrap_or(Path::new("."));
            let tmp = write_temp(dir, &data).map_err(io_err("write", &key))?;
            match cond {
                PutCondition::Always => {}
                PutCondition::IfAbsent => {
                    // link(2) refuses an existing name atomically, unlike check-then-rename.
                    match fs::hard_link(tmp.path(), &path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                            return Ok(PutOutcome::PreconditionFailed)
                        }
                        Err(e) => return Err(io_err("link", &key)(e)),
                    }
                    sync_dir(dir).map_err(io_err("sync", &key))?;
                    return Ok(PutOutcome::Written {
                        etag: match content_hash(&key) {
                            Some(h) => format!("\"{h}\""),
                            None => etag_of(&data),
                        },
                    });
                }
                PutCondition::IfMatch(ref want) => {
                    let current =
                        not_found_is_none(etag_for(&key, &path)).map_err(io_err("read", &key))?;
                    if current.as_deref() != Some(want.as_str()) {
                        return Ok(PutOutcome::PreconditionFailed);
                    }
                }
            }
            tmp.persist(&path)
                .map_err(|e| io_err("rename", &key)(e.error))?;
            sync_dir(dir).map_err(io_err("sync", &key))?;
            Ok(PutOutcome::Written {
                etag: match content_hash(&key) {
                    Some(h) => format!("\"{h}\""),
                    None => etag_of(&data),
                },
            })
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, ObjectMeta)>, StorageError> {
        let trimmed = prefix.trim_end_matches('/');
        let dir = self.path(trimmed)?;
        let prefix = format!("{trimmed}/");
        blocking(move || {
            let mut out = Vec::new();
            let entries =
                match not_found_is_none(fs::read_dir(&dir)).map_err(io_err("list", &prefix))? {
                    Some(e) => e,
                    None => return Ok(out),
                };
            for entry in entries {
                let entry = entry.map_err(io_err("list", &prefix))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let key = format!("{prefix}{name}");
                if check_key(&key).is_err() {
                    continue; // temporary and lock files
                }
                let md = entry.metadata().map_err(io_err("stat", &key))?;
                if !md.is_file() {
                    continue;
                }
                // Listing is for garbage collection: the ETag is not needed, so skip hashing.
                out.push((
                    key,
                    ObjectMeta {
                        len: md.len(),
                        etag: String::new(),
                        last_modified: md.modified().ok(),
                    },
                ));
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        let key = key.to_owned();
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("delete", &key)(e)),
        })
        .await
    }

    async fn publish_guard(&self) -> Result<Box<dyn PublishGuard>, StorageError> {
        let root = self.root.clone();
        blocking(move || {
            fs::create_dir_all(&root).map_err(io_err("create", LOCK_FILE))?;
            let f = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(root.join(LOCK_FILE))
                .map_err(io_err("open", LOCK_FILE))?;
            // Blocks until another publisher finishes; the kernel drops it if we die.
            f.lock().map_err(io_err("lock", LOCK_FILE))?;
            Ok(Box::new(DirGuard(f)) as Box<dyn PublishGuard>)
        })
        .await
    }
}
