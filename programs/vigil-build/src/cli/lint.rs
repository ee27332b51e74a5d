use std::path::PathBuf;

use anyhow::bail;
use vigil_compiler::{sources, LintResult, OutputFormat};

use super::{EXIT_LINT, EXIT_OK};

pub fn run(paths: &[PathBuf], format: OutputFormat, deny_warnings: bool) -> anyhow::Result<u8> {
    let files = sources::collect(paths)?;
    if files.is_empty() {
        bail!("no rule files found in {}", display(paths));
    }
    let result = vigil_compiler::lint(&files);
    report(&result, format, files.len());
    Ok(if result.passes(deny_warnings) {
        EXIT_OK
    } else {
        EXIT_LINT
    })
}

/// Diagnostics to stdout (that is what CI annotations and `jq` read), the summary to stderr.
pub fn report(result: &LintResult, format: OutputFormat, files: usize) {
    for d in &result.diagnostics {
        println!("{}", d.render(format));
    }
    eprintln!(
        "lint: {files} file(s), {} YARA rule(s), {} error(s), {} warning(s)",
        result.yara_rules.len(),
        result.errors(),
        result.warnings()
    );
}

fn display(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
