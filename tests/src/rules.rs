//! Databases built from rule directories with one fixed test key, for the tests of the agent
//! and the programs that need a real database (the repository's own `rules-src/`, or a
//! directory a test writes).

use std::path::{Path, PathBuf};

use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::SecretKey;

/// The repository's top folder (where `rules-src/` and `samples/` are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The key [`db_from`] signs with; the engine under test must trust its public half.
pub fn test_key() -> SecretKey {
    SecretKey::from_seed([41; 32])
}

/// Lints and builds the rules in `dir` into a database of `version`, signed with [`test_key`].
pub fn db_from(dir: &Path, version: u64) -> Vec<u8> {
    let files = sources::collect(&[dir.to_path_buf()]).expect("collect rule files");
    build(&files, &test_key(), &BuildOptions::new(version))
        .expect("build the database")
        .bytes
}

/// `rules-src/` as database version 3.
pub fn starter_db() -> Vec<u8> {
    db_from(&repo_root().join("rules-src"), 3)
}
