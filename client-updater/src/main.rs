//! vigil-update: keep this machine's vigil database current (one-shot), run the agent
//! (`--daemon`: updater + scan service + scheduled scans), or build an offline mirror.
//! Exit codes: see `vigil_client_updater::exit` and the README.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    ExitCode::from(cli::run(cli::Args::parse()))
}
