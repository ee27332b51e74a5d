//! The outbox against real files: round trips, torn tails, the bound, two handles at once.

#![allow(clippy::unwrap_used)]

use std::io::Write;

use vigil_findings::Severity;

use super::*;
use crate::testing::{capture_logs, finding, jsonl_output};

fn open(dir: &Path) -> Outbox {
    Outbox::open(&dir.join("outbox"), OutboxLimits::default()).unwrap()
}

fn seqs(p: &Pending) -> Vec<u64> {
    p.records.iter().map(|r| r.seq).collect()
}

#[test]
fn append_read_and_cursor_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path());
    let mode = std::fs::metadata(ob.dir()).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o700
    );
    let a = ob
        .append(&[
            (Event::New, finding(1, Severity::High)),
            (Event::New, finding(2, Severity::Informational)),
            (Event::Resolved, finding(3, Severity::Informational)),
        ])
        .unwrap();
    assert_eq!((a.first_seq, a.count, a.dropped), (1, 3, 0));
    let b = ob
        .append(&[(Event::Updated, finding(1, Severity::High))])
        .unwrap();
    assert_eq!(b.first_seq, 4);

    let all = jsonl_output("all");
    let p = ob.pending(&all, 0, 10).unwrap();
    assert_eq!(seqs(&p), [1, 3, 4], "INFORMATIONAL news is below LOW");
    assert_eq!(p.records[0].finding, finding(1, Severity::High));
    assert_eq!(
        p.records[1].event,
        Event::Resolved,
        "resolutions go whatever the severity"
    );
    assert_eq!(p.through, 4);
    let p = ob.pending(&all, 0, 1).unwrap();
    assert_eq!((seqs(&p), p.through), (vec![1], 1));
    // Reading on from the cursor (the hint) and from scratch agree.
    assert_eq!(seqs(&ob.pending(&all, 1, 10).unwrap()), [3, 4]);
    assert_eq!(
        seqs(&open(tmp.path()).pending(&all, 1, 10).unwrap()),
        [3, 4]
    );

    let mut news = jsonl_output("news");
    news.events = [Event::New].into_iter().collect();
    let p = ob.pending(&news, 1, 10).unwrap();
    assert!(p.records.is_empty());
    assert_eq!(
        p.through, 4,
        "the cursor may pass what the output does not want"
    );

    ob.register(&all).unwrap();
    let mut st = ob.load_state(&all).unwrap();
    st.cursor = 3;
    st.delivered = 2;
    ob.save_state("all", &st).unwrap();
    let s = open(tmp.path()).status(&[all.clone(), news]).unwrap();
    assert_eq!(
        (s[0].pending, s[0].delivered, s[0].kind.as_str()),
        (1, 2, "jsonl")
    );
    assert!(s[0].oldest_queued_at.is_some());
    assert_eq!((s[1].pending, s[1].oldest_queued_at.is_some()), (1, true));
}

#[test]
fn a_torn_tail_is_ignored_and_appends_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let ob = open(tmp.path());
    ob.append(&[
        (Event::New, finding(1, Severity::High)),
        (Event::New, finding(2, Severity::High)),
        (Event::New, finding(3, Severity::High)),
    ])
    .unwrap();
    let seg = segment::list(ob.dir()).unwrap().pop().unwrap().1;
    let len = std::fs::metadata(&seg).unwrap().len();
    // A crash mid-write: the last record cut in half, then junk after it.
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 300).unwrap();
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(b"\n0123456789abcdef {\"seq\":99}\n\xff\xfe garbage")
        .unwrap();
    drop(f);

    let ob = open(tmp.path()); // as a restarted process
    let all = jsonl_output("all");
    let (p, logs) = capture_logs(|| ob.pending(&all, 0, 10).unwrap());
    assert_eq!(seqs(&p), [1, 2], "only intact records are trusted");
    assert!(logs.is_empty(), "{logs}");
    let (a, logs) = capture_logs(|| {
        ob.append(&[(Event::New, finding(4, Severity::High))])
            .unwrap()
    });
    assert_eq!(
        a.first_seq, 3,
        "the torn record was never acknowledged: its seq is free"
    );
    assert!(logs.contains("torn"), "{logs}");
    ob.append(&[(Event::New, finding(5, Severity::High))])
        .unwrap();
    let p = ob.pending(&all, 0, 10).unwrap();
    assert_eq!(seqs(&p), [1, 2, 3, 4]);
    assert_eq!(p.records[2].finding, finding(4, Severity::High));
    assert_eq!(
        segment::list(ob.dir()).unwrap().len(),
        2,
        "appends moved to a new segment"
    );
    // A segment of nothing but junk is started over.
    let tmp2 = tempfile::tempdir().unwrap();
    let ob2 = open(tmp2.path());
    std::fs::write(ob2.dir().join(segment::name(1)), b"\x00\x01junk").unwrap();
    assert_eq!(
        ob2.append(&[(Event::New, finding(1, Severity::High))])
            .unwrap()
            .first_seq,
        1
    );
    assert_eq!(seqs(&ob2.pending(&all, 0, 10).unwrap()), [1]);
}

#[test]
fn the_bound_drops_the_oldest_and_counts_per_output() {
    let tmp = tempfile::tempdir().unwrap();
    let limits = OutboxLimits {
        max_records: 16,
        max_bytes: 1 << 30,
    };
    let ob = Outbox::open(&tmp.path().join("outbox"), limits).unwrap();
    let (ahead, behind) = (jsonl_output("ahead"), jsonl_output("behind"));
    let mut high_only = jsonl_output("high");
    high_only.min_severity = Severity::High;
    for o in [&ahead, &behind, &high_only] {
        ob.register(o).unwrap();
    }
    let append = |range: std::ops::RangeInclusive<u64>| {
        range
            .map(|i| {
                let sev = if i % 2 == 0 {
                    Severity::High
                } else {
                    Severity::Low
                };
                ob.append(&[(Event::New, finding(i, sev))]).unwrap().dropped
            })
            .sum::<u64>()
    };
    assert_eq!(append(1..=16), 0, "16 records fit");
    // `ahead` has delivered the first 12 when the outbox overflows.
    let mut st = ob.load_state(&ahead).unwrap();
    st.cursor = 12;
    ob.save_state("ahead", &st).unwrap();
    let (dropped, logs) = capture_logs(|| append(17..=40));
    assert_eq!(dropped, 24, "down to 16 records, by whole segments of 2");
    assert!(logs.contains("OUTBOX FULL"), "{logs}");
    assert!(logs.contains(&format!("dropped the {}", 2)), "{logs}");

    let left = ob.pending(&behind, 0, 1000).unwrap();
    let first = left.records[0].seq;
    assert_eq!(left.records.len() as u64, 40 - dropped);
    assert_eq!(first, dropped + 1, "the oldest went, the newest stayed");
    assert!(left.records.len() <= 16 + 1);
    assert_eq!(*seqs(&left).last().unwrap(), 40);

    let s = open_with(tmp.path(), limits)
        .status(&[ahead, behind, high_only])
        .unwrap();
    assert_eq!(
        s[0].dropped,
        dropped - 12,
        "`ahead` lost only what it had not passed"
    );
    assert_eq!(s[1].dropped, dropped);
    assert_eq!(
        s[2].dropped,
        dropped / 2,
        "only the HIGH ones count for `high`"
    );
    assert_eq!(s[1].pending, 40 - dropped);
}

fn open_with(dir: &Path, limits: OutboxLimits) -> Outbox {
    Outbox::open(&dir.join("outbox"), limits).unwrap()
}

#[test]
fn passed_segments_are_collected() {
    let tmp = tempfile::tempdir().unwrap();
    let limits = OutboxLimits {
        max_records: 80,
        max_bytes: 1 << 30,
    };
    let ob = open_with(tmp.path(), limits);
    let o = jsonl_output("o");
    ob.register(&o).unwrap();
    for i in 0..30 {
        ob.append(&[(Event::New, finding(i, Severity::High))])
            .unwrap();
    }
    assert!(segment::list(ob.dir()).unwrap().len() >= 3);
    let mut st = ob.load_state(&o).unwrap();
    st.cursor = 30;
    ob.save_state("o", &st).unwrap();
    ob.collect().unwrap();
    assert_eq!(
        segment::list(ob.dir()).unwrap().len(),
        1,
        "the newest stays"
    );
    let a = ob
        .append(&[(Event::New, finding(99, Severity::High))])
        .unwrap();
    assert_eq!(a.first_seq, 31, "seqs are never reused");
}

#[test]
fn two_handles_appending_at_once_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("outbox");
    let limits = OutboxLimits {
        max_records: 1000, // segments of 125 records: rotations race with appends too
        max_bytes: 1 << 30,
    };
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let ob = Outbox::open(&dir, limits).unwrap();
                let mut seqs = Vec::new();
                for i in 0..50u64 {
                    let a = ob
                        .append(&[
                            (Event::New, finding(t * 1000 + 2 * i, Severity::High)),
                            (Event::New, finding(t * 1000 + 2 * i + 1, Severity::High)),
                        ])
                        .unwrap();
                    seqs.extend([a.first_seq, a.first_seq + 1]);
                }
                seqs
            })
        })
        .collect();
    let mut acked: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    acked.sort();
    acked.dedup();
    assert_eq!(acked.len(), 400, "every acknowledged seq is distinct");
    let p = Outbox::open(&dir, limits)
        .unwrap()
        .pending(&jsonl_output("all"), 0, 10_000)
        .unwrap();
    assert_eq!(
        seqs(&p),
        acked,
        "every acknowledged record is there, in seq order"
    );
    let mut paths: Vec<_> = p
        .records
        .iter()
        .map(|r| r.finding.file.path.clone())
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 400);
}
