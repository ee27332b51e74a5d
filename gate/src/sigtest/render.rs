//! The outcome for people (rustc-like, as lint's diagnostics), for tools (one JSON object per
//! line: each failure, then a summary) and for GitHub (workflow-command annotations at each
//! failing or untested signature's line). What goes to stdout is the report tools read; a
//! short summary for people goes to stderr in every format, as `lint` does.

use std::fmt::Write as _;

use serde::Serialize;
use vigil_compiler::{Diagnostic, OutputFormat, Severity, SignatureKind};

use super::{Failure, Outcome, SignatureCoverage};

/// Text for stdout and for stderr.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    pub out: String,
    pub err: String,
}

/// A signature lacking tests, as the JSON summary lists it.
#[derive(Serialize)]
struct Untested<'a> {
    name: &'a str,
    kind: SignatureKind,
    file: &'a str,
    line: usize,
}

#[derive(Serialize)]
struct Summary<'a> {
    r#type: &'static str,
    test_files: usize,
    tests: usize,
    cases: usize,
    samples: usize,
    passed: usize,
    failed: usize,
    signatures: usize,
    with_positive: usize,
    with_negative: usize,
    no_positive: Vec<Untested<'a>>,
    no_negative: Vec<Untested<'a>>,
    require_coverage: bool,
    ok: bool,
}

#[derive(Serialize)]
struct FailureLine<'a> {
    r#type: &'static str,
    #[serde(flatten)]
    failure: &'a Failure,
}

pub fn outcome(o: &Outcome, format: OutputFormat, require_coverage: bool) -> Rendered {
    let mut out = String::new();
    for f in &o.failures {
        let _ = writeln!(out, "{}", failure(f, format));
    }
    let sigs = &o.coverage.signatures;
    let no_positive: Vec<&SignatureCoverage> = sigs.iter().filter(|s| s.positive == 0).collect();
    let no_negative: Vec<&SignatureCoverage> = sigs.iter().filter(|s| s.negative == 0).collect();
    match format {
        OutputFormat::Json => {
            fn untested<'a>(list: &[&'a SignatureCoverage]) -> Vec<Untested<'a>> {
                list.iter()
                    .map(|s| Untested {
                        name: &s.name,
                        kind: s.kind,
                        file: &s.file,
                        line: s.line,
                    })
                    .collect()
            }
            let summary = Summary {
                r#type: "summary",
                test_files: o.test_files,
                tests: o.tests,
                cases: o.cases,
                samples: o.samples,
                passed: o.cases.saturating_sub(o.failures.len()),
                failed: o.failures.len(),
                signatures: sigs.len(),
                with_positive: o.coverage.with_positive(),
                with_negative: o.coverage.with_negative(),
                no_positive: untested(&no_positive),
                no_negative: untested(&no_negative),
                require_coverage,
                ok: o.passes(require_coverage),
            };
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string(&summary).unwrap_or_default()
            );
        }
        OutputFormat::Github => {
            let level = if require_coverage { "error" } else { "warning" };
            for s in sigs.iter().filter(|s| s.positive == 0 || s.negative == 0) {
                let missing = match (s.positive, s.negative) {
                    (0, 0) => "no test at all (neither detect nor ignore)",
                    (0, _) => "no positive test (no sample it must detect)",
                    _ => "no negative test (no sample it must ignore)",
                };
                let d = Diagnostic {
                    file: s.file.clone(),
                    line: s.line,
                    column: 1,
                    severity: Severity::Warning,
                    code: "test/coverage".into(),
                    message: format!("{} has {missing}", s.name),
                    source_line: None,
                };
                let line = d.render(OutputFormat::Github);
                let _ = writeln!(
                    out,
                    "{}",
                    line.replacen("::warning", &format!("::{level}"), 1)
                );
            }
        }
        OutputFormat::Human => {}
    }

    let mut err = format!(
        "test: {} test file(s), {} test(s), {} check(s) on {} sample(s): {} passed, {} failed\n",
        o.test_files,
        o.tests,
        o.cases,
        o.samples,
        o.cases.saturating_sub(o.failures.len()),
        o.failures.len()
    );
    let _ = writeln!(
        err,
        "coverage: {}/{} signature(s) with a positive test, {}/{} with a negative test",
        o.coverage.with_positive(),
        sigs.len(),
        o.coverage.with_negative(),
        sigs.len()
    );
    for (what, list) in [("positive", &no_positive), ("negative", &no_negative)] {
        for s in list.iter() {
            let _ = writeln!(err, "  no {what} test: {} ({}:{})", s.name, s.file, s.line);
        }
    }
    if require_coverage && !o.coverage.complete() {
        err.push_str("coverage incomplete: --require-coverage fails the run\n");
    }
    Rendered { out, err }
}

/// One failure in `format`, without a trailing newline for JSON and GitHub.
pub fn failure(f: &Failure, format: OutputFormat) -> String {
    let test = format!("{}:{}", f.test_file, f.test_line);
    let mut d = Diagnostic {
        file: f.file.clone(),
        line: f.line,
        column: f.column,
        severity: Severity::Error,
        code: f.code.to_string(),
        message: f.message.clone(),
        source_line: f.source_line.clone(),
    };
    match format {
        OutputFormat::Human => {
            let what = match f.expect {
                super::Expect::Detect => "detect",
                super::Expect::Ignore => "ignore",
            };
            format!("{}  = test: {test} ({what})\n", d.render(format))
        }
        OutputFormat::Json => serde_json::to_string(&FailureLine {
            r#type: "failure",
            failure: f,
        })
        .unwrap_or_default(),
        OutputFormat::Github => {
            d.message = format!("{} (test: {test})", f.message);
            d.render(format)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigtest::{Coverage, Expect};

    fn outcome_with_one_failure() -> Outcome {
        let sig = |name: &str, positive, negative| SignatureCoverage {
            name: name.into(),
            kind: SignatureKind::Yara,
            file: "r/a.yar".into(),
            line: 2,
            positive,
            negative,
        };
        Outcome {
            test_files: 1,
            tests: 2,
            cases: 3,
            samples: 3,
            failures: vec![Failure {
                code: "test/missed",
                signature: "A".into(),
                kind: SignatureKind::Yara,
                file: "r/a.yar".into(),
                line: 2,
                column: 6,
                expect: Expect::Detect,
                sample: "r/s/x.txt".into(),
                test_file: "r/a.test.toml".into(),
                test_line: 3,
                message: "A missed r/s/x.txt: nothing detected it".into(),
                source_line: Some("rule A {".into()),
            }],
            coverage: Coverage {
                signatures: vec![sig("A", 2, 1), sig("B", 0, 1)],
            },
        }
    }

    #[test]
    fn three_formats() {
        let o = outcome_with_one_failure();
        let h = outcome(&o, OutputFormat::Human, false);
        assert_eq!(
            h.out,
            "error[test/missed]: A missed r/s/x.txt: nothing detected it\n  --> r/a.yar:2:6\n  |\n2 | rule A {\n  |      ^\n  = test: r/a.test.toml:3 (detect)\n\n"
        );
        assert!(
            h.err
                .contains("3 check(s) on 3 sample(s): 2 passed, 1 failed"),
            "{}",
            h.err
        );
        assert!(h
            .err
            .contains("1/2 signature(s) with a positive test, 2/2 with a negative test"));
        assert!(
            h.err.contains("  no positive test: B (r/a.yar:2)"),
            "{}",
            h.err
        );
        assert!(!h.err.contains("--require-coverage"));
        assert!(outcome(&o, OutputFormat::Human, true)
            .err
            .contains("--require-coverage fails"));

        let j = outcome(&o, OutputFormat::Json, true);
        let lines: Vec<serde_json::Value> = j
            .out
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["type"], "failure");
        assert_eq!(lines[0]["file"], "r/a.yar");
        assert_eq!(lines[0]["line"], 2);
        assert_eq!(lines[0]["test_line"], 3);
        assert_eq!(lines[0]["expect"], "detect");
        assert_eq!(lines[1]["type"], "summary");
        assert_eq!(lines[1]["failed"], 1);
        assert_eq!(lines[1]["no_positive"][0]["name"], "B");
        assert_eq!(lines[1]["ok"], false);

        let g = outcome(&o, OutputFormat::Github, false);
        let lines: Vec<&str> = g.out.lines().collect();
        assert_eq!(
            lines[0],
            "::error file=r/a.yar,line=2,col=6,title=test/missed::A missed r/s/x.txt: nothing detected it (test: r/a.test.toml:3)"
        );
        assert!(lines[1].starts_with(
            "::warning file=r/a.yar,line=2,col=1,title=test/coverage::B has no positive test"
        ));
        let g = outcome(&o, OutputFormat::Github, true);
        assert!(g.out.lines().nth(1).expect("line").starts_with("::error "));
    }
}
