//! Unit tests of `config`.

use super::print::{comment, toml_string};
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
    assert!(matches!(&links[0].source, Ok(BaseSource::Env(creds)) if creds.secret_id == "AKIDenv"));
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
    let groups = crate::poll::budget::budget_groups(&c.accounts);
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
fn check_config_output_with_control_characters_is_valid_toml() {
    let toml = "[[accounts]]\nname = \"a\\u0000b\\nc\\u001b[31m\\\"q\\\\\"\nsecret_id = \"AKID\\u007f\\t1\\r\"\nsecret_key = \"k\"\n";
    let c = from_toml(toml, &[]).unwrap();
    let out = c.to_redacted_toml();
    let parsed: toml::Table = toml::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let account = &parsed["accounts"].as_array().unwrap()[0];
    assert_eq!(account["name"].as_str(), Some("a\u{0}b\nc\u{1b}[31m\"q\\"));
    assert_eq!(account["secret_id"].as_str(), Some("AKID\u{7f}\t1"));
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
