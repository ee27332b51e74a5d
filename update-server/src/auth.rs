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
        match authorization.and_then(|v| bearer(v.as_bytes())) {
            Some(token) => self.knows(token),
            None => false,
        }
    }

    /// For admin reads: a bearer token, or HTTP Basic with any user name and the token as
    /// the password, so that a browser can open the fleet console.
    pub fn allows_admin(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(value) = authorization.map(HeaderValue::as_bytes) else {
            return false;
        };
        if let Some(token) = bearer(value) {
            return self.knows(token);
        }
        match basic_password(value) {
            Some(password) => self.knows(&password),
            None => false,
        }
    }

    fn knows(&self, token: &[u8]) -> bool {
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

/// The password of `Basic base64(user:password)`; `None` when empty or malformed.
fn basic_password(value: &[u8]) -> Option<Vec<u8>> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let n = rest.iter().take_while(|&&b| b == b' ').count();
    let decoded = base64_decode(&rest[n..])?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let password = decoded[colon + 1..].to_vec();
    (!password.is_empty()).then_some(password)
}

/// Standard base64 with padding (RFC 4648), as Basic credentials use; `None` on anything else.
fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(4) || s.len() > 4096 {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let chunks = s.len() / 4;
    for (i, q) in s.chunks_exact(4).enumerate() {
        let pad = q.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != chunks) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
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
    fn admin_tokens_by_bearer_or_basic() {
        let set = TokenSet::parse(&hash_token(b"adm1n"), Path::new("t")).unwrap();
        let hv = |s: &'static str| HeaderValue::from_static(s);
        assert!(set.allows_admin(Some(&hv("Bearer adm1n"))));
        // base64("admin:adm1n") and base64(":adm1n")
        assert!(set.allows_admin(Some(&hv("Basic YWRtaW46YWRtMW4="))));
        assert!(set.allows_admin(Some(&hv("basic OmFkbTFu"))));
        // base64("admin:wrong"), the token as user name, junk
        assert!(!set.allows_admin(Some(&hv("Basic YWRtaW46d3Jvbmc="))));
        assert!(!set.allows_admin(Some(&hv("Basic YWRtMW46"))));
        assert!(!set.allows_admin(Some(&hv("Basic !!!!"))));
        assert!(!set.allows_admin(Some(&hv("Basic "))));
        assert!(!set.allows_admin(None));
        // The feed check stays Bearer-only.
        assert!(!set.allows(Some(&hv("Basic YWRtaW46YWRtMW4="))));
        assert_eq!(base64_decode(b"aGk="), Some(b"hi".to_vec()));
        assert_eq!(base64_decode(b"aGk=aGk="), None);
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
