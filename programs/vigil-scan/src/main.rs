//! vigil-scan: scan files with a vigil database, with clamscan's habits; with `--daemon`, ask
//! the local scan service instead, as clamdscan asks clamd.
//!
//! A thin program over `vigil-scan-core`: input is a signed database and trusted keys (or the
//! agent's socket with `--daemon`) and the paths to scan; output is clamscan-style lines or
//! JSON and an exit code. The engine, the walk and the service client are the library's; the
//! service itself runs in `vigil-agent`.
//!
//! Exit codes, as clamscan documents them: 0 nothing found; 1 something found; 2 an error
//! occurred (and nothing was found), including a database that fails verification and, with
//! `--daemon`, a service that cannot be reached.

mod cli;
mod respond;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match cli::run(cli::Args::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::from(2)
        }
    }
}
