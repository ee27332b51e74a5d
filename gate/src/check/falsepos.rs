//! The running tally of a check's scan: counts, a bounded list of unreadable files, and per
//! signature how many goodware files it fired on (new and old) with the first few paths.

use std::collections::{BTreeSet, HashMap};

use vigil_compiler::{Catalog, SignatureKind};
use vigil_scan_core::{ScanError, SigKind};

use super::worker::Verdict;
use super::{locate, FalsePositive, FileError, Matches, ERRORS_LISTED, PATHS_PER_SIGNATURE};

#[derive(Default)]
pub(crate) struct Tally {
    pub files: u64,
    pub bytes: u64,
    pub skipped: u64,
    pub errors: u64,
    pub error_list: Vec<FileError>,
    pub allowlisted: u64,
    by_signature: HashMap<String, Fired>,
}

struct Fired {
    kind: SigKind,
    new: Matches,
    old: Matches,
}

fn add(m: &mut Matches, path: &str) {
    m.files += 1;
    if m.paths.len() < PATHS_PER_SIGNATURE {
        m.paths.push(path.to_string());
    }
}

impl Tally {
    pub fn record(&mut self, path: &str, outcome: Result<Verdict, ScanError>) {
        let v = match outcome {
            Ok(v) => v,
            Err(e) if e.is_skip() => {
                self.skipped += 1;
                return;
            }
            Err(e) => {
                self.errors += 1;
                if self.error_list.len() < ERRORS_LISTED {
                    self.error_list.push(FileError {
                        path: path.to_string(),
                        error: e.to_string(),
                    });
                }
                return;
            }
        };
        self.files += 1;
        self.bytes += v.report.size;
        if v.report.allowlisted.is_some() {
            self.allowlisted += 1;
        }
        // A signature counts once per file, however many findings it made there.
        let mut seen = BTreeSet::new();
        for f in v.report.findings {
            // Heuristics (limits, encrypted archives) are the engine's, not a rule's.
            if f.kind == SigKind::Heuristic || !seen.insert(f.signature.clone()) {
                continue;
            }
            let old = v
                .baseline
                .as_ref()
                .is_some_and(|b| b.contains(&f.signature));
            let e = self
                .by_signature
                .entry(f.signature)
                .or_insert_with(|| Fired {
                    kind: f.kind,
                    new: Matches::default(),
                    old: Matches::default(),
                });
            add(if old { &mut e.old } else { &mut e.new }, path);
        }
    }

    /// Per signature, at its catalog position: new ones first, then by files matched, then
    /// by name (a stable order for golden outputs).
    pub fn false_positives(&self, catalog: &Catalog) -> Vec<FalsePositive> {
        let mut out: Vec<FalsePositive> = self
            .by_signature
            .iter()
            .map(|(name, fired)| {
                let (kind, file, line) = locate(catalog, name);
                let kind = kind.unwrap_or(match fired.kind {
                    SigKind::Yara => SignatureKind::Yara,
                    SigKind::Body => SignatureKind::Body,
                    SigKind::Hash | SigKind::Heuristic => SignatureKind::Hash,
                });
                let mut new = fired.new.clone();
                let mut old = fired.old.clone();
                new.paths.sort();
                old.paths.sort();
                FalsePositive {
                    signature: name.clone(),
                    kind,
                    file,
                    line,
                    new,
                    old,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (b.new.files > 0)
                .cmp(&(a.new.files > 0))
                .then((b.new.files + b.old.files).cmp(&(a.new.files + a.old.files)))
                .then(a.signature.cmp(&b.signature))
        });
        out
    }
}
