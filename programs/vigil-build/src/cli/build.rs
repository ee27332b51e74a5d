use std::path::PathBuf;

use anyhow::Context;
use vigil_compiler::{sources, BuildError, BuildOptions, OutputFormat};

use super::files::{load_secret, write_atomic};
use super::{EXIT_LINT, EXIT_OK};

pub struct Request {
    pub rules: PathBuf,
    pub key: String,
    pub version: u64,
    pub output: PathBuf,
    pub format: OutputFormat,
    pub deny_warnings: bool,
    pub level: i32,
}

pub fn run(req: &Request) -> anyhow::Result<u8> {
    let key = load_secret(&req.key)?;
    let build_time = source_date_epoch()?;
    let files = sources::collect(std::slice::from_ref(&req.rules))?;
    let opts = BuildOptions {
        db_version: req.version,
        build_time,
        level: req.level,
        deny_warnings: req.deny_warnings,
    };
    match vigil_compiler::build(&files, &key, &opts) {
        Ok(built) => {
            super::lint::report(&built.lint, req.format, files.len());
            write_atomic(&req.output, &built.bytes)?;
            eprintln!(
                "built {} (version {}, {} bytes)",
                req.output.display(),
                req.version,
                built.bytes.len()
            );
            Ok(EXIT_OK)
        }
        Err(BuildError::Lint(result)) => {
            super::lint::report(&result, req.format, files.len());
            eprintln!(
                "build refused: fix the lint errors above; {} was not written",
                req.output.display()
            );
            Ok(EXIT_LINT)
        }
        Err(e) => Err(e).with_context(|| format!("building {}", req.rules.display())),
    }
}

/// Builds record SOURCE_DATE_EPOCH, not the wall clock, so they reproduce.
pub fn source_date_epoch() -> anyhow::Result<u64> {
    Ok(match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        Err(_) => 0,
    })
}
