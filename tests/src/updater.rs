//! A publisher and a client for the updater's tests: a directory repository with its TUF keys
//! and a database signing key, databases that detect EICAR plus a per-version marker, a
//! vigil-server to serve it, and a `vigil-update` client with its own config and database
//! directory, run as a real process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use vigil_format::container::{DatabaseBuilder, SectionKind};
use vigil_format::SecretKey;
use vigil_repository::publish::{self, OnlineKeys, PublishOptions, ROOT_FILE};
use vigil_repository::storage::{DirStorage, Storage};
use vigil_repository::tuf::Expiry;

use crate::{bin, free_port, wait_for_port, ChildGuard};

pub const EICAR: &str = concat!(
    "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
    "EICAR-STANDARD-ANTIVIRUS-",
    "TEST-FILE!$H+H*"
);

/// Bytes that only databases of version `v` and later detect (their marker signature).
pub fn marker(v: u64) -> Vec<u8> {
    format!("vigil test marker for database version {v:04}").into_bytes()
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A database of version `v`: EICAR, markers 1..=v, and `filler` body signatures.
pub fn database(v: u64, filler: usize, key: &SecretKey, min_engine: u32) -> Vec<u8> {
    let mut body = format!("Vigil.Test.Eicar:0:*:{}\n", hex::encode(EICAR));
    for m in 1..=v {
        body.push_str(&format!(
            "Vigil.Test.Marker{m}:0:*:{}\n",
            hex::encode(marker(m))
        ));
    }
    for i in 0..filler as u64 {
        body.push_str(&format!(
            "Vigil.Test.Filler{i}:0:*:{:016x}{:016x}\n",
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            i.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
        ));
    }
    let n = body.lines().count() as u32;
    let mut b = DatabaseBuilder::new(v, 1_700_000_000);
    b.min_engine_version = min_engine;
    b.section(SectionKind::Ndb, n, body.into_bytes());
    b.build(key).expect("building a test database")
}

pub struct Repo {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub tuf_keys: PathBuf,
    pub key: SecretKey,
    pub pubkey: PathBuf,
    pub filler: usize,
    rt: tokio::runtime::Runtime,
}

impl Default for Repo {
    fn default() -> Self {
        Self::new()
    }
}

impl Repo {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("repo");
        let tuf_keys = tmp.path().join("tuf");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let storage = DirStorage::new(&dir);
        rt.block_on(publish::init(&storage, &tuf_keys, &Expiry::default()))
            .expect("repo init");
        let key = SecretKey::from_seed([42; 32]);
        let pubkey = tmp.path().join("vigil.pub");
        std::fs::write(&pubkey, key.public().to_text()).expect("writing the public key");
        Self {
            tmp,
            dir,
            tuf_keys,
            key,
            pubkey,
            filler: 200,
            rt,
        }
    }

    pub fn root_json(&self) -> PathBuf {
        self.tuf_keys.join(ROOT_FILE)
    }

    pub fn db(&self, v: u64) -> Vec<u8> {
        database(v, self.filler, &self.key, vigil_format::ENGINE_VERSION)
    }

    pub fn publish_db(&self, db: &[u8]) {
        self.publish_with(db, Expiry::default())
            .expect("publishing");
    }

    pub fn publish_with(
        &self,
        db: &[u8],
        expiry: Expiry,
    ) -> Result<publish::Published, vigil_repository::RepoError> {
        let storage: Arc<dyn Storage> = Arc::new(DirStorage::new(&self.dir));
        let root = std::fs::read(self.root_json()).expect("root.json");
        let keys = OnlineKeys::load(&self.tuf_keys).expect("online keys");
        let opts = PublishOptions {
            expiry,
            ..PublishOptions::default()
        };
        self.rt.block_on(publish::publish(
            storage,
            &root,
            &keys,
            Some(db.to_vec()),
            &opts,
        ))
    }

    /// Builds and publishes version `v`; returns its bytes.
    pub fn publish(&self, v: u64) -> Vec<u8> {
        let db = self.db(v);
        self.publish_db(&db);
        db
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A copy of the repository tree as it is now (to serve old metadata later).
    pub fn freeze_copy(&self, name: &str) -> PathBuf {
        let to = self.tmp.path().join(name);
        copy_dir(&self.dir, &to);
        to
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).expect("copy");
        }
    }
}

/// vigil-server on a free port, serving `dir`.
pub struct Server {
    pub url: String,
    pub child: ChildGuard,
}

/// Metadata is not cached (tests republish and update at once) and there is no rate limit.
pub fn vigil_server(dir: &Path) -> Server {
    vigil_server_with(dir, Stdio::null())
}

pub fn vigil_server_with(dir: &Path, stdout: Stdio) -> Server {
    start_server(dir, "", &[], stdout)
}

/// vigil-server with a fleet store (SQLite in a directory beside `dir`) and an admin token
/// (`admin_token` in clear; the server gets its hash), without check-in limits: tests check in
/// many clients from one address in quick succession.
pub fn vigil_server_fleet(dir: &Path, admin_token: &str) -> Server {
    let state = dir.with_extension(format!("fleet-{}", free_port()));
    std::fs::create_dir_all(&state).expect("creating the fleet state directory");
    let tokens = state.join("admin-tokens");
    std::fs::write(&tokens, format!("{}\n", sha256_hex(admin_token.as_bytes())))
        .expect("writing the admin tokens");
    start_server(
        dir,
        "[fleet]\ncheckin_interval_s = 0\nrequests_per_second = 0\nburst = 0\n",
        &[
            "--state-dir",
            &state.display().to_string(),
            "--admin-tokens",
            &tokens.display().to_string(),
        ],
        Stdio::null(),
    )
}

fn start_server(dir: &Path, extra_config: &str, args: &[&str], stdout: Stdio) -> Server {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let conf = dir.with_extension(format!("server-{port}.toml"));
    std::fs::write(
        &conf,
        format!(
            "metadata_cache_ms = 0\n[rate_limit]\nrequests_per_second = 0\nburst = 0\n{extra_config}"
        ),
    )
    .expect("writing the server config");
    let child = Command::new(bin("vigil-server"))
        .args(["--repo", &dir.display().to_string(), "--listen", &addr])
        .args(["--config", &conf.display().to_string()])
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("starting vigil-server");
    let child = ChildGuard(child);
    wait_for_port(&addr, 20);
    Server {
        url: format!("http://{addr}/"),
        child,
    }
}

/// A vigil-update client with its own directory and config.
pub struct Client {
    pub dir: PathBuf,
    pub db_dir: PathBuf,
    pub config: PathBuf,
}

/// What one `vigil-update` run did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stderr: String,
}

impl Run {
    /// A `key=value` field from the log line (values printed by tracing's text format).
    pub fn field(&self, key: &str) -> Option<u64> {
        let pat = format!("{key}=");
        self.stderr.lines().rev().find_map(|l| {
            let i = l.find(&pat)?;
            l[i + pat.len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
    }
}

impl Client {
    /// `extra` is appended to the config (e.g. a `[network]` table).
    pub fn new(dir: &Path, repo: &Repo, mirrors: &[&str], extra: &str) -> Self {
        std::fs::create_dir_all(dir).expect("mkdir");
        let config = dir.join("vigil.toml");
        let c = Self {
            dir: dir.to_path_buf(),
            db_dir: dir.join("db"),
            config,
        };
        c.write_config(repo, mirrors, extra);
        c
    }

    pub fn write_config(&self, repo: &Repo, mirrors: &[&str], extra: &str) {
        let list: Vec<String> = mirrors.iter().map(|m| format!("{m:?}")).collect();
        // `extra` goes before the default [network] table, so top-level keys stay top-level.
        let text = format!(
            "mirrors = [{}]\ndatabase_dir = {:?}\ntrusted_root = {:?}\npubkeys = [{:?}]\n{extra}\n{}\n",
            list.join(", "),
            self.db_dir.display().to_string(),
            repo.root_json().display().to_string(),
            repo.pubkey.display().to_string(),
            if extra.contains("[network]") {
                ""
            } else {
                "[network]\nconnect_timeout_secs = 2\nlow_speed_limit = 1024\nlow_speed_time_secs = 3\nmax_transfer_secs = 30\nbackoff_base_secs = 1\nbackoff_max_secs = 2"
            },
        );
        std::fs::write(&self.config, text).expect("writing the config");
    }

    pub fn update(&self) -> Run {
        let out = Command::new(bin("vigil-update"))
            .args(["--config", &self.config.display().to_string()])
            .args(["--log-format", "text"])
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .output()
            .expect("running vigil-update");
        Run {
            code: out.status.code().unwrap_or(-1),
            stderr: strip_ansi(&String::from_utf8_lossy(&out.stderr)),
        }
    }

    pub fn active(&self) -> Option<Vec<u8>> {
        std::fs::read(self.db_dir.join("vigil.vdb")).ok()
    }

    pub fn last_known_good(&self) -> Option<Vec<u8>> {
        std::fs::read(self.db_dir.join("vigil.lkg.vdb")).ok()
    }

    /// The version of the active database (its header).
    pub fn version(&self) -> Option<u64> {
        let b = self.active()?;
        vigil_format::container::Parsed::parse(&b)
            .ok()
            .map(|p| p.header.db_version)
    }

    pub fn state(&self) -> serde_json::Value {
        std::fs::read(self.db_dir.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Total bytes of files waiting to be resumed (not of the `.from` records of which mirror
    /// wrote them).
    pub fn partial_bytes(&self) -> u64 {
        std::fs::read_dir(self.db_dir.join("partial"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().ends_with(".from"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
