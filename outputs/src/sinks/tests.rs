//! The HTTP outputs and the Deliverer against real receivers on 127.0.0.1: signatures checked
//! as a receiver checks them, an outage, Slack's 429, a rejected record among good ones.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use vigil_findings::{webhook, Severity};

use super::slack::SlackSink;
use super::webhook::WebhookSink;
use crate::config::{Event, OutputKind, SlackConfig, WebhookConfig};
use crate::deliver::Deliverer;
use crate::outbox::{Outbox, OutboxLimits};
use crate::sink::Sink;
use crate::testing::{finding, output};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Got {
    at: Instant,
    id: String,
    timestamp: i64,
    signature: String,
    body: Vec<u8>,
    verified: bool,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    /// Answer 400 to findings whose path contains this.
    reject_path: Option<String>,
    /// Answer 429 with `Retry-After: 2` to the first request.
    throttle_first: bool,
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A Standard Webhooks receiver: verifies the signature (400 when it does not verify).
async fn webhook_handler(
    State(r): State<Receiver>,
    h: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let key = webhook::key(SECRET).unwrap();
    let id = header(&h, "webhook-id");
    let timestamp: i64 = header(&h, "webhook-timestamp").parse().unwrap_or(0);
    let signature = header(&h, "webhook-signature");
    let now = jiff::Timestamp::now().as_second();
    let verified = webhook::verify(&key, &id, timestamp, &signature, &body, now).is_ok();
    r.got.lock().unwrap().push(Got {
        at: Instant::now(),
        id,
        timestamp,
        signature,
        body: body.to_vec(),
        verified,
    });
    if !verified || header(&h, "content-type") != "application/json" {
        return (StatusCode::BAD_REQUEST, "bad signature").into_response();
    }
    if let Some(bad) = &r.reject_path {
        if String::from_utf8_lossy(&body).contains(bad.as_str()) {
            return (StatusCode::BAD_REQUEST, "unknown field").into_response();
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// A Slack-shaped receiver: 429 with Retry-After 2 once when asked, then `ok`.
async fn slack_handler(State(r): State<Receiver>, body: Bytes) -> axum::response::Response {
    let first = {
        let mut got = r.got.lock().unwrap();
        got.push(Got {
            at: Instant::now(),
            id: String::new(),
            timestamp: 0,
            signature: String::new(),
            body: body.to_vec(),
            verified: false,
        });
        got.len() == 1
    };
    if r.throttle_first && first {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "2")],
            "rate_limited",
        )
            .into_response();
    }
    (StatusCode::OK, "ok").into_response()
}

async fn serve_on(listener: tokio::net::TcpListener, r: Receiver, slack: bool) {
    let app = if slack {
        axum::Router::new().route("/hook", axum::routing::post(slack_handler))
    } else {
        axum::Router::new().route("/hook", axum::routing::post(webhook_handler))
    }
    .with_state(r);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

async fn serve(r: Receiver, slack: bool) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    serve_on(l, r, slack).await;
    url
}

fn webhook_output(url: &str, dir: &std::path::Path) -> (crate::OutputConfig, Arc<dyn Sink>) {
    let secret = dir.join("hook.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let cfg = WebhookConfig {
        url: url.into(),
        secret_file: Some(secret),
        secret_env: None,
        timeout_secs: 5,
    };
    let sink = WebhookSink::new("hook", &cfg).unwrap();
    (output("hook", OutputKind::Webhook(cfg)), Arc::new(sink))
}

fn outbox(dir: &std::path::Path) -> Arc<Outbox> {
    Arc::new(Outbox::open(&dir.join("outbox"), OutboxLimits::default()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_arrive_signed_and_a_tampered_body_does_not_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let r = Receiver::default();
    let url = serve(r.clone(), false).await;
    let ob = outbox(tmp.path());
    let findings: Vec<_> = (1..=3).map(|i| finding(i, Severity::High)).collect();
    ob.append(&[
        (Event::New, findings[0].clone()),
        (Event::New, findings[1].clone()),
        (Event::Resolved, findings[2].clone()),
    ])
    .unwrap();
    let d = Deliverer::new(ob.clone(), vec![webhook_output(&url, tmp.path())]);
    let s = d.flush(Duration::from_secs(20)).await;
    assert_eq!(
        (s[0].pending, s[0].delivered, s[0].rejected),
        (0, 3, 0),
        "{s:?}"
    );

    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    let key = webhook::key(SECRET).unwrap();
    for (i, g) in got.iter().enumerate() {
        assert!(g.verified, "{g:?}");
        assert_eq!(
            g.id,
            format!("{}-{}", findings[i].id, i + 1),
            "webhook-id is <finding id>-<seq>"
        );
        let v: serde_json::Value = serde_json::from_slice(&g.body).unwrap();
        assert_eq!(v["data"]["id"], findings[i].id.as_str());
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        let kind = if i == 2 {
            "vigil.finding.resolved"
        } else {
            "vigil.finding.new"
        };
        assert_eq!(v["type"], kind);
        // The same delivery with one byte of the body changed does not verify...
        let mut tampered = g.body.clone();
        let at = tampered.iter().position(|&b| b == b'/').unwrap();
        tampered[at + 1] ^= 1;
        assert_eq!(
            webhook::verify(
                &key,
                &g.id,
                g.timestamp,
                &g.signature,
                &tampered,
                g.timestamp
            ),
            Err(webhook::WebhookError::Mismatch)
        );
    }
    // ... and the receiver turns it away.
    let g = &got[0];
    let mut tampered = g.body.clone();
    tampered.extend_from_slice(b" ");
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("webhook-id", &g.id)
        .header("webhook-timestamp", g.timestamp.to_string())
        .header("webhook-signature", &g.signature)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(!r.got.lock().unwrap()[3].verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_everything_once_up() {
    let tmp = tempfile::tempdir().unwrap();
    // A port with nobody listening yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let ob = outbox(tmp.path());
    let findings: Vec<_> = (1..=5).map(|i| finding(i, Severity::Critical)).collect();
    for f in &findings {
        ob.append(&[(Event::New, f.clone())]).unwrap();
    }
    let d = Arc::new(Deliverer::new(
        ob.clone(),
        vec![webhook_output(&url, tmp.path())],
    ));
    let s = d.deliver_once().await;
    assert_eq!((s[0].pending, s[0].delivered), (5, 0));
    assert!(s[0].last_error.is_some(), "{s:?}");
    // A process restarted meanwhile (a fresh Deliverer, no back-off) fails too.
    let d2 = Deliverer::new(ob.clone(), vec![webhook_output(&url, tmp.path())]);
    assert_eq!(d2.deliver_once().await[0].pending, 5);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let r = Receiver::default();
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    serve_on(l, r.clone(), false).await;
    let s = d.flush(Duration::from_secs(30)).await;
    assert_eq!((s[0].pending, s[0].delivered), (0, 5), "{s:?}");

    let got = r.got.lock().unwrap().clone();
    let mut ids: Vec<String> = got.iter().map(|g| g.id.clone()).collect();
    assert!(got.iter().all(|g| g.verified));
    ids.sort();
    ids.dedup();
    let mut want: Vec<String> = findings
        .iter()
        .enumerate()
        .map(|(i, f)| format!("{}-{}", f.id, i + 1))
        .collect();
    want.sort();
    assert_eq!(
        ids, want,
        "every finding arrived; repeats (if any) only of the same id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_rejected_record_does_not_block_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let r = Receiver {
        reject_path: Some("/srv/f3\"".into()),
        ..Receiver::default()
    };
    let url = serve(r.clone(), false).await;
    let ob = outbox(tmp.path());
    let entries: Vec<_> = (1..=5)
        .map(|i| (Event::New, finding(i, Severity::Medium)))
        .collect();
    ob.append(&entries).unwrap();
    let d = Deliverer::new(ob.clone(), vec![webhook_output(&url, tmp.path())]);
    let s = d.flush(Duration::from_secs(20)).await;
    assert_eq!(
        (s[0].pending, s[0].delivered, s[0].rejected),
        (0, 4, 1),
        "{s:?}"
    );
    assert_eq!(
        r.got.lock().unwrap().len(),
        5,
        "the rejected record was not retried"
    );
    // The counts survive in the outbox for another process's `status`.
    let (cfg, _) = webhook_output(&url, tmp.path());
    let again = Outbox::open(&tmp.path().join("outbox"), OutboxLimits::default()).unwrap();
    let s = again.status(&[cfg]).unwrap();
    assert_eq!((s[0].delivered, s[0].rejected), (4, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_the_retry_after_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let r = Receiver {
        throttle_first: true,
        ..Receiver::default()
    };
    let url = serve(r.clone(), true).await;
    let ob = outbox(tmp.path());
    ob.append(&[(Event::New, finding(1, Severity::High))])
        .unwrap();
    let url_file = tmp.path().join("slack.url");
    std::fs::write(&url_file, format!("{url}\n")).unwrap();
    let cfg = SlackConfig {
        url_file: Some(url_file),
        url_env: None,
        timeout_secs: 5,
    };
    let sink: Arc<dyn Sink> = Arc::new(SlackSink::new("slack", &cfg).unwrap());
    let d = Deliverer::new(ob, vec![(output("slack", OutputKind::Slack(cfg)), sink)]);
    let s = d.flush(Duration::from_secs(20)).await;
    assert_eq!((s[0].pending, s[0].delivered), (0, 1), "{s:?}");
    assert!(s[0].last_error.as_deref().unwrap().contains("429"), "{s:?}");

    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let waited = got[1].at - got[0].at;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
    assert_eq!(got[0].body, got[1].body);
    let m: serde_json::Value = serde_json::from_slice(&got[1].body).unwrap();
    assert!(m["text"].as_str().unwrap().contains("EICAR-Test-File"));
    let blocks = m["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[1]["type"], "section");
    let fields = blocks[1]["fields"].to_string();
    for w in ["HIGH", "web-1", "i-0abc", "/srv/f1", "Database version"] {
        assert!(fields.contains(w), "{w} in {fields}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_slack_delivery_never_names_its_secret_url() {
    let tmp = tempfile::tempdir().unwrap();
    // A port nothing listens on: the connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url_file = tmp.path().join("slack.url");
    std::fs::write(
        &url_file,
        format!("http://127.0.0.1:{port}/services/T0/B0/SeCrEtToKeN\n"),
    )
    .unwrap();
    let cfg = SlackConfig {
        url_file: Some(url_file),
        url_env: None,
        timeout_secs: 2,
    };
    let sink = SlackSink::new("slack", &cfg).unwrap();
    let rec = crate::Record {
        seq: 1,
        event: Event::New,
        queued_at: 0,
        finding: finding(1, Severity::High),
    };
    let err = sink.send(&[rec]).await.unwrap_err().to_string();
    assert!(err.contains("could not connect"), "{err}");
    assert!(
        !err.contains("SeCrEtToKeN") && !err.contains("/services/"),
        "{err}"
    );
}
