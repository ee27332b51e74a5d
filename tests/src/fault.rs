//! A misbehaving HTTP/1.1 server for the updater's security tests: it serves a TUF repository
//! directory like a mirror would, until a test tells it to lie, stall, flood or die.
//!
//! Why not nginx or vigil-server: the attacks in the TUF threat model (endless data, slow
//! retrieval, freeze, mix-and-match, a mirror that vanishes mid-download) need a server that
//! breaks the protocol on purpose, per path, and reports exactly what the client asked for.
//! It also takes POSTs on the paths a test names ([`FaultServer::accept_posts`]) and keeps
//! their bodies: the fleet check-ins a client sends to the mirror it updated from.
//!
//! Plain std threads and sockets, one thread per connection; files are read whole per request
//! (repositories in tests are small). URL paths are the file paths relative to `root`.
//!
//! ```no_run
//! use vigil_tests::fault::{Fault, FaultServer, Match};
//! let server = FaultServer::start("/tmp/repo");
//! server.set_fault("timestamp.json", Fault::Status { code: 503, retry_after: Some(1) });
//! server.set_fault(Match::suffix(".vdb"), Fault::Truncate { at: 100 });
//! // … run the updater against server.url() …
//! let log = server.requests();
//! # let _ = log;
//! ```

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What to do instead of serving a file normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and a short text body), with `Retry-After: secs` if given.
    Status { code: u16, retry_after: Option<u64> },
    /// Serve the file with the byte at `offset` (clamped to the last byte) XORed with 0xff.
    /// An empty file is served unchanged.
    FlipByte { offset: usize },
    /// Serve these bytes in place of the file (which need not exist), e.g. older metadata.
    Replace(Vec<u8>),
    /// 200 without Content-Length, then garbage until the client hangs up.
    Endless,
    /// 200 announcing `content_length` bytes, then garbage until the client hangs up or that
    /// many bytes are sent. Tests that a client checks a declared size before reading.
    Huge { content_length: u64 },
    /// Serve the real file at this rate; 0 sends the headers and then nothing.
    Slow { bytes_per_sec: u64 },
    /// Announce the full Content-Length, send only the first `at` bytes, close the connection.
    Truncate { at: usize },
    /// Like `Truncate`, but the `at` bytes sent are zeros: a mirror that leaves a poisoned
    /// prefix in a client's partial file for another mirror to resume.
    ZerosThenClose { at: usize },
    /// 200 with Content-Length 0.
    Empty,
    /// Read the request and never answer; the connection stays open until the client leaves.
    Hang,
    /// Send the headers and `bytes` bytes of the body, then stop the whole server as if its
    /// process were killed: every connection and the listener close, later connects are refused.
    DieAfter { bytes: usize },
}

/// Which request paths a fault applies to. Paths are compared without the leading `/` and
/// without the query string, after percent-decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    Exact(String),
    Suffix(String),
    Contains(String),
    Any,
}

impl Match {
    pub fn exact(path: &str) -> Match {
        Match::Exact(path.trim_start_matches('/').to_string())
    }

    pub fn suffix(s: &str) -> Match {
        Match::Suffix(s.to_string())
    }

    pub fn contains(s: &str) -> Match {
        Match::Contains(s.to_string())
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Match::Exact(p) => path == p,
            Match::Suffix(s) => path.ends_with(s.as_str()),
            Match::Contains(s) => path.contains(s.as_str()),
            Match::Any => true,
        }
    }
}

/// A plain string matches paths containing it (`".vdb"`, `"timestamp.json"`).
impl From<&str> for Match {
    fn from(s: &str) -> Match {
        Match::contains(s)
    }
}

/// One request as the server saw it, and what it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path as sent (query included), e.g. `/metadata/timestamp.json`.
    pub path: String,
    pub range: Option<String>,
    pub if_none_match: Option<String>,
    /// The status sent; 0 when no response was sent ([`Fault::Hang`]).
    pub status: u16,
    /// Body bytes written so far (streaming faults update it while they run).
    pub body_bytes: u64,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The request's body (the first [`MAX_KEPT_BODY`] bytes): what a client POSTed.
    pub request_body: Vec<u8>,
}

/// Request bodies beyond this are read and dropped, not kept.
pub const MAX_KEPT_BODY: usize = 1 << 20;

struct FaultRule {
    matcher: Match,
    fault: Fault,
    /// Requests left before the rule expires; `None` for ever.
    remaining: Option<usize>,
}

struct Inner {
    root: PathBuf,
    /// `None` once stopped: dropping the listener is what makes later connects fail.
    listener: Mutex<Option<TcpListener>>,
    stopped: AtomicBool,
    faults: Mutex<Vec<FaultRule>>,
    /// Paths that take POSTs (answered 204, bodies kept in the log) unless a fault says else.
    posts: Mutex<Vec<Match>>,
    log: Mutex<Vec<Request>>,
    /// Clones of open connections, so stopping can close them under their threads.
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
}

/// The server; it stops when dropped.
pub struct FaultServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    accept_thread: Mutex<Option<JoinHandle<()>>>,
}

/// A poisoned lock only means another test thread panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FaultServer {
    /// Serves `root` on 127.0.0.1 on a free port. Panics if it cannot bind (a test setup error).
    pub fn start(root: impl Into<PathBuf>) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        // Polled, so that stopping can drop the listener at once from any thread.
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let inner = Arc::new(Inner {
            root: root.into(),
            listener: Mutex::new(Some(listener)),
            stopped: AtomicBool::new(false),
            faults: Mutex::new(Vec::new()),
            posts: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
        });
        let accepting = Arc::clone(&inner);
        let accept_thread = std::thread::Builder::new()
            .name(format!("fault-server-{}", addr.port()))
            .spawn(move || accept_loop(accepting))
            .expect("spawn accept thread");
        FaultServer {
            inner,
            addr,
            accept_thread: Mutex::new(Some(accept_thread)),
        }
    }

    /// `http://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Applies `fault` to matching paths from the next request on. A rule for the same
    /// matcher is replaced; among different matchers the one set last wins.
    pub fn set_fault(&self, matcher: impl Into<Match>, fault: Fault) {
        self.add_rule(matcher.into(), fault, None);
    }

    /// Like [`set_fault`](Self::set_fault), for the next `count` matching requests only
    /// (e.g. two 503s, then success).
    pub fn set_fault_for(&self, matcher: impl Into<Match>, fault: Fault, count: usize) {
        self.add_rule(matcher.into(), fault, Some(count));
    }

    fn add_rule(&self, matcher: Match, fault: Fault, remaining: Option<usize>) {
        let mut faults = lock(&self.inner.faults);
        faults.retain(|r| r.matcher != matcher);
        faults.push(FaultRule {
            matcher,
            fault,
            remaining,
        });
    }

    /// Accepts POSTs to matching paths, like a check-in endpoint: 204, with the body kept in
    /// [`requests`](Self::requests). `Status` and `Hang` faults on the same paths apply to them
    /// (a 404 from a static mirror, a receiver that never answers). Other paths answer 405.
    pub fn accept_posts(&self, matcher: impl Into<Match>) {
        lock(&self.inner.posts).push(matcher.into());
    }

    /// The bodies POSTed to paths containing `path`, in arrival order.
    pub fn posted(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.contains(path))
            .collect()
    }

    /// Removes the rule set for exactly this matcher.
    pub fn clear_fault(&self, matcher: impl Into<Match>) {
        let matcher = matcher.into();
        lock(&self.inner.faults).retain(|r| r.matcher != matcher);
    }

    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.inner.log).clone()
    }

    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Closes the listener and every connection. Idempotent.
    pub fn stop(&self) {
        self.inner.die();
        if let Some(t) = lock(&self.accept_thread).take() {
            let _ = t.join();
        }
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Inner {
    /// Stops serving: listener first (so a client that sees its connection close can
    /// already not reconnect), then every open connection.
    fn die(&self) {
        drop(lock(&self.listener).take());
        self.stopped.store(true, Ordering::SeqCst);
        for conn in lock(&self.conns).values() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// The fault for `path`, counting down rules with a limit.
    fn fault_for(&self, path: &str) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let i = faults.iter().rposition(|r| r.matcher.matches(path))?;
        let rule = faults.get_mut(i)?;
        let fault = rule.fault.clone();
        if let Some(n) = rule.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                faults.remove(i);
            }
        }
        Some(fault)
    }

    fn log(&self, entry: Request) -> usize {
        let mut log = lock(&self.log);
        log.push(entry);
        log.len() - 1
    }

    fn add_body_bytes(&self, entry: usize, n: usize) {
        if let Some(r) = lock(&self.log).get_mut(entry) {
            r.body_bytes += n as u64;
        }
    }
}

fn accept_loop(inner: Arc<Inner>) {
    loop {
        let accepted = {
            let guard = lock(&inner.listener);
            let Some(listener) = guard.as_ref() else {
                return;
            };
            match listener.accept() {
                // Registered under the listener lock, so `die` cannot miss it.
                Ok((stream, _)) => {
                    let id = inner.next_conn.fetch_add(1, Ordering::SeqCst);
                    match stream.try_clone() {
                        Ok(clone) => {
                            lock(&inner.conns).insert(id, clone);
                            Some((id, stream))
                        }
                        Err(_) => None,
                    }
                }
                Err(_) => None,
            }
        };
        match accepted {
            Some((id, stream)) => {
                let conn_inner = Arc::clone(&inner);
                let spawned = std::thread::Builder::new()
                    .name(format!("fault-conn-{id}"))
                    .spawn(move || {
                        let _ = serve_connection(&conn_inner, stream);
                        lock(&conn_inner.conns).remove(&id);
                    });
                if spawned.is_err() {
                    lock(&inner.conns).remove(&id);
                }
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// A parsed request head.
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    keep_alive: bool,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

const MAX_HEAD: usize = 64 * 1024;

/// Reads one request head; `None` when the client closed the connection between requests.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = reader
            .by_ref()
            .take((MAX_HEAD - total) as u64)
            .read_line(&mut line)?;
        if n == 0 {
            return if lines.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        total += n;
        if total >= MAX_HEAD {
            return Err(io::Error::other("request head too large"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if lines.is_empty() {
                continue; // stray CRLF between requests
            }
            break;
        }
        lines.push(line.to_string());
    }
    let mut request_line = lines.first().map(|l| l.split(' ')).into_iter().flatten();
    let (Some(method), Some(target), Some(version)) = (
        request_line.next(),
        request_line.next(),
        request_line.next(),
    ) else {
        return Err(io::Error::other("bad request line"));
    };
    let headers: Vec<(String, String)> = lines
        .iter()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut head = Head {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        keep_alive: false,
    };
    let connection = head.header("connection").map(str::to_ascii_lowercase);
    head.keep_alive = match connection.as_deref() {
        Some(c) if c.contains("close") => false,
        Some(c) if c.contains("keep-alive") => true,
        _ => version == "HTTP/1.1",
    };
    Ok(Some(head))
}

fn serve_connection(inner: &Inner, stream: TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    while !inner.stopped() {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        // Kept for POSTs (bounded); GET and HEAD have none, and one sent anyway is logged too.
        let body_len = head
            .header("content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let mut body = Vec::new();
        reader
            .by_ref()
            .take(body_len.min(MAX_KEPT_BODY as u64))
            .read_to_end(&mut body)?;
        io::copy(
            &mut reader
                .by_ref()
                .take(body_len.saturating_sub(MAX_KEPT_BODY as u64)),
            &mut io::sink(),
        )?;
        if !respond(inner, &mut out, &head, body)? {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    Ok(())
}

/// The response to plan before faults bend it.
struct Plan {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// Answers one request; `Ok(false)` when the connection must close afterwards.
fn respond(inner: &Inner, out: &mut TcpStream, head: &Head, body: Vec<u8>) -> io::Result<bool> {
    let is_head = head.method == "HEAD";
    let path = head.target.split('?').next().unwrap_or_default();
    let decoded = percent_decode(path.trim_start_matches('/'));
    let fault = decoded.as_deref().and_then(|p| inner.fault_for(p));
    let entry = inner.log(Request {
        method: head.method.clone(),
        path: head.target.clone(),
        range: head.header("range").map(str::to_string),
        if_none_match: head.header("if-none-match").map(str::to_string),
        status: 0,
        body_bytes: 0,
        fault: fault.clone(),
        authorization: head.header("authorization").map(str::to_string),
        content_type: head.header("content-type").map(str::to_string),
        request_body: body,
    });
    let set_status = |code: u16| {
        if let Some(r) = lock(&inner.log).get_mut(entry) {
            r.status = code;
        }
    };

    let takes_post = decoded
        .as_deref()
        .is_some_and(|p| lock(&inner.posts).iter().any(|m| m.matches(p)));
    if head.method == "POST" && takes_post {
        match &fault {
            Some(Fault::Hang) => {
                hold(inner, out, None);
                return Ok(false);
            }
            Some(Fault::Status { code, retry_after }) => {
                set_status(*code);
                let mut plan = text(*code, &format!("status {code}\n"));
                if let Some(secs) = retry_after {
                    plan.headers.push(("Retry-After", secs.to_string()));
                }
                send_whole(inner, out, entry, &plan, false, head.keep_alive)?;
            }
            _ => {
                set_status(204);
                let plan = Plan {
                    status: 204,
                    headers: Vec::new(),
                    body: Vec::new(),
                };
                send_head(out, &plan, None, head.keep_alive)?;
            }
        }
        return Ok(head.keep_alive);
    }
    if head.method != "GET" && !is_head {
        set_status(405);
        let plan = Plan {
            status: 405,
            headers: vec![("Allow", "GET, HEAD".into())],
            body: b"method not allowed\n".to_vec(),
        };
        send_whole(inner, out, entry, &plan, false, false)?;
        return Ok(false);
    }
    let Some(decoded) = decoded else {
        set_status(400);
        let plan = text(400, "bad path\n");
        send_whole(inner, out, entry, &plan, is_head, false)?;
        return Ok(false);
    };

    // Faults that do not look at the file.
    match &fault {
        Some(Fault::Status { code, retry_after }) => {
            set_status(*code);
            let mut plan = text(*code, &format!("status {code}\n"));
            if let Some(secs) = retry_after {
                plan.headers.push(("Retry-After", secs.to_string()));
            }
            send_whole(inner, out, entry, &plan, is_head, head.keep_alive)?;
            return Ok(head.keep_alive);
        }
        Some(Fault::Empty) => {
            set_status(200);
            let plan = Plan {
                status: 200,
                headers: vec![("Content-Type", content_type(&decoded).into())],
                body: Vec::new(),
            };
            send_whole(inner, out, entry, &plan, is_head, head.keep_alive)?;
            return Ok(head.keep_alive);
        }
        Some(Fault::Hang) => {
            hold(inner, out, None);
            return Ok(false);
        }
        Some(Fault::Endless | Fault::Huge { .. }) => {
            set_status(200);
            let length = match &fault {
                Some(Fault::Huge { content_length }) => Some(*content_length),
                _ => None,
            };
            let mut h =
                String::from("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n");
            if let Some(n) = length {
                h.push_str(&format!("Content-Length: {n}\r\n"));
            }
            h.push_str("Connection: close\r\n\r\n");
            out.write_all(h.as_bytes())?;
            if !is_head {
                stream_garbage(inner, out, entry, length.unwrap_or(u64::MAX));
            }
            return Ok(false);
        }
        _ => {}
    }

    let file = match &fault {
        Some(Fault::Replace(bytes)) => Some(bytes.clone()),
        _ => read_file(&inner.root, &decoded),
    };
    let Some(mut body) = file else {
        set_status(404);
        let plan = text(404, "not found\n");
        send_whole(inner, out, entry, &plan, is_head, head.keep_alive)?;
        return Ok(head.keep_alive);
    };
    if let Some(Fault::FlipByte { offset }) = &fault {
        let last = body.len().saturating_sub(1);
        if let Some(b) = body.get_mut((*offset).min(last)) {
            *b ^= 0xff;
        }
    }

    let etag = format!("\"{:x}-{:016x}\"", body.len(), fnv1a(&body));
    if fault.is_none()
        && head
            .header("if-none-match")
            .is_some_and(|v| etag_matches(v, &etag))
    {
        set_status(304);
        let plan = Plan {
            status: 304,
            headers: vec![("ETag", etag)],
            body: Vec::new(),
        };
        send_head(out, &plan, None, head.keep_alive)?;
        return Ok(head.keep_alive);
    }

    let total = body.len() as u64;
    let mut plan = Plan {
        status: 200,
        headers: vec![
            ("Content-Type", content_type(&decoded).into()),
            ("Accept-Ranges", "bytes".into()),
            ("ETag", etag),
        ],
        body: Vec::new(),
    };
    match head.header("range").and_then(|r| parse_range(r, total)) {
        Some(Ok((start, end))) => {
            plan.status = 206;
            plan.headers
                .push(("Content-Range", format!("bytes {start}-{end}/{total}")));
            body = body
                .get(start as usize..=end as usize)
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
        }
        Some(Err(())) => {
            set_status(416);
            let mut plan = text(416, "range not satisfiable\n");
            plan.headers
                .push(("Content-Range", format!("bytes */{total}")));
            send_whole(inner, out, entry, &plan, is_head, head.keep_alive)?;
            return Ok(head.keep_alive);
        }
        None => {}
    }
    plan.body = body;
    set_status(plan.status);

    match fault {
        Some(Fault::Truncate { at }) => {
            send_head(out, &plan, Some(plan.body.len()), false)?;
            if !is_head {
                let part = plan.body.get(..at.min(plan.body.len())).unwrap_or_default();
                write_counted(inner, out, entry, part)?;
            }
            Ok(false)
        }
        Some(Fault::ZerosThenClose { at }) => {
            send_head(out, &plan, Some(plan.body.len()), false)?;
            if !is_head {
                write_counted(inner, out, entry, &vec![0; at.min(plan.body.len())])?;
            }
            Ok(false)
        }
        Some(Fault::DieAfter { bytes }) => {
            send_head(out, &plan, Some(plan.body.len()), false)?;
            if !is_head {
                let part = plan
                    .body
                    .get(..bytes.min(plan.body.len()))
                    .unwrap_or_default();
                let _ = write_counted(inner, out, entry, part);
                let _ = out.flush();
            }
            inner.die();
            Ok(false)
        }
        Some(Fault::Slow { bytes_per_sec }) => {
            send_head(out, &plan, Some(plan.body.len()), head.keep_alive)?;
            if is_head {
                return Ok(head.keep_alive);
            }
            if bytes_per_sec == 0 {
                hold(inner, out, None);
                return Ok(false);
            }
            drip(inner, out, entry, &plan.body, bytes_per_sec)?;
            Ok(head.keep_alive)
        }
        _ => {
            send_whole(inner, out, entry, &plan, is_head, head.keep_alive)?;
            Ok(head.keep_alive)
        }
    }
}

fn text(status: u16, body: &str) -> Plan {
    Plan {
        status,
        headers: vec![("Content-Type", "text/plain".into())],
        body: body.as_bytes().to_vec(),
    }
}

fn send_head(
    out: &mut TcpStream,
    plan: &Plan,
    content_length: Option<usize>,
    keep_alive: bool,
) -> io::Result<()> {
    let mut h = format!("HTTP/1.1 {} {}\r\n", plan.status, reason(plan.status));
    for (name, value) in &plan.headers {
        h.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(n) = content_length {
        h.push_str(&format!("Content-Length: {n}\r\n"));
    }
    h.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    out.write_all(h.as_bytes())
}

fn send_whole(
    inner: &Inner,
    out: &mut TcpStream,
    entry: usize,
    plan: &Plan,
    is_head: bool,
    keep_alive: bool,
) -> io::Result<()> {
    send_head(out, plan, Some(plan.body.len()), keep_alive)?;
    if !is_head {
        write_counted(inner, out, entry, &plan.body)?;
    }
    Ok(())
}

/// Writes in chunks, adding each to the log entry's byte count as it goes out.
fn write_counted(inner: &Inner, out: &mut TcpStream, entry: usize, bytes: &[u8]) -> io::Result<()> {
    for chunk in bytes.chunks(16 * 1024) {
        out.write_all(chunk)?;
        inner.add_body_bytes(entry, chunk.len());
    }
    Ok(())
}

/// Garbage until the client hangs up, the server stops, or `limit` bytes are sent.
fn stream_garbage(inner: &Inner, out: &mut TcpStream, entry: usize, limit: u64) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let chunk: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            // xorshift64: not compressible, not all zeros.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    let mut sent = 0u64;
    while sent < limit && !inner.stopped() {
        let n = usize::try_from(limit - sent).map_or(chunk.len(), |left| left.min(chunk.len()));
        let Some(part) = chunk.get(..n) else {
            return;
        };
        if out.write_all(part).is_err() {
            return;
        }
        inner.add_body_bytes(entry, n);
        sent += n as u64;
    }
}

/// Sends `body` at about `rate` bytes per second, in at most 20 writes a second.
fn drip(
    inner: &Inner,
    out: &mut TcpStream,
    entry: usize,
    body: &[u8],
    rate: u64,
) -> io::Result<()> {
    let chunk = usize::try_from((rate / 20).max(1)).unwrap_or(usize::MAX);
    let start = Instant::now();
    let mut sent = 0u64;
    for part in body.chunks(chunk) {
        if inner.stopped() {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        out.write_all(part)?;
        inner.add_body_bytes(entry, part.len());
        sent += part.len() as u64;
        let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
        if !hold(inner, out, Some(due)) {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
    }
    Ok(())
}

/// Waits until `until` (or for ever), returning early, with `false`, if the client closes the
/// connection or the server stops.
fn hold(inner: &Inner, stream: &TcpStream, until: Option<Instant>) -> bool {
    let step = Duration::from_millis(20);
    let _ = stream.set_read_timeout(Some(step));
    let mut probe = [0u8; 1];
    let alive = loop {
        if inner.stopped() {
            break false;
        }
        let now = Instant::now();
        if until.is_some_and(|u| now >= u) {
            break true;
        }
        match until {
            // A short wait left: sleep it rather than poll.
            Some(u) if u - now < step => std::thread::sleep(u - now),
            _ => match stream.peek(&mut probe) {
                Ok(0) => break false,
                Ok(_) => std::thread::sleep(step), // pipelined data; the client is there
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break false,
            },
        }
    };
    let _ = stream.set_read_timeout(None);
    alive
}

/// `bytes=N-`, `bytes=N-M` or `bytes=-N` against a body of `total` bytes: `None` to ignore
/// the header (malformed or several ranges), `Err` for 416, else inclusive bounds.
fn parse_range(header: &str, total: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    if first.is_empty() {
        let n = parse(last)?;
        if n == 0 || total == 0 {
            return Some(Err(()));
        }
        return Some(Ok((total.saturating_sub(n), total - 1)));
    }
    let start = parse(first)?;
    let end = if last.is_empty() {
        u64::MAX
    } else {
        parse(last)?
    };
    if end < start {
        return None;
    }
    if start >= total {
        return Some(Err(()));
    }
    Some(Ok((start, end.min(total - 1))))
}

fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// The file under `root` for a decoded relative path; `None` for anything that is not a
/// regular file inside `root` (no `..`, no absolute paths).
fn read_file(root: &Path, rel: &str) -> Option<Vec<u8>> {
    let mut path = root.to_path_buf();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        if part == ".." || part == "." || part.contains('\\') || part.contains('\0') {
            return None;
        }
        path.push(part);
    }
    if !path.is_file() {
        return None;
    }
    std::fs::read(path).ok()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn content_type(path: &str) -> &'static str {
    if path.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Fault",
    }
}
