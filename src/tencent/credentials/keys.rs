//! One set of keys as a request is signed with them (`Credentials`): the SecretId, the SecretKey
//! and the session token of temporary keys, compared in constant time and never printed. Plain
//! key material, below the signing (`tencent::api3`) and the sources that fetch keys.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// One set of keys, as used to sign one request.
#[derive(Clone)]
pub struct Credentials {
    /// Not a secret (it appears in every `Authorization` header), but an account's identity.
    pub secret_id: String,
    /// The SecretKey: only the signers read it (`expose_secret`); `Debug` shows `[REDACTED]`.
    pub secret_key: SecretString,
    /// Session token of temporary credentials, sent as `X-TC-Token`.
    pub token: Option<SecretString>,
}

impl Credentials {
    /// Long-lived keys without a session token (as from the configuration or the environment).
    pub fn new(secret_id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Credentials {
            secret_id: secret_id.into(),
            secret_key: SecretString::from(secret_key.into()),
            token: None,
        }
    }

    pub(crate) fn key(&self) -> &str {
        self.secret_key.expose_secret()
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.expose_secret())
    }
}

/// Whether two secrets are equal, in time that depends on their lengths only (no early exit at
/// the first differing byte), so that comparing configurations tells nothing about a key.
pub(crate) fn secrets_equal(a: &SecretString, b: &SecretString) -> bool {
    let (a, b) = (a.expose_secret().as_bytes(), b.expose_secret().as_bytes());
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

/// Compares the secrets (for reloads), in constant time, never prints them.
impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        self.secret_id == other.secret_id
            && secrets_equal(&self.secret_key, &other.secret_key)
            && match (&self.token, &other.token) {
                (Some(a), Some(b)) => secrets_equal(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

impl Eq for Credentials {}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"[REDACTED]")
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}
