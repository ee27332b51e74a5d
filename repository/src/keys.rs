//! TUF role keys.
//!
//! The same ed25519 text format as database keys (`vigil-ed25519-secret <hex>`), one file per
//! role in a keys directory: `root.key`, `targets.key`, `snapshot.key`, `timestamp.key`. The root
//! key belongs offline with the admin; the other three can live in CI secrets, where
//! `VIGIL_TUF_TARGETS_KEY` (and `_SNAPSHOT_`, `_TIMESTAMP_`) hold the key text and take
//! precedence over files. tough signs through PKCS#8, so each key is wrapped on the fly.

use std::fmt;
use std::path::Path;

use ed25519_dalek::pkcs8::EncodePrivateKey;
use tough::key_source::KeySource;
use tough::schema::key::Key;
use tough::sign::Sign;
use vigil_format::SecretKey;

use crate::error::RepoError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Root,
    Targets,
    Snapshot,
    Timestamp,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Root, Role::Targets, Role::Snapshot, Role::Timestamp];
    /// The roles that sign every publish; root signs only root.
    pub const ONLINE: [Role; 3] = [Role::Targets, Role::Snapshot, Role::Timestamp];

    pub fn name(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Targets => "targets",
            Role::Snapshot => "snapshot",
            Role::Timestamp => "timestamp",
        }
    }

    pub fn file_name(self) -> String {
        format!("{}.key", self.name())
    }

    pub fn env_var(self) -> String {
        format!("VIGIL_TUF_{}_KEY", self.name().to_ascii_uppercase())
    }

    pub fn tuf(self) -> tough::schema::RoleType {
        use tough::schema::RoleType;
        match self {
            Role::Root => RoleType::Root,
            Role::Targets => RoleType::Targets,
            Role::Snapshot => RoleType::Snapshot,
            Role::Timestamp => RoleType::Timestamp,
        }
    }
}

/// One role key, usable by tough as a [`KeySource`].
pub struct RoleKey {
    pub role: Role,
    key: SecretKey,
}

impl fmt::Debug for RoleKey {
    // Never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RoleKey({}, {})",
            self.role.name(),
            self.key.public().to_text().trim()
        )
    }
}

impl RoleKey {
    pub fn new(role: Role, key: SecretKey) -> Self {
        Self { role, key }
    }

    pub fn generate(role: Role) -> Result<Self, RepoError> {
        let key = SecretKey::generate().map_err(|e| RepoError::Key {
            role: role.name(),
            origin: "the system random generator".into(),
            message: e.to_string(),
        })?;
        Ok(Self { role, key })
    }

    /// From `VIGIL_TUF_<ROLE>_KEY` if set, else `<dir>/<role>.key`; `Ok(None)` if neither exists.
    pub fn load(role: Role, dir: &Path) -> Result<Option<Self>, RepoError> {
        let (text, origin) = match std::env::var(role.env_var()) {
            Ok(v) if !v.trim().is_empty() => {
                (v, format!("environment variable {}", role.env_var()))
            }
            _ => {
                let path = dir.join(role.file_name());
                match std::fs::read_to_string(&path) {
                    Ok(t) => (t, path.display().to_string()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(RepoError::io("reading", &path, e)),
                }
            }
        };
        let key = SecretKey::parse(&text).map_err(|e| RepoError::Key {
            role: role.name(),
            origin,
            message: e.to_string(),
        })?;
        Ok(Some(Self { role, key }))
    }

    pub fn load_required(role: Role, dir: &Path) -> Result<Self, RepoError> {
        Self::load(role, dir)?.ok_or_else(|| RepoError::Key {
            role: role.name(),
            origin: dir.join(role.file_name()).display().to_string(),
            message: format!("not found (nor is {} set)", role.env_var()),
        })
    }

    pub fn secret(&self) -> &SecretKey {
        &self.key
    }

    fn pkcs8(&self) -> Result<Vec<u8>, RepoError> {
        let sk = ed25519_dalek::SigningKey::from_bytes(&self.key.seed());
        let der = sk.to_pkcs8_der().map_err(|e| RepoError::Key {
            role: self.role.name(),
            origin: "memory".into(),
            message: e.to_string(),
        })?;
        Ok(der.as_bytes().to_vec())
    }

    /// The public key as root.json lists it.
    pub fn tuf_key(&self) -> Result<Key, RepoError> {
        let signer = tough::sign::parse_keypair(&self.pkcs8()?)
            .map_err(|e| RepoError::tuf(format!("{} key", self.role.name()), e))?;
        Ok(signer.tuf_key())
    }

    pub fn boxed(self) -> Box<dyn KeySource> {
        Box::new(self)
    }
}

#[tough::async_trait]
impl KeySource for RoleKey {
    async fn as_sign(&self) -> Result<Box<dyn Sign>, Box<dyn std::error::Error + Send + Sync>> {
        let der = self.pkcs8().map_err(|e| e.to_string())?;
        Ok(Box::new(tough::sign::parse_keypair(&der)?))
    }

    async fn write(
        &self,
        _value: &str,
        _key_id_hex: &str,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Err("vigil role keys are written by `vigil-build repo init`, not by tough".into())
    }
}

/// Writes a new key file with mode 0600, refusing to overwrite one.
pub fn write_new_key(dir: &Path, name: &str, key: &SecretKey) -> Result<(), RepoError> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|e| RepoError::io("creating", dir, e))?;
    let path = dir.join(name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&path)
        .map_err(|e| RepoError::io("creating", &path, e))?;
    f.write_all(key.to_text().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| RepoError::io("writing", &path, e))
}
