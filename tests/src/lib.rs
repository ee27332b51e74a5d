//! vigil-tests: end-to-end tests across the vigil crates and across real processes (build,
//! publish, serve, update, scan). The tests live in `tests/`; this library holds the real
//! servers they start: an S3-compatible store (s3s-fs with SigV4 credentials) on 127.0.0.1, and
//! a fault-injecting HTTP mirror (`fault`) for the updater's attack tests, and hostile local
//! users (`hostile`) for the scanner's; databases built from rule directories (`rules`); and the import of third-party YARA rule sets
//! (`thirdparty`) that tests and benches over public rule sets share; and moto's server
//! (`moto`), the AWS-compatible endpoint of the findings outputs' tests;
//! disk images built with mkfs.ext4 and partitioned by vigil-diskimage's writers (`images`);
//! and a real clamd
//! (`clamd`) that vigil's clamd protocol is held against.

pub mod clamd;
pub mod fault;
pub mod hostile;
pub mod images;
pub mod moto;
pub mod postgres;
pub mod rules;
pub mod s3;
pub mod thirdparty;
pub mod updater;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A workspace binary (`vigil-build`, `vigil-server`, …) next to the running test. `cargo test
/// --workspace` builds every member's binaries before running tests; run that (not `-p
/// vigil-tests` alone) so they are current.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build --workspace`) first",
        path.display()
    );
    path
}

/// What a finished program said: its exit code (-1 when a signal ended it) and its output.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to the end and collects its [`Run`].
pub fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("start the program");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Copies the tree at `from` to `to` (directories and regular files), for tests that break a
/// copy of rules-src on purpose.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for e in std::fs::read_dir(from).expect("read the tree") {
        let e = e.expect("read the tree");
        let dest = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy a file");
        }
    }
}

/// A free port on 127.0.0.1 for a child process to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until something accepts connections on `addr`, or panics after `secs`.
pub fn wait_for_port(addr: &str, secs: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {addr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Kills a child process when dropped, so a failing test leaves no server behind.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A signed database of `n` body signatures (distinct for each `salt`), big enough that a
/// delta between two versions is much smaller than either.
pub fn sample_db(version: u64, n: usize, salt: u64) -> Vec<u8> {
    use vigil_format::container::{DatabaseBuilder, SectionKind};
    let mut body = String::new();
    for i in 0..n as u64 {
        body.push_str(&format!(
            "Vigil.Test.Sig{i}:0:*:{:016x}{:016x}\n",
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            i ^ salt
        ));
    }
    let mut b = DatabaseBuilder::new(version, 0);
    b.section(SectionKind::Ndb, n as u32, body.into_bytes());
    b.build(&vigil_format::SecretKey::from_seed([7; 32]))
        .expect("building a sample database")
}
