//! Activation, in the order that keeps a working database at every instant: load the new
//! database in the engine (verification, compile, cache), prove it on a smoke corpus, and only
//! then put it on disk atomically, with the database it replaces kept as last-known-good.
//! A database that was never loaded is never shipped to the scanner (Channel File 291).

use std::path::{Path, PathBuf};

use thiserror::Error;
use vigil_format::{PublicKey, Verified, VerifiedDb};
use vigil_scan_core::{Engine, EngineError, Limits, ScanError};

use crate::error::UpdateError;
use crate::state::{sync_dir, write_atomic};

pub const ACTIVE: &str = "vigil.vdb";
pub const LAST_KNOWN_GOOD: &str = "vigil.lkg.vdb";

/// EICAR, assembled at run time so this binary is not itself flagged by scanners.
pub fn eicar() -> Vec<u8> {
    let mut s = String::from("X5O!P%@AP[4\\PZX54(P^)7CC)7}$");
    s.push_str("EICAR-STANDARD-ANTIVIRUS-");
    s.push_str("TEST-FILE!$H+H*");
    s.into_bytes()
}

/// Why a verified database is not activated: the engine refused it, or it failed the smoke
/// test. The text is what `state.json` records and the log says.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SmokeError {
    // `cause`, not `source`: the message includes it, and a source would print it twice in
    // an error chain.
    #[error("the engine refused it: {0}")]
    Engine(EngineError),
    #[error("smoke test: scanning EICAR failed: {0}")]
    ScanEicar(ScanError),
    #[error("smoke test: EICAR was not detected")]
    EicarMissed,
    #[error("smoke directory {}: {cause}", dir.display())]
    SmokeDir { dir: PathBuf, cause: std::io::Error },
    #[error("smoke test: scanning {} failed: {cause}", path.display())]
    Scan { path: PathBuf, cause: ScanError },
    #[error("smoke test: {} was not detected", path.display())]
    Missed { path: PathBuf },
}

/// Builds an engine from a database already verified (the proof is the argument, so nothing
/// is verified twice) and requires a detection on EICAR and on every file in `smoke_dir`. The
/// error names what failed.
pub fn load_and_smoke_test(
    db: &Verified<'_>,
    cache_dir: &Path,
    smoke_dir: Option<&Path>,
) -> Result<Engine, SmokeError> {
    let engine = Engine::from_verified(db, Some(cache_dir)).map_err(SmokeError::Engine)?;
    let limits = Limits::default();
    let mut scanner = engine.scanner();
    let r = scanner
        .scan_bytes(&eicar(), &limits)
        .map_err(SmokeError::ScanEicar)?;
    if r.findings.is_empty() {
        return Err(SmokeError::EicarMissed);
    }
    if let Some(dir) = smoke_dir {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|cause| SmokeError::SmokeDir {
                dir: dir.to_path_buf(),
                cause,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            let r = scanner
                .scan_file(&f, &limits)
                .map_err(|cause| SmokeError::Scan {
                    path: f.clone(),
                    cause,
                })?;
            if r.findings.is_empty() {
                return Err(SmokeError::Missed { path: f });
            }
        }
    }
    drop(scanner);
    Ok(engine)
}

/// Puts `bytes` in place as the active database. When the current active database is good
/// (`active_is_good`: it verified), it becomes last-known-good through a hard link first (no
/// copy, no window without an active file); a damaged one never replaces a good fallback.
pub fn install(dir: &Path, bytes: &[u8], active_is_good: bool) -> Result<(), UpdateError> {
    let active = dir.join(ACTIVE);
    let lkg = dir.join(LAST_KNOWN_GOOD);
    if active_is_good && active.exists() {
        let tmp = dir.join(".vigil-lkg-link");
        let _ = std::fs::remove_file(&tmp);
        std::fs::hard_link(&active, &tmp)
            .and_then(|()| std::fs::rename(&tmp, &lkg))
            .map_err(|e| UpdateError::io("keeping the last-known-good database as", &lkg, e))?;
    }
    write_atomic(&active, bytes, 0o644)?;
    sync_dir(dir)
}

/// An installed database that verified against the trusted keys when it was read: the active
/// one or, when that one does not verify, the last-known-good one. It holds the proof, so the
/// engine is built from it without a second verification.
#[derive(Debug)]
pub struct InstalledDb {
    /// `vigil.vdb` or `vigil.lkg.vdb` in the database directory.
    pub path: PathBuf,
    /// The file's bytes with the proof that they verified.
    pub db: VerifiedDb,
}

impl InstalledDb {
    /// Whether this is the active database (not the last-known-good fallback).
    pub fn is_active(&self) -> bool {
        self.path.ends_with(ACTIVE)
    }

    /// The database version its verified header states.
    pub fn version(&self) -> u64 {
        self.db.header().db_version
    }

    pub fn bytes(&self) -> &[u8] {
        self.db.bytes()
    }
}

/// The database to start with: the active one if it verifies, else the last-known-good one.
pub fn load_installed(dir: &Path, keys: &[PublicKey]) -> Option<InstalledDb> {
    for name in [ACTIVE, LAST_KNOWN_GOOD] {
        let p = dir.join(name);
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        match VerifiedDb::verify(bytes, keys) {
            Ok(db) => return Some(InstalledDb { path: p, db }),
            Err(e) => {
                tracing::warn!(path = %p.display(), error = %e, "installed database does not verify")
            }
        }
    }
    None
}
