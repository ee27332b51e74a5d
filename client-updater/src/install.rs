//! Activation, in the order that keeps a working database at every instant: load the new
//! database in the engine (verification, compile, cache), prove it on a smoke corpus, and only
//! then put it on disk atomically, with the database it replaces kept as last-known-good.
//! A database that was never loaded is never shipped to the scanner (Channel File 291).

use std::path::{Path, PathBuf};

use vigil_format::PublicKey;
use vigil_scan_core::{Engine, Limits};

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

/// Loads `bytes` into a new engine and requires a detection on EICAR and on every file in
/// `smoke_dir`. The error text names what failed.
pub fn load_and_smoke_test(
    bytes: &[u8],
    keys: &[PublicKey],
    cache_dir: &Path,
    smoke_dir: Option<&Path>,
) -> Result<Engine, String> {
    let engine = Engine::load_with_cache(bytes, keys, Some(cache_dir))
        .map_err(|e| format!("the engine refused it: {e}"))?;
    let limits = Limits::default();
    let mut scanner = engine.scanner();
    let r = scanner
        .scan_bytes(&eicar(), &limits)
        .map_err(|e| format!("smoke test: scanning EICAR failed: {e}"))?;
    if r.findings.is_empty() {
        return Err("smoke test: EICAR was not detected".into());
    }
    if let Some(dir) = smoke_dir {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("smoke directory {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            let r = scanner
                .scan_file(&f, &limits)
                .map_err(|e| format!("smoke test: scanning {} failed: {e}", f.display()))?;
            if r.findings.is_empty() {
                return Err(format!("smoke test: {} was not detected", f.display()));
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

/// The database to start with: the active one if it verifies, else the last-known-good one.
pub fn load_installed(dir: &Path, keys: &[PublicKey]) -> Option<(PathBuf, Vec<u8>, u64)> {
    for name in [ACTIVE, LAST_KNOWN_GOOD] {
        let p = dir.join(name);
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        match vigil_format::container::verify(&bytes, keys) {
            Ok(v) => {
                let version = v.header().db_version;
                return Some((p, bytes, version));
            }
            Err(e) => {
                tracing::warn!(path = %p.display(), error = %e, "installed database does not verify")
            }
        }
    }
    None
}
