//! File helpers shared by the subcommands: atomic writes and key loading.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use vigil_format::{PublicKey, SecretKey};

/// Writes `bytes` to a temporary file next to `path`, syncs it and renames it into place, so a
/// reader never sees a half-written file and a failure leaves no output at all.
///
/// The temporary file has a random name and is created with `O_CREAT|O_EXCL` (tempfile), so a
/// symlink planted in a shared output directory is never followed: a predictable name opened
/// with `File::create` would let another user make us overwrite a file of their choosing.
/// Outputs are world-readable (0644), as a database or public key is meant to be served.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let result = (|| {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".tmp")
            .permissions(fs::Permissions::from_mode(0o644))
            .tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok::<(), std::io::Error>(())
    })();
    result.with_context(|| format!("writing {}", path.display()))
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
