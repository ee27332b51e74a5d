//! `vigil.toml`: where to update from, what to trust, and where the database lives. Relative
//! paths are resolved against the config file's directory, so a config and its root.json can
//! travel together. The `[agent]` section is the agent's: it is carried here as a raw table and
//! parsed and checked by `vigil-agent`, so one file configures both programs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::UpdateError;

pub const DEFAULT_PATH: &str = "/etc/vigil/vigil.toml";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Repository base URLs, tried in order; the next is used when one fails.
    pub mirrors: Vec<String>,
    /// Where the active database, last-known-good, TUF state and partial downloads live.
    #[serde(default = "default_db_dir")]
    pub database_dir: PathBuf,
    /// The TUF root.json this instance trusts first; later roots are reached through the
    /// signed rotation chain and remembered in `database_dir/tuf/`.
    pub trusted_root: PathBuf,
    /// Database signing keys. Empty: the release keys built into this binary.
    #[serde(default)]
    pub pubkeys: Vec<PathBuf>,
    /// freshclam's `Checks`: how many times a day the agent looks for updates.
    #[serde(default = "default_checks")]
    pub checks_per_day: u32,
    /// Bearer token for a private feed, or a file holding it (preferred: keeps it out of
    /// world-readable configs).
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// HTTP(S) proxy for every request, e.g. `http://proxy:3128`.
    #[serde(default)]
    pub proxy: Option<String>,
    /// Extra files that every new database must detect before it is activated (EICAR always is).
    #[serde(default)]
    pub smoke_dir: Option<PathBuf>,
    #[serde(default)]
    pub network: Network,
    /// The release channel to follow (`stable` by default).
    #[serde(default = "default_channel")]
    pub channel: String,
    /// A rollout ring, such as `canary`: this host takes a release in the plan's stage that
    /// names its ring, before the percentages.
    #[serde(default)]
    pub ring: Option<String>,
    /// The id this client goes by in rollouts and check-ins; default: random, kept in
    /// `database_dir/client-id`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Reported in check-ins, e.g. the EC2 instance id.
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub fleet: Fleet,
    /// The `[agent]` section as written (relative paths not yet resolved), carried so that
    /// one file configures both programs: vigil-agent parses and checks it (from the file's
    /// text, so its errors point at their line). Empty when absent.
    #[serde(default)]
    pub agent: toml::Table,
    /// What happens after a detection (issue 15), carried raw like `[agent]` and parsed by
    /// `vigil-respond` and `vigil-outputs`: `[findings]` (the host's identity, severities, the
    /// outbox), `[[outputs]]` (where findings are delivered), `[[actions]]` (response hooks)
    /// and `[quarantine]`.
    #[serde(default)]
    pub findings: toml::Table,
    #[serde(default)]
    pub outputs: Vec<toml::Table>,
    #[serde(default)]
    pub actions: Vec<toml::Table>,
    #[serde(default)]
    pub quarantine: toml::Table,
}

/// Timeouts and limits that bound what a slow or hostile mirror can cost us.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    pub connect_timeout_secs: u64,
    /// Abort a transfer that averages under `low_speed_limit` bytes/s over
    /// `low_speed_time_secs` (curl's and freshclam's low-speed rule: beats slow-retrieval).
    pub low_speed_limit: u64,
    pub low_speed_time_secs: u64,
    /// Hard cap on any one transfer.
    pub max_transfer_secs: u64,
    /// Caps on metadata sizes (endless-data attacks); targets are capped by their TUF length.
    pub max_root_bytes: u64,
    pub max_timestamp_bytes: u64,
    pub max_snapshot_bytes: u64,
    pub max_targets_bytes: u64,
    /// Cool-down after a mirror fails, doubled per consecutive failure up to the maximum, with
    /// jitter. A server's Retry-After is honoured when it asks for longer.
    pub backoff_base_secs: u64,
    pub backoff_max_secs: u64,
}

/// Check-ins: after each update check, a small report to the server updated from.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fleet {
    pub checkin: bool,
    pub timeout_secs: u64,
}

impl Default for Fleet {
    fn default() -> Self {
        Self {
            checkin: true,
            timeout_secs: 5,
        }
    }
}

impl Default for Network {
    fn default() -> Self {
        Self {
            connect_timeout_secs: 10,
            low_speed_limit: 1024,
            low_speed_time_secs: 30,
            max_transfer_secs: 1800,
            max_root_bytes: 1 << 20,
            max_timestamp_bytes: 64 << 10,
            max_snapshot_bytes: 1 << 20,
            max_targets_bytes: 10 << 20,
            backoff_base_secs: 60,
            backoff_max_secs: 6 * 3600,
        }
    }
}

impl Network {
    pub fn tuf_limits(&self) -> tough::Limits {
        tough::Limits {
            max_root_size: self.max_root_bytes,
            max_targets_size: self.max_targets_bytes,
            max_timestamp_size: self.max_timestamp_bytes,
            max_snapshot_size: self.max_snapshot_bytes,
            max_root_updates: 1024,
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs.max(1))
    }
}

fn default_db_dir() -> PathBuf {
    PathBuf::from("/var/lib/vigil")
}

fn default_channel() -> String {
    vigil_repository::rollout::DEFAULT_CHANNEL.to_owned()
}

fn default_checks() -> u32 {
    24
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, UpdateError> {
        let text = std::fs::read_to_string(path).map_err(|e| UpdateError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` as if read from `path` (relative paths resolve against its directory).
    pub fn parse(text: &str, path: &Path) -> Result<Self, UpdateError> {
        let bad = |message: String| UpdateError::Config {
            path: path.to_path_buf(),
            message,
        };
        let mut c: Config = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if c.mirrors.is_empty() {
            return Err(bad("`mirrors` lists no repository URL".into()));
        }
        for m in &mut c.mirrors {
            let u = url::Url::parse(m).map_err(|e| bad(format!("mirror {m:?}: {e}")))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(bad(format!(
                    "mirror {m:?}: only http and https are supported"
                )));
            }
            if !m.ends_with('/') {
                m.push('/');
            }
        }
        if c.checks_per_day == 0 || c.checks_per_day > 24 * 60 {
            return Err(bad(format!(
                "checks_per_day = {}: must be 1 to 1440",
                c.checks_per_day
            )));
        }
        use vigil_repository::rollout::valid_name;
        if !valid_name(&c.channel) {
            return Err(bad(format!(
                "channel = {:?}: 1 to 32 of a-z, 0-9 and -",
                c.channel
            )));
        }
        if let Some(r) = c.ring.as_ref().filter(|r| !valid_name(r)) {
            return Err(bad(format!("ring = {r:?}: 1 to 32 of a-z, 0-9 and -")));
        }
        for (key, v) in [("client_id", &c.client_id), ("instance_id", &c.instance_id)] {
            if let Some(v) = v.as_ref().filter(|v| !crate::identity::valid_client_id(v)) {
                return Err(bad(format!(
                    "{key} = {v:?}: 1 to 128 of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
                )));
            }
        }
        if c.token.is_some() && c.token_file.is_some() {
            return Err(bad("set `token` or `token_file`, not both".into()));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut c.database_dir);
        abs(&mut c.trusted_root);
        c.pubkeys.iter_mut().for_each(abs);
        if let Some(p) = &mut c.token_file {
            abs(p);
        }
        if let Some(p) = &mut c.smoke_dir {
            abs(p);
        }
        Ok(c)
    }

    /// The bearer token, read from `token_file` when set.
    pub fn token(&self) -> Result<Option<String>, UpdateError> {
        match (&self.token, &self.token_file) {
            (Some(t), _) => Ok(Some(t.trim().to_owned())),
            (None, Some(p)) => std::fs::read_to_string(p)
                .map(|t| Some(t.trim().to_owned()))
                .map_err(|e| UpdateError::io("reading the token file", p, e)),
            (None, None) => Ok(None),
        }
    }

    /// The interval between checks, before jitter.
    pub fn check_interval(&self) -> Duration {
        Duration::from_secs(86_400 / u64::from(self.checks_per_day.max(1)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_config_file() {
        let c = Config::parse(
            r#"mirrors = ["http://127.0.0.1:1"]
               database_dir = "db"
               trusted_root = "root.json"
               [[agent.scheduled]]
               name = "nightly"
               cron = "0 3 * * *"
               paths = ["/srv"]
               output = "findings.jsonl""#,
            Path::new("/etc/vigil/vigil.toml"),
        )
        .unwrap();
        assert_eq!(c.mirrors, ["http://127.0.0.1:1/"]);
        assert_eq!(c.database_dir, Path::new("/etc/vigil/db"));
        assert_eq!(c.trusted_root, Path::new("/etc/vigil/root.json"));
        // Carried as written, for vigil-agent (whose tests check its paths resolve too).
        assert_eq!(
            c.agent["scheduled"][0]["output"].as_str(),
            Some("findings.jsonl")
        );
        assert_eq!(c.check_interval(), Duration::from_secs(3600));
    }

    #[test]
    fn errors_name_the_problem() {
        let p = Path::new("/x/vigil.toml");
        let e = Config::parse("mirrors = []\ntrusted_root = \"r\"", p).unwrap_err();
        assert!(e.to_string().contains("no repository URL"), "{e}");
        let e = Config::parse("mirrors = [\"ftp://h/\"]\ntrusted_root = \"r\"", p).unwrap_err();
        assert!(e.to_string().contains("only http"), "{e}");
        let e = Config::parse(
            "mirrors = [\"http://h/\"]\ntrusted_root = \"r\"\nbogus = 1",
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        assert!(e.to_string().contains("/x/vigil.toml"), "{e}");
    }
}
