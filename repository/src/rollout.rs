//! Staged rollout: which clients a release is offered to, as the signed target metadata says.
//!
//! A full database's `custom` metadata may carry a [`Release`]: its channel (`stable` when
//! absent), when it was published, a rollout plan with its current stage, a pause, and a
//! revocation. The plan is a list of [`Stage`]s: a named ring (`canary`: clients configured
//! with that ring take the release from that stage on) or a percentage of the channel's other
//! clients, each held for a duration before the next (`canary,1%:1h,10%:6h,50%:12h,100%`).
//!
//! A client's place in a percentage stage is its [`bucket`]: a number 0..=99 hashed from the
//! channel and the client's stable id, so it is the same at every check and a stage of P%
//! admits exactly the buckets below P. Raising the percentage therefore never drops a client
//! that was already in, and every release of a channel reaches the same early hosts first
//! (operators can tell who they are, and those hosts can be watched).
//!
//! Everything here is a pure function of the metadata and the client's settings: the updater
//! decides, the server only serves, and `vigil-build rollout` changes the metadata (signed, like
//! every other change).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The channel of a release whose metadata names none (and of a client that sets none).
pub const DEFAULT_CHANNEL: &str = "stable";

/// How long a stage without `:DURATION` is held before `rollout advance` moves on.
pub const DEFAULT_HOLD_SECS: u64 = 3600;

/// What a release says about itself besides its version: flattened into `TargetInfo::Full`.
/// Every field is optional and absent when unset, so a release published without a plan has the
/// metadata it had before rollouts existed, and older clients read newer metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The channel; absent means [`DEFAULT_CHANNEL`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// When it was published (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<i64>,
    /// The rollout plan and where it stands; absent: offered to every client of the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Set by `rollout revoke`: never installed again, and clients that have it move off it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub stages: Vec<Stage>,
    /// Index into `stages` of the current stage.
    pub stage: u32,
    /// When the current stage began (Unix seconds).
    pub stage_started: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Pause>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub at: i64,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub at: i64,
    pub reason: String,
}

/// One step of a plan. Written `RING[:DURATION]` or `PERCENT%[:DURATION]`; durations are a
/// number and a unit, `s`, `m`, `h` or `d`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Stage {
    /// Clients configured with this ring take the release from this stage on.
    Ring { name: String, hold_secs: u64 },
    /// Clients whose bucket is below `percent` take it (1..=100).
    Percent { percent: u32, hold_secs: u64 },
}

/// Why a stage or plan was refused, for the command line (`--stages`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("stage {stage:?}: {why}")]
    Stage { stage: String, why: String },
    #[error("the plan is empty")]
    Empty,
    #[error("the last stage is {0}: a plan must end at 100%")]
    NotComplete(String),
    #[error(
        "stage {stage} ({now}%) is lower than an earlier one ({before}%): percentages only grow"
    )]
    Shrinks {
        stage: String,
        now: u32,
        before: u32,
    },
    #[error("ring {0:?} is named twice")]
    DuplicateRing(String),
}

impl Stage {
    pub fn hold_secs(&self) -> u64 {
        match self {
            Self::Ring { hold_secs, .. } | Self::Percent { hold_secs, .. } => *hold_secs,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (head, hold) = match self {
            Self::Ring { name, hold_secs } => (name.clone(), *hold_secs),
            Self::Percent { percent, hold_secs } => (format!("{percent}%"), *hold_secs),
        };
        if hold == DEFAULT_HOLD_SECS
            || (hold == 0 && matches!(self, Self::Percent { percent: 100, .. }))
        {
            write!(f, "{head}")
        } else {
            write!(f, "{head}:{}", format_duration(hold))
        }
    }
}

impl From<Stage> for String {
    fn from(s: Stage) -> Self {
        s.to_string()
    }
}

impl TryFrom<String> for Stage {
    type Error = PlanError;
    fn try_from(s: String) -> Result<Self, PlanError> {
        s.parse()
    }
}

impl FromStr for Stage {
    type Err = PlanError;
    fn from_str(s: &str) -> Result<Self, PlanError> {
        let bad = |why: &str| PlanError::Stage {
            stage: s.to_owned(),
            why: why.to_owned(),
        };
        let (head, hold) = match s.split_once(':') {
            Some((h, d)) => match parse_duration(d) {
                Some(secs) => (h, Some(secs)),
                None => return Err(bad("the duration is not N followed by s, m, h or d")),
            },
            None => (s, None),
        };
        if let Some(p) = head.strip_suffix('%') {
            let percent: u32 = p
                .parse()
                .map_err(|_| bad("the percentage is not a whole number"))?;
            if !(1..=100).contains(&percent) {
                return Err(bad("the percentage must be 1 to 100"));
            }
            // The final stage holds nothing: the rollout is done.
            let default = if percent == 100 { 0 } else { DEFAULT_HOLD_SECS };
            return Ok(Self::Percent {
                percent,
                hold_secs: hold.unwrap_or(default),
            });
        }
        if !valid_name(head) {
            return Err(bad(
                "a ring name is 1 to 32 of a-z, 0-9 and -, or a stage is N%",
            ));
        }
        Ok(Self::Ring {
            name: head.to_owned(),
            hold_secs: hold.unwrap_or(DEFAULT_HOLD_SECS),
        })
    }
}

/// Channel and ring names: short, lowercase, safe in logs, metrics and file names.
pub fn valid_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `30s`, `15m`, `6h`, `2d`.
pub fn parse_duration(s: &str) -> Option<u64> {
    let unit = match s.as_bytes().last()? {
        b's' => 1,
        b'm' => 60,
        b'h' => 3600,
        b'd' => 86_400,
        _ => return None,
    };
    let n: u64 = s.get(..s.len() - 1)?.parse().ok()?;
    n.checked_mul(unit)
}

pub fn format_duration(secs: u64) -> String {
    match secs {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Parses a `--stages` plan: comma-separated stages, percentages non-decreasing, ending at 100%.
pub fn parse_plan(s: &str) -> Result<Vec<Stage>, PlanError> {
    let stages: Vec<Stage> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    check_plan(&stages)?;
    Ok(stages)
}

pub fn check_plan(stages: &[Stage]) -> Result<(), PlanError> {
    let Some(last) = stages.last() else {
        return Err(PlanError::Empty);
    };
    if !matches!(last, Stage::Percent { percent: 100, .. }) {
        return Err(PlanError::NotComplete(last.to_string()));
    }
    let mut before = 0;
    let mut rings: Vec<&str> = Vec::new();
    for st in stages {
        match st {
            Stage::Percent { percent, .. } => {
                if *percent < before {
                    return Err(PlanError::Shrinks {
                        stage: st.to_string(),
                        now: *percent,
                        before,
                    });
                }
                before = *percent;
            }
            Stage::Ring { name, .. } => {
                if rings.contains(&name.as_str()) {
                    return Err(PlanError::DuplicateRing(name.clone()));
                }
                rings.push(name);
            }
        }
    }
    Ok(())
}

/// The client's place in a channel's percentage stages, 0..=99: the first eight bytes of
/// SHA-256(`"vigil-rollout:" + channel + ":" + client_id`), big-endian, modulo 100. Stable
/// for a client id, independent of the release, uniform over ids (the modulo bias of a 64-bit
/// value is below 10^-17).
pub fn bucket(channel: &str, client_id: &str) -> u32 {
    let mut h = Sha256::new();
    h.update(b"vigil-rollout:");
    h.update(channel.as_bytes());
    h.update(b":");
    h.update(client_id.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(first) % 100) as u32
}

/// Who is asking: what the updater knows about itself.
#[derive(Clone, Copy, Debug)]
pub struct Client<'a> {
    pub channel: &'a str,
    pub ring: Option<&'a str>,
    pub bucket: u32,
}

/// Whether a release is offered to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Held back; the text says why, for the updater's log ("stable at 10%, bucket 57").
    Held(String),
    /// Revoked, with the reason: never installed, and a client that has it moves off it.
    Revoked(String),
    /// Another channel's release.
    OtherChannel,
}

impl Release {
    pub fn channel(&self) -> &str {
        self.channel.as_deref().unwrap_or(DEFAULT_CHANNEL)
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked.is_some()
    }

    /// Whether `client` may install this release. `has_it`: the client runs it already (a
    /// pause keeps it there; only a revocation moves it off).
    pub fn admits(&self, client: &Client<'_>, has_it: bool) -> Admission {
        if let Some(r) = &self.revoked {
            return Admission::Revoked(r.reason.clone());
        }
        if self.channel() != client.channel {
            return Admission::OtherChannel;
        }
        let Some(r) = &self.rollout else {
            return Admission::Admitted;
        };
        if has_it {
            return Admission::Admitted;
        }
        let (rings, percent) = r.reach();
        if let Some(p) = &r.paused {
            return Admission::Held(format!(
                "{} paused at {}: {}",
                self.channel(),
                r.describe_reach(),
                p.reason
            ));
        }
        if client.ring.is_some_and(|ring| rings.contains(&ring)) || client.bucket < percent {
            return Admission::Admitted;
        }
        Admission::Held(format!(
            "{} at {}, bucket {}",
            self.channel(),
            r.describe_reach(),
            client.bucket
        ))
    }
}

impl Rollout {
    /// A new rollout at its first stage.
    pub fn start(stages: Vec<Stage>, now: i64) -> Self {
        Self {
            stages,
            stage: 0,
            stage_started: now,
            paused: None,
        }
    }

    pub fn current(&self) -> Option<&Stage> {
        self.stages.get(self.stage as usize)
    }

    /// The rings admitted so far and the percentage reached: stages up to the current one.
    pub fn reach(&self) -> (Vec<&str>, u32) {
        let upto = (self.stage as usize + 1).min(self.stages.len());
        let mut rings = Vec::new();
        let mut percent = 0;
        for st in &self.stages[..upto] {
            match st {
                Stage::Ring { name, .. } => rings.push(name.as_str()),
                Stage::Percent { percent: p, .. } => percent = percent.max(*p),
            }
        }
        (rings, percent)
    }

    /// "canary", "10%", "canary and 1%".
    pub fn describe_reach(&self) -> String {
        let (rings, percent) = self.reach();
        match (rings.is_empty(), percent) {
            (_, 100) => "100%".into(),
            (false, 0) => rings.join("+"),
            (true, p) => format!("{p}%"),
            (false, p) => format!("{}+{p}%", rings.join("+")),
        }
    }

    /// Every client of the channel is in: the last stage (100%) is reached.
    pub fn is_complete(&self) -> bool {
        self.reach().1 >= 100
    }

    /// When the current stage's hold ends and `advance` may move on (`None`: complete).
    pub fn next_due(&self) -> Option<i64> {
        if self.is_complete() {
            return None;
        }
        let hold = self.current().map_or(0, Stage::hold_secs);
        Some(
            self.stage_started
                .saturating_add(i64::try_from(hold).unwrap_or(i64::MAX)),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plans_parse_print_and_check() {
        let p = parse_plan("canary,1%:1h,10%:6h,50%:12h,100%").unwrap();
        assert_eq!(p.len(), 5);
        assert_eq!(
            p[0],
            Stage::Ring {
                name: "canary".into(),
                hold_secs: 3600
            }
        );
        assert_eq!(
            p[2],
            Stage::Percent {
                percent: 10,
                hold_secs: 6 * 3600
            }
        );
        let printed: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert_eq!(printed, ["canary", "1%", "10%:6h", "50%:12h", "100%"]);
        assert_eq!("canary:30s".parse::<Stage>().unwrap().hold_secs(), 30);
        for (bad, want) in [
            ("", "empty"),
            ("10%", "must end at 100%"),
            ("50%,10%,100%", "only grow"),
            ("0%,100%", "1 to 100"),
            ("101%", "1 to 100"),
            ("Canary,100%", "ring name"),
            ("canary:1w,100%", "duration"),
            ("canary,canary,100%", "twice"),
        ] {
            let e = parse_plan(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn admission_follows_stage_pause_and_revocation() {
        let mut rel = Release {
            channel: None,
            published: Some(0),
            rollout: Some(Rollout::start(parse_plan("canary,10%,100%").unwrap(), 0)),
            revoked: None,
        };
        let canary = Client {
            channel: "stable",
            ring: Some("canary"),
            bucket: 99,
        };
        let low = Client {
            channel: "stable",
            ring: None,
            bucket: 5,
        };
        let high = Client {
            channel: "stable",
            ring: None,
            bucket: 57,
        };
        assert_eq!(rel.admits(&canary, false), Admission::Admitted);
        assert_eq!(
            rel.admits(&low, false),
            Admission::Held("stable at canary, bucket 5".into())
        );
        rel.rollout.as_mut().unwrap().stage = 1;
        assert_eq!(rel.admits(&low, false), Admission::Admitted);
        assert_eq!(
            rel.admits(&high, false),
            Admission::Held("stable at canary+10%, bucket 57".into())
        );
        rel.rollout.as_mut().unwrap().paused = Some(Pause {
            at: 1,
            reason: "smoke failures".into(),
        });
        assert!(matches!(rel.admits(&low, false), Admission::Held(_)));
        assert_eq!(rel.admits(&low, true), Admission::Admitted);
        rel.rollout.as_mut().unwrap().paused = None;
        rel.rollout.as_mut().unwrap().stage = 2;
        assert_eq!(rel.admits(&high, false), Admission::Admitted);
        assert!(rel.rollout.as_ref().unwrap().is_complete());
        let beta = Client {
            channel: "beta",
            ..high
        };
        assert_eq!(rel.admits(&beta, false), Admission::OtherChannel);
        rel.revoked = Some(Revocation {
            at: 2,
            reason: "FP storm".into(),
        });
        assert_eq!(
            rel.admits(&high, true),
            Admission::Revoked("FP storm".into())
        );
    }

    #[test]
    fn bucket_is_stable_and_documented() {
        // The documented formula, spelled out.
        let d = Sha256::digest(b"vigil-rollout:stable:i-0abc");
        let want = u64::from_be_bytes(d[..8].try_into().unwrap()) % 100;
        assert_eq!(u64::from(bucket("stable", "i-0abc")), want);
        assert_eq!(bucket("stable", "i-0abc"), bucket("stable", "i-0abc"));
    }

    proptest::proptest! {
        /// Raising the stage never removes a client: whoever a stage admits, every later
        /// stage admits too (buckets below P are below every P' >= P, rings stay named).
        #[test]
        fn a_later_stage_never_drops_a_client(
            id in "[A-Za-z0-9._:-]{1,64}",
            ring in proptest::option::of(proptest::sample::select(vec!["canary", "early"])),
            canary_first in proptest::bool::ANY,
            mut percents in proptest::collection::vec(1u32..=100, 0..6),
        ) {
            percents.sort_unstable();
            let mut stages: Vec<Stage> = Vec::new();
            if canary_first {
                stages.push(Stage::Ring { name: "canary".into(), hold_secs: 60 });
            }
            stages.extend(percents.iter().map(|&percent| Stage::Percent { percent, hold_secs: 60 }));
            stages.push(Stage::Percent { percent: 100, hold_secs: 0 });
            check_plan(&stages).unwrap();
            let client = Client { channel: "stable", ring, bucket: bucket("stable", &id) };
            let mut rel = Release {
                rollout: Some(Rollout::start(stages.clone(), 0)),
                ..Release::default()
            };
            let mut was_in = false;
            for i in 0..stages.len() {
                rel.rollout.as_mut().unwrap().stage = i as u32;
                let now_in = rel.admits(&client, false) == Admission::Admitted;
                proptest::prop_assert!(now_in || !was_in, "stage {i} of {stages:?} dropped {id}");
                was_in = now_in;
            }
            // The last stage is 100%: everyone is in.
            proptest::prop_assert!(was_in);
        }
    }

    /// 20,000 ids over 100 buckets: 200 expected in each, binomial sd = sqrt(20000 * 0.01 *
    /// 0.99) = 14.07. Every bucket within 5 sd (±70) fails by chance with probability about
    /// 100 * 5.7e-7 = 6e-5 for a uniform hash; and the chi-square statistic (99 degrees of
    /// freedom: mean 99, sd 14.07) stays below mean + 5 sd = 170. The ids are sequential, as
    /// generated ids never are: the hash must spread even those.
    #[test]
    fn buckets_spread_evenly() {
        let n = 20_000u32;
        let mut counts = [0u32; 100];
        for i in 0..n {
            counts[bucket("stable", &format!("host-{i:05}")) as usize] += 1;
        }
        let expected = f64::from(n) / 100.0;
        let sd = (f64::from(n) * 0.01 * 0.99).sqrt();
        let mut chi2 = 0.0;
        for (b, &c) in counts.iter().enumerate() {
            let dev = f64::from(c) - expected;
            assert!(
                dev.abs() <= 5.0 * sd,
                "bucket {b} holds {c}, expected {expected} ± {}",
                5.0 * sd
            );
            chi2 += dev * dev / expected;
        }
        assert!(
            chi2 < 99.0 + 5.0 * (2.0f64 * 99.0).sqrt(),
            "chi-square {chi2}"
        );
        // Another channel puts the same host elsewhere: channels are independent.
        let moved = (0..1000)
            .filter(|i| {
                let id = format!("host-{i:05}");
                bucket("stable", &id) != bucket("beta", &id)
            })
            .count();
        assert!(moved > 900, "{moved} of 1000 moved");
    }
}
