//! What delivering findings costs: the outbox's append+fsync per finding (batches of 1 and of
//! 100), and findings/s through the Deliverer to a local webhook receiver (axum on 127.0.0.1,
//! in this process) that verifies every Standard Webhooks signature, one POST per finding.
//! Prints one markdown table on stdout, built from a list of rows so other measurements
//! (Security Hub through moto, quarantine throughput) are added as rows.
//!
//! Then the quarantine store's throughput ([`quarantine`]) and findings/s to moto's Security
//! Hub and EventBridge ([`aws`]; SKIP without moto).
//!
//! `cargo bench --workspace --bench findings [-- NAME…]` (only the rows whose name contains a
//! NAME; the local rows always run). Knobs: VIGIL_BENCH_FINDINGS (2000 per AWS row), VIGIL_BENCH_APPENDS (500 single appends,
//! and as many findings in batches of 100), VIGIL_BENCH_WEBHOOK (2000 findings).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use vigil_findings::{webhook, FileFacts, Finding, Resource, Severity};
use vigil_outputs::config::{Event, OutputKind, WebhookConfig};
use vigil_outputs::sinks::webhook::WebhookSink;
use vigil_outputs::{Deliverer, Outbox, OutboxLimits, OutputConfig, Sink};

#[path = "findings/aws.rs"]
mod aws;
#[path = "findings/quarantine.rs"]
mod quarantine;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One row of the table.
struct Row {
    what: String,
    value: String,
    notes: String,
}

fn finding(i: u64) -> Finding {
    Finding::new(
        Resource {
            hostname: "bench-host".into(),
            instance_id: Some("i-0123456789abcdef0".into()),
            region: Some("eu-west-1".into()),
            account_id: Some("123456789012".into()),
        },
        FileFacts {
            path: format!("/srv/uploads/{i}/invoice.pdf.exe"),
            sha256: format!("{i:064x}"),
            size: 73_802,
            uid: 1000,
            owner: Some("www-data".into()),
            mtime: 1_700_000_000,
        },
        "Win.Trojan.Agent-123456",
        "body",
        Severity::High,
        Some("a bench finding".into()),
        42,
        "vigil 0.1.0",
        1_700_000_000,
    )
}

/// Appends `n` findings in batches of `batch`; µs per finding.
fn append_cost(dir: &Path, n: u64, batch: u64) -> f64 {
    let ob = Outbox::open(
        &dir.join(format!("outbox-{batch}")),
        OutboxLimits::default(),
    )
    .expect("opening the outbox");
    let batches: Vec<Vec<(Event, Finding)>> = (0..n / batch)
        .map(|b| {
            (0..batch)
                .map(|i| (Event::New, finding(b * batch + i)))
                .collect()
        })
        .collect();
    let t = Instant::now();
    for b in &batches {
        ob.append(b).expect("appending");
    }
    t.elapsed().as_secs_f64() * 1e6 / (n / batch * batch) as f64
}

#[derive(Clone)]
struct Receiver {
    key: Arc<Vec<u8>>,
    verified: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
}

async fn receive(State(r): State<Receiver>, h: HeaderMap, body: Bytes) -> StatusCode {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let ts: i64 = get("webhook-timestamp").parse().unwrap_or(0);
    let now = jiff::Timestamp::now().as_second();
    match webhook::verify(
        &r.key,
        get("webhook-id"),
        ts,
        get("webhook-signature"),
        &body,
        now,
    ) {
        Ok(()) => {
            r.verified.fetch_add(1, Ordering::Relaxed);
            StatusCode::NO_CONTENT
        }
        Err(_) => {
            r.bad.fetch_add(1, Ordering::Relaxed);
            StatusCode::BAD_REQUEST
        }
    }
}

/// Findings/s from a filled outbox to the local receiver; (rate, verified, refused).
async fn webhook_rate(dir: &Path, n: u64) -> (f64, u64, u64) {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let r = Receiver {
        key: Arc::new(webhook::key(secret).expect("the secret")),
        verified: Arc::default(),
        bad: Arc::default(),
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the receiver");
    let url = format!("http://{}/hook", l.local_addr().expect("its address"));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(l, app).await });

    let ob = Arc::new(
        Outbox::open(&dir.join("outbox-webhook"), OutboxLimits::default()).expect("outbox"),
    );
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let batch: Vec<_> = chunk.iter().map(|&i| (Event::New, finding(i))).collect();
        ob.append(&batch).expect("appending");
    }
    let secret_file = dir.join("hook.secret");
    std::fs::write(&secret_file, secret).expect("writing the secret");
    let cfg = WebhookConfig {
        url,
        secret_file: Some(secret_file),
        secret_env: None,
        timeout_secs: 10,
    };
    let sink: Arc<dyn Sink> = Arc::new(WebhookSink::new("hook", &cfg).expect("the sink"));
    let out = OutputConfig {
        name: "hook".into(),
        min_severity: Severity::Low,
        events: Event::ALL.into_iter().collect(),
        kind: OutputKind::Webhook(cfg),
    };
    let d = Deliverer::new(ob, vec![(out, sink)]);
    let t = Instant::now();
    let s = d.flush(Duration::from_secs(600)).await;
    let took = t.elapsed().as_secs_f64();
    assert_eq!(s[0].pending, 0, "{s:?}");
    (
        s[0].delivered as f64 / took,
        r.verified.load(Ordering::Relaxed),
        r.bad.load(Ordering::Relaxed),
    )
}

fn main() {
    let appends = knob("VIGIL_BENCH_APPENDS", 500).max(100);
    let hooks = knob("VIGIL_BENCH_WEBHOOK", 2000).max(1);
    // Under the target directory: the disk the outbox would be on, not a tmpfs /tmp.
    let scratch = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("bench-findings");
    let _ = std::fs::create_dir_all(&scratch);
    // Without `..`: the quarantine store refuses paths that hold one.
    let scratch = std::fs::canonicalize(&scratch).unwrap_or(scratch);
    let tmp = tempfile::tempdir_in(&scratch)
        .or_else(|_| tempfile::tempdir())
        .expect("a scratch directory");
    let mut rows = Vec::new();

    eprintln!("outbox: {appends} appends of 1, {appends} findings in batches of 100 …");
    for batch in [1, 100] {
        let us = append_cost(tmp.path(), appends, batch);
        rows.push(Row {
            what: format!("outbox append+fsync, per finding (batch of {batch})"),
            value: format!("{us:.1} µs"),
            notes: format!("{:.0} findings/s", 1e6 / us),
        });
    }

    eprintln!("webhook: {hooks} findings to a local receiver …");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (rate, ok, bad) = rt.block_on(webhook_rate(tmp.path(), hooks));
    assert_eq!((ok, bad), (hooks, 0), "every POST verified");
    rows.push(Row {
        what: "findings/s to a local webhook (signed, one per POST)".into(),
        value: format!("{rate:.0} /s"),
        notes: format!("{ok} POSTs, all signatures verified by the receiver"),
    });

    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let quarantine =
        if filters.is_empty() || filters.iter().any(|f| "quarantine".contains(f.as_str())) {
            quarantine::rows(tmp.path())
        } else {
            Vec::new()
        };
    for (what, value, notes) in quarantine.into_iter().chain(aws::rows(&filters)) {
        rows.push(Row { what, value, notes });
    }

    println!("| measurement | value | notes |");
    println!("|---|---|---|");
    for r in &rows {
        println!("| {} | {} | {} |", r.what, r.value, r.notes);
    }
}
