//! Choosing what to download: the newest database this engine can load, and the cheapest chain
//! of deltas from the installed database to it, or the full file when no chain is cheaper.
//! Pure functions over the verified targets list, so the choice is tested without a network.

use std::collections::BTreeMap;

use vigil_repository::layout::TargetInfo;

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The full database to end with; its length and hash are the final check.
    pub full: Candidate,
    /// Deltas to apply in order, from the installed database to `full` (may be empty).
    pub deltas: Vec<Candidate>,
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
    },
    Update(Plan),
}

pub fn choose(
    cands: &[Candidate],
    installed: Option<(u64, &str)>,
    engine_version: u32,
    state: &State,
) -> Choice {
    let installed_version = installed.map_or(0, |(v, _)| v);
    let mut needs_newer_engine = None;
    let mut known_bad = None;
    let mut fulls: Vec<&Candidate> = Vec::new();
    for c in cands {
        let TargetInfo::Full {
            db_version,
            min_engine_version,
            ..
        } = c.info
        else {
            continue;
        };
        if db_version <= installed_version {
            continue;
        }
        if min_engine_version > engine_version {
            if needs_newer_engine.is_none_or(|(v, _)| v < db_version) {
                needs_newer_engine = Some((db_version, min_engine_version));
            }
            continue;
        }
        if let Some(b) = state.is_bad(db_version, &c.sha256) {
            if known_bad.as_ref().is_none_or(|(v, _)| *v < db_version) {
                known_bad = Some((db_version, b.reason.clone()));
            }
            continue;
        }
        fulls.push(c);
    }
    let Some(full) = fulls.into_iter().max_by_key(|c| c.info.db_version()) else {
        return Choice::UpToDate {
            needs_newer_engine,
            known_bad,
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
        let Choice::Update(p) = choose(&c, Some((1, "s1")), 1, &s) else {
            panic!("expected an update")
        };
        assert_eq!(p.full.name, "vigil-3.vdb");
        let names: Vec<_> = p.deltas.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["vigil-1-2.vdelta", "vigil-2-3.vdelta"]);
        // From version 2: the single delta.
        let Choice::Update(p) = choose(&c, Some((2, "s2")), 1, &s) else {
            panic!()
        };
        assert_eq!(p.deltas.len(), 1);
        // An unknown installed build (a different hash) gets the full file.
        let Choice::Update(p) = choose(&c, Some((1, "other")), 1, &s) else {
            panic!()
        };
        assert!(p.deltas.is_empty());
        // Deltas that cost more than the full file are not used.
        let c2 = vec![full(1, 100, 1), full(2, 100, 1), delta(1, 2, 150)];
        let Choice::Update(p) = choose(&c2, Some((1, "s1")), 1, &s) else {
            panic!()
        };
        assert!(p.deltas.is_empty());
    }

    #[test]
    fn never_goes_back_and_skips_incompatible_and_bad_versions() {
        let c = vec![full(1, 10, 1), full(2, 10, 1), full(3, 10, 2)];
        let mut s = State::default();
        assert_eq!(
            choose(&c, Some((2, "s2")), 1, &s),
            Choice::UpToDate {
                needs_newer_engine: Some((3, 2)),
                known_bad: None
            }
        );
        let Choice::Update(p) = choose(&c, Some((1, "s1")), 1, &s) else {
            panic!()
        };
        assert_eq!(p.full.name, "vigil-2.vdb");
        s.mark_bad(2, "s2", "smoke test failed");
        assert!(matches!(
            choose(&c, Some((1, "s1")), 1, &s),
            Choice::UpToDate {
                known_bad: Some((2, _)),
                ..
            }
        ));
        assert!(matches!(
            choose(&c, Some((5, "s5")), 9, &s),
            Choice::UpToDate { .. }
        ));
        let Choice::Update(p) = choose(&c, None, 9, &s) else {
            panic!()
        };
        assert_eq!(p.full.name, "vigil-3.vdb");
    }
}
