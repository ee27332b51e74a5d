//! A rolling version's health, and the rule that halts a rollout.
//!
//! vigil-server answers `GET /api/fleet/health?channel=C&version=N&since=T&silent_after=S`
//! (admin token) with a [`VersionHealth`] computed from each client's latest check-in:
//!
//! - **reporting**: clients of channel C that checked in since T (the stage's start) and
//!   either run N or tried to install it;
//! - **failed**: of those, the ones whose latest check-in says installing N failed its smoke
//!   test or did not load;
//! - **installed / silent**: clients whose latest check-in says they run N, and of those the
//!   ones that have not checked in for S seconds: a client that crashes after taking N (a
//!   crash loop, a hung agent) stops checking in, and its last word is that it runs N;
//! - **others_installed / others_silent**: the same for clients of C on any other version, the
//!   baseline: instances come and go (autoscaling), and that is not N's fault.
//!
//! [`judge`] turns that into a verdict for `vigil-build rollout advance --fleet`, which then
//! pauses the rollout (and exits non-zero with the evidence), waits, or moves to the next stage.

use serde::{Deserialize, Serialize};

use crate::checkin::UpdateResult;

/// Hosts listed as evidence in a health report, at most.
pub const MAX_EVIDENCE: usize = 20;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionHealth {
    pub channel: String,
    pub version: u64,
    /// The window's start (Unix seconds) and the server's clock when it answered.
    pub since: i64,
    pub now: i64,
    pub silent_after_secs: u64,
    pub reporting: u64,
    pub failed: u64,
    pub installed: u64,
    pub silent: u64,
    pub others_installed: u64,
    pub others_silent: u64,
    /// Up to [`MAX_EVIDENCE`] failing hosts, newest first.
    pub failures: Vec<HostEvidence>,
    /// Up to [`MAX_EVIDENCE`] silent hosts, longest silent first.
    pub silent_hosts: Vec<HostEvidence>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEvidence {
    pub client_id: String,
    pub hostname: String,
    /// The last update's result and message as the host reported them.
    pub result: UpdateResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The host's last check-in (server clock).
    pub last_seen: i64,
}

/// When to halt. Shares are in parts per million so the policy is exact and prints as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HaltPolicy {
    /// Halt when more than this share of reporting clients failed N (default 1%).
    pub max_failure_ppm: u64,
    /// Judge only with at least this many reports; fewer means "wait" (default 3).
    pub min_reports: u64,
    /// Halt when the share of N's clients gone silent exceeds the baseline's by more than this
    /// (default 1%), with at least `min_reports` of them silent.
    pub max_excess_silent_ppm: u64,
}

impl Default for HaltPolicy {
    fn default() -> Self {
        Self {
            max_failure_ppm: 10_000,
            min_reports: 3,
            max_excess_silent_ppm: 10_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Healthy enough to go on.
    Healthy,
    /// Too few reports to judge; the text says how many of how many.
    Wait(String),
    /// Halt; the text is the evidence, one line.
    Halt(String),
}

fn ppm(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        0
    } else {
        (u128::from(part) * 1_000_000 / u128::from(whole)) as u64
    }
}

/// "1.5%" for 15000 ppm.
pub fn percent(ppm: u64) -> String {
    let whole = ppm / 10_000;
    let frac = (ppm % 10_000) / 100;
    if frac == 0 {
        format!("{whole}%")
    } else {
        let frac = format!("{frac:02}");
        format!("{whole}.{}%", frac.trim_end_matches('0'))
    }
}

/// The automatic-halt rule: failures first (the clearest evidence), then silence.
pub fn judge(h: &VersionHealth, p: &HaltPolicy) -> Verdict {
    let fail_share = ppm(h.failed, h.reporting);
    if h.reporting >= p.min_reports && fail_share > p.max_failure_ppm {
        return Verdict::Halt(format!(
            "{} of {} clients reporting on version {} failed it (smoke test or load): {} > {}",
            h.failed,
            h.reporting,
            h.version,
            percent(fail_share),
            percent(p.max_failure_ppm)
        ));
    }
    let silent_share = ppm(h.silent, h.installed);
    let baseline = ppm(h.others_silent, h.others_installed);
    if h.silent >= p.min_reports && silent_share > baseline.saturating_add(p.max_excess_silent_ppm)
    {
        return Verdict::Halt(format!(
            "{} of {} clients on version {} stopped checking in (silent for over {} s): {} against {} on other versions",
            h.silent,
            h.installed,
            h.version,
            h.silent_after_secs,
            percent(silent_share),
            percent(baseline)
        ));
    }
    if h.reporting < p.min_reports {
        return Verdict::Wait(format!(
            "{} of the {} reports needed on version {}",
            h.reporting, p.min_reports, h.version
        ));
    }
    Verdict::Healthy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(reporting: u64, failed: u64, installed: u64, silent: u64) -> VersionHealth {
        VersionHealth {
            channel: "stable".into(),
            version: 8,
            reporting,
            failed,
            installed,
            silent,
            others_installed: 100,
            others_silent: 2,
            silent_after_secs: 7200,
            ..VersionHealth::default()
        }
    }

    #[test]
    fn halts_on_failures_and_silence_not_on_a_healthy_fleet() {
        let p = HaltPolicy::default();
        assert_eq!(judge(&health(200, 1, 200, 0), &p), Verdict::Healthy);
        let Verdict::Halt(why) = judge(&health(3, 2, 1, 0), &p) else {
            panic!("canary failures must halt")
        };
        assert!(why.contains("2 of 3") && why.contains("66.66%"), "{why}");
        // 3 of 100 silent against a 2% baseline: within 1% excess... 3% > 2% + 1% is false.
        assert_eq!(judge(&health(100, 0, 100, 3), &p), Verdict::Healthy);
        let Verdict::Halt(why) = judge(&health(100, 0, 100, 40), &p) else {
            panic!("a crash loop must halt")
        };
        assert!(why.contains("stopped checking in"), "{why}");
        assert!(matches!(judge(&health(2, 0, 2, 0), &p), Verdict::Wait(_)));
        // Too few reports to judge a failure share, but not nothing.
        assert!(matches!(judge(&health(2, 1, 1, 0), &p), Verdict::Wait(_)));
    }

    #[test]
    fn percentages_print_as_given() {
        assert_eq!(percent(10_000), "1%");
        assert_eq!(percent(15_000), "1.5%");
        assert_eq!(percent(666_666), "66.66%");
        assert_eq!(percent(0), "0%");
    }
}
