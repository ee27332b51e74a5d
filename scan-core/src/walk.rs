//! The file walk under every scan: `vigil-scan`, the scan service and the agent's scheduled
//! scans all reach it through [`crate::pool`].
//!
//! It hands out regular files one at a time, in a stable order (children sorted), and reports
//! what it cannot scan instead of stopping, as a typed [`ScanError`]: a broken or looping
//! symlink, an unreadable directory or a vanished file is [`ScanError::Io`]; a FIFO, socket or
//! device is [`ScanError::NotRegular`], which [`ScanError::is_skip`] counts as skipped.
//! Symlinked directories are followed only when named at the top, never below it, so a link
//! cannot send the walk round in a loop or out of the tree; symlinked files are scanned (the
//! opened descriptor is checked again, [`crate::input`]). Excluded prefixes are skipped
//! silently, as clamd's `ExcludePath` does. The caller can stop the walk at any item (a client
//! hung up, SIGTERM).
//!
//! Why not the `ignore` crate's parallel walker: the scan, not the listing, is where the time
//! goes (the pool overlaps the two), the order here is deterministic, and `ignore`'s threads
//! are its own, while the scan service must walk on a thread that holds its client's rights.

use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::error::ScanError;

/// One thing the walk found.
#[derive(Debug)]
pub enum Item {
    /// A regular file (or a symlink to one) to scan.
    File(PathBuf),
    /// A path that cannot be scanned, and why: [`ScanError::NotRegular`] (a skip) or
    /// [`ScanError::Io`] (an error).
    Unscannable(PathBuf, ScanError),
}

/// Walks `path`, calling `emit` for every file and every problem; a `Break` from `emit` stops
/// the walk and is returned. A directory named as `path` is always listed; its subdirectories
/// only when `recursive`. Paths equal to or below an entry of `exclude` (compared component by
/// component, so `/proc` excludes `/proc/1` but not `/procfs`) are neither emitted nor entered.
pub fn walk(
    path: &Path,
    recursive: bool,
    exclude: &[PathBuf],
    emit: &mut dyn FnMut(Item) -> ControlFlow<()>,
) -> ControlFlow<()> {
    walk_at(path, recursive, true, exclude, emit)
}

fn walk_at(
    path: &Path,
    recursive: bool,
    top: bool,
    exclude: &[PathBuf],
    emit: &mut dyn FnMut(Item) -> ControlFlow<()>,
) -> ControlFlow<()> {
    if exclude.iter().any(|e| path.starts_with(e)) {
        return ControlFlow::Continue(());
    }
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return emit(Item::Unscannable(path.to_path_buf(), ScanError::Io(e))),
    };
    if meta.is_dir() {
        if !top && !recursive {
            return ControlFlow::Continue(());
        }
        if !top && fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return ControlFlow::Continue(());
        }
        let entries = match fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => return emit(Item::Unscannable(path.to_path_buf(), ScanError::Io(e))),
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for c in children {
            walk_at(&c, recursive, false, exclude, emit)?;
        }
        ControlFlow::Continue(())
    } else if meta.is_file() {
        emit(Item::File(path.to_path_buf()))
    } else {
        emit(Item::Unscannable(path.to_path_buf(), ScanError::NotRegular))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(path: &Path, recursive: bool, exclude: &[PathBuf]) -> Vec<Item> {
        let mut out = Vec::new();
        let _ = walk(path, recursive, exclude, &mut |i| {
            out.push(i);
            ControlFlow::Continue(())
        });
        out
    }

    #[test]
    fn order_recursion_links_exclusion_and_stop() {
        let t = tempfile::tempdir().expect("tempdir");
        let d = t.path();
        fs::create_dir_all(d.join("b/deep")).expect("mkdir");
        fs::create_dir_all(d.join("skip/inner")).expect("mkdir");
        fs::create_dir_all(d.join("skipped")).expect("mkdir");
        for f in [
            "c",
            "a",
            "b/x",
            "b/deep/y",
            "skip/z",
            "skip/inner/w",
            "skipped/v",
        ] {
            fs::write(d.join(f), f).expect("write");
        }
        std::os::unix::fs::symlink(d, d.join("b/up")).expect("symlink");
        std::os::unix::fs::symlink("nowhere", d.join("dangling")).expect("symlink");

        let files = |items: &[Item]| -> Vec<String> {
            items
                .iter()
                .filter_map(|i| match i {
                    Item::File(p) => {
                        Some(p.strip_prefix(d).expect("under root").display().to_string())
                    }
                    Item::Unscannable(..) => None,
                })
                .collect()
        };
        let all = collect(d, true, &[]);
        assert_eq!(
            files(&all),
            [
                "a",
                "b/deep/y",
                "b/x",
                "c",
                "skip/inner/w",
                "skip/z",
                "skipped/v"
            ]
        );
        let problems: Vec<&Item> = all
            .iter()
            .filter(|i| matches!(i, Item::Unscannable(..)))
            .collect();
        assert!(
            matches!(problems[..], [Item::Unscannable(p, ScanError::Io(_))] if p.ends_with("dangling")),
            "{all:?}"
        );
        assert_eq!(files(&collect(d, false, &[])), ["a", "c"]);
        // Component-wise prefixes: `skip` does not exclude `skipped`.
        let ex = collect(d, true, &[d.join("skip"), d.join("b/deep")]);
        assert_eq!(files(&ex), ["a", "b/x", "c", "skipped/v"]);
        assert!(collect(d, true, &[d.to_path_buf()]).is_empty());
        // A symlinked directory named at the top is followed.
        assert_eq!(
            files(&collect(&d.join("b/up"), false, &[])),
            ["b/up/a", "b/up/c"]
        );

        let mut seen = 0;
        let flow = walk(d, true, &[], &mut |_| {
            seen += 1;
            if seen == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!((flow, seen), (ControlFlow::Break(()), 3));
    }

    #[test]
    fn special_files_are_skips_not_errors() {
        let t = tempfile::tempdir().expect("tempdir");
        let fifo = t.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        let items = collect(t.path(), false, &[]);
        match &items[..] {
            [Item::Unscannable(p, e)] => {
                assert_eq!(p, &fifo);
                assert!(matches!(e, ScanError::NotRegular) && e.is_skip(), "{e:?}");
            }
            other => panic!("{other:?}"),
        }
    }
}
