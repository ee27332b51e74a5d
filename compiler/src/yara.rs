//! YARA checking through yara-x: all files go into one compiler and one namespace, exactly as
//! the engine will load them, so a duplicate rule across files, an unknown module or a slow
//! pattern is caught here and not on a million hosts.

use std::collections::HashMap;

use thiserror::Error;
use yara_x::linters;
use yara_x_parser::ast::{Meta, MetaValue};

use crate::diag::{source_line, Diagnostic, Severity};
use crate::lint::LintOptions;
use crate::sources::RuleFile;

/// The meta keys every rule in a vigil rule set carries (see rules-src/README.md). Missing
/// ones are warnings, so third-party sets still build; `--deny-warnings` makes them errors.
pub const REQUIRED_META: [&str; 5] = ["severity", "description", "author", "reference", "date"];
pub const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];

pub(crate) struct YaraOutcome {
    pub diags: Vec<Diagnostic>,
    pub rule_names: Vec<String>,
}

fn severity_ok(meta: &Meta<'_>) -> bool {
    matches!(&meta.value, MetaValue::String((s, _)) if SEVERITIES.contains(s))
}

/// Diagnostic codes of what yara-x says makes a rule slow: a pattern without a good atom to
/// anchor on, a loop over a range that grows with the file, a loop of too many iterations.
/// vigil's lint makes the first two errors; with [`LintOptions::slow_as_warnings`] they are
/// warnings, and the release gate's `check` reports each as a cost error at its rule.
pub const SLOW_YARA_CODES: [&str; 3] = [
    "yara/slow_pattern",
    "yara/potentially_slow_loop",
    "yara/too_many_iterations",
];

/// A compiler configured the vigil way: no includes (a database is self-contained), slow
/// patterns and loops are errors (warnings with `opts.slow_as_warnings`), and the meta
/// conventions are checked.
pub(crate) fn compiler<'a>(opts: &LintOptions) -> yara_x::Compiler<'a> {
    let mut c = yara_x::Compiler::new();
    c.enable_includes(false)
        .error_on_slow_pattern(!opts.slow_as_warnings)
        .error_on_slow_loop(!opts.slow_as_warnings)
        .colorize_errors(false);
    for key in REQUIRED_META {
        let mut linter = linters::metadata(key).required(true);
        if key == "severity" {
            linter = linter.validator(
                severity_ok,
                "severity must be low, medium, high or critical",
            );
        }
        c.add_linter(linter);
    }
    c
}

/// The first YARA source that vigil's compiler settings reject, and yara-x's title for its
/// first error: the verdict `lint` would give, without the full diagnostics.
#[derive(Debug, Error)]
#[error("{origin}: {reason}")]
pub struct YaraRejected {
    /// Position of the rejected source in the order given.
    pub index: usize,
    pub origin: String,
    pub reason: String,
}

/// Whether `(origin, text)` YARA sources, added in this order to one namespace as a build
/// would, all compile with vigil's settings; if not, the first one rejected and why. Warnings
/// (missing meta) do not reject. For importing third-party rule sets, which keep only what
/// vigil accepts; stops at the first rejection, as that is all such an import needs.
pub fn check_yara_sources<'s>(
    sources: impl IntoIterator<Item = (&'s str, &'s str)>,
) -> Result<(), YaraRejected> {
    check_yara_sources_with(sources, &LintOptions::default())
}

/// [`check_yara_sources`] with other [`LintOptions`] (slow rules kept, to measure them).
pub fn check_yara_sources_with<'s>(
    sources: impl IntoIterator<Item = (&'s str, &'s str)>,
    opts: &LintOptions,
) -> Result<(), YaraRejected> {
    let mut c = compiler(opts);
    for (index, (origin, text)) in sources.into_iter().enumerate() {
        if let Err(e) = c.add_source(yara_x::SourceCode::from(text).with_origin(origin)) {
            return Err(YaraRejected {
                index,
                origin: origin.to_string(),
                reason: e.title().to_string(),
            });
        }
    }
    Ok(())
}

pub(crate) fn check(files: &[&RuleFile], opts: &LintOptions) -> YaraOutcome {
    let mut diags = Vec::new();
    let by_origin: HashMap<&str, &RuleFile> =
        files.iter().map(|f| (f.rel_path.as_str(), *f)).collect();
    let mut c = compiler(opts);
    for f in files {
        match &f.text {
            Ok(text) => {
                let src = yara_x::SourceCode::from(text.as_str()).with_origin(f.rel_path.as_str());
                // Errors are collected by the compiler; keep going to report every file.
                let _ = c.add_source(src);
            }
            Err(at) => diags.push(Diagnostic::not_utf8(&f.display_path, *at)),
        }
    }
    for e in c.errors() {
        diags.push(convert(
            serde_json::to_value(e),
            Severity::Error,
            &by_origin,
            &e.to_string(),
        ));
    }
    for w in c.warnings() {
        diags.push(convert(
            serde_json::to_value(w),
            Severity::Warning,
            &by_origin,
            &w.to_string(),
        ));
    }
    let rules = c.build();
    let rule_names = rules.iter().map(|r| r.identifier().to_string()).collect();
    YaraOutcome { diags, rule_names }
}

/// yara-x reports serialize with a code, a title, a line and column, and labels naming the
/// origin we gave each source; that is everything a diagnostic needs.
fn convert(
    value: Result<serde_json::Value, serde_json::Error>,
    severity: Severity,
    by_origin: &HashMap<&str, &RuleFile>,
    fallback_text: &str,
) -> Diagnostic {
    let v = value.unwrap_or_default();
    let labels = v["labels"].as_array().cloned().unwrap_or_default();
    let level = match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let main = labels
        .iter()
        .find(|l| l["level"] == level)
        .or_else(|| labels.first());
    let origin = main.and_then(|l| l["code_origin"].as_str()).unwrap_or("");
    let file = by_origin.get(origin);
    let (line, column) = match main {
        Some(l) => (
            l["line"].as_u64().unwrap_or(1) as usize,
            l["column"].as_u64().unwrap_or(1) as usize,
        ),
        None => (1, 1),
    };
    let title = v["title"].as_str().unwrap_or(fallback_text);
    let label_text = main.and_then(|l| l["text"].as_str()).unwrap_or("");
    let message = if label_text.is_empty() || label_text == title {
        title.to_string()
    } else {
        format!("{title}: {label_text}")
    };
    let text = file.and_then(|f| f.text.as_ref().ok());
    Diagnostic {
        file: file.map_or_else(|| origin.to_string(), |f| f.display_path.clone()),
        line,
        column,
        severity,
        code: format!("yara/{}", v["code"].as_str().unwrap_or("unknown")),
        message,
        source_line: text.and_then(|t| source_line(t, line)),
    }
}
