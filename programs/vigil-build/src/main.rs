//! vigil-build: lint rule sources, build signed databases, verify and inspect them, make keys
//! and deltas, and publish them to a TUF repository. A thin layer over the vigil-compiler,
//! vigil-format and vigil-repository libraries: parsing, files, keys, the async runtime and exit
//! codes live here; one module per subcommand under `cli/`.
//!
//! Exit codes: 0 success; 1 lint errors (or warnings with --deny-warnings), or `check` failed
//! (a new false positive on goodware, a rule over the cost budget, a rule yara-x flags as
//! slow); 2 usage, I/O or bad-input errors (a database, baseline or delta that fails
//! verification, a missing key, rules that do not compile, an empty goodware corpus, ...);
//! 3 publish refused, the version is not newer than the published one; 4 publish lost a race
//! to another publisher (nothing of this run is live; rerun).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::EXIT_ERROR)
        }
    }
}
