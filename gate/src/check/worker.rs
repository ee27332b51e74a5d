//! What each scan thread runs: the candidate's scanner (with body-signature counting on), the
//! baseline's scanner made the first time a file needs it, and, when the thread ends, its
//! cost profile handed to the shared accumulator.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use vigil_scan_core::input::Spool;
use vigil_scan_core::{Engine, Limits, ScanError, ScanReport, Scanner, Worker};

use super::cost::ProfileAcc;
use super::falsepos::Tally;
use super::Progress;

/// One file's contents as the corpus gives them.
pub(crate) enum Input<'a> {
    Path(&'a Path),
    Bytes(&'a [u8]),
    Spool(&'a Spool),
}

/// What the candidate found on one file, and the names the baseline reports there (asked
/// only when the candidate found something).
pub(crate) struct Verdict {
    pub report: ScanReport,
    pub baseline: Option<BTreeSet<String>>,
}

/// State every scan thread writes to.
pub(crate) struct Shared<'p> {
    pub tally: Mutex<Tally>,
    pub profile: Mutex<ProfileAcc>,
    pub progress: Option<&'p (dyn Fn(Progress) + Sync)>,
}

impl Shared<'_> {
    pub fn record(&self, name: &str, outcome: Result<Verdict, ScanError>) {
        let progress = {
            let mut t = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
            t.record(name, outcome);
            Progress {
                files: t.files,
                bytes: t.bytes,
                errors: t.errors,
            }
        };
        if let Some(p) = self.progress {
            p(progress);
        }
    }
}

pub(crate) struct GateWorker<'e, 's, 'p> {
    scanner: Scanner<'e>,
    baseline: Option<&'e Engine>,
    base_scanner: Option<Scanner<'e>>,
    shared: &'s Shared<'p>,
}

impl<'e, 's, 'p> GateWorker<'e, 's, 'p> {
    pub fn new(
        candidate: &'e Engine,
        baseline: Option<&'e Engine>,
        shared: &'s Shared<'p>,
    ) -> Self {
        let mut scanner = candidate.scanner();
        scanner.count_body_work();
        Self {
            scanner,
            baseline,
            base_scanner: None,
            shared,
        }
    }

    pub fn scan_input(&mut self, input: Input<'_>, limits: &Limits) -> Result<Verdict, ScanError> {
        let report = scan(&mut self.scanner, &input, limits)?;
        let baseline = match self.baseline {
            Some(engine) if !report.findings.is_empty() => {
                let s = self.base_scanner.get_or_insert_with(|| engine.scanner());
                // A file the baseline cannot scan counts as one it detects nothing in: the
                // candidate's findings there are then new, which errs on the side of failing.
                Some(match scan(s, &input, limits) {
                    Ok(r) => r.findings.into_iter().map(|f| f.signature).collect(),
                    Err(_) => BTreeSet::new(),
                })
            }
            _ => None,
        };
        Ok(Verdict { report, baseline })
    }

    /// Hands this thread's profile over (also what [`Worker::finish`] does).
    pub fn finish_thread(self) {
        let yara = self.scanner.yara_profile();
        let body = self.scanner.body_costs();
        self.shared
            .profile
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(yara, body);
    }
}

fn scan(s: &mut Scanner<'_>, input: &Input<'_>, limits: &Limits) -> Result<ScanReport, ScanError> {
    match input {
        Input::Path(p) => s.scan_file(p, limits),
        Input::Bytes(b) => s.scan_bytes(b, limits),
        Input::Spool(sp) => s.scan_spool(sp, limits),
    }
}

impl Worker for GateWorker<'_, '_, '_> {
    type Report = Verdict;

    fn scan(&mut self, path: &Path, limits: &Limits) -> Result<Verdict, ScanError> {
        self.scan_input(Input::Path(path), limits)
    }

    fn finish(self) {
        self.finish_thread();
    }
}
