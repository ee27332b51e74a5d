//! vigil-update: keep this machine's vigil database current (one-shot, freshclam's job), show
//! what is installed (`status`), or build an offline mirror (`mirror`).
//!
//! A thin program over `vigil-client-updater`: input is `vigil.toml` (mirrors, trusted root,
//! keys) and the command line; output is a verified, smoke-tested database installed in the
//! database directory, log lines, and an exit code (see `vigil_client_updater::exit` and the
//! README). The long-running agent that also hot-swaps and serves scans is `vigil-agent`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    ExitCode::from(cli::run(cli::Args::parse()))
}
