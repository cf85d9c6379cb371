//! Config tests of credential sources, duration ranges, telemetry paths and --check-config escaping.

use super::*;
use crate::tencent::credentials::{BaseSource, SecretIdFrom, SecretKeyFrom};

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
    let plan = c.budget_plan();
    let groups: Vec<(&str, Vec<&str>)> = plan
        .budgets
        .iter()
        .map(|b| {
            (
                b.name.as_str(),
                b.accounts.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("rate_limit_group \"cdn\"", vec!["a", "b", "d", "e"]),
            ("SecretId AKIDother", vec!["c"]),
        ]
    );
    assert_eq!(plan.budget_of("a"), plan.budget_of("e"));
    assert_ne!(plan.budget_of("a"), plan.budget_of("c"));
}

#[test]
fn credential_sources_are_chosen_by_the_keys_given() {
    let source = |lines: &str, vars: &[(&str, &str)]| {
        from_toml(&account(lines), vars).unwrap().accounts[0]
            .credentials
            .clone()
    };
    assert_eq!(source("", &[]).base.name(), "chain");
    assert_eq!(
        source("secret_id = \"i\"\nsecret_key = \"k\"", &[])
            .base
            .name(),
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
    assert_eq!(files.base.name(), "static");
    assert!(matches!(
        &files.base,
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
        &env_source.base,
        BaseSource::Env(c) if c.secret_id == "AKIDe" && c.token() == Some("te")
    ));
    let cvm = source("credentials = \"cvm_role\"", &[]);
    assert!(matches!(
        &cvm.base,
        BaseSource::CvmRole { role: None, metadata_endpoint } if metadata_endpoint.as_str() == "http://metadata.tencentyun.com/"
    ));
    let assumed = source(
        "credentials = \"cvm_role\"\nrole = \"r1\"\nrole_arn = \"qcs::cam::uin/1:roleName/x\"",
        &[],
    );
    let role = assumed.assume_role.clone().unwrap();
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
        &oidc.base,
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
        matches!(&p.base, BaseSource::Profile { file, profile } if *file == *profile_path(&p) && profile == "prod")
    );
    let home = source("credentials = \"chain\"", &[("HOME", "/home/u")]);
    let BaseSource::Chain(links) = &home.base else {
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

fn profile_path(s: &SourceSpec) -> &std::path::PathBuf {
    match &s.base {
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

/// `external_id` only with `role_arn`, only in STS's format, and never quoted in an error or
/// in `Debug`.
#[test]
fn external_id_is_checked_and_never_shown() {
    let cases = [
        (
            "secret_id = \"i\"\nsecret_key = \"k\"\nexternal_id = \"hunter2-ext\"",
            "accounts[0].external_id: is sent only with AssumeRole: set role_arn too",
        ),
        (
            "secret_id = \"i\"\nsecret_key = \"k\"\nrole_arn = \"qcs::cam::uin/1:roleName/x\"\nexternal_id = \"hunter2 ext\"",
            "accounts[0].external_id: is not an STS ExternalId",
        ),
        (
            "secret_id = \"i\"\nsecret_key = \"k\"\nrole_arn = \"qcs::cam::uin/1:roleName/x\"\nexternal_id = \"hunter2\\nERROR\"",
            "accounts[0].external_id: is not an STS ExternalId",
        ),
        (
            "secret_id = \"i\"\nsecret_key = \"k\"\nrole_arn = \"qcs::cam::uin/1:roleName/x\"\nexternal_id = \"h\"",
            "accounts[0].external_id: is not an STS ExternalId",
        ),
    ];
    for (lines, expected) in cases {
        let e = err(&account(lines));
        assert!(e.contains(expected), "{lines:?} gave {e:?}");
        assert!(!e.contains("hunter2"), "the ExternalId leaked: {e}");
    }
    let long = "x".repeat(129);
    let e = err(&account(&format!(
        "secret_id = \"i\"\nsecret_key = \"k\"\nrole_arn = \"qcs::cam::uin/1:roleName/x\"\nexternal_id = \"{long}\""
    )));
    assert!(e.contains("129 characters"), "{e}");
    // The longest and most varied value STS takes is taken, and stays secret in Debug.
    let ok = format!("{}_+=,.@:/-z", "A1".repeat(59));
    assert_eq!(ok.len(), 128);
    let c = from_toml(
        &account(&format!(
            "secret_id = \"i\"\nsecret_key = \"k\"\nrole_arn = \"qcs::cam::uin/1:roleName/x\"\nexternal_id = \"{ok}\""
        )),
        &[],
    )
    .unwrap();
    let role = c.accounts[0].credentials.assume_role.as_ref().unwrap();
    assert!(role.external_id.is_some());
    assert!(!format!("{c:?}").contains(&ok), "ExternalId in Debug");
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
        "[[accounts]]\nname = \"inline\"\nsecret_id = \"AKIDi\"\nsecret_key = \"inline-secret-key\"\nrole_arn = \"qcs::cam::uin/2:roleName/x\"\nexternal_id = \"inline-secret-key\"\nrole_session_name = \"sess\"\nsts_endpoint = \"http://sts.test\"\n\
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
        // Redacted like a SecretKey (its value here is the SecretKey's, so that the
        // round trip below restores both).
        "external_id = \"[REDACTED]\"",
        "sts_endpoint = \"http://sts.test\"",
        "secret_key_file = ",
    ] {
        assert!(out.contains(shown), "{shown} missing from:\n{out}");
    }
    let back = from_toml(&out.replace("[REDACTED]", "inline-secret-key"), &vars).unwrap();
    assert_eq!(back.accounts.len(), c.accounts.len());
    for (a, b) in c.accounts.iter().zip(&back.accounts) {
        assert!(a.credentials == b.credentials, "{} changed:\n{out}", a.name);
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

    const KEYS: [(&str, &str); 26] = [
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
        ("accounts", "external_id"),
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
