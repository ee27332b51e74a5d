//! Choosing what to download: the newest database this engine can load, and the cheapest chain
//! of deltas from the installed database to it, or the full file when no chain is cheaper.
//! Pure functions over the verified targets list, so the choice is tested without a network.

use std::collections::BTreeMap;

use vigil_repository::layout::TargetInfo;
use vigil_repository::rollout::{Admission, Client};

use crate::state::State;

/// One of our targets, as TUF lists it (length and hash are what the download must match).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub len: u64,
    pub sha256: String,
    pub info: TargetInfo,
}

/// Our targets in a loaded (verified) repository; targets that are not ours are ignored.
pub fn candidates(repo: &tough::Repository) -> Vec<Candidate> {
    repo.targets()
        .signed
        .targets
        .iter()
        .filter_map(|(name, t)| {
            Some(Candidate {
                name: name.raw().to_owned(),
                len: t.length,
                sha256: hex::encode(&t.hashes.sha256),
                info: TargetInfo::from_custom(&t.custom)?,
            })
        })
        .collect()
}

/// A new, verified, admitted database to install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The full database to end with; its length and hash are the final check.
    pub full: Candidate,
    /// Deltas to apply in order, from the installed database to `full` (may be empty).
    pub deltas: Vec<Candidate>,
    /// The installed release is revoked (version, SHA-256, reason): `full` may be older, and
    /// the revoked one must never come back (not even as last-known-good).
    pub leaving_revoked: Option<Revoked>,
}

/// A revoked release this client has installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    pub version: u64,
    pub sha256: String,
    pub reason: String,
}

// One value per update check, moved once: boxing the plan would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    UpToDate {
        /// A newer database exists that this engine cannot load: (version, engine it needs).
        needs_newer_engine: Option<(u64, u32)>,
        /// A newer database exists that failed here before: (version, reason).
        known_bad: Option<(u64, String)>,
        /// A newer database exists that the rollout does not offer this client yet: why
        /// (`stable at canary+10%, bucket 57`, `stable paused at 10%: REASON`).
        held: Option<String>,
        /// The installed release is revoked, and no other release is offered to move to.
        stuck_on_revoked: Option<Revoked>,
    },
    Update(Plan),
}

/// The installed release, when the repository (or, once it was seen, this client's state)
/// says it is revoked.
pub fn installed_revocation(
    cands: &[Candidate],
    installed: Option<(u64, &str)>,
    state: &State,
) -> Option<Revoked> {
    let (version, sha) = installed?;
    let listed = cands.iter().find_map(|c| match &c.info {
        TargetInfo::Full {
            db_version,
            release,
            ..
        } if *db_version == version && c.sha256 == sha => release.revoked.as_ref(),
        _ => None,
    });
    let reason = match listed {
        Some(r) => r.reason.clone(),
        None => {
            let bad = state.is_bad(version, sha)?;
            bad.reason.strip_prefix(REVOKED_PREFIX)?.to_owned()
        }
    };
    Some(Revoked {
        version,
        sha256: sha.to_owned(),
        reason,
    })
}

/// How `state.json` records a revoked release among the bad ones.
pub const REVOKED_PREFIX: &str = "revoked: ";

/// The newest database this engine loads, that did not fail here, and that the rollout
/// offers `client`: newer than the installed one, or any other when the installed one is
/// revoked (the only way versions go down).
pub fn choose(
    cands: &[Candidate],
    installed: Option<(u64, &str)>,
    engine_version: u32,
    state: &State,
    client: &Client<'_>,
) -> Choice {
    let installed_version = installed.map_or(0, |(v, _)| v);
    let revoked = installed_revocation(cands, installed, state);
    let mut needs_newer_engine = None;
    let mut known_bad = None;
    let mut held: Option<(u64, String)> = None;
    let mut fulls: Vec<&Candidate> = Vec::new();
    for c in cands {
        let TargetInfo::Full {
            db_version,
            min_engine_version,
            release,
            ..
        } = &c.info
        else {
            continue;
        };
        let db_version = *db_version;
        let newer = db_version > installed_version;
        let wanted = match &revoked {
            Some(r) => db_version != r.version,
            None => newer,
        };
        if !wanted {
            continue;
        }
        if *min_engine_version > engine_version {
            if newer && needs_newer_engine.is_none_or(|(v, _)| v < db_version) {
                needs_newer_engine = Some((db_version, *min_engine_version));
            }
            continue;
        }
        if let Some(b) = state.is_bad(db_version, &c.sha256) {
            if newer && known_bad.as_ref().is_none_or(|(v, _)| *v < db_version) {
                known_bad = Some((db_version, b.reason.clone()));
            }
            continue;
        }
        match release.admits(client, false) {
            Admission::Admitted => fulls.push(c),
            Admission::Held(why) => {
                if newer && held.as_ref().is_none_or(|(v, _)| *v < db_version) {
                    held = Some((db_version, why));
                }
            }
            Admission::Revoked(_) | Admission::OtherChannel => {}
        }
    }
    let Some(full) = fulls.into_iter().max_by_key(|c| c.info.db_version()) else {
        return Choice::UpToDate {
            needs_newer_engine,
            known_bad,
            held: held.map(|(_, why)| why),
            stuck_on_revoked: revoked,
        };
    };
    let deltas = match installed {
        Some((_, sha)) => cheapest_chain(cands, sha, &full.sha256, engine_version)
            .filter(|chain| chain.iter().map(|d| d.len).sum::<u64>() < full.len)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Choice::Update(Plan {
        full: full.clone(),
        deltas,
        leaving_revoked: revoked,
    })
}

/// The chain of deltas with the fewest total bytes from the database with hash `from` to the
/// one with hash `to`. Deltas only go forward in version, so one pass in version order finds it.
fn cheapest_chain(
    cands: &[Candidate],
    from: &str,
    to: &str,
    engine_version: u32,
) -> Option<Vec<Candidate>> {
    let mut edges: Vec<(&Candidate, u64, &str, &str)> = cands
        .iter()
        .filter_map(|c| match &c.info {
            TargetInfo::Delta {
                db_version,
                min_engine_version,
                base_sha256,
                result_sha256,
                ..
            } if *min_engine_version <= engine_version => {
                Some((c, *db_version, base_sha256.as_str(), result_sha256.as_str()))
            }
            _ => None,
        })
        .collect();
    edges.sort_by_key(|e| e.1);
    // Best known (cost, path) to each database hash.
    let mut best: BTreeMap<&str, (u64, Vec<&Candidate>)> = BTreeMap::new();
    best.insert(from, (0, Vec::new()));
    for (c, _, base, result) in edges {
        let Some((cost, path)) = best.get(base).cloned() else {
            continue;
        };
        let cost = cost.saturating_add(c.len);
        if best.get(result).is_none_or(|(old, _)| cost < *old) {
            let mut p = path;
            p.push(c);
            best.insert(result, (cost, p));
        }
    }
    best.remove(to)
        .filter(|(_, p)| !p.is_empty())
        .map(|(_, p)| p.into_iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: Client<'static> = Client {
        channel: "stable",
        ring: None,
        bucket: 0,
    };

    fn full(v: u64, len: u64, engine: u32) -> Candidate {
        Candidate {
            name: format!("vigil-{v}.vdb"),
            len,
            sha256: format!("s{v}"),
            info: TargetInfo::Full {
                db_version: v,
                min_engine_version: engine,
                gate_override: None,
                release: Default::default(),
            },
        }
    }

    fn delta(a: u64, b: u64, len: u64) -> Candidate {
        Candidate {
            name: format!("vigil-{a}-{b}.vdelta"),
            len,
            sha256: format!("d{a}-{b}"),
            info: TargetInfo::Delta {
                db_version: b,
                min_engine_version: 1,
                base_version: a,
                base_sha256: format!("s{a}"),
                result_sha256: format!("s{b}"),
            },
        }
    }

    #[test]
    fn picks_the_cheapest_delta_chain_or_the_full_file() {
        let c = vec![
            full(1, 1000, 1),
            full(2, 1000, 1),
            full(3, 1000, 1),
            delta(1, 2, 100),
            delta(2, 3, 100),
            delta(1, 3, 250),
        ];
        let s = State::default();
        let Choice::Update(p) = choose(&c, Some((1, "s1")), 1, &s, &ANY) else {
            panic!("expected an update")
        };
        assert_eq!(p.full.name, "vigil-3.vdb");
        let names: Vec<_> = p.deltas.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["vigil-1-2.vdelta", "vigil-2-3.vdelta"]);
        // From version 2: the single delta.
        let Choice::Update(p) = choose(&c, Some((2, "s2")), 1, &s, &ANY) else {
            panic!()
        };
        assert_eq!(p.deltas.len(), 1);
        // An unknown installed build (a different hash) gets the full file.
        let Choice::Update(p) = choose(&c, Some((1, "other")), 1, &s, &ANY) else {
            panic!()
        };
        assert!(p.deltas.is_empty());
        // Deltas that cost more than the full file are not used.
        let c2 = vec![full(1, 100, 1), full(2, 100, 1), delta(1, 2, 150)];
        let Choice::Update(p) = choose(&c2, Some((1, "s1")), 1, &s, &ANY) else {
            panic!()
        };
        assert!(p.deltas.is_empty());
    }

    #[test]
    fn never_goes_back_and_skips_incompatible_and_bad_versions() {
        let c = vec![full(1, 10, 1), full(2, 10, 1), full(3, 10, 2)];
        let mut s = State::default();
        assert_eq!(
            choose(&c, Some((2, "s2")), 1, &s, &ANY),
            Choice::UpToDate {
                needs_newer_engine: Some((3, 2)),
                known_bad: None,
                held: None,
                stuck_on_revoked: None,
            }
        );
        let Choice::Update(p) = choose(&c, Some((1, "s1")), 1, &s, &ANY) else {
            panic!()
        };
        assert_eq!(p.full.name, "vigil-2.vdb");
        s.mark_bad(2, "s2", "smoke test failed");
        assert!(matches!(
            choose(&c, Some((1, "s1")), 1, &s, &ANY),
            Choice::UpToDate {
                known_bad: Some((2, _)),
                ..
            }
        ));
        assert!(matches!(
            choose(&c, Some((5, "s5")), 9, &s, &ANY),
            Choice::UpToDate { .. }
        ));
        let Choice::Update(p) = choose(&c, None, 9, &s, &ANY) else {
            panic!()
        };
        assert_eq!(p.full.name, "vigil-3.vdb");
    }

    fn with_release(mut c: Candidate, release: vigil_repository::rollout::Release) -> Candidate {
        if let TargetInfo::Full { release: r, .. } = &mut c.info {
            *r = release;
        }
        c
    }

    #[test]
    fn holds_back_by_rollout_and_leaves_a_revoked_release_even_downwards() {
        use vigil_repository::rollout::{parse_plan, Release, Revocation, Rollout};
        let rolling = Release {
            rollout: Some(Rollout::start(parse_plan("canary,10%,100%").unwrap(), 0)),
            ..Release::default()
        };
        let c = vec![
            full(1, 10, 1),
            with_release(full(2, 10, 1), rolling.clone()),
        ];
        let s = State::default();
        let far = Client { bucket: 57, ..ANY };
        assert_eq!(
            choose(&c, Some((1, "s1")), 1, &s, &far),
            Choice::UpToDate {
                needs_newer_engine: None,
                known_bad: None,
                held: Some("stable at canary, bucket 57".into()),
                stuck_on_revoked: None,
            }
        );
        let canary = Client {
            ring: Some("canary"),
            ..far
        };
        let Choice::Update(p) = choose(&c, Some((1, "s1")), 1, &s, &canary) else {
            panic!("the canary takes the first stage")
        };
        assert_eq!(p.full.name, "vigil-2.vdb");
        // Another channel's release is not offered at all.
        let beta = Client {
            channel: "beta",
            ..canary
        };
        assert!(matches!(
            choose(&c, Some((1, "s1")), 1, &s, &beta),
            Choice::UpToDate { held: None, .. }
        ));

        // Version 2 revoked: a client on it goes back to 1, a client on 1 stays.
        let revoked = Release {
            revoked: Some(Revocation {
                at: 1,
                reason: "FP storm".into(),
            }),
            ..rolling
        };
        let c = vec![full(1, 10, 1), with_release(full(2, 10, 1), revoked)];
        let Choice::Update(p) = choose(&c, Some((2, "s2")), 1, &s, &canary) else {
            panic!("leaves the revoked release")
        };
        assert_eq!(p.full.name, "vigil-1.vdb");
        assert_eq!(
            p.leaving_revoked
                .as_ref()
                .map(|r| (r.version, r.reason.as_str())),
            Some((2, "FP storm"))
        );
        assert!(matches!(
            choose(&c, Some((1, "s1")), 1, &s, &canary),
            Choice::UpToDate { .. }
        ));
        // Recorded in the state, a revoked release stays revoked even when the repository no
        // longer lists it, and it is never chosen again.
        let mut s2 = State::default();
        s2.mark_bad(2, "s2", &format!("{REVOKED_PREFIX}FP storm"));
        let only1 = vec![full(1, 10, 1)];
        let Choice::Update(p) = choose(&only1, Some((2, "s2")), 1, &s2, &canary) else {
            panic!("leaves the revoked release")
        };
        assert_eq!(p.full.name, "vigil-1.vdb");
        let again = vec![full(1, 10, 1), full(2, 10, 1)];
        assert!(matches!(
            choose(&again, Some((1, "s1")), 1, &s2, &canary),
            Choice::UpToDate {
                known_bad: Some((2, _)),
                ..
            }
        ));
        // Nowhere to go: keep it, and say so.
        let c = vec![c[1].clone()];
        assert!(matches!(
            choose(&c, Some((2, "s2")), 1, &s, &canary),
            Choice::UpToDate {
                stuck_on_revoked: Some(_),
                ..
            }
        ));
    }
}
