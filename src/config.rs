//! Configuration: the raw TOML/environment/flag layers, and the validated [`Config`] that
//! everything else runs on.
//!
//! Layers, later wins: built-in defaults, the TOML file (`--config.file`), environment overrides
//! `TLE__SECTION__KEY` (double underscores, because keys contain single ones), then flags.
//! Validation turns strings into durations, URLs and secrets, and names the key of every fault.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::packages::QueryType;
use crate::poller::RetryPolicy;
use crate::tencent::credentials::{CredentialSource, Credentials};

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
    pub listen_address: Option<String>,
    pub telemetry_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoll {
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub requests_per_second: Option<i64>,
    pub page_size: Option<i64>,
    pub package_types: Option<Vec<String>>,
    pub max_retries: Option<i64>,
    pub backoff_base: Option<String>,
    pub backoff_max: Option<String>,
    pub max_staleness: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub name: String,
    pub secret_id: Option<String>,
    /// Wrapped as soon as it is read: `Debug` shows `[REDACTED]`.
    pub secret_key: Option<SecretString>,
    pub endpoint: Option<String>,
}

/// Flags that override the file (the ones the file also has).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen_address: Option<String>,
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
    pub listen_address: SocketAddr,
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
            format!("{raw:?}: give the base URL only; the API is POSTed to /"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(fault(key, "credentials do not belong in the URL"));
    }
    Ok(url)
}

impl Config {
    /// Validates the raw layers. `env` supplies `TENCENTCLOUD_*` for accounts without keys.
    pub fn validate(
        raw: RawConfig,
        overrides: &Overrides,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let listen = overrides
            .listen_address
            .clone()
            .or(raw.web.listen_address)
            .unwrap_or_else(|| defaults::LISTEN_ADDRESS.into());
        let listen_address = listen.trim().parse::<SocketAddr>().map_err(|_| {
            fault(
                "web.listen_address",
                format!("{listen:?} is not an address like 0.0.0.0:9877"),
            )
        })?;
        let telemetry_path = overrides
            .telemetry_path
            .clone()
            .or(raw.web.telemetry_path)
            .unwrap_or_else(|| defaults::TELEMETRY_PATH.into());
        if !telemetry_path.starts_with('/')
            || telemetry_path.len() < 2
            || ["/healthz", "/-/reload"].contains(&telemetry_path.as_str())
            || telemetry_path.contains(['?', '#', ' '])
        {
            return Err(fault(
                "web.telemetry_path",
                format!(
                    "{telemetry_path:?} must be a path like /metrics (not /, /healthz or /-/reload)"
                ),
            ));
        }

        let p = raw.poll;
        let interval = duration("poll.interval", p.interval.as_deref(), defaults::INTERVAL)?;
        if interval < Duration::from_secs(1) {
            return Err(fault("poll.interval", "must be at least 1s"));
        }
        let timeout = duration("poll.timeout", p.timeout.as_deref(), defaults::TIMEOUT)?;
        if timeout < Duration::from_millis(100) {
            return Err(fault("poll.timeout", "must be at least 100ms"));
        }
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
        let backoff_base = duration(
            "poll.backoff_base",
            p.backoff_base.as_deref(),
            defaults::BACKOFF_BASE,
        )?;
        let backoff_max = duration(
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
            Some(s) => duration("poll.max_staleness", Some(s), "")?,
            None => interval * defaults::STALENESS_INTERVALS,
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
            Some(a) => a,
            // No accounts configured: one account `default` from the environment.
            None => vec![RawAccount {
                name: defaults::ACCOUNT_NAME.into(),
                secret_id: None,
                secret_key: None,
                endpoint: None,
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
            let credentials = match (a.secret_id, a.secret_key) {
                (Some(id), Some(secret)) => {
                    if id.trim().is_empty() || secret.expose_secret().trim().is_empty() {
                        return Err(fault(
                            &key,
                            format!("account {name:?}: secret_id and secret_key must not be empty"),
                        ));
                    }
                    Credentials {
                        secret_id: id.trim().to_owned(),
                        secret_key: secret,
                        token: None,
                    }
                }
                (None, None) => match (env.get(ENV_SECRET_ID), env.get(ENV_SECRET_KEY)) {
                    (Some(id), Some(secret))
                        if !id.trim().is_empty() && !secret.trim().is_empty() =>
                    {
                        Credentials {
                            secret_id: id.trim().to_owned(),
                            secret_key: SecretString::from(secret.trim().to_owned()),
                            token: env
                                .get(ENV_TOKEN)
                                .filter(|t| !t.is_empty())
                                .map(|t| SecretString::from(t.clone())),
                        }
                    }
                    _ => {
                        return Err(fault(
                            &key,
                            format!(
                                "account {name:?} has no secret_id/secret_key, and {ENV_SECRET_ID} / {ENV_SECRET_KEY} are not both set"
                            ),
                        ));
                    }
                },
                _ => {
                    return Err(fault(
                        &key,
                        format!("account {name:?}: give both secret_id and secret_key, or neither"),
                    ));
                }
            };
            accounts.push(AccountConfig {
                name,
                credentials: CredentialSource::Static(credentials),
                endpoint,
            });
        }

        Ok(Config {
            web: WebConfig {
                listen_address,
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
        let d = |d: Duration| format!("{:?}", humantime::format_duration(d).to_string());
        let mut s = String::new();
        let _ = writeln!(s, "[web]");
        let _ = writeln!(s, "listen_address = \"{}\"", self.web.listen_address);
        let _ = writeln!(s, "telemetry_path = {:?}", self.web.telemetry_path);
        let p = &self.poll;
        let _ = writeln!(s, "\n[poll]");
        let _ = writeln!(s, "interval = {}", d(p.interval));
        let _ = writeln!(s, "timeout = {}", d(p.timeout));
        let _ = writeln!(s, "requests_per_second = {}", p.requests_per_second);
        let _ = writeln!(s, "page_size = {}", p.page_size);
        let types: Vec<String> = p
            .package_types
            .iter()
            .map(|q| format!("{:?}", q.label()))
            .collect();
        let _ = writeln!(s, "package_types = [{}]", types.join(", "));
        let _ = writeln!(s, "max_retries = {}", p.retry.max_retries);
        let _ = writeln!(s, "backoff_base = {}", d(p.retry.backoff_base));
        let _ = writeln!(s, "backoff_max = {}", d(p.retry.backoff_max));
        let _ = writeln!(s, "max_staleness = {}", d(p.max_staleness));
        for a in &self.accounts {
            let _ = writeln!(s, "\n[[accounts]]");
            let _ = writeln!(s, "name = {:?}", a.name);
            match &a.credentials {
                CredentialSource::Static(c) => {
                    let _ = writeln!(s, "secret_id = {:?}", c.secret_id);
                    let _ = writeln!(s, "secret_key = \"[REDACTED]\"");
                    if c.token.is_some() {
                        let _ = writeln!(s, "# session token: [REDACTED]");
                    }
                }
            }
            let _ = writeln!(
                s,
                "endpoint = {:?}",
                a.endpoint.as_str().trim_end_matches('/')
            );
        }
        s
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
        assert_eq!(c.web.listen_address.to_string(), "0.0.0.0:9877");
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

    #[test]
    fn the_example_config_parses_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let example = load(Some(&path), &Overrides::default(), BTreeMap::new())
            .expect("config.example.toml parses");
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
            listen_address: Some("127.0.0.1:2".into()),
            telemetry_path: None,
        };
        let c = load(Some(&f.0), &overrides, vars).unwrap();
        assert_eq!(c.poll.interval, Duration::from_secs(60));
        assert_eq!(c.poll.requests_per_second, 20);
        assert_eq!(c.poll.page_size, 50);
        assert_eq!(c.web.listen_address.to_string(), "127.0.0.1:2");
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
        let CredentialSource::Static(creds) = &c.accounts[0].credentials;
        assert_eq!(creds.secret_id, "AKIDenv");
        let e = load(None, &Overrides::default(), BTreeMap::new())
            .unwrap_err()
            .0;
        assert!(e.contains("TENCENTCLOUD_SECRET_ID"), "{e}");
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
}
