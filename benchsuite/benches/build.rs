//! Build benchmark on the community YARA rule set (../shared/corpora/yara-rules-community, or
//! $VIGIL_COMMUNITY_RULES): lint+build time against yara-x compiling the same rules alone,
//! database size against zstd -19 of the concatenated sources, and one-rule delta sizes, next
//! to what the same deltas would cost on yara-x's compiled rules. Prints a table.
//!
//! `cargo bench --workspace --bench build`

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::delta::Delta;
use vigil_format::SecretKey;

fn corpus() -> Option<PathBuf> {
    let p = std::env::var_os("VIGIL_COMMUNITY_RULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/corpora/yara-rules-community")
        });
    p.is_dir().then_some(p)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f());
        times.push(t.elapsed());
    }
    (median(times), last.expect("at least one run"))
}

/// yara-x alone, default settings: the reference cost of compiling these rules.
fn yarax_compile(files: &[(String, String)]) -> yara_x::Rules {
    let mut c = yara_x::Compiler::new();
    for (origin, text) in files {
        let _ = c.add_source(yara_x::SourceCode::from(text.as_str()).with_origin(origin.as_str()));
    }
    c.build()
}

fn patch_size(old: &[u8], new: &[u8]) -> usize {
    let mut out = Vec::new();
    let mut enc =
        zstd::stream::write::Encoder::with_ref_prefix(&mut out, 19, old).expect("encoder");
    enc.window_log(27).expect("wlog");
    enc.long_distance_matching(true).expect("ldm");
    std::io::Write::write_all(&mut enc, new).expect("write");
    enc.finish().expect("finish");
    out.len()
}

fn main() {
    let Some(dir) = corpus() else {
        println!("SKIP: community rule set not found (../shared/corpora/yara-rules-community or $VIGIL_COMMUNITY_RULES)");
        return;
    };
    let imported = vigil_tests::thirdparty::import_yara_dir(&dir);
    let total = imported.kept.len() + imported.dropped.len();
    let (kept, dropped) = (imported.kept, imported.dropped);

    let work = tempfile::tempdir().expect("tempdir");
    let rules = work.path().join("rules");
    vigil_tests::thirdparty::write_tree(&rules, &kept).expect("write rules");
    let key = SecretKey::from_seed([1; 32]);
    let concat: Vec<u8> = kept.iter().flat_map(|(_, t)| t.bytes()).collect();

    let (t_yarax, compiled) = time(3, || yarax_compile(&kept));
    let rule_count = compiled.iter().count();
    let (t_build, db) = time(3, || {
        let files = sources::collect(std::slice::from_ref(&rules)).expect("collect");
        build(&files, &key, &BuildOptions::new(1))
            .expect("build")
            .bytes
    });
    let (t_zstd, zstd19) = time(1, || zstd::bulk::compress(&concat, 19).expect("zstd"));

    // One rule added in a new file.
    let added = "rule Vigil_Bench_Added_1\n{\n    meta:\n        description = \"bench\"\n    strings:\n        $a = \"vigil-bench-added-rule\"\n    condition:\n        $a\n}\n";
    fs::write(rules.join("vigil_bench_added.yar"), added).expect("write");
    let files = sources::collect(std::slice::from_ref(&rules)).expect("collect");
    let db_added = build(&files, &key, &BuildOptions::new(2))
        .expect("build")
        .bytes;
    fs::remove_file(rules.join("vigil_bench_added.yar")).expect("rm");
    let delta_add = Delta::create(&db, &db_added).expect("delta");

    // One rule removed: the first single-rule file whose removal still builds.
    let mut delta_remove = None;
    for (rel, text) in &kept {
        if yarax_compile(&[(rel.clone(), text.clone())]).iter().count() != 1 {
            continue;
        }
        let p = rules.join(rel);
        fs::remove_file(&p).expect("rm");
        let files = sources::collect(std::slice::from_ref(&rules)).expect("collect");
        let r = build(&files, &key, &BuildOptions::new(3));
        fs::write(&p, text).expect("restore");
        if let Ok(b) = r {
            delta_remove = Some((rel.clone(), Delta::create(&db, &b.bytes).expect("delta")));
            break;
        }
    }

    // The alternative design: ship yara-x's compiled rules. Same one-rule change.
    let blob_old = compiled.serialize().expect("serialize");
    let mut with_added = kept.clone();
    with_added.push(("vigil_bench_added.yar".into(), added.into()));
    let blob_new = yarax_compile(&with_added).serialize().expect("serialize");
    let blob_old_z = zstd::bulk::compress(&blob_old, 19).expect("zstd").len();
    let blob_patch = patch_size(&blob_old, &blob_new);

    let kib = |n: usize| format!("{:.1} KiB", n as f64 / 1024.0);
    println!();
    println!(
        "vigil-build on {} ({} of {} files kept, {} rules)",
        dir.display(),
        kept.len(),
        total,
        rule_count
    );
    println!("{:<52} {:>14} {:>14}", "measure", "vigil", "reference");
    println!(
        "{:<52} {:>14} {:>14}",
        "lint+build time vs yara-x compile alone",
        format!("{:.2} s", t_build.as_secs_f64()),
        format!("{:.2} s", t_yarax.as_secs_f64())
    );
    println!(
        "{:<52} {:>14} {:>14}",
        "  ratio (goal <= 2.0x)",
        format!("{:.2}x", t_build.as_secs_f64() / t_yarax.as_secs_f64()),
        ""
    );
    println!(
        "{:<52} {:>14} {:>14}",
        "database size vs zstd -19 of concatenated sources",
        kib(db.len()),
        kib(zstd19.len())
    );
    println!(
        "{:<52} {:>14} {:>14}",
        "  ratio (goal <= 1.1x)",
        format!("{:.3}x", db.len() as f64 / zstd19.len() as f64),
        ""
    );
    println!(
        "{:<52} {:>14} {:>14}",
        "  (zstd -19 time on the sources)",
        "",
        format!("{:.2} s", t_zstd.as_secs_f64())
    );
    println!(
        "{:<52} {:>14} {:>14}",
        "delta, one rule added (goal <= 4 KiB)",
        format!("{} B", delta_add.len()),
        ""
    );
    match &delta_remove {
        Some((rel, d)) => println!(
            "{:<52} {:>14} {:>14}",
            format!("delta, one rule removed ({rel})"),
            format!("{} B", d.len()),
            ""
        ),
        None => println!("delta, one rule removed: no single-rule file could be removed"),
    }
    println!(
        "{:<52} {:>14} {:>14}",
        "alternative: yara-x compiled rules, zstd -19",
        "",
        kib(blob_old_z)
    );
    println!(
        "{:<52} {:>14} {:>14}",
        "alternative: patch of compiled rules, one rule added",
        "",
        format!("{} B", blob_patch)
    );
    println!();
    println!("dropped {} file(s):", dropped.len());
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for (_, why) in &dropped {
        *reasons.entry(why.clone()).or_default() += 1;
    }
    for (why, n) in reasons {
        println!("  {n:>4}  {why}");
    }
}
