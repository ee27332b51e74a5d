//! `vigil-build diff`: what a candidate database changes against an older one or against the
//! live release of a repository. Information only: it exits 0 whatever changed.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args as ClapArgs, ValueEnum};
use vigil_gate::diff::{diff, render, DiffFormat, Side};
use vigil_repository::live;
use vigil_repository::storage::Storage;

use super::files::{load_public, read};
use super::live::LiveArgs;
use super::EXIT_OK;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Human,
    /// Stable, for tools (`"schema": "vigil-diff/1"`).
    Json,
    /// For a pull-request comment or $GITHUB_STEP_SUMMARY.
    Markdown,
}

impl From<Format> for DiffFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Human => DiffFormat::Human,
            Format::Json => DiffFormat::Json,
            Format::Markdown => DiffFormat::Markdown,
        }
    }
}

#[derive(ClapArgs, Clone, Debug)]
pub struct DiffArgs {
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Trusted database public key (repeatable): both databases' signatures must verify.
    /// Without it only their structure and section hashes are checked, as `info` does.
    #[arg(long)]
    pub pubkey: Vec<PathBuf>,
    #[command(flatten)]
    pub live: LiveArgs,
    /// OLD NEW (database files), or NEW alone with --repo or --url.
    #[arg(required = true, num_args = 1..=2, value_name = "DB")]
    pub dbs: Vec<PathBuf>,
}

pub fn run(args: DiffArgs) -> anyhow::Result<u8> {
    let keys = args
        .pubkey
        .iter()
        .map(|p| load_public(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let file = |p: &PathBuf| -> anyhow::Result<Side> {
        Ok(Side::read(p.display().to_string(), &read(p)?, &keys, None)?)
    };
    let (old, new) = match (args.live.location(), args.dbs.as_slice()) {
        (None, [old, new]) => (Some(file(old)?), new),
        (Some(location), [new]) => {
            let old = match args.live.fetch()? {
                Some(l) => Some(super::live::side(&l, location, &keys)?),
                None => None,
            };
            (old, new)
        }
        (None, _) => anyhow::bail!("give OLD and NEW database files, or NEW with --repo or --url"),
        (Some(_), _) => anyhow::bail!("with --repo or --url, give only the NEW database"),
    };
    let new = file(new)?;
    print!("{}", render(&diff(old.as_ref(), &new), args.format.into()));
    Ok(EXIT_OK)
}

/// What `publish` prints before it commits: the human diff of `db` against the live release,
/// on stderr. Never fatal: a diff that cannot be made is a warning, and publishing goes on.
pub async fn print_before_publish(
    storage: Arc<dyn Storage>,
    trusted_root: &[u8],
    label: &str,
    db: &[u8],
) {
    let location = storage.location();
    // Expired metadata is fine: the publish is about to renew it.
    let text = match live::from_storage(storage, trusted_root, true).await {
        Ok(live) => (|| -> anyhow::Result<String> {
            let old = match &live {
                Some(l) => Some(super::live::side(l, &location, &[])?),
                None => None,
            };
            let new = Side::read(label, db, &[], None)?;
            Ok(render(&diff(old.as_ref(), &new), DiffFormat::Human))
        })(),
        Err(e) => Err(e.into()),
    };
    match text {
        Ok(t) => eprintln!("{t}"),
        Err(e) => eprintln!("warning: no diff against the live release: {e:#}"),
    }
}
