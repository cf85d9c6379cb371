//! HTTP basic authentication against `basic_auth_users` (bcrypt hashes), as the exporter-toolkit
//! does it:
//!
//! - bcrypt compares in constant time; a successful (user, hash, password) is remembered (by a
//!   SHA-256 of the three, never the password itself), so a scraper pays for bcrypt once per
//!   password, not per scrape;
//! - an unknown user is verified against a configured hash anyway (then refused), so it takes as
//!   long as a wrong password and timing does not tell which users exist;
//! - one bcrypt at a time, off the async threads: a flood of bad passwords costs at most one core.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, PoisonError};

use axum::http::HeaderValue;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// How many successful logins are remembered; the set is emptied when full.
const CACHE_CAPACITY: usize = 1024;

/// The configured users: username → bcrypt hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Users {
    hashes: BTreeMap<String, String>,
    /// Verified for unknown users, so they cost as much as a wrong password.
    dummy: String,
}

impl Users {
    /// `None` when there are no users (no authentication).
    pub fn new(hashes: BTreeMap<String, String>) -> Option<Users> {
        // The first user's hash as the decoy: same cost as a real user's.
        let dummy = hashes.values().next()?.clone();
        Some(Users { hashes, dummy })
    }
}

/// Checks `Authorization` headers; shared by every connection, across reloads.
#[derive(Debug)]
pub struct Authenticator {
    verified: Mutex<HashSet<[u8; 32]>>,
    bcrypt: Semaphore,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator {
            verified: Mutex::new(HashSet::new()),
            bcrypt: Semaphore::new(1),
        }
    }
}

fn cache_key(user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [user.as_bytes(), hash.as_bytes(), password] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// Splits `Basic base64(user:password)`; `None` when absent or malformed.
fn credentials(header: Option<&HeaderValue>) -> Option<(String, Vec<u8>)> {
    let value = header?.as_bytes();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, password) = decoded.split_at(colon);
    let user = String::from_utf8_lossy(user).into_owned();
    Some((user, password.get(1..).unwrap_or_default().to_vec()))
}

impl Authenticator {
    /// Whether the request's `Authorization` header names a user with the right password.
    pub async fn check(&self, users: &Users, header: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = credentials(header) else {
            return false;
        };
        let (hash, known) = match users.hashes.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => (users.dummy.clone(), false),
        };
        let key = cache_key(&user, &hash, &password);
        if known
            && self
                .verified
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&key)
        {
            return true;
        }
        let matches = {
            // The semaphore is never closed, so acquiring cannot fail; if it did, checking without
            // the bound is still correct.
            let _one_at_a_time = self.bcrypt.acquire().await.ok();
            tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
        };
        let ok = known && matches;
        if ok {
            let mut cache = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(key);
        }
        ok
    }

    /// Forgets remembered logins (after the users changed).
    pub fn forget(&self) {
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.verified.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    #[test]
    fn credentials_are_split_at_the_first_colon() {
        assert_eq!(
            credentials(Some(&basic("alice", "pa:ss"))),
            Some(("alice".into(), b"pa:ss".to_vec()))
        );
        let lower = HeaderValue::from_static("basic YWxpY2U6cHc=");
        assert_eq!(
            credentials(Some(&lower)),
            Some(("alice".into(), b"pw".to_vec()))
        );
        for bad in ["Bearer x", "Basic", "Basic !!!", "Basic YWxpY2U="] {
            assert_eq!(
                credentials(Some(&HeaderValue::from_static(bad))),
                None,
                "{bad}"
            );
        }
        assert_eq!(credentials(None), None);
    }

    #[tokio::test]
    async fn right_passwords_pass_and_are_remembered_wrong_ones_and_strangers_do_not() {
        let users = Users::new(BTreeMap::from([
            ("alice".to_string(), bcrypt::hash("wonderland", 4).unwrap()),
            ("bob".to_string(), bcrypt::hash("builder", 4).unwrap()),
        ]))
        .unwrap();
        let auth = Authenticator::default();
        assert!(
            auth.check(&users, Some(&basic("alice", "wonderland")))
                .await
        );
        assert_eq!(auth.remembered(), 1);
        assert!(
            auth.check(&users, Some(&basic("alice", "wonderland")))
                .await
        );
        assert!(auth.check(&users, Some(&basic("bob", "builder"))).await);
        assert!(!auth.check(&users, Some(&basic("alice", "builder"))).await);
        assert!(!auth.check(&users, Some(&basic("bob", ""))).await);
        // The decoy is alice's hash: her password under another name still fails.
        assert!(
            !auth
                .check(&users, Some(&basic("mallory", "wonderland")))
                .await
        );
        assert!(!auth.check(&users, None).await);
        assert_eq!(auth.remembered(), 2);
        auth.forget();
        assert_eq!(auth.remembered(), 0);
        assert!(Users::new(BTreeMap::new()).is_none());
    }
}
