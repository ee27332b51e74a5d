//! A real clamd (Debian's clamav-daemon) with its own clamd.conf and signature directory, on a
//! Unix socket in a temporary directory and a free loopback port, for the tests and the bench
//! that hold vigil's clamd protocol against it. Never the system's clamd service. `None`, with
//! a SKIP line, when clamd is not installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Clamd {
    child: Child,
    dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub port: u16,
}

impl Drop for Clamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Clamd {
    /// Starts clamd on the signature files in `db_dir` (.hdb, .hsb, .ndb ...: clamd loads
    /// them as unofficial, naming detections `<name>.UNOFFICIAL`), with `stream_max_length`,
    /// and waits (up to 60 s) until it answers PING.
    pub fn start(db_dir: &Path, stream_max_length: u64) -> Option<Clamd> {
        if Command::new("clamd").arg("--version").output().is_err() {
            eprintln!("SKIP: clamd is not installed (apt-get install clamav-daemon)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("clamd.sock");
        let port = crate::free_port();
        let conf = dir.path().join("clamd.conf");
        std::fs::write(
            &conf,
            format!(
                "Foreground yes\nLocalSocket {}\nTCPSocket {port}\nTCPAddr 127.0.0.1\n\
                 DatabaseDirectory {}\nTemporaryDirectory {}\nStreamMaxLength {stream_max_length}\n\
                 MaxThreads 8\nLogFile {}\n",
                socket.display(),
                db_dir.display(),
                dir.path().display(),
                dir.path().join("clamd.log").display(),
            ),
        )
        .expect("write clamd.conf");
        let child = Command::new("clamd")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.path().join("clamd.err"))
                    .map_or_else(|_| Stdio::null(), Stdio::from),
            )
            .spawn()
            .expect("start clamd");
        let mut clamd = Clamd {
            child,
            dir,
            socket,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pongs(&clamd.socket) {
            if let Ok(Some(status)) = clamd.child.try_wait() {
                let log =
                    std::fs::read_to_string(clamd.dir.path().join("clamd.err")).unwrap_or_default();
                panic!("clamd exited at start: {status}\n{log}");
            }
            assert!(Instant::now() < deadline, "clamd did not answer in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(clamd)
    }
}

fn pongs(socket: &Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reply = Vec::new();
    s.write_all(b"zPING\0").is_ok() && s.read_to_end(&mut reply).is_ok() && reply == b"PONG\0"
}

/// A clamd.conf for clamdscan (`--config-file`): the Unix socket, or the TCP port (clamdscan
/// then streams every file with INSTREAM).
pub fn client_conf(dir: &Path, name: &str, socket: Option<&Path>, port: Option<u16>) -> PathBuf {
    let mut text = String::new();
    if let Some(s) = socket {
        text.push_str(&format!("LocalSocket {}\n", s.display()));
    }
    if let Some(p) = port {
        text.push_str(&format!("TCPSocket {p}\nTCPAddr 127.0.0.1\n"));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a clamdscan config");
    path
}

/// Whether `clamdscan` is installed (a SKIP line when not).
pub fn have_clamdscan() -> bool {
    let ok = Command::new("clamdscan").arg("--version").output().is_ok();
    if !ok {
        eprintln!("SKIP: clamdscan is not installed (apt-get install clamdscan)");
    }
    ok
}
