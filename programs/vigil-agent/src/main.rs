//! vigil-agent: the long-running process on each machine, freshclam and clamd in one: updates
//! with hot swap, the local scan service (`vigil-scan --daemon` asks it), and scheduled scans.
//!
//! A thin program over the `vigil-agent` library: input is `vigil.toml` (`--config`, default
//! /etc/vigil/vigil.toml or `$VIGIL_CONFIG`) and signals: SIGHUP reloads the config, SIGUSR1
//! checks for an update now, SIGUSR2 runs the scheduled scans now, SIGTERM and SIGINT stop it.
//! Output: log lines on stderr (`--log-format text|json`) and the exit code: 0 when stopped by
//! a signal, else the class of what stopped it (`vigil_client_updater::exit`: 2 configuration,
//! 6 local, ...). The systemd unit is dist/vigil-agent.service.
//!
//! `vigil-agent outbox status [--json]` and `vigil-agent outbox flush [--timeout SECS]` look
//! at and deliver the findings outbox from this process (see the `outbox` module).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vigil_agent::Settings;
use vigil_client_updater::exit;

mod outbox;

#[derive(Parser)]
#[command(
    name = "vigil-agent",
    version,
    about = "Run the vigil agent: database updates with hot swap, the local scan service, scheduled scans"
)]
struct Args {
    /// Configuration file.
    #[arg(long, short = 'c', global = true, default_value = vigil_client_updater::config::DEFAULT_PATH, env = "VIGIL_CONFIG")]
    config: PathBuf,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Without a command: run the agent.
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// The findings outbox: what each output has pending, and delivering it now.
    Outbox {
        #[command(subcommand)]
        action: outbox::OutboxCmd,
    },
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

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args.log_level, &args.log_format);
    if let Some(Cmd::Outbox { action }) = &args.command {
        return ExitCode::from(outbox::run(&args.config, action));
    }
    let settings = match Settings::load(&args.config) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("starting the async runtime: {e}");
            return ExitCode::from(exit::LOCAL);
        }
    };
    match rt.block_on(vigil_agent::run(args.config, settings)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}
