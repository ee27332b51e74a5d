//! The catalog: every signature of a rule set or of a built database, with where it is defined
//! and an identity that changes exactly when the signature's meaning may have.
//!
//! The release gate needs both halves: a test failure or a false positive is reported at the
//! signature's file:line, and a release diff tells a changed signature from a moved one.
//!
//! **Identity** is the hex SHA-256 of the signature's canonical form, prefixed by its kind:
//! - body and hash signatures and allowlist entries: the record as the database holds it
//!   (vigil-format's canonical line), so reformatting a source line changes nothing;
//! - YARA rules: the rule's flags (`private`, `global`), the sorted imports of its file, and its
//!   source text from the identifier to the end of the condition (tags, meta, strings and
//!   condition). A comment inside a rule therefore counts as a change; one outside does not.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;
use vigil_format::container::Parsed;
use vigil_format::sections::{decode_lines, SourceFiles};
use vigil_format::sigs::{parse_hash_line, parse_ndb_line, HashFile};
use vigil_format::{FormatError, SectionKind, Verified};
use yara_x_parser::ast::{WithSpan, AST};

use crate::diag::line_col;
use crate::sources::{HashFileKind, RuleFile, RuleKind};

/// What kind of signature an entry is, as rule authors name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureKind {
    Yara,
    Body,
    Hash,
    /// An allowlist entry (`.fp`, `.sfp`): it clears a file that something else detected.
    Allow,
}

impl SignatureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureKind::Yara => "yara",
            SignatureKind::Body => "body",
            SignatureKind::Hash => "hash",
            SignatureKind::Allow => "allow",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Signature {
    pub name: String,
    pub kind: SignatureKind,
    /// Where it is defined: the rule file as the user named it (from sources), or the source
    /// path inside the database / the section name (from a database).
    pub file: String,
    /// 1-based line of the signature's name (YARA) or record.
    pub line: usize,
    /// Hex SHA-256 of the canonical form (see the module documentation).
    pub identity: String,
}

/// Every signature, in file order and then line order.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Catalog {
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{section} section, record {line}: {message}")]
    Record {
        section: &'static str,
        line: usize,
        message: String,
    },
    #[error("{file}: YARA source does not parse: {message}")]
    Yara { file: String, message: String },
}

impl Catalog {
    /// The catalog of rule sources. Records that do not parse are left out: lint reports
    /// them, and nothing is built from sources with lint errors.
    pub fn from_files(files: &[RuleFile]) -> Self {
        let mut signatures = Vec::new();
        for f in files {
            let Ok(text) = &f.text else { continue };
            match f.kind {
                RuleKind::Yara => {
                    // Parse errors are lint's to report; whatever rules parsed are listed.
                    let _ = yara_rules(&f.display_path, text, &mut signatures);
                }
                RuleKind::Ndb | RuleKind::Hash(_) => {
                    for (i, raw) in text.lines().enumerate() {
                        if raw.trim().is_empty() || raw.starts_with('#') {
                            continue;
                        }
                        if let Ok(sig) = record(f.kind, raw, &f.display_path, i + 1) {
                            signatures.push(sig);
                        }
                    }
                }
            }
        }
        Self { signatures }
    }

    /// The catalog of a verified database: its embedded YARA sources and its records.
    pub fn from_database(v: &Verified<'_>) -> Result<Self, CatalogError> {
        Self::from_sections(|kind| v.section(kind))
    }

    /// The catalog of a database whose signature was not checked: for reports that read a
    /// database without its key (`vigil-build diff` and `info`), never for scanning. The
    /// caller checks the section hashes first (`Parsed::check_hashes`) so a damaged file is
    /// named as such rather than as a bad record.
    pub fn from_parsed(p: &Parsed<'_>) -> Result<Self, CatalogError> {
        Self::from_sections(|kind| match p.entries.iter().position(|e| e.kind == kind) {
            Some(i) => p.section_bytes(i).map(Some),
            None => Ok(None),
        })
    }

    fn from_sections<'a>(
        read: impl Fn(SectionKind) -> Result<Option<Cow<'a, [u8]>>, FormatError>,
    ) -> Result<Self, CatalogError> {
        let mut signatures = Vec::new();
        if let Some(raw) = read(SectionKind::Yara)? {
            for f in SourceFiles::decode(&raw)? {
                yara_rules(&f.path, &f.text, &mut signatures)?;
            }
        }
        for (section, kind) in [
            (SectionKind::Ndb, RuleKind::Ndb),
            (SectionKind::Hdb, RuleKind::Hash(HashFileKind::Hdb)),
            (SectionKind::Hsb, RuleKind::Hash(HashFileKind::Hsb)),
            (SectionKind::Fp, RuleKind::Hash(HashFileKind::Fp)),
            (SectionKind::Sfp, RuleKind::Hash(HashFileKind::Sfp)),
        ] {
            let Some(raw) = read(section)? else {
                continue;
            };
            for (i, line) in decode_lines(&raw)?.into_iter().enumerate() {
                let sig = record(kind, line, section.name(), i + 1).map_err(|message| {
                    CatalogError::Record {
                        section: section.name(),
                        line: i + 1,
                        message,
                    }
                })?;
                signatures.push(sig);
            }
        }
        Ok(Self { signatures })
    }

    /// The first signature called `name` (only allowlist entries may share a name).
    pub fn get(&self, name: &str) -> Option<&Signature> {
        self.signatures.iter().find(|s| s.name == name)
    }

    pub fn len(&self) -> usize {
        self.signatures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.signatures.is_empty()
    }
}

fn identity(kind: SignatureKind, canonical: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_str().as_bytes());
    for part in canonical {
        h.update([0u8]);
        h.update(part);
    }
    hex::encode(h.finalize())
}

fn record(kind: RuleKind, raw: &str, file: &str, line: usize) -> Result<Signature, String> {
    let (name, canonical, kind) = match kind {
        RuleKind::Ndb => {
            let s = parse_ndb_line(raw).map_err(|e| e.message)?;
            (s.name.clone(), s.to_string(), SignatureKind::Body)
        }
        RuleKind::Hash(h) => {
            let s = parse_hash_line(raw, h.file()).map_err(|e| e.message)?;
            let kind = match h.file() {
                HashFile::Fp | HashFile::Sfp => SignatureKind::Allow,
                HashFile::Hdb | HashFile::Hsb => SignatureKind::Hash,
            };
            (s.name.clone(), s.to_string(), kind)
        }
        RuleKind::Yara => return Err("not a record".into()),
    };
    Ok(Signature {
        identity: identity(kind, &[canonical.as_bytes()]),
        name,
        kind,
        file: file.to_string(),
        line,
    })
}

fn yara_rules(file: &str, text: &str, out: &mut Vec<Signature>) -> Result<(), CatalogError> {
    let ast = AST::from(text);
    if let Some(e) = ast.errors().first() {
        return Err(CatalogError::Yara {
            file: file.to_string(),
            message: format!("{e:?}"),
        });
    }
    let imports: BTreeSet<&str> = ast.imports().map(|i| i.module_name).collect();
    let imports = imports.into_iter().collect::<Vec<_>>().join(",");
    for rule in ast.rules() {
        let start = rule.identifier.span().start();
        let end = rule.condition.span().end();
        let body = text.get(start..end).unwrap_or_default();
        let flags = [rule.flags.bits()];
        out.push(Signature {
            name: rule.identifier.name.to_string(),
            kind: SignatureKind::Yara,
            file: file.to_string(),
            line: line_col(text, start).0,
            identity: identity(
                SignatureKind::Yara,
                &[&flags, imports.as_bytes(), body.as_bytes()],
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rel: &str, text: &str) -> RuleFile {
        RuleFile {
            rel_path: rel.into(),
            display_path: format!("rules/{rel}"),
            kind: RuleKind::from_path(std::path::Path::new(rel)).expect("kind"),
            text: Ok(text.into()),
        }
    }

    #[test]
    fn unverified_database_gives_the_same_catalog() {
        let yar = "rule A { meta: severity = \"low\" description = \"d\" author = \"a\" reference = \"r\" date = \"2026-01-01\" strings: $a = \"xyz\" condition: $a }\n";
        let files = [
            file("y.yar", yar),
            file("b.ndb", "Sig.One-1:0:*:41424344\n"),
            file(
                "a.sfp",
                "471a1dc7ee714bd5e815d3965f4510c629ff3289eaccbf8e90d9effbdf9ab304:192:Allow.Y\n",
            ),
        ];
        let key = vigil_format::SecretKey::from_seed([5; 32]);
        let db = crate::build(&files, &key, &crate::BuildOptions::new(1))
            .expect("build")
            .bytes;
        let verified = vigil_format::container::verify(&db, &[key.public()]).expect("verify");
        let parsed = Parsed::parse(&db).expect("parse");
        let a = Catalog::from_database(&verified).expect("verified catalog");
        let b = Catalog::from_parsed(&parsed).expect("parsed catalog");
        assert_eq!(a.signatures, b.signatures);
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn positions_and_identities() {
        let yar = "import \"pe\"\n// a comment\nrule A : t { strings: $a = \"x\" condition: $a }\n\nprivate rule B { condition: true }\n";
        let c = Catalog::from_files(&[
            file("y.yar", yar),
            file("b.ndb", "# note\nSig.One-1:0:*:41424344\n"),
            file("a.fp", "44d88612fea8a8f36de82e1278abb02f:68:Allow.X\n"),
        ]);
        let names: Vec<_> = c
            .signatures
            .iter()
            .map(|s| (s.name.as_str(), s.kind, s.line))
            .collect();
        assert_eq!(
            names,
            [
                ("A", SignatureKind::Yara, 3),
                ("B", SignatureKind::Yara, 5),
                ("Sig.One-1", SignatureKind::Body, 2),
                ("Allow.X", SignatureKind::Allow, 1),
            ]
        );
        assert_eq!(c.get("A").expect("A").file, "rules/y.yar");

        // A comment outside a rule does not change it; one inside does; so does an import.
        let moved = Catalog::from_files(&[file("y.yar", &yar.replace("// a comment\n", ""))]);
        assert_eq!(
            moved.get("A").unwrap().identity,
            c.get("A").unwrap().identity
        );
        let edited = Catalog::from_files(&[file("y.yar", &yar.replace("\"x\"", "\"y\""))]);
        assert_ne!(
            edited.get("A").unwrap().identity,
            c.get("A").unwrap().identity
        );
        let imports = Catalog::from_files(&[file("y.yar", &yar.replace("\"pe\"", "\"elf\""))]);
        assert_ne!(
            imports.get("B").unwrap().identity,
            c.get("B").unwrap().identity
        );
        // Records are compared in canonical form: case of the hex does not matter.
        let upper = Catalog::from_files(&[file("b.ndb", "Sig.One-1:0:*:4142434A\n")]);
        let lower = Catalog::from_files(&[file("b.ndb", "Sig.One-1:0:*:4142434a\n")]);
        assert_eq!(
            upper.get("Sig.One-1").unwrap().identity,
            lower.get("Sig.One-1").unwrap().identity
        );
    }
}
