//! File helpers shared by the subcommands: atomic writes and key loading.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use vigil_format::{PublicKey, SecretKey};

/// Writes `bytes` to a temporary file next to `path`, syncs it and renames it into place, so a
/// reader never sees a half-written file and a failure leaves no output at all.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

pub fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// `--key FILE` or `--key env:VAR` (for CI secrets, which should never touch the disk).
pub fn load_secret(spec: &str) -> anyhow::Result<SecretKey> {
    let (text, origin) = match spec.strip_prefix("env:") {
        Some(var) => match std::env::var(var) {
            Ok(v) => (v, format!("environment variable {var}")),
            Err(_) => bail!("environment variable {var} is not set (from --key {spec})"),
        },
        None => (
            fs::read_to_string(spec).with_context(|| format!("reading key {spec}"))?,
            spec.to_string(),
        ),
    };
    SecretKey::parse(&text).with_context(|| format!("key from {origin}"))
}

pub fn load_public(path: &Path) -> anyhow::Result<PublicKey> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    PublicKey::parse(&text).with_context(|| format!("public key {}", path.display()))
}
