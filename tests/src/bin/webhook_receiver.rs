//! A webhook receiver for the demo and for trying an `[[outputs]] type = "webhook"` entry by
//! hand: it listens on 127.0.0.1, checks every POST's Standard Webhooks signature
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the shared secret as a real
//! receiver must, answers 204 when it verifies and 401 when it does not, and prints one line
//! per delivery (and appends the verified body to `--log`, one JSON line each).
//!
//! `vigil-webhook-receiver --listen 127.0.0.1:PORT --secret-file FILE [--log FILE]`

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use vigil_findings::webhook;

/// Bodies over this are refused: a finding is a few kilobytes.
const MAX_BODY: usize = 1 << 20;

struct Receiver {
    key: Vec<u8>,
    log: Option<Mutex<std::fs::File>>,
}

fn usage() -> ! {
    eprintln!(
        "usage: vigil-webhook-receiver --listen 127.0.0.1:PORT --secret-file FILE [--log FILE]"
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut listen, mut secret, mut log) = (None, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next(),
            "--secret-file" => secret = args.next().map(PathBuf::from),
            "--log" => log = args.next().map(PathBuf::from),
            _ => usage(),
        }
    }
    let (Some(listen), Some(secret)) = (listen, secret) else {
        usage()
    };
    let addr: SocketAddr = listen.parse().unwrap_or_else(|_| usage());
    let text = std::fs::read_to_string(&secret).unwrap_or_else(|e| {
        eprintln!("{}: {e}", secret.display());
        std::process::exit(2)
    });
    let key = webhook::key(text.trim_end()).unwrap_or_else(|e| {
        eprintln!("{}: {e}", secret.display());
        std::process::exit(2)
    });
    let log = log.map(|p| {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap_or_else(|e| {
                eprintln!("{}: {e}", p.display());
                std::process::exit(2)
            });
        Mutex::new(f)
    });
    let rx = Arc::new(Receiver { key, log });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("runtime: {e}");
            std::process::exit(2)
        });
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| {
                eprintln!("{addr}: {e}");
                std::process::exit(2)
            });
        println!("listening on http://{addr}/");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let rx = rx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(rx.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

async fn handle(
    rx: Arc<Receiver>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let reply = |status: StatusCode, text: &str| {
        let mut r = Response::new(Full::new(Bytes::from(text.to_owned())));
        *r.status_mut() = status;
        Ok(r)
    };
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(id), Some(ts), Some(sigs)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        println!("REJECTED: missing webhook-id, webhook-timestamp or webhook-signature");
        return reply(StatusCode::BAD_REQUEST, "missing webhook headers");
    };
    let Ok(ts) = ts.parse::<i64>() else {
        return reply(StatusCode::BAD_REQUEST, "bad webhook-timestamp");
    };
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
    };
    let now = jiff::Timestamp::now().as_second();
    if let Err(e) = webhook::verify(&rx.key, &id, ts, &sigs, &body, now) {
        println!("REJECTED {id}: {e}");
        return reply(StatusCode::UNAUTHORIZED, "signature does not verify");
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let d = &v["data"];
    let first_sig = sigs.split_whitespace().next().unwrap_or_default();
    println!(
        "verified {id}: {} {} {} {} on {} ({}) signature {first_sig}",
        v["type"].as_str().unwrap_or("?"),
        d["severity"].as_str().unwrap_or("?"),
        d["threat"].as_str().unwrap_or("?"),
        d["file"]["path"].as_str().unwrap_or("?"),
        d["resource"]["hostname"].as_str().unwrap_or("?"),
        d["action"].as_str().unwrap_or("?"),
    );
    let _ = std::io::stdout().flush();
    if let Some(log) = &rx.log {
        let mut f = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(f, "{}", String::from_utf8_lossy(&body));
    }
    reply(StatusCode::NO_CONTENT, "")
}
