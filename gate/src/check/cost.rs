//! The cost profile: per-thread yara-x rule profiles and body-matcher counts merged, then
//! normalised by the corpus size and held against the budget.

use std::collections::HashMap;
use std::time::Duration;

use vigil_compiler::Catalog;
use vigil_scan_core::body::BodyCost;
use vigil_scan_core::RuleCost;

use super::{locate, BodyCostRow, CostProfile, SlowRule, YaraCost, YARA_ITEMISE_MS};

/// Sums of every finished scan thread.
#[derive(Default)]
pub(crate) struct ProfileAcc {
    /// Rule -> (condition, pattern matching).
    yara: HashMap<String, (Duration, Duration)>,
    /// Signature -> (candidates, confirmations).
    body: HashMap<String, (u64, u64)>,
    /// Scan threads that ran (each had its own yara-x scanner, with its own 100 ms floor).
    workers: usize,
}

impl ProfileAcc {
    pub fn add(&mut self, yara: Vec<RuleCost>, body: Vec<BodyCost>) {
        self.workers += 1;
        for r in yara {
            let e = self.yara.entry(r.rule).or_default();
            e.0 += r.condition;
            e.1 += r.patterns;
        }
        for b in body {
            let e = self.body.entry(b.signature).or_default();
            e.0 += b.candidates;
            e.1 += b.confirmations;
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn profile(
    acc: ProfileAcc,
    bytes: u64,
    budget: f64,
    top: usize,
    catalog: &Catalog,
    slow: Vec<SlowRule>,
) -> CostProfile {
    let gb = (bytes as f64 / 1e9).max(f64::MIN_POSITIVE);
    let mb = (bytes as f64 / 1e6).max(f64::MIN_POSITIVE);
    let mut yara: Vec<YaraCost> = acc
        .yara
        .into_iter()
        .map(|(rule, (condition, patterns))| {
            let (_, file, line) = locate(catalog, &rule);
            let ms_per_gb = (ms(condition) + ms(patterns)) / gb;
            YaraCost {
                over_budget: ms_per_gb > budget,
                rule,
                file,
                line,
                condition_ms: ms(condition),
                patterns_ms: ms(patterns),
                ms_per_gb,
            }
        })
        .collect();
    yara.sort_by(|a, b| {
        b.ms_per_gb
            .total_cmp(&a.ms_per_gb)
            .then(a.rule.cmp(&b.rule))
    });
    let yara_itemised = yara.len();
    let over_budget: Vec<YaraCost> = yara.iter().filter(|y| y.over_budget).cloned().collect();
    yara.truncate(top);
    let mut body: Vec<BodyCostRow> = acc
        .body
        .into_iter()
        .map(|(signature, (candidates, confirmations))| {
            let (_, file, line) = locate(catalog, &signature);
            BodyCostRow {
                file,
                line,
                candidates,
                confirmations,
                candidates_per_mb: candidates as f64 / mb,
                confirmations_per_mb: confirmations as f64 / mb,
                signature,
            }
        })
        .collect();
    body.sort_by(|a, b| {
        b.candidates
            .cmp(&a.candidates)
            .then(a.signature.cmp(&b.signature))
    });
    body.truncate(top);
    CostProfile {
        max_rule_ms_per_gb: budget,
        itemised_above_ms_per_gb: YARA_ITEMISE_MS * acc.workers.max(1) as f64 / gb,
        yara_top: yara,
        yara_itemised,
        over_budget,
        body_top: body,
        slow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(rule: &str, condition_ms: u64, patterns_ms: u64) -> RuleCost {
        RuleCost {
            rule: rule.into(),
            condition: Duration::from_millis(condition_ms),
            patterns: Duration::from_millis(patterns_ms),
        }
    }

    #[test]
    fn threads_are_merged_normalised_and_held_against_the_budget() {
        let mut acc = ProfileAcc::default();
        acc.add(vec![cost("Hot", 300, 100), cost("Warm", 150, 0)], vec![]);
        acc.add(
            vec![cost("Hot", 200, 0)],
            vec![BodyCost {
                signature: "Body.Sig-1".into(),
                candidates: 500,
                confirmations: 5,
            }],
        );
        // 0.5 GB: Hot 600 ms -> 1200 ms/GB, Warm 150 ms -> 300 ms/GB.
        let p = profile(acc, 500_000_000, 1000.0, 1, &Catalog::default(), Vec::new());
        assert_eq!(p.yara_itemised, 2);
        assert_eq!(p.yara_top.len(), 1, "top 1");
        assert_eq!(p.yara_top[0].rule, "Hot");
        assert!((p.yara_top[0].ms_per_gb - 1200.0).abs() < 1e-6);
        assert_eq!(p.over_budget.len(), 1);
        assert_eq!(p.over_budget[0].rule, "Hot");
        // Two threads, each with its own 100 ms floor, over half a GB.
        assert!((p.itemised_above_ms_per_gb - 400.0).abs() < 1e-6);
        assert_eq!(p.body_top[0].candidates, 500);
        assert!((p.body_top[0].candidates_per_mb - 1.0).abs() < 1e-9);
        assert!((p.body_top[0].confirmations_per_mb - 0.01).abs() < 1e-9);
    }
}
