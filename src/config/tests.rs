//! Unit tests of `config`.

use super::print::{comment, toml_string};
use super::*;
use crate::tencent::credentials::BaseSource;
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
    assert_eq!(example.accounts[0].credentials.base.name(), "chain");
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
    assert_eq!(c.accounts[0].credentials.base.name(), "chain");
    let BaseSource::Chain(links) = &c.accounts[0].credentials.base else {
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
/// `Config` is plain data: two reads of one input are `==`, a changed SecretKey or token alone
/// makes them differ, and `Debug` shows SecretIds and role ARNs but no secret.
#[test]
fn config_is_data_compared_by_value_with_every_secret_redacted_in_debug() {
    const KEY: &str = "inline-secret-key-5d1e";
    let toml = format!(
        "[[accounts]]\nname = \"inline\"\nsecret_id = \"AKIDinline\"\nsecret_key = \"{KEY}\"\n\
         role_arn = \"qcs::cam::uin/1:roleName/reader\"\n\n\
         [[accounts]]\nname = \"env\"\ncredentials = \"env\"\n"
    );
    let vars = |key: &'static str, token: &'static str| {
        [
            (ENV_SECRET_ID, "AKIDenv"),
            (ENV_SECRET_KEY, key),
            (ENV_TOKEN, token),
        ]
    };
    let env_vars = vars("env-secret-key-8c2a", "env-session-token-41f0");
    let config = from_toml(&toml, &env_vars).unwrap();
    assert_eq!(config, from_toml(&toml, &env_vars).unwrap());
    assert_eq!(config, config.clone());

    let debug = format!("{config:?}\n{config:#?}");
    for secret in [KEY, "env-secret-key-8c2a", "env-session-token-41f0"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    for shown in ["AKIDinline", "AKIDenv", "qcs::cam::uin/1:roleName/reader"] {
        assert!(debug.contains(shown), "{shown} missing from {debug}");
    }

    // One secret changed, nothing else: the configurations differ, in that account only.
    for changed in [
        KEY.replace("5d1e", "5d1f"),
        KEY.replace("5d1e", "5d1"),
        KEY.replace("5d1e", "5d1ee"),
    ] {
        let other = from_toml(&toml.replace(KEY, &changed), &env_vars).unwrap();
        assert_ne!(config, other, "{changed}");
        assert_ne!(config.accounts[0], other.accounts[0]);
        assert_eq!(config.accounts[1], other.accounts[1]);
    }
    for other_vars in [
        vars("env-secret-key-8c2b", "env-session-token-41f0"),
        vars("env-secret-key-8c2a", "env-session-token-41f1"),
    ] {
        let other = from_toml(&toml, &other_vars).unwrap();
        assert_ne!(config, other);
        assert_eq!(config.accounts[0], other.accounts[0]);
    }
}

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
        "external_id",
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
        // AssumeRole: the role's budget (its temporary keys are counted against the role).
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
    let plan = c.budget_plan();
    let names: Vec<Vec<&str>> = plan
        .budgets
        .iter()
        .map(|b| b.accounts.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        names,
        [vec!["a", "b"], vec!["c"], vec!["d", "e"], vec!["f"]]
    );
    assert_eq!(plan.budgets[0].name, "SecretId AKIDone");
    assert_eq!(plan.budgets[3].name, "role qcs::cam::uin/1:roleName/r");
    let out = c.to_redacted_toml();
    assert!(
        out.contains(
            "# SecretId AKIDone (shared): \"a\", \"b\" (counted against SecretId AKIDone)"
        ),
        "{out}"
    );
    assert!(
        out.contains("# rate_limit_group \"main\" (shared): \"d\", \"e\" (counted against SecretId AKIDthree, SecretId AKIDfour)"),
        "{out}"
    );
    assert!(out.contains("rate_limit_group = \"main\""), "{out}");
    let e = err(&acc(
        "x",
        &format!("{}\nrate_limit_group = \" \"", keys("AKIDx")),
    ));
    assert!(e.contains("accounts[0].rate_limit_group"), "{e}");
}

mod sources;
