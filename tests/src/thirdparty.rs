//! Importing third-party YARA rule sets: keep every file that vigil's lint accepts, alone and
//! together with the others (a later file redefining a rule is dropped), and say why each
//! dropped file was dropped. Used by the benchmarks and by tests over public rule sets.

use std::fs;
use std::path::{Path, PathBuf};

use vigil_compiler::{check_yara_sources_with, LintOptions};

/// (relative path, text) of kept files, and (relative path, reason) of dropped ones.
pub struct Imported {
    pub kept: Vec<(String, String)>,
    pub dropped: Vec<(String, String)>,
}

pub fn import_yara_dir(dir: &Path) -> Imported {
    import_yara_dir_with(dir, &LintOptions::default())
}

/// [`import_yara_dir`] judging files with other lint options: with `slow_as_warnings`, slow
/// rules are kept (what `vigil-build check` is there to measure; `build` would refuse them).
pub fn import_yara_dir_with(dir: &Path, opts: &LintOptions) -> Imported {
    let mut paths = Vec::new();
    find(dir, &mut paths);
    paths.sort();
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for p in &paths {
        let rel = p.strip_prefix(dir).unwrap_or(p).display().to_string();
        let Ok(text) = fs::read_to_string(p) else {
            dropped.push((rel, "not UTF-8".into()));
            continue;
        };
        if let Err(e) = check_yara_sources_with([(rel.as_str(), text.as_str())], opts) {
            dropped.push((rel, e.reason));
            continue;
        }
        kept.push((rel, text));
    }
    // Each file compiles alone; now together, dropping the first that clashes until none does.
    while let Err(e) =
        check_yara_sources_with(kept.iter().map(|(r, t)| (r.as_str(), t.as_str())), opts)
    {
        let (rel, _) = kept.remove(e.index);
        dropped.push((rel, "conflicts with an earlier file".into()));
    }
    Imported { kept, dropped }
}

fn find(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            find(&p, out);
        } else if p.extension().is_some_and(|x| x == "yar" || x == "yara") {
            out.push(p);
        }
    }
}

/// Writes kept files under `dir`, ready for `vigil_compiler::sources::collect` and `build`.
pub fn write_tree(dir: &Path, files: &[(String, String)]) -> std::io::Result<()> {
    for (rel, text) in files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(p, text)?;
    }
    Ok(())
}
