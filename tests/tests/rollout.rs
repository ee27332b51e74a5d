//! Staged rollout end to end: `vigil-build publish --stages` and `vigil-build rollout …` write a
//! directory repository, vigil-server serves it over HTTP, and 200 `vigil-update` processes,
//! each with its own config, database directory and random client id, take a release when the
//! rollout admits them. One repository and server serve every step, in order: canary, 10%,
//! pause, resume, 100%, revoke (back to N-1) and the next release. The automatic halt, with
//! clients checking in to a real fleet store, is `rollout_halt.rs`.

use std::process::Command;

use vigil_repository::rollout::bucket;
use vigil_tests::updater::{vigil_server, Client, Repo, Run};
use vigil_tests::{bin, run};

const CLIENTS: usize = 200;

fn vigil_build(args: &[&str]) -> vigil_tests::Run {
    run(Command::new(bin("vigil-build")).args(args))
}

fn publish(repo: &Repo, v: u64, extra: &[&str]) {
    let db = repo.tmp.path().join(format!("v{v}.vdb"));
    std::fs::write(&db, repo.db(v)).expect("writing the database");
    let mut args = vec![
        "publish",
        "--repo",
        repo.dir.to_str().expect("utf-8 path"),
        "--tuf-keys",
        repo.tuf_keys.to_str().expect("utf-8 path"),
        "--db",
        db.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let r = vigil_build(&args);
    assert_eq!(r.code, 0, "publish {v}: {}", r.stderr);
}

/// `vigil-build rollout CMD --repo … --tuf-keys … ARGS`.
fn rollout(repo: &Repo, cmd: &str, args: &[&str]) -> vigil_tests::Run {
    let mut all = vec![
        "rollout",
        cmd,
        "--repo",
        repo.dir.to_str().expect("utf-8 path"),
        "--tuf-keys",
        repo.tuf_keys.to_str().expect("utf-8 path"),
    ];
    all.extend_from_slice(args);
    vigil_build(&all)
}

fn status(repo: &Repo) -> String {
    let r = vigil_build(&[
        "rollout",
        "status",
        "--repo",
        repo.dir.to_str().expect("utf-8 path"),
        "--root",
        repo.root_json().to_str().expect("utf-8 path"),
    ]);
    assert_eq!(r.code, 0, "status: {}", r.stderr);
    r.stdout
}

/// Runs every client's update, four at a time (the machine has two cores; the processes wait on
/// HTTP part of the time).
fn update_all(clients: &[Client]) -> Vec<Run> {
    let mut out: Vec<Option<Run>> = (0..clients.len()).map(|_| None).collect();
    let chunk = clients.len().div_ceil(4).max(1);
    std::thread::scope(|s| {
        for (cs, outs) in clients.chunks(chunk).zip(out.chunks_mut(chunk)) {
            s.spawn(move || {
                for (c, o) in cs.iter().zip(outs.iter_mut()) {
                    *o = Some(c.update());
                }
            });
        }
    });
    out.into_iter()
        .map(|r| r.expect("every client ran"))
        .collect()
}

fn client_bucket(c: &Client) -> u32 {
    let id = std::fs::read_to_string(c.db_dir.join("client-id")).expect("the client id is kept");
    bucket("stable", id.trim())
}

fn versions(clients: &[Client]) -> Vec<Option<u64>> {
    clients.iter().map(Client::version).collect()
}

#[test]
fn staged_rollout_pause_and_revoke() {
    let repo = Repo::new();
    let server = vigil_server(&repo.dir);
    publish(&repo, 1, &[]);
    let clients: Vec<Client> = (0..CLIENTS)
        .map(|i| {
            let extra = if i == 0 { "ring = \"canary\"" } else { "" };
            Client::new(
                &repo.tmp.path().join(format!("client-{i:03}")),
                &repo,
                &[&server.url],
                extra,
            )
        })
        .collect();
    for (i, r) in update_all(&clients).iter().enumerate() {
        assert_eq!(r.code, 0, "client {i} installs version 1: {}", r.stderr);
    }
    let buckets: Vec<u32> = clients.iter().map(client_bucket).collect();

    // Version 2 with a plan: the canary ring only.
    publish(&repo, 2, &["--stages", "canary,10%,100%"]);
    let s = status(&repo);
    assert!(s.contains("canary (stage 0 of canary,10%,100%)"), "{s}");
    let runs = update_all(&clients);
    assert_eq!(
        runs[0].code, 0,
        "the canary takes version 2: {}",
        runs[0].stderr
    );
    assert_eq!(clients[0].version(), Some(2));
    for (i, r) in runs.iter().enumerate().skip(1) {
        assert_eq!(r.code, 1, "client {i} is held (up to date): {}", r.stderr);
        let want = format!("held: stable at canary, bucket {}", buckets[i]);
        assert!(
            r.stderr.contains(&want),
            "client {i}: {want} in {}",
            r.stderr
        );
        assert_eq!(clients[i].version(), Some(1));
    }

    // The stage's hour has not passed: advance does nothing without --force.
    let r = rollout(&repo, "advance", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("not advanced"), "{}", r.stderr);
    let r = rollout(&repo, "advance", &["--force"]);
    assert_eq!(r.code, 0, "advance: {}", r.stderr);
    assert!(status(&repo).contains("canary+10% (stage 1"));

    // 10%: exactly the clients whose bucket is below 10 (and the canary). Their number is
    // binomial(199, 0.1): mean 19.9, sd 4.23; 4.5 sd either side is 1..=38. The ids are random,
    // so this bound (not an exact count) is what can be asserted; a miss has probability < 1e-5.
    let runs = update_all(&clients);
    let mut took = 0;
    for (i, r) in runs.iter().enumerate().skip(1) {
        if buckets[i] < 10 {
            assert_eq!(
                r.code, 0,
                "client {i} (bucket {}) takes 2: {}",
                buckets[i], r.stderr
            );
            assert_eq!(clients[i].version(), Some(2));
            took += 1;
        } else {
            assert_eq!(r.code, 1, "client {i} is held: {}", r.stderr);
            let want = format!("held: stable at canary+10%, bucket {}", buckets[i]);
            assert!(
                r.stderr.contains(&want),
                "client {i}: {want} in {}",
                r.stderr
            );
            assert_eq!(clients[i].version(), Some(1));
        }
    }
    assert!((1..=38).contains(&took), "{took} of 199 took the 10% stage");
    eprintln!("10% stage: {took} of 199 clients took version 2");

    // Pause: nobody new takes 2; whoever has it keeps it. Resume lets the stage go on.
    let r = rollout(&repo, "pause", &["2", "--reason", "investigating reports"]);
    assert_eq!(r.code, 0, "pause: {}", r.stderr);
    let r = rollout(&repo, "advance", &["--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("is paused"),
        "a paused release is never advanced: {}",
        r.stderr
    );
    let before = versions(&clients);
    for (i, r) in update_all(&clients).iter().enumerate() {
        assert_eq!(
            r.code, 1,
            "client {i} changes nothing while paused: {}",
            r.stderr
        );
        if before[i] == Some(1) {
            assert!(
                r.stderr
                    .contains("held: stable paused at canary+10%: investigating reports"),
                "client {i}: {}",
                r.stderr
            );
        }
    }
    assert_eq!(versions(&clients), before);
    let r = rollout(&repo, "resume", &["2"]);
    assert_eq!(r.code, 0, "resume: {}", r.stderr);
    let r = rollout(&repo, "resume", &["2"]);
    assert_eq!(
        r.code, 2,
        "resuming what is not paused is refused: {}",
        r.stderr
    );

    // 100%: everyone.
    let r = rollout(&repo, "advance", &["--to", "end"]);
    assert_eq!(r.code, 0, "advance: {}", r.stderr);
    update_all(&clients);
    assert!(
        versions(&clients).iter().all(|v| *v == Some(2)),
        "{:?}",
        versions(&clients)
    );
    let r = rollout(&repo, "pause", &["2"]);
    assert_eq!(
        r.code, 2,
        "a complete rollout cannot be paused: {}",
        r.stderr
    );

    // Revoke 2: a sample of clients (the canary among them) go back to 1, activated, and stay
    // there; the next release moves them on.
    let sample = &clients[..12];
    let r = rollout(
        &repo,
        "revoke",
        &["2", "--reason", "FP storm on vendor tools"],
    );
    assert_eq!(r.code, 0, "revoke: {}", r.stderr);
    assert!(status(&repo).contains("REVOKED"));
    let v1 = repo.db(1);
    for (i, r) in update_all(sample).iter().enumerate() {
        assert_eq!(
            r.code, 0,
            "client {i} leaves the revoked release: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("revoked (FP storm on vendor tools)"),
            "{}",
            r.stderr
        );
        assert_eq!(
            sample[i].active().as_deref(),
            Some(v1.as_slice()),
            "client {i} runs 1"
        );
        let lkg = sample[i].last_known_good();
        assert!(
            lkg.as_deref().is_none_or(|b| b != repo.db(2).as_slice()),
            "the revoked release is not kept as the fallback"
        );
        let st = sample[i].state();
        assert_eq!(
            st["bad"]["2"]["reason"],
            "revoked: FP storm on vendor tools"
        );
    }
    for (i, r) in update_all(sample).iter().enumerate() {
        assert_eq!(r.code, 1, "client {i} never takes 2 again: {}", r.stderr);
        assert_eq!(sample[i].version(), Some(1));
    }
    let r = rollout(&repo, "revoke", &["2", "--reason", "again"]);
    assert_eq!(r.code, 2, "a revoked release is final: {}", r.stderr);
    let r = rollout(&repo, "pause", &["9"]);
    assert_eq!(r.code, 2, "unknown version: {}", r.stderr);
    publish(&repo, 3, &[]);
    for (i, r) in update_all(sample).iter().enumerate() {
        assert_eq!(r.code, 0, "client {i} takes 3: {}", r.stderr);
        assert_eq!(sample[i].version(), Some(3));
    }
}
