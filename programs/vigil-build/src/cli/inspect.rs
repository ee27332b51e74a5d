//! verify and info (of a file, or of a repository's live release with its target metadata).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args as ClapArgs;
use serde_json::json;
use vigil_format::container::{verify as verify_db, Parsed};
use vigil_repository::live::LiveDatabase;

use super::files::{load_public, read};
use super::live::LiveArgs;
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

#[derive(ClapArgs, Clone, Debug)]
pub struct InfoArgs {
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub live: LiveArgs,
    /// A database file; or --repo/--url (with --root) for a repository's live release.
    #[arg(
        required_unless_present_any = ["repo", "url"],
        conflicts_with_all = ["repo", "url"]
    )]
    pub db: Option<PathBuf>,
}

pub fn info(args: InfoArgs) -> anyhow::Result<u8> {
    match (&args.db, args.live.location()) {
        (Some(db), _) => show(&db.display().to_string(), &read(db)?, None, args.json),
        (None, Some(location)) => {
            let live = args
                .live
                .fetch()?
                .with_context(|| format!("{location} has no database yet"))?;
            show(&live.name, &live.bytes, Some((location, &live)), args.json)
        }
        (None, None) => anyhow::bail!("give a database file, or --repo or --url"),
    }
}

/// Text from a repository's metadata, safe for a terminal.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn show(
    label: &str,
    bytes: &[u8],
    live: Option<(&str, &LiveDatabase)>,
    as_json: bool,
) -> anyhow::Result<u8> {
    let p = Parsed::parse(bytes).with_context(|| label.to_string())?;
    p.check_hashes().with_context(|| label.to_string())?;
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
        let target = live.map(|(location, l)| {
            json!({
                "repository": location,
                "name": l.name,
                "sha256": l.sha256,
                "gate_override": l.info.gate_override(),
                "custom": l.info.to_custom(),
            })
        });
        let out = json!({
            "path": label,
            "format_version": h.format_version,
            "db_version": h.db_version,
            "min_engine_version": h.min_engine_version,
            "build_time": h.build_time,
            "key_id": hex::encode(h.key_id),
            "size": bytes.len(),
            "sections": sections,
            "target": target,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(EXIT_OK);
    }
    if let Some((location, l)) = live {
        println!("repository      {}", clean(location));
        println!("live target     {} (sha256 {})", clean(&l.name), l.sha256);
        println!(
            "gate override   {}",
            l.info
                .gate_override()
                .map_or("none (published through the gate)".to_string(), clean)
        );
    }
    println!("database        {}", clean(label));
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
