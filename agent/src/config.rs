//! The `[agent]` section of `vigil.toml`: the scan service's socket and limits, and the
//! scheduled scans. The updater's keys are `vigil-client-updater`'s ([`Config`], which only
//! carries this section as a raw table); [`AgentConfig::parse`] reads it here, from the same
//! text and with the same rules: unknown keys are errors, relative paths resolve against the
//! config file's directory, and an error names the file, the line and the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use vigil_client_updater::{Config, UpdateError};
use vigil_scan_core::service::DEFAULT_SOCKET;
use vigil_scan_core::Limits;

use crate::error::AgentError;
use crate::schedule::Schedule;

/// Everything the agent reads from `vigil.toml`: the updater's settings and its own section.
#[derive(Clone, Debug)]
pub struct Settings {
    pub updater: Config,
    pub agent: AgentConfig,
}

impl Settings {
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| UpdateError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` as if read from `path` (relative paths resolve against its directory).
    pub fn parse(text: &str, path: &Path) -> Result<Self, AgentError> {
        let updater = Config::parse(text, path)?;
        let agent = AgentConfig::parse(text, path)?;
        Ok(Self { updater, agent })
    }
}

/// The file as the agent sees it: its own section; the updater's keys are [`Config`]'s.
#[derive(Deserialize)]
struct AgentFile {
    #[serde(default)]
    agent: AgentConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The Unix socket of the scan service (`vigil-scan --daemon`).
    pub socket: PathBuf,
    pub socket_mode: u32,
    /// Group of the socket (a name from /etc/group or a numeric gid): with `socket_mode`
    /// 0o660, its members may ask for scans. Unset: root's group.
    pub socket_group: Option<String>,
    pub scan_threads: usize,
    pub max_connections: usize,
    /// Connections one uid may hold at once.
    pub max_connections_per_uid: usize,
    /// A request line (and a stream, plus a second per MiB) must arrive within this.
    pub request_timeout_secs: u64,
    /// Per-file limits for service and scheduled scans.
    pub max_filesize: u64,
    pub scan_timeout_secs: u64,
    /// Containers (clamd.conf's ScanArchive, MaxScanSize, MaxRecursion, MaxFiles, AlertExceedsMax,
    /// AlertEncrypted), with clamd's defaults: see `vigil_scan_core::Limits`.
    pub scan_archive: bool,
    pub max_scansize: u64,
    pub max_recursion: u32,
    pub max_files: u32,
    pub max_ratio: u32,
    pub alert_exceeds_max: bool,
    pub alert_encrypted: bool,
    #[serde(rename = "scheduled")]
    pub scheduled: Vec<ScheduledScan>,
    /// `[agent.clamd]`: clamd's protocol, off unless the section is present.
    pub clamd: Option<ClamdSettings>,
}

/// `[agent.clamd]`: the opt-in clamd-protocol listener ([`crate::clamd`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClamdSettings {
    /// Unix socket for clamd's protocol (clamd.conf's LocalSocket). Its mode and group are
    /// `socket_mode` and the agent's `socket_group`.
    pub unix_socket: Option<PathBuf>,
    pub socket_mode: u32,
    /// `IP:port` (clamd.conf's TCPAddr and TCPSocket). Only loopback unless `allow_remote`.
    pub tcp: Option<String>,
    /// Listen on a non-loopback address: clamd's protocol has no authentication and no
    /// encryption, so anyone who reaches the port may scan with the agent's engine.
    pub allow_remote: bool,
    /// Allow path commands over TCP, run with the agent's own rights (TCP has no peer
    /// credentials): anyone who connects can then probe files they could not read.
    pub tcp_path_scans: bool,
    /// INSTREAM bytes accepted per stream (clamd's StreamMaxLength, 25 MiB).
    pub stream_max_length: u64,
    pub max_connections: usize,
    /// A connection with no command for this long is closed (clamd's IdleTimeout); a command
    /// must arrive whole within it.
    pub idle_timeout_secs: u64,
}

impl Default for ClamdSettings {
    fn default() -> Self {
        Self {
            unix_socket: None,
            socket_mode: 0o660,
            tcp: None,
            allow_remote: false,
            tcp_path_scans: false,
            stream_max_length: crate::clamd::DEFAULT_STREAM_MAX_LENGTH,
            max_connections: 16,
            idle_timeout_secs: 30,
        }
    }
}

impl ClamdSettings {
    /// The TCP address, checked: an `IP:port`, loopback unless `allow_remote`.
    pub fn tcp_addr(&self) -> Result<Option<SocketAddr>, String> {
        let Some(t) = &self.tcp else { return Ok(None) };
        let addr: SocketAddr = t.parse().map_err(|_| {
            format!("agent.clamd.tcp: {t:?} is not an IP:port such as \"127.0.0.1:3310\"")
        })?;
        if !addr.ip().is_loopback() && !self.allow_remote {
            return Err(format!(
                "agent.clamd.tcp: {addr} is not a loopback address; clamd's protocol has no \
                 authentication or encryption, so set allow_remote = true to listen there anyway"
            ));
        }
        Ok(Some(addr))
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            socket_mode: 0o660,
            socket_group: None,
            scan_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_connections: 16,
            max_connections_per_uid: 8,
            request_timeout_secs: 10,
            max_filesize: 100 << 20,
            scan_timeout_secs: 120,
            scan_archive: true,
            max_scansize: Limits::default().max_scansize,
            max_recursion: Limits::default().max_recursion,
            max_files: Limits::default().max_files,
            max_ratio: Limits::default().max_ratio,
            alert_exceeds_max: false,
            alert_encrypted: false,
            scheduled: Vec::new(),
            clamd: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledScan {
    pub name: String,
    /// Five-field cron expression or a macro such as `@daily`, in local time.
    pub cron: Schedule,
    pub paths: Vec<PathBuf>,
    #[serde(default = "default_exclude")]
    pub exclude: Vec<PathBuf>,
    /// Optional: JSON lines appended here, one per finding, one per unreadable file and one
    /// summary per run. Findings also go to the `[[outputs]]` (through the outbox).
    #[serde(default)]
    pub output: Option<PathBuf>,
}

fn default_exclude() -> Vec<PathBuf> {
    ["/proc", "/sys", "/dev", "/run"]
        .iter()
        .map(PathBuf::from)
        .collect()
}

impl AgentConfig {
    /// Parses the `[agent]` section of `text`, the config file at `path` (no section: every
    /// default). Relative paths resolve against the file's directory. It reads the text, not
    /// [`Config::agent`], so that an error points at its line as the updater's errors do.
    pub fn parse(text: &str, path: &Path) -> Result<Self, AgentError> {
        let file: AgentFile = toml::from_str(text).map_err(|e| AgentError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut a = file.agent;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut a.socket);
        if let Some(c) = a.clamd.as_mut() {
            if let Some(p) = c.unix_socket.as_mut() {
                abs(p);
            }
            let fail = |message: String| AgentError::Config {
                path: path.to_path_buf(),
                message,
            };
            if c.unix_socket.is_none() && c.tcp.is_none() {
                return Err(fail(
                    "agent.clamd: give unix_socket, tcp or both (or remove the section)".into(),
                ));
            }
            c.tcp_addr().map_err(fail)?;
        }
        for s in &mut a.scheduled {
            s.paths.iter_mut().for_each(abs);
            if let Some(o) = s.output.as_mut() {
                abs(o);
            }
        }
        Ok(a)
    }

    /// Per-file limits for service and scheduled scans.
    pub fn limits(&self) -> Limits {
        Limits {
            max_filesize: self.max_filesize,
            timeout: (self.scan_timeout_secs > 0)
                .then(|| Duration::from_secs(self.scan_timeout_secs)),
            scan_archives: self.scan_archive,
            max_scansize: self.max_scansize,
            max_recursion: self.max_recursion,
            max_files: self.max_files,
            max_ratio: self.max_ratio,
            alert_exceeds_max: self.alert_exceeds_max,
            alert_encrypted: self.alert_encrypted,
            ..Limits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_config_file() {
        let s = Settings::parse(
            r#"mirrors = ["http://127.0.0.1:1"]
               database_dir = "db"
               trusted_root = "root.json"
               [agent]
               socket = "run/vigil.sock"
               [[agent.scheduled]]
               name = "nightly"
               cron = "0 3 * * *"
               paths = ["/srv", "srv"]
               output = "findings.jsonl""#,
            Path::new("/etc/vigil/vigil.toml"),
        )
        .unwrap();
        assert_eq!(s.updater.database_dir, Path::new("/etc/vigil/db"));
        let a = &s.agent;
        assert_eq!(a.socket, Path::new("/etc/vigil/run/vigil.sock"));
        assert_eq!(
            a.scheduled[0].paths,
            [Path::new("/srv"), Path::new("/etc/vigil/srv")]
        );
        assert_eq!(
            a.scheduled[0].output.as_deref(),
            Some(Path::new("/etc/vigil/findings.jsonl"))
        );
        assert_eq!(a.scheduled[0].exclude.len(), 4);
        assert_eq!(a.scheduled[0].cron.to_string(), "0 3 * * *");
    }

    #[test]
    fn no_section_is_every_default() {
        let s = Settings::parse(
            "mirrors = [\"http://h/\"]\ntrusted_root = \"r\"",
            Path::new("/x/vigil.toml"),
        )
        .unwrap();
        assert_eq!(s.agent.socket, Path::new(DEFAULT_SOCKET));
        assert_eq!(s.agent.socket_mode, 0o660);
        assert!(s.agent.scheduled.is_empty());
        assert_eq!(s.agent.limits().max_filesize, 100 << 20);
        assert!(s.agent.limits().scan_archives);
        assert_eq!(s.agent.limits().max_recursion, 17);
    }

    #[test]
    fn clamd_section() {
        let p = Path::new("/etc/vigil/vigil.toml");
        let head = "mirrors = [\"http://h/\"]\ntrusted_root = \"r\"\n";
        let s = Settings::parse(head, p).unwrap();
        assert!(s.agent.clamd.is_none(), "off unless configured");
        let s = Settings::parse(
            &format!(
                "{head}[agent.clamd]\nunix_socket = \"run/clamd.sock\"\ntcp = \"127.0.0.1:3310\""
            ),
            p,
        )
        .unwrap();
        let c = s.agent.clamd.unwrap();
        assert_eq!(
            c.unix_socket.as_deref(),
            Some(Path::new("/etc/vigil/run/clamd.sock"))
        );
        assert_eq!(
            c.tcp_addr().unwrap(),
            Some("127.0.0.1:3310".parse().unwrap())
        );
        assert_eq!(c.stream_max_length, 25 << 20);
        assert!(!c.tcp_path_scans);
        for (section, words) in [
            (
                "tcp = \"0.0.0.0:3310\"",
                &["0.0.0.0:3310", "allow_remote"][..],
            ),
            ("tcp = \"localhost:3310\"", &["IP:port"][..]),
            ("stream_max_length = 1", &["unix_socket, tcp"][..]),
            ("tcp = \"127.0.0.1:1\"\nbogus = 1", &["bogus"][..]),
        ] {
            let e = Settings::parse(&format!("{head}[agent.clamd]\n{section}"), p)
                .unwrap_err()
                .to_string();
            for w in words {
                assert!(e.contains(w), "{section}: {e}");
            }
        }
        let remote = Settings::parse(
            &format!("{head}[agent.clamd]\ntcp = \"0.0.0.0:3310\"\nallow_remote = true"),
            p,
        )
        .unwrap();
        assert!(remote.agent.clamd.unwrap().tcp_addr().unwrap().is_some());
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let p = Path::new("/x/vigil.toml");
        let head = "mirrors = [\"http://h/\"]\ntrusted_root = \"r\"\n";
        for (section, words) in [
            ("[agent]\nbogus = 1", &["bogus"][..]),
            ("[agent]\nscan_threads = \"many\"", &["scan_threads"][..]),
            (
                "[[agent.scheduled]]\nname = \"n\"\ncron = \"0 3 * *\"\npaths = []\noutput = \"o\"",
                &["cron", "0 3 * *"][..],
            ),
            (
                "[[agent.scheduled]]\nname = \"n\"\ncron = \"@daily\"\noutput = \"o\"",
                &["paths"][..],
            ),
            ("agent = 3", &["agent"][..]),
        ] {
            let e = Settings::parse(&format!("{head}{section}"), p)
                .unwrap_err()
                .to_string();
            assert!(e.contains("/x/vigil.toml"), "{e}");
            for w in words {
                assert!(e.contains(w), "{section}: {e}");
            }
        }
    }
}
