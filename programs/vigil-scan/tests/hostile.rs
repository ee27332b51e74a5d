//! vigil-scan against hostile local users (issue 18): a file truncated while it is scanned, a
//! peer asking the scan service (through `vigil-scan --daemon`) for files it cannot read, and
//! compiled-rule caches planted for a scanner that cannot see /proc.
//!
//! Tests that need another user run as root and drop to uid `nobody` (65534) with `setpriv`, or
//! hide /proc with `unshare`; without root or those tools they say SKIP and return.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use vigil_agent::service::{bind, serve, ServiceConfig, ServiceError};
use vigil_scan_core::{Engine, SharedEngine};
use vigil_tests::hostile::{big_file, truncate_when_opened};
use vigil_tests::rules::{db_from, starter_db, test_key as key};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether tests may become `nobody`: root, and setpriv present.
fn can_drop_to_nobody(test: &str) -> bool {
    let ok = is_root()
        && Command::new("setpriv")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP {test}: needs root and setpriv (util-linux) to act as another user");
    }
    ok
}

/// A temporary directory that other users may enter (tempdir makes them 0700).
fn open_tempdir() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    t
}

/// The scan service on a socket anyone may connect to, stopped when dropped.
struct Service {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), ServiceError>>>,
}

impl Service {
    fn start(dir: &Path, engine: Engine, cfg: ServiceConfig) -> Self {
        let socket = dir.join("vigil.sock");
        let listener = bind(&socket, 0o666, None).expect("bind");
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(SharedEngine::new(engine));
        let st = stop.clone();
        let thread = std::thread::spawn(move || serve(listener, shared, cfg, st));
        Self {
            socket,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---- Finding 1: SIGBUS from a file truncated while it is scanned ----

#[test]
fn vigil_scan_survives_a_file_truncated_mid_scan() {
    let t = open_tempdir();
    let db = t.path().join("v3.vdb");
    fs::write(&db, starter_db()).unwrap();
    let public = t.path().join("test.pub");
    fs::write(&public, key().public().to_text()).unwrap();
    let mut errors = 0;
    for delay_ms in [0, 1, 5, 150] {
        let big = big_file(t.path());
        let watcher = truncate_when_opened(&big, Duration::from_millis(delay_ms));
        let child = Command::new(env!("CARGO_BIN_EXE_vigil-scan"))
            .arg("-d")
            .arg(&db)
            .arg("--pubkey")
            .arg(&public)
            .arg(&big)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(watcher.done(), "vigil-scan never opened the file");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        // Killed by a signal (SIGBUS) leaves no exit code.
        let code = out.status.code();
        assert!(
            code == Some(0) || code == Some(2),
            "{:?}\n{stdout}\n{stderr}",
            out.status
        );
        let line = format!("{}: ", big.display());
        if code == Some(2) {
            errors += 1;
            assert!(
                stderr.contains(&format!("{line}ERROR file changed while being read")),
                "{stderr}"
            );
        } else {
            assert!(stdout.contains(&format!("{line}OK")), "{stdout}");
        }
    }
    assert!(errors >= 1, "no run saw the file change");
}

// ---- Finding 3: the scan service as a root read oracle ----

#[test]
fn a_peer_learns_nothing_it_could_not_read_itself() {
    if !can_drop_to_nobody("a_peer_learns_nothing_it_could_not_read_itself") {
        return;
    }
    let t = open_tempdir();
    let secret = t.path().join("secret");
    fs::create_dir(&secret).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(secret.join("passwords.txt"), "hunter2\n").unwrap();
    let public = t.path().join("public");
    fs::create_dir(&public).unwrap();
    fs::write(public.join("hello.txt"), "hello\n").unwrap();
    fs::write(public.join("private.txt"), "root only, 23 bytes....").unwrap();
    fs::set_permissions(
        public.join("private.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let bin = t.path().join("vigil-scan");
    fs::copy(env!("CARGO_BIN_EXE_vigil-scan"), &bin).unwrap();
    let svc = Service::start(
        t.path(),
        Engine::load(&starter_db(), &[key().public()]).unwrap(),
        ServiceConfig::default(),
    );

    let mut paths: Vec<PathBuf> = vec![secret.clone(), public.clone()];
    let shadow = Path::new("/etc/shadow");
    let shadow_hidden = fs::metadata(shadow).is_ok_and(|m| m.permissions().mode() & 0o004 == 0);
    if shadow_hidden {
        paths.push(shadow.into());
    }
    let root_home = Path::new("/root");
    let root_hidden = fs::metadata(root_home).is_ok_and(|m| m.permissions().mode() & 0o005 == 0);
    if root_hidden {
        paths.push(root_home.into());
    }
    let run_as = |uid: Option<u32>, paths: &[PathBuf]| {
        let mut c = match uid {
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={u}"))
                    .arg(format!("--regid={u}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let out = c
            .args(["--daemon", "--socket"])
            .arg(&svc.socket)
            .arg("-r")
            .args(paths)
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (stdout, stderr) = run_as(Some(NOBODY), &paths);
    let all = format!("{stdout}{stderr}");
    assert!(
        !all.contains("passwords.txt"),
        "a listing of a 0700 directory leaked:\n{all}"
    );
    assert!(
        stderr.contains(&format!("{}: ERROR Permission denied", secret.display())),
        "{all}"
    );
    assert!(
        stdout.contains(&format!("{}: OK", public.join("hello.txt").display())),
        "{all}"
    );
    assert!(
        stderr.contains(&format!(
            "{}: ERROR Permission denied",
            public.join("private.txt").display()
        )),
        "{all}"
    );
    if shadow_hidden {
        assert!(
            stderr.contains("/etc/shadow: ERROR Permission denied"),
            "{all}"
        );
        assert!(!stdout.contains("/etc/shadow"), "{all}");
    }
    if root_hidden {
        assert!(stderr.contains("/root: ERROR Permission denied"), "{all}");
        assert!(!all.contains("/root/"), "a listing of /root leaked:\n{all}");
    }
    // Root itself still gets every file: the check is the peer's rights, not a blanket refusal.
    let (stdout, stderr) = run_as(None, &[secret.clone(), public.clone()]);
    assert!(
        stdout.contains(&format!("{}: OK", secret.join("passwords.txt").display())),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains(&format!("{}: OK", public.join("private.txt").display())),
        "{stdout}{stderr}"
    );
}

// ---- Finding 4: the compiled-rule cache ----

/// A database whose only rule fires on the marker in `clean.txt`; the starter database does not.
fn planted_db(dir: &Path) -> Vec<u8> {
    let rules = dir.join("planted-rules");
    fs::create_dir_all(&rules).unwrap();
    fs::write(
        rules.join("planted.yar"),
        "rule Planted_Rule {\n  meta:\n    description = \"from another database\"\n  strings:\n    $a = \"harmless-marker-18\"\n  condition:\n    $a\n}\n",
    )
    .unwrap();
    db_from(&rules, 7)
}

/// Builds the cache file the planted database gets, and returns its bytes.
fn planted_cache_bytes(dir: &Path) -> Vec<u8> {
    let build = dir.join("attacker-build");
    fs::create_dir_all(&build).unwrap();
    fs::set_permissions(&build, fs::Permissions::from_mode(0o700)).unwrap();
    let e = Engine::load_with_cache(&planted_db(dir), &[key().public()], Some(&build)).unwrap();
    assert_eq!(e.yara_from_cache(), Some(false));
    let f = fs::read_dir(&build)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    fs::read(f).unwrap()
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// The same through vigil-scan with /proc hidden (a tmpfs over it in a private mount
/// namespace): the old owner check looked at /proc/self and skipped itself without it.
#[test]
fn planted_cache_refused_with_proc_hidden() {
    let test = "planted_cache_refused_with_proc_hidden";
    if !is_root() {
        eprintln!("SKIP {test}: needs root for a mount namespace");
        return;
    }
    let probe = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs none /proc && test ! -e /proc/self",
        ])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("SKIP {test}: cannot mount over /proc in a new mount namespace (unshare)");
        return;
    }
    let t = open_tempdir();
    let db = starter_db();
    let db_path = t.path().join("v3.vdb");
    fs::write(&db_path, &db).unwrap();
    let public = t.path().join("test.pub");
    fs::write(&public, key().public().to_text()).unwrap();
    let clean = t.path().join("clean.txt");
    fs::write(&clean, "nothing to see: harmless-marker-18\n").unwrap();
    let planted = planted_cache_bytes(t.path());
    let name = format!("{}.yarac", sha256_hex(&db));
    // Three plantings, each made afresh for each run (a refused cache is replaced):
    // - nobody's directory and file, 0755 and 0644: the old code, without /proc, checked
    //   only modes;
    // - our own private directory holding another database's cache under this one's name;
    // - a symlink to nobody's directory holding the planted cache.
    let plant = |case: &str, run: usize| -> (PathBuf, PathBuf) {
        let base = t.path().join(format!("{case}-{run}"));
        let theirs = base.join("theirs");
        fs::create_dir_all(&theirs).unwrap();
        fs::write(theirs.join(&name), &planted).unwrap();
        match case {
            "ours" => {
                fs::set_permissions(&theirs, fs::Permissions::from_mode(0o700)).unwrap();
                fs::set_permissions(theirs.join(&name), fs::Permissions::from_mode(0o600)).unwrap();
                (theirs.clone(), theirs)
            }
            _ => {
                for p in [&theirs, &theirs.join(&name)] {
                    std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
                }
                if case == "symlinked" {
                    let link = base.join(".vigil-cache");
                    std::os::unix::fs::symlink(&theirs, &link).unwrap();
                    (link, theirs)
                } else {
                    (theirs.clone(), theirs)
                }
            }
        }
    };
    let bin = env!("CARGO_BIN_EXE_vigil-scan");
    let mut run = 0;
    for hide_proc in [false, true] {
        for case in ["nobody's", "ours", "symlinked"] {
            run += 1;
            let (cache, theirs) = plant(case, run);
            let script = format!(
                "{}exec \"$BIN\" -d \"$DB\" --pubkey \"$PUB\" --cache-dir \"$CACHE\" \"$FILE\"",
                if hide_proc {
                    "mount -t tmpfs none /proc && "
                } else {
                    ""
                }
            );
            let out = Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c", &script])
                .env("BIN", bin)
                .env("DB", &db_path)
                .env("PUB", &public)
                .env("CACHE", &cache)
                .env("FILE", &clean)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let what = format!("{case} cache, /proc hidden: {hide_proc}");
            assert_eq!(
                out.status.code(),
                Some(0),
                "{what}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!stdout.contains("Planted_Rule"), "{what}: {stdout}");
            assert!(
                stdout.contains(&format!("{}: OK", clean.display())),
                "{what}: {stdout}"
            );
            if case != "ours" {
                // Nothing written into another user's directory.
                assert_eq!(fs::read_dir(&theirs).unwrap().count(), 1, "{what}");
                assert_eq!(fs::read(theirs.join(&name)).unwrap(), planted, "{what}");
            }
        }
    }
}
