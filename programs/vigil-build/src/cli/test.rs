//! `vigil-build test`: the per-signature tests of a rules directory (see vigil_gate::sigtest).

use std::path::Path;

use vigil_compiler::OutputFormat;
use vigil_gate::sigtest::{self, render, SigTestError};

use super::{EXIT_ERROR, EXIT_LINT, EXIT_OK};

pub fn run(rules: &Path, format: OutputFormat, require_coverage: bool) -> anyhow::Result<u8> {
    match sigtest::run(rules) {
        Ok(outcome) => {
            let r = render::outcome(&outcome, format, require_coverage);
            print!("{}", r.out);
            eprint!("{}", r.err);
            Ok(if outcome.passes(require_coverage) {
                EXIT_OK
            } else {
                EXIT_LINT
            })
        }
        Err(SigTestError::Lint { result, files }) => {
            super::lint::report(&result, format, files);
            eprintln!("test: the rules do not build (lint errors above): nothing was tested");
            Ok(EXIT_LINT)
        }
        Err(e @ SigTestError::TestFiles(_)) => {
            if let SigTestError::TestFiles(problems) = &e {
                for d in problems {
                    println!("{}", d.render(format));
                }
            }
            eprintln!("test: {e}");
            Ok(EXIT_ERROR)
        }
        Err(e) => Err(e.into()),
    }
}
