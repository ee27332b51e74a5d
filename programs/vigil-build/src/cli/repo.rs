//! `vigil-build publish` and `vigil-build repo …`: the thin edge over vigil-repository.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args as ClapArgs, Subcommand};
use vigil_compiler::{sources, BuildError, BuildOptions};
use vigil_repository::keys::Role;
use vigil_repository::live;
use vigil_repository::publish::{self, OnlineKeys, PublishOptions, ROOT_FILE};
use vigil_repository::storage::{self, S3Options, Storage};
use vigil_repository::tuf::Expiry;
use vigil_repository::RepoError;

use super::files::load_secret;
use super::{Format, EXIT_LINT, EXIT_OK};

/// The version is not newer than the published one.
pub const EXIT_NOT_NEWER: u8 = 3;
/// Another publisher committed first; nothing of ours is live.
pub const EXIT_CONFLICT: u8 = 4;
/// The release gate (`--goodware`) failed and no `--override-gate` was given; nothing was
/// written.
pub const EXIT_GATE_REFUSED: u8 = 5;

#[derive(ClapArgs, Clone, Debug)]
pub struct Location {
    /// Repository: a directory, or s3://bucket/prefix.
    #[arg(long)]
    pub repo: String,
    /// S3-compatible endpoint (MinIO, Ceph, R2), e.g. http://127.0.0.1:9000.
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    /// Address buckets in the path, not the host name (MinIO and Ceph usually need this).
    #[arg(long)]
    pub s3_path_style: bool,
    #[arg(long)]
    pub s3_region: Option<String>,
}

impl Location {
    pub(super) async fn open(&self) -> anyhow::Result<Arc<dyn Storage>> {
        let opts = S3Options {
            endpoint: self.s3_endpoint.clone(),
            path_style: self.s3_path_style,
            region: self.s3_region.clone(),
        };
        Ok(storage::open(&self.repo, &opts).await?)
    }
}

#[derive(ClapArgs, Clone, Debug)]
pub struct Lifetimes {
    /// Days until the targets and snapshot signatures expire.
    #[arg(long, default_value_t = 90)]
    pub targets_days: i64,
    /// Days until timestamp.json expires; renew with `repo refresh` (or any publish) before.
    #[arg(long, default_value_t = 7)]
    pub timestamp_days: i64,
    /// Days until a new root expires.
    #[arg(long, default_value_t = 365)]
    pub root_days: i64,
}

impl Lifetimes {
    pub(super) fn expiry(&self) -> Expiry {
        let d = |n: i64| jiff::SignedDuration::from_hours(24 * n.max(0));
        Expiry {
            root: d(self.root_days),
            targets: d(self.targets_days),
            snapshot: d(self.targets_days),
            timestamp: d(self.timestamp_days),
        }
    }
}

#[derive(ClapArgs, Clone, Debug)]
pub struct PublishArgs {
    #[command(flatten)]
    pub location: Location,
    /// Directory of TUF role keys (targets.key, snapshot.key, timestamp.key; VIGIL_TUF_<ROLE>_KEY
    /// variables take precedence) and the trusted root.json.
    #[arg(long)]
    pub tuf_keys: PathBuf,
    /// Trusted root.json (default: root.json in --tuf-keys).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Rules directory to lint and build; or give --db.
    #[arg(long, conflicts_with = "db", required_unless_present = "db")]
    pub rules: Option<PathBuf>,
    /// An already built database.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Database signing key (FILE or env:VAR), with --rules.
    #[arg(long, requires = "rules")]
    pub key: Option<String>,
    /// Database version, with --rules (default: the published version + 1).
    #[arg(long, requires = "rules")]
    pub version: Option<u64>,
    /// Previous versions kept in full, each with a delta to the new one.
    #[arg(long, default_value_t = 5)]
    pub keep: usize,
    /// Seconds an unreferenced blob must age before garbage collection removes it.
    #[arg(long, default_value_t = 3600)]
    pub gc_grace: u64,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    #[arg(long)]
    pub deny_warnings: bool,
    #[arg(long, default_value_t = vigil_format::container::DEFAULT_LEVEL)]
    pub level: i32,
    /// Run the release gate first: the per-signature tests of --rules, and the goodware check
    /// (false positives and per-rule cost) of the database about to be published on these
    /// directories (repeat) or one s3://BUCKET/PREFIX (reached with the --s3-* options), with
    /// the live release as baseline. On failure nothing is written (exit 5).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub goodware: Vec<String>,
    /// Trusted key of --db and of the live release (the gate's baseline); the public half of
    /// --key is trusted too. Repeat for several (a key rotation).
    #[arg(long, requires = "goodware")]
    pub pubkey: Vec<PathBuf>,
    /// The gate's per-rule budget: YARA milliseconds per GB of goodware.
    #[arg(long, requires = "goodware", default_value_t = vigil_gate::check::DEFAULT_MAX_RULE_MS_PER_GB)]
    pub max_rule_ms_per_gb: f64,
    /// Publish although the release gate fails, and record REASON in the database's target
    /// metadata (`gate_override`), where `diff` and `info` show it.
    #[arg(long, value_name = "REASON", value_parser = gate_override_reason)]
    pub override_gate: Option<String>,
    /// The release's channel: clients configured with `channel = "NAME"` take it.
    #[arg(long, default_value = vigil_repository::rollout::DEFAULT_CHANNEL, value_parser = channel_name)]
    pub channel: String,
    /// A staged rollout, e.g. `canary,1%:1h,10%:6h,50%:12h,100%`: a ring (clients with
    /// `ring = "canary"`) or a percentage of the channel's clients, each held for a duration
    /// before `vigil-build rollout advance` moves on. Without it every client takes it at once.
    #[arg(long, value_name = "PLAN", value_parser = stages_plan)]
    pub stages: Option<Stages>,
    #[command(flatten)]
    pub lifetimes: Lifetimes,
}

/// A parsed `--stages` plan (a newtype: clap would read a bare `Vec` as a repeated flag).
#[derive(Clone, Debug)]
pub struct Stages(pub Vec<vigil_repository::rollout::Stage>);

fn stages_plan(s: &str) -> Result<Stages, String> {
    vigil_repository::rollout::parse_plan(s)
        .map(Stages)
        .map_err(|e| e.to_string())
}

pub(super) fn channel_name(s: &str) -> Result<String, String> {
    if vigil_repository::rollout::valid_name(s) {
        Ok(s.to_owned())
    } else {
        Err("a channel name is 1 to 32 of a-z, 0-9 and -".into())
    }
}

/// Longest reason recorded: it travels in targets.json, which every client fetches.
const MAX_REASON: usize = 500;

/// A reason is one line of text people read in `diff` and `info`: not empty, no control
/// characters, bounded.
pub(super) fn gate_override_reason(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("give the reason the gate is overridden".into());
    }
    if s.chars().any(char::is_control) {
        return Err("one line of text, without control characters".into());
    }
    if s.chars().count() > MAX_REASON {
        return Err(format!("at most {MAX_REASON} characters"));
    }
    Ok(s.to_string())
}

#[derive(Subcommand, Clone, Debug)]
pub enum RepoCmd {
    /// Create TUF keys that are missing in --tuf-keys and a version-1 root, and put it in the repository.
    Init {
        #[command(flatten)]
        location: Location,
        #[arg(long)]
        tuf_keys: PathBuf,
        #[command(flatten)]
        lifetimes: Lifetimes,
    },
    /// Sign the next root with new keys for the given roles (root by default), cross-signed by
    /// the old root key. Writes --tuf-keys/root.json; the next publish or refresh uploads it,
    /// or give --repo to do that now.
    RotateRoot {
        #[arg(long)]
        tuf_keys: PathBuf,
        /// Roles that get new keys.
        #[arg(long, value_delimiter = ',', default_value = "root")]
        roles: Vec<String>,
        #[arg(long)]
        repo: Option<String>,
        #[arg(long)]
        s3_endpoint: Option<String>,
        #[arg(long)]
        s3_path_style: bool,
        #[arg(long)]
        s3_region: Option<String>,
        #[command(flatten)]
        lifetimes: Lifetimes,
    },
    /// Load a served repository over HTTP as a client would (root chain, signatures, expiry,
    /// versions) and list its targets; with --download, fetch one and check its length and hash.
    Check {
        /// Base URL of the repository, e.g. http://127.0.0.1:8080/
        #[arg(long)]
        url: String,
        /// The trusted root.json.
        #[arg(long)]
        root: PathBuf,
        /// A target to download, e.g. vigil-3.vdb.
        #[arg(long, requires = "output")]
        download: Option<String>,
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Re-sign targets, snapshot and timestamp with new versions and expiry dates (run daily
    /// from cron so timestamp.json never expires between releases).
    Refresh {
        #[command(flatten)]
        location: Location,
        #[arg(long)]
        tuf_keys: PathBuf,
        #[arg(long)]
        root: Option<PathBuf>,
        #[command(flatten)]
        lifetimes: Lifetimes,
    },
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(super) fn read_root(tuf_keys: &Path, root: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let path = root
        .map(Path::to_path_buf)
        .unwrap_or_else(|| tuf_keys.join(ROOT_FILE));
    std::fs::read(&path).with_context(|| format!("reading the trusted root {}", path.display()))
}

fn parse_roles(names: &[String]) -> anyhow::Result<Vec<Role>> {
    names
        .iter()
        .map(|n| {
            Role::ALL
                .into_iter()
                .find(|r| r.name() == n.trim())
                .with_context(|| format!("unknown role {n:?} (root, targets, snapshot, timestamp)"))
        })
        .collect()
}

/// Maps the refusals a CI job should tell apart to their own exit codes.
fn exit_for(e: &RepoError) -> Option<u8> {
    match e {
        RepoError::VersionNotNewer { .. } => Some(EXIT_NOT_NEWER),
        RepoError::Conflict { .. } => Some(EXIT_CONFLICT),
        _ => None,
    }
}

pub fn repo(cmd: RepoCmd) -> anyhow::Result<u8> {
    let rt = runtime()?;
    rt.block_on(async move {
        match cmd {
            RepoCmd::Init {
                location,
                tuf_keys,
                lifetimes,
            } => {
                let storage = location.open().await?;
                let report =
                    publish::init(storage.as_ref(), &tuf_keys, &lifetimes.expiry()).await?;
                for role in &report.generated {
                    eprintln!(
                        "generated {} (mode 0600)",
                        tuf_keys.join(role.file_name()).display()
                    );
                }
                eprintln!(
                    "initialised {} with root version 1; trusted root: {}",
                    storage.location(),
                    tuf_keys.join(ROOT_FILE).display()
                );
                eprintln!(
                    "move root.key offline now; CI needs only targets, snapshot and timestamp keys"
                );
                Ok(EXIT_OK)
            }
            RepoCmd::RotateRoot {
                tuf_keys,
                roles,
                repo,
                s3_endpoint,
                s3_path_style,
                s3_region,
                lifetimes,
            } => {
                let roles = parse_roles(&roles)?;
                let v = publish::rotate_root(&tuf_keys, &roles, &lifetimes.expiry()).await?;
                eprintln!(
                    "signed root version {v} in {} (old root kept as {}.root.json)",
                    tuf_keys.join(ROOT_FILE).display(),
                    v - 1
                );
                if let Some(repo) = repo {
                    let location = Location {
                        repo,
                        s3_endpoint,
                        s3_path_style,
                        s3_region,
                    };
                    return refresh(&location, &tuf_keys, None, &lifetimes).await;
                }
                Ok(EXIT_OK)
            }
            RepoCmd::Refresh {
                location,
                tuf_keys,
                root,
                lifetimes,
            } => refresh(&location, &tuf_keys, root.as_deref(), &lifetimes).await,
            RepoCmd::Check {
                url,
                root,
                download,
                output,
            } => check(&url, &root, download.as_deref(), output.as_deref()).await,
        }
    })
}

async fn refresh(
    location: &Location,
    tuf_keys: &Path,
    root: Option<&Path>,
    lifetimes: &Lifetimes,
) -> anyhow::Result<u8> {
    let storage = location.open().await?;
    let trusted = read_root(tuf_keys, root)?;
    let keys = OnlineKeys::load(tuf_keys)?;
    let opts = PublishOptions {
        expiry: lifetimes.expiry(),
        ..PublishOptions::default()
    };
    match publish::publish(storage.clone(), &trusted, &keys, None, &opts).await {
        Ok(p) => {
            eprintln!(
                "refreshed {}: metadata version {}",
                storage.location(),
                p.metadata_version
            );
            Ok(EXIT_OK)
        }
        Err(e) => match exit_for(&e) {
            Some(code) => {
                eprintln!("error: {e}");
                Ok(code)
            }
            None => Err(e.into()),
        },
    }
}

pub fn publish(args: PublishArgs) -> anyhow::Result<u8> {
    let rt = runtime()?;
    rt.block_on(async move {
        let storage = args.location.open().await?;
        let trusted = read_root(&args.tuf_keys, args.root.as_deref())?;
        let keys = OnlineKeys::load(&args.tuf_keys)?;
        let opts = PublishOptions {
            keep: args.keep,
            expiry: args.lifetimes.expiry(),
            gc_grace: Duration::from_secs(args.gc_grace),
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            gate_override: args.override_gate.clone(),
            channel: Some(args.channel.clone()),
            stages: args.stages.clone().map(|s| s.0),
        };
        // With an automatic version a lost race is retried on top of the winner; an explicit
        // version is the author's decision, so a conflict is reported instead.
        let attempts = if args.rules.is_some() && args.version.is_none() {
            3
        } else {
            1
        };
        for attempt in 1..=attempts {
            let db = match (&args.db, &args.rules) {
                (Some(db), _) => {
                    std::fs::read(db).with_context(|| format!("reading {}", db.display()))?
                }
                (None, Some(rules)) => {
                    let version = match args.version {
                        Some(v) => v,
                        None => publish::current_db_version(storage.clone(), &trusted).await? + 1,
                    };
                    match build(&args, rules, version)? {
                        Ok(bytes) => bytes,
                        Err(code) => return Ok(code),
                    }
                }
                (None, None) => anyhow::bail!("give --rules or --db"),
            };
            let label = args.db.as_ref().or(args.rules.as_ref());
            let label = label.map(|p| p.display().to_string()).unwrap_or_default();
            super::diff::print_before_publish(storage.clone(), &trusted, &label, &db).await;
            // The gate judges the sources once: a retry after a lost race rebuilds the same
            // sources under the next version number.
            if attempt == 1 && !args.goodware.is_empty() {
                let baseline = live::from_storage(storage.clone(), &trusted, true)
                    .await
                    .context("reading the live release (the gate's baseline)")?
                    .map(|l| l.bytes);
                let verdict =
                    tokio::task::block_in_place(|| super::gate::run(&args, &db, baseline))?;
                match (verdict.passed(), &opts.gate_override) {
                    (true, _) => eprintln!("gate: passed"),
                    (false, None) => {
                        eprintln!(
                            "publish refused: the release gate failed ({}); nothing was written. \
                             Fix the rules, or publish with --override-gate \"REASON\" to ship \
                             anyway with the reason on record",
                            verdict.failures.join("; ")
                        );
                        return Ok(EXIT_GATE_REFUSED);
                    }
                    (false, Some(reason)) => eprintln!(
                        "gate: FAILED ({}); publishing anyway: --override-gate {reason:?}",
                        verdict.failures.join("; ")
                    ),
                }
            }
            match publish::publish(storage.clone(), &trusted, &keys, Some(db), &opts).await {
                Ok(p) => {
                    let bytes: u64 = p.uploaded.iter().map(|(_, n)| n).sum();
                    for (name, n) in &p.uploaded {
                        eprintln!("uploaded {name} ({n} bytes)");
                    }
                    for key in &p.deleted {
                        eprintln!("removed {key}");
                    }
                    eprintln!(
                        "published version {} to {} (metadata version {}, {} bytes uploaded)",
                        p.db_version.unwrap_or(0),
                        storage.location(),
                        p.metadata_version,
                        bytes
                    );
                    if let Some(stages) = &opts.stages {
                        let plan: Vec<String> = stages.iter().map(ToString::to_string).collect();
                        eprintln!(
                            "channel {}: rollout {} started at stage 0 ({}); move it on with \
                             `vigil-build rollout advance`",
                            args.channel,
                            plan.join(","),
                            plan.first().map_or("", String::as_str)
                        );
                    }
                    if let Some(reason) = &opts.gate_override {
                        eprintln!("gate override recorded in the target's metadata: {reason}");
                    }
                    return Ok(EXIT_OK);
                }
                Err(e @ RepoError::Conflict { .. }) if attempt < attempts => {
                    eprintln!("{e}; retrying ({attempt}/{attempts})");
                }
                Err(e) => {
                    return match exit_for(&e) {
                        Some(code) => {
                            eprintln!("error: {e}");
                            Ok(code)
                        }
                        None => Err(e.into()),
                    }
                }
            }
        }
        Ok(EXIT_CONFLICT)
    })
}

fn build(args: &PublishArgs, rules: &Path, version: u64) -> anyhow::Result<Result<Vec<u8>, u8>> {
    let key_spec = args
        .key
        .as_deref()
        .context("--rules needs --key (the database signing key)")?;
    let key = load_secret(key_spec)?;
    let files = sources::collect(&[rules.to_path_buf()])?;
    let opts = BuildOptions {
        db_version: version,
        build_time: super::build::source_date_epoch()?,
        level: args.level,
        deny_warnings: args.deny_warnings,
    };
    match vigil_compiler::build(&files, &key, &opts) {
        Ok(built) => {
            super::lint::report(&built.lint, args.format.into(), files.len());
            eprintln!("built version {version} ({} bytes)", built.bytes.len());
            Ok(Ok(built.bytes))
        }
        Err(BuildError::Lint(result)) => {
            super::lint::report(&result, args.format.into(), files.len());
            eprintln!("publish refused: fix the lint errors above; nothing was uploaded");
            Ok(Err(EXIT_LINT))
        }
        Err(e) => Err(e).with_context(|| format!("building {}", rules.display())),
    }
}

async fn check(
    url: &str,
    root: &Path,
    download: Option<&str>,
    output: Option<&Path>,
) -> anyhow::Result<u8> {
    let trusted = std::fs::read(root)
        .with_context(|| format!("reading the trusted root {}", root.display()))?;
    let mut base = url::Url::parse(url).with_context(|| format!("--url {url}"))?;
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    let repo =
        tough::RepositoryLoader::new(&trusted, base.join("metadata/")?, base.join("targets/")?)
            .transport(tough::HttpTransportBuilder::new().build())
            .load()
            .await
            .with_context(|| format!("loading the repository at {base}"))?;
    println!(
        "root v{}  targets v{}  snapshot v{}  timestamp v{} (expires {})",
        repo.root().signed.version,
        repo.targets().signed.version,
        repo.snapshot().signed.version,
        repo.timestamp().signed.version,
        repo.timestamp().signed.expires
    );
    let mut names: Vec<_> = repo.targets().signed.targets.iter().collect();
    names.sort_by(|a, b| a.0.raw().cmp(b.0.raw()));
    for (name, t) in names {
        println!(
            "{:<28} {:>10} bytes  {}",
            name.raw(),
            t.length,
            hex::encode(&t.hashes.sha256)
        );
    }
    if let (Some(name), Some(out)) = (download, output) {
        let tn = tough::TargetName::new(name).with_context(|| format!("target name {name}"))?;
        let stream = repo
            .read_target(&tn)
            .await
            .with_context(|| format!("fetching {name}"))?
            .with_context(|| format!("{name} is not listed in targets.json"))?;
        // tough checks the length and SHA-256 against targets.json while reading.
        let bytes = tough::IntoVec::into_vec(stream)
            .await
            .with_context(|| format!("downloading {name}"))?;
        super::files::write_atomic(out, &bytes)?;
        eprintln!(
            "downloaded {name} ({} bytes, verified) to {}",
            bytes.len(),
            out.display()
        );
    }
    Ok(EXIT_OK)
}
