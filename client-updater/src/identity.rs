//! Who this client is to the fleet: a stable id, its channel and ring.
//!
//! The id feeds the rollout bucket ([`vigil_repository::rollout::bucket`]) and names the host
//! in check-ins, so it must not change between runs: it is random, generated on first use and
//! kept in `database_dir/client-id` (a file of its own, so a damaged `state.json`, which holds
//! only hints, cannot move a host to another bucket), unless the operator sets `client_id` in
//! vigil.toml (for example to the EC2 instance id).

use std::path::Path;

use vigil_repository::rollout::{bucket, Client};

use crate::config::Config;
use crate::error::UpdateError;
use crate::state::write_atomic;

pub const CLIENT_ID_FILE: &str = "client-id";

/// What the rollout sees of this client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub client_id: String,
    pub channel: String,
    pub ring: Option<String>,
    pub bucket: u32,
}

impl Identity {
    /// The configured id, else the one kept in `db_dir`, else a new one (written there).
    pub fn load(cfg: &Config, db_dir: &Path) -> Result<Self, UpdateError> {
        let client_id = match &cfg.client_id {
            Some(id) => id.clone(),
            None => kept_or_new(db_dir)?,
        };
        Ok(Self {
            bucket: bucket(&cfg.channel, &client_id),
            client_id,
            channel: cfg.channel.clone(),
            ring: cfg.ring.clone(),
        })
    }

    pub fn client(&self) -> Client<'_> {
        Client {
            channel: &self.channel,
            ring: self.ring.as_deref(),
            bucket: self.bucket,
        }
    }
}

/// Client ids: what a check-in accepts (1 to 128 of A-Z a-z 0-9 . _ : -).
pub fn valid_client_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn kept_or_new(db_dir: &Path) -> Result<String, UpdateError> {
    let path = db_dir.join(CLIENT_ID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if valid_client_id(id) {
            return Ok(id.to_owned());
        }
        tracing::warn!(path = %path.display(), "the kept client id is malformed; making a new one");
    }
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| UpdateError::Other(format!("no randomness for a client id: {e}")))?;
    let id = hex::encode(b);
    std::fs::create_dir_all(db_dir)
        .map_err(|e| UpdateError::io("creating the database directory", db_dir, e))?;
    write_atomic(&path, format!("{id}\n").as_bytes(), 0o644)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::parse(
            &format!("mirrors = [\"http://127.0.0.1:1\"]\ntrusted_root = \"r\"\n{extra}"),
            Path::new("/etc/vigil/vigil.toml"),
        )
        .unwrap()
    }

    #[test]
    fn the_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load(&cfg(""), dir.path()).unwrap();
        assert_eq!(a.client_id.len(), 32);
        assert_eq!(a.channel, "stable");
        let b = Identity::load(&cfg(""), dir.path()).unwrap();
        assert_eq!(a, b);
        let set = Identity::load(
            &cfg("client_id = \"i-0abc\"\nring = \"canary\""),
            dir.path(),
        )
        .unwrap();
        assert_eq!(set.client_id, "i-0abc");
        assert_eq!(set.ring.as_deref(), Some("canary"));
        assert_eq!(set.bucket, bucket("stable", "i-0abc"));
    }
}
