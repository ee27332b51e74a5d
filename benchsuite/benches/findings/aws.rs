#![allow(clippy::unwrap_used)]
//! The findings bench's AWS rows: findings delivered to AWS, measured against moto's server (the same endpoint the tests
//! use): findings/s to Security Hub (`BatchImportFindings`, 100 per call) and to EventBridge
//! (`PutEvents`, 10 per call), through each sink alone, and through the durable outbox and
//! its deliverer (append with fsync, then a flush to the output).
//!
//! Needs `moto_server` (`pip install 'moto[server]'`); without it, it says SKIP and exits 0.
//! `VIGIL_BENCH_FINDINGS` (default 2,000) findings per row, each row on a fresh moto. Moto
//! is a single-threaded Python server that scans its findings list per import, so these are
//! vigil's floor against a slow endpoint, not Security Hub's own rate (its quota is 10
//! BatchImportFindings calls/s with bursts of 30, i.e. up to 1,000 findings/s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_findings::{FileFacts, Finding, Resource, Severity};
use vigil_outputs::config::{EventBridgeConfig, SecurityHubConfig};
use vigil_outputs::sinks::eventbridge::EventBridgeSink;
use vigil_outputs::sinks::securityhub::SecurityHubSink;
use vigil_outputs::{
    Deliverer, EntryResult, Event, Outbox, OutboxLimits, OutputConfig, OutputKind, Record, Sink,
    SinkContext,
};
use vigil_tests::moto::{MotoServer, ACCOUNT, REGION};

fn findings(n: usize) -> Vec<Finding> {
    (0..n)
        .map(|i| {
            Finding::new(
                Resource {
                    hostname: "web-1".into(),
                    instance_id: Some("i-0abc1234567890def".into()),
                    region: Some(REGION.into()),
                    account_id: Some(ACCOUNT.into()),
                },
                FileFacts {
                    path: format!("/srv/www/upload/{i}.php"),
                    sha256: format!("{i:064x}"),
                    size: 4096,
                    uid: 33,
                    owner: Some("www-data".into()),
                    mtime: 1_764_000_000,
                },
                "Php_Webshell_C99_1",
                "yara",
                Severity::High,
                Some("c99 web shell".into()),
                7,
                "0.1.0",
                1_764_600_000,
            )
        })
        .collect()
}

fn ctx() -> SinkContext {
    SinkContext {
        region: Some(REGION.into()),
        account_id: Some(ACCOUNT.into()),
    }
}

fn hub(moto: &MotoServer) -> (SecurityHubConfig, SecurityHubSink) {
    let cfg = SecurityHubConfig {
        region: None,
        endpoint_url: Some(moto.endpoint()),
        account_id: None,
        product_arn: None,
    };
    let sink =
        SecurityHubSink::from_sdk_config("hub", &cfg, &ctx(), &moto.credentials_config()).unwrap();
    (cfg, sink)
}

fn bus(moto: &MotoServer) -> EventBridgeSink {
    let cfg = EventBridgeConfig {
        region: None,
        endpoint_url: Some(moto.endpoint()),
        event_bus: "default".into(),
    };
    EventBridgeSink::from_sdk_config("bus", &cfg, &ctx(), &moto.credentials_config()).unwrap()
}

/// Sends every finding through the sink, `max_batch` at a time; all must arrive.
async fn through_sink(sink: &dyn Sink, fs: &[Finding]) -> f64 {
    let records: Vec<Record> = fs
        .iter()
        .enumerate()
        .map(|(i, f)| Record {
            seq: i as u64 + 1,
            event: Event::New,
            queued_at: f.last_seen,
            finding: f.clone(),
        })
        .collect();
    let t = Instant::now();
    for batch in records.chunks(sink.max_batch()) {
        let got = sink.send(batch).await.unwrap();
        assert!(got.iter().all(|r| *r == EntryResult::Delivered), "{got:?}");
    }
    t.elapsed().as_secs_f64()
}

/// Appends every finding to a fresh outbox (fsynced), then flushes it to Security Hub.
async fn through_outbox(moto: &MotoServer, fs: &[Finding]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path(), OutboxLimits::default()).unwrap());
    let (cfg, sink) = hub(moto);
    let out = OutputConfig {
        name: "hub".into(),
        min_severity: Severity::Low,
        events: Event::ALL.into_iter().collect(),
        kind: OutputKind::SecurityHub(cfg),
    };
    let deliverer = Deliverer::new(outbox.clone(), vec![(out, Arc::new(sink))]);
    let t = Instant::now();
    let entries: Vec<(Event, Finding)> = fs.iter().map(|f| (Event::New, f.clone())).collect();
    outbox.append(&entries).unwrap();
    let status = deliverer.flush(Duration::from_secs(600)).await;
    let secs = t.elapsed().as_secs_f64();
    assert!(
        status.iter().all(|s| s.pending == 0 && s.rejected == 0),
        "{status:?}"
    );
    secs
}

/// The AWS rows (measurement, value, notes), those whose name contains one of `filters` (all
/// when empty); none, with a SKIP line, without moto.
pub fn rows(filters: &[String]) -> Vec<(String, String, String)> {
    let wanted =
        |case: &str| filters.is_empty() || filters.iter().any(|f| case.contains(f.as_str()));
    let n: usize = std::env::var("VIGIL_BENCH_FINDINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fs = findings(n);
    type Case = (
        &'static str,
        fn(&MotoServer, &[Finding], &tokio::runtime::Runtime) -> f64,
    );
    let cases: [Case; 3] = [
        (
            "findings/s to Security Hub (moto, batched 100)",
            |m, fs, rt| rt.block_on(through_sink(&hub(m).1, fs)),
        ),
        (
            "findings/s to Security Hub through the outbox (moto, batched 100)",
            |m, fs, rt| rt.block_on(through_outbox(m, fs)),
        ),
        (
            "findings/s to EventBridge (moto, batched 10)",
            |m, fs, rt| rt.block_on(through_sink(&bus(m), fs)),
        ),
    ];
    let mut rows = Vec::new();
    for (case, run) in cases {
        if !wanted(case) {
            continue;
        }
        let Some(moto) = MotoServer::start() else {
            eprintln!("SKIP: the AWS rows need moto_server (pip install 'moto[server]')");
            return rows;
        };
        eprintln!("{case}: {n} findings …");
        let secs = run(&moto, &fs, &rt);
        rows.push((
            case.to_string(),
            format!("{:.0} /s", n as f64 / secs),
            format!("{n} findings in {secs:.2} s; moto is single-threaded Python"),
        ));
    }
    rows
}
