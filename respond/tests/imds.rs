//! The host's identity from IMDSv2, against a small local server that implements the token
//! dance (PUT /latest/api/token gives a token; every GET needs it in
//! `X-aws-ec2-metadata-token`, 401 otherwise): the test's environment, standing in for EC2.
//! And off EC2: a port that accepts and never answers costs at most the timeout.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use vigil_respond::config::FindingsConfig;
use vigil_respond::resource::{lookup, resolve};

const TOKEN: &str = "AQAEAtest-token==";

#[derive(Default)]
struct Seen {
    token_puts: AtomicUsize,
    authorized_gets: AtomicUsize,
    refused_gets: AtomicUsize,
}

/// Serves IMDSv2 on 127.0.0.1; returns its URL.
async fn imds(seen: Arc<Seen>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let (method, path) = (
                        parts.next().unwrap_or("").to_owned(),
                        parts.next().unwrap_or("").to_owned(),
                    );
                    let (mut token, mut len) = (None, 0usize);
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            match k.trim().to_ascii_lowercase().as_str() {
                                "x-aws-ec2-metadata-token" => token = Some(v.trim().to_owned()),
                                "content-length" => len = v.trim().parse().unwrap_or(0),
                                _ => {}
                            }
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).await.unwrap();
                    let (status, body) = match (method.as_str(), path.as_str()) {
                        ("PUT", "/latest/api/token") => {
                            seen.token_puts.fetch_add(1, Ordering::SeqCst);
                            ("200 OK", TOKEN.to_owned())
                        }
                        ("GET", _) if token.as_deref() != Some(TOKEN) => {
                            seen.refused_gets.fetch_add(1, Ordering::SeqCst);
                            ("401 Unauthorized", String::new())
                        }
                        ("GET", p) => {
                            seen.authorized_gets.fetch_add(1, Ordering::SeqCst);
                            match p {
                                "/latest/meta-data/instance-id" => ("200 OK", "i-0123456789abcdef0".into()),
                                "/latest/meta-data/placement/region" => ("200 OK", "eu-west-1".into()),
                                "/latest/dynamic/instance-identity/document" => (
                                    "200 OK",
                                    r#"{"accountId":"123456789012","region":"eu-west-1","instanceId":"i-0123456789abcdef0"}"#.into(),
                                ),
                                _ => ("404 Not Found", String::new()),
                            }
                        }
                        _ => ("405 Method Not Allowed", String::new()),
                    };
                    // As EC2 does, the token's answer says how long it lives.
                    let ttl = if method == "PUT" {
                        "x-aws-ec2-metadata-token-ttl-seconds: 21600\r\n"
                    } else {
                        ""
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\n{ttl}content-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if w.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn imdsv2_gives_the_instance_region_and_account() {
    let seen = Arc::new(Seen::default());
    let url = imds(seen.clone()).await;
    let facts = lookup(&url, Duration::from_secs(2)).await;
    assert_eq!(facts.instance_id.as_deref(), Some("i-0123456789abcdef0"));
    assert_eq!(facts.region.as_deref(), Some("eu-west-1"));
    assert_eq!(facts.account_id.as_deref(), Some("123456789012"));
    assert!(
        seen.token_puts.load(Ordering::SeqCst) >= 1,
        "IMDSv2: a token first"
    );
    assert_eq!(seen.authorized_gets.load(Ordering::SeqCst), 3);
    assert_eq!(
        seen.refused_gets.load(Ordering::SeqCst),
        0,
        "every GET carried the token"
    );
}

#[tokio::test]
async fn a_silent_endpoint_costs_at_most_the_timeout() {
    // Accepts connections (the kernel's backlog does) and never answers.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let started = Instant::now();
    let facts = lookup(&url, Duration::from_millis(300)).await;
    let took = started.elapsed();
    assert_eq!(facts, Default::default());
    assert!(took < Duration::from_secs(3), "gave up after {took:?}");
    drop(l);
}

#[test]
fn configured_values_win_and_imds_is_not_asked_when_nothing_is_missing() {
    // An endpoint that would fail the test if asked: nothing listens there.
    let cfg = FindingsConfig {
        hostname: Some("web-1".into()),
        instance_id: Some("i-configured".into()),
        region: Some("us-east-2".into()),
        account_id: Some("210987654321".into()),
        imds: true,
        imds_endpoint: "http://127.0.0.1:9".into(),
        imds_timeout: Duration::from_secs(30),
        outbox_dir: "/nonexistent".into(),
        outbox_max_records: None,
        outbox_max_bytes: None,
        ledger: "/nonexistent/findings.json".into(),
    };
    let started = Instant::now();
    let r = resolve(&cfg);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.hostname, "web-1");
    assert_eq!(r.instance_id.as_deref(), Some("i-configured"));
    assert_eq!(r.region.as_deref(), Some("us-east-2"));
    assert_eq!(r.account_id.as_deref(), Some("210987654321"));
}
