//! Build: lint, then lay the canonical sources into a signed database.

use thiserror::Error;
use vigil_format::container::{DatabaseBuilder, SectionKind, DEFAULT_LEVEL};
use vigil_format::sections::{encode_lines, SourceFile, SourceFiles};
use vigil_format::{FormatError, SecretKey};

use crate::lint::{lint_with, LintOptions, LintResult};
use crate::sources::{HashFileKind, RuleFile, RuleKind};

#[derive(Clone, Debug)]
pub struct BuildOptions {
    pub db_version: u64,
    /// Seconds since the epoch; callers take it from SOURCE_DATE_EPOCH so builds reproduce.
    pub build_time: u64,
    pub level: i32,
    pub deny_warnings: bool,
}

impl BuildOptions {
    pub fn new(db_version: u64) -> Self {
        Self {
            db_version,
            build_time: 0,
            level: DEFAULT_LEVEL,
            deny_warnings: false,
        }
    }
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("{} lint error(s), {} warning(s): nothing was built", .0.errors(), .0.warnings())]
    Lint(Box<LintResult>),
    #[error("no rule files to build")]
    Empty,
    #[error(transparent)]
    Format(#[from] FormatError),
}

pub struct Built {
    pub bytes: Vec<u8>,
    pub lint: LintResult,
}

pub fn build(
    files: &[RuleFile],
    key: &SecretKey,
    opts: &BuildOptions,
) -> Result<Built, BuildError> {
    build_with(files, key, opts, &LintOptions::default())
}

/// [`build`] linting with other [`LintOptions`] (the release gate's `check` builds a
/// throwaway database of a rule set whose slow rules it is there to report).
pub fn build_with(
    files: &[RuleFile],
    key: &SecretKey,
    opts: &BuildOptions,
    lint_opts: &LintOptions,
) -> Result<Built, BuildError> {
    if files.is_empty() {
        return Err(BuildError::Empty);
    }
    let result = lint_with(files, lint_opts);
    if !result.passes(opts.deny_warnings) {
        return Err(BuildError::Lint(Box::new(result)));
    }
    let mut yara: Vec<SourceFile> = files
        .iter()
        .filter(|f| f.kind == RuleKind::Yara)
        .filter_map(|f| {
            f.text.as_ref().ok().map(|text| SourceFile {
                path: f.rel_path.clone(),
                text: text.clone(),
            })
        })
        .collect();
    yara.sort_by(|a, b| a.path.cmp(&b.path));

    let mut b = DatabaseBuilder::new(opts.db_version, opts.build_time);
    b.level = opts.level;
    b.section(
        SectionKind::Yara,
        count(result.yara_rules.len()),
        SourceFiles::encode(&yara),
    );
    b.section(
        SectionKind::Ndb,
        count(result.ndb.len()),
        encode_lines(&result.ndb),
    );
    for (kind, section) in [
        (HashFileKind::Hdb, SectionKind::Hdb),
        (HashFileKind::Hsb, SectionKind::Hsb),
        (HashFileKind::Fp, SectionKind::Fp),
        (HashFileKind::Sfp, SectionKind::Sfp),
    ] {
        if let Some(lines) = result.hashes.get(&kind) {
            b.section(section, count(lines.len()), encode_lines(lines));
        }
    }
    let bytes = b.build(key)?;
    Ok(Built {
        bytes,
        lint: result,
    })
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
