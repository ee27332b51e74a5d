//! `--repo`/`--url` with `--root`: the live release of a repository, for `diff` and `info`.
//!
//! A directory or S3 repository is read through vigil-repository's storage, a served one over
//! HTTP as `repo check` and clients read it; either way tough verifies the metadata from the
//! trusted root and the database bytes against targets.json.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args as ClapArgs;
use futures::StreamExt;
use vigil_gate::diff::{Origin, Side};
use vigil_repository::live::{self, LiveDatabase};
use vigil_repository::storage::{self, S3Options};

use super::repo::runtime;

#[derive(ClapArgs, Clone, Debug)]
pub struct LiveArgs {
    /// The live release of this repository (a directory or s3://bucket/prefix), verified from
    /// --root.
    #[arg(long, conflicts_with = "url", requires = "root")]
    pub repo: Option<String>,
    /// S3-compatible endpoint for --repo s3://… (MinIO, Ceph, R2).
    #[arg(long, requires = "repo")]
    pub s3_endpoint: Option<String>,
    /// Address buckets in the path, not the host name (MinIO and Ceph usually need this).
    #[arg(long, requires = "repo")]
    pub s3_path_style: bool,
    /// S3 region for --repo s3://…
    #[arg(long, requires = "repo")]
    pub s3_region: Option<String>,
    /// The live release of a served repository (e.g. http://127.0.0.1:8080/), loaded over HTTP
    /// as a client loads it, verified from --root.
    #[arg(long, requires = "root")]
    pub url: Option<String>,
    /// The trusted root.json of --repo or --url.
    #[arg(long)]
    pub root: Option<PathBuf>,
}

impl LiveArgs {
    /// The repository as the user named it, if one was.
    pub fn location(&self) -> Option<&str> {
        self.repo.as_deref().or(self.url.as_deref())
    }

    /// The newest full database the repository lists; `None` when it has none yet.
    pub fn fetch(&self) -> anyhow::Result<Option<LiveDatabase>> {
        let root = self
            .root
            .as_ref()
            .context("--repo and --url need --root (the trusted root.json)")?;
        let trusted = std::fs::read(root)
            .with_context(|| format!("reading the trusted root {}", root.display()))?;
        let rt = runtime()?;
        rt.block_on(async {
            if let Some(repo) = &self.repo {
                let opts = S3Options {
                    endpoint: self.s3_endpoint.clone(),
                    path_style: self.s3_path_style,
                    region: self.s3_region.clone(),
                };
                let storage = storage::open(repo, &opts).await?;
                // A reader takes the repository as clients would: expired metadata is refused.
                return live::from_storage(storage, &trusted, false)
                    .await
                    .with_context(|| format!("reading the live release of {repo}"));
            }
            let url = self.url.as_deref().context("give --repo or --url")?;
            let mut base = url::Url::parse(url).with_context(|| format!("--url {url}"))?;
            if !base.path().ends_with('/') {
                base.set_path(&format!("{}/", base.path()));
            }
            // Initialised but never published: a root and no timestamp.json. Said apart from a
            // URL that is no repository at all, which is an error.
            let transport = tough::HttpTransportBuilder::new().build();
            let missing = |name: &str| {
                let url = base.join(name);
                let transport = &transport;
                async move {
                    // The HTTP status arrives with the body's first item; nothing more is read.
                    let first = match tough::Transport::fetch(transport, url?).await {
                        Ok(mut body) => body.next().await.transpose().err(),
                        Err(e) => Some(e),
                    };
                    Ok::<bool, anyhow::Error>(
                        first.is_some_and(|e| e.kind() == tough::TransportErrorKind::FileNotFound),
                    )
                }
            };
            if missing("metadata/timestamp.json").await? {
                if missing("metadata/1.root.json").await? {
                    anyhow::bail!("{base} is not a vigil repository (no metadata/1.root.json)");
                }
                return Ok(None);
            }
            let repo = tough::RepositoryLoader::new(
                &trusted,
                base.join("metadata/")?,
                base.join("targets/")?,
            )
            .transport(transport)
            .load()
            .await
            .with_context(|| format!("loading the repository at {base}"))?;
            live::fetch_newest(&repo)
                .await
                .with_context(|| format!("reading the live release of {base}"))
        })
    }
}

/// The live database as one side of a diff, named by its target and carrying its metadata.
pub fn side(
    live: &LiveDatabase,
    location: &str,
    keys: &[vigil_format::PublicKey],
) -> anyhow::Result<Side> {
    let origin = Origin {
        repository: location.to_string(),
        target: live.name.clone(),
        gate_override: live.info.gate_override().map(str::to_owned),
    };
    Ok(Side::read(
        live.name.clone(),
        &live.bytes,
        keys,
        Some(origin),
    )?)
}
