//! YARA verdicts equal yara-x's own Scanner, on rules-src/ and on the shared community rule
//! set (skipped, saying so, when ../shared is absent), over real files: /usr/bin, Debian's
//! clamav-testfiles when installed, and samples/.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::SecretKey;
use vigil_scan_core::{Engine, Limits, SigKind};
use vigil_tests::thirdparty;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Real files, in a stable order, up to `budget` bytes.
fn corpus(budget: u64) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut total = 0;
    for dir in [
        root().join("samples"),
        PathBuf::from("/usr/share/clamav-testfiles"),
        PathBuf::from("/usr/bin"),
    ] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let Ok(m) = std::fs::metadata(&f) else {
                continue;
            };
            if !m.is_file() || m.len() > 8 << 20 || total + m.len() > budget {
                continue;
            }
            total += m.len();
            out.push(f);
        }
    }
    out
}

fn check(files: &[(String, String)], budget: u64) -> usize {
    let key = SecretKey::from_seed([31; 32]);
    let t = tempfile::tempdir().expect("tempdir");
    thirdparty::write_tree(t.path(), files).expect("write");
    let srcs = sources::collect(&[t.path().to_path_buf()]).expect("collect");
    let db = build(&srcs, &key, &BuildOptions::new(1))
        .expect("build")
        .bytes;
    let engine = Engine::load(&db, &[key.public()]).expect("load");

    let mut c = yara_x::Compiler::new();
    for (origin, text) in files {
        c.add_source(yara_x::SourceCode::from(text.as_str()).with_origin(origin.as_str()))
            .expect("reference compile");
    }
    let rules = c.build();
    let mut scanner = yara_x::Scanner::new(&rules);
    let mut hits = 0;
    let paths = corpus(budget);
    assert!(paths.len() > 20, "corpus too small");
    for p in &paths {
        let data = std::fs::read(p).expect("read");
        let theirs: BTreeSet<String> = scanner
            .scan(&data)
            .expect("reference scan")
            .matching_rules()
            .map(|r| r.identifier().to_string())
            .collect();
        let ours: BTreeSet<String> = engine
            // yara-x matches a file's own bytes: so does vigil with containers left closed
            // (opened, a member's matches would count for the file).
            .scan_bytes(
                &data,
                &Limits {
                    scan_archives: false,
                    ..Limits::default()
                },
            )
            .expect("scan")
            .findings
            .into_iter()
            .filter(|f| f.kind == SigKind::Yara)
            .map(|f| f.signature)
            .collect();
        assert_eq!(ours, theirs, "{}", p.display());
        hits += theirs.len();
    }
    eprintln!(
        "yara parity: {} rules over {} files, {hits} matches, all equal",
        engine.counts().0,
        paths.len()
    );
    hits
}

fn dir_sources(dir: &Path) -> Vec<(String, String)> {
    thirdparty::import_yara_dir(dir).kept
}

#[test]
fn rules_src_matches_yara_x() {
    let hits = check(&dir_sources(&root().join("rules-src")), 40 << 20);
    assert!(hits >= 1, "the webshell sample must match");
}

#[test]
fn community_rules_match_yara_x() {
    let dir = root().join("../shared/corpora/yara-rules-community");
    if !dir.is_dir() {
        eprintln!(
            "SKIP community_rules_match_yara_x: {} not found",
            dir.display()
        );
        return;
    }
    check(&dir_sources(&dir), 24 << 20);
}
