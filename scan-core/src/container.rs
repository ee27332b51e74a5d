//! The recursion into containers: every member of every layer is matched with every signature
//! kind (hash signatures of inner files included), under ClamAV's limits. A [`Walker`] is the
//! [`Sink`] each format's extractor in `vigil-unpack` hands members to; it keeps the chain of
//! names (`inner.zip!clam.exe`), the byte, file, depth and ratio budgets, and turns every limit
//! reached into an [`Unscanned`] entry (and, when asked, a heuristic finding) rather than a
//! silent clean.
//!
//! Memory: a member lives while it and its own members are scanned, so what is held at once is
//! bounded by `max_scansize` (every extracted byte counts against it), not by what headers claim.

use std::time::Instant;

use vigil_unpack::{detect, extract, FileType, Sink, Stop};

use crate::engine::Scanner;
use crate::error::{Limits, ScanError, RATIO_FLOOR};
use crate::report::{Finding, ScanReport, SigKind, Unscannable, Unscanned};

/// Unscanned entries kept per object: a million encrypted entries say no more than a hundred.
const MAX_UNSCANNED: usize = 100;

/// Single-stream compressors hold one file, the same file: opening one does not add a level of
/// nesting or a name to the chain (`x.tar.gz!a`, not `x.tar.gz!gzip!a`).
fn single_stream(ft: FileType) -> bool {
    matches!(
        ft,
        FileType::Gzip | FileType::Bzip2 | FileType::Xz | FileType::Zstd
    )
}

/// Types opened only on the chance that an archive is embedded: a failed attempt is not a
/// broken container.
fn speculative(ft: FileType) -> bool {
    matches!(ft, FileType::Pe | FileType::Elf | FileType::Unknown)
}

/// ClamAV's names for encrypted content, by container.
fn encrypted_name(ft: FileType) -> &'static str {
    match ft {
        FileType::Zip => "Heuristics.Encrypted.Zip",
        FileType::SevenZip => "Heuristics.Encrypted.7Zip",
        FileType::Pdf => "Heuristics.Encrypted.PDF",
        FileType::Ole2 => "Heuristics.Encrypted.Doc",
        _ => "Heuristics.Encrypted",
    }
}

struct Frame {
    ft: FileType,
    size: u64,
    extracted: u64,
}

/// Walks one object's containers. Built by the scanner after the object's own bytes matched.
pub(crate) struct Walker<'w, 'e> {
    pub scanner: &'w mut Scanner<'e>,
    pub limits: &'w Limits,
    pub deadline: Option<Instant>,
    pub report: &'w mut ScanReport,
    chain: Vec<String>,
    frames: Vec<Frame>,
    depth: u32,
    used: u64,
    files: u32,
    /// A scan error (a timeout) that ended the walk: the whole object's scan fails with it.
    pub error: Option<ScanError>,
    /// Set once the file limit or an error ended the walk: every extractor up the chain stops.
    stopped: bool,
    /// Heuristic findings the limits reached call for, once each.
    alerts: Vec<(String, Option<String>)>,
}

impl<'w, 'e> Walker<'w, 'e> {
    pub fn new(
        scanner: &'w mut Scanner<'e>,
        limits: &'w Limits,
        deadline: Option<Instant>,
        report: &'w mut ScanReport,
    ) -> Self {
        Walker {
            scanner,
            limits,
            deadline,
            report,
            chain: Vec::new(),
            frames: Vec::new(),
            depth: 0,
            used: 0,
            files: 0,
            error: None,
            stopped: false,
            alerts: Vec::new(),
        }
    }

    /// Opens the object itself (of type `ft`), then adds the heuristic findings asked for.
    pub fn run(mut self, ft: FileType, data: &[u8]) -> Result<(), ScanError> {
        self.open(ft, data);
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        most_precise(&mut self.report.findings);
        for (name, path) in std::mem::take(&mut self.alerts) {
            self.report.findings.push(Finding {
                signature: name,
                kind: SigKind::Heuristic,
                severity: None,
                description: None,
                offset: None,
                path,
            });
        }
        Ok(())
    }

    fn open(&mut self, ft: FileType, data: &[u8]) {
        self.frames.push(Frame {
            ft,
            size: data.len() as u64,
            extracted: 0,
        });
        let adds = !single_stream(ft);
        if adds {
            self.depth += 1;
        }
        // Err(Stop) means a limit or an error already recorded why.
        let _ = extract(ft, data, self);
        if adds {
            self.depth -= 1;
        }
        self.frames.pop();
    }

    fn path_of(&self, name: &str) -> Option<String> {
        let mut parts: Vec<&str> = self.chain.iter().map(String::as_str).collect();
        if !name.is_empty() && !self.current_single() {
            parts.push(name);
        }
        (!parts.is_empty()).then(|| parts.join("!"))
    }

    fn current_single(&self) -> bool {
        self.frames.last().is_some_and(|f| single_stream(f.ft))
    }

    fn note(&mut self, path: Option<String>, reason: Unscannable) {
        if self.report.unscanned.len() < MAX_UNSCANNED {
            self.report.unscanned.push(Unscanned {
                path: path.clone().unwrap_or_default(),
                reason,
            });
        }
        let alert = match reason {
            Unscannable::Encrypted if self.limits.alert_encrypted => {
                let ft = self.frames.last().map_or(FileType::Unknown, |f| f.ft);
                Some(encrypted_name(ft).to_string())
            }
            Unscannable::Encrypted | Unscannable::Corrupt => None,
            other if self.limits.alert_exceeds_max => Some(other.heuristic().to_string()),
            _ => None,
        };
        if let Some(name) = alert {
            if !self.alerts.iter().any(|(n, _)| *n == name) {
                self.alerts.push((name, path));
            }
        }
    }

    fn ratio_left(&self) -> u64 {
        self.frames.last().map_or(u64::MAX, |f| {
            f.size
                .saturating_mul(u64::from(self.limits.max_ratio))
                .max(RATIO_FLOOR)
                .saturating_sub(f.extracted)
        })
    }

    fn scan_left(&self) -> u64 {
        self.limits.max_scansize.saturating_sub(self.used)
    }

    /// The limit that makes the budget what it is.
    fn binding_limit(&self) -> Unscannable {
        let (file, scan, ratio) = (
            self.limits.max_filesize,
            self.scan_left(),
            self.ratio_left(),
        );
        if ratio < file && ratio < scan {
            Unscannable::MaxRatio
        } else if scan < file {
            Unscannable::MaxScanSize
        } else {
            Unscannable::MaxFileSize
        }
    }

    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

impl Sink for Walker<'_, '_> {
    fn budget(&self) -> u64 {
        self.limits
            .max_filesize
            .min(self.scan_left())
            .min(self.ratio_left())
    }

    fn member(&mut self, name: &str, data: &[u8]) -> Result<(), Stop> {
        if self.stopped {
            return Err(Stop);
        }
        if self.expired() {
            self.error = Some(ScanError::Timeout);
            self.stopped = true;
            return Err(Stop);
        }
        if self.files >= self.limits.max_files {
            let path = self.path_of("");
            self.note(path, Unscannable::MaxFiles);
            self.stopped = true;
            return Err(Stop);
        }
        let len = data.len() as u64;
        if len > self.budget() {
            // An extractor that could not know the size beforehand (a stored cpio member).
            let reason = self.binding_limit();
            let path = self.path_of(name);
            self.note(path, reason);
            return Ok(());
        }
        self.files += 1;
        self.used += len;
        if let Some(f) = self.frames.last_mut() {
            f.extracted += len;
        }
        let named = !self.current_single();
        if named {
            self.chain.push(name.to_string());
        }
        let result = self.member_inner(data);
        if named {
            self.chain.pop();
        }
        result
    }

    fn encrypted(&mut self, name: &str) {
        let path = self.path_of(name);
        self.note(path, Unscannable::Encrypted);
    }

    fn too_large(&mut self, name: &str) {
        let reason = self.binding_limit();
        let path = self.path_of(name);
        self.note(path, reason);
    }

    fn corrupt(&mut self, _why: &str) {
        if self.frames.last().is_some_and(|f| !speculative(f.ft)) {
            let path = self.path_of("");
            self.note(path, Unscannable::Corrupt);
        }
    }

    fn anomaly(&mut self, heuristic: &'static str) {
        if self.limits.heuristic_alerts {
            let path = self.path_of("");
            if !self.alerts.iter().any(|(n, _)| n == heuristic) {
                self.alerts.push((heuristic.to_string(), path));
            }
        }
    }
}

impl Walker<'_, '_> {
    /// Matches one member (its name already on the chain), then opens it if it is a container.
    fn member_inner(&mut self, data: &[u8]) -> Result<(), Stop> {
        let path = (!self.chain.is_empty()).then(|| self.chain.join("!"));
        let ft = detect(data);
        let before = self.report.findings.len();
        match self.scanner.match_layer(data, ft, self.deadline) {
            Ok(found) => self
                .report
                .findings
                .extend(found.into_iter().map(|f| Finding {
                    path: path.clone(),
                    ..f
                })),
            Err(e) => {
                self.error = Some(e);
                self.stopped = true;
                return Err(Stop);
            }
        }
        self.report.members += 1;
        if ft.is_container() {
            if !single_stream(ft) && self.depth >= self.limits.max_recursion {
                self.note(path, Unscannable::MaxRecursion);
            } else {
                self.open(ft, data);
                if self.error.is_some() {
                    return Err(Stop);
                }
            }
        }
        // An allowlisted member is clean, and so is everything inside it.
        if self.report.findings.len() > before && self.scanner.allowlisted(data).is_some() {
            self.report.findings.truncate(before);
        }
        Ok(())
    }
}

/// Findings deduplicated past this many are left as they are (the pairwise check is quadratic).
const DEDUP_MAX: usize = 1000;

/// A signature that matched a layer and again inside one of its members (a tar or a stored zip
/// holds its members' bytes as they are) is reported once, at the deepest place.
fn most_precise(findings: &mut Vec<Finding>) {
    if findings.len() < 2 || findings.len() > DEDUP_MAX {
        return;
    }
    let inside = |outer: &Option<String>, inner: &Option<String>| match (outer, inner) {
        (None, Some(_)) => true,
        (Some(o), Some(i)) => {
            i.len() > o.len() && i.starts_with(o.as_str()) && i[o.len()..].starts_with('!')
        }
        _ => false,
    };
    let keep: Vec<bool> = findings
        .iter()
        .map(|f| {
            !findings
                .iter()
                .any(|g| g.signature == f.signature && inside(&f.path, &g.path))
        })
        .collect();
    let mut k = keep.into_iter();
    findings.retain(|_| k.next().unwrap_or(true));
}
