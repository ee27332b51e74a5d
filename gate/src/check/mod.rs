//! `check`: the goodware false-positive check and the per-rule cost profile, in one scan.
//!
//! Input: a rule set (a rules directory, built in memory with a throwaway key, or a signed
//! database), optionally a baseline database (the one live today), and a goodware corpus (local
//! directories, or an S3 prefix). Output: a [`CheckReport`] that [`CheckReport::passed`] or
//! not, rendered by [`render`] as tables, one JSON document, or GitHub annotations.
//!
//! - **False positives.** The corpus is scanned with the full engine: YARA, body and hash
//!   signatures, with allowlists applied. Every detection is a false positive, reported per
//!   signature (files matched and the first [`PATHS_PER_SIGNATURE`] paths) at the signature's
//!   file:line. With a baseline, a (signature name, file) pair the baseline also reports is
//!   *old*: listed, never failing. Only *new* pairs fail. Identity is by name, not by the
//!   signature's canonical hash: a rule edited in place that still fires on the same file was
//!   already a false positive in production, and that is what the author needs to hear. The
//!   baseline scans only the files the candidate detected something in (a file it detects
//!   nothing in can hold no new pair), so a baseline costs almost nothing.
//! - **Cost.** Each scan thread's yara-x rules profile (condition and pattern-matching time
//!   per rule) is merged when the thread ends and normalised to milliseconds per GB of corpus
//!   (10^9 bytes); rules over the budget are errors. yara-x itemises a rule only once it took
//!   more than 100 ms in one scan thread, so on a small corpus, or spread over many threads, a
//!   cheap rule is not itemised at all: [`CostProfile::itemised_above_ms_per_gb`] says where
//!   that floor lies on this run, and the report warns when the budget is below it. Body
//!   signatures report prefilter candidates and confirmations per MB (10^6 bytes). Rules that
//!   yara-x warns are slow at compile time (slow patterns, loops over the file) are cost errors
//!   too, at the rule's line.
//! - **Scale.** Directories go through scan-core's one parallel scan ([`Pool`]); S3 objects
//!   are listed and fetched concurrently ([`s3`]) and scanned by as many threads. Memory is
//!   bounded: per signature a count and a few paths, a bounded list of unreadable files, the
//!   pool's bounded queue. Unreadable files are counted and listed, never fatal.
//!
//! [`run`] blocks; call it from a plain thread (or `spawn_blocking`), not from async code.

mod cost;
mod engines;
mod falsepos;
mod render;
mod s3;
mod worker;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use thiserror::Error;
use vigil_compiler::{Catalog, CatalogError, LintResult, SignatureKind, SourceError};
use vigil_format::{FormatError, PublicKey};
use vigil_scan_core::{EngineError, Limits, Pool, PoolError, Targets};

pub use render::render;
pub use s3::S3Goodware;

use cost::ProfileAcc;
use falsepos::Tally;
use worker::{GateWorker, Shared};

/// Default per-rule budget, in milliseconds of yara-x time per GB of corpus.
///
/// Measured (benchsuite `gate`, one thread, so yara-x itemises every rule above about 100
/// ms/GB; two runs on a shared 2-core machine) with the community YARA set as vigil's lint
/// accepts it plus rules-src (3444 rules) on about 0.9 GB of /usr/bin and /usr/lib: all but
/// about 10 rules stay under the itemisation floor; the sane ones that show (hex regexes such
/// as `Big_Numbers0`, constant tables) cost 120-530 ms/GB. Above them, with nothing in
/// between: a rule hashing every file (`Maldoc_APT10_MenuPass`, `hash.md5(0, filesize)`:
/// 1600-1900) and one of short `ascii wide` strings that hit everywhere
/// (`FE_LEGALSTRIKE_MACRO_2`: 1700-1900, 6500 on a text-heavy corpus); then the community
/// files lint refuses as slow: 2700 (peid entry-point rules) to 70000-720000 (`domain`,
/// `contains_base64`: regexes with no atom). 1000 ms/GB sits in the gap, about twice the
/// costliest sane rule and below every rule that reads whole files. For scale, the whole
/// community set costs about 22-30 s per GB on one thread: a rule at the budget is 4% of it.
/// yara-x times rules by the clock inside the scan thread, so a loaded machine inflates
/// every figure alike; the factor of two on either side leaves room for that.
pub const DEFAULT_MAX_RULE_MS_PER_GB: f64 = 1000.0;
/// Rows of each cost table by default.
pub const DEFAULT_TOP: usize = 10;
/// Paths kept per signature (new and old each): enough to act on, bounded on any corpus.
pub const PATHS_PER_SIGNATURE: usize = 5;
/// Unreadable files listed by path (all are counted).
pub const ERRORS_LISTED: usize = 20;
/// yara-x's own threshold: a rule is itemised once it took this long in one scanner.
pub const YARA_ITEMISE_MS: f64 = 100.0;

/// The rule set under test.
#[derive(Clone, Debug)]
pub enum Rules {
    /// Rule source directories (or files): linted with slow rules as warnings, built in memory
    /// with a throwaway key. Missing meta is only a warning, so third-party sets check too.
    Sources(Vec<PathBuf>),
    /// A signed database, verified with [`CheckRequest::trusted`].
    Database(Vec<u8>),
}

/// Where the goodware is.
#[derive(Clone, Debug)]
pub enum Goodware {
    /// Directories (walked recursively) and files.
    Paths(Vec<PathBuf>),
    S3(S3Goodware),
}

impl Goodware {
    /// `DIR` or `s3://BUCKET/PREFIX` arguments, as the command line gives them; several
    /// directories may be given, an S3 prefix only alone. The S3 connection options start
    /// empty (set them on the returned [`S3Goodware`]).
    pub fn parse(args: &[String]) -> Result<Self, CheckError> {
        let s3: Vec<&String> = args.iter().filter(|a| a.starts_with("s3://")).collect();
        match (s3.as_slice(), args.len()) {
            ([], 0) => Err(CheckError::Usage("no goodware given".into())),
            ([], _) => Ok(Goodware::Paths(args.iter().map(PathBuf::from).collect())),
            ([one], 1) => Ok(Goodware::S3(S3Goodware::parse(one)?)),
            _ => Err(CheckError::Usage(
                "an s3:// goodware location must be the only one".into(),
            )),
        }
    }

    fn label(&self) -> String {
        match self {
            Goodware::Paths(p) => {
                let mut names: Vec<String> =
                    p.iter().take(3).map(|p| p.display().to_string()).collect();
                if p.len() > 3 {
                    names.push(format!("and {} more paths", p.len() - 3));
                }
                names.join(", ")
            }
            Goodware::S3(s) => s.url(),
        }
    }
}

/// Files and bytes scanned so far (for a progress bar).
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub files: u64,
    pub bytes: u64,
    /// Files that could not be scanned.
    pub errors: u64,
}

/// What to check. [`CheckRequest::new`] fills in the defaults.
pub struct CheckRequest<'a> {
    pub rules: Rules,
    /// Keys a [`Rules::Database`] and the baseline must be signed with.
    pub trusted: Vec<PublicKey>,
    /// The database live today (a file, or downloaded through TUF by the caller): only false
    /// positives it does not have fail.
    pub baseline: Option<Vec<u8>>,
    pub goodware: Goodware,
    /// Scan threads (at least one).
    pub threads: usize,
    pub max_rule_ms_per_gb: f64,
    /// Rows of each cost table.
    pub top: usize,
    pub limits: Limits,
    /// Called after every file, from the scan threads.
    pub progress: Option<&'a (dyn Fn(Progress) + Sync)>,
}

impl<'a> CheckRequest<'a> {
    /// Every core, the default budget and top, scan-core's default limits, no baseline.
    pub fn new(rules: Rules, goodware: Goodware) -> Self {
        Self {
            rules,
            trusted: Vec::new(),
            baseline: None,
            goodware,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_rule_ms_per_gb: DEFAULT_MAX_RULE_MS_PER_GB,
            top: DEFAULT_TOP,
            limits: Limits::default(),
            progress: None,
        }
    }
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CheckError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Sources(#[from] SourceError),
    #[error("no rule files found in {0}")]
    NoRules(String),
    /// The rules do not compile; the diagnostics are inside.
    #[error("{} lint error(s): the rules do not compile", .0.errors())]
    Lint(Box<LintResult>),
    #[error("building the rules in memory: {0}")]
    Build(String),
    #[error("the database under test: {0}")]
    Database(EngineError),
    #[error("the database under test: {0}")]
    DatabaseFormat(FormatError),
    #[error("the database under test: {0}")]
    Catalog(CatalogError),
    #[error("the baseline database: {0}")]
    Baseline(EngineError),
    #[error("goodware {path}: {source}")]
    Goodware {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("S3 goodware {location}: {message}")]
    S3 { location: String, message: String },
    #[error("the goodware corpus ({0}) has no file that could be scanned")]
    EmptyCorpus(String),
    #[error("scan: {0}")]
    Pool(#[from] PoolError),
}

/// The rule set checked.
#[derive(Clone, Debug, Serialize)]
pub struct RulesSummary {
    pub yara: usize,
    pub body: usize,
    pub hash: usize,
    pub allow: usize,
    /// Lint warnings of a [`Rules::Sources`] set (missing meta, ...; slow rules are in the
    /// cost section): `vigil-build lint` lists them.
    pub lint_warnings: usize,
}

/// The corpus as scanned.
#[derive(Clone, Debug, Serialize)]
pub struct CorpusSummary {
    pub source: String,
    /// Files scanned.
    pub files: u64,
    pub bytes: u64,
    /// Not scanned by choice: special files, over the size limit.
    pub skipped: u64,
    /// Could not be scanned: unreadable, vanished, timed out.
    pub errors: u64,
    /// The first [`ERRORS_LISTED`] of them.
    pub error_list: Vec<FileError>,
    /// Files an allowlist entry cleared of every detection.
    pub allowlisted: u64,
    pub threads: usize,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct FileError {
    pub path: String,
    pub error: String,
}

/// Files one signature matched, and the first few of them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Matches {
    pub files: u64,
    pub paths: Vec<String>,
}

/// One signature that fired on goodware.
#[derive(Clone, Debug, Serialize)]
pub struct FalsePositive {
    pub signature: String,
    pub kind: SignatureKind,
    /// Where it is defined (see [`vigil_compiler::Signature`]); none if the catalog lacks it.
    pub file: Option<String>,
    pub line: Option<usize>,
    /// Pairs the baseline does not report (all of them without a baseline): these fail.
    pub new: Matches,
    /// Pairs the baseline reports too: listed only.
    pub old: Matches,
}

/// A YARA rule's cost on this corpus.
#[derive(Clone, Debug, Serialize)]
pub struct YaraCost {
    pub rule: String,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub condition_ms: f64,
    pub patterns_ms: f64,
    pub ms_per_gb: f64,
    pub over_budget: bool,
}

/// A body signature's prefilter work on this corpus.
#[derive(Clone, Debug, Serialize)]
pub struct BodyCostRow {
    pub signature: String,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub candidates: u64,
    pub confirmations: u64,
    pub candidates_per_mb: f64,
    pub confirmations_per_mb: f64,
}

/// A rule yara-x warned is slow when compiling it.
#[derive(Clone, Debug, Serialize)]
pub struct SlowRule {
    pub rule: String,
    pub file: String,
    pub line: usize,
    /// yara-x's warning code (`yara/slow_pattern`, ...) and message, at its own line.
    pub code: String,
    pub message: String,
    pub warning_line: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct CostProfile {
    pub max_rule_ms_per_gb: f64,
    /// Below this a rule may not be itemised by yara-x on this run (100 ms in one scan
    /// thread, with the corpus spread over the threads that ran): the budget is enforced
    /// only above it.
    pub itemised_above_ms_per_gb: f64,
    /// The `top` costliest YARA rules, costliest first.
    pub yara_top: Vec<YaraCost>,
    /// Rules yara-x itemised in all.
    pub yara_itemised: usize,
    /// Every rule over the budget (errors), costliest first.
    pub over_budget: Vec<YaraCost>,
    /// The `top` body signatures by candidates.
    pub body_top: Vec<BodyCostRow>,
    /// Rules yara-x warns are slow (errors).
    pub slow: Vec<SlowRule>,
}

/// Everything `check` found. Serialized as is for `--format json`.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub passed: bool,
    pub rules: RulesSummary,
    /// The baseline's database version, when there was one.
    pub baseline_version: Option<u64>,
    pub corpus: CorpusSummary,
    /// By signature: new ones first, then by files matched.
    pub false_positives: Vec<FalsePositive>,
    pub cost: CostProfile,
}

impl CheckReport {
    /// No new false positive, no rule over the budget, no slow rule.
    pub fn passed(&self) -> bool {
        self.passed
    }

    pub fn new_false_positives(&self) -> usize {
        self.false_positives
            .iter()
            .filter(|f| f.new.files > 0)
            .count()
    }

    /// Why it failed, one phrase per kind of failure (empty when it passed).
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let n = self.new_false_positives();
        if n > 0 {
            out.push(format!("{n} signature(s) with new false positives"));
        }
        if !self.cost.over_budget.is_empty() {
            out.push(format!(
                "{} rule(s) over {} ms/GB",
                self.cost.over_budget.len(),
                self.cost.max_rule_ms_per_gb
            ));
        }
        if !self.cost.slow.is_empty() {
            out.push(format!(
                "{} rule(s) yara-x flags as slow",
                self.cost.slow.len()
            ));
        }
        out
    }
}

/// Runs the check: loads the rules (and the baseline), scans the corpus, and measures.
pub fn run(req: &CheckRequest<'_>) -> Result<CheckReport, CheckError> {
    if let Goodware::Paths(paths) = &req.goodware {
        if paths.is_empty() {
            return Err(CheckError::Usage("no goodware given".into()));
        }
        // A missing corpus is a mistake in the command, not a clean result.
        for p in paths {
            std::fs::metadata(p).map_err(|source| CheckError::Goodware {
                path: p.display().to_string(),
                source,
            })?;
        }
    }
    let loaded = engines::load_rules(&req.rules, &req.trusted)?;
    let baseline = match &req.baseline {
        Some(bytes) => Some(engines::load_baseline(bytes, &req.trusted)?),
        None => None,
    };
    let threads = req.threads.max(1);
    let shared = Shared {
        tally: Mutex::new(Tally::default()),
        profile: Mutex::new(ProfileAcc::default()),
        progress: req.progress,
    };
    let make = || {
        GateWorker::new(
            &loaded.engine,
            baseline.as_ref().map(|b| &b.engine),
            &shared,
        )
    };
    let started = Instant::now();
    match &req.goodware {
        Goodware::Paths(paths) => {
            let targets = Targets {
                paths,
                recursive: true,
                exclude: &[],
            };
            Pool::new(&loaded.engine, threads, req.limits).scan_with(
                &targets,
                &make,
                &|| false,
                &|s| {
                    shared.record(&s.path.display().to_string(), s.outcome);
                    std::ops::ControlFlow::Continue(())
                },
            )?;
        }
        Goodware::S3(loc) => s3::scan(loc, threads, &req.limits, &make, &|name, outcome| {
            shared.record(&name, outcome)
        })?,
    }
    let seconds = started.elapsed().as_secs_f64();
    let tally = shared
        .tally
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let profile = shared
        .profile
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if tally.files == 0 {
        return Err(CheckError::EmptyCorpus(req.goodware.label()));
    }
    let false_positives = tally.false_positives(&loaded.catalog);
    let cost = cost::profile(
        profile,
        tally.bytes,
        req.max_rule_ms_per_gb,
        req.top,
        &loaded.catalog,
        loaded.slow,
    );
    let corpus = CorpusSummary {
        source: req.goodware.label(),
        files: tally.files,
        bytes: tally.bytes,
        skipped: tally.skipped,
        errors: tally.errors,
        error_list: tally.error_list,
        allowlisted: tally.allowlisted,
        threads,
        seconds,
    };
    let passed = false_positives.iter().all(|f| f.new.files == 0)
        && cost.over_budget.is_empty()
        && cost.slow.is_empty();
    Ok(CheckReport {
        passed,
        rules: loaded.summary,
        baseline_version: baseline.map(|b| b.version),
        corpus,
        false_positives,
        cost,
    })
}

/// The catalog entry for `name`: its kind, file and line.
fn locate(catalog: &Catalog, name: &str) -> (Option<SignatureKind>, Option<String>, Option<usize>) {
    match catalog.get(name) {
        Some(s) => (Some(s.kind), Some(s.file.clone()), Some(s.line)),
        None => (None, None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goodware_arguments() {
        let paths = Goodware::parse(&["/usr/bin".into(), "/usr/lib".into()]).unwrap();
        assert!(matches!(paths, Goodware::Paths(p) if p.len() == 2));
        match Goodware::parse(&["s3://corpora/goodware/linux/".into()]).unwrap() {
            Goodware::S3(s) => {
                assert_eq!(
                    (s.bucket.as_str(), s.prefix.as_str()),
                    ("corpora", "goodware/linux")
                );
                assert_eq!(s.url(), "s3://corpora/goodware/linux");
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            vec![],
            vec!["s3://".to_string()],
            vec!["s3://a/b".to_string(), "/usr/bin".to_string()],
        ] {
            assert!(
                matches!(Goodware::parse(&bad), Err(CheckError::Usage(_))),
                "{bad:?}"
            );
        }
    }
}
