//! The clamd listener: accepts on a Unix socket and/or a TCP address, a thread per connection
//! (capped), and answers each command as clamd does, from the agent's current engine.
//!
//! Polling accept for the same reason as the scan service: the agent stops it by setting one
//! flag, with no wakeup connection that could fail. It waits in poll(2) on both listeners, so
//! a connection is accepted at once rather than at the next tick (clamd clients open one
//! connection per file).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::ops::ControlFlow;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use thiserror::Error;
use vigil_scan_core::input::Spool;
use vigil_scan_core::{
    Engine, Limits, Pool, PoolError, ScanError, ScanReport, Scanned, SharedEngine, Targets,
    Unscannable, ENGINE_VERSION,
};

use super::conn::{Conn, Frame, Sock};
use super::protocol::{
    allowed_in_session, parse_command, Command, Form, ScanMode, MAX_COMMAND, SUPPORTED,
};
use crate::responder::ResponderSlot;
use crate::service::peer::{Peer, Rights};
use crate::service::ServiceError;

/// How often an idle accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// How long [`serve`] waits, after the stop flag is set, for commands in progress to end.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Streams up to this size are received in memory, longer ones in a temporary file.
const STREAM_MEMORY: u64 = 8 << 20;

/// Bytes per second a stream must at least arrive at, beyond the idle timeout.
const STREAM_RATE: u64 = 1 << 20;

/// clamd's StreamMaxLength default.
pub const DEFAULT_STREAM_MAX_LENGTH: u64 = 25 << 20;

#[derive(Clone, Debug)]
pub struct ClamdConfig {
    /// Unix socket path (bound with `socket_mode` and `socket_group`, as the scan service's).
    pub unix_socket: Option<PathBuf>,
    pub socket_mode: u32,
    pub socket_group: Option<u32>,
    /// TCP address; the agent's config refuses non-loopback ones unless told otherwise.
    pub tcp: Option<SocketAddr>,
    /// Allow SCAN, CONTSCAN, MULTISCAN and ALLMATCHSCAN over TCP, with the agent's own rights
    /// (TCP carries no peer credentials).
    pub tcp_path_scans: bool,
    /// INSTREAM bytes accepted per stream (clamd's StreamMaxLength).
    pub stream_max_length: u64,
    /// Connections served at once; more are told so and closed.
    pub max_connections: usize,
    /// A connection that sends no command for this long is closed; a command, once started,
    /// must arrive whole within it too.
    pub idle_timeout: Duration,
    /// Scan threads of a CONTSCAN or MULTISCAN (SCAN and ALLMATCHSCAN stop at the first
    /// infected file, so they scan in order on one).
    pub threads: usize,
    pub limits: Limits,
    /// Where findings of path scans go (never quarantine: a peer must not be able to make the
    /// agent move files). Streams are answered only.
    pub responder: Option<Arc<ResponderSlot>>,
}

impl Default for ClamdConfig {
    fn default() -> Self {
        Self {
            unix_socket: None,
            socket_mode: 0o660,
            socket_group: None,
            tcp: None,
            tcp_path_scans: false,
            stream_max_length: DEFAULT_STREAM_MAX_LENGTH,
            max_connections: 16,
            idle_timeout: Duration::from_secs(30),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            limits: Limits::default(),
            responder: None,
        }
    }
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClamdError {
    #[error("clamd listener: {0}")]
    Socket(#[from] ServiceError),
    #[error("clamd listener on {addr}: {cause}")]
    Tcp { addr: SocketAddr, cause: io::Error },
    #[error("clamd listener: neither a Unix socket nor a TCP address is configured")]
    NoListener,
}

/// The bound sockets.
#[derive(Debug, Default)]
pub struct Listeners {
    pub unix: Option<UnixListener>,
    pub tcp: Option<TcpListener>,
}

/// Binds the configured sockets (the Unix one as the scan service binds its own: stale
/// sockets removed, mode and group set before it is reachable).
pub fn bind(cfg: &ClamdConfig) -> Result<Listeners, ClamdError> {
    if cfg.unix_socket.is_none() && cfg.tcp.is_none() {
        return Err(ClamdError::NoListener);
    }
    let unix = match &cfg.unix_socket {
        Some(p) => Some(crate::service::bind(p, cfg.socket_mode, cfg.socket_group)?),
        None => None,
    };
    let tcp = match cfg.tcp {
        Some(addr) => {
            Some(TcpListener::bind(addr).map_err(|cause| ClamdError::Tcp { addr, cause })?)
        }
        None => None,
    };
    Ok(Listeners { unix, tcp })
}

/// Binds ([`bind`]), serves until `stop` is set ([`serve`]), then removes the Unix socket.
pub fn run(
    engine: Arc<SharedEngine>,
    cfg: ClamdConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), ClamdError> {
    let listeners = bind(&cfg)?;
    let socket = cfg.unix_socket.clone();
    let result = serve(listeners, engine, cfg, stop);
    if let Some(s) = socket {
        let _ = std::fs::remove_file(s);
    }
    result
}

struct Shared {
    engine: Arc<SharedEngine>,
    cfg: ClamdConfig,
    stop: Arc<AtomicBool>,
    active: AtomicUsize,
    conns: Mutex<HashMap<u64, Sock>>,
}

/// Ends a connection's bookkeeping however its thread ends.
struct ConnGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        // The slot first: the client sees the end of the connection when the last handle
        // (the one kept here) closes, and may connect again at once.
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
        self.shared
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// Who is on the other end, and so with what rights its path commands run.
#[derive(Clone, Debug)]
enum Access {
    /// A Unix peer: its own rights ([`Rights::for_peer`]).
    Unix(Rights),
    /// A TCP peer: the agent's rights, if path scans are allowed on TCP at all.
    Tcp,
}

/// Serves `listeners` until `stop` is set, then wakes connections waiting for a command and
/// gives commands in progress a few seconds to finish.
pub fn serve(
    listeners: Listeners,
    engine: Arc<SharedEngine>,
    cfg: ClamdConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), ClamdError> {
    let nonblocking =
        |r: io::Result<()>| r.map_err(|e| ClamdError::Socket(ServiceError::Listener(e)));
    if let Some(l) = &listeners.unix {
        nonblocking(l.set_nonblocking(true))?;
    }
    if let Some(l) = &listeners.tcp {
        nonblocking(l.set_nonblocking(true))?;
    }
    let shared = Arc::new(Shared {
        engine,
        cfg,
        stop,
        active: AtomicUsize::new(0),
        conns: Mutex::new(HashMap::new()),
    });
    let next_id = AtomicU64::new(0);
    let mut fds = Vec::new();
    if let Some(l) = &listeners.unix {
        fds.push(l.as_raw_fd());
    }
    if let Some(l) = &listeners.tcp {
        fds.push(l.as_raw_fd());
    }
    while !shared.stop.load(Ordering::SeqCst) {
        wait_readable(&fds, ACCEPT_POLL);
        if let Some(l) = &listeners.unix {
            match l.accept() {
                Ok((s, _)) => {
                    let access = match Peer::of(&s) {
                        Ok(p) => Access::Unix(Rights::for_peer(&p)),
                        // No credentials, no path scans: the peer gets its own (none).
                        Err(_) => continue,
                    };
                    start(&shared, Sock::Unix(s), access, &next_id);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => tracing::warn!(error = %e, "clamd listener: accept on the Unix socket"),
            }
        }
        if let Some(l) = &listeners.tcp {
            match l.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    start(&shared, Sock::Tcp(s), Access::Tcp, &next_id);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => tracing::warn!(error = %e, "clamd listener: accept on TCP"),
            }
        }
    }
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

/// Waits until one of `fds` (listening sockets this function does not own) has a connection
/// to accept, or `timeout` passes. std has no poll(2); hence this module's one `unsafe` block.
#[allow(unsafe_code)]
fn wait_readable(fds: &[RawFd], timeout: Duration) {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `polled` is a live array of `polled.len()` pollfd structs, of descriptors the
    // caller keeps open for the call; poll(2) only writes their `revents`. Its result is not
    // needed: the caller tries a non-blocking accept on each listener either way.
    unsafe {
        libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, ms);
    }
}

/// Starts a connection's thread, or refuses it when every slot is taken.
fn start(shared: &Arc<Shared>, sock: Sock, access: Access, next_id: &AtomicU64) {
    // Accepted sockets may inherit non-blocking mode from the listener on some systems.
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_write_timeout(Some(shared.cfg.idle_timeout.max(MIN_TIMEOUT)));
    if shared.active.load(Ordering::SeqCst) >= shared.cfg.max_connections {
        let mut sock = sock;
        let _ = sock.write_all(b"Too many connections. ERROR\n");
        // Read what the client already sent (briefly): closing with unread bytes would reset
        // the connection and lose the reply.
        let _ = sock.shutdown(Shutdown::Write);
        let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
        let _ = std::io::Read::read(&mut sock, &mut [0u8; 8192]);
        return;
    }
    let id = next_id.fetch_add(1, Ordering::SeqCst);
    let Ok(handle) = sock.try_clone() else { return };
    shared.active.fetch_add(1, Ordering::SeqCst);
    shared
        .conns
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, handle);
    let conn_shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("vigil-clamd-conn".into())
        .spawn(move || {
            let guard = ConnGuard {
                shared: &conn_shared,
                id,
            };
            handle_connection(sock, guard.shared, &access);
        });
    if spawned.is_err() {
        drop(ConnGuard { shared, id });
    }
}

/// The shortest idle timeout applied, whatever is configured (socket timeouts cannot be 0).
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Why a command ended its connection: clamd closes after every command outside a session,
/// and after any error inside one.
struct Close;

impl From<io::Error> for Close {
    fn from(_: io::Error) -> Self {
        Close
    }
}

/// The write side: one reply line per write, `<id>: ` first inside an IDSESSION, ended as
/// the command was.
struct Out {
    sock: Mutex<Sock>,
}

impl Out {
    fn line(&self, id: Option<u64>, form: Form, text: &str) -> io::Result<()> {
        let mut b = Vec::with_capacity(text.len() + 16);
        if let Some(id) = id {
            b.extend_from_slice(format!("{id}: ").as_bytes());
        }
        b.extend_from_slice(text.as_bytes());
        b.push(form.terminator());
        self.sock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(&b)
    }
}

fn handle_connection(sock: Sock, shared: &Shared, access: &Access) {
    let Ok(write) = sock.try_clone() else { return };
    let out = Out {
        sock: Mutex::new(write),
    };
    let mut conn = Conn::new(sock);
    let idle = shared.cfg.idle_timeout.max(MIN_TIMEOUT);
    // The request number inside an IDSESSION; None outside one.
    let mut session: Option<u64> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        let frame = match conn.read_frame(idle, idle) {
            Ok(Frame::Command(f)) => f,
            Ok(Frame::TooLong) => {
                let _ = out.line(
                    session,
                    Form::Newline,
                    &format!("Command longer than {MAX_COMMAND} bytes. ERROR"),
                );
                return;
            }
            Ok(Frame::End | Frame::TooSlow) | Err(_) => return,
        };
        let form = frame.first().map_or(Form::Legacy, |&b| Form::of(b));
        let id = session.map(|n| n + 1);
        if let Some(n) = session.as_mut() {
            *n += 1;
        }
        let req = match parse_command(&frame) {
            Ok(r) => r,
            Err(_) => {
                let text = if id.is_some() {
                    "Command invalid inside IDSESSION. ERROR"
                } else {
                    "UNKNOWN COMMAND"
                };
                let _ = out.line(id, form, text);
                return;
            }
        };
        if id.is_some() {
            if req.form == Form::Legacy {
                let _ = out.line(
                    id,
                    Form::Newline,
                    "Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR",
                );
                return;
            }
            if !allowed_in_session(&req.command) {
                let _ = out.line(id, req.form, "Command invalid inside IDSESSION. ERROR");
                return;
            }
        }
        let done = match req.command {
            Command::IdSession => {
                session = Some(0);
                Ok(())
            }
            Command::End => {
                if id.is_none() {
                    let _ = out.line(None, req.form, "UNKNOWN COMMAND");
                }
                return;
            }
            cmd => execute(cmd, id, req.form, &mut conn, &out, shared, access),
        };
        if done.is_err() || session.is_none() {
            return;
        }
    }
}

fn execute(
    cmd: Command,
    id: Option<u64>,
    form: Form,
    conn: &mut Conn,
    out: &Out,
    shared: &Shared,
    access: &Access,
) -> Result<(), Close> {
    let reply = |text: &str| out.line(id, form, text);
    match cmd {
        Command::Ping => reply("PONG")?,
        Command::Version => reply(&version(&shared.engine.current()))?,
        Command::VersionCommands => reply(&format!(
            "{}| COMMANDS: {SUPPORTED}",
            version(&shared.engine.current())
        ))?,
        // The agent loads new databases itself, as they are installed; nothing to re-read.
        Command::Reload => reply("RELOADING")?,
        // The agent's lifecycle is systemd's, not its clients' (clamd's answer when
        // EnableShutdownCommand is off).
        Command::Shutdown => reply("COMMAND UNAVAILABLE")?,
        Command::Stats => reply(&stats(shared))?,
        Command::InStream => return instream(id, form, conn, out, shared),
        Command::Fildes => return fildes(id, form, conn, out, shared),
        Command::Scan { mode, path } => path_scan(mode, &path, id, form, out, shared, access)?,
        // Handled by the connection loop.
        Command::IdSession | Command::End => {}
    }
    Ok(())
}

/// `ClamAV vigil-<version>/<database version>/<build time>`: clamd's shape (`ClamAV
/// <version>/<db version>/<date>`, the date as ctime writes it, in UTC here), with a version
/// that says what answers. Clients that show it (clamdscan -V, pyclamd) or split it on `/`
/// read it as they read clamd's.
pub fn version(engine: &Engine) -> String {
    let when = i64::try_from(engine.db_build_time())
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.strftime("%a %b %e %H:%M:%S %Y").to_string())
        .unwrap_or_else(|| "unknown".into());
    format!(
        "ClamAV vigil-{ENGINE_VERSION}/{}/{when}",
        engine.db_version()
    )
}

/// clamd's STATS layout, with what the agent knows (it keeps no scan queue: each connection
/// has its own thread).
fn stats(shared: &Shared) -> String {
    let active = shared.active.load(Ordering::SeqCst);
    format!(
        "POOLS: 1\n\nSTATE: VALID PRIMARY\nTHREADS: live {active}  idle 0 max {} idle-timeout {}\n\
         QUEUE: 0 items\n\nMEMSTATS: heap N/A mmap N/A used N/A free N/A releasable N/A pools 1 \
         pools_used N/A pools_total N/A\nEND",
        shared.cfg.max_connections,
        shared.cfg.idle_timeout.as_secs()
    )
}

/// The words of an I/O failure as strerror gives them (what clamd prints), without Rust's
/// ` (os error N)`.
fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The error line of a file clamd could not scan.
fn error_text(e: &ScanError) -> String {
    match e {
        ScanError::Io(io) if io.kind() == io::ErrorKind::PermissionDenied => {
            "Access denied. ERROR".into()
        }
        ScanError::Io(io) => format!("File path check failure: {}. ERROR", strerror(io)),
        other => format!("{other} ERROR"),
    }
}

/// The verdict of one scanned object, as clamd words it after `<name>: `: `OK`, `<sig> FOUND`
/// (the first signature; every one with `all`), or an error. A file over the size limit is
/// OK, as in clamd, unless the limits ask for the heuristic alert.
fn verdicts(outcome: &Result<ScanReport, ScanError>, limits: &Limits, all: bool) -> Vec<String> {
    match outcome {
        Ok(r) if r.findings.is_empty() => vec!["OK".into()],
        Ok(r) => {
            let take = if all { r.findings.len() } else { 1 };
            r.findings
                .iter()
                .take(take)
                .map(|f| format!("{} FOUND", f.signature))
                .collect()
        }
        Err(ScanError::TooLarge { .. }) if limits.alert_exceeds_max => {
            vec![format!("{} FOUND", Unscannable::MaxFileSize.heuristic())]
        }
        Err(ScanError::TooLarge { .. }) => vec!["OK".into()],
        Err(e) => vec![error_text(e)],
    }
}

/// INSTREAM: chunks of a 4-byte big-endian length and that many bytes, up to a zero length;
/// more than `stream_max_length` in all is refused (and the connection closed) as clamd does.
fn instream(
    id: Option<u64>,
    form: Form,
    conn: &mut Conn,
    out: &Out,
    shared: &Shared,
) -> Result<(), Close> {
    let max = shared.cfg.stream_max_length;
    // The whole stream has a deadline, so trickling bytes cannot hold the connection.
    let allowed = shared
        .cfg
        .idle_timeout
        .max(MIN_TIMEOUT)
        .saturating_add(Duration::from_secs(max / STREAM_RATE));
    let deadline = Instant::now() + allowed;
    let mut memory: Vec<u8> = Vec::new();
    let mut spool: Option<Spool> = None;
    let mut total: u64 = 0;
    loop {
        let mut len = [0u8; 4];
        conn.read_exact(&mut len, deadline)?;
        let n = u64::from(u32::from_be_bytes(len));
        if n == 0 {
            break;
        }
        if n > max - total {
            let _ = out.line(id, form, "INSTREAM size limit exceeded. ERROR");
            return Err(Close);
        }
        total += n;
        if spool.is_none() && total > STREAM_MEMORY {
            let mut s = Spool::new()?;
            s.write_all(&memory)?;
            memory = Vec::new();
            spool = Some(s);
        }
        match &mut spool {
            Some(s) => conn.copy_to(n, s, deadline)?,
            None => conn.copy_to(n, &mut memory, deadline)?,
        }
    }
    let engine = shared.engine.current();
    let mut scanner = engine.scanner();
    let limits = shared.cfg.limits;
    let outcome = match &spool {
        Some(s) => scanner.scan_spool(s, &limits),
        None => scanner.scan_bytes(&memory, &limits),
    };
    for v in verdicts(&outcome, &limits, false) {
        out.line(id, form, &format!("stream: {v}"))?;
    }
    Ok(())
}

/// FILDES: scans a descriptor the Unix peer passed (it could read the file: it opened it).
fn fildes(
    id: Option<u64>,
    form: Form,
    conn: &mut Conn,
    out: &Out,
    shared: &Shared,
) -> Result<(), Close> {
    let deadline = Instant::now() + shared.cfg.idle_timeout.max(MIN_TIMEOUT);
    let fd = match conn.take_fd(deadline) {
        Ok(fd) => fd,
        Err(_) => {
            let _ = out.line(id, form, "FILDES: didn't receive file descriptor. ERROR");
            return Err(Close);
        }
    };
    let name = {
        use std::os::fd::AsRawFd;
        format!("fd[{}]", fd.as_raw_fd())
    };
    let mut file = File::from(fd);
    let engine = shared.engine.current();
    let limits = shared.cfg.limits;
    // The scanner reads from the offset; the peer's may not be at the start.
    let outcome = match file.seek(SeekFrom::Start(0)) {
        Ok(_) => engine.scanner().scan_open_file(file, &limits),
        Err(e) => Err(ScanError::Io(e)),
    };
    let lines = match &outcome {
        Err(ScanError::NotRegular) => vec!["Not a regular file ERROR".to_string()],
        o => verdicts(o, &limits, false),
    };
    for v in lines {
        out.line(id, form, &format!("{name}: {v}"))?;
    }
    Ok(())
}

/// SCAN, CONTSCAN, MULTISCAN, ALLMATCHSCAN of a path, with the peer's rights. Replies as
/// clamd's: a line per infected file (`<file>: <sig> FOUND`, the file holding the match, the
/// container's own path for a match inside one), a line per file it could not scan, and at the
/// end `<path>: OK` when nothing was found and not everything failed.
fn path_scan(
    mode: ScanMode,
    path: &Path,
    id: Option<u64>,
    form: Form,
    out: &Out,
    shared: &Shared,
    access: &Access,
) -> io::Result<()> {
    let shown = path.to_string_lossy().into_owned();
    let rights = match access {
        Access::Unix(r) => r.clone(),
        Access::Tcp if shared.cfg.tcp_path_scans => Rights::Same,
        Access::Tcp => {
            return out.line(
                id,
                form,
                &format!(
                    "{shown}: {} is not allowed over TCP (no peer credentials; use INSTREAM, or \
                     set tcp_path_scans). ERROR",
                    mode.name()
                ),
            );
        }
    };
    if !path.is_absolute() {
        return out.line(
            id,
            form,
            &format!("{shown}: File path check failure: not an absolute path. ERROR"),
        );
    }
    let engine = shared.engine.current();
    let limits = shared.cfg.limits;
    let stop_at_first = matches!(mode, ScanMode::Scan | ScanMode::AllMatch);
    let threads = if stop_at_first { 1 } else { shared.cfg.threads };
    let (total, errors, infected) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let gone = AtomicBool::new(false);
    let paths = [path.to_path_buf()];
    let responder = shared.cfg.responder.as_ref().and_then(|s| s.get());
    let session = responder
        .as_ref()
        .map(|r| r.session(false, &paths, engine.db_version(), ENGINE_VERSION));
    let sink = |s: Scanned| {
        if let (Some(session), Ok(report)) = (&session, &s.outcome) {
            crate::scheduled::respond(session, &s.path, report);
        }
        total.fetch_add(1, Ordering::SeqCst);
        let name = s.path.to_string_lossy();
        let lines: Vec<String> = match &s.outcome {
            Ok(r) if !r.findings.is_empty() => {
                infected.fetch_add(1, Ordering::SeqCst);
                verdicts(&s.outcome, &limits, mode == ScanMode::AllMatch)
            }
            Ok(_) => Vec::new(),
            // clamd names a special file only when it was the path asked for.
            Err(ScanError::NotRegular | ScanError::PseudoFilesystem { .. }) => {
                if s.path == path {
                    vec!["Not supported file type ERROR".into()]
                } else {
                    Vec::new()
                }
            }
            Err(ScanError::TooLarge { .. }) => {
                let v = verdicts(&s.outcome, &limits, false);
                if v.iter().any(|l| l.ends_with(" FOUND")) {
                    infected.fetch_add(1, Ordering::SeqCst);
                    v
                } else {
                    Vec::new()
                }
            }
            Err(e) => {
                errors.fetch_add(1, Ordering::SeqCst);
                vec![error_text(e)]
            }
        };
        for l in &lines {
            if out.line(id, form, &format!("{name}: {l}")).is_err() {
                gone.store(true, Ordering::SeqCst);
                return ControlFlow::Break(());
            }
        }
        if stop_at_first && infected.load(Ordering::SeqCst) > 0 {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    };
    let targets = Targets {
        paths: &paths,
        recursive: true,
        exclude: &[],
    };
    let scanned = Pool::new(&engine, threads, limits).scan_as(
        &targets,
        &|| rights.enter(),
        &|| shared.stop.load(Ordering::SeqCst),
        &sink,
    );
    if let Some(session) = session {
        if let Err(e) = session.finish() {
            tracing::error!(error = %e, "findings of a clamd-protocol scan were not recorded");
        }
    }
    if let Err(e) = scanned {
        let why = match e {
            PoolError::Enter(e) => e.to_string(),
            other => other.to_string(),
        };
        return out.line(id, form, &format!("{shown}: {why}. ERROR"));
    }
    if gone.load(Ordering::SeqCst) {
        return Err(io::ErrorKind::BrokenPipe.into());
    }
    let (total, errors, infected) = (
        total.into_inner(),
        errors.into_inner(),
        infected.into_inner(),
    );
    // clamd: `ok + error == total && error != total`, ok being what was neither.
    if infected == 0 && errors != total {
        out.line(id, form, &format!("{shown}: OK"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_read_like_clamd() {
        let gone = ScanError::Io(io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(
            error_text(&gone),
            "File path check failure: No such file or directory. ERROR"
        );
        let denied = ScanError::Io(io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(error_text(&denied), "Access denied. ERROR");
        assert_eq!(error_text(&ScanError::Timeout), "scan timed out ERROR");
    }

    #[test]
    fn oversized_is_ok_unless_alerted() {
        let big = || Err(ScanError::TooLarge { size: 2, limit: 1 });
        let quiet = Limits::default();
        assert_eq!(verdicts(&big(), &quiet, false), ["OK"]);
        let loud = Limits {
            alert_exceeds_max: true,
            ..Limits::default()
        };
        assert_eq!(
            verdicts(&big(), &loud, false),
            ["Heuristics.Limits.Exceeded.MaxFileSize FOUND"]
        );
    }
}
