//! Configuration: the raw TOML/environment/flag layers, and the validated [`Config`] that
//! everything else runs on.
//!
//! Layers, later wins: built-in defaults, the TOML file (`--config.file`), environment overrides
//! `TLE__SECTION__KEY` (double underscores, because keys contain single ones), then flags.
//! Validation turns strings into durations, URLs and secrets, and names the key of every fault.
//! [`Config`] is plain data (`Clone + Eq + Debug`, secrets redacted): each account holds where its
//! keys come from (a [`SourceSpec`]), and the running exporter builds the credential cache from
//! it (`app.rs`), so reloads compare configurations with `==`.
//!
//! - `raw.rs`: the raw layers, exactly as written, unknown keys refused.
//! - `mod.rs` (here): validation into [`Config`] (durations, URLs, ranges).
//! - `sources.rs`: which Tencent credential source each account uses (SDK env names, profile
//!   paths, TKE variables, role ARNs); the credentials themselves are fetched in `tencent/`.
//! - `print.rs`: `--check-config`'s TOML, secrets redacted.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use reqwest::Url;

use crate::cli::ListenAddress;
use crate::domain::QueryType;
use crate::tencent::credentials::SourceSpec;

mod print;
mod raw;
mod sources;

pub use print::comment;
pub use raw::{OneOrMany, Overrides, RawAccount, RawConfig, RawPoll, RawWeb, load_raw};
use sources::account_credentials;
pub use sources::permission_warnings;

/// Defaults; `config.example.toml` documents the same values and a test keeps them equal.
/// Durations and addresses are strings as written in the file, parsed by the same code.
pub mod defaults {
    /// `web.listen_address`: every IPv4 address, port 9877.
    pub const LISTEN_ADDRESS: &str = "0.0.0.0:9877";
    /// `web.telemetry_path`.
    pub const TELEMETRY_PATH: &str = "/metrics";
    /// `poll.interval`: package amounts change slowly.
    pub const INTERVAL: &str = "5m";
    /// `poll.timeout`: one call, connect to last byte.
    pub const TIMEOUT: &str = "10s";
    /// `poll.requests_per_second`: half the API's 20/s, so a second replica or another client of
    /// the same key has the other half.
    pub const REQUESTS_PER_SECOND: i64 = 10;
    /// `poll.page_size`: the API's largest `PageSize`, so the fewest calls.
    pub const PAGE_SIZE: i64 = 100;
    /// `poll.package_types`: every query type.
    pub const PACKAGE_TYPES: [&str; 3] = ["traffic", "transcode", "co_anchoring"];
    /// `poll.max_retries`, per page.
    pub const MAX_RETRIES: i64 = 3;
    /// `poll.backoff_base`.
    pub const BACKOFF_BASE: &str = "500ms";
    /// `poll.backoff_max`.
    pub const BACKOFF_MAX: &str = "10s";
    /// `max_staleness` defaults to this many intervals.
    pub const STALENESS_INTERVALS: u32 = 3;
    /// `accounts[].endpoint`: the Live API's domain on the China site (API page, 接口请求域名).
    pub const ENDPOINT: &str = "https://live.tencentcloudapi.com";
    /// The name of the one account run when the file has no `[[accounts]]`.
    pub const ACCOUNT_NAME: &str = "default";
}

/// The API's own limit per account and second (API page: 默认接口请求频率限制 20次/秒): the
/// most `poll.requests_per_second` may be.
pub const API_REQUESTS_PER_SECOND: i64 = 20;

/// The SecretId of `credentials = "env"` (and the chain's `env` link), as the official SDKs
/// read it.
pub const ENV_SECRET_ID: &str = "TENCENTCLOUD_SECRET_ID";
/// The SecretKey beside [`ENV_SECRET_ID`]; both must be set and non-empty.
pub const ENV_SECRET_KEY: &str = "TENCENTCLOUD_SECRET_KEY";
/// Optional session token beside them (sent as `X-TC-Token`), as tccli reads it.
pub const ENV_TOKEN: &str = "TENCENTCLOUD_TOKEN";
/// The profile file, when not `~/.tencentcloud/credentials`.
pub const ENV_CREDENTIALS_FILE: &str = "TENCENTCLOUD_CREDENTIALS_FILE";
/// TKE pod identity (OIDC), as TKE sets them in the pod (all four needed by `credentials =
/// "oidc"`): the region, sent as STS's `X-TC-Region`.
pub const ENV_TKE_REGION: &str = "TKE_REGION";
/// The OIDC identity provider's id: `ProviderId` of `AssumeRoleWithWebIdentity`.
pub const ENV_TKE_PROVIDER_ID: &str = "TKE_PROVIDER_ID";
/// The projected token's file, read again at every refresh (TKE rotates it).
pub const ENV_TKE_WEB_IDENTITY_TOKEN_FILE: &str = "TKE_WEB_IDENTITY_TOKEN_FILE";
/// The role the pod's token is exchanged for: `RoleArn` of `AssumeRoleWithWebIdentity`.
pub const ENV_TKE_ROLE_ARN: &str = "TKE_ROLE_ARN";
/// The values of `accounts[].credentials`.
pub const CREDENTIAL_SOURCES: [&str; 6] = ["chain", "static", "env", "profile", "cvm_role", "oidc"];

/// A configuration fault, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn fault(key: &str, msg: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("{key}: {msg}"))
}

/// The validated configuration: plain data (no credential cache, no handle), so that reloads
/// compare it with `==` and `Debug` prints it with every secret redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[web]` with the flags applied.
    pub web: ListenConfig,
    /// `[poll]`, shared by every account.
    pub poll: PollConfig,
    /// At least one, at most [`MAX_ACCOUNTS`], names unique, in file order.
    pub accounts: Vec<AccountConfig>,
}

/// Where the exporter serves (`[web]` and the `--web.*` flags that override it; the
/// exporter-toolkit `--web.config.file` is read by `crate::http`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenConfig {
    /// Where to listen, at least one (`--web.listen-address` may be repeated).
    pub listen_addresses: Vec<ListenAddress>,
    /// Where `/metrics` is served; starts with `/`.
    pub telemetry_path: String,
}

/// Retries of transient faults (`poll.max_retries`, `poll.backoff_base`, `poll.backoff_max`):
/// exponential backoff with full jitter, applied per page by the poller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra tries after the first, per page.
    pub max_retries: u32,
    /// Backoff cap before jitter for the first retry; doubles per retry.
    pub backoff_base: Duration,
    /// Upper bound of any one backoff.
    pub backoff_max: Duration,
}

impl RetryPolicy {
    /// No retries: the first fault of any page fails the poll.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_retries: 0,
        backoff_base: Duration::ZERO,
        backoff_max: Duration::ZERO,
    };

    /// Full jitter: uniformly random in [0, min(max, base * 2^attempt)].
    pub fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .backoff_base
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.backoff_max);
        cap.mul_f64(fastrand::f64())
    }
}

/// How every account is polled (`[poll]`); each value within the bounds [`RawPoll`] lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollConfig {
    /// Time between the starts of two polls of one (account, package type) pair (a poll that
    /// outlasts it skips the starts it missed); 1s..=7d.
    pub interval: Duration,
    /// Deadline of one API call.
    pub timeout: Duration,
    /// Per account, in any one-second window.
    pub requests_per_second: u32,
    /// `PageSize` sent with every page.
    pub page_size: u32,
    /// The query types polled for every account, each once, in the configured order.
    pub package_types: Vec<QueryType>,
    /// Retries of transient faults per page: `max_retries`, `backoff_base`, `backoff_max`.
    pub retry: RetryPolicy,
    /// A pair with no success for this long loses its package series.
    pub max_staleness: Duration,
}

/// One validated `[[accounts]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountConfig {
    /// The `account` label.
    pub name: String,
    /// Where the keys come from (secrets inside stay `secrecy` types: redacted in `Debug`,
    /// compared in constant time). The running exporter builds the account's
    /// [`crate::tencent::credentials::CredentialSource`] (the cache its pollers share) from it.
    pub credentials: SourceSpec,
    /// Base URL the API is POSTed to.
    pub endpoint: Url,
    /// Joins the request budget of every account of the same group to this one's (two keys of
    /// one sub-account: Tencent counts per sub-account); see [`Config::budget_plan`].
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

impl Config {
    /// Which accounts share a request budget: [`crate::tencent::budget::Plan`] over the
    /// accounts, by their identity (the resolved SecretId, or the role) and `rate_limit_group`.
    /// Reads the key files and profiles the accounts name; asks no service.
    pub fn budget_plan(&self) -> crate::tencent::budget::Plan {
        crate::tencent::budget::Plan::new(self.accounts.iter().map(|a| {
            crate::tencent::budget::PlanAccount {
                name: &a.name,
                credentials: &a.credentials,
                rate_limit_group: a.rate_limit_group.as_deref(),
            }
        }))
    }

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
                        "must not be empty; leave it out to key the budget by the account's SecretId or role",
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
            web: ListenConfig {
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
mod tests;
