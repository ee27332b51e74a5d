//! Lint: every problem in every file in one pass, so a rule author fixes them all at once.

use std::collections::{BTreeMap, HashMap};

use vigil_format::sigs::{parse_hash_line, parse_ndb_line, HashKind, SigError};

use crate::diag::{Diagnostic, Severity};
use crate::sources::{HashFileKind, RuleFile, RuleKind};
use crate::yara;

/// What lint found, plus everything the build needs so sources are parsed only once.
#[derive(Debug, Default)]
pub struct LintResult {
    pub diagnostics: Vec<Diagnostic>,
    pub yara_rules: Vec<String>,
    /// Canonical lines: `ndb`, and hash lines by the database section they go to
    /// ([`HashFileKind::section_for`]); files in path order, lines in file order.
    pub ndb: Vec<String>,
    pub hashes: BTreeMap<HashFileKind, Vec<String>>,
}

impl LintResult {
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, s: Severity) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == s).count()
    }

    /// Whether a build may go ahead.
    pub fn passes(&self, deny_warnings: bool) -> bool {
        self.errors() == 0 && !(deny_warnings && self.warnings() > 0)
    }
}

/// How strict lint is; the default is what a build to ship needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LintOptions {
    /// yara-x's slow patterns and slow loops ([`crate::SLOW_YARA_CODES`]) as warnings, not
    /// errors: for measuring what a rule set costs (`vigil-build check` on a third-party set),
    /// never for building one to ship.
    pub slow_as_warnings: bool,
}

pub fn lint(files: &[RuleFile]) -> LintResult {
    lint_with(files, &LintOptions::default())
}

/// [`lint`] with other [`LintOptions`].
pub fn lint_with(files: &[RuleFile], opts: &LintOptions) -> LintResult {
    let mut out = LintResult::default();
    let yara_files: Vec<&RuleFile> = files.iter().filter(|f| f.kind == RuleKind::Yara).collect();
    if !yara_files.is_empty() {
        let y = yara::check(&yara_files, opts);
        out.diagnostics.extend(y.diags);
        out.yara_rules = y.rule_names;
    }
    let yara_names: HashMap<&str, ()> = out.yara_rules.iter().map(|n| (n.as_str(), ())).collect();
    let mut seen: HashMap<String, (String, usize)> = HashMap::new();
    let mut diags = Vec::new();
    for f in files.iter().filter(|f| f.kind != RuleKind::Yara) {
        let text = match &f.text {
            Ok(t) => t,
            Err(at) => {
                diags.push(Diagnostic::not_utf8(&f.display_path, *at));
                continue;
            }
        };
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            if raw.trim().is_empty() || raw.starts_with('#') {
                continue;
            }
            let diag = |e: SigError, severity| Diagnostic {
                file: f.display_path.clone(),
                line: line_no,
                column: raw[..(e.column - 1).min(raw.len())].chars().count() + 1,
                severity,
                code: e.code.into(),
                message: e.message,
                source_line: Some(raw.to_string()),
            };
            let parsed = match f.kind {
                RuleKind::Ndb => {
                    parse_ndb_line(raw).map(|s| (s.name.clone(), s.to_string(), false, false))
                }
                RuleKind::Hash(h) => parse_hash_line(raw, h.file()).map(|s| {
                    let wildcard_size = s.size.is_none() && s.min_flevel.is_none();
                    let md5 = s.kind == HashKind::Md5;
                    (s.name.clone(), s.to_string(), wildcard_size, md5)
                }),
                RuleKind::Yara => continue,
            };
            let (name, canonical, wildcard_size, md5) = match parsed {
                Ok(p) => p,
                Err(e) => {
                    diags.push(diag(e, Severity::Error));
                    continue;
                }
            };
            if wildcard_size {
                diags.push(diag(
                    SigError {
                        code: "hash/size-flevel",
                        column: raw.find(':').map_or(1, |i| i + 2),
                        message: "size `*` needs MinFL 73 or later for ClamAV to load this line"
                            .into(),
                    },
                    Severity::Warning,
                ));
            }
            let is_allowlist =
                matches!(f.kind, RuleKind::Hash(HashFileKind::Fp | HashFileKind::Sfp));
            if !is_allowlist {
                if yara_names.contains_key(name.as_str()) {
                    diags.push(diag(
                        SigError {
                            code: "dup/name",
                            column: 1,
                            message: format!("signature name {name} is also a YARA rule"),
                        },
                        Severity::Error,
                    ));
                } else if let Some((pf, pl)) = seen.get(&name) {
                    diags.push(diag(
                        SigError {
                            code: "dup/name",
                            column: 1,
                            message: format!("signature name {name} already defined at {pf}:{pl}"),
                        },
                        Severity::Error,
                    ));
                } else {
                    seen.insert(name, (f.display_path.clone(), line_no));
                }
            }
            match f.kind {
                RuleKind::Ndb => out.ndb.push(canonical),
                RuleKind::Hash(h) => out
                    .hashes
                    .entry(h.section_for(md5))
                    .or_default()
                    .push(canonical),
                RuleKind::Yara => {}
            }
        }
    }
    out.diagnostics.extend(diags);
    // Report in a stable order: by file, then position.
    out.diagnostics
        .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_rules_are_errors_unless_asked_otherwise() {
        let text = "rule Slow { meta: severity = \"low\" description = \"d\" author = \"a\" \
                    reference = \"r\" date = \"2026-01-01\"\n strings:\n $a = { 00 [1-10] 01 }\n \
                    condition: $a }\n";
        let files = [RuleFile {
            rel_path: "slow.yar".into(),
            display_path: "rules/slow.yar".into(),
            kind: RuleKind::Yara,
            text: Ok(text.into()),
        }];
        let codes = |r: &LintResult| -> Vec<(Severity, String, usize)> {
            r.diagnostics
                .iter()
                .map(|d| (d.severity, d.code.clone(), d.line))
                .collect()
        };
        // yara-x numbers its errors (E018: slow pattern) and names its warnings.
        let strict = lint(&files);
        assert_eq!(
            codes(&strict),
            [(Severity::Error, "yara/E018".to_string(), 3)]
        );
        let lenient = lint_with(
            &files,
            &LintOptions {
                slow_as_warnings: true,
            },
        );
        assert_eq!(
            codes(&lenient),
            [(Severity::Warning, "yara/slow_pattern".to_string(), 3)]
        );
        assert!(lenient.passes(false));
        assert_eq!(lenient.yara_rules, ["Slow"]);
    }

    /// Mixed digests load from any hash file, as clamscan loads them, and land in the section
    /// for their digest, so engines that held `hdb` to MD5 and `hsb` to SHA still load the
    /// database.
    #[test]
    fn hash_lines_go_to_the_section_of_their_digest() {
        let file = |name: &str, kind, text: &str| RuleFile {
            rel_path: name.into(),
            display_path: name.into(),
            kind: RuleKind::Hash(kind),
            text: Ok(text.into()),
        };
        let files = [
            file(
                "a.hdb",
                HashFileKind::Hdb,
                "44d88612fea8a8f36de82e1278abb02f:68:A.Md5-1\n\
                 275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f:68:A.Sha256-1\n",
            ),
            file(
                "b.hsb",
                HashFileKind::Hsb,
                "3395856ce81f2b7382dee72602f798b642f14140:68:B.Sha1-1\n\
                 44d88612fea8a8f36de82e1278abb02f:68:B.Md5-1\n",
            ),
            file(
                "c.fp",
                HashFileKind::Fp,
                "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f:68:C.Allow-1\n",
            ),
        ];
        let r = lint(&files);
        assert!(r.passes(true), "{:?}", r.diagnostics);
        let names = |k| -> Vec<String> {
            r.hashes
                .get(&k)
                .map(|v| {
                    v.iter()
                        .map(|l| l.rsplit(':').next().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(names(HashFileKind::Hdb), ["A.Md5-1", "B.Md5-1"]);
        assert_eq!(names(HashFileKind::Hsb), ["A.Sha256-1", "B.Sha1-1"]);
        assert_eq!(names(HashFileKind::Sfp), ["C.Allow-1"]);
        assert!(names(HashFileKind::Fp).is_empty());
    }
}
