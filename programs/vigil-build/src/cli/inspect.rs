//! verify and info.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;
use vigil_format::container::{verify as verify_db, Parsed};

use super::files::{load_public, read};
use super::EXIT_OK;

pub fn verify(pubkeys: &[PathBuf], db: &Path) -> anyhow::Result<u8> {
    let keys = pubkeys
        .iter()
        .map(|p| load_public(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bytes = read(db)?;
    let v = verify_db(&bytes, &keys).with_context(|| format!("{}", db.display()))?;
    println!(
        "{}: OK (version {}, {} sections, key id {})",
        db.display(),
        v.header().db_version,
        v.entries().len(),
        hex::encode(v.header().key_id)
    );
    Ok(EXIT_OK)
}

pub fn info(db: &Path, as_json: bool) -> anyhow::Result<u8> {
    let bytes = read(db)?;
    let p = Parsed::parse(&bytes).with_context(|| format!("{}", db.display()))?;
    p.check_hashes()
        .with_context(|| format!("{}", db.display()))?;
    let h = &p.header;
    let sections: Vec<_> = p
        .entries
        .iter()
        .map(|e| {
            json!({
                "kind": e.kind.name(),
                "records": e.record_count,
                "stored_bytes": e.stored_len,
                "raw_bytes": e.raw_len,
                "zstd_level": e.level,
                "sha256": hex::encode(e.sha256),
            })
        })
        .collect();
    if as_json {
        let out = json!({
            "path": db.display().to_string(),
            "format_version": h.format_version,
            "db_version": h.db_version,
            "min_engine_version": h.min_engine_version,
            "build_time": h.build_time,
            "key_id": hex::encode(h.key_id),
            "size": bytes.len(),
            "sections": sections,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(EXIT_OK);
    }
    println!("database        {}", db.display());
    println!("version         {}", h.db_version);
    println!(
        "format          {} (needs engine >= {})",
        h.format_version, h.min_engine_version
    );
    println!("build time      {} (SOURCE_DATE_EPOCH)", h.build_time);
    println!(
        "key id          {} (signature not checked: use verify)",
        hex::encode(h.key_id)
    );
    println!("size            {} bytes", bytes.len());
    println!(
        "{:<8} {:>9} {:>12} {:>12}",
        "section", "records", "stored", "raw"
    );
    for e in &p.entries {
        println!(
            "{:<8} {:>9} {:>12} {:>12}",
            e.kind.name(),
            e.record_count,
            e.stored_len,
            e.raw_len
        );
    }
    Ok(EXIT_OK)
}
