//! Judging one (signature, sample) pair from the sample's scan.
//!
//! A detection signature (YARA, body, hash) passes a `detect` test when it is among the
//! sample's findings and an `ignore` test when it is not; findings are what a user would see,
//! so a detection an allowlist cleared counts as missed. An allowlist entry passes a `detect`
//! test when it clears the sample (the engine cleared it, and this entry matches it: the
//! engine names only the first of several matching entries) and an `ignore` test when it
//! does not.

use serde::Serialize;
use vigil_compiler::{Signature, SignatureKind};
use vigil_scan_core::ScanReport;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Detect,
    Ignore,
}

/// One sample's scan: the report (or why the scan failed) and every allowlist entry matching
/// the sample (looked up only for samples an allowlist test names).
#[derive(Clone, Debug)]
pub struct Scanned {
    pub report: Result<ScanReport, String>,
    pub allow: Vec<String>,
}

/// A test that failed, reported at the signature's definition.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// `test/missed`, `test/matched`, `test/not-cleared`, `test/cleared` or `test/scan`.
    pub code: &'static str,
    pub signature: String,
    pub kind: SignatureKind,
    /// The signature's rule file and 1-based line and column.
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub expect: Expect,
    /// The sample's path under the rules directory, or `inline "NAME"`.
    pub sample: String,
    /// Where the test names the sample.
    pub test_file: String,
    pub test_line: usize,
    pub message: String,
    /// The signature's source line, for the human rendering.
    #[serde(skip)]
    pub source_line: Option<String>,
}

/// Why a pair failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub code: &'static str,
    pub message: String,
}

/// The failure of `sig` on the sample called `label`, if it failed.
pub fn judge(sig: &Signature, expect: Expect, label: &str, scanned: &Scanned) -> Option<Verdict> {
    let name = &sig.name;
    let report = match &scanned.report {
        Ok(r) => r,
        Err(e) => {
            return Some(Verdict {
                code: "test/scan",
                message: format!("scanning {label} failed: {e}"),
            })
        }
    };
    let fail = |code, message| Some(Verdict { code, message });
    if sig.kind == SignatureKind::Allow {
        let matches = scanned.allow.iter().any(|a| a == name);
        let cleared = report.allowlisted.is_some() && matches;
        return match (expect, cleared) {
            (Expect::Detect, false) if !matches => fail(
                "test/not-cleared",
                format!(
                    "{name} did not clear {label}: the entry's digest or size does not match the sample{}",
                    report
                        .allowlisted
                        .as_deref()
                        .map(|o| format!(" (allowlist entry {o} cleared it)"))
                        .unwrap_or_default()
                ),
            ),
            (Expect::Detect, false) => fail(
                "test/not-cleared",
                format!(
                    "{name} did not clear {label}: nothing detected the sample, and an allowlist entry only clears a detected file"
                ),
            ),
            (Expect::Ignore, true) => fail(
                "test/cleared",
                format!("{name} cleared {label}, which it must not: every detection of it is hidden"),
            ),
            _ => None,
        };
    }
    let hit = report.findings.iter().find(|f| &f.signature == name);
    match (expect, hit) {
        (Expect::Detect, None) => {
            let why = if let Some(a) = &report.allowlisted {
                format!("the sample was cleared by allowlist entry {a}")
            } else if report.findings.is_empty() {
                "nothing detected it".to_string()
            } else {
                let mut others: Vec<&str> = report
                    .findings
                    .iter()
                    .map(|f| f.signature.as_str())
                    .collect();
                others.sort_unstable();
                others.dedup();
                format!("detected only by {}", others.join(", "))
            };
            fail("test/missed", format!("{name} missed {label}: {why}"))
        }
        (Expect::Ignore, Some(f)) => fail(
            "test/matched",
            format!(
                "{name} matched {label}, which it must ignore{}",
                f.offset
                    .map(|o| format!(" (at offset {o})"))
                    .unwrap_or_default()
            ),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_scan_core::{Finding, SigKind};

    fn sig(name: &str, kind: SignatureKind) -> Signature {
        Signature {
            name: name.into(),
            kind,
            file: "r/x".into(),
            line: 1,
            identity: String::new(),
        }
    }

    fn scanned(found: &[&str], allowlisted: Option<&str>, allow: &[&str]) -> Scanned {
        Scanned {
            report: Ok(ScanReport {
                findings: found
                    .iter()
                    .map(|s| Finding {
                        signature: (*s).into(),
                        kind: SigKind::Body,
                        severity: None,
                        description: None,
                        offset: Some(7),
                        path: None,
                    })
                    .collect(),
                sha256: None,
                size: 1,
                allowlisted: allowlisted.map(Into::into),
                ..Default::default()
            }),
            allow: allow.iter().map(|s| (*s).into()).collect(),
        }
    }

    fn code(v: Option<Verdict>) -> Option<&'static str> {
        v.map(|v| v.code)
    }

    #[test]
    fn detection_signatures() {
        let s = sig("A", SignatureKind::Body);
        assert_eq!(
            judge(&s, Expect::Detect, "x", &scanned(&["B", "A"], None, &[])),
            None
        );
        assert_eq!(
            judge(&s, Expect::Ignore, "x", &scanned(&["B"], None, &[])),
            None
        );
        let v = judge(&s, Expect::Ignore, "x", &scanned(&["A"], None, &[])).expect("fails");
        assert_eq!(v.code, "test/matched");
        assert!(v.message.contains("at offset 7"), "{}", v.message);
        let missed = |found: &[&str], allowlisted| {
            judge(
                &s,
                Expect::Detect,
                "s.txt",
                &scanned(found, allowlisted, &[]),
            )
            .expect("fails")
            .message
        };
        assert_eq!(missed(&[], None), "A missed s.txt: nothing detected it");
        assert_eq!(
            missed(&["C", "B", "C"], None),
            "A missed s.txt: detected only by B, C"
        );
        assert_eq!(
            missed(&[], Some("Allow.X")),
            "A missed s.txt: the sample was cleared by allowlist entry Allow.X"
        );
        let failed = Scanned {
            report: Err("timed out".into()),
            allow: Vec::new(),
        };
        assert_eq!(
            code(judge(&s, Expect::Ignore, "x", &failed)),
            Some("test/scan")
        );
    }

    #[test]
    fn allowlist_entries() {
        let s = sig("Allow.X", SignatureKind::Allow);
        // Cleared by another entry that matched first, this one matching too: it clears it.
        let both = scanned(&[], Some("Allow.Y"), &["Allow.Y", "Allow.X"]);
        assert_eq!(judge(&s, Expect::Detect, "x", &both), None);
        assert_eq!(
            code(judge(&s, Expect::Ignore, "x", &both)),
            Some("test/cleared")
        );
        // Matching, but nothing was detected, so there was nothing to clear.
        let undetected = scanned(&[], None, &["Allow.X"]);
        assert_eq!(
            code(judge(&s, Expect::Detect, "x", &undetected)),
            Some("test/not-cleared")
        );
        assert_eq!(judge(&s, Expect::Ignore, "x", &undetected), None);
        // Detected and not matching.
        let detected = scanned(&["Sig"], None, &[]);
        let v = judge(&s, Expect::Detect, "x", &detected).expect("fails");
        assert!(v.message.contains("does not match"), "{}", v.message);
        assert_eq!(judge(&s, Expect::Ignore, "x", &detected), None);
    }
}
