//! Golden lint test: one small file per error kind in `tests/golden/`, and the exact
//! file:line:col, severity, code and message expected for each in `expected.txt`.
//! Regenerate after a deliberate change with `UPDATE_GOLDEN=1 cargo test --test lint_golden`.

use std::path::PathBuf;

use vigil_compiler::{lint, sources};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn every_error_kind_at_its_exact_position() {
    let dir = golden_dir();
    let files = sources::collect(std::slice::from_ref(&dir)).expect("read golden files");
    let result = lint(&files);
    let prefix = format!("{}/", dir.display());
    let got: String = result
        .diagnostics
        .iter()
        .map(|d| {
            let severity = match d.severity {
                vigil_compiler::Severity::Error => "error",
                vigil_compiler::Severity::Warning => "warning",
            };
            let message = d.message.replace(&prefix, "");
            format!(
                "{}:{}:{}: {severity}[{}] {message}\n",
                d.file.trim_start_matches(&prefix),
                d.line,
                d.column,
                d.code
            )
        })
        .collect();
    let expected_path = dir.join("expected.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &got).expect("write expected.txt");
    }
    let expected = std::fs::read_to_string(&expected_path).expect("read expected.txt");
    assert_eq!(
        got, expected,
        "lint output differs from tests/golden/expected.txt"
    );
    // Every error code the parsers define is exercised by some golden file.
    for code in [
        "ndb/fields",
        "ndb/name",
        "ndb/target",
        "ndb/unsupported-target",
        "ndb/offset",
        "ndb/unsupported-offset",
        "ndb/hex",
        "ndb/odd-nibbles",
        "ndb/edge-wildcard",
        "ndb/anchor",
        "ndb/gap",
        "ndb/alternative",
        "ndb/flevel",
        "hash/fields",
        "hash/hex",
        "hash/length",
        "hash/size",
        "hash/size-flevel",
        "dup/name",
        "source/utf8",
        "yara/E001",
        "yara/E012",
        "yara/E018",
        "yara/E034",
        "yara/E044",
    ] {
        assert!(
            result.diagnostics.iter().any(|d| d.code == code),
            "no golden case for {code}"
        );
    }
}

#[test]
fn starter_rules_are_clean() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules-src");
    let files = sources::collect(&[dir]).expect("read rules-src");
    let result = lint(&files);
    assert!(
        result.diagnostics.is_empty(),
        "rules-src/ must lint clean with --deny-warnings: {:#?}",
        result.diagnostics
    );
    assert!(result.yara_rules.len() >= 10, "at least 10 YARA rules");
}
