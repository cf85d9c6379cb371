//! Configuration: the raw TOML/environment/flag layers, and the validated [`Config`] that
//! everything else runs on.
//!
//! Layers, later wins: built-in defaults, the TOML file (`--config.file`), environment overrides
//! `TLE__SECTION__KEY` (double underscores, because keys contain single ones), then flags.
//! Validation turns strings into durations, URLs and secrets, and names the key of every fault.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use std::path::Path;
use std::time::Duration;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::cli::ListenAddress;
use crate::packages::QueryType;
use crate::poller::RetryPolicy;
use crate::tencent::credentials::{
    self as creds, AssumeRoleSpec, BaseSource, ChainLink, CredentialSource, Credentials, OidcSpec,
    STS_DURATION_SECONDS, SecretIdFrom, SecretKeyFrom, SourceSpec,
};

/// Defaults; `config.example.toml` documents the same values and a test keeps them equal.
pub mod defaults {
    pub const LISTEN_ADDRESS: &str = "0.0.0.0:9877";
    pub const TELEMETRY_PATH: &str = "/metrics";
    pub const INTERVAL: &str = "5m";
    pub const TIMEOUT: &str = "10s";
    pub const REQUESTS_PER_SECOND: i64 = 10;
    pub const PAGE_SIZE: i64 = 100;
    pub const PACKAGE_TYPES: [&str; 3] = ["traffic", "transcode", "co_anchoring"];
    pub const MAX_RETRIES: i64 = 3;
    pub const BACKOFF_BASE: &str = "500ms";
    pub const BACKOFF_MAX: &str = "10s";
    /// `max_staleness` defaults to this many intervals.
    pub const STALENESS_INTERVALS: u32 = 3;
    pub const ENDPOINT: &str = "https://live.tencentcloudapi.com";
    pub const ACCOUNT_NAME: &str = "default";
}

/// The API's own limit per account and second.
pub const API_REQUESTS_PER_SECOND: i64 = 20;

/// Environment variables the official SDKs read for keys.
pub const ENV_SECRET_ID: &str = "TENCENTCLOUD_SECRET_ID";
pub const ENV_SECRET_KEY: &str = "TENCENTCLOUD_SECRET_KEY";
pub const ENV_TOKEN: &str = "TENCENTCLOUD_TOKEN";
/// The profile file, when not `~/.tencentcloud/credentials`.
pub const ENV_CREDENTIALS_FILE: &str = "TENCENTCLOUD_CREDENTIALS_FILE";
/// TKE pod identity (OIDC), as TKE sets them in the pod.
pub const ENV_TKE_REGION: &str = "TKE_REGION";
pub const ENV_TKE_PROVIDER_ID: &str = "TKE_PROVIDER_ID";
pub const ENV_TKE_WEB_IDENTITY_TOKEN_FILE: &str = "TKE_WEB_IDENTITY_TOKEN_FILE";
pub const ENV_TKE_ROLE_ARN: &str = "TKE_ROLE_ARN";
/// The values of `accounts[].credentials`.
pub const CREDENTIAL_SOURCES: [&str; 6] = ["chain", "static", "env", "profile", "cvm_role", "oidc"];

// ---------------------------------------------------------------------------------------------
// Raw layer: exactly what the file and environment say, unknown keys refused.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub web: RawWeb,
    #[serde(default)]
    pub poll: RawPoll,
    /// `None` when the file has no `[[accounts]]` at all.
    pub accounts: Option<Vec<RawAccount>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    /// One address, or a list of them (as the repeated flag gives).
    pub listen_address: Option<OneOrMany>,
    pub telemetry_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoll {
    pub interval: Option<String>,
    pub timeout: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    pub requests_per_second: Option<i64>,
    #[serde(default, deserialize_with = "whole_number")]
    pub page_size: Option<i64>,
    pub package_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "whole_number")]
    pub max_retries: Option<i64>,
    pub backoff_base: Option<String>,
    pub backoff_max: Option<String>,
    pub max_staleness: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub name: String,
    pub secret_id: Option<String>,
    /// Wrapped as soon as it is read: `Debug` shows `[REDACTED]`.
    pub secret_key: Option<SecretString>,
    pub endpoint: Option<String>,
    /// `chain` (default), `static`, `env`, `profile`, `cvm_role` or `oidc`.
    pub credentials: Option<String>,
    /// Mounted secrets: the SecretId / SecretKey are the file's contents (re-read on change).
    pub secret_id_file: Option<String>,
    pub secret_key_file: Option<String>,
    /// `profile`: the section of the credentials file.
    pub profile: Option<String>,
    /// `cvm_role`: the role name (asked from the metadata service when omitted).
    pub role: Option<String>,
    pub metadata_endpoint: Option<String>,
    /// STS `AssumeRole` on top of the source.
    pub role_arn: Option<String>,
    pub role_session_name: Option<String>,
    pub sts_endpoint: Option<String>,
    /// Accounts with the same group share one request budget (keys of one Tencent account).
    pub rate_limit_group: Option<String>,
}

/// A key that takes one string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Flags that override the file (the ones the file also has).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// Every `--web.listen-address`; empty: the file's.
    pub listen_address: Vec<String>,
    pub telemetry_path: Option<String>,
}

/// Reads the layers: the optional file, then `TLE__*` variables from `env`.
pub fn load_raw(
    file: Option<&Path>,
    env: BTreeMap<String, String>,
) -> Result<RawConfig, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError(format!(
                "config file {}: not found or not a file",
                path.display()
            )));
        }
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
    }
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("TLE__"))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix("TLE")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("poll.package_types")
            .source(Some(env)),
    );
    let where_ = file.map_or("environment".to_owned(), |p| p.display().to_string());
    builder
        .build()
        .and_then(|c| c.try_deserialize::<RawConfig>())
        .map_err(|e| ConfigError(format!("{where_}: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Validated layer.

/// A configuration fault, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn fault(key: &str, msg: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("{key}: {msg}"))
}

#[derive(Debug, Clone)]
pub struct Config {
    pub web: WebConfig,
    pub poll: PollConfig,
    pub accounts: Vec<AccountConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    /// Where to listen, at least one (`--web.listen-address` may be repeated).
    pub listen_addresses: Vec<ListenAddress>,
    /// Where `/metrics` is served; starts with `/`.
    pub telemetry_path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PollConfig {
    pub interval: Duration,
    /// Deadline of one API call.
    pub timeout: Duration,
    /// Per account, in any one-second window.
    pub requests_per_second: u32,
    /// `PageSize` sent with every page.
    pub page_size: u32,
    pub package_types: Vec<QueryType>,
    pub retry: RetryPolicy,
    /// A pair with no success for this long loses its package series.
    pub max_staleness: Duration,
}

#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// The `account` label.
    pub name: String,
    pub credentials: CredentialSource,
    /// Base URL the API is POSTed to.
    pub endpoint: Url,
    /// Shares the request budget with every account of the same group, instead of keying it by
    /// the signing key (see `crate::budget::budget_key`).
    pub rate_limit_group: Option<String>,
}

fn duration(key: &str, raw: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    let s = raw.unwrap_or(default);
    humantime::parse_duration(s.trim()).map_err(|e| {
        fault(
            key,
            format!("{s:?} is not a duration like \"30s\" or \"5m\" ({e})"),
        )
    })
}

/// Bounds of every duration in the configuration, so that no arithmetic on one (adding it to an
/// `Instant`, multiplying it) can overflow anywhere: `(key, least, most)`.
pub const DURATION_BOUNDS: [(&str, Duration, Duration); 5] = [
    (
        "poll.interval",
        Duration::from_secs(1),
        DAY.saturating_mul(7),
    ),
    (
        "poll.timeout",
        Duration::from_millis(100),
        Duration::from_secs(600),
    ),
    (
        "poll.backoff_base",
        Duration::ZERO,
        Duration::from_secs(3600),
    ),
    (
        "poll.backoff_max",
        Duration::ZERO,
        Duration::from_secs(3600),
    ),
    (
        "poll.max_staleness",
        Duration::from_secs(1),
        DAY.saturating_mul(30),
    ),
];

const DAY: Duration = Duration::from_secs(86_400);

/// Most `[[accounts]]` one exporter polls.
pub const MAX_ACCOUNTS: usize = 10_000;

/// Longest `web.telemetry_path`.
pub const MAX_TELEMETRY_PATH_LEN: usize = 256;

/// A duration within its key's [`DURATION_BOUNDS`], or a fault naming the key and the bounds.
fn bounded_duration(key: &str, raw: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    let d = duration(key, raw, default)?;
    let (least, most) = DURATION_BOUNDS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map_or((Duration::ZERO, Duration::MAX), |(_, l, m)| (*l, *m));
    if (least..=most).contains(&d) {
        Ok(d)
    } else {
        Err(ConfigError(format!(
            "{key} must be between {} and {}, not {:?}",
            humantime::format_duration(least),
            humantime::format_duration(most),
            raw.unwrap_or(default).trim()
        )))
    }
}

/// Whether `path` is a route axum takes literally: `/` then unreserved characters and
/// sub-delimiters, without axum's capture syntax (`{`, `}`, a segment starting with `:` or `*`)
/// that would panic at start or turn the path into a pattern.
fn literal_route(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= MAX_TELEMETRY_PATH_LEN
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-._~!$&'()+,;=@".contains(c))
}

/// A count: a TOML integer (or an environment value that parses as one). A float is refused,
/// not rounded (`page_size = 10.5` used to become 11, `TLE__POLL__MAX_RETRIES=2.9` 3).
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Whole;
    impl serde::de::Visitor<'_> for Whole {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a whole number")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
        }
        fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
        }
        fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
            Err(E::custom(format!("{v} is not a whole number")))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
            v.trim()
                .parse()
                .map_err(|_| E::custom(format!("{v:?} is not a whole number")))
        }
    }
    d.deserialize_any(Whole).map(Some)
}

fn int_in(
    key: &str,
    raw: Option<i64>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ConfigError> {
    let v = raw.unwrap_or(default);
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(fault(
            key,
            format!("{v} is out of range {}..={}", range.start(), range.end()),
        ))
    }
}

/// Validates an endpoint: http(s), a host, no path beyond `/`, no query.
pub fn endpoint(key: &str, raw: &str) -> Result<Url, ConfigError> {
    base_url(key, raw, "the API is POSTed to /")
}

/// A base URL (http(s), a host, no path beyond `/`, no query); `hint` says what is appended.
fn base_url(key: &str, raw: &str, hint: &str) -> Result<Url, ConfigError> {
    let url =
        Url::parse(raw.trim()).map_err(|e| fault(key, format!("{raw:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fault(
            key,
            format!("{raw:?}: scheme must be https (or http for a local simulator)"),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(fault(key, format!("{raw:?} has no host")));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(fault(
            key,
            format!("{raw:?}: give the base URL only; {hint}"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(fault(key, "credentials do not belong in the URL"));
    }
    Ok(url)
}

/// The `TENCENTCLOUD_*` keys of `env`, when both the id and the key are set.
fn env_credentials(env: &BTreeMap<String, String>) -> Option<Credentials> {
    let id = env
        .get(ENV_SECRET_ID)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())?;
    let secret = env
        .get(ENV_SECRET_KEY)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())?;
    Some(Credentials {
        secret_id: id.to_owned(),
        secret_key: SecretString::from(secret.to_owned()),
        token: env
            .get(ENV_TOKEN)
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .map(|t| SecretString::from(t.to_owned())),
    })
}

/// The profile file: `TENCENTCLOUD_CREDENTIALS_FILE`, else `~/.tencentcloud/credentials`.
fn profile_file(env: &BTreeMap<String, String>) -> Result<std::path::PathBuf, String> {
    if let Some(file) = env
        .get(ENV_CREDENTIALS_FILE)
        .filter(|f| !f.trim().is_empty())
    {
        return Ok(file.trim().into());
    }
    match env.get("HOME").filter(|h| !h.trim().is_empty()) {
        Some(home) => Ok(Path::new(home.trim())
            .join(".tencentcloud")
            .join("credentials")),
        None => Err(format!(
            "no credentials file: neither {ENV_CREDENTIALS_FILE} nor HOME is set"
        )),
    }
}

/// TKE pod identity from `env`, or the names of the variables that are missing.
fn oidc_spec(
    env: &BTreeMap<String, String>,
    session_name: &str,
    sts_endpoint: &Url,
) -> Result<OidcSpec, String> {
    let names = [
        ENV_TKE_REGION,
        ENV_TKE_PROVIDER_ID,
        ENV_TKE_WEB_IDENTITY_TOKEN_FILE,
        ENV_TKE_ROLE_ARN,
    ];
    let values: Vec<Option<&str>> = names
        .iter()
        .map(|n| env.get(*n).map(|v| v.trim()).filter(|v| !v.is_empty()))
        .collect();
    let missing: Vec<&str> = names
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| *n)
        .collect();
    match values.as_slice() {
        [
            Some(region),
            Some(provider_id),
            Some(token_file),
            Some(role_arn),
        ] => Ok(OidcSpec {
            region: (*region).to_owned(),
            provider_id: (*provider_id).to_owned(),
            token_file: (*token_file).into(),
            role_arn: (*role_arn).to_owned(),
            session_name: session_name.to_owned(),
            sts_endpoint: sts_endpoint.clone(),
        }),
        _ => Err(format!("{} not set", missing.join(", "))),
    }
}

/// Role names, session names: letters, digits and `+=,.@-_`.
fn name_chars_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
}

/// Validates where one account's credentials come from. Secrets stay wrapped; files named here
/// are read once now, so that a missing or empty one is refused at start, not at the first poll.
fn account_credentials(
    key: &str,
    name: &str,
    a: RawAccount,
    env: &BTreeMap<String, String>,
) -> Result<CredentialSource, ConfigError> {
    let k = |sub: &str| format!("{key}.{sub}");
    let static_keys = [
        ("secret_id", a.secret_id.is_some()),
        ("secret_key", a.secret_key.is_some()),
        ("secret_id_file", a.secret_id_file.is_some()),
        ("secret_key_file", a.secret_key_file.is_some()),
    ];
    let first_static_key = static_keys.iter().find(|(_, set)| *set).map(|(n, _)| *n);
    let kind = match a.credentials.as_deref().map(str::trim) {
        None if first_static_key.is_some() => "static",
        None => "chain",
        Some(kind) => CREDENTIAL_SOURCES
            .into_iter()
            .find(|s| *s == kind)
            .ok_or_else(|| {
                fault(
                    &k("credentials"),
                    format!("{kind:?} is not one of {}", CREDENTIAL_SOURCES.join(", ")),
                )
            })?,
    };
    let only_with = |sub: &str, sources: &str| {
        fault(
            &k(sub),
            format!(
                "only used with credentials = {sources}; account {name:?} has credentials = {kind:?}"
            ),
        )
    };
    if let Some(sub) = first_static_key.filter(|_| kind != "static") {
        return Err(only_with(sub, "\"static\""));
    }
    if a.profile.is_some() && !matches!(kind, "profile" | "chain") {
        return Err(only_with("profile", "\"profile\" or \"chain\""));
    }
    for (sub, set) in [
        ("role", a.role.is_some()),
        ("metadata_endpoint", a.metadata_endpoint.is_some()),
    ] {
        if set && !matches!(kind, "cvm_role" | "chain") {
            return Err(only_with(sub, "\"cvm_role\" or \"chain\""));
        }
    }

    let sts_endpoint = base_url(
        &k("sts_endpoint"),
        a.sts_endpoint
            .as_deref()
            .unwrap_or(creds::DEFAULT_STS_ENDPOINT),
        "STS is POSTed to /",
    )?;
    let session_name = a
        .role_session_name
        .as_deref()
        .map(str::trim)
        .unwrap_or(creds::DEFAULT_ROLE_SESSION_NAME)
        .to_owned();
    if !(2..=128).contains(&session_name.len()) || !name_chars_ok(&session_name) {
        return Err(fault(
            &k("role_session_name"),
            format!("{session_name:?}: 2 to 128 letters, digits or +=,.@-_"),
        ));
    }
    let assume_role = match a.role_arn.as_deref().map(str::trim) {
        None => None,
        Some(arn) if arn.starts_with("qcs::cam::") && !arn.contains(char::is_whitespace) => {
            Some(AssumeRoleSpec {
                role_arn: arn.to_owned(),
                session_name: session_name.clone(),
                sts_endpoint: sts_endpoint.clone(),
                duration_seconds: STS_DURATION_SECONDS,
            })
        }
        Some(arn) => {
            return Err(fault(
                &k("role_arn"),
                format!(
                    "{arn:?} is not a role ARN like qcs::cam::uin/100000000001:roleName/live-readonly"
                ),
            ));
        }
    };
    if assume_role.is_none() && !matches!(kind, "oidc" | "chain") {
        for (sub, set) in [
            ("role_session_name", a.role_session_name.is_some()),
            ("sts_endpoint", a.sts_endpoint.is_some()),
        ] {
            if set {
                return Err(fault(
                    &k(sub),
                    format!(
                        "has no effect without role_arn (or credentials = \"oidc\"); account {name:?} has credentials = {kind:?}"
                    ),
                ));
            }
        }
    }
    let profile = a
        .profile
        .as_deref()
        .map(str::trim)
        .unwrap_or(creds::DEFAULT_PROFILE)
        .to_owned();
    if profile.is_empty() || profile.contains(['[', ']']) {
        return Err(fault(
            &k("profile"),
            format!("{profile:?} is not a profile name"),
        ));
    }
    let role = match a.role.as_deref().map(str::trim) {
        None => None,
        Some(role) if name_chars_ok(role) => Some(role.to_owned()),
        Some(role) => {
            return Err(fault(
                &k("role"),
                format!("{role:?} is not a CAM role name (letters, digits, +=,.@-_)"),
            ));
        }
    };
    let metadata_endpoint = base_url(
        &k("metadata_endpoint"),
        a.metadata_endpoint
            .as_deref()
            .unwrap_or(creds::DEFAULT_METADATA_ENDPOINT),
        "the exporter appends /latest/meta-data/cam/security-credentials/",
    )?;
    let no_keys_in_env = || {
        fault(
            key,
            format!(
                "account {name:?} has no secret_id/secret_key, and {ENV_SECRET_ID} / {ENV_SECRET_KEY} are not both set"
            ),
        )
    };

    let base = match kind {
        "static" => static_source(key, name, a.credentials.is_some(), &a)?,
        "env" => BaseSource::Env(env_credentials(env).ok_or_else(no_keys_in_env)?),
        "profile" => {
            let file = profile_file(env).map_err(|e| fault(&k("profile"), e))?;
            creds::read_profile(&file, &profile).map_err(|e| fault(&k("profile"), e))?;
            BaseSource::Profile { file, profile }
        }
        "cvm_role" => BaseSource::CvmRole {
            role,
            metadata_endpoint,
        },
        "oidc" => BaseSource::Oidc(oidc_spec(env, &session_name, &sts_endpoint).map_err(
            |missing| {
                fault(
                    &k("credentials"),
                    format!("account {name:?} has credentials = \"oidc\" (TKE pod identity), but {missing}"),
                )
            },
        )?),
        _ => BaseSource::Chain(vec![
            ChainLink {
                name: "env",
                source: env_credentials(env).map(BaseSource::Env).ok_or_else(|| {
                    format!("{ENV_SECRET_ID} / {ENV_SECRET_KEY} are not both set")
                }),
            },
            ChainLink {
                name: "profile",
                source: profile_file(env).map(|file| BaseSource::Profile { file, profile }),
            },
            ChainLink {
                name: "cvm_role",
                source: Ok(BaseSource::CvmRole {
                    role,
                    metadata_endpoint,
                }),
            },
            ChainLink {
                name: "oidc",
                source: oidc_spec(env, &session_name, &sts_endpoint).map(BaseSource::Oidc),
            },
        ]),
    };
    Ok(CredentialSource::new(SourceSpec { base, assume_role }))
}

/// `static`: each half inline or from a file (read now, to refuse a bad one at start).
fn static_source(
    key: &str,
    name: &str,
    explicit: bool,
    a: &RawAccount,
) -> Result<BaseSource, ConfigError> {
    let k = |sub: &str| format!("{key}.{sub}");
    let empty = || {
        fault(
            key,
            format!("account {name:?}: secret_id and secret_key must not be empty"),
        )
    };
    let secret_id = match (&a.secret_id, &a.secret_id_file) {
        (Some(_), Some(_)) => {
            return Err(fault(
                &k("secret_id_file"),
                "give secret_id or secret_id_file, not both",
            ));
        }
        (Some(id), None) if id.trim().is_empty() => return Err(empty()),
        // It goes into the Authorization header of every call: anything else would fail every
        // poll with the same error, after --check-config had said "ok".
        (Some(id), None) if !id.trim().chars().all(|c| c.is_ascii_graphic()) => {
            return Err(fault(
                &k("secret_id"),
                format!(
                    "account {name:?}: {:?} holds a character that is not printable ASCII \
                     (a SecretId is like AKID...)",
                    id.trim()
                ),
            ));
        }
        (Some(id), None) => Some(SecretIdFrom::Inline(id.trim().to_owned())),
        (None, Some(file)) => {
            let path = std::path::PathBuf::from(file.trim());
            creds::read_secret_file(&path, "secret_id_file")
                .map_err(|e| fault(&k("secret_id_file"), e))?;
            Some(SecretIdFrom::File(path))
        }
        (None, None) => None,
    };
    let secret_key = match (&a.secret_key, &a.secret_key_file) {
        (Some(_), Some(_)) => {
            return Err(fault(
                &k("secret_key_file"),
                "give secret_key or secret_key_file, not both",
            ));
        }
        (Some(secret), None) if secret.expose_secret().trim().is_empty() => return Err(empty()),
        (Some(secret), None) => Some(SecretKeyFrom::Inline(SecretString::from(
            secret.expose_secret().trim().to_owned(),
        ))),
        (None, Some(file)) => {
            let path = std::path::PathBuf::from(file.trim());
            creds::read_secret_file(&path, "secret_key_file")
                .map_err(|e| fault(&k("secret_key_file"), e))?;
            Some(SecretKeyFrom::File(path))
        }
        (None, None) => None,
    };
    match (secret_id, secret_key) {
        (Some(secret_id), Some(secret_key)) => Ok(BaseSource::Static {
            secret_id,
            secret_key,
        }),
        (None, None) if explicit => Err(fault(
            key,
            format!(
                "account {name:?} has credentials = \"static\" but no secret_id/secret_key (or secret_id_file/secret_key_file)"
            ),
        )),
        _ => Err(fault(
            key,
            format!(
                "account {name:?}: give both secret_id and secret_key (each inline or as a *_file), or neither"
            ),
        )),
    }
}

/// Warnings for `main` to log at start: a configuration file that holds a `secret_key` and that
/// other users can read. Empty when there is nothing to say (or no file, or not on Unix).
pub fn permission_warnings(file: Option<&Path>) -> Vec<String> {
    let Some(file) = file else {
        return Vec::new();
    };
    let Ok(raw) = load_raw(Some(file), BTreeMap::new()) else {
        return Vec::new();
    };
    let holders: Vec<String> = raw
        .accounts
        .unwrap_or_default()
        .iter()
        .filter(|a| a.secret_key.is_some())
        .map(|a| format!("{:?}", a.name))
        .collect();
    if holders.is_empty() {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(file) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o044 != 0 {
                warnings.push(format!(
                    "config file {} holds a secret_key (account {}) and other users can read it (mode {mode:04o}): \
                     chmod 600 it, or use secret_key_file or another credentials source",
                    file.display(),
                    holders.join(", ")
                ));
            }
        }
    }
    warnings
}

impl Config {
    /// Validates the raw layers. `env` supplies `TENCENTCLOUD_*` for accounts without keys.
    pub fn validate(
        raw: RawConfig,
        overrides: &Overrides,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let listen = if !overrides.listen_address.is_empty() {
            overrides.listen_address.clone()
        } else {
            match raw.web.listen_address {
                Some(OneOrMany::One(a)) => vec![a],
                Some(OneOrMany::Many(list)) => list,
                None => vec![defaults::LISTEN_ADDRESS.into()],
            }
        };
        if listen.is_empty() {
            return Err(fault("web.listen_address", "the list is empty"));
        }
        let listen_addresses = listen
            .iter()
            .map(|a| a.parse::<ListenAddress>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fault("web.listen_address", e))?;
        let telemetry_path = overrides
            .telemetry_path
            .clone()
            .or(raw.web.telemetry_path)
            .unwrap_or_else(|| defaults::TELEMETRY_PATH.into());
        if !literal_route(&telemetry_path)
            || telemetry_path.len() < 2
            || ["/healthz", "/-/reload"].contains(&telemetry_path.as_str())
        {
            return Err(fault(
                "web.telemetry_path",
                format!(
                    "{telemetry_path:?} must be a path like /metrics of at most \
                     {MAX_TELEMETRY_PATH_LEN} letters, digits and /-._~!$&'()+,;=@ \
                     (not /, /healthz or /-/reload)"
                ),
            ));
        }

        let p = raw.poll;
        let interval =
            bounded_duration("poll.interval", p.interval.as_deref(), defaults::INTERVAL)?;
        let timeout = bounded_duration("poll.timeout", p.timeout.as_deref(), defaults::TIMEOUT)?;
        let requests_per_second = int_in(
            "poll.requests_per_second",
            p.requests_per_second,
            defaults::REQUESTS_PER_SECOND,
            1..=API_REQUESTS_PER_SECOND,
        )? as u32;
        let page_size =
            int_in("poll.page_size", p.page_size, defaults::PAGE_SIZE, 10..=100)? as u32;
        let type_names = p
            .package_types
            .unwrap_or_else(|| defaults::PACKAGE_TYPES.map(String::from).to_vec());
        if type_names.is_empty() {
            return Err(fault(
                "poll.package_types",
                "must name at least one of traffic, transcode, co_anchoring",
            ));
        }
        let mut package_types = Vec::new();
        for name in &type_names {
            let q = QueryType::from_label(name.trim()).ok_or_else(|| {
                fault(
                    "poll.package_types",
                    format!("{name:?} is not one of traffic, transcode, co_anchoring"),
                )
            })?;
            if package_types.contains(&q) {
                return Err(fault(
                    "poll.package_types",
                    format!("{name:?} is listed twice"),
                ));
            }
            package_types.push(q);
        }
        let max_retries = int_in(
            "poll.max_retries",
            p.max_retries,
            defaults::MAX_RETRIES,
            0..=10,
        )? as u32;
        let backoff_base = bounded_duration(
            "poll.backoff_base",
            p.backoff_base.as_deref(),
            defaults::BACKOFF_BASE,
        )?;
        let backoff_max = bounded_duration(
            "poll.backoff_max",
            p.backoff_max.as_deref(),
            defaults::BACKOFF_MAX,
        )?;
        if backoff_max < backoff_base {
            return Err(fault(
                "poll.backoff_max",
                "must not be less than poll.backoff_base",
            ));
        }
        let max_staleness = match p.max_staleness.as_deref() {
            Some(s) => bounded_duration("poll.max_staleness", Some(s), "")?,
            // At most 7d * 3: within the bounds of max_staleness.
            None => interval.saturating_mul(defaults::STALENESS_INTERVALS),
        };
        if max_staleness < interval {
            return Err(fault(
                "poll.max_staleness",
                "must be at least poll.interval",
            ));
        }

        let raw_accounts = match raw.accounts {
            Some(a) if a.is_empty() => {
                return Err(fault(
                    "accounts",
                    "the list is empty; configure at least one [[accounts]]",
                ));
            }
            Some(a) if a.len() > MAX_ACCOUNTS => {
                return Err(fault(
                    "accounts",
                    format!(
                        "{} accounts; at most {MAX_ACCOUNTS} are polled by one exporter",
                        a.len()
                    ),
                ));
            }
            Some(a) => a,
            // No accounts configured: one account `default` from the environment.
            None => vec![RawAccount {
                name: defaults::ACCOUNT_NAME.into(),
                ..RawAccount::default()
            }],
        };
        let mut names = HashSet::new();
        let mut accounts = Vec::new();
        for (i, a) in raw_accounts.into_iter().enumerate() {
            let key = format!("accounts[{i}]");
            let name = a.name.trim().to_owned();
            if name.is_empty() {
                return Err(fault(&format!("{key}.name"), "must not be empty"));
            }
            if !names.insert(name.clone()) {
                return Err(fault(
                    &format!("{key}.name"),
                    format!("duplicate account name {name:?}"),
                ));
            }
            let endpoint = endpoint(
                &format!("{key}.endpoint"),
                a.endpoint.as_deref().unwrap_or(defaults::ENDPOINT),
            )?;
            let rate_limit_group = match a.rate_limit_group.as_deref().map(str::trim) {
                Some("") => {
                    return Err(fault(
                        &format!("{key}.rate_limit_group"),
                        "must not be empty; leave it out to key the budget by the SecretId",
                    ));
                }
                group => group.map(str::to_owned),
            };
            let credentials = account_credentials(&key, &name, a, env)?;
            accounts.push(AccountConfig {
                name,
                credentials,
                endpoint,
                rate_limit_group,
            });
        }

        Ok(Config {
            web: WebConfig {
                listen_addresses,
                telemetry_path,
            },
            poll: PollConfig {
                interval,
                timeout,
                requests_per_second,
                page_size,
                package_types,
                retry: RetryPolicy {
                    max_retries,
                    backoff_base,
                    backoff_max,
                },
                max_staleness,
            },
            accounts,
        })
    }

    /// The effective configuration as TOML, secrets redacted (`--check-config`).
    pub fn to_redacted_toml(&self) -> String {
        let d = |d: Duration| toml_string(&humantime::format_duration(d).to_string());
        let mut s = String::new();
        let _ = writeln!(s, "[web]");
        match self.web.listen_addresses.as_slice() {
            [one] => {
                let _ = writeln!(s, "listen_address = {}", toml_string(&one.to_string()));
            }
            many => {
                let list: Vec<String> = many.iter().map(|a| toml_string(&a.to_string())).collect();
                let _ = writeln!(s, "listen_address = [{}]", list.join(", "));
            }
        }
        let _ = writeln!(
            s,
            "telemetry_path = {}",
            toml_string(&self.web.telemetry_path)
        );
        let p = &self.poll;
        let _ = writeln!(s, "\n[poll]");
        let _ = writeln!(s, "interval = {}", d(p.interval));
        let _ = writeln!(s, "timeout = {}", d(p.timeout));
        let _ = writeln!(s, "requests_per_second = {}", p.requests_per_second);
        let _ = writeln!(s, "page_size = {}", p.page_size);
        let types: Vec<String> = p
            .package_types
            .iter()
            .map(|q| toml_string(q.label()))
            .collect();
        let _ = writeln!(s, "package_types = [{}]", types.join(", "));
        let _ = writeln!(s, "max_retries = {}", p.retry.max_retries);
        let _ = writeln!(s, "backoff_base = {}", d(p.retry.backoff_base));
        let _ = writeln!(s, "backoff_max = {}", d(p.retry.backoff_max));
        let _ = writeln!(s, "max_staleness = {}", d(p.max_staleness));
        for a in &self.accounts {
            let _ = writeln!(s, "\n[[accounts]]");
            let _ = writeln!(s, "name = {}", toml_string(&a.name));
            write_credentials(&mut s, a.credentials.spec());
            let _ = writeln!(
                s,
                "endpoint = {}",
                toml_string(a.endpoint.as_str().trim_end_matches('/'))
            );
            if let Some(group) = &a.rate_limit_group {
                let _ = writeln!(s, "rate_limit_group = {group:?}");
            }
        }
        let _ = writeln!(
            s,
            "\n# Request budgets ({} calls per second each):",
            p.requests_per_second
        );
        for (key, names) in crate::budget::budget_groups(&self.accounts) {
            let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            let _ = writeln!(s, "# {}: {}", comment(&key), comment(&names.join(", ")));
        }
        s
    }
}

/// The `[[accounts]]` lines of a credential source, as keys that parse back (secrets as
/// `"[REDACTED]"`) and comments for what was resolved from the environment.
fn write_credentials(s: &mut String, spec: &SourceSpec) {
    let _ = writeln!(s, "credentials = {}", toml_string(spec.base.name()));
    let url = |u: &Url| toml_string(u.as_str().trim_end_matches('/'));
    let mut sts: Option<(&str, &Url)> = spec
        .assume_role
        .as_ref()
        .map(|r| (r.session_name.as_str(), &r.sts_endpoint));
    let env_comment = |s: &mut String, c: &Credentials| {
        let _ = writeln!(
            s,
            "# {ENV_SECRET_ID} = {}, {ENV_SECRET_KEY} = \"[REDACTED]\"",
            toml_string(&c.secret_id)
        );
        if c.token.is_some() {
            let _ = writeln!(s, "# session token: [REDACTED]");
        }
    };
    match &spec.base {
        BaseSource::Static {
            secret_id,
            secret_key,
        } => {
            match secret_id {
                SecretIdFrom::Inline(id) => {
                    let _ = writeln!(s, "secret_id = {}", toml_string(id));
                }
                SecretIdFrom::File(path) => {
                    let _ = writeln!(
                        s,
                        "secret_id_file = {}",
                        toml_string(&path.display().to_string())
                    );
                }
            }
            match secret_key {
                SecretKeyFrom::Inline(_) => {
                    let _ = writeln!(s, "secret_key = \"[REDACTED]\"");
                }
                SecretKeyFrom::File(path) => {
                    let _ = writeln!(
                        s,
                        "secret_key_file = {}",
                        toml_string(&path.display().to_string())
                    );
                }
            }
        }
        BaseSource::Env(c) => env_comment(s, c),
        BaseSource::Profile { file, profile } => {
            let _ = writeln!(s, "profile = {}", toml_string(profile));
            let _ = writeln!(s, "# file: {}", comment(&file.display().to_string()));
        }
        BaseSource::CvmRole {
            role,
            metadata_endpoint,
        } => {
            if let Some(role) = role {
                let _ = writeln!(s, "role = {}", toml_string(role));
            }
            let _ = writeln!(s, "metadata_endpoint = {}", url(metadata_endpoint));
        }
        BaseSource::Oidc(o) => {
            let _ = writeln!(
                s,
                "# TKE pod identity: region {}, provider {}, role {}, token file {}",
                comment(&o.region),
                comment(&o.provider_id),
                comment(&o.role_arn),
                comment(&o.token_file.display().to_string())
            );
            sts = Some((&o.session_name, &o.sts_endpoint));
        }
        BaseSource::Chain(links) => {
            for link in links {
                match &link.source {
                    Err(why) => {
                        let _ = writeln!(s, "# chain: {}: skipped ({})", link.name, comment(why));
                    }
                    Ok(BaseSource::Env(c)) => {
                        let _ = writeln!(s, "# chain: env:");
                        env_comment(s, c);
                    }
                    Ok(BaseSource::Profile { file, profile }) => {
                        let _ = writeln!(
                            s,
                            "# chain: profile: {}",
                            comment(&file.display().to_string())
                        );
                        let _ = writeln!(s, "profile = {}", toml_string(profile));
                    }
                    Ok(BaseSource::CvmRole {
                        role,
                        metadata_endpoint,
                    }) => {
                        let _ = writeln!(s, "# chain: cvm_role:");
                        if let Some(role) = role {
                            let _ = writeln!(s, "role = {}", toml_string(role));
                        }
                        let _ = writeln!(s, "metadata_endpoint = {}", url(metadata_endpoint));
                    }
                    Ok(BaseSource::Oidc(o)) => {
                        let _ = writeln!(
                            s,
                            "# chain: oidc: region {}, provider {}, role {}, token file {}",
                            comment(&o.region),
                            comment(&o.provider_id),
                            comment(&o.role_arn),
                            comment(&o.token_file.display().to_string())
                        );
                        sts = Some((&o.session_name, &o.sts_endpoint));
                    }
                    Ok(other) => {
                        let _ = writeln!(s, "# chain: {}", other.name());
                    }
                }
            }
        }
    }
    if let Some(role) = &spec.assume_role {
        let _ = writeln!(s, "role_arn = {}", toml_string(&role.role_arn));
    }
    if let Some((session_name, endpoint)) = sts {
        let _ = writeln!(s, "role_session_name = {}", toml_string(session_name));
        let _ = writeln!(s, "sts_endpoint = {}", url(endpoint));
    }
}

/// `s` as a TOML basic string, escaped as the TOML spec requires (quotes, backslashes, control
/// characters), so that `--check-config` output always parses back.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// `s` made safe for a TOML comment, which may hold no control character but tab: those are
/// written as Rust escapes (`\n`, `\u{1b}`). `main` uses it for `--check-config`'s credential
/// report, whose lines hold SecretIds and error texts from files and the environment.
pub fn comment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Reads and validates everything: the one entry point `main` uses.
pub fn load(
    file: Option<&Path>,
    overrides: &Overrides,
    env: BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    let raw = load_raw(file, env.clone())?;
    Config::validate(raw, overrides, &env)
}

/// The process environment as a map (tests pass their own).
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn from_toml(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut f = tempfile();
        f.1.write_all(toml.as_bytes()).unwrap();
        load(Some(&f.0), &Overrides::default(), env(vars))
    }

    /// A unique temporary file (no extra crate for it).
    fn tempfile() -> (std::path::PathBuf, std::fs::File) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "tle-config-test-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let f = std::fs::File::create(&path).unwrap();
        (path, f)
    }

    const ONE: &str = "[[accounts]]\nname = \"prod\"\nsecret_id = \"AKID1\"\nsecret_key = \"k1\"\n";

    fn err(toml: &str) -> String {
        from_toml(toml, &[]).unwrap_err().0
    }

    #[test]
    fn defaults_apply_to_a_minimal_file() {
        let c = from_toml(ONE, &[]).unwrap();
        assert_eq!(c.web.listen_addresses, ["0.0.0.0:9877".parse().unwrap()]);
        assert_eq!(c.web.telemetry_path, "/metrics");
        assert_eq!(c.poll.interval, Duration::from_secs(300));
        assert_eq!(c.poll.timeout, Duration::from_secs(10));
        assert_eq!(c.poll.requests_per_second, 10);
        assert_eq!(c.poll.page_size, 100);
        assert_eq!(c.poll.package_types, QueryType::ALL);
        assert_eq!(c.poll.max_staleness, Duration::from_secs(900));
        assert_eq!(
            c.accounts[0].endpoint.as_str(),
            "https://live.tencentcloudapi.com/"
        );
    }

    fn example_config() -> (std::path::PathBuf, String) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let text = std::fs::read_to_string(&path).expect("config.example.toml");
        (path, text)
    }

    #[test]
    fn the_example_config_is_inert_as_shipped() {
        let (path, text) = example_config();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                line.starts_with('#'),
                "config.example.toml has an active line: {line}"
            );
        }
        // A copy used as is gives what no file gives: keys from the environment win.
        let vars = env(&[
            ("TENCENTCLOUD_SECRET_ID", "AKIDfromenv"),
            ("TENCENTCLOUD_SECRET_KEY", "k"),
        ]);
        let copied = load(Some(&path), &Overrides::default(), vars.clone()).unwrap();
        let none = load(None, &Overrides::default(), vars).unwrap();
        assert_eq!(copied.to_redacted_toml(), none.to_redacted_toml());
        assert!(copied.to_redacted_toml().contains("AKIDfromenv"));
    }

    #[test]
    fn the_example_config_parses_and_matches_the_defaults() {
        // Every "# key = value" line (and "# [section]"), uncommented; indented examples stay.
        let (_, text) = example_config();
        fn setting(l: &str) -> Option<&str> {
            l.strip_prefix("# ").filter(|rest| {
                rest.starts_with('[')
                    || rest.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    })
            })
        }
        let uncommented: String = text
            .lines()
            .map(|l| setting(l).unwrap_or(l))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(uncommented.contains("\n[[accounts]]\n"), "{uncommented}");
        let example = from_toml(&uncommented, &[]).expect("config.example.toml uncommented parses");
        let defaults = from_toml(ONE, &[]).unwrap();
        assert_eq!(
            example.web, defaults.web,
            "config.example.toml [web] drifted from the defaults"
        );
        assert_eq!(
            example.poll, defaults.poll,
            "config.example.toml [poll] drifted from the defaults"
        );
        assert_eq!(example.accounts[0].endpoint, defaults.accounts[0].endpoint);
        assert_eq!(example.accounts[0].credentials.name(), "chain");
    }

    #[test]
    fn environment_overrides_the_file_and_flags_override_both() {
        let mut f = tempfile();
        f.1.write_all(format!("[poll]\ninterval = \"2m\"\npage_size = 50\n{ONE}").as_bytes())
            .unwrap();
        let vars = env(&[
            ("TLE__POLL__INTERVAL", "1m"),
            ("TLE__POLL__REQUESTS_PER_SECOND", "20"),
            ("TLE__WEB__LISTEN_ADDRESS", "127.0.0.1:1"),
        ]);
        let overrides = Overrides {
            listen_address: vec!["127.0.0.1:2".into()],
            telemetry_path: None,
        };
        let c = load(Some(&f.0), &overrides, vars).unwrap();
        assert_eq!(c.poll.interval, Duration::from_secs(60));
        assert_eq!(c.poll.requests_per_second, 20);
        assert_eq!(c.poll.page_size, 50);
        assert_eq!(c.web.listen_addresses, ["127.0.0.1:2".parse().unwrap()]);
        let types = load(
            None,
            &Overrides::default(),
            env(&[
                ("TLE__POLL__PACKAGE_TYPES", "traffic,co_anchoring"),
                (ENV_SECRET_ID, "a"),
                (ENV_SECRET_KEY, "b"),
            ]),
        )
        .unwrap();
        assert_eq!(
            types.poll.package_types,
            [QueryType::Traffic, QueryType::CoAnchoring]
        );
    }

    #[test]
    fn without_a_file_one_default_account_comes_from_the_environment() {
        let c = load(
            None,
            &Overrides::default(),
            env(&[(ENV_SECRET_ID, "AKIDenv"), (ENV_SECRET_KEY, "envkey")]),
        )
        .unwrap();
        assert_eq!(c.accounts.len(), 1);
        assert_eq!(c.accounts[0].name, "default");
        // The default chain: the environment first.
        assert_eq!(c.accounts[0].credentials.name(), "chain");
        let BaseSource::Chain(links) = &c.accounts[0].credentials.spec().base else {
            panic!("not a chain");
        };
        let names: Vec<&str> = links.iter().map(|l| l.name).collect();
        assert_eq!(names, ["env", "profile", "cvm_role", "oidc"]);
        assert!(
            matches!(&links[0].source, Ok(BaseSource::Env(creds)) if creds.secret_id == "AKIDenv")
        );
        // Nothing in the environment: the chain goes on to the instance role; the skipped links
        // say why.
        let c = load(None, &Overrides::default(), BTreeMap::new()).unwrap();
        let out = c.to_redacted_toml();
        assert!(out.contains("TENCENTCLOUD_SECRET_ID"), "{out}");
        assert!(out.contains("TKE_REGION"), "{out}");
        // Asking for the environment explicitly without it is refused, as before.
        let e = err("[[accounts]]\nname = \"p\"\ncredentials = \"env\"\n");
        assert!(e.contains("TENCENTCLOUD_SECRET_ID"), "{e}");
        assert!(e.contains("accounts[0]"), "{e}");
    }

    #[test]
    fn every_fault_is_refused_naming_the_key() {
        let cases: &[(&str, &str)] = &[
            ("[poll]\nintervall = \"1m\"\n", "intervall"),
            (
                "[web]\nlisten_address = \"nowhere\"\n",
                "web.listen_address",
            ),
            (
                "[web]\ntelemetry_path = \"metrics\"\n",
                "web.telemetry_path",
            ),
            ("[poll]\ninterval = \"5 parsecs\"\n", "poll.interval"),
            ("[poll]\ntimeout = \"soon\"\n", "poll.timeout"),
            (
                "[poll]\nrequests_per_second = 0\n",
                "poll.requests_per_second",
            ),
            (
                "[poll]\nrequests_per_second = 21\n",
                "poll.requests_per_second",
            ),
            ("[poll]\npage_size = 9\n", "poll.page_size"),
            ("[poll]\npage_size = 101\n", "poll.page_size"),
            (
                "[poll]\npackage_types = [\"traffic\", \"bogus\"]\n",
                "poll.package_types",
            ),
            ("[poll]\npackage_types = []\n", "poll.package_types"),
            (
                "[poll]\npackage_types = [\"traffic\", \"traffic\"]\n",
                "poll.package_types",
            ),
            ("[poll]\nmax_staleness = \"1s\"\n", "poll.max_staleness"),
            ("[poll]\nbackoff_base = \"20s\"\n", "poll.backoff_max"),
            ("[surprise]\nx = 1\n", "surprise"),
        ];
        for (toml, key) in cases {
            let e = err(&format!("{toml}{ONE}"));
            assert!(
                e.contains(key),
                "{toml:?} gave {e:?}, which does not name {key}"
            );
        }
        let dup = format!("{ONE}{ONE}");
        assert!(
            err(&dup).contains("duplicate account name \"prod\""),
            "{}",
            err(&dup)
        );
        let bad_url = "[[accounts]]\nname = \"p\"\nsecret_id = \"a\"\nsecret_key = \"b\"\nendpoint = \"ftp://x\"\n";
        assert!(
            err(bad_url).contains("accounts[0].endpoint"),
            "{}",
            err(bad_url)
        );
        let half = "[[accounts]]\nname = \"p\"\nsecret_id = \"a\"\n";
        assert!(
            err(half).contains("both secret_id and secret_key"),
            "{}",
            err(half)
        );
        let unknown_account_key = "[[accounts]]\nname = \"p\"\nsecretkey = \"b\"\n";
        assert!(
            err(unknown_account_key).contains("secretkey"),
            "{}",
            err(unknown_account_key)
        );
        assert!(err("accounts = []\n").contains("accounts"));
        let missing = load(
            Some(Path::new("/nonexistent/tle.toml")),
            &Overrides::default(),
            BTreeMap::new(),
        )
        .unwrap_err()
        .0;
        assert!(missing.contains("/nonexistent/tle.toml"), "{missing}");
    }

    #[test]
    fn endpoints_must_be_base_urls() {
        assert!(endpoint("k", "https://live.tencentcloudapi.com").is_ok());
        assert!(endpoint("k", "http://127.0.0.1:8080/").is_ok());
        for bad in [
            "live.tencentcloudapi.com",
            "https://x/path",
            "https://x/?a=1",
            "https://u:p@x/",
            "file:///etc",
        ] {
            assert!(endpoint("k", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redacted_output_hides_the_secret_and_parses_back() {
        let c = from_toml(ONE, &[]).unwrap();
        let out = c.to_redacted_toml();
        assert!(!out.contains("k1"), "{out}");
        assert!(out.contains("secret_key = \"[REDACTED]\""));
        assert!(out.contains("secret_id = \"AKID1\""));
        let mut f = tempfile();
        f.1.write_all(out.replace("[REDACTED]", "x").as_bytes())
            .unwrap();
        let back = load(Some(&f.0), &Overrides::default(), BTreeMap::new()).unwrap();
        assert_eq!(back.poll, c.poll);
        assert_eq!(back.web, c.web);
        assert!(!format!("{c:?}").contains("k1"), "Debug leaks the key");
    }

    /// A file in a fresh temporary directory, with these contents.
    fn temp_file_with(name: &str, text: &str) -> std::path::PathBuf {
        let (path, _) = tempfile();
        let dir = path.with_extension("d");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        file
    }

    fn account(lines: &str) -> String {
        format!("[[accounts]]\nname = \"a\"\n{lines}\n")
    }

    #[test]
    fn the_example_config_documents_every_account_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let example = std::fs::read_to_string(path).unwrap();
        for key in [
            "name",
            "credentials",
            "secret_id",
            "secret_key",
            "secret_id_file",
            "secret_key_file",
            "profile",
            "role",
            "metadata_endpoint",
            "role_arn",
            "role_session_name",
            "sts_endpoint",
            "endpoint",
            "rate_limit_group",
        ] {
            assert!(
                example.lines().any(|l| l
                    .trim_start_matches(['#', ' '])
                    .starts_with(&format!("{key} = "))),
                "config.example.toml does not show {key}"
            );
        }
        for source in CREDENTIAL_SOURCES {
            assert!(example.contains(&format!("\"{source}\"")), "{source}");
        }
    }

    #[test]
    fn accounts_share_a_budget_by_signing_key_or_rate_limit_group() {
        let acc = |name: &str, lines: &str| format!("[[accounts]]\nname = \"{name}\"\n{lines}\n");
        let keys = |id: &str| format!("secret_id = \"{id}\"\nsecret_key = \"k\"");
        let toml = [
            acc("a", &keys("AKIDone")),
            acc("b", &keys("AKIDone")),
            acc("c", &keys("AKIDtwo")),
            acc(
                "d",
                &format!("{}\nrate_limit_group = \"main\"", keys("AKIDthree")),
            ),
            acc(
                "e",
                &format!("{}\nrate_limit_group = \"main\"", keys("AKIDfour")),
            ),
            // AssumeRole: the source key's budget.
            acc(
                "f",
                &format!(
                    "{}\nrole_arn = \"qcs::cam::uin/1:roleName/r\"",
                    keys("AKIDtwo")
                ),
            ),
        ]
        .concat();
        let c = from_toml(&toml, &[]).unwrap();
        let groups = crate::budget::budget_groups(&c.accounts);
        let names: Vec<Vec<&str>> = groups
            .iter()
            .map(|(_, n)| n.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(names, [vec!["a", "b"], vec!["c", "f"], vec!["d", "e"]]);
        assert_eq!(groups[0].0, "SecretId AKIDone");
        let out = c.to_redacted_toml();
        assert!(out.contains("# SecretId AKIDone: \"a\", \"b\""), "{out}");
        assert!(
            out.contains("# rate_limit_group \"main\": \"d\", \"e\""),
            "{out}"
        );
        assert!(out.contains("rate_limit_group = \"main\""), "{out}");
        let e = err(&acc(
            "x",
            &format!("{}\nrate_limit_group = \" \"", keys("AKIDx")),
        ));
        assert!(e.contains("accounts[0].rate_limit_group"), "{e}");
    }

    /// Tencent counts per key whatever label an account has: a `rate_limit_group` on one of two
    /// accounts that sign with one key joins that key's budget instead of splitting it (which let
    /// the key see two limits' worth of calls), and joins the group's other keys with it.
    #[test]
    fn a_rate_limit_group_joins_the_budget_of_its_key_not_splits_it() {
        let acc = |name: &str, lines: &str| format!("[[accounts]]\nname = \"{name}\"\n{lines}\n");
        let keys = |id: &str| format!("secret_id = \"{id}\"\nsecret_key = \"k\"");
        let toml = [
            acc("a", &keys("AKIDsame")),
            acc(
                "b",
                &format!("{}\nrate_limit_group = \"cdn\"", keys("AKIDsame")),
            ),
            acc("c", &keys("AKIDother")),
            acc(
                "d",
                &format!("{}\nrate_limit_group = \"cdn\"", keys("AKIDthird")),
            ),
            acc("e", &keys("AKIDthird")),
        ]
        .concat();
        let c = from_toml(&toml, &[]).unwrap();
        let groups = crate::budget::budget_groups(&c.accounts);
        assert_eq!(
            groups,
            [
                (
                    "rate_limit_group \"cdn\"".to_owned(),
                    vec!["a".into(), "b".into(), "d".into(), "e".into()]
                ),
                ("SecretId AKIDother".to_owned(), vec!["c".into()]),
            ]
        );
        let keys = crate::budget::budget_keys(&c.accounts);
        assert_eq!(keys["a"], keys["e"]);
        assert_ne!(keys["a"], keys["c"]);
    }

    #[test]
    fn credential_sources_are_chosen_by_the_keys_given() {
        let source = |lines: &str, vars: &[(&str, &str)]| {
            from_toml(&account(lines), vars).unwrap().accounts[0]
                .credentials
                .clone()
        };
        assert_eq!(source("", &[]).name(), "chain");
        assert_eq!(
            source("secret_id = \"i\"\nsecret_key = \"k\"", &[]).name(),
            "static"
        );
        let key_file = temp_file_with("key", "file-key\n");
        let files = source(
            &format!(
                "secret_id = \"AKIDf\"\nsecret_key_file = {:?}",
                key_file.display().to_string()
            ),
            &[],
        );
        assert_eq!(files.name(), "static");
        assert!(matches!(
            &files.spec().base,
            BaseSource::Static { secret_id: SecretIdFrom::Inline(id), secret_key: SecretKeyFrom::File(p) }
                if id == "AKIDf" && *p == key_file
        ));
        let env_source = source(
            "credentials = \"env\"",
            &[
                (ENV_SECRET_ID, "AKIDe"),
                (ENV_SECRET_KEY, "ke"),
                (ENV_TOKEN, "te"),
            ],
        );
        assert!(matches!(
            &env_source.spec().base,
            BaseSource::Env(c) if c.secret_id == "AKIDe" && c.token() == Some("te")
        ));
        let cvm = source("credentials = \"cvm_role\"", &[]);
        assert!(matches!(
            &cvm.spec().base,
            BaseSource::CvmRole { role: None, metadata_endpoint } if metadata_endpoint.as_str() == "http://metadata.tencentyun.com/"
        ));
        let assumed = source(
            "credentials = \"cvm_role\"\nrole = \"r1\"\nrole_arn = \"qcs::cam::uin/1:roleName/x\"",
            &[],
        );
        let role = assumed.spec().assume_role.clone().unwrap();
        assert_eq!(role.session_name, "tencent-live-exporter");
        assert_eq!(
            role.sts_endpoint.as_str(),
            "https://sts.tencentcloudapi.com/"
        );
        assert_eq!(role.duration_seconds, 7200);
        let tke = [
            (ENV_TKE_REGION, "ap-guangzhou"),
            (ENV_TKE_PROVIDER_ID, "prov"),
            (ENV_TKE_WEB_IDENTITY_TOKEN_FILE, "/var/run/token"),
            (ENV_TKE_ROLE_ARN, "qcs::cam::uin/1:roleName/pod"),
        ];
        let oidc = source("credentials = \"oidc\"\nrole_session_name = \"s-1\"", &tke);
        assert!(matches!(
            &oidc.spec().base,
            BaseSource::Oidc(o) if o.provider_id == "prov" && o.session_name == "s-1" && o.region == "ap-guangzhou"
        ));
        let profile = temp_file_with(
            "credentials",
            "[prod]\nsecret_id = AKIDp\nsecret_key = kp\n",
        );
        let p = source(
            "credentials = \"profile\"\nprofile = \"prod\"",
            &[(ENV_CREDENTIALS_FILE, &profile.display().to_string())],
        );
        assert!(
            matches!(&p.spec().base, BaseSource::Profile { file, profile } if *file == *profile_path(&p) && profile == "prod")
        );
        let home = source("credentials = \"chain\"", &[("HOME", "/home/u")]);
        let BaseSource::Chain(links) = &home.spec().base else {
            panic!()
        };
        assert!(
            matches!(&links[1].source, Ok(BaseSource::Profile { file, .. }) if file == Path::new("/home/u/.tencentcloud/credentials"))
        );
        assert!(
            links[3]
                .source
                .as_ref()
                .is_err_and(|e| e.contains("TKE_ROLE_ARN"))
        );
    }

    fn profile_path(s: &CredentialSource) -> &std::path::PathBuf {
        match &s.spec().base {
            BaseSource::Profile { file, .. } => file,
            _ => panic!("not a profile"),
        }
    }

    #[test]
    fn every_credential_fault_is_refused_naming_the_key() {
        let key_file = temp_file_with("k", "kk");
        let empty_file = temp_file_with("empty", "\n");
        let cases: Vec<(String, &str)> = vec![
            ("credentials = \"magic\"".into(), "accounts[0].credentials"),
            ("credentials = \"cvm_role\"\nsecret_id = \"i\"".into(), "accounts[0].secret_id"),
            ("credentials = \"env\"\nsecret_key_file = \"/x\"".into(), "accounts[0].secret_key_file"),
            ("credentials = \"cvm_role\"\nprofile = \"p\"".into(), "accounts[0].profile"),
            ("credentials = \"profile\"\nrole = \"r\"".into(), "accounts[0].role"),
            ("credentials = \"static\"\nsecret_id = \"i\"\nsecret_key = \"k\"\nmetadata_endpoint = \"http://m\"".into(), "accounts[0].metadata_endpoint"),
            ("credentials = \"cvm_role\"\nmetadata_endpoint = \"http://m/latest/meta-data\"".into(), "accounts[0].metadata_endpoint"),
            ("credentials = \"cvm_role\"\nrole = \"bad role\"".into(), "accounts[0].role"),
            ("credentials = \"cvm_role\"\nrole_arn = \"arn:aws:iam::1:role/x\"".into(), "accounts[0].role_arn"),
            ("credentials = \"cvm_role\"\nrole_arn = \"qcs::cam::uin/1:roleName/x\"\nsts_endpoint = \"ftp://sts\"".into(), "accounts[0].sts_endpoint"),
            ("credentials = \"cvm_role\"\nrole_arn = \"qcs::cam::uin/1:roleName/x\"\nrole_session_name = \"a b\"".into(), "accounts[0].role_session_name"),
            ("secret_id = \"i\"\nsecret_key = \"k\"\nrole_session_name = \"s1\"".into(), "accounts[0].role_session_name"),
            ("secret_id = \"i\"\nsecret_key = \"k\"\nsts_endpoint = \"http://sts\"".into(), "accounts[0].sts_endpoint"),
            ("credentials = \"oidc\"".into(), "TKE_REGION, TKE_PROVIDER_ID, TKE_WEB_IDENTITY_TOKEN_FILE, TKE_ROLE_ARN not set"),
            ("credentials = \"static\"".into(), "no secret_id/secret_key"),
            ("secret_id_file = \"/nonexistent/tle/id\"\nsecret_key = \"k\"".into(), "accounts[0].secret_id_file"),
            (format!("secret_id = \"i\"\nsecret_key_file = {:?}", empty_file.display().to_string()), "is empty"),
            (format!("secret_id = \"i\"\nsecret_key = \"k\"\nsecret_key_file = {:?}", key_file.display().to_string()), "not both"),
            (format!("secret_id = \"i\"\nsecret_key_file = {:?}\nsecret_id_file = \"/x\"\n", key_file.display().to_string()), "not both"),
            ("secret_key = \"k\"".into(), "both secret_id and secret_key"),
            ("credentials = \"profile\"".into(), "accounts[0].profile: no credentials file"),
            ("credentials = \"profile\"\nprofile = \"x]\"".into(), "accounts[0].profile"),
        ];
        for (lines, expected) in cases {
            let e = err(&account(&lines));
            assert!(
                e.contains(expected),
                "{lines:?} gave {e:?}, which does not say {expected}"
            );
            assert!(!e.contains("kk"), "{e}");
        }
        let ini = temp_file_with("credentials", "[default]\nsecret_id = i\nsecret_key = kk\n");
        let missing_profile = from_toml(
            &account("credentials = \"profile\"\nprofile = \"nope\""),
            &[(ENV_CREDENTIALS_FILE, &ini.display().to_string())],
        )
        .unwrap_err()
        .0;
        assert!(
            missing_profile.contains("no [nope] profile"),
            "{missing_profile}"
        );
    }

    #[test]
    fn redacted_output_of_every_source_hides_secrets_and_parses_back() {
        let key_file = temp_file_with("k", "file-secret-key");
        let token_file = temp_file_with("t", "web-identity-token");
        let profile = temp_file_with(
            "credentials",
            "[default]\nsecret_id = AKIDp\nsecret_key = profile-secret-key\n",
        );
        let vars = [
            (ENV_SECRET_ID, "AKIDenv"),
            (ENV_SECRET_KEY, "env-secret-key"),
            (ENV_TOKEN, "env-session-token"),
            (ENV_CREDENTIALS_FILE, &*profile.display().to_string()),
            (ENV_TKE_REGION, "ap-shanghai"),
            (ENV_TKE_PROVIDER_ID, "prov"),
            (
                ENV_TKE_WEB_IDENTITY_TOKEN_FILE,
                &*token_file.display().to_string(),
            ),
            (ENV_TKE_ROLE_ARN, "qcs::cam::uin/1:roleName/pod"),
        ]
        .map(|(k, v)| (k, v.to_owned()));
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let toml = format!(
            "[[accounts]]\nname = \"inline\"\nsecret_id = \"AKIDi\"\nsecret_key = \"inline-secret-key\"\nrole_arn = \"qcs::cam::uin/2:roleName/x\"\nrole_session_name = \"sess\"\nsts_endpoint = \"http://sts.test\"\n\
             [[accounts]]\nname = \"files\"\nsecret_id = \"AKIDf\"\nsecret_key_file = {:?}\n\
             [[accounts]]\nname = \"env\"\ncredentials = \"env\"\n\
             [[accounts]]\nname = \"profile\"\ncredentials = \"profile\"\n\
             [[accounts]]\nname = \"cvm\"\ncredentials = \"cvm_role\"\nrole = \"r\"\nmetadata_endpoint = \"http://md.test\"\n\
             [[accounts]]\nname = \"oidc\"\ncredentials = \"oidc\"\n\
             [[accounts]]\nname = \"chain\"\n",
            key_file.display().to_string()
        );
        let c = from_toml(&toml, &vars).unwrap();
        let out = c.to_redacted_toml();
        let debug = format!("{c:?}");
        for secret in [
            "inline-secret-key",
            "file-secret-key",
            "env-secret-key",
            "env-session-token",
            "profile-secret-key",
            "web-identity-token",
        ] {
            assert!(!out.contains(secret), "{secret} in:\n{out}");
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        for shown in [
            "credentials = \"oidc\"",
            "role = \"r\"",
            "metadata_endpoint = \"http://md.test\"",
            "role_arn = \"qcs::cam::uin/2:roleName/x\"",
            "sts_endpoint = \"http://sts.test\"",
            "secret_key_file = ",
        ] {
            assert!(out.contains(shown), "{shown} missing from:\n{out}");
        }
        let back = from_toml(&out.replace("[REDACTED]", "inline-secret-key"), &vars).unwrap();
        assert_eq!(back.accounts.len(), c.accounts.len());
        for (a, b) in c.accounts.iter().zip(&back.accounts) {
            assert!(
                a.credentials.same_as(&b.credentials),
                "{} changed:\n{out}",
                a.name
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_config_file_with_a_secret_that_others_can_read_draws_a_warning() {
        use std::os::unix::fs::PermissionsExt as _;
        let with_secret = temp_file_with("c.toml", ONE);
        let set_mode = |p: &Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        set_mode(&with_secret, 0o644);
        let w = permission_warnings(Some(&with_secret));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("mode 0644") && w[0].contains("\"prod\""),
            "{w:?}"
        );
        assert!(!w[0].contains("k1"), "{w:?}");
        set_mode(&with_secret, 0o600);
        assert!(permission_warnings(Some(&with_secret)).is_empty());
        let without = temp_file_with(
            "c.toml",
            "[[accounts]]\nname = \"p\"\ncredentials = \"cvm_role\"\n",
        );
        set_mode(&without, 0o644);
        assert!(permission_warnings(Some(&without)).is_empty());
        assert!(permission_warnings(None).is_empty());
    }
    #[test]
    fn every_duration_out_of_range_is_refused_naming_the_key() {
        // From the file: each key beyond its bounds, including values that overflow a Duration
        // multiplication or an Instant addition.
        for (key, least, most) in DURATION_BOUNDS {
            let (section, name) = key.split_once('.').unwrap();
            let above = humantime::format_duration(most + Duration::from_secs(1)).to_string();
            let mut values = vec![above, "300000000000y".to_owned()];
            if least > Duration::ZERO {
                values.push(humantime::format_duration(least / 2).to_string());
            }
            for v in values {
                let toml = format!("[{section}]\n{name} = {v:?}\n{ONE}");
                let e = err(&toml);
                assert!(
                    e.contains(key) && e.contains("must be between"),
                    "{key} = {v}: {e}"
                );
            }
        }
        // From the environment, which reloads re-read as well.
        let e = load(
            None,
            &Overrides::default(),
            env(&[
                ("TLE__POLL__MAX_STALENESS", "300000000000y"),
                (ENV_SECRET_ID, "i"),
                (ENV_SECRET_KEY, "k"),
            ]),
        )
        .unwrap_err()
        .0;
        assert!(
            e.contains("poll.max_staleness must be between 1s and 30days"),
            "{e}"
        );
        // The largest values allowed leave room for the arithmetic done on them.
        let c = from_toml(
            &format!("[poll]\ninterval = \"7d\"\nbackoff_max = \"1h\"\n{ONE}"),
            &[],
        )
        .unwrap();
        assert_eq!(c.poll.max_staleness, Duration::from_secs(21 * 86_400));
        assert!(
            tokio::time::Instant::now()
                .checked_add(c.poll.max_staleness + c.poll.interval)
                .is_some()
        );
        let many = "[[accounts]]\nname = \"a\"\nsecret_id = \"i\"\nsecret_key = \"k\"\n"
            .repeat(MAX_ACCOUNTS + 1);
        assert!(err(&many).contains("at most 10000"), "too many accounts");
    }

    #[test]
    fn telemetry_paths_that_axum_would_take_as_patterns_are_refused() {
        for bad in [
            "/{x}",
            "/metrics/{*rest}",
            "/:id",
            "/*x",
            "/m etrics",
            "/m?x",
            "/m#x",
            "/m\u{1b}",
            "metrics",
            "/",
            "/healthz",
        ] {
            for source in ["file", "flag"] {
                let result = if source == "file" {
                    from_toml(
                        &format!("[web]\ntelemetry_path = {}\n{ONE}", toml_string(bad)),
                        &[],
                    )
                } else {
                    let overrides = Overrides {
                        telemetry_path: Some(bad.to_owned()),
                        ..Overrides::default()
                    };
                    let mut f = tempfile();
                    f.1.write_all(ONE.as_bytes()).unwrap();
                    load(Some(&f.0), &overrides, BTreeMap::new())
                };
                let e = result.unwrap_err().0;
                assert!(e.contains("web.telemetry_path"), "{bad:?} ({source}): {e}");
            }
        }
        let long = format!("/{}", "m".repeat(MAX_TELEMETRY_PATH_LEN));
        assert!(
            err(&format!("[web]\ntelemetry_path = {long:?}\n{ONE}")).contains("web.telemetry_path")
        );
        for good in ["/metrics", "/custom/metrics", "/a-b_c.d~e/f@g!h"] {
            let c = from_toml(&format!("[web]\ntelemetry_path = {good:?}\n{ONE}"), &[]).unwrap();
            assert_eq!(c.web.telemetry_path, good);
        }
    }

    #[test]
    fn a_fractional_count_is_refused_not_rounded() {
        for key in ["requests_per_second", "page_size", "max_retries"] {
            for v in ["10.5", "2.0", "1e1"] {
                let e = from_toml(&format!("[poll]\n{key} = {v}\n"), &[])
                    .unwrap_err()
                    .to_string();
                assert!(
                    e.contains(key) && e.contains("whole number"),
                    "{key} = {v}: {e}"
                );
            }
            let env = format!("TLE__POLL__{}", key.to_uppercase());
            let e = from_toml("", &[(env.as_str(), "10.5")])
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains("whole number"), "{env}: {e}");
            let ok = from_toml("", &[(env.as_str(), "10")]);
            assert!(ok.is_ok(), "{env}=10: {:?}", ok.err());
        }
        let c = from_toml("[poll]\npage_size = 50\nmax_retries = 0\n", &[]).unwrap();
        assert_eq!((c.poll.page_size, c.poll.retry.max_retries), (50, 0));
    }

    #[test]
    fn an_inline_secret_id_that_cannot_sign_is_refused_naming_the_key() {
        for id in ["AK\\u0007ID", "AKID\\u00e9", "AK ID", "AK\\u0000ID"] {
            let toml =
                format!("[[accounts]]\nname = \"a\"\nsecret_id = \"{id}\"\nsecret_key = \"k\"\n");
            let e = from_toml(&toml, &[]).unwrap_err().to_string();
            assert!(e.contains("accounts[0].secret_id"), "{id}: {e}");
            assert!(e.contains("printable ASCII"), "{id}: {e}");
        }
        let ok = "[[accounts]]\nname = \"a\"\nsecret_id = \" AKIDok \"\nsecret_key = \"k\"\n";
        assert!(from_toml(ok, &[]).is_ok());
    }

    #[test]
    fn check_config_output_with_control_characters_is_valid_toml() {
        let toml = "[[accounts]]\nname = \"a\\u0000b\\nc\\u001b[31m\\\"q\\\\\"\nsecret_id = \"AKID\\\"q\\\\\"\nsecret_key = \"k\"\n";
        let c = from_toml(toml, &[]).unwrap();
        let out = c.to_redacted_toml();
        let parsed: toml::Table = toml::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
        let account = &parsed["accounts"].as_array().unwrap()[0];
        assert_eq!(account["name"].as_str(), Some("a\u{0}b\nc\u{1b}[31m\"q\\"));
        assert_eq!(account["secret_id"].as_str(), Some("AKID\"q\\"));
        let back = from_toml(&out.replace("[REDACTED]", "k"), &[]).unwrap();
        assert_eq!(back.accounts[0].name, c.accounts[0].name);
        // Comments too: a profile file path with a newline stays on its comment line.
        assert_eq!(comment("a\nb\u{1b}c\td"), "a\\nb\\u{1b}c\td");
    }

    /// Any TOML value for any key: validation answers a valid configuration or an error naming
    /// what is wrong, and never panics; a valid one can be served, polled and printed.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        const KEYS: [(&str, &str); 25] = [
            ("web", "listen_address"),
            ("web", "telemetry_path"),
            ("poll", "interval"),
            ("poll", "timeout"),
            ("poll", "requests_per_second"),
            ("poll", "page_size"),
            ("poll", "package_types"),
            ("poll", "max_retries"),
            ("poll", "backoff_base"),
            ("poll", "backoff_max"),
            ("poll", "max_staleness"),
            ("accounts", "name"),
            ("accounts", "secret_id"),
            ("accounts", "secret_key"),
            ("accounts", "endpoint"),
            ("accounts", "credentials"),
            ("accounts", "secret_id_file"),
            ("accounts", "secret_key_file"),
            ("accounts", "profile"),
            ("accounts", "role"),
            ("accounts", "metadata_endpoint"),
            ("accounts", "role_arn"),
            ("accounts", "role_session_name"),
            ("accounts", "sts_endpoint"),
            ("accounts", "unknown_key"),
        ];

        fn value() -> impl Strategy<Value = toml::Value> {
            let leaf = prop_oneof![
                any::<i64>().prop_map(toml::Value::Integer),
                any::<f64>().prop_map(toml::Value::Float),
                any::<bool>().prop_map(toml::Value::Boolean),
                any::<String>().prop_map(toml::Value::String),
                // Durations, the values that overflowed: big numbers with every unit.
                (
                    any::<u64>(),
                    prop::sample::select(vec!["ns", "ms", "s", "m", "h", "d", "w", "y", ""])
                )
                    .prop_map(|(n, u)| toml::Value::String(format!("{n}{u}"))),
                prop::sample::select(vec![
                    "traffic",
                    "transcode",
                    "co_anchoring",
                    "static",
                    "cvm_role",
                    "chain",
                    "/metrics",
                    "/{x}",
                    "127.0.0.1:0",
                    "http://127.0.0.1:1",
                    "1s",
                    "0s",
                    "30d",
                ])
                .prop_map(|s| toml::Value::String(s.to_owned())),
            ];
            leaf.prop_recursive(2, 8, 4, |inner| {
                prop::collection::vec(inner, 0..4).prop_map(toml::Value::Array)
            })
        }

        fn document(values: &[Option<toml::Value>]) -> String {
            let mut web = toml::Table::new();
            let mut poll = toml::Table::new();
            let mut account = toml::Table::new();
            account.insert("name".into(), "a".into());
            account.insert("secret_id".into(), "i".into());
            account.insert("secret_key".into(), "k".into());
            for ((section, key), v) in KEYS.iter().zip(values) {
                let Some(v) = v else { continue };
                let table = match *section {
                    "web" => &mut web,
                    "poll" => &mut poll,
                    _ => &mut account,
                };
                table.insert((*key).into(), v.clone());
            }
            let mut doc = toml::Table::new();
            doc.insert("web".into(), web.into());
            doc.insert("poll".into(), poll.into());
            doc.insert("accounts".into(), toml::Value::Array(vec![account.into()]));
            toml::to_string(&doc).unwrap()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(192))]
            #[test]
            fn arbitrary_values_give_a_config_or_an_error_never_a_panic(
                values in prop::collection::vec(prop::option::weighted(0.3, value()), KEYS.len()),
                env_interval in prop::option::of(any::<String>()),
            ) {
                let text = document(&values);
                let mut vars = vec![];
                if let Some(v) = env_interval.as_deref().filter(|v| !v.contains('\0')) {
                    vars.push(("TLE__POLL__INTERVAL", v));
                }
                match from_toml(&text, &vars) {
                    Err(e) => prop_assert!(!e.0.is_empty()),
                    Ok(c) => {
                        for (key, least, most) in DURATION_BOUNDS {
                            let d = match key {
                                "poll.interval" => c.poll.interval,
                                "poll.timeout" => c.poll.timeout,
                                "poll.backoff_base" => c.poll.retry.backoff_base,
                                "poll.backoff_max" => c.poll.retry.backoff_max,
                                _ => c.poll.max_staleness,
                            };
                            prop_assert!((least..=most).contains(&d), "{key} = {d:?}");
                        }
                        prop_assert!(tokio::time::Instant::now()
                            .checked_add(c.poll.max_staleness.saturating_mul(2) + c.poll.interval)
                            .is_some());
                        // The route is registered the way the server does it: no panic.
                        let _ = axum::Router::<()>::new()
                            .route(&c.web.telemetry_path, axum::routing::get(|| async { "" }))
                            .route("/", axum::routing::get(|| async { "" }))
                            .route("/healthz", axum::routing::get(|| async { "" }))
                            .route("/-/reload", axum::routing::post(|| async { "" }));
                        let out = c.to_redacted_toml();
                        prop_assert!(toml::from_str::<toml::Table>(&out).is_ok(), "{}", out);
                    }
                }
            }
        }
    }
}
