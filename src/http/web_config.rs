//! The web configuration file (`--web.config.file`) in the format of the Prometheus
//! exporter-toolkit, so that the files operators already have for other exporters work unchanged.
//!
//! This module only parses and validates: paths are resolved, not read.
//! Keys the toolkit knows but this exporter does not enforce are accepted with a warning; keys
//! the toolkit does not know are refused, naming the key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Why a web configuration file was refused. The message names the key; it never contains a
/// secret (inline keys and password hashes are not echoed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfigError(pub String);

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WebConfigError {}

fn err<T>(msg: impl Into<String>) -> Result<T, WebConfigError> {
    Err(WebConfigError(msg.into()))
}

// ---------------------------------------------------------------------------------------------
// The file as written (exporter-toolkit's field names). Empty strings mean "not set", as in Go.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    rate_limit: Option<RawRateLimit>,
    #[serde(default)]
    auth_excluded_paths: Option<Vec<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<SecretString>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

impl fmt::Debug for RawTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawTls").finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    interval: Option<GoDuration>,
    burst: Option<u64>,
}

/// A Go `time.Duration` as yaml.v2 reads it: a string like `1m30s` or an integer of nanoseconds.
#[derive(Debug)]
struct GoDuration(Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Nanos(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Nanos(n) => Ok(GoDuration(Duration::from_nanos(n))),
            Either::Text(s) => parse_go_duration(&s)
                .map(GoDuration)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid duration {s:?}"))),
        }
    }
}

/// Parses Go's duration syntax (`300ms`, `1.5s`, `1h2m`); negative durations are refused.
fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * nanos_per_unit;
    }
    (total.is_finite() && total < u64::MAX as f64).then(|| Duration::from_nanos(total as u64))
}

// ---------------------------------------------------------------------------------------------
// The validated configuration.

/// A validated web configuration. Files it names are resolved against the directory of the web
/// configuration file (as the toolkit does) but not read here.
#[derive(Debug, Default)]
pub struct WebConfig {
    /// `None`: plain HTTP (the toolkit's rule: TLS is on when any certificate, key, client CA or
    /// client auth type is set).
    pub tls: Option<TlsSettings>,
    /// Username → bcrypt hash. Empty: no authentication.
    pub users: BTreeMap<String, String>,
    /// `auth_excluded_paths`: request paths served without basic auth, each compared with the
    /// request's path exactly (no prefix, no query), as exporter-toolkit does. Empty: none.
    pub auth_excluded_paths: Vec<String>,
    /// Extra response headers from `http_server_config.headers`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `rate_limit`, when its `interval` is above zero (an interval of 0 turns it off, as in the
    /// toolkit); its `burst` is then at least 1.
    pub rate_limit: Option<RateLimit>,
    /// Accepted toolkit settings this exporter does not enforce, for one warning per change.
    pub warnings: Vec<String>,
}

/// `rate_limit`: at most `burst` requests at once, refilled one per `interval`; beyond it, 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// One token is added per `interval` (a Go duration such as `100ms`): the sustained rate is
    /// one request per `interval`.
    pub interval: Duration,
    /// The bucket's size: at most this many requests in a burst; at least 1.
    pub burst: u32,
}

/// PEM text that is either in a file or inline in the web configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    /// `*_file`: a path, resolved against the web configuration file's directory, read at every
    /// (re)load.
    File(PathBuf),
    /// The PEM text itself (`cert`, `client_ca`).
    Inline(String),
}

/// The private key: a file or inline (a secret: never printed).
#[derive(Clone)]
pub enum KeyPem {
    /// `key_file`: a path, resolved against the web configuration file's directory, read at every
    /// (re)load.
    File(PathBuf),
    /// `key`: the PEM text itself, wrapped so that it is never printed.
    Inline(SecretString),
}

impl fmt::Debug for KeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyPem::File(p) => f.debug_tuple("File").field(p).finish(),
            KeyPem::Inline(_) => f.write_str("Inline([REDACTED])"),
        }
    }
}

impl PartialEq for KeyPem {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (KeyPem::File(a), KeyPem::File(b)) => a == b,
            (KeyPem::Inline(a), KeyPem::Inline(b)) => a.expose_secret() == b.expose_secret(),
            _ => false,
        }
    }
}

/// Go's `tls.ClientAuthType`, by the names the toolkit accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate is asked for (the default, and the empty string).
    NoClientCert,
    /// A certificate is asked for but not required, and not verified against a CA.
    RequestClientCert,
    /// A certificate is required but not verified against a CA (`RequireClientCert` is an alias);
    /// the client must still prove it holds the key.
    RequireAnyClientCert,
    /// A certificate is not required; one that is sent is verified against `client_ca_file`.
    VerifyClientCertIfGiven,
    /// A certificate is required and verified against `client_ca_file`.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    /// The accepted names, in the order Go lists them, for the error naming an unknown one.
    pub const NAMES: &'static str = "NoClientCert, RequestClientCert, RequireAnyClientCert, \
         VerifyClientCertIfGiven, RequireAndVerifyClientCert";

    /// Whether the client's certificate chain is verified against `client_ca_file`.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }

    /// Whether a client without a certificate is refused.
    pub fn requires(self) -> bool {
        matches!(
            self,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

impl FromStr for ClientAuth {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // "RequireClientCert" is the toolkit's backwards-compatible alias.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            _ => return Err(()),
        })
    }
}

/// A TLS protocol version as the toolkit names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// `TLS10`: accepted as `min_version` only, raised to TLS 1.2 with a warning (rustls has no
    /// 1.0).
    Tls10,
    /// `TLS11`: accepted as `min_version` only, raised to TLS 1.2 with a warning (rustls has no
    /// 1.1).
    Tls11,
    /// `TLS12`: the default `min_version`.
    Tls12,
    /// `TLS13`: the default `max_version`.
    Tls13,
}

impl FromStr for TlsVersion {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "TLS10" => TlsVersion::Tls10,
            "TLS11" => TlsVersion::Tls11,
            "TLS12" => TlsVersion::Tls12,
            "TLS13" => TlsVersion::Tls13,
            _ => return Err(()),
        })
    }
}

/// An elliptic curve as the toolkit names it (Go's `tls.CurveID` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// `CurveP256` (secp256r1).
    P256,
    /// `CurveP384` (secp384r1).
    P384,
    /// `CurveP521` (secp521r1): accepted, but rustls does not implement it: skipped with a warning.
    P521,
    /// `X25519`.
    X25519,
}

impl FromStr for Curve {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "CurveP256" => Curve::P256,
            "CurveP384" => Curve::P384,
            "CurveP521" => Curve::P521,
            "X25519" => Curve::X25519,
            _ => return Err(()),
        })
    }
}

/// The cipher suite names Go's `crypto/tls` knows (secure and insecure lists), so a name from an
/// existing file is recognised even when rustls does not implement that suite.
pub const GO_CIPHER_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// `tls_server_config`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsSettings {
    /// The server's certificate chain: `cert_file` or `cert` (exactly one is required).
    pub cert: Pem,
    /// The server's private key: `key_file` or `key` (exactly one is required).
    pub key: KeyPem,
    /// The CA bundle of `client_ca_file` or `client_ca`; required when `client_auth` verifies.
    pub client_ca: Option<Pem>,
    /// `client_auth_type`; `NoClientCert` when unset (a client CA with `NoClientCert` is
    /// refused).
    pub client_auth: ClientAuth,
    /// Client certificates must carry one of these SANs (DNS, IP or URI; exact match).
    pub client_allowed_sans: Option<Vec<String>>,
    /// `min_version`, `TLS12` when unset; never below `TLS12` (lower values are raised, with a
    /// warning).
    pub min_version: TlsVersion,
    /// `max_version`, `TLS13` when unset; `TLS12` or `TLS13`.
    pub max_version: TlsVersion,
    /// Go names of TLS 1.2 suites, server preference order; `None`: rustls's defaults.
    pub cipher_suites: Option<Vec<String>>,
    /// Whether the server's cipher suite order wins over the client's (rustls's
    /// `ignore_client_order`); `true` when unset, as in the toolkit.
    pub prefer_server_cipher_suites: bool,
    /// Key exchange groups in preference order; `None`: rustls's defaults.
    pub curve_preferences: Option<Vec<Curve>>,
}

/// The response headers the toolkit lets a file set, with the values it allows (empty: any).
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Joins a relative path with the directory of the web configuration file (toolkit's rule).
fn resolve(dir: &Path, p: String) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() { p } else { dir.join(p) }
}

/// Parses and validates a web configuration file's text; `dir` is the directory relative paths
/// are resolved against. A [`WebConfigError`] names the key at fault, or is the YAML parser's
/// message; settings this exporter accepts but cannot honour are [`WebConfig::warnings`] instead.
pub fn parse(text: &str, dir: &Path) -> Result<WebConfig, WebConfigError> {
    let raw: Option<RawFile> = serde_norway::from_str(text).map_err(|e| {
        let hint = if e.to_string().contains("unknown field") {
            " (web config files use the Prometheus exporter-toolkit format)"
        } else {
            ""
        };
        WebConfigError(format!("{e}{hint}"))
    })?;
    let raw = raw.unwrap_or_default();
    let mut warnings = Vec::new();

    let tls = match raw.tls_server_config {
        Some(t) => tls_settings(t, dir, &mut warnings)?,
        None => None,
    };

    let mut headers = Vec::new();
    if let Some(http) = raw.http_server_config {
        if http.http2 == Some(true) {
            warnings.push(
                "http_server_config.http2: this exporter serves HTTP/1.1 only; the setting is ignored"
                    .into(),
            );
        }
        for (name, value) in http.headers.unwrap_or_default() {
            let value = value.unwrap_or_default();
            let Some((canonical, allowed)) = ALLOWED_HEADERS.iter().find(|(h, _)| *h == name)
            else {
                return err(format!(
                    "http_server_config.headers: HTTP header {name:?} can not be configured \
                     (allowed: Strict-Transport-Security, X-Content-Type-Options, \
                     X-Frame-Options, X-XSS-Protection, Content-Security-Policy)"
                ));
            };
            if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                return err(format!(
                    "http_server_config.headers: invalid value for {name}. Expected one of: \
                     {allowed:?}, but got: {value:?}"
                ));
            }
            if value.is_empty() {
                continue; // "Unset if blank."
            }
            let value = HeaderValue::from_str(&value).map_err(|_| {
                WebConfigError(format!(
                    "http_server_config.headers.{name}: not a valid header value"
                ))
            })?;
            let name = HeaderName::from_bytes(canonical.as_bytes()).map_err(|_| {
                WebConfigError(format!(
                    "http_server_config.headers.{name}: not a valid header name"
                ))
            })?;
            headers.push((name, value));
        }
    }

    let mut users = BTreeMap::new();
    for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
        let hash = hash.unwrap_or_default();
        if bcrypt::HashParts::from_str(&hash).is_err() {
            // The hash is not echoed: an operator may have pasted a password by mistake.
            return err(format!(
                "basic_auth_users.{user}: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
            ));
        }
        users.insert(user, hash);
    }

    let mut auth_excluded_paths = Vec::new();
    for (i, path) in raw
        .auth_excluded_paths
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        // A request path starts with `/` and carries no query, fragment or blank: an entry
        // that does not could never match, and would leave the path it meant behind the password.
        if !path.starts_with('/')
            || path.contains(['?', '#'])
            || path.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return err(format!(
                "auth_excluded_paths[{i}]: {path:?} is not a request path (write it as the URL \
                 path exactly, starting with /, without query or fragment, e.g. /healthz)"
            ));
        }
        auth_excluded_paths.push(path);
    }

    let rate_limit = match raw.rate_limit {
        Some(RawRateLimit { interval, burst }) => {
            let interval = interval.map(|d| d.0).unwrap_or_default();
            let burst = burst.unwrap_or(0);
            if interval.is_zero() {
                None
            } else if burst == 0 {
                return err(
                    "rate_limit.burst: must be at least 1 when rate_limit.interval is set \
                     (0 would refuse every request)",
                );
            } else {
                Some(RateLimit {
                    interval,
                    burst: u32::try_from(burst).unwrap_or(u32::MAX),
                })
            }
        }
        None => None,
    };

    Ok(WebConfig {
        tls,
        users,
        auth_excluded_paths,
        headers,
        rate_limit,
        warnings,
    })
}

fn tls_settings(
    t: RawTls,
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<TlsSettings>, WebConfigError> {
    let cert = non_empty(t.cert);
    let key = t.key.filter(|k| !k.expose_secret().is_empty());
    let client_ca = non_empty(t.client_ca);
    let cert_file = non_empty(t.cert_file);
    let key_file = non_empty(t.key_file);
    let client_auth_type = non_empty(t.client_auth_type);
    let client_ca_file = non_empty(t.client_ca_file);

    let min_version = match t.min_version.as_deref() {
        None | Some("") => TlsVersion::Tls12,
        Some(v) => v.parse().map_err(|()| {
            WebConfigError(format!(
                "tls_server_config.min_version: unknown TLS version: {v} (TLS10, TLS11, TLS12, TLS13)"
            ))
        })?,
    };
    let max_version = match t.max_version.as_deref() {
        None | Some("") => TlsVersion::Tls13,
        Some(v) => v.parse().map_err(|()| {
            WebConfigError(format!(
                "tls_server_config.max_version: unknown TLS version: {v} (TLS10, TLS11, TLS12, TLS13)"
            ))
        })?,
    };
    let mut cipher_suites = None;
    if let Some(list) = t.cipher_suites.filter(|l| !l.is_empty()) {
        for name in &list {
            if !GO_CIPHER_SUITES.contains(&name.as_str()) {
                return err(format!(
                    "tls_server_config.cipher_suites: unknown cipher: {name}"
                ));
            }
        }
        cipher_suites = Some(list);
    }
    let mut curve_preferences = None;
    if let Some(list) = t.curve_preferences.filter(|l| !l.is_empty()) {
        let mut curves = Vec::new();
        for name in &list {
            curves.push(name.parse().map_err(|()| {
                WebConfigError(format!(
                    "tls_server_config.curve_preferences: unknown curve: {name} \
                     (CurveP256, CurveP384, CurveP521, X25519)"
                ))
            })?);
        }
        curve_preferences = Some(curves);
    }

    let enabled = cert.is_some()
        || key.is_some()
        || client_ca.is_some()
        || cert_file.is_some()
        || key_file.is_some()
        || client_ca_file.is_some()
        || client_auth_type.is_some();
    if !enabled {
        return Ok(None);
    }

    let cert = match (cert_file, cert) {
        (Some(_), Some(_)) => {
            return err("tls_server_config: set one of cert_file and cert, not both");
        }
        (Some(f), None) => Pem::File(resolve(dir, f)),
        (None, Some(c)) => Pem::Inline(c),
        (None, None) => return err("tls_server_config: missing one of cert or cert_file"),
    };
    let key = match (key_file, key) {
        (Some(_), Some(_)) => {
            return err("tls_server_config: set one of key_file and key, not both");
        }
        (Some(f), None) => KeyPem::File(resolve(dir, f)),
        (None, Some(k)) => KeyPem::Inline(k),
        (None, None) => return err("tls_server_config: missing one of key or key_file"),
    };
    let client_ca = match (client_ca_file, client_ca) {
        (Some(_), Some(_)) => {
            return err("tls_server_config: set one of client_ca_file and client_ca, not both");
        }
        (Some(f), None) => Some(Pem::File(resolve(dir, f))),
        (None, Some(c)) => Some(Pem::Inline(c)),
        (None, None) => None,
    };
    let client_auth = match client_auth_type.as_deref() {
        None => ClientAuth::NoClientCert,
        Some(s) => s.parse().map_err(|()| {
            WebConfigError(format!(
                "tls_server_config.client_auth_type: invalid ClientAuth: {s} (one of {})",
                ClientAuth::NAMES
            ))
        })?,
    };
    if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
        return err(
            "tls_server_config: client CA's have been configured without a Client Auth Policy \
             (set client_auth_type, e.g. RequireAndVerifyClientCert)",
        );
    }
    if client_auth.verifies() && client_ca.is_none() {
        return err(format!(
            "tls_server_config: client_auth_type {client_auth:?} needs client_ca_file (or client_ca) \
             to verify client certificates against"
        ));
    }
    let client_allowed_sans = t.client_allowed_sans;
    if client_allowed_sans.is_some() && !client_auth.requires() {
        return err(
            "tls_server_config.client_allowed_sans requires client_auth_type to be one of \
             RequireAnyClientCert or RequireAndVerifyClientCert",
        );
    }
    if let Some(sans) = &client_allowed_sans {
        for san in sans {
            if san.contains('@') && !san.contains(':') {
                warnings.push(format!(
                    "tls_server_config.client_allowed_sans: e-mail SAN {san:?} cannot be matched \
                     by this exporter (DNS, IP and URI SANs can); clients are matched on the others"
                ));
            }
        }
    }
    if max_version < TlsVersion::Tls12 {
        return err(
            "tls_server_config.max_version: TLS 1.0 and 1.1 are not supported (rustls speaks TLS12 and TLS13)",
        );
    }
    if min_version > max_version {
        return err("tls_server_config: min_version is above max_version");
    }
    if min_version < TlsVersion::Tls12 {
        warnings.push(
            "tls_server_config.min_version: TLS 1.0 and 1.1 are not supported; the minimum is TLS12"
                .into(),
        );
    }
    Ok(Some(TlsSettings {
        cert,
        key,
        client_ca,
        client_auth,
        client_allowed_sans,
        min_version: min_version.max(TlsVersion::Tls12),
        max_version,
        cipher_suites,
        prefer_server_cipher_suites: t.prefer_server_cipher_suites.unwrap_or(true),
        curve_preferences,
    }))
}

#[cfg(test)]
mod tests;
