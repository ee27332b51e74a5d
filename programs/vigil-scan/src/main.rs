//! vigil-scan: scan files with a vigil database, with clamscan's habits; with `--daemon`, ask
//! the local scan service instead, as clamdscan asks clamd. `vigil-scan quarantine …` manages
//! the quarantine store; `s3://` paths scan objects in a bucket, and `vigil-scan s3-worker`
//! scans uploads from an SQS queue and tags them (see `s3.rs`).
//!
//! A thin program over `vigil-scan-core`: input is a signed database and trusted keys (or the
//! agent's socket with `--daemon`) and the paths to scan; output is clamscan-style lines or
//! JSON and an exit code. The engine, the walk and the service client are the library's; the
//! service itself runs in `vigil-agent`.
//!
//! Exit codes, as clamscan documents them: 0 nothing found; 1 something found; 2 an error
//! occurred (and nothing was found), including a database that fails verification and, with
//! `--daemon`, a service that cannot be reached. `quarantine` commands: 0 done, 2 usage, an
//! unknown id, a restore refused (a file exists at the path) or any other error. `s3-worker`:
//! see `s3.rs`.

mod cli;
mod image;
mod limits;
mod quarantine;
mod respond;
mod s3;

use std::process::ExitCode;

use clap::Parser;

// The scan's arguments, or a management subcommand. The scan keeps its flat command line
// (`vigil-scan -d db -r /path`): a subcommand is recognised only as the first argument. (A
// plain comment: a doc comment here would replace the program's about text in --help.)
#[derive(Parser)]
#[command(
    name = "vigil-scan",
    version,
    about = "Scan files with a vigil database (clamscan-style), or ask the scan service (--daemon, clamdscan-style); manage the quarantine",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(flatten)]
    scan: cli::Args,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    #[command(flatten)]
    Quarantine(quarantine::Command),
    /// Scan S3 uploads from an SQS queue of event notifications and tag each object
    /// (GuardDuty's values), or re-scan a prefix after a database update (--rescan).
    S3Worker(Box<s3::WorkerArgs>),
}

/// Log lines of the libraries on stderr: with --config or --quarantine, what the response
/// did that the scan's lines do not say (hooks' exit status, failures, the outbox's drops).
/// `RUST_LOG` overrides.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "error,vigil_s3scan=warn,vigil_respond=warn,vigil_respond::actions=info,vigil_outputs=warn",
        )
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    init_logging();
    let parsed = Cli::parse();
    let result = match parsed.command {
        Some(Command::Quarantine(cmd)) => quarantine::run(cmd),
        Some(Command::S3Worker(args)) => s3::run_worker(*args),
        None => cli::run(parsed.scan),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::from(2)
        }
    }
}
