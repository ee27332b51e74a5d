//! vigil-keys: the public keys vigil's programs trust for databases when told nothing else.
//!
//! Input: the `*.pub` files of this folder, built in at compile time. Output: parsed
//! [`PublicKey`]s. The updater, the agent and `vigil-scan` take them from here and nowhere
//! else, so adding or retiring a release key (see README.md here) is one edit. It never holds a
//! private key: those never enter the repository. Neighbour: `vigil-format` parses them.

use vigil_format::{KeyError, PublicKey};

/// The release keys, as their text files. Ordered oldest first; a database signed by any of
/// them verifies.
pub const RELEASE_KEYS: &[&str] = &[include_str!("../vigil-release-2026.pub")];

/// The release keys, parsed.
pub fn release_keys() -> Result<Vec<PublicKey>, KeyError> {
    RELEASE_KEYS.iter().map(|t| PublicKey::parse(t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_key_parses_and_is_distinct() {
        let keys = release_keys().expect("built-in keys parse");
        assert_eq!(keys.len(), RELEASE_KEYS.len());
        let mut ids: Vec<_> = keys.iter().map(|k| k.key_id()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), keys.len(), "two built-in keys share a key id");
    }
}
