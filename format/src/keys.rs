//! Ed25519 signing and verifying keys and their text files.
//!
//! Keys are one line of text, `vigil-ed25519-secret <64 hex>` or `vigil-ed25519-public <64 hex>`,
//! so that a secret fits a CI variable and a public key can be pasted into a config or a review.
//! The key id is the first 8 bytes of SHA-256 of the public key; the container header carries it
//! so that a reader holding several trusted keys (during a rotation) knows which one to use.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

const SECRET_TAG: &str = "vigil-ed25519-secret";
const PUBLIC_TAG: &str = "vigil-ed25519-public";

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("not a vigil {expected} key: expected `{tag} <64 hex digits>`")]
    BadText {
        expected: &'static str,
        tag: &'static str,
    },
    #[error("the public key is not a valid ed25519 point")]
    BadPoint,
    #[error("no randomness from the OS: {0}")]
    Random(String),
}

/// A key id: enough to pick the right trusted key, not a security boundary.
pub type KeyId = [u8; 8];

pub struct SecretKey(SigningKey);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl SecretKey {
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let seed = parse_tagged(text, SECRET_TAG, "secret")?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    pub fn to_text(&self) -> String {
        format!("{SECRET_TAG} {}\n", hex::encode(self.0.to_bytes()))
    }

    /// The 32-byte seed, for wrapping the same key in another encoding (TUF's PKCS#8).
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = parse_tagged(text, PUBLIC_TAG, "public")?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| KeyError::BadPoint)
    }

    pub fn to_text(&self) -> String {
        format!("{PUBLIC_TAG} {}\n", hex::encode(self.0.to_bytes()))
    }

    pub fn key_id(&self) -> KeyId {
        let digest = Sha256::digest(self.0.to_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        id
    }

    /// Strict verification: rejects the malleable and small-order forms that plain
    /// `verify` lets through, since a signature here is the only thing vouching for content.
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        self.0.verify_strict(msg, &sig).is_ok()
    }
}

fn parse_tagged(
    text: &str,
    tag: &'static str,
    expected: &'static str,
) -> Result<[u8; 32], KeyError> {
    let bad = || KeyError::BadText { expected, tag };
    let mut words = text.split_whitespace();
    if words.next() != Some(tag) {
        return Err(bad());
    }
    let hex_text = words.next().ok_or_else(bad)?;
    if words.next().is_some() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).map_err(|_| bad())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_signature() {
        let sk = SecretKey::from_seed([7; 32]);
        let sk2 = SecretKey::parse(&sk.to_text()).expect("parse secret");
        let pk = PublicKey::parse(&sk.public().to_text()).expect("parse public");
        assert_eq!(pk, sk2.public());
        let sig = sk.sign(b"hello");
        assert!(pk.verify(b"hello", &sig));
        assert!(!pk.verify(b"hellp", &sig));
        assert!(
            PublicKey::parse(&sk.to_text()).is_err(),
            "secret text is not a public key"
        );
    }
}
