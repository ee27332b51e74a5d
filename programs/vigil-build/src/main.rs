//! vigil-build: lint rule sources, build signed databases, verify and inspect them, make keys
//! and deltas, diff releases, and publish them to a TUF repository. A thin layer over the
//! vigil-compiler, vigil-format, vigil-gate and vigil-repository libraries: parsing, files,
//! keys, the async runtime and exit codes live here; one module per subcommand under `cli/`.
//!
//! Exit codes: 0 success; 1 lint errors (or warnings with --deny-warnings); for `test` a
//! failed per-signature test, rules that do not build, or (with --require-coverage) a signature
//! without a positive or a negative test; for `check` a new false positive on goodware, a rule
//! over the cost budget or a rule yara-x flags as slow; 2 usage, I/O or bad-input errors (a
//! database, baseline or delta that fails verification, a missing key, bad test files, rules
//! that do not compile, an empty goodware corpus, ...);
//! 3 publish refused, the version is not newer than the published one; 4 publish lost a race
//! to another publisher (nothing of this run is live; rerun); 5 publish refused, the release
//! gate (`--goodware`) failed and no `--override-gate` was given (nothing was written).
//! `rollout`: 0 done, nothing due yet, paused, or waiting for fleet reports; 2 usage, I/O, an
//! unknown version or a transition that does not apply; 4 lost a race (nothing written); 6
//! `advance --fleet` found the version unhealthy and paused the rollout (the automatic halt).
//! `diff` exits 0 whatever the databases differ by (a diff is information) and 2 when it
//! cannot read one.

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
