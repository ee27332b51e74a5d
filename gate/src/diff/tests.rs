use vigil_format::container::DatabaseBuilder;
use vigil_format::sections::{SourceFile, SourceFiles};
use vigil_format::SecretKey;

use super::render::{markdown, LONG_LIST};
use super::*;

fn key() -> SecretKey {
    SecretKey::from_seed([12; 32])
}

/// A database of YARA sources (path, text) and section lines.
fn db(version: u64, engine: u32, yara: &[(&str, &str)], lines: &[(SectionKind, &str)]) -> Vec<u8> {
    let mut b = DatabaseBuilder::new(version, 0);
    b.min_engine_version = engine;
    let files: Vec<SourceFile> = yara
        .iter()
        .map(|(p, t)| SourceFile {
            path: p.to_string(),
            text: t.to_string(),
        })
        .collect();
    b.section(
        SectionKind::Yara,
        files.len() as u32,
        SourceFiles::encode(&files),
    );
    for kind in SectionKind::ALL
        .into_iter()
        .filter(|k| *k != SectionKind::Yara)
    {
        let text: String = lines
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        let n = text.lines().count() as u32;
        b.section(kind, n, text.into_bytes());
    }
    b.build(&key()).expect("build")
}

fn side(label: &str, bytes: &[u8]) -> Side {
    Side::read(label, bytes, &[], None).expect("read")
}

const FP_A: &str = "44d88612fea8a8f36de82e1278abb02f:68:Allow.Same";
const FP_B: &str = "4308bb9063cf050fa090405a8eec3c39:192:Allow.Same";
const FP_C: &str = "4308bb9063cf050fa090405a8eec3c39:193:Allow.Same";

#[test]
fn added_removed_changed_and_moved() {
    let old = db(
        1,
        1,
        &[(
            "a.yar",
            "rule Keep { condition: true }\nrule Edit { strings: $a = \"x\" condition: $a }\nrule Gone { condition: false }\n",
        )],
        &[
            (SectionKind::Ndb, "Body.Keep:0:*:41424344"),
            (SectionKind::Ndb, "Body.Edit:0:*:41424344"),
            (SectionKind::Fp, FP_A),
            (SectionKind::Fp, FP_B),
        ],
    );
    let new = db(
        2,
        1,
        &[
            // Keep moved to another file and line: unchanged.
            ("b.yar", "\n\nrule Keep { condition: true }\n"),
            (
                "a.yar",
                "rule Edit { strings: $a = \"y\" condition: $a }\nrule New { condition: true }\n",
            ),
        ],
        &[
            (SectionKind::Ndb, "Body.Keep:0:*:41424344"),
            (SectionKind::Ndb, "Body.Edit:0:*:41424345"),
            (
                SectionKind::Hdb,
                "44d88612fea8a8f36de82e1278abb02f:68:Hash.New",
            ),
            // Two allowlist entries named alike: A stays, B becomes C (one-for-one: changed).
            (SectionKind::Fp, FP_A),
            (SectionKind::Fp, FP_C),
        ],
    );
    let d = diff(Some(&side("old.vdb", &old)), &side("new.vdb", &new));
    let names = |v: &[SigRef]| -> Vec<(SignatureKind, String)> {
        v.iter().map(|s| (s.kind, s.name.clone())).collect()
    };
    assert_eq!(
        names(&d.added),
        [
            (SignatureKind::Yara, "New".to_string()),
            (SignatureKind::Hash, "Hash.New".to_string())
        ]
    );
    assert_eq!(
        names(&d.removed),
        [(SignatureKind::Yara, "Gone".to_string())]
    );
    let changed: Vec<_> = d
        .changed
        .iter()
        .map(|c| (c.kind, c.name.as_str()))
        .collect();
    assert_eq!(
        changed,
        [
            (SignatureKind::Yara, "Edit"),
            (SignatureKind::Body, "Body.Edit"),
            (SignatureKind::Allow, "Allow.Same"),
        ]
    );
    assert_eq!(
        d.total,
        Counts {
            old: 7,
            new: 8,
            added: 2,
            removed: 1,
            changed: 3,
            unchanged: 3
        }
    );
    assert_eq!(d.counts.len(), 4);
    // A section only the new database has.
    let hdb = d.sections.iter().find(|s| s.section == "hdb").expect("hdb");
    assert!(hdb.old.is_none() && hdb.new.is_some_and(|s| s.records == 1));
    assert!(!d.version_not_newer());
    assert!(!d.min_engine_version.changed());
}

#[test]
fn several_leftovers_with_one_name_are_added_and_removed() {
    let old = db(1, 1, &[], &[(SectionKind::Fp, FP_A)]);
    let new = db(
        2,
        1,
        &[],
        &[(SectionKind::Fp, FP_B), (SectionKind::Fp, FP_C)],
    );
    let d = diff(Some(&side("o", &old)), &side("n", &new));
    assert_eq!((d.added.len(), d.removed.len(), d.changed.len()), (2, 1, 0));
}

#[test]
fn nothing_before_means_everything_is_added() {
    let new = db(1, 1, &[("a.yar", "rule R { condition: true }\n")], &[]);
    let d = diff(None, &side("n", &new));
    assert_eq!(d.added.len(), 1);
    assert!(d.old.is_none() && d.db_version.old.is_none());
    let md = markdown(&d);
    assert!(md.contains("version 1 (first release)"), "{md}");
    assert!(render(&d, DiffFormat::Human).contains("no database yet"));
}

#[test]
fn keys_are_checked_when_given_and_a_newer_engine_is_still_read() {
    let new = db(
        2,
        ENGINE_PLUS_ONE,
        &[],
        &[(SectionKind::Ndb, "B:0:*:41424344")],
    );
    let s =
        Side::read("n", &new, &[key().public()], None).expect("a newer engine is a change to show");
    assert!(s.summary.signature_checked);
    let other = SecretKey::from_seed([13; 32]).public();
    assert!(Side::read("n", &new, &[other], None).is_err());
    let mut bad = new.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    // The signature is only checked with a key; the section hashes always.
    assert!(Side::read("n", &bad, &[key().public()], None).is_err());
    assert!(Side::read("n", &bad, &[], None).is_ok());
    let mut damaged = new.clone();
    damaged[vigil_format::container::HEADER_LEN + 64] ^= 1;
    assert!(Side::read("n", &damaged, &[], None).is_err());

    let old = db(1, 1, &[], &[(SectionKind::Ndb, "B:0:*:41424344")]);
    let d = diff(Some(&side("o", &old)), &s);
    assert!(d.min_engine_version.changed());
    assert!(markdown(&d).contains("[!IMPORTANT]"));
    assert!(render(&d, DiffFormat::Human).contains("raised"));
}

const ENGINE_PLUS_ONE: u32 = vigil_format::ENGINE_VERSION + 1;

#[test]
fn long_lists_fold_and_hostile_text_stays_inert() {
    let lines: Vec<String> = (0..=LONG_LIST)
        .map(|i| format!("Sig.{i}|`x`<b>:0:*:4142434{}", i % 10))
        .collect();
    let refs: Vec<(SectionKind, &str)> = lines
        .iter()
        .map(|l| (SectionKind::Ndb, l.as_str()))
        .collect();
    let new = db(1, 1, &[], &refs);
    let origin = Origin {
        repository: "repo".into(),
        target: "vigil-1.vdb".into(),
        gate_override: Some("ok <script>|\n# heading".into()),
    };
    let old = Side::read("vigil-1.vdb", &db(1, 1, &[], &[]), &[], Some(origin)).expect("old");
    let d = diff(Some(&old), &Side::read("n", &new, &[], None).expect("new"));
    let md = markdown(&d);
    assert!(
        md.contains(&format!(
            "<details><summary><b>Added ({})</b>",
            LONG_LIST + 1
        )),
        "{md}"
    );
    assert!(!md.contains("<script>") && !md.contains("<b>:0"), "{md}");
    assert!(md.contains("ok &lt;script&gt;\\| \\# heading"), "{md}");
    // Names with a backtick get a longer fence; pipes are escaped for the table.
    assert!(md.contains("``"), "{md}");
    assert!(!md.contains("Sig.0|"), "{md}");
    // Equal versions: publish would refuse.
    assert!(d.version_not_newer());
    let human = render(&d, DiffFormat::Human);
    assert!(human.contains("not newer"), "{human}");
    assert!(human.contains("ok <script>|\\n# heading"), "{human}");
    // JSON carries the full identities and the override.
    let v: serde_json::Value = serde_json::from_str(&render(&d, DiffFormat::Json)).expect("json");
    assert_eq!(v["schema"], SCHEMA);
    assert_eq!(
        v["old"]["origin"]["gate_override"],
        "ok <script>|\n# heading"
    );
    assert_eq!(v["added"][0]["identity"].as_str().map(str::len), Some(64));
}
