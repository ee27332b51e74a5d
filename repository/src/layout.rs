//! Names and custom fields: the contract between publisher, server, updater and mirror.
//!
//! Target names: `vigil-<version>.vdb` for a full database and `vigil-<from>-<to>.vdelta` for a
//! delta. With TUF consistent snapshots each is stored as `targets/<sha256>.<name>`, so a name
//! never changes meaning and every blob can be cached forever.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

use crate::rollout::Release;

pub const METADATA_DIR: &str = "metadata";
pub const TARGETS_DIR: &str = "targets";
pub const TIMESTAMP: &str = "metadata/timestamp.json";

pub fn full_name(version: u64) -> String {
    format!("vigil-{version}.vdb")
}

pub fn delta_name(from: u64, to: u64) -> String {
    format!("vigil-{from}-{to}.vdelta")
}

/// Storage key of a target under consistent snapshots.
pub fn target_key(sha256_hex: &str, name: &str) -> String {
    format!("{TARGETS_DIR}/{sha256_hex}.{name}")
}

pub fn root_key(version: u64) -> String {
    format!("{METADATA_DIR}/{version}.root.json")
}

pub fn targets_key(version: u64) -> String {
    format!("{METADATA_DIR}/{version}.targets.json")
}

pub fn snapshot_key(version: u64) -> String {
    format!("{METADATA_DIR}/{version}.snapshot.json")
}

/// The `custom` object of a target in targets.json: what a client needs to choose a download
/// without fetching it, and what a release says about itself. Integers and strings only:
/// canonical JSON has no floats.
///
/// Fields are only ever added, optional and left out when empty: clients parse with serde's
/// default of ignoring fields they do not know, so an older client reads newer metadata (the
/// test below keeps the pre-`gate_override` shape to prove it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetInfo {
    Full {
        db_version: u64,
        min_engine_version: u32,
        /// Why this release was published although the release gate failed
        /// (`vigil-build publish --override-gate REASON`); absent when it passed or was not run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate_override: Option<String>,
        /// Channel, publish time, rollout plan and stage, revocation ([`crate::rollout`]).
        #[serde(flatten)]
        release: Release,
    },
    Delta {
        /// The version this delta produces.
        db_version: u64,
        min_engine_version: u32,
        /// The installed version it applies to, and that database's SHA-256.
        base_version: u64,
        base_sha256: String,
        /// SHA-256 of the database the delta must rebuild, byte for byte.
        result_sha256: String,
    },
}

impl TargetInfo {
    pub fn db_version(&self) -> u64 {
        match self {
            Self::Full { db_version, .. } | Self::Delta { db_version, .. } => *db_version,
        }
    }

    /// The reason recorded when this release bypassed the release gate.
    /// The release fields of a full database (`None` for a delta).
    pub fn release(&self) -> Option<&Release> {
        match self {
            Self::Full { release, .. } => Some(release),
            Self::Delta { .. } => None,
        }
    }

    pub fn gate_override(&self) -> Option<&str> {
        match self {
            Self::Full { gate_override, .. } => gate_override.as_deref(),
            Self::Delta { .. } => None,
        }
    }

    pub fn to_custom(&self) -> HashMap<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map.into_iter().collect(),
            _ => HashMap::new(),
        }
    }

    /// `None` for targets that are not ours (or are malformed): they are left alone.
    pub fn from_custom(custom: &HashMap<String, Value>) -> Option<Self> {
        let map: serde_json::Map<String, Value> =
            custom.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        serde_json::from_value(Value::Object(map)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_fields_round_trip() {
        let d = TargetInfo::Delta {
            db_version: 3,
            min_engine_version: 1,
            base_version: 2,
            base_sha256: "ab".into(),
            result_sha256: "cd".into(),
        };
        let c = d.to_custom();
        assert_eq!(c["kind"], "delta");
        assert_eq!(c["base_version"], 2);
        assert_eq!(TargetInfo::from_custom(&c), Some(d));
        assert_eq!(TargetInfo::from_custom(&HashMap::new()), None);
    }

    /// `TargetInfo` as released before `gate_override` existed: what older clients parse with.
    #[derive(Debug, PartialEq, Eq, Deserialize)]
    #[serde(tag = "kind", rename_all = "lowercase")]
    enum OldTargetInfo {
        Full {
            db_version: u64,
            min_engine_version: u32,
        },
    }

    #[test]
    fn gate_override_is_optional_both_ways() {
        let with = TargetInfo::Full {
            db_version: 4,
            min_engine_version: 1,
            gate_override: Some("known FP on a vendor tool, fixed in 5".into()),
            release: Release::default(),
        };
        let c = with.to_custom();
        assert_eq!(c["gate_override"], "known FP on a vendor tool, fixed in 5");
        assert_eq!(TargetInfo::from_custom(&c), Some(with.clone()));
        assert_eq!(
            with.gate_override(),
            Some("known FP on a vendor tool, fixed in 5")
        );
        // An older client still reads the release it is offered.
        let map: serde_json::Map<String, Value> = c.into_iter().collect();
        let old: OldTargetInfo = serde_json::from_value(Value::Object(map)).unwrap();
        assert_eq!(
            old,
            OldTargetInfo::Full {
                db_version: 4,
                min_engine_version: 1
            }
        );
        // Without an override the field is absent (metadata of a gated release is unchanged),
        // and metadata written before the field existed still parses.
        let without = TargetInfo::Full {
            db_version: 4,
            min_engine_version: 1,
            gate_override: None,
            release: Release::default(),
        };
        let c = without.to_custom();
        assert!(!c.contains_key("gate_override"));
        assert_eq!(c.len(), 3);
        assert_eq!(TargetInfo::from_custom(&c), Some(without));
    }
}
