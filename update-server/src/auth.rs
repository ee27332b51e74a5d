//! Private feeds: bearer tokens checked against a file of their SHA-256 hashes.
//!
//! The file holds one lowercase hex SHA-256 per line (`#` comments and blank lines allowed),
//! never a token itself, so a leaked config reveals nothing usable. `vigil-server hash-token`
//! prints the line for a token. Comparisons run in constant time over every stored hash.

use std::path::Path;

use axum::http::HeaderValue;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Error;

#[derive(Clone, Debug)]
pub struct TokenSet {
    hashes: Vec<[u8; 32]>,
}

impl TokenSet {
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::TokensRead {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let mut hashes = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why| Error::TokensLine {
                path: path.to_owned(),
                line: i + 1,
                why,
            };
            if line.len() != 64
                || !line
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(bad(
                    "expected a lowercase hex SHA-256 (64 characters); store hashes made by \
                     `vigil-server hash-token`, never tokens",
                ));
            }
            let mut hash = [0u8; 32];
            hex::decode_to_slice(line, &mut hash).map_err(|_| bad("invalid hex"))?;
            hashes.push(hash);
        }
        if hashes.is_empty() {
            return Err(Error::TokensEmpty {
                path: path.to_owned(),
            });
        }
        Ok(Self { hashes })
    }

    /// Does the `Authorization` header carry a known bearer token?
    pub fn allows(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(token) = authorization.and_then(|v| bearer(v.as_bytes())) else {
            return false;
        };
        let presented: [u8; 32] = Sha256::digest(token).into();
        // Fold over every hash, without short-circuiting, so timing says nothing about which
        // entry (or how much of one) matched.
        let mut found = subtle::Choice::from(0);
        for h in &self.hashes {
            found |= h.ct_eq(&presented);
        }
        found.into()
    }
}

fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let n = rest.iter().take_while(|&&b| b == b' ').count();
    let token = &rest[n..];
    (!token.is_empty()).then_some(token)
}

/// The tokens-file line for `token`: its SHA-256 in lowercase hex.
pub fn hash_token(token: &[u8]) -> String {
    hex::encode(Sha256::digest(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let file = format!(
            "# ops team\n\n{}\n  {}  \n",
            hash_token(b"secret-1"),
            hash_token(b"secret-2")
        );
        let set = TokenSet::parse(&file, Path::new("t")).unwrap();
        let hv = |s: &'static str| HeaderValue::from_static(s);
        assert!(set.allows(Some(&hv("Bearer secret-1"))));
        assert!(set.allows(Some(&hv("bearer secret-2"))));
        assert!(!set.allows(Some(&hv("Bearer secret-3"))));
        assert!(!set.allows(Some(&hv("Bearer "))));
        assert!(!set.allows(Some(&hv("Basic secret-1"))));
        assert!(!set.allows(Some(&hv("secret-1"))));
        assert!(!set.allows(None));
    }

    #[test]
    fn plain_tokens_and_junk_are_refused() {
        for bad in [
            "secret-1\n",
            &hash_token(b"x").to_uppercase(),
            &hash_token(b"x")[..63],
        ] {
            let err = TokenSet::parse(bad, Path::new("t")).unwrap_err();
            assert!(matches!(err, Error::TokensLine { line: 1, .. }), "{err}");
        }
        assert!(matches!(
            TokenSet::parse("# nothing\n", Path::new("t")),
            Err(Error::TokensEmpty { .. })
        ));
    }
}
