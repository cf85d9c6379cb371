//! API credentials: where an account's keys come from, keeping them fresh, and keeping them out
//! of every output.
//!
//! The secret key and session token are `secrecy` types: their `Debug` says `[REDACTED]`, and the
//! only way to the bytes is `expose_secret()`, called by the signers and nowhere else. Errors
//! ([`CredentialError`]) name the source and the reason, never secret material: answers of the
//! metadata service and STS are picked apart field by field, and never quoted.
//!
//! Sources ([`BaseSource`]), as the official SDKs know them: keys in the configuration or in
//! mounted files, the `TENCENTCLOUD_*` environment, a profile file, the CVM instance role (metadata
//! service), TKE pod identity (OIDC, `AssumeRoleWithWebIdentity`), or a chain of them; on top of any
//! of them, optionally, STS `AssumeRole` ([`AssumeRoleSpec`]).
//!
//! A [`CredentialSource`] is shared by all pollers of an account (clones share one cache). Temporary
//! credentials are refreshed ahead of their expiry ([`REFRESH_AHEAD`]), by one caller at a time;
//! while a refresh runs, or after one failed, the others keep signing with the credentials that
//! are still valid. Files are read again every [`FILE_RECHECK`], so rotated mounted secrets apply.
//! All timing is on tokio's clock, so tests drive expiry and rotation under paused time.

mod fetch;
pub mod keys;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::transport::Transport;
pub(crate) use fetch::{read_profile, read_secret_file};
pub use keys::Credentials;
use keys::secrets_equal;

/// Temporary credentials are refreshed this long before they expire (the SDKs' 300 s).
pub const REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// Credentials read from files (mounted secrets, profile) are read again after this long.
pub const FILE_RECHECK: Duration = Duration::from_secs(60);
/// After a failed refresh, while the old credentials are still valid, the next try waits this long.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(15);
/// Temporary credentials are not used in their last this-long (a call takes time; clocks differ).
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// The `X-TC-Version` of STS `AssumeRole` and `AssumeRoleWithWebIdentity`.
pub const STS_VERSION: &str = "2018-08-13";
/// `DurationSeconds` asked of STS for `AssumeRole` and `AssumeRoleWithWebIdentity` sessions: the
/// SDKs' default (STS allows up to 43200).
pub const STS_DURATION_SECONDS: u32 = 7200;
/// Default `metadata_endpoint` of an account: the CVM metadata service's base URL (plain HTTP,
/// reachable from the instance only).
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://metadata.tencentyun.com";
/// Default `sts_endpoint` of an account: where `AssumeRole` and `AssumeRoleWithWebIdentity` are
/// POSTed (`/`).
pub const DEFAULT_STS_ENDPOINT: &str = "https://sts.tencentcloudapi.com";
/// Default `role_session_name` of an account (STS wants 2 to 128 of `[A-Za-z0-9+=,.@_-]`).
pub const DEFAULT_ROLE_SESSION_NAME: &str = "tencent-live-exporter";
/// Default `profile` of an account: the INI section read from the credentials file.
pub const DEFAULT_PROFILE: &str = "default";

/// The SecretId of a `static` account: inline, or read from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretIdFrom {
    /// `secret_id`, trimmed, printable ASCII (checked at validation).
    Inline(String),
    /// `secret_id_file`: read at validation and again every [`FILE_RECHECK`], trimmed.
    File(PathBuf),
}

/// The SecretKey of a `static` account: inline (wrapped), or read from a file.
#[derive(Clone, Debug)]
pub enum SecretKeyFrom {
    /// `secret_key`, trimmed; compared in constant time, redacted in `Debug`.
    Inline(SecretString),
    /// `secret_key_file`: read at validation and again every [`FILE_RECHECK`], trimmed.
    File(PathBuf),
}

impl PartialEq for SecretKeyFrom {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SecretKeyFrom::Inline(a), SecretKeyFrom::Inline(b)) => secrets_equal(a, b),
            (SecretKeyFrom::File(a), SecretKeyFrom::File(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for SecretKeyFrom {}

/// TKE pod identity, from `TKE_REGION`, `TKE_PROVIDER_ID`, `TKE_WEB_IDENTITY_TOKEN_FILE`,
/// `TKE_ROLE_ARN` (captured when the configuration is validated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSpec {
    /// `TKE_REGION`: sent as `X-TC-Region` of `AssumeRoleWithWebIdentity`.
    pub region: String,
    /// `TKE_PROVIDER_ID`: the identity provider, `ProviderId` of the call.
    pub provider_id: String,
    /// `TKE_WEB_IDENTITY_TOKEN_FILE`, read at every refresh: TKE rotates the projected token.
    pub token_file: PathBuf,
    /// `TKE_ROLE_ARN`: the role the token is exchanged for, `RoleArn` of the call.
    pub role_arn: String,
    /// The account's `role_session_name`: `RoleSessionName` of the call.
    pub session_name: String,
    /// The account's `sts_endpoint`: where the call is POSTed (unsigned, `Authorization: SKIP`).
    pub sts_endpoint: Url,
}

/// One link of a `chain`: a source, or why it cannot be tried (`Err`, e.g. variables unset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainLink {
    /// The link's source name, `env`, `profile`, `cvm_role` or `oidc` (as in `credentials`),
    /// named in the error when no link gives keys.
    pub name: &'static str,
    /// The source to try, or why this link is skipped (e.g. `TKE_REGION, TKE_ROLE_ARN not set`),
    /// as found when the configuration was validated.
    pub source: Result<BaseSource, String>,
}

/// Where the keys come from (before any `AssumeRole`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseSource {
    /// `secret_id` / `secret_key`, each inline or from a file (`*_file`, re-read every
    /// [`FILE_RECHECK`]).
    Static {
        /// `secret_id` or `secret_id_file`.
        secret_id: SecretIdFrom,
        /// `secret_key` or `secret_key_file`.
        secret_key: SecretKeyFrom,
    },
    /// `TENCENTCLOUD_SECRET_ID` / `_SECRET_KEY` / `_TOKEN`, as they were when the configuration was
    /// validated.
    Env(Credentials),
    /// An INI profile file (`[name]` with `secret_id`, `secret_key`), re-read every [`FILE_RECHECK`].
    Profile {
        /// `$TENCENTCLOUD_CREDENTIALS_FILE`, else `$HOME/.tencentcloud/credentials`.
        file: PathBuf,
        /// The section: the account's `profile` (default [`DEFAULT_PROFILE`]).
        profile: String,
    },
    /// The CVM instance role, from the metadata service (base URL).
    CvmRole {
        /// The account's `role`; `None`: asked from the metadata service at every fetch.
        role: Option<String>,
        /// The account's `metadata_endpoint` (default [`DEFAULT_METADATA_ENDPOINT`]); the
        /// fetch appends `latest/meta-data/cam/security-credentials/`.
        metadata_endpoint: Url,
    },
    /// TKE pod identity.
    Oidc(OidcSpec),
    /// The first link that gives credentials, in order (env, profile, cvm_role, oidc), tried again
    /// from the start at every refresh.
    Chain(Vec<ChainLink>),
}

impl BaseSource {
    /// The `credentials` value that selects this source (`static`, `env`, `profile`,
    /// `cvm_role`, `oidc`, `chain`): in logs, errors and `--check-config`.
    pub fn name(&self) -> &'static str {
        match self {
            BaseSource::Static { .. } => "static",
            BaseSource::Env(_) => "env",
            BaseSource::Profile { .. } => "profile",
            BaseSource::CvmRole { .. } => "cvm_role",
            BaseSource::Oidc(_) => "oidc",
            BaseSource::Chain(_) => "chain",
        }
    }

    /// Whether fetching again can give other credentials (not so for keys fixed at start).
    fn refreshable(&self) -> bool {
        match self {
            BaseSource::Static {
                secret_id: SecretIdFrom::Inline(_),
                secret_key: SecretKeyFrom::Inline(_),
            }
            | BaseSource::Env(_) => false,
            BaseSource::Chain(links) => links
                .iter()
                .any(|l| l.source.as_ref().is_ok_and(BaseSource::refreshable)),
            _ => true,
        }
    }
}

/// STS `AssumeRole` on top of the base source, signed with the base credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumeRoleSpec {
    /// The account's `role_arn` (`qcs::cam::uin/<uin>:roleName/<name>`): `RoleArn`.
    pub role_arn: String,
    /// The account's `role_session_name`: `RoleSessionName`.
    pub session_name: String,
    /// The account's `sts_endpoint`: where `AssumeRole` is POSTed.
    pub sts_endpoint: Url,
    /// `DurationSeconds` asked: [`STS_DURATION_SECONDS`] (STS allows 43200 at most).
    pub duration_seconds: u32,
    /// The account's `external_id`: `ExternalId`, which a role whose trust policy has a
    /// `qcs:ExternalId` condition requires. `None`: not sent.
    pub external_id: Option<ExternalId>,
}

/// STS `AssumeRole`'s `ExternalId`: a secret shared between a reseller and one customer's role
/// trust policy. Held as a `secrecy` string: its `Debug` says `[REDACTED]`, and only the
/// `AssumeRole` request body reads it.
#[derive(Clone)]
pub struct ExternalId(pub SecretString);

impl ExternalId {
    /// Whether `s` is an ExternalId STS takes: 2 to 128 of letters, digits and `_+=,.@:/-`
    /// (the `AssumeRole` API page's rule, `[\w+=,.@:\/-]*`, as the tencentcloud SDKs'
    /// `sts/v20180813` models document it).
    pub fn is_valid(s: &str) -> bool {
        (2..=128).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c))
    }

    /// The value, for the request body only.
    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExternalId([REDACTED])")
    }
}

impl PartialEq for ExternalId {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for ExternalId {}

/// An account's whole credential configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSpec {
    /// Where the keys come from.
    pub base: BaseSource,
    /// `role_arn`: the base keys only sign `AssumeRole`, and the role's temporary keys sign the
    /// API calls. `None`: the base keys sign them.
    pub assume_role: Option<AssumeRoleSpec>,
}

/// What the HTTP-based sources (metadata, STS) go through: the account's transport (reqwest, or
/// an injected service in tests) and the per-call deadline.
#[derive(Clone, Copy)]
pub struct FetchContext<'a> {
    /// How the requests go out: reqwest (the metadata service by its own proxy-less client) or, in
    /// tests, an in-process router.
    pub transport: &'a Transport,
    /// Deadline of each metadata or STS call, the account's `poll.timeout`.
    pub timeout: Duration,
}

/// Where an account's credentials come from, with the cache its pollers share.
#[derive(Clone)]
pub struct CredentialSource {
    spec: Arc<SourceSpec>,
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<CacheState>,
    /// Held by the one caller that fetches (single-flight).
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct CacheState {
    current: Option<Cached>,
    generations: u64,
    /// The last fetch that failed with nothing usable cached: callers that were already waiting
    /// get this error instead of fetching again.
    last_failure: Option<(Instant, CredentialError)>,
}

struct Cached {
    credentials: Credentials,
    generation: u64,
    /// When to fetch again; `None`: never (fixed keys).
    refresh_at: Option<Instant>,
    /// When they become unusable; `None`: never.
    usable_until: Option<Instant>,
}

impl Cached {
    fn fresh(&self, now: Instant) -> bool {
        self.refresh_at.is_none_or(|t| now < t) && self.usable(now)
    }

    fn usable(&self, now: Instant) -> bool {
        self.usable_until.is_none_or(|t| now < t)
    }
}

/// What [`CredentialSource::probe`] found; no secret material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The source that gave keys: `static`, `env`, `profile`, `cvm_role` or `oidc` (for a
    /// chain, its first link that worked).
    pub from: &'static str,
    /// The SecretId (an identity, sent in every request's `Authorization` header).
    pub secret_id: String,
    /// Temporary keys with a session token.
    pub temporary: bool,
    /// The keys were exchanged by STS `AssumeRole` for the role of `role_arn`.
    pub assumed_role: bool,
}

/// Credentials to sign with, and which fetch they came from (for [`CredentialSource::invalidate`]).
pub struct Lease {
    /// The keys to sign this request with.
    pub credentials: Credentials,
    /// Which fetch gave them (counts up from 1 per source): hand it back to
    /// [`CredentialSource::invalidate`] when the API refuses their token.
    pub generation: u64,
}

impl fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The spec's Debug redacts every secret.
        f.debug_tuple("CredentialSource")
            .field(&*self.spec)
            .finish()
    }
}

impl CredentialSource {
    /// A source with an empty cache: the first [`Self::lease`] fetches.
    pub fn new(spec: SourceSpec) -> Self {
        CredentialSource {
            spec: Arc::new(spec),
            shared: Arc::new(Shared {
                state: Mutex::new(CacheState::default()),
                refresh: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Fixed keys (as from the configuration file).
    pub fn fixed(credentials: Credentials) -> Self {
        Self::new(SourceSpec {
            base: BaseSource::Static {
                secret_id: SecretIdFrom::Inline(credentials.secret_id),
                secret_key: SecretKeyFrom::Inline(credentials.secret_key),
            },
            assume_role: None,
        })
    }

    /// The configuration this source was built from (its `Debug` redacts every secret).
    pub fn spec(&self) -> &SourceSpec {
        &self.spec
    }

    /// The `credentials` value: `static`, `env`, `profile`, `cvm_role`, `oidc` or `chain`.
    pub fn name(&self) -> &'static str {
        self.spec.base.name()
    }

    /// Whether a reload left this source as it was (compares the secrets, never prints them).
    pub fn same_as(&self, other: &CredentialSource) -> bool {
        self.spec == other.spec
    }

    /// Whether asking again can give other credentials, so that an `AuthFailure.TokenFailure` is
    /// worth a refresh and a retry.
    pub fn refreshable(&self) -> bool {
        self.spec.assume_role.is_some() || self.spec.base.refreshable()
    }

    /// Resolves the source once, past the cache, as `--check-config` does: reads the files and
    /// the captured environment, asks the metadata service or STS where the source says so,
    /// never the Live API. Gives which source (a chain's link) would be used.
    pub async fn probe(&self, ctx: FetchContext<'_>) -> Result<Probe, CredentialError> {
        let fetched = fetch::fetch(&self.spec, ctx).await?;
        Ok(Probe {
            from: fetched.from,
            secret_id: fetched.credentials.secret_id,
            temporary: fetched.credentials.token.is_some(),
            assumed_role: self.spec.assume_role.is_some(),
        })
    }

    /// The credentials to sign the next request with.
    pub async fn current(&self, ctx: FetchContext<'_>) -> Result<Credentials, CredentialError> {
        self.lease(ctx).await.map(|l| l.credentials)
    }

    /// The credentials to sign the next request with, and their generation.
    pub async fn lease(&self, ctx: FetchContext<'_>) -> Result<Lease, CredentialError> {
        let arrived = Instant::now();
        let still_usable = {
            let state = self.lock();
            match &state.current {
                Some(c) if c.fresh(arrived) => return Ok(c.lease()),
                Some(c) if c.usable(arrived) => Some(c.lease()),
                _ => None,
            }
        };
        if let Some(usable) = still_usable {
            // A refresh is due but the old credentials still work: one caller refreshes, the
            // others go on with the old ones meanwhile; a failed refresh falls back on them.
            let Ok(_guard) = self.shared.refresh.try_lock() else {
                return Ok(usable);
            };
            return self.refresh_locked(ctx).await;
        }
        let _guard = self.shared.refresh.lock().await;
        {
            // Someone else may have fetched (or failed to) while this caller waited.
            let state = self.lock();
            let now = Instant::now();
            if let Some(c) = state.current.as_ref().filter(|c| c.fresh(now)) {
                return Ok(c.lease());
            }
            if let Some((at, e)) = &state.last_failure {
                if *at >= arrived {
                    return Err(e.clone());
                }
            }
        }
        self.refresh_locked(ctx).await
    }

    /// Forgets the credentials of `generation` (the API refused their token), so that the next
    /// [`Self::lease`] fetches new ones. Credentials fetched since are kept.
    pub fn invalidate(&self, generation: u64) {
        let mut state = self.lock();
        if state
            .current
            .as_ref()
            .is_some_and(|c| c.generation == generation)
        {
            state.current = None;
            state.last_failure = None;
        }
    }

    /// Fetches; the caller holds the refresh lock. On failure with usable credentials cached,
    /// gives those (and tries again after [`RETRY_AFTER_FAILURE`]), with a warning.
    async fn refresh_locked(&self, ctx: FetchContext<'_>) -> Result<Lease, CredentialError> {
        let result = fetch::fetch(&self.spec, ctx).await;
        let now = Instant::now();
        let mut state = self.lock();
        match result {
            Ok(fetched) => {
                state.generations += 1;
                let generation = state.generations;
                let (refresh_at, usable_until) = match fetched.validity {
                    fetch::Validity::Fixed => (None, None),
                    fetch::Validity::Recheck => (Some(now + FILE_RECHECK), None),
                    fetch::Validity::Expires(left) => {
                        let ahead = if left >= REFRESH_AHEAD * 2 {
                            REFRESH_AHEAD
                        } else {
                            left / 2
                        };
                        (
                            Some(now + left - ahead),
                            Some(now + left - EXPIRY_MARGIN.min(left / 4)),
                        )
                    }
                };
                let unchanged = state
                    .current
                    .as_ref()
                    .is_some_and(|c| c.credentials == fetched.credentials);
                if unchanged {
                    // Files read again, as they were: nothing worth a debug line every minute.
                    tracing::trace!(source = self.name(), "credentials unchanged");
                } else {
                    tracing::debug!(
                        source = self.name(),
                        from = fetched.from,
                        assumed_role = self.spec.assume_role.is_some(),
                        temporary = fetched.credentials.token.is_some(),
                        refresh_in_s = refresh_at.map(|t| (t - now).as_secs()),
                        "credentials obtained"
                    );
                }
                let cached = Cached {
                    credentials: fetched.credentials,
                    generation,
                    refresh_at,
                    usable_until,
                };
                let lease = cached.lease();
                state.current = Some(cached);
                state.last_failure = None;
                Ok(lease)
            }
            Err(e) => {
                if let Some(c) = state.current.as_mut().filter(|c| c.usable(now)) {
                    let left = c.usable_until.map(|t| (t - now).as_secs());
                    tracing::warn!(
                        usable_for_s = left,
                        "refreshing credentials failed, still using the current ones: {e}"
                    );
                    c.refresh_at = Some(now + RETRY_AFTER_FAILURE);
                    return Ok(c.lease());
                }
                state.current = None;
                state.last_failure = Some((now, e.clone()));
                Err(e)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // The state is a few plain fields, consistent after every statement: a poisoned lock
        // (a panic elsewhere while holding it) leaves nothing half-done.
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Cached {
    fn lease(&self) -> Lease {
        Lease {
            credentials: self.credentials.clone(),
            generation: self.generation,
        }
    }
}

/// A credential source that could not give credentials. Never carries secret material.
#[derive(Debug, Clone, thiserror::Error)]
#[error("credential source {source_name}: {reason}")]
pub struct CredentialError {
    /// The source that failed (`static`, `env`, `profile`, `cvm_role`, `oidc`, or `chain` when
    /// every link did), or `role_arn` when `AssumeRole` on top of it failed.
    pub source_name: &'static str,
    /// What went wrong, in words: e.g. a file path, an HTTP status, or STS's error `Code`,
    /// `Message` and `RequestId`; never key material.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_static(id: &str, key: &str) -> CredentialSource {
        CredentialSource::fixed(Credentials::new(id, key))
    }

    #[test]
    fn debug_never_shows_the_key_or_token() {
        let mut c = Credentials::new("AKIDpublic", "very-secret-key");
        c.token = Some(SecretString::from("session-token-xyz"));
        let env = CredentialSource::new(SourceSpec {
            base: BaseSource::Env(c.clone()),
            assume_role: None,
        });
        let shown = format!(
            "{c:?} {:?} {env:?} {:#?}",
            spec_static("AKIDpublic", "very-secret-key"),
            env.spec()
        );
        assert!(shown.contains("AKIDpublic"));
        assert!(!shown.contains("very-secret-key"), "{shown}");
        assert!(!shown.contains("session-token-xyz"), "{shown}");
        assert_eq!(c.key(), "very-secret-key");
    }

    #[test]
    fn a_panic_with_credentials_in_it_shows_no_secret() {
        let mut c = Credentials::new("AKIDpublic", "panic-secret-key");
        c.token = Some(SecretString::from("panic-session-token"));
        let caught = std::panic::catch_unwind(|| panic!("boom: {c:?}")).unwrap_err();
        let message = caught.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("AKIDpublic"), "{message}");
        assert!(!message.contains("panic-secret-key"), "{message}");
        assert!(!message.contains("panic-session-token"), "{message}");
    }

    #[test]
    fn same_as_compares_the_configuration_not_the_cache() {
        assert!(spec_static("a", "k").same_as(&spec_static("a", "k")));
        assert!(!spec_static("a", "k").same_as(&spec_static("a", "k2")));
        assert!(!spec_static("a", "k").same_as(&spec_static("b", "k")));
        let cvm = |role: Option<&str>| {
            CredentialSource::new(SourceSpec {
                base: BaseSource::CvmRole {
                    role: role.map(String::from),
                    metadata_endpoint: Url::parse(DEFAULT_METADATA_ENDPOINT).unwrap(),
                },
                assume_role: None,
            })
        };
        assert!(cvm(Some("r")).same_as(&cvm(Some("r"))));
        assert!(!cvm(Some("r")).same_as(&cvm(None)));
        assert!(!cvm(None).same_as(&spec_static("a", "k")));
        assert!(!spec_static("a", "k").refreshable());
        assert!(cvm(None).refreshable());
    }

    #[tokio::test]
    async fn fixed_keys_are_given_as_they_are() {
        let source = spec_static("AKIDx", "key-x");
        let transport = Transport::service(axum::Router::new());
        let ctx = FetchContext {
            transport: &transport,
            timeout: Duration::from_secs(1),
        };
        let a = source.lease(ctx).await.unwrap();
        let b = source.clone().lease(ctx).await.unwrap();
        assert_eq!(a.credentials.secret_id, "AKIDx");
        assert_eq!(a.credentials.key(), "key-x");
        assert_eq!(a.generation, b.generation, "clones share one cache");
    }
}
