use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Context};
use vigil_format::SecretKey;

use super::EXIT_OK;

pub fn run(dir: &Path, name: &str, force: bool) -> anyhow::Result<u8> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let secret_path = dir.join(format!("{name}.key"));
    let public_path = dir.join(format!("{name}.pub"));
    for p in [&secret_path, &public_path] {
        if p.exists() && !force {
            bail!("{} exists; pass --force to replace it", p.display());
        }
    }
    let key = SecretKey::generate()?;
    if force {
        let _ = fs::remove_file(&secret_path);
    }
    // Created with 0600 from the start: there is no moment when the key is world-readable.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_path)
        .with_context(|| format!("creating {}", secret_path.display()))?;
    f.write_all(key.to_text().as_bytes())?;
    f.sync_all()?;
    super::files::write_atomic(&public_path, key.public().to_text().as_bytes())?;
    println!(
        "private key: {} (mode 0600, never commit it)",
        secret_path.display()
    );
    println!("public key:  {}", public_path.display());
    println!("key id:      {}", hex::encode(key.public().key_id()));
    Ok(EXIT_OK)
}
