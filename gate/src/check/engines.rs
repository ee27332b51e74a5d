//! The engines a check scans with: the rule set under test (from sources, built in memory
//! with a throwaway key, or a verified database), with its catalog and the rules yara-x warns
//! are slow; and the baseline.

use vigil_compiler::{
    build_with, lint_with, sources, BuildError, BuildOptions, Catalog, Diagnostic, LintOptions,
    RuleFile, RuleKind, Severity, SignatureKind, SLOW_YARA_CODES,
};
use vigil_format::container::verify;
use vigil_format::sections::SourceFiles;
use vigil_format::{PublicKey, SecretKey, SectionKind};
use vigil_scan_core::Engine;

use super::{CheckError, Rules, RulesSummary, SlowRule};

pub(crate) struct Loaded {
    pub engine: Engine,
    pub catalog: Catalog,
    pub slow: Vec<SlowRule>,
    pub summary: RulesSummary,
}

pub(crate) struct Baseline {
    pub engine: Engine,
    pub version: u64,
}

const LENIENT: LintOptions = LintOptions {
    slow_as_warnings: true,
};

pub(crate) fn load_rules(rules: &Rules, trusted: &[PublicKey]) -> Result<Loaded, CheckError> {
    match rules {
        Rules::Sources(paths) => from_sources(paths),
        Rules::Database(bytes) => from_database(bytes, trusted),
    }
}

fn from_sources(paths: &[std::path::PathBuf]) -> Result<Loaded, CheckError> {
    let files = sources::collect(paths)?;
    if files.is_empty() {
        return Err(CheckError::NoRules(
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    // The database never leaves this process: a fresh key proves nothing and needs no keeping.
    let key = SecretKey::generate().map_err(|e| CheckError::Build(e.to_string()))?;
    let built = match build_with(&files, &key, &BuildOptions::new(0), &LENIENT) {
        Ok(b) => b,
        Err(BuildError::Lint(r)) => return Err(CheckError::Lint(r)),
        Err(e) => return Err(CheckError::Build(e.to_string())),
    };
    let v = verify(&built.bytes, &[key.public()]).map_err(CheckError::DatabaseFormat)?;
    let engine = Engine::from_verified(&v, None).map_err(CheckError::Database)?;
    let catalog = Catalog::from_files(&files);
    let slow = slow_rules(&built.lint.diagnostics, &catalog);
    let lint_warnings = built
        .lint
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning && !is_slow(d))
        .count();
    Ok(Loaded {
        summary: summary(&engine, lint_warnings),
        engine,
        catalog,
        slow,
    })
}

fn from_database(bytes: &[u8], trusted: &[PublicKey]) -> Result<Loaded, CheckError> {
    let v = verify(bytes, trusted).map_err(CheckError::DatabaseFormat)?;
    let engine = Engine::from_verified(&v, None).map_err(CheckError::Database)?;
    let catalog = Catalog::from_database(&v).map_err(CheckError::Catalog)?;
    // The embedded sources, linted as a build would but with slow rules as warnings: a
    // database built elsewhere (or by an older vigil) may hold some.
    let mut slow = Vec::new();
    if let Some(raw) = v
        .section(SectionKind::Yara)
        .map_err(CheckError::DatabaseFormat)?
    {
        let files: Vec<RuleFile> = SourceFiles::decode(&raw)
            .map_err(CheckError::DatabaseFormat)?
            .into_iter()
            .map(|f| RuleFile {
                rel_path: f.path.clone(),
                display_path: f.path,
                kind: RuleKind::Yara,
                text: Ok(f.text),
            })
            .collect();
        slow = slow_rules(&lint_with(&files, &LENIENT).diagnostics, &catalog);
    }
    Ok(Loaded {
        summary: summary(&engine, 0),
        engine,
        catalog,
        slow,
    })
}

pub(crate) fn load_baseline(bytes: &[u8], trusted: &[PublicKey]) -> Result<Baseline, CheckError> {
    let engine = Engine::load(bytes, trusted).map_err(CheckError::Baseline)?;
    Ok(Baseline {
        version: engine.db_version(),
        engine,
    })
}

fn summary(engine: &Engine, lint_warnings: usize) -> RulesSummary {
    let (yara, body, hash, allow) = engine.counts();
    RulesSummary {
        yara,
        body,
        hash,
        allow,
        lint_warnings,
    }
}

fn is_slow(d: &Diagnostic) -> bool {
    SLOW_YARA_CODES.contains(&d.code.as_str())
}

/// Rules with a slow-rule warning, at the rule (the last YARA rule of the same file that starts
/// at or before the warning's line), each once with its first warning.
fn slow_rules(diags: &[Diagnostic], catalog: &Catalog) -> Vec<SlowRule> {
    let mut out: Vec<SlowRule> = diags
        .iter()
        .filter(|d| is_slow(d))
        .map(|d| {
            let rule = catalog
                .signatures
                .iter()
                .filter(|s| s.kind == SignatureKind::Yara && s.file == d.file && s.line <= d.line)
                .max_by_key(|s| s.line);
            SlowRule {
                rule: rule.map_or_else(|| "?".to_string(), |s| s.name.clone()),
                file: d.file.clone(),
                line: rule.map_or(d.line, |s| s.line),
                code: d.code.clone(),
                message: d.message.clone(),
                warning_line: d.line,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.file, a.line, a.warning_line).cmp(&(&b.file, b.line, b.warning_line)));
    out.dedup_by(|b, a| a.file == b.file && a.line == b.line);
    out
}
