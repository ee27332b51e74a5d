//! The root scanner against hostile local users (issue 18): files truncated mid-scan, FIFOs
//! swapped in between check and open, peers asking for files they cannot read, planted
//! compiled-rule caches, and clients that trickle their requests.
//!
//! Tests that need another user run as root and drop to uid `nobody` (65534) with `setpriv`, or
//! hide /proc with `unshare`; without root or those tools they say SKIP and return.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_compiler::{build, sources, BuildOptions};
use vigil_format::SecretKey;
use vigil_scan_core::service::{bind, serve, ServiceConfig, ServiceError};
use vigil_scan_core::{Engine, Limits, SharedEngine};
use vigil_tests::hostile::{big_file, truncate_when_opened, FifoSwapper};

const NOBODY: u32 = 65534;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn key() -> SecretKey {
    SecretKey::from_seed([41; 32])
}

fn db_from(dir: &Path, version: u64) -> Vec<u8> {
    let files = sources::collect(&[dir.to_path_buf()]).expect("collect");
    build(&files, &key(), &BuildOptions::new(version))
        .expect("build")
        .bytes
}

fn starter_db() -> Vec<u8> {
    db_from(&root().join("rules-src"), 3)
}

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

    fn connect(&self) -> BufReader<UnixStream> {
        let s = UnixStream::connect(&self.socket).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        BufReader::new(s)
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

fn send(conn: &mut BufReader<UnixStream>, line: &str) {
    let w = conn.get_mut();
    w.write_all(line.as_bytes()).unwrap();
    w.write_all(b"\n").unwrap();
}

/// Reads reply lines up to and including the `done` line (or an error line).
fn replies(conn: &mut BufReader<UnixStream>) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let mut line = String::new();
        let n = conn.read_line(&mut line).expect("reply");
        assert!(n > 0, "connection closed after {out:?}");
        let v: Value = serde_json::from_str(&line).unwrap();
        let last = v.get("done").is_some() || v.get("error").is_some() && v.get("path").is_none();
        out.push(v);
        if last {
            return out;
        }
    }
}

fn scan_request(paths: &[&Path], recursive: bool) -> String {
    serde_json::json!({"cmd": "scan", "paths": paths, "recursive": recursive}).to_string()
}

/// What a scan of a file truncated under it may say: scanned as it was at open (the read
/// finished first), or an error that says it changed. Never a crash.
/// Returns whether it was the error.
fn assert_truncation_result(status: &str, error: &str) -> bool {
    assert!(
        status == "ok" || status == "error" && error.contains("changed while being read"),
        "{status}: {error}"
    );
    status == "error"
}

// ---- Finding 1: SIGBUS from a file truncated while it is scanned ----

#[test]
fn service_survives_a_file_truncated_mid_scan() {
    let t = open_tempdir();
    let svc = Service::start(
        t.path(),
        Engine::load(&starter_db(), &[key().public()]).unwrap(),
        ServiceConfig::default(),
    );
    let mut errors = 0;
    for delay_ms in [0, 20, 150] {
        let big = big_file(t.path());
        let watcher = truncate_when_opened(&big, Duration::from_millis(delay_ms));
        let mut c = svc.connect();
        send(&mut c, &scan_request(&[&big], false));
        let r = replies(&mut c);
        assert!(watcher.done(), "the scan never opened the file");
        assert_eq!(r.len(), 2, "{r:?}");
        errors += usize::from(assert_truncation_result(
            r[0]["status"].as_str().unwrap(),
            r[0]["error"].as_str().unwrap_or(""),
        ));
        assert_eq!(r[1]["done"], true);
    }
    // Truncated at the open, the file shrinks while it is copied: that run reports it.
    assert!(errors >= 1, "no run saw the file change");
    // Alive and scanning.
    let mut c = svc.connect();
    send(
        &mut c,
        &scan_request(&[&root().join("samples/webshell.php")], false),
    );
    assert_eq!(replies(&mut c)[0]["status"], "found");
}

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

// ---- Finding 2: a FIFO swapped in between the walk's check and the open ----

#[test]
fn fifo_swap_race_never_blocks_a_scan() {
    let t = open_tempdir();
    let svc = Service::start(
        t.path(),
        Engine::load(&starter_db(), &[key().public()]).unwrap(),
        ServiceConfig {
            threads: 2,
            ..ServiceConfig::default()
        },
    );
    let swapper = FifoSwapper::start(t.path(), 2000);
    let links = swapper.links().to_path_buf();
    for round in 0..5 {
        let mut c = svc.connect();
        // Bounded: a thread blocked in a FIFO open would leave this read waiting; the reply
        // must come well within the client's timeout.
        c.get_ref()
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        send(&mut c, &scan_request(&[&links], false));
        let r = replies(&mut c);
        let done = r.last().unwrap();
        assert_eq!(done["done"], true, "round {round}: {done}");
        assert_eq!(r.len(), 2001, "round {round}: one line per link and done");
        for line in &r[..2000] {
            let status = line["status"].as_str().unwrap();
            assert!(status == "ok" || status == "skipped", "{line}");
        }
    }
    assert!(swapper.stop() > 0, "the swapper never swapped");
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

#[test]
fn planted_symlinked_or_foreign_caches_are_refused() {
    let t = open_tempdir();
    let db = starter_db();
    let name = format!("{}.yarac", sha256_hex(&db));
    let planted = planted_cache_bytes(t.path());
    let clean = t.path().join("clean.txt");
    fs::write(&clean, "nothing to see: harmless-marker-18\n").unwrap();
    let detects = |e: &Engine| {
        e.scan_file(&clean, &Limits::default())
            .unwrap()
            .findings
            .iter()
            .any(|f| f.signature == "Planted_Rule")
    };

    // A cache from another database, under this one's name, in a private directory of ours:
    // intact, owned by us, and still refused (it names another database).
    let own = t.path().join("own-cache");
    fs::create_dir(&own).unwrap();
    fs::set_permissions(&own, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(own.join(&name), &planted).unwrap();
    fs::set_permissions(own.join(&name), fs::Permissions::from_mode(0o600)).unwrap();
    let e = Engine::load_with_cache(&db, &[key().public()], Some(&own)).unwrap();
    assert_eq!(
        e.yara_from_cache(),
        Some(false),
        "a foreign database's cache was used"
    );
    assert!(!detects(&e));
    // The recompile replaced it with a good one, which the next load uses.
    let e = Engine::load_with_cache(&db, &[key().public()], Some(&own)).unwrap();
    assert_eq!(e.yara_from_cache(), Some(true));

    // A symlinked cache directory is neither read nor written through.
    let elsewhere = t.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
    let link = t.path().join("linked-cache");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let e = Engine::load_with_cache(&db, &[key().public()], Some(&link)).unwrap();
    assert_eq!(e.yara_from_cache(), Some(false));
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "wrote through a symlink"
    );
    // A cache file that is a symlink to a good cache is not read either.
    let linked_file = t.path().join("linked-file");
    fs::create_dir(&linked_file).unwrap();
    fs::set_permissions(&linked_file, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(own.join(&name), linked_file.join(&name)).unwrap();
    let e = Engine::load_with_cache(&db, &[key().public()], Some(&linked_file)).unwrap();
    assert_eq!(
        e.yara_from_cache(),
        Some(false),
        "read a cache through a symlink"
    );

    if !is_root() {
        eprintln!("SKIP the other-user half of planted_symlinked_or_foreign_caches_are_refused: needs root");
        return;
    }
    // Another user's directory and file, with modes that look private: refused by owner.
    let theirs = t.path().join("their-cache");
    fs::create_dir(&theirs).unwrap();
    fs::write(theirs.join(&name), &planted).unwrap();
    for p in [&theirs, &theirs.join(&name)] {
        std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let e = Engine::load_with_cache(&db, &[key().public()], Some(&theirs)).unwrap();
    assert_eq!(
        e.yara_from_cache(),
        Some(false),
        "another user's cache was used"
    );
    assert!(!detects(&e));
    assert_eq!(
        fs::read(theirs.join(&name)).unwrap(),
        planted,
        "wrote into their directory"
    );
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

// ---- Finding 8: slow clients and per-user connection caps ----

#[test]
fn a_trickling_client_is_cut_at_the_request_deadline() {
    let t = open_tempdir();
    let svc = Service::start(
        t.path(),
        Engine::load(&starter_db(), &[key().public()]).unwrap(),
        ServiceConfig {
            max_connections: 1,
            request_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(60),
            ..ServiceConfig::default()
        },
    );
    // A request line trickled byte by byte, and a stream whose header comes at once and whose
    // body trickles: each read is quick, the request never completes in time.
    let cases: [(&[u8], &'static [u8]); 2] = [
        (b"", b"{\"cmd\":\"ping\"}\n"),
        (b"{\"cmd\":\"stream\",\"len\":100}\n", b"abcdefghij"),
    ];
    for (prefix, trickled) in cases {
        let mut slow = svc.connect();
        let started = Instant::now();
        let mut writer = slow.get_ref().try_clone().unwrap();
        writer.write_all(prefix).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let c2 = cut.clone();
        let trickle = std::thread::spawn(move || {
            for b in trickled.iter().cycle() {
                if c2.load(Ordering::SeqCst) || writer.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        let mut all = String::new();
        let _ = slow.read_to_string(&mut all);
        cut.store(true, Ordering::SeqCst);
        let took = started.elapsed();
        trickle.join().unwrap();
        assert!(took < Duration::from_secs(15), "held for {took:?}: {all}");
        assert!(all.contains("\"error\""), "{all}");
        // The slot is free again (the count drops just after the hang-up).
        ping_soon(&svc);
    }
}

/// Pings until a connection is served rather than refused as busy, for up to 10 s.
fn ping_soon(svc: &Service) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = svc.connect();
        send(&mut c, "{\"cmd\":\"ping\"}");
        let mut line = String::new();
        let _ = c.read_line(&mut line);
        if line.trim() == "{\"pong\":true}" {
            return;
        }
        assert!(Instant::now() < deadline, "slot never freed: {line}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_user_cannot_take_every_slot() {
    let t = open_tempdir();
    let svc = Service::start(
        t.path(),
        Engine::load(&starter_db(), &[key().public()]).unwrap(),
        ServiceConfig {
            max_connections: 16,
            max_connections_per_uid: 2,
            ..ServiceConfig::default()
        },
    );
    let ping = |c: &mut BufReader<UnixStream>| {
        send(c, "{\"cmd\":\"ping\"}");
        let mut line = String::new();
        c.read_line(&mut line).unwrap();
        line
    };
    let mut a = svc.connect();
    let mut b = svc.connect();
    assert!(ping(&mut a).contains("pong"));
    assert!(ping(&mut b).contains("pong"));
    let mut third = svc.connect();
    let mut line = String::new();
    third.read_line(&mut line).unwrap();
    assert!(
        line.contains("too many connections from this user"),
        "{line}"
    );
    drop(a);
    ping_soon(&svc);
    drop(b);
}

#[test]
fn socket_takes_its_group() {
    use std::os::unix::fs::MetadataExt;
    let t = open_tempdir();
    // Root may give the socket any group; another user only one of its own.
    let gid = if is_root() {
        NOBODY
    } else {
        rustix::process::getegid().as_raw()
    };
    let path = t.path().join("g.sock");
    let _l = bind(&path, 0o660, Some(gid)).unwrap();
    let m = fs::metadata(&path).unwrap();
    assert_eq!((m.gid(), m.mode() & 0o777), (gid, 0o660));
}
