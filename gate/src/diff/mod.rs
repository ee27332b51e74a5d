//! The release diff: what a candidate database changes against the one before it.
//!
//! Signatures are matched by kind and name and compared by identity (the catalog's hash of
//! the canonical form): same name, other identity is a *changed* signature; a name only on one
//! side is *added* or *removed*; a signature that only moved (another file or line, same
//! canonical form) is unchanged. Allowlist entries may share a name, so each (kind, name) is
//! compared as a multiset of identities: what both sides hold is unchanged, one leftover on
//! each side is a change, anything else is added and removed. A rename is an added and a
//! removed signature: identities include the name, since a detection's name is what users see.
//!
//! Besides signatures: versions, the minimum engine version (a rise strands older clients on
//! the previous release), the section table's sizes, and where a side came from (a
//! repository's target and its gate override). Rendering is in [`render`]; everything is
//! sorted so the same databases always give the same bytes.

pub mod render;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;
use vigil_compiler::{Catalog, CatalogError, Signature, SignatureKind};
use vigil_format::container::{verify, Parsed};
use vigil_format::{FormatError, PublicKey, SectionKind};

pub use render::{render, DiffFormat};

/// The kinds, in the order reports list them.
pub const KINDS: [SignatureKind; 4] = [
    SignatureKind::Yara,
    SignatureKind::Body,
    SignatureKind::Hash,
    SignatureKind::Allow,
];

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DiffError {
    #[error("{label}: {source}")]
    Format {
        label: String,
        #[source]
        source: FormatError,
    },
    #[error("{label}: {source}")]
    Catalog {
        label: String,
        #[source]
        source: CatalogError,
    },
}

/// Where a side was read from when it is the live release of a repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The repository as the user named it (directory, `s3://…` or URL).
    pub repository: String,
    /// Target name, e.g. `vigil-7.vdb`.
    pub target: String,
    /// Why that release was published past a failing gate, if it was.
    pub gate_override: Option<String>,
}

/// One section's size in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SectionSize {
    pub records: u32,
    pub stored_bytes: u64,
    pub raw_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NamedSection {
    pub section: String,
    #[serde(flatten)]
    pub size: SectionSize,
}

/// What a report says about one database.
#[derive(Clone, Debug, Serialize)]
pub struct DatabaseSummary {
    /// The file as the user named it, or the repository target.
    pub label: String,
    pub db_version: u64,
    pub min_engine_version: u32,
    pub format_version: u16,
    pub build_time: u64,
    pub size: u64,
    pub sha256: String,
    pub key_id: String,
    /// Whether the signature was checked against a trusted key (`--pubkey`); section hashes
    /// are checked either way.
    pub signature_checked: bool,
    pub signatures: usize,
    /// Per section, in table order.
    pub sections: Vec<NamedSection>,
    pub origin: Option<Origin>,
}

/// A database read for a diff: its summary and its catalog.
#[derive(Clone, Debug)]
pub struct Side {
    pub summary: DatabaseSummary,
    pub catalog: Catalog,
    sections: BTreeMap<SectionKind, SectionSize>,
}

impl Side {
    /// Reads a database. With `keys`, its signature must verify against one of them; without,
    /// only its structure and section hashes are checked (as `vigil-build info` does), and the
    /// summary says so. A database that needs a newer engine than this build is still read:
    /// that is a change a diff must be able to show.
    pub fn read(
        label: impl Into<String>,
        bytes: &[u8],
        keys: &[PublicKey],
        origin: Option<Origin>,
    ) -> Result<Self, DiffError> {
        let label = label.into();
        let format = |source| DiffError::Format {
            label: label.clone(),
            source,
        };
        let parsed = Parsed::parse(bytes).map_err(format)?;
        parsed.check_hashes().map_err(format)?;
        let signature_checked = !keys.is_empty();
        if signature_checked {
            match verify(bytes, keys) {
                // `verify` checks the engine version last, once the signature has verified.
                Ok(_) | Err(FormatError::EngineTooOld { .. }) => {}
                Err(e) => return Err(format(e)),
            }
        }
        let catalog = Catalog::from_parsed(&parsed).map_err(|source| DiffError::Catalog {
            label: label.clone(),
            source,
        })?;
        let sections: BTreeMap<SectionKind, SectionSize> = parsed
            .entries
            .iter()
            .map(|e| {
                (
                    e.kind,
                    SectionSize {
                        records: e.record_count,
                        stored_bytes: e.stored_len,
                        raw_bytes: e.raw_len,
                    },
                )
            })
            .collect();
        let h = &parsed.header;
        let summary = DatabaseSummary {
            label,
            db_version: h.db_version,
            min_engine_version: h.min_engine_version,
            format_version: h.format_version,
            build_time: h.build_time,
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
            key_id: hex::encode(h.key_id),
            signature_checked,
            signatures: catalog.len(),
            sections: sections
                .iter()
                .map(|(k, s)| NamedSection {
                    section: k.name().to_string(),
                    size: *s,
                })
                .collect(),
            origin,
        };
        Ok(Self {
            summary,
            catalog,
            sections,
        })
    }
}

/// A signature as a diff lists it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SigRef {
    pub kind: SignatureKind,
    pub name: String,
    pub file: String,
    pub line: usize,
    pub identity: String,
}

impl From<&Signature> for SigRef {
    fn from(s: &Signature) -> Self {
        Self {
            kind: s.kind,
            name: s.name.clone(),
            file: s.file.clone(),
            line: s.line,
            identity: s.identity.clone(),
        }
    }
}

/// Where a changed signature is and what it is, on one side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Version {
    pub file: String,
    pub line: usize,
    pub identity: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Changed {
    pub kind: SignatureKind,
    pub name: String,
    pub old: Version,
    pub new: Version,
}

/// Signature counts, of one kind or of all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub old: usize,
    pub new: usize,
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub unchanged: usize,
}

impl Counts {
    fn add(self, o: Counts) -> Counts {
        Counts {
            old: self.old + o.old,
            new: self.new + o.new,
            added: self.added + o.added,
            removed: self.removed + o.removed,
            changed: self.changed + o.changed,
            unchanged: self.unchanged + o.unchanged,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    pub kind: SignatureKind,
    #[serde(flatten)]
    pub counts: Counts,
}

/// One section's sizes on both sides (`None` where a side has no such section).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SectionChange {
    pub section: String,
    pub old: Option<SectionSize>,
    pub new: Option<SectionSize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Pair<T> {
    pub old: Option<T>,
    pub new: T,
}

impl<T: PartialEq + Copy> Pair<T> {
    pub fn changed(&self) -> bool {
        self.old.is_some_and(|o| o != self.new)
    }
}

/// Everything a release changes. `old` is `None` when there is nothing before it (an empty
/// repository): then every signature is added.
#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    /// Names this document's layout for tools that read the JSON.
    pub schema: &'static str,
    pub old: Option<DatabaseSummary>,
    pub new: DatabaseSummary,
    pub db_version: Pair<u64>,
    pub min_engine_version: Pair<u32>,
    pub size: Pair<u64>,
    /// Every kind, in [`KINDS`] order, even those with no signatures.
    pub counts: Vec<KindCounts>,
    pub total: Counts,
    pub sections: Vec<SectionChange>,
    pub added: Vec<SigRef>,
    pub removed: Vec<SigRef>,
    pub changed: Vec<Changed>,
}

pub const SCHEMA: &str = "vigil-diff/1";

impl Diff {
    /// True when the new database changes no signature (sizes may still differ).
    pub fn same_signatures(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// The new version does not grow: `publish` would refuse it.
    pub fn version_not_newer(&self) -> bool {
        self.db_version
            .old
            .is_some_and(|o| self.db_version.new <= o)
    }
}

/// Compares `new` with `old` (or with nothing).
pub fn diff(old: Option<&Side>, new: &Side) -> Diff {
    type Group<'a> = (Vec<&'a Signature>, Vec<&'a Signature>);
    let mut groups: BTreeMap<(SignatureKind, &str), Group<'_>> = BTreeMap::new();
    for s in old.iter().flat_map(|o| o.catalog.signatures.iter()) {
        groups.entry((s.kind, &s.name)).or_default().0.push(s);
    }
    for s in &new.catalog.signatures {
        groups.entry((s.kind, &s.name)).or_default().1.push(s);
    }
    let mut counts: BTreeMap<SignatureKind, Counts> =
        KINDS.iter().map(|&k| (k, Counts::default())).collect();
    let (mut added, mut removed, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    for ((kind, name), (mut olds, mut news)) in groups {
        let c = counts.entry(kind).or_default();
        c.old += olds.len();
        c.new += news.len();
        // Pair equal identities first (a merge of the sorted lists): they are unchanged,
        // wherever they moved.
        olds.sort_by(|a, b| a.identity.cmp(&b.identity));
        news.sort_by(|a, b| a.identity.cmp(&b.identity));
        let (mut left_old, mut left_new) = (Vec::new(), Vec::new());
        let (mut i, mut j) = (0, 0);
        while let (Some(&o), Some(&n)) = (olds.get(i), news.get(j)) {
            match o.identity.cmp(&n.identity) {
                Ordering::Less => {
                    left_old.push(o);
                    i += 1;
                }
                Ordering::Greater => {
                    left_new.push(n);
                    j += 1;
                }
                Ordering::Equal => {
                    c.unchanged += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        left_old.extend(olds.get(i..).unwrap_or_default());
        left_new.extend(news.get(j..).unwrap_or_default());
        if let ([o], [n]) = (left_old.as_slice(), left_new.as_slice()) {
            c.changed += 1;
            changed.push(Changed {
                kind,
                name: name.to_string(),
                old: Version {
                    file: o.file.clone(),
                    line: o.line,
                    identity: o.identity.clone(),
                },
                new: Version {
                    file: n.file.clone(),
                    line: n.line,
                    identity: n.identity.clone(),
                },
            });
        } else {
            c.removed += left_old.len();
            c.added += left_new.len();
            removed.extend(left_old.into_iter().map(SigRef::from));
            added.extend(left_new.into_iter().map(SigRef::from));
        }
    }
    added.sort();
    removed.sort();
    changed.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));

    let total = counts.values().fold(Counts::default(), |t, c| t.add(*c));
    let counts = counts
        .into_iter()
        .map(|(kind, counts)| KindCounts { kind, counts })
        .collect();

    let sections = SectionKind::ALL
        .iter()
        .filter_map(|k| {
            let o = old.and_then(|s| s.sections.get(k)).copied();
            let n = new.sections.get(k).copied();
            (o.is_some() || n.is_some()).then(|| SectionChange {
                section: k.name().to_string(),
                old: o,
                new: n,
            })
        })
        .collect();

    let os = old.map(|o| &o.summary);
    Diff {
        schema: SCHEMA,
        old: os.cloned(),
        new: new.summary.clone(),
        db_version: Pair {
            old: os.map(|s| s.db_version),
            new: new.summary.db_version,
        },
        min_engine_version: Pair {
            old: os.map(|s| s.min_engine_version),
            new: new.summary.min_engine_version,
        },
        size: Pair {
            old: os.map(|s| s.size),
            new: new.summary.size,
        },
        counts,
        total,
        sections,
        added,
        removed,
        changed,
    }
}

#[cfg(test)]
mod tests;
