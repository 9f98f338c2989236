//! The "this wasn't me" link's token: the (org, change, user) it is for and when it expires,
//! sealed with XChaCha20-Poly1305 under the operator's key. The URL shows nothing of what is
//! inside (no user id, no address), cannot be altered without failing to open, and cannot be
//! made without the key. A previous key still opens tokens (rotation: keep it configured for as
//! long as a link lives, then drop it). Single use is the store's to enforce (one report per
//! (org, change, user)). Pure.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// What a token is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The org's name in the configuration.
    #[serde(rename = "o")]
    pub org: String,
    /// The change's Okta event id.
    #[serde(rename = "c")]
    pub change: String,
    /// The user's Okta id.
    #[serde(rename = "u")]
    pub user: String,
    /// Unix seconds after which the link no longer works.
    #[serde(rename = "e")]
    pub expires: i64,
}

impl Claims {
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.expires, 0).unwrap_or_default()
    }
}

/// Why a token does not open. Deliberately coarse towards the visitor: altered, foreign and
/// malformed tokens all read "not valid".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is not valid")]
    Invalid,
    #[error("the link expired at {0}")]
    Expired(DateTime<Utc>),
}

/// Binds the ciphertext to its purpose: a token made for something else under the same key
/// does not open here.
const CONTEXT: &[u8] = b"factorwatch not-me v1";
const VERSION: u8 = 1;
const NONCE: usize = 24;
/// Longest token accepted (a URL path segment): a few hundred characters is plenty.
pub const MAX_LEN: usize = 600;

/// The keys links are sealed and opened with.
#[derive(Clone)]
pub struct Keys {
    current: XChaCha20Poly1305,
    previous: Option<XChaCha20Poly1305>,
    /// HMAC key for the form check (never the AEAD key: a MAC needs no nonce).
    form: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("previous", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

/// A 256-bit key from the operator's secret, whatever its length (it is checked to be long
/// enough at start).
fn cipher(secret: &Secret) -> XChaCha20Poly1305 {
    let mut h = Sha256::new();
    h.update(CONTEXT);
    h.update(secret.expose().as_bytes());
    XChaCha20Poly1305::new(&h.finalize())
}

impl Keys {
    pub fn new(current: &Secret, previous: Option<&Secret>) -> Keys {
        let mut h = Sha256::new();
        h.update(b"factorwatch not-me form v1");
        h.update(current.expose().as_bytes());
        Keys {
            current: cipher(current),
            previous: previous.map(cipher),
            form: h.finalize().into(),
        }
    }

    /// A new token for `claims` (a fresh random nonce each time).
    pub fn seal(&self, claims: &Claims) -> String {
        use rand::RngCore;
        let mut nonce = [0u8; NONCE];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let plain = serde_json::to_vec(claims).unwrap_or_default();
        let sealed = self
            .current
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &plain,
                    aad: CONTEXT,
                },
            )
            .unwrap_or_default();
        let mut bytes = Vec::with_capacity(1 + NONCE + sealed.len());
        bytes.push(VERSION);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The claims of a token made with one of the keys, if it has not expired at `now`.
    pub fn open(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        if token.len() > MAX_LEN {
            return Err(TokenError::Invalid);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Invalid)?;
        if bytes.len() <= 1 + NONCE || bytes[0] != VERSION {
            return Err(TokenError::Invalid);
        }
        let (nonce, sealed) = bytes[1..].split_at(NONCE);
        let nonce: [u8; NONCE] = nonce.try_into().map_err(|_| TokenError::Invalid)?;
        let payload = || Payload {
            msg: sealed,
            aad: CONTEXT,
        };
        let nonce = &XNonce::from(nonce);
        let plain = self
            .current
            .decrypt(nonce, payload())
            .or_else(|_| match &self.previous {
                Some(p) => p.decrypt(nonce, payload()),
                None => Err(chacha20poly1305::aead::Error),
            })
            .map_err(|_| TokenError::Invalid)?;
        let claims: Claims = serde_json::from_slice(&plain).map_err(|_| TokenError::Invalid)?;
        if now.timestamp() >= claims.expires {
            return Err(TokenError::Expired(claims.expires_at()));
        }
        Ok(claims)
    }

    /// The form's anti-forgery value for a token: only the server can compute it, and it is
    /// worth nothing without the token it belongs to.
    pub fn form_check(&self, token: &str) -> String {
        use hmac::{Hmac, Mac};
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.form) else {
            return String::new();
        };
        mac.update(token.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `value` is the form check of `token` (compared in constant time).
    pub fn form_check_ok(&self, token: &str, value: &str) -> bool {
        let expected = self.form_check(token);
        !expected.is_empty()
            && expected.len() == value.len()
            && expected
                .bytes()
                .zip(value.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &str) -> Keys {
        Keys::new(&Secret::new(k), None)
    }

    fn claims(expires: i64) -> Claims {
        Claims {
            org: "acme".into(),
            change: "evt-1".into(),
            user: "00u1".into(),
            expires,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn a_sealed_token_opens_to_its_claims_and_shows_nothing() {
        let k = keys("k1-0123456789abcdef");
        let c = claims(now().timestamp() + 60);
        let t = k.seal(&c);
        assert_eq!(k.open(&t, now()), Ok(c));
        assert!(!t.contains("acme") && !t.contains("00u1") && !t.contains("evt"));
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(t, k.seal(&claims(now().timestamp() + 60)), "fresh nonce");
    }

    #[test]
    fn altered_foreign_and_expired_tokens_are_refused() {
        let k = keys("k1-0123456789abcdef");
        let t = k.seal(&claims(now().timestamp() + 60));
        for i in [0, 5, 30, t.len() - 1] {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(b).unwrap_or_default();
            assert_eq!(
                k.open(&altered, now()),
                Err(TokenError::Invalid),
                "byte {i}"
            );
        }
        assert_eq!(
            keys("another-key-0123456789").open(&t, now()),
            Err(TokenError::Invalid)
        );
        assert_eq!(k.open("", now()), Err(TokenError::Invalid));
        assert_eq!(k.open(&"A".repeat(5000), now()), Err(TokenError::Invalid));
        let old = k.seal(&claims(now().timestamp()));
        assert!(matches!(k.open(&old, now()), Err(TokenError::Expired(_))));
    }

    #[test]
    fn the_previous_key_still_opens_tokens_until_it_is_removed() {
        let old = keys("old-key-0123456789abc");
        let t = old.seal(&claims(now().timestamp() + 60));
        let rotated = Keys::new(
            &Secret::new("new-key-0123456789abc"),
            Some(&Secret::new("old-key-0123456789abc")),
        );
        assert!(rotated.open(&t, now()).is_ok());
        assert_eq!(
            keys("new-key-0123456789abc").open(&t, now()),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn the_form_check_belongs_to_its_token() {
        let k = keys("k1-0123456789abcdef");
        let a = k.seal(&claims(now().timestamp() + 60));
        let b = k.seal(&claims(now().timestamp() + 60));
        assert!(k.form_check_ok(&a, &k.form_check(&a)));
        assert!(!k.form_check_ok(&a, &k.form_check(&b)));
        assert!(!k.form_check_ok(&a, ""));
        assert!(!keys("other-0123456789abcdef").form_check_ok(&a, &k.form_check(&a)));
    }
}
