//! Unit tests of `web_config`.

use super::*;

const HASH: &str = "$2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze";

fn ok(text: &str) -> WebConfig {
    parse(text, Path::new("/etc/tle")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn refused(text: &str) -> String {
    parse(text, Path::new("/etc/tle"))
        .err()
        .unwrap_or_else(|| panic!("accepted:\n{text}"))
        .0
}

#[test]
fn the_toolkit_sample_parses_with_paths_relative_to_the_file() {
    // docs/web-config.yml of the exporter-toolkit (without the unreleased excluded paths).
    let c = ok("# TLS and basic authentication configuration example.\n\
             tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             basic_auth_users:\n  alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze\n  \
             bob: $2y$10$hLqFl9jSjoAAy95Z/zw8Ye8wkdMBM8c5Bn1ptYqP/AXyV0.oy0S8m\n");
    let tls = c.tls.unwrap();
    assert_eq!(tls.cert, Pem::File("/etc/tle/server.crt".into()));
    assert_eq!(tls.key, KeyPem::File("/etc/tle/server.key".into()));
    assert_eq!(tls.client_auth, ClientAuth::NoClientCert);
    assert_eq!(
        (tls.min_version, tls.max_version),
        (TlsVersion::Tls12, TlsVersion::Tls13)
    );
    assert!(tls.prefer_server_cipher_suites);
    assert_eq!(
        c.users.keys().collect::<Vec<_>>(),
        ["alice", "bob"].iter().collect::<Vec<_>>()
    );
    assert!(c.warnings.is_empty());
}

#[test]
fn every_toolkit_key_is_understood() {
    let c = ok(&format!(
        "tls_server_config:\n\
             \x20 cert_file: /abs/server.crt\n\
             \x20 key_file: server.key\n\
             \x20 client_auth_type: RequireAndVerifyClientCert\n\
             \x20 client_ca_file: ca.pem\n\
             \x20 client_allowed_sans: [scraper.example.com, 10.0.0.1]\n\
             \x20 min_version: TLS13\n\
             \x20 max_version: TLS13\n\
             \x20 cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_128_CBC_SHA]\n\
             \x20 prefer_server_cipher_suites: false\n\
             \x20 curve_preferences: [X25519, CurveP256, CurveP521]\n\
             http_server_config:\n\
             \x20 http2: false\n\
             \x20 headers:\n\
             \x20   Strict-Transport-Security: max-age=31536000\n\
             \x20   X-Content-Type-Options: nosniff\n\
             \x20   X-Frame-Options: deny\n\
             \x20   X-XSS-Protection: '1; mode=block'\n\
             \x20   Content-Security-Policy: \"default-src 'self'\"\n\
             basic_auth_users:\n  alice: {HASH}\n\
             rate_limit:\n  interval: 100ms\n  burst: 10\n"
    ));
    let tls = c.tls.unwrap();
    assert_eq!(tls.cert, Pem::File("/abs/server.crt".into()));
    assert_eq!(tls.client_ca, Some(Pem::File("/etc/tle/ca.pem".into())));
    assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
    assert_eq!(tls.min_version, TlsVersion::Tls13);
    assert_eq!(tls.cipher_suites.unwrap().len(), 2);
    assert!(!tls.prefer_server_cipher_suites);
    assert_eq!(
        tls.curve_preferences.unwrap(),
        vec![Curve::X25519, Curve::P256, Curve::P521]
    );
    assert_eq!(
        tls.client_allowed_sans.unwrap(),
        vec!["scraper.example.com", "10.0.0.1"]
    );
    assert_eq!(c.headers.len(), 5);
    assert_eq!(c.headers[0].0.as_str(), "content-security-policy");
    assert_eq!(
        c.rate_limit,
        Some(RateLimit {
            interval: Duration::from_millis(100),
            burst: 10
        })
    );
}

#[test]
fn inline_pem_and_legacy_alias_are_accepted_and_the_key_is_never_printed() {
    let c = ok(
        "tls_server_config:\n  cert: |\n    -----BEGIN CERTIFICATE-----\n    x\n    -----END CERTIFICATE-----\n  \
             key: super-secret-key-material\n  client_auth_type: RequireClientCert\n",
    );
    let tls = c.tls.unwrap();
    assert!(matches!(tls.cert, Pem::Inline(ref s) if s.contains("BEGIN CERTIFICATE")));
    assert_eq!(tls.client_auth, ClientAuth::RequireAnyClientCert);
    assert!(!format!("{tls:?}").contains("super-secret"));
}

#[test]
fn empty_files_and_sections_mean_plain_http_without_auth() {
    for text in [
        "",
        "# nothing\n",
        "tls_server_config:\n",
        "basic_auth_users:\n",
        "tls_server_config:\n  min_version: TLS13\n",
        "tls_server_config:\n  cert_file: ''\n  key_file: ''\n",
        "rate_limit:\n  interval: 0s\n",
    ] {
        let c = ok(text);
        assert!(
            c.tls.is_none() && c.users.is_empty() && c.rate_limit.is_none(),
            "{text}"
        );
    }
}

#[test]
fn unknown_keys_are_refused_naming_the_key() {
    let e = refused("tls_server_config:\n  cert_fil: x\n");
    assert!(e.contains("unknown field `cert_fil`"), "{e}");
    let e = refused("basic_auth:\n  alice: x\n");
    assert!(
        e.contains("unknown field `basic_auth`") && e.contains("exporter-toolkit"),
        "{e}"
    );
    let e = refused("http_server_config:\n  header:\n    X-Frame-Options: deny\n");
    assert!(e.contains("unknown field `header`"), "{e}");
    let e = refused("rate_limit:\n  every: 1s\n");
    assert!(e.contains("unknown field `every`"), "{e}");
}

#[test]
fn bad_values_are_refused_as_the_toolkit_does() {
    let cases = [
        (
            "tls_server_config:\n  cert_file: c\n",
            "missing one of key or key_file",
        ),
        (
            "tls_server_config:\n  key_file: k\n",
            "missing one of cert or cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: Sometimes\n",
            "invalid ClientAuth: Sometimes",
        ),
        (
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca\n",
            "without a Client Auth Policy",
        ),
        (
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAndVerifyClientCert\n",
            "needs client_ca_file",
        ),
        (
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequestClientCert\n  client_allowed_sans: [a]\n",
            "client_allowed_sans requires",
        ),
        (
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS14\n",
            "unknown TLS version: TLS14",
        ),
        (
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  max_version: TLS11\n",
            "not supported",
        ),
        (
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n  max_version: TLS12\n",
            "min_version is above max_version",
        ),
        (
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [TLS_MADE_UP]\n",
            "unknown cipher: TLS_MADE_UP",
        ),
        (
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  curve_preferences: [CurveP999]\n",
            "unknown curve: CurveP999",
        ),
        (
            "http_server_config:\n  headers:\n    Server: nginx\n",
            "HTTP header \"Server\" can not be configured",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "invalid value for X-Frame-Options",
        ),
        (
            "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
            "invalid value for X-Content-Type-Options",
        ),
        (
            "basic_auth_users:\n  alice: hunter2\n",
            "basic_auth_users.alice: not a bcrypt hash",
        ),
        ("rate_limit:\n  interval: 1s\n", "rate_limit.burst"),
        (
            "rate_limit:\n  interval: soon\n  burst: 1\n",
            "invalid duration",
        ),
        ("tls_server_config: [1, 2]\n", "tls_server_config"),
    ];
    for (text, want) in cases {
        let e = refused(text);
        assert!(e.contains(want), "{text}: {e}");
        assert!(!e.contains("hunter2"), "a mistaken password is echoed: {e}");
    }
}

#[test]
fn settings_this_exporter_cannot_enforce_warn() {
    let c = ok(
        "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS10\n  \
             client_auth_type: RequireAnyClientCert\n  client_allowed_sans: [ops@example.com]\n\
             http_server_config:\n  http2: true\n",
    );
    assert_eq!(c.tls.unwrap().min_version, TlsVersion::Tls12);
    assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
}

#[test]
fn blank_headers_are_unset() {
    let c = ok("http_server_config:\n  headers:\n    X-XSS-Protection: ''\n");
    assert!(c.headers.is_empty());
}

#[test]
fn go_durations_parse() {
    for (s, want) in [
        ("0", Duration::ZERO),
        ("1s", Duration::from_secs(1)),
        ("1m30s", Duration::from_secs(90)),
        ("1.5s", Duration::from_millis(1500)),
        ("250ms", Duration::from_millis(250)),
        ("2h", Duration::from_secs(7200)),
        ("10us", Duration::from_micros(10)),
    ] {
        assert_eq!(parse_go_duration(s), Some(want), "{s}");
    }
    for s in ["", "1", "s", "-1s", "1d", "1 s"] {
        assert_eq!(parse_go_duration(s), None, "{s}");
    }
}

/// exporter-toolkit's `auth_excluded_paths`: a top-level list of request paths, kept as written;
/// an entry that could never equal a request's path is refused naming its index and the form
/// it needs, and a value that is not a list of strings is refused naming the key.
#[test]
fn auth_excluded_paths_are_request_paths_or_refused() {
    let c = ok(&format!(
        "basic_auth_users:\n  alice: {HASH}\nauth_excluded_paths:\n  - /healthz\n  - /-/ready\n"
    ));
    assert_eq!(c.auth_excluded_paths, ["/healthz", "/-/ready"]);
    assert!(
        ok("auth_excluded_paths: []\n")
            .auth_excluded_paths
            .is_empty()
    );
    assert!(ok("").auth_excluded_paths.is_empty());
    for (bad, index) in [
        ("[healthz]", 0),
        ("[/healthz, '']", 1),
        ("['/healthz?probe=1']", 0),
        ("['/a#b']", 0),
        ("['/health z']", 0),
    ] {
        let e = refused(&format!("auth_excluded_paths: {bad}\n"));
        assert!(
            e.contains(&format!("auth_excluded_paths[{index}]")) && e.contains("starting with /"),
            "{bad}: {e}"
        );
    }
    for bad in ["/healthz", "{a: b}", "[[/x]]"] {
        let e = refused(&format!("auth_excluded_paths: {bad}\n"));
        assert!(e.contains("auth_excluded_paths"), "{bad}: {e}");
    }
}
