//! Per-signature tests: every signature detects the samples its tests say it must, and none
//! of those it must ignore, judged by the real engine on a database built from the rules.
//!
//! [`run`] builds the rules directory in memory (signed with a throwaway key), reads every
//! `*.test.toml` under it ([`testfile`]), resolves each sample once ([`samples`]), scans each
//! sample once on every core, and judges each (signature, sample) pair ([`verdict`]): a
//! detection signature must (or must not) be among the findings; an allowlist entry must (or
//! must not) clear the sample. [`render`] prints the outcome for people, tools and GitHub.

pub mod render;
pub mod samples;
pub mod testfile;
pub mod verdict;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use thiserror::Error;
use vigil_compiler::{
    sources, BuildError, BuildOptions, Catalog, Diagnostic, LintResult, Severity, SignatureKind,
    SourceError,
};
use vigil_format::container::verify;
use vigil_format::{FormatError, KeyError, SecretKey};
use vigil_scan_core::{Engine, EngineError, Limits};

use samples::{Root, Samples};
use testfile::{SampleSource, SUFFIX};
pub use verdict::{Expect, Failure, Scanned};

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SigTestError {
    #[error(transparent)]
    Sources(#[from] SourceError),
    #[error("no rule files found in {0}")]
    NoRules(String),
    /// The rules do not build: nothing was tested. `files` is how many rule files were read.
    #[error("{} lint error(s): the rules do not build, nothing was tested", .result.errors())]
    Lint {
        result: Box<LintResult>,
        files: usize,
    },
    /// Problems in the test files (syntax, unknown signatures, missing samples...), every one
    /// found: nothing was run.
    #[error("{} problem(s) in the test files: nothing was run", .0.len())]
    TestFiles(Vec<Diagnostic>),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("making a throwaway signing key: {0}")]
    Key(#[from] KeyError),
    #[error("building the rules: {0}")]
    Build(BuildError),
    #[error("verifying the database just built: {0}")]
    Format(#[from] FormatError),
    #[error("loading the database just built: {0}")]
    Engine(#[from] EngineError),
}

/// How many tests of each direction name one signature.
#[derive(Clone, Debug, Serialize)]
pub struct SignatureCoverage {
    pub name: String,
    pub kind: SignatureKind,
    pub file: String,
    pub line: usize,
    /// Samples it must detect (or, for an allowlist entry, clear).
    pub positive: usize,
    /// Samples it must ignore.
    pub negative: usize,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Coverage {
    pub signatures: Vec<SignatureCoverage>,
}

impl Coverage {
    pub fn with_positive(&self) -> usize {
        self.signatures.iter().filter(|s| s.positive > 0).count()
    }

    pub fn with_negative(&self) -> usize {
        self.signatures.iter().filter(|s| s.negative > 0).count()
    }

    /// Every signature has at least one positive and one negative test.
    pub fn complete(&self) -> bool {
        self.signatures
            .iter()
            .all(|s| s.positive > 0 && s.negative > 0)
    }
}

/// What a run found.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub test_files: usize,
    /// `[[test]]` tables.
    pub tests: usize,
    /// (signature, sample) pairs judged.
    pub cases: usize,
    /// Distinct samples scanned.
    pub samples: usize,
    pub failures: Vec<Failure>,
    pub coverage: Coverage,
}

impl Outcome {
    /// The tests pass (and, if `require_coverage`, every signature has both kinds of test).
    pub fn passes(&self, require_coverage: bool) -> bool {
        self.failures.is_empty() && (!require_coverage || self.coverage.complete())
    }
}

/// One judgement to make: `signature` against sample `sample`, named at `test_file:test_line`.
struct Case {
    signature: String,
    expect: Expect,
    sample: usize,
    test_file: String,
    test_line: usize,
}

/// Runs every test under `rules_dir` (see the module documentation).
pub fn run(rules_dir: &Path) -> Result<Outcome, SigTestError> {
    let files = sources::collect(&[rules_dir.to_path_buf()])?;
    if files.is_empty() {
        return Err(SigTestError::NoRules(rules_dir.display().to_string()));
    }
    // A throwaway key: the database lives only in memory, for the engine of this run.
    let key = SecretKey::generate()?;
    let built = match vigil_compiler::build(&files, &key, &BuildOptions::new(1)) {
        Ok(b) => b,
        Err(BuildError::Lint(result)) => {
            return Err(SigTestError::Lint {
                result,
                files: files.len(),
            })
        }
        Err(e) => return Err(SigTestError::Build(e)),
    };
    let catalog = Catalog::from_files(&files);

    let test_files = find_test_files(rules_dir)?;
    let root = Root::new(rules_dir).map_err(|source| SigTestError::Io {
        path: rules_dir.display().to_string(),
        source,
    })?;
    let mut samples = Samples::default();
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    let mut tests = 0;
    for path in &test_files {
        let shown = path.display().to_string();
        let bytes = fs::read(path).map_err(|source| SigTestError::Io {
            path: shown.clone(),
            source,
        })?;
        let problem = |line, column, code: &str, message: String| Diagnostic {
            file: shown.clone(),
            line,
            column,
            severity: Severity::Error,
            code: code.to_string(),
            message,
            source_line: None,
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            problems.push(problem(1, 1, "test/utf8", "test file is not UTF-8".into()));
            continue;
        };
        let (parsed, ps) = testfile::parse(text);
        problems.extend(
            ps.into_iter()
                .map(|p| problem(p.line, p.column, p.code, p.message)),
        );
        let dir = path.parent().unwrap_or(rules_dir);
        for t in parsed {
            tests += 1;
            if t.signature.is_empty() {
                continue; // reported by the parser
            }
            if catalog.get(&t.signature).is_none() {
                let hint = similar(&catalog, &t.signature)
                    .map(|n| format!(" (did you mean {n:?}?)"))
                    .unwrap_or_default();
                problems.push(problem(
                    t.line,
                    t.column,
                    "test/unknown-signature",
                    format!(
                        "no signature named {:?} in {}{hint}",
                        t.signature,
                        rules_dir.display()
                    ),
                ));
                continue;
            }
            let named = t
                .detect
                .iter()
                .map(|s| (Expect::Detect, s))
                .chain(t.ignore.iter().map(|s| (Expect::Ignore, s)));
            for (expect, s) in named {
                let sample = match &s.source {
                    SampleSource::Path(rel) => match samples.file(&root, dir, rel) {
                        Ok(i) => i,
                        Err(message) => {
                            problems.push(problem(s.line, s.column, "test/sample", message));
                            continue;
                        }
                    },
                    SampleSource::Inline { name, bytes } => samples.inline(name, bytes),
                };
                cases.push(Case {
                    signature: t.signature.clone(),
                    expect,
                    sample,
                    test_file: shown.clone(),
                    test_line: s.line,
                });
            }
        }
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        return Err(SigTestError::TestFiles(problems));
    }

    let engine = Engine::from_verified(&verify(&built.bytes, &[key.public()])?, None)?;
    let kinds: HashMap<&str, SignatureKind> = catalog
        .signatures
        .iter()
        .map(|s| (s.name.as_str(), s.kind))
        .collect();
    let mut wants_allow = vec![false; samples.len()];
    for c in &cases {
        if kinds.get(c.signature.as_str()) == Some(&SignatureKind::Allow) {
            wants_allow[c.sample] = true;
        }
    }
    let scanned = scan_all(&engine, &samples, &wants_allow)?;

    let texts: HashMap<&str, &str> = files
        .iter()
        .filter_map(|f| Some((f.display_path.as_str(), f.text.as_ref().ok()?.as_str())))
        .collect();
    let mut failures = Vec::new();
    let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
    for c in &cases {
        let entry = counts.entry(c.signature.as_str()).or_default();
        match c.expect {
            Expect::Detect => entry.0 += 1,
            Expect::Ignore => entry.1 += 1,
        }
        let (Some(sig), Some(sample), Some(result)) = (
            catalog.get(&c.signature),
            samples.get(c.sample),
            scanned.get(c.sample),
        ) else {
            continue;
        };
        if let Some(v) = verdict::judge(sig, c.expect, &sample.label, result) {
            let source_line = texts
                .get(sig.file.as_str())
                .and_then(|t| vigil_compiler::diag::source_line(t, sig.line));
            let column = source_line
                .as_deref()
                .and_then(|l| l.find(&sig.name).map(|b| l[..b].chars().count() + 1))
                .unwrap_or(1);
            failures.push(Failure {
                code: v.code,
                signature: sig.name.clone(),
                kind: sig.kind,
                file: sig.file.clone(),
                line: sig.line,
                column,
                expect: c.expect,
                sample: sample.label.clone(),
                test_file: c.test_file.clone(),
                test_line: c.test_line,
                message: v.message,
                source_line,
            });
        }
    }
    let coverage = Coverage {
        signatures: catalog
            .signatures
            .iter()
            .map(|s| {
                let (positive, negative) = counts.get(s.name.as_str()).copied().unwrap_or_default();
                SignatureCoverage {
                    name: s.name.clone(),
                    kind: s.kind,
                    file: s.file.clone(),
                    line: s.line,
                    positive,
                    negative,
                }
            })
            .collect(),
    };
    Ok(Outcome {
        test_files: test_files.len(),
        tests,
        cases: cases.len(),
        samples: samples.len(),
        failures,
        coverage,
    })
}

/// A signature whose name differs from `name` only in case or in `.`, `-` and `_` (YARA
/// identifiers cannot hold `.` or `-`, so names are easily mixed up between formats).
fn similar<'c>(catalog: &'c Catalog, name: &str) -> Option<&'c str> {
    let fold = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '.' | '-' | '_'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let want = fold(name);
    catalog
        .signatures
        .iter()
        .find(|s| fold(&s.name) == want)
        .map(|s| s.name.as_str())
}

/// Scans every sample once, on every core, each thread with its own scanner. Reading a
/// sample that resolved a moment ago can still fail: that is an I/O error, not a verdict.
fn scan_all(
    engine: &Engine,
    samples: &Samples,
    wants_allow: &[bool],
) -> Result<Vec<Scanned>, SigTestError> {
    let n = samples.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(n)
        .max(1);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Scanned>>> = Mutex::new(vec![None; n]);
    let error: Mutex<Option<SigTestError>> = Mutex::new(None);
    let limits = Limits::default();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut scanner = engine.scanner();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(sample) = samples.get(i) else { break };
                    let bytes = match sample.read() {
                        Ok(b) => b,
                        Err(source) => {
                            if let Ok(mut e) = error.lock() {
                                e.get_or_insert(SigTestError::Io {
                                    path: sample.label.clone(),
                                    source,
                                });
                            }
                            // The run fails anyway: the other threads stop too.
                            next.store(n, Ordering::Relaxed);
                            break;
                        }
                    };
                    let report = scanner
                        .scan_bytes(&bytes, &limits)
                        .map_err(|e| e.to_string());
                    let allow = if wants_allow.get(i).copied().unwrap_or(false) {
                        engine.allowlist_entries(&bytes)
                    } else {
                        Vec::new()
                    };
                    if let Ok(mut r) = results.lock() {
                        if let Some(slot) = r.get_mut(i) {
                            *slot = Some(Scanned { report, allow });
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = error.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            r.unwrap_or(Scanned {
                report: Err("not scanned".into()),
                allow: Vec::new(),
            })
        })
        .collect())
}

/// `*.test.toml` files under `dir`, sorted; hidden entries skipped and symlinked directories
/// not followed, as for rule files.
pub fn find_test_files(dir: &Path) -> Result<Vec<PathBuf>, SigTestError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SigTestError> {
        let io = |source| SigTestError::Io {
            path: dir.display().to_string(),
            source,
        };
        for entry in fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let ft = entry.file_type().map_err(io)?;
            if ft.is_dir() {
                walk(&entry.path(), out)?;
            } else if name.ends_with(SUFFIX) && entry.path().is_file() {
                out.push(entry.path());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort();
    Ok(out)
}
