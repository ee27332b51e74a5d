//! vigil-server: the command line over the `vigil_update_server` library. Reads the config file
//! and flags (flags win), sets up logging, opens the repository, binds, and serves until SIGTERM
//! or SIGINT; maps each failure to its exit code. Everything HTTP lives in the library.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;
use vigil_update_server::{
    auth, open_storage, open_store, serve, AppState, Config, Drain, Error, LogFormat,
};

mod fd_limit;

const LONG_ABOUT: &str = "\
Serves a vigil repository (metadata/ and targets/) read-only over HTTP, from a directory or an \
S3 bucket prefix: GET and HEAD with ETags, If-None-Match, ranges, cache headers, per-client rate \
limits, optional bearer tokens, /healthz and Prometheus /metrics. A header-read timeout, a \
request timeout that spares downloads still moving, and a cap on connections bound what slow or \
idle clients can hold.

With --state-dir (SQLite) or --fleet-db (PostgreSQL) it also takes fleet check-ins at POST \
/fleet/checkin and, for holders of an --admin-tokens token, serves the fleet console at /fleet, \
/api/fleet, /api/fleet/health and /fleet/compliance.csv.

Settings come from --config FILE (TOML), then the flags below, which win.

Exit codes:
  0  stopped by SIGTERM or SIGINT after draining (or after the drain timeout), or hash-token done
  1  unexpected runtime failure
  2  usage or configuration error: bad flags, config file, tokens file, log filter, or
     repository location (clap also exits 2 on bad flags)
  3  the repository directory does not exist or cannot be opened
  4  cannot listen on the address (in use, no permission, invalid)
  5  the fleet store cannot be opened (--state-dir not writable, --fleet-db unreachable or
     refusing)";

#[derive(Parser, Debug)]
#[command(
    name = "vigil-server",
    version,
    about = "Serve a vigil repository over HTTP",
    long_about = LONG_ABOUT,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Read a bearer token from stdin and print the line to put in the tokens file (its
    /// SHA-256), so that plain tokens are never stored on the server.
    HashToken,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Repository: a directory or s3://bucket/prefix [config: repo]
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    repo: Option<String>,
    /// Address to listen on [config: listen; default 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// TOML config file; flags override its values
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Private feed: file of SHA-256 hashes of accepted bearer tokens [config: tokens_file]
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// Keep fleet check-ins in DIR/fleet.sqlite3 (created if missing) [config: state_dir]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Keep fleet check-ins in PostgreSQL instead, for several replicas
    /// [config: fleet_db]
    #[arg(long, value_name = "postgres://USER@HOST:PORT/DB")]
    fleet_db: Option<String>,
    /// File of SHA-256 hashes of tokens that may read the fleet (console, /api/fleet);
    /// same format as --tokens [config: admin_tokens_file]
    #[arg(long, value_name = "FILE")]
    admin_tokens: Option<PathBuf>,
    /// S3 endpoint URL, e.g. http://127.0.0.1:9000 [config: s3.endpoint]
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// Address buckets in the path, not the host name [config: s3.path_style]
    #[arg(long)]
    s3_path_style: bool,
    /// S3 region [config: s3.region]
    #[arg(long, value_name = "REGION")]
    s3_region: Option<String>,
    /// Log filter, e.g. info or vigil_server::access=off,info; overrides RUST_LOG
    /// [config: log_level; default info]
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Log format [config: log_format; default text]
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormatArg>,
    /// Do not log each request [config: access_log = false]
    #[arg(long)]
    no_access_log: bool,
    /// Requests per second per client IP, 0 disables [config: rate_limit.requests_per_second]
    #[arg(long, value_name = "RPS")]
    rate_limit: Option<f64>,
    /// Burst of requests per client IP, 0 disables [config: rate_limit.burst]
    #[arg(long, value_name = "N")]
    rate_burst: Option<u32>,
    /// Memory for whole content-addressed blobs, 0 disables [config: blob_cache_mb; default 64]
    #[arg(long, value_name = "MB")]
    blob_cache_mb: Option<u64>,
    /// Seconds to let downloads finish after SIGTERM [config: drain_timeout_s; default 30]
    #[arg(long, value_name = "SECS")]
    drain_timeout: Option<u64>,
    /// Seconds a client has to send a request's line and headers; idle keep-alive connections
    /// close after as long; 0 disables [config: header_read_timeout_s; default 10]
    #[arg(long, value_name = "SECS")]
    header_read_timeout: Option<u64>,
    /// Seconds a request may wait without progress: for its response head (then 504), for
    /// storage, for the client to take bytes. A download that keeps moving is never cut; 0
    /// disables [config: request_timeout_s; default 60]
    #[arg(long, value_name = "SECS")]
    request_timeout: Option<u64>,
    /// Connections served at once; further ones wait in the listen backlog until one closes;
    /// 0: no cap [config: max_connections; default 1024]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// An error and the exit code it maps to.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

fn fail(code: u8) -> impl FnOnce(anyhow::Error) -> Failure {
    move |error| Failure { code, error }
}

/// Storage and config errors: 3 for a repository that is not there, 2 for everything the
/// operator wrote wrong.
fn code_of(e: &Error) -> u8 {
    match e {
        Error::RepositoryMissing { .. } => 3,
        Error::Storage(vigil_repository::storage::StorageError::BadLocation(_)) => 2,
        Error::Storage(_) => 3,
        Error::FleetStore(_) => 5,
        _ => 2,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Some(Cmd::HashToken) => hash_token(),
        None => run(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn hash_token() -> Result<(), Failure> {
    let mut token = Vec::new();
    std::io::stdin()
        .read_to_end(&mut token)
        .context("reading the token from stdin")
        .map_err(fail(2))?;
    // `echo TOKEN |` and a typed line end with a newline that is not part of the token.
    if token.ends_with(b"\n") {
        token.pop();
        if token.ends_with(b"\r") {
            token.pop();
        }
    }
    if token.is_empty() {
        return Err(fail(2)(anyhow::anyhow!("no token on stdin")));
    }
    println!("{}", auth::hash_token(&token));
    Ok(())
}

fn load_config(args: &RunArgs) -> Result<Config, Error> {
    let mut c = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(v) = &args.repo {
        c.repo = Some(v.clone());
    }
    if let Some(v) = &args.listen {
        c.listen = v.clone();
    }
    if let Some(v) = &args.tokens {
        c.tokens_file = Some(v.clone());
    }
    if let Some(v) = &args.state_dir {
        c.state_dir = Some(v.clone());
    }
    if let Some(v) = &args.fleet_db {
        c.fleet_db = Some(v.clone());
    }
    if let Some(v) = &args.admin_tokens {
        c.admin_tokens_file = Some(v.clone());
    }
    if let Some(v) = &args.s3_endpoint {
        c.s3.endpoint = Some(v.clone());
    }
    if args.s3_path_style {
        c.s3.path_style = true;
    }
    if let Some(v) = &args.s3_region {
        c.s3.region = Some(v.clone());
    }
    if let Some(v) = &args.log_level {
        c.log_level = Some(v.clone());
    }
    match args.log_format {
        Some(LogFormatArg::Text) => c.log_format = LogFormat::Text,
        Some(LogFormatArg::Json) => c.log_format = LogFormat::Json,
        None => {}
    }
    if args.no_access_log {
        c.access_log = false;
    }
    if let Some(v) = args.rate_limit {
        c.rate_limit.requests_per_second = v;
    }
    if let Some(v) = args.rate_burst {
        c.rate_limit.burst = v;
    }
    if let Some(v) = args.blob_cache_mb {
        c.blob_cache_mb = v;
    }
    if let Some(v) = args.drain_timeout {
        c.drain_timeout_s = v;
    }
    if let Some(v) = args.header_read_timeout {
        c.header_read_timeout_s = v;
    }
    if let Some(v) = args.request_timeout {
        c.request_timeout_s = v;
    }
    if let Some(v) = args.max_connections {
        c.max_connections = v;
    }
    Ok(c)
}

/// --log-level, else RUST_LOG, else the config's log_level, else info.
fn init_logging(args: &RunArgs, config: &Config) -> anyhow::Result<()> {
    let spec = match (&args.log_level, std::env::var("RUST_LOG")) {
        (Some(l), _) => l.clone(),
        (None, Ok(env)) if !env.is_empty() => env,
        _ => config.log_level.clone().unwrap_or_else(|| "info".into()),
    };
    let filter = EnvFilter::try_new(&spec).with_context(|| format!("log filter {spec:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(std::io::stdout().is_terminal());
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}

fn run(args: RunArgs) -> Result<(), Failure> {
    let config = load_config(&args).map_err(|e| Failure {
        code: code_of(&e),
        error: e.into(),
    })?;
    init_logging(&args, &config).map_err(fail(2))?;
    if let Some(max) = config.max_connections() {
        fd_limit::make_room_for(max);
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(fail(1))?;
    rt.block_on(serve_until_signal(config))
}

async fn serve_until_signal(config: Config) -> Result<(), Failure> {
    use tokio::signal::unix::{signal, SignalKind};

    let from = |e: Error| Failure {
        code: code_of(&e),
        error: e.into(),
    };
    let storage = open_storage(&config).await.map_err(from)?;
    let fleet = open_store(&config).await.map_err(from)?;
    let state = AppState::with_fleet(storage, &config, fleet).map_err(from)?;
    // Handlers go in before the socket is bound, so a signal that arrives as soon as the
    // address is reachable is already a graceful shutdown.
    let mut term = signal(SignalKind::terminate())
        .context("installing the SIGTERM handler")
        .map_err(fail(1))?;
    let mut int = signal(SignalKind::interrupt())
        .context("installing the SIGINT handler")
        .map_err(fail(1))?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))
        .map_err(fail(4))?;
    let local = listener
        .local_addr()
        .context("reading the bound address")
        .map_err(fail(4))?;
    tracing::info!(
        "listening on http://{local}, serving {}",
        state.storage().location()
    );
    if let Some(store) = state.fleet_store() {
        tracing::info!("fleet console: http://{local}/fleet (check-ins kept in {store})");
        if config.admin_tokens_file.is_none() {
            tracing::warn!(
                "no --admin-tokens: check-ins are stored, but the console and /api/fleet \
                 answer 403"
            );
        }
    }
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    };
    match serve(listener, state, shutdown).await {
        Drain::Complete => tracing::info!("all requests finished; bye"),
        Drain::TimedOut => tracing::warn!(
            "drain timeout ({} s) passed; cutting off the remaining downloads",
            config.drain_timeout_s
        ),
    }
    Ok(())
}
