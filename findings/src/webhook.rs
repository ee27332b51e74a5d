//! Standard Webhooks 1.0 signatures (<https://www.standardwebhooks.com/>) for webhook
//! deliveries of findings: the headers `webhook-id` (the finding's delivery id, stable across
//! retries so receivers deduplicate), `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 of HMAC-SHA256(secret, id + "." + timestamp + "." + body)>`.
//! A secret is written `whsec_<base64>` (the spec's form; the key is the decoded bytes) or is
//! taken as raw bytes otherwise. [`verify`] is what a receiver runs: constant-time comparison,
//! any of several space-separated signatures (secret rotation), and a timestamp tolerance
//! against replays.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The spec's default tolerance for a timestamp's distance from now.
pub const TOLERANCE_SECS: i64 = 5 * 60;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook secret is empty or its whsec_ part is not base64")]
    BadSecret,
    #[error("webhook-timestamp is {0} s away from now (tolerance {TOLERANCE_SECS} s)")]
    Stale(i64),
    #[error("no webhook-signature matches the body")]
    Mismatch,
}

/// The key bytes of a secret.
pub fn key(secret: &str) -> Result<Vec<u8>, WebhookError> {
    let secret = secret.trim();
    let bytes = match secret.strip_prefix("whsec_") {
        Some(b64) => STANDARD.decode(b64).map_err(|_| WebhookError::BadSecret)?,
        None => secret.as_bytes().to_vec(),
    };
    if bytes.is_empty() {
        return Err(WebhookError::BadSecret);
    }
    Ok(bytes)
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `webhook-signature` header value for a delivery.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1,{}",
        STANDARD.encode(mac(key, id, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a delivery as a receiver does: the timestamp within [`TOLERANCE_SECS`] of `now`, and
/// one of the header's `v1,` signatures matching the body.
pub fn verify(
    key: &[u8],
    id: &str,
    timestamp: i64,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), WebhookError> {
    let skew = now.saturating_sub(timestamp);
    if skew.abs() > TOLERANCE_SECS {
        return Err(WebhookError::Stale(skew));
    }
    for sig in signatures.split_whitespace() {
        let Some(b64) = sig.strip_prefix("v1,") else {
            continue;
        };
        let Ok(given) = STANDARD.decode(b64) else {
            continue;
        };
        if mac(key, id, timestamp, body).verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    Err(WebhookError::Mismatch)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The Standard Webhooks reference vector (also checked here with Python's hmac).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_reference_vector() {
        let k = key(SECRET).unwrap();
        assert_eq!(sign(&k, ID, TS, BODY), SIG);
        assert_eq!(verify(&k, ID, TS, SIG, BODY, TS + 10), Ok(()));
    }

    #[test]
    fn tampering_staleness_and_rotation() {
        let k = key(SECRET).unwrap();
        assert_eq!(
            verify(&k, ID, TS, SIG, br#"{"test": 2432232315}"#, TS),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify(&k, "msg_other", TS, SIG, BODY, TS),
            Err(WebhookError::Mismatch)
        );
        assert!(matches!(
            verify(&k, ID, TS, SIG, BODY, TS + 301),
            Err(WebhookError::Stale(301))
        ));
        // A rotated secret: the old and the new signature side by side; either verifies.
        let new = key("a-new-raw-secret").unwrap();
        let both = format!("{} {SIG}", sign(&new, ID, TS, BODY));
        assert_eq!(verify(&k, ID, TS, &both, BODY, TS), Ok(()));
        assert_eq!(verify(&new, ID, TS, &both, BODY, TS), Ok(()));
        assert_eq!(key("whsec_%%%"), Err(WebhookError::BadSecret));
        assert_eq!(key(" "), Err(WebhookError::BadSecret));
    }
}
