use std::path::Path;

use anyhow::Context;
use vigil_format::delta::Delta;

use super::files::{read, write_atomic};
use super::EXIT_OK;

pub fn make(old: &Path, new: &Path, out: &Path) -> anyhow::Result<u8> {
    let (o, n) = (read(old)?, read(new)?);
    let d = Delta::create(&o, &n)
        .with_context(|| format!("delta {} -> {}", old.display(), new.display()))?;
    write_atomic(out, &d)?;
    eprintln!(
        "delta {} ({} bytes; new database is {} bytes)",
        out.display(),
        d.len(),
        n.len()
    );
    Ok(EXIT_OK)
}

pub fn apply(old: &Path, delta: &Path, out: &Path) -> anyhow::Result<u8> {
    let (o, d) = (read(old)?, read(delta)?);
    let n = Delta::apply(&o, &d)
        .with_context(|| format!("applying {} to {}", delta.display(), old.display()))?;
    write_atomic(out, &n)?;
    eprintln!("wrote {} ({} bytes, hash checked)", out.display(), n.len());
    Ok(EXIT_OK)
}
