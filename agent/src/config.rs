//! The `[agent]` section of `vigil.toml`: the scan service's socket and limits, and the
//! scheduled scans. The updater's keys are `vigil-client-updater`'s ([`Config`], which only
//! carries this section as a raw table); [`AgentConfig::parse`] reads it here, from the same
//! text and with the same rules: unknown keys are errors, relative paths resolve against the
//! config file's directory, and an error names the file, the line and the key.

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
    #[serde(rename = "scheduled")]
    pub scheduled: Vec<ScheduledScan>,
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
            scheduled: Vec::new(),
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
