//! The raw layers: exactly what the TOML file and the `TLE__SECTION__KEY` environment say,
//! unknown keys refused, before validation.

use super::*;

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
