//! API credentials: where an account's keys come from, and keeping them out of every output.
//!
//! The secret key and session token are `secrecy` types: their `Debug` says `[REDACTED]`, and the
//! only way to the bytes is `expose_secret()`, called by the signer and nowhere else.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// One set of keys, as used to sign one request.
#[derive(Clone)]
pub struct Credentials {
    /// Not a secret (it appears in every `Authorization` header), but an account's identity.
    pub secret_id: String,
    pub secret_key: SecretString,
    /// Session token of temporary credentials, sent as `X-TC-Token`.
    pub token: Option<SecretString>,
}

impl Credentials {
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

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"[REDACTED]")
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Where an account's credentials come from.
#[derive(Clone, Debug)]
pub enum CredentialSource {
    /// Keys from the configuration file or from `TENCENTCLOUD_SECRET_ID` / `TENCENTCLOUD_SECRET_KEY`,
    /// resolved when the configuration is validated.
    Static(Credentials),
}

impl CredentialSource {
    /// The credentials to sign the next request with.
    pub async fn current(&self) -> Result<Credentials, CredentialError> {
        match self {
            CredentialSource::Static(c) => Ok(c.clone()),
        }
    }

    /// Whether a reload left this source as it was (compares the secrets, never prints them).
    pub fn same_as(&self, other: &CredentialSource) -> bool {
        match (self, other) {
            (CredentialSource::Static(a), CredentialSource::Static(b)) => {
                a.secret_id == b.secret_id && a.key() == b.key() && a.token() == b.token()
            }
        }
    }

    /// A short name for logs and `--check-config`.
    pub fn name(&self) -> &'static str {
        match self {
            CredentialSource::Static(_) => "static",
        }
    }
}

/// A credential source that could not give credentials. Never carries secret material.
#[derive(Debug, thiserror::Error)]
#[error("credential source {source_name}: {reason}")]
pub struct CredentialError {
    pub source_name: &'static str,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key_or_token() {
        let mut c = Credentials::new("AKIDpublic", "very-secret-key");
        c.token = Some(SecretString::from("session-token-xyz"));
        let shown = format!("{c:?} {:?}", CredentialSource::Static(c.clone()));
        assert!(shown.contains("AKIDpublic"));
        assert!(!shown.contains("very-secret-key"), "{shown}");
        assert!(!shown.contains("session-token-xyz"), "{shown}");
        assert_eq!(c.key(), "very-secret-key");
    }
}
