//! clamscan's archive options: how far into containers a scan goes, and whether reaching a
//! limit or an encrypted member is itself a finding.

use clap::Args;
use vigil_scan_core::Limits;

use crate::cli::parse_size;

#[derive(Args, Debug, Clone)]
pub struct ArchiveArgs {
    /// Do not open archives, compressed files, mail or documents: match only the files' own
    /// bytes (clamscan's --scan-archive=no).
    #[arg(long)]
    pub no_archive: bool,
    /// Bytes extracted from one file's containers, all layers together [default: 400M].
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub max_scansize: Option<u64>,
    /// Container nesting depth [default: 17].
    #[arg(long, value_name = "N")]
    pub max_recursion: Option<u32>,
    /// Members extracted from one file, all layers together [default: 10000].
    #[arg(long, value_name = "N")]
    pub max_files: Option<u32>,
    /// A container may expand to at most N times its own size (past 16 MiB) [default: 250].
    #[arg(long, value_name = "N")]
    pub max_ratio: Option<u32>,
    /// Report a limit reached as Heuristics.Limits.Exceeded.* (otherwise the file is OK and
    /// the summary counts it as not fully scanned).
    #[arg(long)]
    pub alert_exceeds_max: bool,
    /// Report encrypted archives and documents as Heuristics.Encrypted.*.
    #[arg(long)]
    pub alert_encrypted: bool,
    /// Do not report structural tricks (a zip whose entries overlap) as Heuristics.* findings.
    #[arg(long)]
    pub no_heuristic_alerts: bool,
}

impl ArchiveArgs {
    /// `base` with these options applied.
    pub fn apply(&self, base: Limits) -> Limits {
        Limits {
            scan_archives: base.scan_archives && !self.no_archive,
            max_scansize: self.max_scansize.unwrap_or(base.max_scansize),
            max_recursion: self.max_recursion.unwrap_or(base.max_recursion),
            max_files: self.max_files.unwrap_or(base.max_files),
            max_ratio: self.max_ratio.unwrap_or(base.max_ratio),
            alert_exceeds_max: base.alert_exceeds_max || self.alert_exceeds_max,
            alert_encrypted: base.alert_encrypted || self.alert_encrypted,
            heuristic_alerts: base.heuristic_alerts && !self.no_heuristic_alerts,
            ..base
        }
    }
}
