//! A [`CheckReport`] for people (a table per section), for tools (one JSON document) and for
//! pull requests (GitHub workflow annotations at each signature's file:line).

use std::fmt::Write as _;

use vigil_compiler::{Diagnostic, OutputFormat, Severity};

use super::{CheckReport, FalsePositive, Matches};

pub fn render(report: &CheckReport, format: OutputFormat) -> String {
    match format {
        OutputFormat::Human => human(report),
        OutputFormat::Json => {
            serde_json::to_string_pretty(report)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
                + "\n"
        }
        OutputFormat::Github => github(report),
    }
}

fn at(file: &Option<String>, line: Option<usize>) -> String {
    match (file, line) {
        (Some(f), Some(l)) => format!("{f}:{l}"),
        (Some(f), None) => f.clone(),
        _ => "?".into(),
    }
}

fn paths(m: &Matches) -> String {
    let more = m.files.saturating_sub(m.paths.len() as u64);
    let mut s = m.paths.join(", ");
    if more > 0 {
        let _ = write!(s, ", and {more} more");
    }
    s
}

/// Columns under a header, left-aligned but for the `right` ones (numbers).
fn table(out: &mut String, head: &[&str], right: &[usize], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut l = String::from(" ");
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if right.contains(&i) {
                let _ = write!(l, " {c:>w$}");
            } else if i + 1 == cells.len() {
                let _ = write!(l, " {c}");
            } else {
                let _ = write!(l, " {c:<w$}");
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(
        &head.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    ));
    for r in rows {
        out.push_str(&line(r));
    }
}

fn human(r: &CheckReport) -> String {
    let mut o = String::new();
    let c = &r.corpus;
    let _ = writeln!(
        o,
        "corpus: {} files, {:.1} MB from {} in {:.1} s ({} thread(s)); {} skipped, {} unreadable, {} cleared by an allowlist",
        c.files,
        c.bytes as f64 / 1e6,
        c.source,
        c.seconds,
        c.threads,
        c.skipped,
        c.errors,
        c.allowlisted
    );
    let _ = writeln!(
        o,
        "rules: {} YARA, {} body, {} hash, {} allowlist{}{}",
        r.rules.yara,
        r.rules.body,
        r.rules.hash,
        r.rules.allow,
        match r.rules.lint_warnings {
            0 => String::new(),
            n => format!(" ({n} lint warning(s): `vigil-build lint` lists them)"),
        },
        match r.baseline_version {
            Some(v) => format!("; baseline: database version {v}"),
            None => "; no baseline: every false positive is new".into(),
        }
    );

    let new = r.new_false_positives();
    let old = r.false_positives.iter().filter(|f| f.old.files > 0).count();
    let _ = writeln!(o, "\nfalse positives: {new} signature(s) new, {old} old");
    if !r.false_positives.is_empty() {
        let mut rows = Vec::new();
        for f in &r.false_positives {
            for (label, m) in [("NEW", &f.new), ("old", &f.old)] {
                if m.files > 0 {
                    rows.push(vec![
                        label.into(),
                        f.signature.clone(),
                        f.kind.as_str().into(),
                        at(&f.file, f.line),
                        m.files.to_string(),
                        paths(m),
                    ]);
                }
            }
        }
        table(
            &mut o,
            &[
                "",
                "signature",
                "kind",
                "defined at",
                "files",
                "first paths",
            ],
            &[4],
            &rows,
        );
    }

    let cost = &r.cost;
    let _ = writeln!(
        o,
        "\ncost, YARA: top {} of {} rule(s) itemised, ms per GB of corpus (budget {} ms/GB)",
        cost.yara_top.len(),
        cost.yara_itemised,
        cost.max_rule_ms_per_gb
    );
    if cost.yara_top.is_empty() {
        let _ = writeln!(
            o,
            "  none itemised: no rule took 100 ms in a scan thread (about {:.0} ms/GB here)",
            cost.itemised_above_ms_per_gb
        );
    } else {
        let rows: Vec<Vec<String>> = cost
            .yara_top
            .iter()
            .map(|y| {
                vec![
                    if y.over_budget { "OVER" } else { "" }.into(),
                    y.rule.clone(),
                    at(&y.file, y.line),
                    format!("{:.0}", y.ms_per_gb),
                    format!("{:.0}", y.condition_ms),
                    format!("{:.0}", y.patterns_ms),
                ]
            })
            .collect();
        table(
            &mut o,
            &[
                "",
                "rule",
                "defined at",
                "ms/GB",
                "condition ms",
                "patterns ms",
            ],
            &[3, 4, 5],
            &rows,
        );
    }
    if cost.itemised_above_ms_per_gb > cost.max_rule_ms_per_gb {
        let _ = writeln!(
            o,
            "  note: yara-x itemises a rule only past 100 ms in one scan thread, about {:.0} ms/GB \
             on this corpus and thread count, above the budget: a rule between the two is not \
             seen. Use a larger corpus or fewer threads.",
            cost.itemised_above_ms_per_gb
        );
    }
    if !cost.body_top.is_empty() {
        let _ = writeln!(
            o,
            "\ncost, body signatures: top {} by prefilter candidates, per MB of corpus",
            cost.body_top.len()
        );
        let rows: Vec<Vec<String>> = cost
            .body_top
            .iter()
            .map(|b| {
                vec![
                    b.signature.clone(),
                    at(&b.file, b.line),
                    format!("{:.3}", b.candidates_per_mb),
                    format!("{:.3}", b.confirmations_per_mb),
                    b.candidates.to_string(),
                ]
            })
            .collect();
        table(
            &mut o,
            &[
                "signature",
                "defined at",
                "candidates/MB",
                "confirmations/MB",
                "candidates",
            ],
            &[2, 3, 4],
            &rows,
        );
    }

    let mut errors = Vec::new();
    for f in r.false_positives.iter().filter(|f| f.new.files > 0) {
        errors.push(format!(
            "error: {} at {}: new false positive on {} goodware file(s)",
            f.signature,
            at(&f.file, f.line),
            f.new.files
        ));
    }
    for y in &cost.over_budget {
        errors.push(format!(
            "error: {} at {}: {:.0} ms/GB, over the budget of {} ms/GB",
            y.rule,
            at(&y.file, y.line),
            y.ms_per_gb,
            cost.max_rule_ms_per_gb
        ));
    }
    for s in &cost.slow {
        errors.push(format!(
            "error: {} at {}:{}: yara-x warns it is slow ({}: {}, line {})",
            s.rule, s.file, s.line, s.code, s.message, s.warning_line
        ));
    }
    if !errors.is_empty() {
        let _ = writeln!(o);
        for e in errors {
            let _ = writeln!(o, "{e}");
        }
    }
    if c.errors > 0 {
        let _ = writeln!(
            o,
            "\nunreadable files: {} (first {}):",
            c.errors,
            c.error_list.len()
        );
        for e in &c.error_list {
            let _ = writeln!(o, "  {}: {}", e.path, e.error);
        }
    }
    let _ = writeln!(
        o,
        "\ncheck: {}",
        if r.passed {
            "passed".to_string()
        } else {
            format!("FAILED: {}", r.failures().join(", "))
        }
    );
    o
}

fn annotation(
    severity: Severity,
    file: &Option<String>,
    line: Option<usize>,
    code: &str,
    message: String,
) -> String {
    Diagnostic {
        file: file.clone().unwrap_or_default(),
        line: line.unwrap_or(1),
        column: 1,
        severity,
        code: code.into(),
        message,
        source_line: None,
    }
    .render(OutputFormat::Github)
}

fn fp_message(f: &FalsePositive, m: &Matches, what: &str) -> String {
    format!(
        "{} {what} on {} goodware file(s): {}",
        f.signature,
        m.files,
        paths(m)
    )
}

fn github(r: &CheckReport) -> String {
    let mut o = String::new();
    for f in &r.false_positives {
        if f.new.files > 0 {
            o += &annotation(
                Severity::Error,
                &f.file,
                f.line,
                "check/new-false-positive",
                fp_message(f, &f.new, "fires (new)"),
            );
            o.push('\n');
        }
        if f.old.files > 0 {
            o += &annotation(
                Severity::Warning,
                &f.file,
                f.line,
                "check/known-false-positive",
                fp_message(f, &f.old, "fires, as in the baseline,"),
            );
            o.push('\n');
        }
    }
    for y in &r.cost.over_budget {
        o += &annotation(
            Severity::Error,
            &y.file,
            y.line,
            "check/over-budget",
            format!(
                "{} costs {:.0} ms per GB of goodware (condition {:.0} ms, patterns {:.0} ms), over the budget of {} ms/GB",
                y.rule, y.ms_per_gb, y.condition_ms, y.patterns_ms, r.cost.max_rule_ms_per_gb
            ),
        );
        o.push('\n');
    }
    for s in &r.cost.slow {
        o += &annotation(
            Severity::Error,
            &Some(s.file.clone()),
            Some(s.line),
            "check/slow-rule",
            format!(
                "{}: yara-x warns it is slow ({}: {}, line {})",
                s.rule, s.code, s.message, s.warning_line
            ),
        );
        o.push('\n');
    }
    o
}
