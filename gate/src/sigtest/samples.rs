//! The samples the tests name: resolved once each, however many tests name them, and read
//! when they are scanned.
//!
//! A sample path is relative to its test file's directory and must resolve (symlinks
//! followed) to a regular file inside the rules directory: the tests travel with the rules
//! they test, and a test file from a pull request cannot make the gate read files elsewhere on
//! the machine that runs it.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use vigil_compiler::RuleKind;

/// Where a sample's bytes come from.
#[derive(Clone, Debug)]
pub enum Origin {
    /// Canonical path.
    File(PathBuf),
    Inline(Vec<u8>),
}

#[derive(Clone, Debug)]
pub struct Sample {
    /// How reports name it: the path under the rules directory as the user named that
    /// directory, or `inline "NAME"`.
    pub label: String,
    pub origin: Origin,
}

impl Sample {
    pub fn read(&self) -> io::Result<Vec<u8>> {
        match &self.origin {
            Origin::File(p) => fs::read(p),
            Origin::Inline(b) => Ok(b.clone()),
        }
    }
}

/// The rules directory: canonical, for the containment check, and as the user named it, for
/// labels.
pub struct Root {
    canonical: PathBuf,
    shown: PathBuf,
}

impl Root {
    pub fn new(dir: &Path) -> io::Result<Self> {
        Ok(Self {
            canonical: fs::canonicalize(dir)?,
            shown: dir.to_path_buf(),
        })
    }
}

/// Every distinct sample, in the order tests first name them.
#[derive(Default)]
pub struct Samples {
    list: Vec<Sample>,
    files: HashMap<PathBuf, usize>,
    inline: HashMap<(String, Vec<u8>), usize>,
}

impl Samples {
    /// The index of the file at `rel` (relative to `test_dir`), or why it cannot be a sample.
    pub fn file(&mut self, root: &Root, test_dir: &Path, rel: &str) -> Result<usize, String> {
        let path = Path::new(rel);
        if path.has_root() || path.is_absolute() {
            return Err(format!(
                "sample path {rel:?} is absolute: write it relative to the test file's directory"
            ));
        }
        let joined = test_dir.join(path);
        let canonical = fs::canonicalize(&joined).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!("sample {} not found", joined.display()),
            _ => format!("sample {}: {e}", joined.display()),
        })?;
        if let Some(&i) = self.files.get(&canonical) {
            return Ok(i);
        }
        let inside = canonical.strip_prefix(&root.canonical).map_err(|_| {
            format!(
                "sample {} is outside the rules directory {}: samples live with the rules they test",
                joined.display(),
                root.shown.display()
            )
        })?;
        let meta =
            fs::metadata(&canonical).map_err(|e| format!("sample {}: {e}", joined.display()))?;
        if !meta.is_file() {
            return Err(format!("sample {} is not a regular file", joined.display()));
        }
        if RuleKind::from_path(&canonical).is_some() {
            return Err(format!(
                "sample {} has a rule-file extension, so lint and build would read it as rules: rename it",
                joined.display()
            ));
        }
        let i = self.list.len();
        self.list.push(Sample {
            label: root.shown.join(inside).display().to_string(),
            origin: Origin::File(canonical.clone()),
        });
        self.files.insert(canonical, i);
        Ok(i)
    }

    /// The index of an inline sample; the same name and bytes named twice are one sample.
    pub fn inline(&mut self, name: &str, bytes: &[u8]) -> usize {
        let key = (name.to_string(), bytes.to_vec());
        if let Some(&i) = self.inline.get(&key) {
            return i;
        }
        let i = self.list.len();
        self.list.push(Sample {
            label: format!("inline {name:?}"),
            origin: Origin::Inline(key.1.clone()),
        });
        self.inline.insert(key, i);
        i
    }

    pub fn get(&self, i: usize) -> Option<&Sample> {
        self.list.get(i)
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_rules() {
        let t = tempfile::tempdir().expect("tempdir");
        let rules = t.path().join("rules");
        fs::create_dir_all(rules.join("yara")).expect("mkdir");
        fs::create_dir_all(rules.join("samples")).expect("mkdir");
        fs::write(rules.join("samples/a.txt"), "a").expect("write");
        fs::write(rules.join("samples/b.ndb"), "x").expect("write");
        fs::write(t.path().join("outside.txt"), "o").expect("write");
        let root = Root::new(&rules).expect("root");
        let mut s = Samples::default();
        let yara = rules.join("yara");

        let a = s.file(&root, &yara, "../samples/a.txt").expect("a");
        // The same file by another spelling is the same sample.
        assert_eq!(s.file(&root, &rules, "samples/./a.txt"), Ok(a));
        assert_eq!(s.len(), 1);
        assert_eq!(
            s.get(a).expect("a").label,
            rules.join("samples/a.txt").display().to_string()
        );
        assert_eq!(s.get(a).expect("a").read().expect("read"), b"a");

        let err = |r: Result<usize, String>| r.expect_err("refused");
        assert!(err(s.file(&root, &yara, "../samples/missing.txt")).contains("not found"));
        assert!(err(s.file(&root, &yara, "/etc/passwd")).contains("absolute"));
        assert!(err(s.file(&root, &yara, "../../outside.txt")).contains("outside the rules"));
        assert!(err(s.file(&root, &yara, "../samples")).contains("not a regular file"));
        assert!(err(s.file(&root, &yara, "../samples/b.ndb")).contains("rule-file extension"));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(t.path().join("outside.txt"), rules.join("samples/l"))
                .expect("symlink");
            assert!(err(s.file(&root, &yara, "../samples/l")).contains("outside the rules"));
        }

        let x = s.inline("x", b"1");
        assert_eq!(s.inline("x", b"1"), x);
        assert_ne!(s.inline("x", b"2"), x);
        assert_eq!(s.get(x).expect("x").label, "inline \"x\"");
    }
}
