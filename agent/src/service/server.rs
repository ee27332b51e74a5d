//! The server side: a thread per connection, a few scan threads per request, std only (the
//! agent runs it on a thread of its own, beside its async updater).
//!
//! Why polling accept: the listener is non-blocking and checked every [`ACCEPT_POLL`], so the
//! agent stops the service by setting one flag from its SIGTERM handler, with no wakeup
//! connection that could fail (socket removed, directory unreadable) and leave it hanging.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::ops::ControlFlow;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use vigil_scan_core::input::Spool;
use vigil_scan_core::service::{
    ErrorReply, FileResult, Pong, Request, ScanDone, Signatures, VersionInfo, DEFAULT_SOCKET,
    MAX_REQUEST_LINE, STREAM_PATH,
};
use vigil_scan_core::{
    Engine, Limits, Pool, PoolError, ScanError, Scanned, SharedEngine, Targets, ENGINE_VERSION,
};

use super::peer::{Peer, Rights};

/// How often an idle accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(100);

/// How long [`serve`] waits, after the stop flag is set, for scans in progress to end.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Streams up to this size are received in memory; longer ones go to a temporary file, so
/// all connections together hold at most `max_connections` times this.
const STREAM_MEMORY: u64 = 8 << 20;

#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Socket path, for [`run`] (which binds it) and for messages.
    pub socket: PathBuf,
    /// Mode of the socket file: who may connect (write permission) and so ask for scans.
    pub socket_mode: u32,
    /// Group of the socket file (with a mode such as `0o660`, the group whose members may
    /// connect); `None` leaves the service's own group.
    pub socket_group: Option<u32>,
    /// Scan threads per request, each with its own reused [`vigil_scan_core::Scanner`].
    pub threads: usize,
    /// Connections served at once; more get `{"error":"busy"}`.
    pub max_connections: usize,
    /// Connections one uid may hold at once, so one user cannot take every slot.
    pub max_connections_per_uid: usize,
    /// Per-file limits; a request may lower them, never raise them.
    pub limits: Limits,
    /// A connection idle this long between requests, or not reading its results, is closed.
    pub io_timeout: Duration,
    /// A request line must arrive whole within this of its first byte, and a stream's bytes
    /// within this plus one second per MiB; a client trickling bytes is cut off then.
    pub request_timeout: Duration,
    /// Where findings of path scans go (the ledger, the outbox): never quarantine, as a local
    /// peer must not be able to make the service move files. None: only the reply.
    pub responder: Option<Arc<crate::responder::ResponderSlot>>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            socket_mode: 0o660,
            socket_group: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_connections: 16,
            max_connections_per_uid: 8,
            limits: Limits::default(),
            io_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            responder: None,
        }
    }
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServiceError {
    // `cause`, not `source`: the message includes it, and a source would print it twice in
    // an error chain.
    #[error("scan service socket {}: {cause}", path.display())]
    Socket { path: PathBuf, cause: io::Error },
    #[error("scan service socket {}: another service is listening on it", path.display())]
    InUse { path: PathBuf },
    #[error("scan service socket {}: a file that is not a socket is in the way; not removing it", path.display())]
    NotSocket { path: PathBuf },
    #[error("scan service: {0}")]
    Listener(io::Error),
}

/// Creates the listening socket at `path` with `mode` (and `group`, when given). A socket
/// file left by a service that died is removed first, but only when it is a socket and nothing
/// answers on it; anything else at `path` is an error. The socket is bound under a temporary
/// name, given its mode and group and renamed into place, so it is never reachable with the
/// umask's looser mode or the wrong group.
pub fn bind(path: &Path, mode: u32, group: Option<u32>) -> Result<UnixListener, ServiceError> {
    let err = |cause| ServiceError::Socket {
        path: path.to_path_buf(),
        cause,
    };
    remove_stale(path)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    remove_stale(&tmp)?;
    let listener = UnixListener::bind(&tmp).map_err(err)?;
    let placed = std::os::unix::fs::lchown(&tmp, None, group)
        .and_then(|()| fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)))
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(listener)
}

fn remove_stale(path: &Path) -> Result<(), ServiceError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(cause) => {
            return Err(ServiceError::Socket {
                path: path.to_path_buf(),
                cause,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ServiceError::NotSocket {
            path: path.to_path_buf(),
        });
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ServiceError::InUse {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            fs::remove_file(path).map_err(|cause| ServiceError::Socket {
                path: path.to_path_buf(),
                cause,
            })
        }
        Err(cause) => Err(ServiceError::Socket {
            path: path.to_path_buf(),
            cause,
        }),
    }
}

/// Binds `cfg.socket` ([`bind`]), serves until `stop` is set ([`serve`]), then removes the
/// socket file, as clamd does.
pub fn run(
    engine: Arc<SharedEngine>,
    cfg: ServiceConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), ServiceError> {
    let listener = bind(&cfg.socket, cfg.socket_mode, cfg.socket_group)?;
    let socket = cfg.socket.clone();
    let result = serve(listener, engine, cfg, stop);
    let _ = fs::remove_file(&socket);
    result
}

struct Shared {
    engine: Arc<SharedEngine>,
    cfg: ServiceConfig,
    stop: Arc<AtomicBool>,
    active: AtomicUsize,
    /// Connections in progress, so a stop can wake threads blocked reading them.
    conns: Mutex<HashMap<u64, UnixStream>>,
    /// Connections in progress per client uid.
    per_uid: Mutex<HashMap<u32, usize>>,
}

/// Ends a connection's bookkeeping however its thread ends (even by a panic).
struct ConnGuard<'a> {
    shared: &'a Shared,
    id: u64,
    uid: u32,
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.shared
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
        let mut per_uid = self
            .shared
            .per_uid
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                per_uid.remove(&self.uid);
            }
        }
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves connections on `listener` until `stop` is set, then stops accepting, ends scans in
/// progress (each gets `{"error":"shutting down"}` after its current files), waits up to
/// a few seconds for them, and returns. Blocking; errors accepting one connection (out of
/// file descriptors) are waited out, not returned.
pub fn serve(
    listener: UnixListener,
    engine: Arc<SharedEngine>,
    cfg: ServiceConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), ServiceError> {
    listener
        .set_nonblocking(true)
        .map_err(ServiceError::Listener)?;
    let shared = Arc::new(Shared {
        engine,
        cfg,
        stop,
        active: AtomicUsize::new(0),
        conns: Mutex::new(HashMap::new()),
        per_uid: Mutex::new(HashMap::new()),
    });
    let next_id = AtomicU64::new(0);
    while !shared.stop.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // WouldBlock: nobody waiting. Anything else (EMFILE, ECONNABORTED) passes too.
            Err(_) => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_write_timeout(Some(shared.cfg.io_timeout));
        if shared.active.load(Ordering::SeqCst) >= shared.cfg.max_connections.max(1) {
            refuse(stream, "busy");
            continue;
        }
        // Who connected, as the kernel recorded it: requests run with this client's rights.
        let Ok(peer) = Peer::of(&stream) else {
            refuse(stream, "cannot identify the client");
            continue;
        };
        {
            let mut per_uid = shared
                .per_uid
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let n = per_uid.entry(peer.uid).or_insert(0);
            if *n >= shared.cfg.max_connections_per_uid.max(1) {
                drop(per_uid);
                refuse(stream, "busy: too many connections from this user");
                continue;
            }
            *n += 1;
        }
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let uid = peer.uid;
        shared.active.fetch_add(1, Ordering::SeqCst);
        let Ok(handle) = stream.try_clone() else {
            drop(ConnGuard {
                shared: &shared,
                id,
                uid,
            });
            continue;
        };
        shared
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, handle);
        let conn_shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("vigil-scan-conn".into())
            .spawn(move || {
                let guard = ConnGuard {
                    shared: &conn_shared,
                    id,
                    uid,
                };
                handle_connection(stream, guard.shared, &Rights::for_peer(&peer));
            });
        if spawned.is_err() {
            // The closure (and the stream) were dropped unrun: undo the bookkeeping.
            drop(ConnGuard {
                shared: &shared,
                id,
                uid,
            });
        }
    }
    // Stopping: wake connections waiting for a request line, let scans finish their files.
    for c in shared
        .conns
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
    {
        let _ = c.shutdown(Shutdown::Read);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for c in shared
        .conns
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
    {
        let _ = c.shutdown(Shutdown::Both);
    }
    Ok(())
}

fn refuse(mut stream: UnixStream, why: &str) {
    if let Ok(mut line) = serde_json::to_vec(&ErrorReply { error: why.into() }) {
        line.push(b'\n');
        let _ = stream.write_all(&line);
    }
}

/// The write side of a connection, shared by a request's scan threads: one line per write.
struct Out(Mutex<UnixStream>);

impl Out {
    fn send<T: Serialize>(&self, msg: &T) -> io::Result<()> {
        let mut line = serde_json::to_vec(msg).map_err(io::Error::other)?;
        line.push(b'\n');
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(&line)
    }

    fn error(&self, why: impl Into<String>) -> io::Result<()> {
        self.send(&ErrorReply { error: why.into() })
    }
}

/// Why a request ended its connection: the client is gone or the byte stream is out of step.
struct Close;

impl From<io::Error> for Close {
    fn from(_: io::Error) -> Self {
        Close
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Line {
    Request(Vec<u8>),
    TooLong,
    /// The line did not arrive whole within its deadline.
    TooSlow,
    End,
}

/// Reads one request line, never more than [`MAX_REQUEST_LINE`] bytes of it. The first byte
/// may take `idle`; from then on the whole line must arrive within `whole`, however the
/// client spaces its bytes (a timeout per read would let one byte a minute hold the slot).
fn read_line(
    reader: &mut BufReader<UnixStream>,
    idle: Duration,
    whole: Duration,
) -> io::Result<Line> {
    let mut buf = Vec::new();
    let mut deadline: Option<Instant> = None;
    loop {
        let wait = match deadline {
            None => idle,
            Some(d) => d.saturating_duration_since(Instant::now()),
        };
        if wait.is_zero() {
            return Ok(Line::TooSlow);
        }
        reader.get_ref().set_read_timeout(Some(wait))?;
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(if deadline.is_some() {
                    Line::TooSlow
                } else {
                    Line::End
                });
            }
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            // End of input: a last line without its newline still counts.
            return Ok(if buf.is_empty() {
                Line::End
            } else {
                Line::Request(buf)
            });
        }
        deadline.get_or_insert_with(|| Instant::now() + whole);
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        let room = (MAX_REQUEST_LINE + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        reader.consume(if done { take + 1 } else { take });
        if buf.len() > MAX_REQUEST_LINE {
            return Ok(Line::TooLong);
        }
        if done {
            return Ok(Line::Request(buf));
        }
    }
}

/// A reader that fails with `TimedOut` once `deadline` has passed, however the bytes trickle.
struct Deadline<'a> {
    inner: &'a mut BufReader<UnixStream>,
    deadline: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the stream did not arrive in time",
            ));
        }
        self.inner.get_ref().set_read_timeout(Some(left))?;
        self.inner.read(buf)
    }
}

fn handle_connection(stream: UnixStream, shared: &Shared, rights: &Rights) {
    let Ok(write) = stream.try_clone() else {
        return;
    };
    let out = Out(Mutex::new(write));
    let mut reader = BufReader::new(stream);
    while !shared.stop.load(Ordering::SeqCst) {
        // A zero timeout would refuse every request, and socket timeouts cannot be zero.
        let line = match read_line(
            &mut reader,
            shared.cfg.io_timeout.max(MIN_TIMEOUT),
            shared.cfg.request_timeout.max(MIN_TIMEOUT),
        ) {
            Ok(Line::Request(l)) => l,
            Ok(Line::TooLong) => {
                let _ = out.error(format!("request line longer than {MAX_REQUEST_LINE} bytes"));
                return;
            }
            Ok(Line::TooSlow) => {
                let _ = out.error(format!(
                    "request line not received within {} s",
                    shared.cfg.request_timeout.as_secs_f64()
                ));
                return;
            }
            Ok(Line::End) | Err(_) => return,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let handled = match Request::parse(&line) {
            Ok(req) => handle_request(req, &mut reader, &out, shared, rights),
            Err(e) => out.error(e.to_string()).map_err(Close::from),
        };
        if handled.is_err() {
            return;
        }
    }
}

fn handle_request(
    req: Request,
    reader: &mut BufReader<UnixStream>,
    out: &Out,
    shared: &Shared,
    rights: &Rights,
) -> Result<(), Close> {
    match req {
        Request::Ping => out.send(&Pong { pong: true })?,
        Request::Version => {
            let engine = shared.engine.current();
            let limits = shared.cfg.limits;
            out.send(&VersionInfo {
                engine_version: ENGINE_VERSION.into(),
                db_version: engine.db_version(),
                db_sha256: hex::encode(engine.db_sha256()),
                signatures: Signatures::of(&engine),
                max_filesize: limits.max_filesize,
                timeout_secs: limits.timeout.map(|t| t.as_secs()),
            })?;
        }
        Request::Scan {
            paths,
            recursive,
            exclude,
            max_filesize,
            timeout_secs,
        } => {
            if let Some(p) = paths.iter().find(|p| !p.is_absolute()) {
                out.error(format!("paths must be absolute: {}", p.display()))?;
                return Ok(());
            }
            let limits = lower(shared.cfg.limits, max_filesize, timeout_secs);
            // One engine for the whole request: every result comes from one database.
            let engine = shared.engine.current();
            let request = PathScan {
                paths: &paths,
                recursive,
                exclude: &exclude,
                limits: &limits,
                rights,
            };
            scan(&engine, &request, out, shared)?;
        }
        Request::Stream {
            len,
            max_filesize,
            timeout_secs,
        } => {
            let limits = lower(shared.cfg.limits, max_filesize, timeout_secs);
            let engine = shared.engine.current();
            // Checked: `len` is the client's number (refused later when over the limit).
            let allowed = shared
                .cfg
                .request_timeout
                .saturating_add(Duration::from_secs(len / STREAM_RATE));
            let now = Instant::now();
            let deadline = now
                .checked_add(allowed)
                .unwrap_or(now + Duration::from_secs(86_400));
            stream(&engine, len, &limits, reader, deadline, out)?;
        }
    }
    Ok(())
}

/// The service's limits, lowered (never raised) by a request's.
fn lower(base: Limits, max_filesize: Option<u64>, timeout_secs: Option<u64>) -> Limits {
    let asked = timeout_secs.filter(|&t| t > 0).map(Duration::from_secs);
    Limits {
        max_filesize: max_filesize.map_or(base.max_filesize, |m| m.min(base.max_filesize)),
        timeout: match (base.timeout, asked) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
        ..base
    }
}

/// A `scan` request, with the rights it runs with.
struct PathScan<'a> {
    paths: &'a [PathBuf],
    recursive: bool,
    exclude: &'a [PathBuf],
    limits: &'a Limits,
    rights: &'a Rights,
}

/// Walks and scans a request's paths through the scan pool. The walk and the scan threads are
/// threads of their own that take the client's rights ([`Rights::enter`]) and end with the
/// request, so the connection's thread keeps the service's.
fn scan(engine: &Engine, req: &PathScan<'_>, out: &Out, shared: &Shared) -> Result<(), Close> {
    let db_version = engine.db_version();
    let totals = Mutex::new(ScanDone::new(engine));
    // Set when the client stops reading: the walk ends and queued files are dropped.
    let gone = AtomicBool::new(false);
    let responder = shared.cfg.responder.as_ref().and_then(|s| s.get());
    // No quarantine on the socket: see `ServiceConfig::responder`.
    let session = responder
        .as_ref()
        .map(|r| r.session(false, req.paths, db_version, ENGINE_VERSION));
    let sink = |s: Scanned| {
        if let (Some(session), Ok(report)) = (&session, &s.outcome) {
            crate::scheduled::respond(session, &s.path, report);
        }
        let r = FileResult::from_scan(s.path.to_string_lossy().into_owned(), db_version, s.outcome);
        totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .count(&r);
        if out.send(&r).is_err() {
            gone.store(true, Ordering::SeqCst);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    };
    let targets = Targets {
        paths: req.paths,
        recursive: req.recursive,
        exclude: req.exclude,
    };
    let scanned = Pool::new(engine, shared.cfg.threads, *req.limits).scan_as(
        &targets,
        &|| req.rights.enter(),
        &|| shared.stop.load(Ordering::SeqCst),
        &sink,
    );
    if let Some(session) = session {
        // Only what was scanned is settled, even when the scan ended early.
        if let Err(e) = session.finish() {
            tracing::error!(error = %e, "findings of an on-demand scan were not recorded");
        }
    }
    if let Err(e) = scanned {
        // The client's own words for a refusal of rights: "cannot scan with uid N's rights".
        let why = match e {
            PoolError::Enter(e) => e.to_string(),
            other => other.to_string(),
        };
        out.error(why)?;
        return Ok(());
    }
    if shared.stop.load(Ordering::SeqCst) {
        let _ = out.error("shutting down");
        return Err(Close);
    }
    if gone.load(Ordering::SeqCst) {
        return Err(Close);
    }
    let done = totals.into_inner().unwrap_or_else(PoisonError::into_inner);
    out.send(&done)?;
    Ok(())
}

/// The shortest idle or request timeout the service applies, whatever it is configured with.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Bytes per second a stream must at least arrive at, beyond `request_timeout`.
const STREAM_RATE: u64 = 1 << 20;

fn stream(
    engine: &Engine,
    len: u64,
    limits: &Limits,
    reader: &mut BufReader<UnixStream>,
    deadline: Instant,
    out: &Out,
) -> Result<(), Close> {
    let done = ScanDone::new(engine);
    let db_version = engine.db_version();
    let reply = |r: FileResult, mut done: ScanDone| -> io::Result<()> {
        done.count(&r);
        out.send(&r)?;
        out.send(&done)
    };
    if len > limits.max_filesize {
        let r = FileResult::from_scan(
            STREAM_PATH.into(),
            db_version,
            Err(ScanError::TooLarge {
                size: len,
                limit: limits.max_filesize,
            }),
        );
        let _ = reply(r, done);
        // The bytes that follow are not read, so the connection cannot go on.
        return Err(Close);
    }
    let mut scanner = engine.scanner();
    let mut body = Deadline {
        inner: reader,
        deadline,
    }
    .take(len);
    let result = if len <= STREAM_MEMORY {
        let mut buf = Vec::new();
        if let Err(e) = body.read_to_end(&mut buf) {
            let _ = out.error(format!("receiving stream: {e}"));
            return Err(Close);
        }
        if (buf.len() as u64) < len {
            let _ = out.error(format!("stream ended after {} of {len} bytes", buf.len()));
            return Err(Close);
        }
        scanner.scan_bytes(&buf, limits)
    } else {
        let spool = Spool::new().and_then(|mut f| {
            let n = io::copy(&mut body, &mut f)?;
            Ok((f, n))
        });
        match spool {
            Ok((f, n)) if n == len => scanner.scan_spool(&f, limits),
            Ok((_, n)) => {
                let _ = out.error(format!("stream ended after {n} of {len} bytes"));
                return Err(Close);
            }
            Err(e) => {
                let _ = out.error(format!("receiving stream: {e}"));
                return Err(Close);
            }
        }
    };
    let r = FileResult::from_scan(STREAM_PATH.into(), db_version, result);
    reply(r, done)?;
    Ok(())
}
