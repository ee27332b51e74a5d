//! A throwaway PostgreSQL from Debian's `postgresql` package: initdb into a temp directory,
//! listening on 127.0.0.1 on a free port, trust auth for user `vigil`. PostgreSQL refuses to
//! run as root, so as root it runs as `nobody`. `None` (with a SKIP line) when not installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A PostgreSQL server from Debian's package in a temp directory, on 127.0.0.1; stopped when
/// dropped. PostgreSQL refuses to run as root, so as root it runs as `nobody`.
pub struct Postgres {
    child: Child,
    _dir: tempfile::TempDir,
    pub url: String,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|p| p.join("initdb").is_file() && p.join("postgres").is_file())
        .collect();
    found.sort();
    found.pop()
}

fn nobody() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("nobody:"))?;
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

pub fn start_postgres() -> Option<Postgres> {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let Some(bin) = pg_bin() else {
        eprintln!("SKIP: PostgreSQL is not installed (apt-get install postgresql)");
        return None;
    };
    let dir = tempfile::tempdir().expect("starting PostgreSQL");
    let data = dir.path().join("data");
    let is_root = Path::new("/proc/self").metadata().map(|_| ()).is_ok()
        && std::fs::read_to_string("/proc/self/status")
            .expect("starting PostgreSQL")
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let as_user = |cmd: &mut Command| {
        if is_root {
            let (uid, gid) = nobody().expect("a nobody user to run PostgreSQL as");
            cmd.uid(uid).gid(gid);
        }
    };
    if is_root {
        let (uid, gid) = nobody().expect("starting PostgreSQL");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("starting PostgreSQL");
        std::fs::create_dir(&data).expect("starting PostgreSQL");
        std::os::unix::fs::chown(&data, Some(uid), Some(gid)).expect("starting PostgreSQL");
    }
    let mut init = Command::new(bin.join("initdb"));
    init.args([
        "-D",
        data.to_str().expect("starting PostgreSQL"),
        "-A",
        "trust",
        "-U",
        "vigil",
        "--no-sync",
    ])
    .stdout(Stdio::null())
    .current_dir("/");
    as_user(&mut init);
    let out = init.output().expect("starting PostgreSQL");
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("starting PostgreSQL")
        .local_addr()
        .expect("starting PostgreSQL")
        .port();
    let mut pg = Command::new(bin.join("postgres"));
    pg.args([
        "-D",
        data.to_str().expect("starting PostgreSQL"),
        "-k",
        data.to_str().expect("starting PostgreSQL"),
    ])
    .args([
        "-p",
        &port.to_string(),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .current_dir("/");
    as_user(&mut pg);
    let child = pg.spawn().expect("starting PostgreSQL");
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("postgres://vigil@127.0.0.1:{port}/postgres");
    let pg = Postgres {
        child,
        _dir: dir,
        url,
    };
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Some(pg);
        }
        assert!(Instant::now() < deadline, "PostgreSQL did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}
