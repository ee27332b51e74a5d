//! Severity labels, as Security Hub and GuardDuty name them.
//!
//! A YARA rule says its own (`meta: severity = "high"`). ClamAV-format signatures carry none, so
//! a [`SeverityMap`] gives one by name prefix (the longest matching prefix wins), with a
//! documented default: MEDIUM, and LOW for `PUA.` (potentially unwanted applications) and
//! `Heuristics.` (ClamAV's heuristic names), which a demanding operator does not want paged on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Self; 5] = [
        Self::Informational,
        Self::Low,
        Self::Medium,
        Self::High,
        Self::Critical,
    ];

    /// ASFF's `Severity.Label`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Informational => "INFORMATIONAL",
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        }
    }

    /// ASFF's `Severity.Normalized` (0-100) for the label: the lower bound of its band
    /// (INFORMATIONAL 0, LOW 1-39, MEDIUM 40-69, HIGH 70-89, CRITICAL 90-100).
    pub fn normalized(self) -> u8 {
        match self {
            Self::Informational => 0,
            Self::Low => 1,
            Self::Medium => 40,
            Self::High => 70,
            Self::Critical => 90,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("severity {0:?}: expected informational, low, medium, high or critical")]
pub struct BadSeverity(pub String);

impl FromStr for Severity {
    type Err = BadSeverity;

    /// Case-insensitive; also `info`, `moderate` and `severe`, which rule sets in the wild use.
    fn from_str(s: &str) -> Result<Self, BadSeverity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "informational" | "info" | "none" => Ok(Self::Informational),
            "low" => Ok(Self::Low),
            "medium" | "moderate" => Ok(Self::Medium),
            "high" | "severe" => Ok(Self::High),
            "critical" => Ok(Self::Critical),
            _ => Err(BadSeverity(s.to_owned())),
        }
    }
}

/// Severity of signatures that do not state one, by name prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeverityMap {
    pub default: Severity,
    /// (prefix, severity); the longest matching prefix wins.
    pub prefixes: Vec<(String, Severity)>,
}

impl Default for SeverityMap {
    fn default() -> Self {
        Self {
            default: Severity::Medium,
            prefixes: vec![
                ("PUA.".to_owned(), Severity::Low),
                ("Heuristics.".to_owned(), Severity::Low),
            ],
        }
    }
}

impl SeverityMap {
    pub fn of(&self, signature: &str) -> Severity {
        self.prefixes
            .iter()
            .filter(|(p, _)| signature.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map_or(self.default, |(_, s)| *s)
    }

    /// A finding's severity: the rule's own when it states a valid one, else by name.
    pub fn resolve(&self, signature: &str, stated: Option<&str>) -> Severity {
        stated
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| self.of(signature))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn labels_parse_and_order() {
        assert_eq!("High".parse::<Severity>().unwrap(), Severity::High);
        assert_eq!("info".parse::<Severity>().unwrap(), Severity::Informational);
        assert!("urgent".parse::<Severity>().is_err());
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Informational);
        assert_eq!(
            serde_json::to_string(&Severity::Informational).unwrap(),
            "\"INFORMATIONAL\""
        );
        for s in Severity::ALL {
            assert_eq!(s.label().parse::<Severity>().unwrap(), s);
        }
    }

    #[test]
    fn the_longest_prefix_wins_and_a_stated_severity_comes_first() {
        let mut m = SeverityMap::default();
        assert_eq!(m.of("Unix.Trojan.Mirai-1"), Severity::Medium);
        assert_eq!(m.of("PUA.Win.Tool.Nmap"), Severity::Low);
        m.prefixes
            .push(("PUA.Win.Tool.Mimikatz".into(), Severity::High));
        assert_eq!(m.of("PUA.Win.Tool.Mimikatz-1"), Severity::High);
        assert_eq!(m.resolve("PUA.X", Some("critical")), Severity::Critical);
        assert_eq!(m.resolve("PUA.X", Some("bogus")), Severity::Low);
    }
}
