//! The raw layers: exactly what the TOML file and the `TLE__SECTION__KEY` environment say,
//! unknown keys refused, before validation.

use std::collections::BTreeMap;
use std::path::Path;

use secrecy::SecretString;
use serde::Deserialize;

use super::ConfigError;

// ---------------------------------------------------------------------------------------------
// Raw layer: exactly what the file and environment say, unknown keys refused.

/// The whole file plus the `TLE__*` overrides, as [`load_raw`] reads them: every key optional
/// (defaults are applied by [`Config::validate`](super::Config::validate), which also checks ranges), unknown keys and
/// wrongly typed values refused with the key's name. Secrets are wrapped on reading, so `Debug`
/// prints no key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The `[web]` table: where `/metrics` is served. Empty when the file has none.
    #[serde(default)]
    pub web: RawWeb,
    /// The `[poll]` table: how often and how hard the API is asked. Empty when the file has none.
    #[serde(default)]
    pub poll: RawPoll,
    /// The `[[accounts]]` tables. `None` when the file has none at all: validation then runs one
    /// account `default` with `credentials = "chain"`; `Some` of an empty list (`accounts = []`)
    /// is refused, and so are more than [`MAX_ACCOUNTS`](super::MAX_ACCOUNTS). No environment override: the `config`
    /// crate cannot build a list of tables from `TLE__ACCOUNTS__…` variables and refuses them
    /// ("expected a sequence for key `accounts`").
    pub accounts: Option<Vec<RawAccount>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[web]` table.
pub struct RawWeb {
    /// `listen_address`: one address or a list of them, each in a form `--web.listen-address`
    /// takes (`:9877` every address, `0.0.0.0:9877`, `localhost:9877` resolved at start,
    /// `[::1]:9877`). Default [`defaults::LISTEN_ADDRESS`](super::defaults::LISTEN_ADDRESS). Env `TLE__WEB__LISTEN_ADDRESS` (one
    /// address); the flag, repeated, replaces both. An empty list or an address that does not
    /// parse is refused.
    pub listen_address: Option<OneOrMany>,
    /// `telemetry_path`: where the metrics are served. Default [`defaults::TELEMETRY_PATH`](super::defaults::TELEMETRY_PATH). Env
    /// `TLE__WEB__TELEMETRY_PATH`; flag `--web.telemetry-path` wins. Refused unless it is `/` then
    /// letters, digits and `/-._~!$&'()+,;=@` (so axum takes it literally, never as a pattern),
    /// at most [`MAX_TELEMETRY_PATH_LEN`](super::MAX_TELEMETRY_PATH_LEN) bytes, and not `/`, `/healthz` or `/-/reload` (the
    /// exporter's other routes).
    pub telemetry_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
/// The `[poll]` table. Durations are humantime strings (`500ms`, `30s`, `5m`, `1h`), bounded by
/// [`DURATION_BOUNDS`](super::DURATION_BOUNDS); counts are TOML integers (a float is refused, not rounded).
pub struct RawPoll {
    /// `interval`: how often each (account, package type) pair is polled. Default
    /// [`defaults::INTERVAL`](super::defaults::INTERVAL) (`5m`); 1s..=7d. Env `TLE__POLL__INTERVAL`.
    pub interval: Option<String>,
    /// `timeout`: deadline of one API call (also of each metadata-service or STS call), from
    /// connect to the last byte of the answer. Default [`defaults::TIMEOUT`](super::defaults::TIMEOUT) (`10s`);
    /// 100ms..=10m. Env `TLE__POLL__TIMEOUT`.
    pub timeout: Option<String>,
    /// `requests_per_second`: per request budget (see [`Config::budget_plan`](super::Config::budget_plan)), calls that may arrive in
    /// any one-second window, retries included. Default [`defaults::REQUESTS_PER_SECOND`](super::defaults::REQUESTS_PER_SECOND);
    /// 1..=[`API_REQUESTS_PER_SECOND`](super::API_REQUESTS_PER_SECOND) (the API's documented 20/s). Env
    /// `TLE__POLL__REQUESTS_PER_SECOND`.
    #[serde(default, deserialize_with = "whole_number")]
    pub requests_per_second: Option<i64>,
    /// `page_size`: the `PageSize` sent with every page. Default [`defaults::PAGE_SIZE`](super::defaults::PAGE_SIZE);
    /// 10..=100, the range the API page gives. Env `TLE__POLL__PAGE_SIZE`.
    #[serde(default, deserialize_with = "whole_number")]
    pub page_size: Option<i64>,
    /// `package_types`: the query types to poll, each once, of `traffic` (bytes), `transcode`
    /// (minutes) and `co_anchoring` (hours). Default all three ([`defaults::PACKAGE_TYPES`](super::defaults::PACKAGE_TYPES)).
    /// Env `TLE__POLL__PACKAGE_TYPES`, comma-separated. An empty list, an unknown name or a
    /// repeated one is refused.
    pub package_types: Option<Vec<String>>,
    /// `max_retries`: retries of a transient fault per page (network, timeout, HTTP 5xx or 429,
    /// `InternalError*`, `RequestLimitExceeded*`). Default [`defaults::MAX_RETRIES`](super::defaults::MAX_RETRIES); 0..=10.
    /// Env `TLE__POLL__MAX_RETRIES`.
    #[serde(default, deserialize_with = "whole_number")]
    pub max_retries: Option<i64>,
    /// `backoff_base`: the cap of the wait before the first retry, doubling per retry; each wait
    /// is uniformly random below its cap (full jitter). Default [`defaults::BACKOFF_BASE`](super::defaults::BACKOFF_BASE)
    /// (`500ms`); 0s..=1h. Env `TLE__POLL__BACKOFF_BASE`.
    pub backoff_base: Option<String>,
    /// `backoff_max`: the cap of any one wait. Default [`defaults::BACKOFF_MAX`](super::defaults::BACKOFF_MAX) (`10s`); 0s..=1h,
    /// and not less than `backoff_base`. Env `TLE__POLL__BACKOFF_MAX`.
    pub backoff_max: Option<String>,
    /// `max_staleness`: a pair with no successful poll for this long loses its package series
    /// (its `tencent_live_up` stays, at 0). Default [`defaults::STALENESS_INTERVALS`](super::defaults::STALENESS_INTERVALS) ×
    /// `interval`; 1s..=30d, and not less than `interval`. Env `TLE__POLL__MAX_STALENESS`.
    pub max_staleness: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
/// One `[[accounts]]` table: a Tencent Cloud account (or sub-account) and where its keys come
/// from. File only (no `TLE__` override; see [`RawConfig::accounts`]). A key that only one
/// `credentials` source uses is refused with another source, naming both. Whitespace around
/// every value is trimmed.
pub struct RawAccount {
    /// `name` (required): the `account` label of every series. Empty or duplicate names are
    /// refused.
    pub name: String,
    /// `secret_id`: the SecretId (`AKID…`) of `credentials = "static"`. Printable ASCII only (it
    /// goes into every `Authorization` header); not together with `secret_id_file`.
    pub secret_id: Option<String>,
    /// `secret_key`: the SecretKey of `credentials = "static"`. Wrapped as soon as it is read:
    /// `Debug` shows `[REDACTED]`. The exporter warns at start when the file holding it is
    /// readable by other users; not together with `secret_key_file`.
    pub secret_key: Option<SecretString>,
    /// `endpoint`: the Live API's base URL (`POST /`). Default [`defaults::ENDPOINT`](super::defaults::ENDPOINT);
    /// `https://live.intl.tencentcloudapi.com` on the international site. Refused unless http(s)
    /// with a host and no path beyond `/`, query, fragment or user info.
    pub endpoint: Option<String>,
    /// `credentials`: where the keys come from, one of [`CREDENTIAL_SOURCES`](super::CREDENTIAL_SOURCES) (`chain`,
    /// `static`, `env`, `profile`, `cvm_role`, `oidc`). Default `chain`, or `static` when any of
    /// `secret_id`, `secret_key`, `secret_id_file`, `secret_key_file` is set.
    pub credentials: Option<String>,
    /// `secret_id_file`: a file holding the SecretId (a mounted secret), whitespace trimmed, at
    /// most 64 KiB; read at validation (a missing or empty one is refused) and again every
    /// [`creds::FILE_RECHECK`](crate::tencent::credentials::FILE_RECHECK). `static` only.
    pub secret_id_file: Option<String>,
    /// `secret_key_file`: as `secret_id_file`, for the SecretKey.
    pub secret_key_file: Option<String>,
    /// `profile`: the INI section of the credentials file (`$TENCENTCLOUD_CREDENTIALS_FILE`, else
    /// `~/.tencentcloud/credentials`). Default [`creds::DEFAULT_PROFILE`](crate::tencent::credentials::DEFAULT_PROFILE); for `profile` and
    /// `chain` only; refused when empty or holding `[` or `]`.
    pub profile: Option<String>,
    /// `role`: the CVM instance role's name (letters, digits, `+=,.@-_`); when omitted, asked
    /// from the metadata service. For `cvm_role` and `chain` only.
    pub role: Option<String>,
    /// `metadata_endpoint`: the CVM metadata service's base URL; the exporter appends
    /// `/latest/meta-data/cam/security-credentials/`. Default
    /// [`creds::DEFAULT_METADATA_ENDPOINT`](crate::tencent::credentials::DEFAULT_METADATA_ENDPOINT); for `cvm_role` and `chain` only.
    pub metadata_endpoint: Option<String>,
    /// `role_arn`: STS `AssumeRole` of this role on top of any source, signed with the source's
    /// keys, sessions of [`creds::STS_DURATION_SECONDS`](crate::tencent::credentials::STS_DURATION_SECONDS). Must start with `qcs::cam::` and hold no
    /// whitespace (`qcs::cam::uin/100000000001:roleName/live-readonly`).
    pub role_arn: Option<String>,
    /// `external_id`: STS `AssumeRole`'s `ExternalId`, for a role whose trust policy requires
    /// one (`qcs:ExternalId`, a reseller's customer account). A secret: never logged, redacted
    /// in `--check-config`. 2 to 128 of letters, digits and `_+=,.@:/-` (STS's rule); refused
    /// without `role_arn`. Default none (not sent).
    pub external_id: Option<SecretString>,
    /// `role_session_name`: `RoleSessionName` of `AssumeRole` and of `oidc`'s
    /// `AssumeRoleWithWebIdentity`. Default [`creds::DEFAULT_ROLE_SESSION_NAME`](crate::tencent::credentials::DEFAULT_ROLE_SESSION_NAME); 2 to 128 of
    /// letters, digits and `+=,.@-_` (STS's rule); refused without `role_arn` unless the source
    /// is `oidc` or `chain`.
    pub role_session_name: Option<String>,
    /// `sts_endpoint`: STS's base URL (`POST /`), for `role_arn` and `oidc`. Default
    /// [`creds::DEFAULT_STS_ENDPOINT`](crate::tencent::credentials::DEFAULT_STS_ENDPOINT); same rules, and same refusal without `role_arn`, as
    /// `role_session_name`.
    pub sts_endpoint: Option<String>,
    /// `rate_limit_group`: accounts with the same group share one request budget (set it for
    /// keys of one Tencent (sub-)account: the API counts its 20/s per API, region and
    /// sub-account, not per key). Default none: the budget is keyed by the account's identity
    /// (the SecretId of long-term keys, the role of temporary keys). Refused when empty.
    pub rate_limit_group: Option<String>,
}

/// A key that takes one string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `listen_address = ":9877"` (and every `TLE__WEB__LISTEN_ADDRESS` value).
    One(String),
    /// `listen_address = [":9877", "[::1]:9878"]`.
    Many(Vec<String>),
}

/// Flags that override the file (the ones the file also has).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// Every `--web.listen-address`; empty: the file's.
    pub listen_address: Vec<String>,
    /// `--web.telemetry-path`; `None`: the file's (validated as `web.telemetry_path`).
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
