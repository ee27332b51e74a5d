//! Command line: parse, set up logging, run, map errors to exit codes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use vigil_client_updater::{check, exit, Config, Options, Outcome, UpdateError};

#[derive(Parser)]
#[command(
    name = "vigil-update",
    version,
    about = "Keep the vigil database current (freshclam-style), or build an offline mirror; the agent is vigil-agent"
)]
pub struct Args {
    /// Configuration file.
    #[arg(long, short = 'c', global = true, default_value = vigil_client_updater::config::DEFAULT_PATH, env = "VIGIL_CONFIG")]
    config: PathBuf,
    /// Gone: the agent is `vigil-agent`. Refused with a message saying so.
    #[arg(long, hide = true)]
    daemon: bool,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show the installed database and the updater's remembered state.
    Status,
    /// Copy a verified repository for an offline network: metadata, the newest --keep full
    /// databases and the deltas into them, into a directory or S3 prefix that vigil-server or
    /// any static web server can serve. Resumes after interruption.
    Mirror(MirrorArgs),
}

#[derive(clap::Args)]
struct MirrorArgs {
    /// Base URL of the repository to copy, e.g. https://updates.example.com/vigil/
    #[arg(long)]
    from: String,
    /// Destination: a directory or s3://bucket/prefix.
    #[arg(long)]
    to: String,
    /// The trusted root.json (default: trusted_root from the config file).
    #[arg(long)]
    root: Option<PathBuf>,
    /// How many of the newest database versions to carry.
    #[arg(long, default_value_t = 5)]
    keep: usize,
    /// Where TUF state and partial downloads are kept between runs (default: a hidden
    /// `.vigil-mirror` in a directory destination, else ~/.cache/vigil-mirror/...).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Bearer token for a private feed.
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[arg(long)]
    s3_endpoint: Option<String>,
    #[arg(long)]
    s3_path_style: bool,
    #[arg(long)]
    s3_region: Option<String>,
}

fn init_logging(level: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // yara-x reports its compile statistics at info level: noise in an updater's log.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},yara_x=warn")));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(false);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, UpdateError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| UpdateError::Other(format!("starting the async runtime: {e}")))
}

pub fn run(args: Args) -> u8 {
    init_logging(&args.log_level, &args.log_format);
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}

fn run_inner(args: Args) -> Result<u8, UpdateError> {
    if args.daemon {
        return Err(UpdateError::Config {
            path: PathBuf::from("--daemon"),
            message: format!(
                "vigil-update no longer runs the agent; run `vigil-agent --config {}` \
                 (the systemd unit is vigil-agent.service)",
                args.config.display()
            ),
        });
    }
    match args.command {
        Some(Command::Mirror(m)) => mirror(m, &args.config),
        Some(Command::Status) => {
            let cfg = load_config(&args.config)?;
            status(&cfg)
        }
        None => {
            let cfg = load_config(&args.config)?;
            let keys = vigil_client_updater::update::load_keys(&cfg)?;
            let opts = Options {
                progress: std::io::stderr().is_terminal(),
                ..Options::default()
            };
            let rt = runtime()?;
            // The check-in (sent inside `check`) never changes the exit code.
            let (outcome, _checkin) = rt.block_on(check(&cfg, &keys, &opts));
            Ok(log_outcome(&outcome?))
        }
    }
}

/// Reads the config file, the agent's `[agent]` section included: the file is shared with
/// vigil-agent, and a mistake anywhere in it is reported by either program.
fn load_config(path: &Path) -> Result<Config, UpdateError> {
    match vigil_agent::Settings::load(path) {
        Ok(s) => Ok(s.updater),
        Err(vigil_agent::AgentError::Update(e)) => Err(e),
        Err(vigil_agent::AgentError::Config { path, message }) => {
            Err(UpdateError::Config { path, message })
        }
        Err(e) => Err(UpdateError::Other(e.to_string())),
    }
}

/// One line a log shipper or a human can read; the exit code says the same.
pub fn log_outcome(outcome: &Outcome) -> u8 {
    let r = outcome.report();
    let how = if !r.deltas.is_empty() {
        format!("by {} delta(s) {}", r.deltas.len(), r.deltas.join(", "))
    } else if r.full_download {
        "by full download".to_owned()
    } else {
        "nothing downloaded".to_owned()
    };
    match outcome {
        Outcome::Updated { .. } => {
            tracing::info!(
                mirror = r.mirror.as_deref().unwrap_or(""),
                from = r.from,
                to = r.to,
                metadata_bytes = r.metadata_bytes,
                target_bytes = r.target_bytes,
                requests = r.requests,
                elapsed_ms = r.elapsed.as_millis() as u64,
                "database updated {how}"
            );
            if let Some(why) = &r.delta_fallback {
                tracing::warn!("the delta path failed ({why}); the full database was used");
            }
            exit::UPDATED
        }
        Outcome::UpToDate { .. } => {
            tracing::info!(
                mirror = r.mirror.as_deref().unwrap_or(""),
                version = r.to,
                metadata_bytes = r.metadata_bytes,
                requests = r.requests,
                "database is up to date"
            );
            exit::UP_TO_DATE
        }
    }
}

fn status(cfg: &Config) -> Result<u8, UpdateError> {
    let keys = vigil_client_updater::update::load_keys(cfg)?;
    let installed = vigil_client_updater::install::load_installed(&cfg.database_dir, &keys);
    let state = vigil_client_updater::state::State::load(&cfg.database_dir);
    // Who this client is to a rollout (the id is made and kept on first use).
    let id = vigil_client_updater::identity::Identity::load(cfg, &cfg.database_dir)?;
    let out = serde_json::json!({
        "database_dir": cfg.database_dir,
        "client_id": id.client_id,
        "channel": id.channel,
        "ring": id.ring,
        "bucket": id.bucket,
        "installed": installed.map(|i| serde_json::json!({"path": i.path, "version": i.version()})),
        "state": state,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(0)
}

fn mirror(m: MirrorArgs, config: &std::path::Path) -> Result<u8, UpdateError> {
    use vigil_client_updater::mirror::{sync, MirrorOptions};
    let root_path = match m.root {
        Some(r) => r,
        None => load_config(config)?.trusted_root,
    };
    let trusted_root = std::fs::read(&root_path).map_err(|e| UpdateError::Config {
        path: root_path.clone(),
        message: format!("reading the trusted root: {e}"),
    })?;
    let mut from = m.from.clone();
    if !from.ends_with('/') {
        from.push('/');
    }
    let from = url::Url::parse(&from).map_err(|e| UpdateError::Config {
        path: PathBuf::from("--from"),
        message: format!("{from:?}: {e}"),
    })?;
    let work_dir = m.work_dir.clone().unwrap_or_else(|| {
        if m.to.starts_with("s3://") {
            let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
            home.join(".cache/vigil-mirror")
                .join(m.to.trim_start_matches("s3://").replace('/', "_"))
        } else {
            PathBuf::from(&m.to).join(".vigil-mirror")
        }
    });
    let rt = runtime()?;
    rt.block_on(async {
        let s3 = vigil_repository::storage::S3Options {
            endpoint: m.s3_endpoint.clone(),
            path_style: m.s3_path_style,
            region: m.s3_region.clone(),
        };
        let storage = vigil_repository::storage::open(&m.to, &s3)
            .await
            .map_err(|e| UpdateError::Config {
                path: PathBuf::from("--to"),
                message: e.to_string(),
            })?;
        let opts = MirrorOptions {
            from,
            trusted_root,
            work_dir,
            keep: m.keep,
            token: m.token.clone(),
            network: vigil_client_updater::config::Network::default(),
            progress: std::io::stderr().is_terminal(),
        };
        let r = sync(storage, &opts).await?;
        let bytes: u64 = r.copied.iter().map(|c| c.1).sum();
        tracing::info!(
            to = %m.to,
            metadata_version = r.metadata_version,
            versions = ?r.versions,
            copied = r.copied.len(),
            copied_bytes = bytes,
            already_present = r.already_present,
            deleted = r.deleted.len(),
            "mirror is in sync"
        );
        Ok(exit::UPDATED)
    })
}
