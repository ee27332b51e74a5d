//! Connections: the accept loop with its cap, one HTTP/1.1 connection per socket (hyper, with
//! its header-read timeout and [`SendTimeout`] around the socket), and the drain at shutdown.
//!
//! This replaces `axum::serve`, which has neither a header-read timeout nor a cap: a client
//! that sent its headers a byte at a time, or nothing at all, held a connection for as long as
//! it liked, and enough of them held every file descriptor.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::stall::{ClientStalled, SendTimeout};
use crate::{AppState, Drain};

/// What every connection task shares.
struct Shared {
    state: AppState,
    http: http1::Builder,
    router: TowerToHyperService<Router>,
    /// Shutdown began: finish the request in flight, then close.
    stopping: CancellationToken,
    /// The drain timeout passed: close now.
    cut: CancellationToken,
}

/// Serves `listener` until `shutdown` completes, then stops accepting (the listening socket
/// is closed at once), lets in-flight requests finish, and returns after at most the
/// configured drain timeout; connections still open then are closed.
///
/// Each connection gets the configured header-read timeout (which also closes idle keep-alive
/// connections) and request timeout; at `max_connections` open connections no more are
/// accepted until one closes.
pub async fn serve<F>(listener: TcpListener, state: AppState, shutdown: F) -> Drain
where
    F: Future<Output = ()> + Send + 'static,
{
    let limits = state.0.limits;
    let drain = state.drain_timeout();
    let mut http = http1::Builder::new();
    // hyper runs the header-read timeout only with a timer; without one (as in axum::serve)
    // it has no clock at all.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let shared = Arc::new(Shared {
        router: TowerToHyperService::new(crate::app(state.clone())),
        state,
        http,
        stopping: CancellationToken::new(),
        cut: CancellationToken::new(),
    });
    let slots = limits.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    // Every connection task holds a receiver; `closed()` says they have all ended.
    let (open_tx, open_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        // At the cap, stop accepting: connections queue in the kernel's backlog (and past it
        // the client's SYNs are retried) while those in flight go on untouched.
        let permit = match &slots {
            None => None,
            Some(slots) => tokio::select! {
                p = slots.clone().acquire_owned() => p.ok(),
                () = &mut shutdown => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors or memory: wait for some to be freed rather
                    // than spin (as hyper 0.14's server did).
                    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        tokio::spawn(connection(
            tcp,
            peer,
            shared.clone(),
            permit,
            open_rx.clone(),
        ));
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    shared.stopping.cancel();
    drop(open_rx);
    tokio::select! {
        biased;
        () = open_tx.closed() => Drain::Complete,
        () = tokio::time::sleep(drain) => {
            shared.cut.cancel();
            Drain::TimedOut
        }
    }
}

/// Errors of one connection that came and went before it was accepted.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Serves one connection until the client or hyper closes it, the request timeout finds it
/// stalled, or the drain timeout passes. `_slot` and `_open` are released when it ends.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _slot: Option<OwnedSemaphorePermit>,
    _open: watch::Receiver<()>,
) {
    let metrics = &shared.state.0.metrics;
    metrics.connection_opened();
    // Responses are written whole or in large chunks; Nagle would only delay the last packet.
    let _ = tcp.set_nodelay(true);
    let io = TokioIo::new(SendTimeout::new(tcp, shared.state.0.limits.request_timeout));
    let router = shared.router.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        // The client address, for rate limits and access logs, as axum's ConnectInfo.
        req.extensions_mut().insert(ConnectInfo(peer));
        router.call(req)
    });
    let mut conn = pin!(shared.http.serve_connection(io, service));
    let mut stopping = pin!(shared.stopping.cancelled());
    let mut cut = pin!(shared.cut.cancelled());
    let mut draining = false;
    let ended = loop {
        tokio::select! {
            r = conn.as_mut() => break Some(r),
            () = &mut cut => break None,
            () = &mut stopping, if !draining => {
                // Idle keep-alive connections close now, busy ones after their response.
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    };
    match ended {
        Some(Err(e)) if e.is_timeout() => {
            metrics.connection_dropped("header_timeout");
            tracing::debug!(client = %peer, "closed: no complete request head in time");
        }
        Some(Err(e)) if stalled(&e) => {
            metrics.connection_dropped("client_stalled");
            tracing::info!(client = %peer, error = %e, "closed: the client stopped reading");
        }
        Some(Err(e)) => tracing::debug!(client = %peer, error = %e, "connection failed"),
        Some(Ok(())) => {}
        None => metrics.connection_dropped("drain_timeout"),
    }
    metrics.connection_closed();
}

/// Whether hyper's error is [`SendTimeout`]'s.
fn stalled(e: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<ClientStalled>())
            {
                return true;
            }
        }
        source = s.source();
    }
    false
}
