//! Each way a credential source fails: named, with the reason, never the secret.

use super::*;

// ---------------------------------------------------------------------------------------------
// Each way a source fails: named, with the reason, never the secret.

/// Starts one account, polls once (which must fail), and returns the warning saying why.
async fn failure(sim: Simulator, lines: &str, vars: BTreeMap<String, String>) -> String {
    let (logs, _guard) = Logs::capture(tracing::Level::TRACE);
    let dir = temp_dir();
    let rig = Rig::start(sim, &dir, &account("acct", lines), vars);
    rig.first_polls().await;
    let m = rig.scrape().await;
    assert_eq!(m.value(&up("acct")), 0.0);
    assert_eq!(rig.last_error("acct").as_deref(), Some("credentials"));
    let warning = poll_failed_warning(&logs);
    assert!(warning.contains("code=\"credentials\""), "{warning}");
    let text = logs.text();
    for secret in [BASE.1, TARGET.1, FILES.1, PROFILE.1, WEB_TOKEN] {
        assert!(!text.contains(secret), "{text}");
    }
    for c in rig.sim.issued_credentials() {
        assert!(
            !text.contains(&c.secret_key) && !text.contains(&c.token),
            "{text}"
        );
    }
    warning
}

fn cvm(role: &str) -> String {
    format!("credentials = \"cvm_role\"\nrole = \"{role}\"\nmetadata_endpoint = \"{METADATA}\"")
}

#[tokio::test(start_paused = true)]
async fn metadata_service_down() {
    let sim = sim();
    sim.set_metadata_fault(Some(MetadataFault::Unavailable));
    let e = failure(sim, &cvm(CVM_ROLE), BTreeMap::new()).await;
    assert!(e.contains("credential source cvm_role: metadata service http://metadata.simulator.test/latest/meta-data/cam/security-credentials/exporter-cvm-role: HTTP 503"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn metadata_role_not_attached() {
    let e = failure(sim(), &cvm("no-such-role"), BTreeMap::new()).await;
    assert!(
        e.contains("credential source cvm_role")
            && e.contains("HTTP 404: role \"no-such-role\" is not attached"),
        "{e}"
    );
    let sim = Simulator::new();
    sim.add_account(BASE.0, BASE.1);
    let e = failure(
        sim,
        &format!("credentials = \"cvm_role\"\nmetadata_endpoint = \"{METADATA}\""),
        BTreeMap::new(),
    )
    .await;
    assert!(
        e.contains("no CAM role is attached to this instance"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn metadata_answer_not_json() {
    let sim = sim();
    sim.set_metadata_fault(Some(MetadataFault::BadJson));
    let e = failure(sim, &cvm(CVM_ROLE), BTreeMap::new()).await;
    assert!(
        e.contains("credential source cvm_role") && e.contains("the answer is not JSON"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn metadata_code_not_success() {
    let sim = sim();
    sim.set_metadata_fault(Some(MetadataFault::CodeNotSuccess));
    let e = failure(sim, &cvm(CVM_ROLE), BTreeMap::new()).await;
    assert!(
        e.contains("credential source cvm_role")
            && e.contains("Code is \"Failure\", not \"Success\""),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn sts_errors_name_the_role_and_the_code() {
    let faulty = sim();
    faulty.set_sts_fault(Some("AuthFailure.UnauthorizedOperation"));
    let lines = format!(
        "secret_id = \"{}\"\nsecret_key = \"{}\"\nrole_arn = \"{ROLE_ARN}\"\nsts_endpoint = \"{STS}\"",
        BASE.0, BASE.1
    );
    let e = failure(faulty, &lines, BTreeMap::new()).await;
    assert!(e.contains(&format!("credential source role_arn: AssumeRole {ROLE_ARN} with the credentials of static: STS error AuthFailure.UnauthorizedOperation")), "{e}");

    let lines = format!(
        "secret_id = \"{}\"\nsecret_key = \"{}\"\nrole_arn = \"qcs::cam::uin/1:roleName/unknown\"\nsts_endpoint = \"{STS}\"",
        BASE.0, BASE.1
    );
    let e = failure(sim(), &lines, BTreeMap::new()).await;
    assert!(e.contains("ResourceNotFound.RoleNotExist"), "{e}");

    // A wrong web identity token.
    let dir = temp_dir();
    let tke = tke_env(&dir);
    write(&dir, "web-identity-token", "eyJstale-token");
    let vars = tke
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let e = failure(
        sim(),
        &format!("credentials = \"oidc\"\nsts_endpoint = \"{STS}\""),
        vars,
    )
    .await;
    assert!(e.contains(&format!("credential source oidc: AssumeRoleWithWebIdentity {POD_ROLE_ARN}: STS error InvalidParameter.WebIdentityTokenError")), "{e}");
    assert!(!e.contains("eyJstale-token"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn missing_token_file() {
    let dir = temp_dir();
    let tke = tke_env(&dir);
    std::fs::remove_file(dir.join("web-identity-token")).unwrap();
    let vars = tke
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let e = failure(
        sim(),
        &format!("credentials = \"oidc\"\nsts_endpoint = \"{STS}\""),
        vars,
    )
    .await;
    assert!(
        e.contains("credential source oidc: TKE_WEB_IDENTITY_TOKEN_FILE")
            && e.contains("web-identity-token"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn missing_environment_is_refused_at_start_or_named_by_the_chain() {
    let dir = temp_dir();
    let e = load(
        &dir,
        &account("a", "credentials = \"env\""),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert!(
        e.contains("accounts[0]")
            && e.contains("TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY are not both set"),
        "{e}"
    );
    let e = load(
        &dir,
        &account("a", "credentials = \"oidc\""),
        &env(&[("TKE_REGION", "ap-guangzhou")]),
    )
    .unwrap_err();
    assert!(
        e.contains("accounts[0].credentials")
            && e.contains("TKE_PROVIDER_ID, TKE_WEB_IDENTITY_TOKEN_FILE, TKE_ROLE_ARN not set"),
        "{e}"
    );

    // The chain with nothing to take: every link says why.
    let sim = Simulator::new();
    sim.add_account(BASE.0, BASE.1);
    let e = failure(
        sim,
        &format!("metadata_endpoint = \"{METADATA}\""),
        env(&[("HOME", &temp_dir().display().to_string())]),
    )
    .await;
    for part in [
        "credential source chain: no source gave credentials",
        "env: TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY are not both set",
        "profile: credentials file",
        "cvm_role: metadata service",
        "oidc: TKE_REGION, TKE_PROVIDER_ID, TKE_WEB_IDENTITY_TOKEN_FILE, TKE_ROLE_ARN not set",
    ] {
        assert!(e.contains(part), "{part:?} not in {e}");
    }
}

#[tokio::test(start_paused = true)]
async fn unreadable_profile() {
    let dir = temp_dir();
    // Explicitly asked for: refused at start.
    let not_a_file = temp_dir();
    let vars = env(&[(
        "TENCENTCLOUD_CREDENTIALS_FILE",
        &not_a_file.display().to_string(),
    )]);
    let e = load(&dir, &account("a", "credentials = \"profile\""), &vars).unwrap_err();
    assert!(
        e.contains("accounts[0].profile") && e.contains("not a regular file"),
        "{e}"
    );
    let broken = write(
        &dir,
        "broken",
        &format!("[default]\nsecret_id {}\n", PROFILE.1),
    );
    let e = load(
        &dir,
        &account("a", "credentials = \"profile\""),
        &env(&[(
            "TENCENTCLOUD_CREDENTIALS_FILE",
            &broken.display().to_string(),
        )]),
    )
    .unwrap_err();
    assert!(
        e.contains("line 2 is neither") && !e.contains(PROFILE.1),
        "{e}"
    );

    // In a chain (so not checked at start), with nothing after it: the poll says why.
    let sim = Simulator::new();
    sim.add_account(BASE.0, BASE.1);
    let e = failure(sim, &format!("metadata_endpoint = \"{METADATA}\""), vars).await;
    assert!(
        e.contains("profile: credentials file") && e.contains("not a regular file"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// Real sockets.

#[tokio::test]
async fn metadata_and_sts_over_loopback_sockets() {
    let sim = sim();
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(listener, shutdown.clone()));
    // A port nothing listens on: the metadata service is down.
    let (_closed, closed) = crate::support::refused_address();
    let accounts = format!(
        "[[accounts]]\nname = \"assumed\"\nendpoint = \"{base}\"\ncredentials = \"cvm_role\"\nmetadata_endpoint = \"{base}\"\n\
         role_arn = \"{ROLE_ARN}\"\nsts_endpoint = \"{base}\"\n\
         [[accounts]]\nname = \"down\"\nendpoint = \"{base}\"\ncredentials = \"cvm_role\"\nmetadata_endpoint = \"http://{closed}\"\n"
    );
    let dir = temp_dir();
    let config = load(&dir, &accounts, &BTreeMap::new()).unwrap();
    let transport = Transport::http(config.poll.timeout).unwrap();
    let (logs, _guard) = Logs::capture(tracing::Level::WARN);
    let rig = Rig::start_with(sim, &dir, &accounts, BTreeMap::new(), transport);
    rig.first_polls().await;
    let m = rig.scrape().await;
    assert_eq!(
        m.value(&up("assumed")),
        1.0,
        "{:?}",
        rig.last_error("assumed")
    );
    assert_eq!(ids(&m, "assumed"), expected("t", 5));
    assert_eq!(m.value(&up("down")), 0.0);
    let e = poll_failed_warning(&logs);
    assert!(
        e.contains("account=\"down\"")
            && e.contains(&format!("credential source cvm_role: metadata service http://{closed}/latest/meta-data/cam/security-credentials/")),
        "{e}"
    );
    let services: Vec<String> = rig
        .sim
        .credential_requests()
        .into_iter()
        .map(|r| r.service)
        .collect();
    assert_eq!(
        services,
        ["metadata:role-name", "metadata:credentials", "AssumeRole"]
    );
    shutdown.cancel();
}

// ---------------------------------------------------------------------------------------------
// No secret anywhere.

#[tokio::test(start_paused = true)]
async fn no_secret_or_token_in_logs_metrics_config_or_errors_at_trace_level() {
    let (logs, _guard) = Logs::capture(tracing::Level::TRACE);
    let dir = temp_dir();
    let sim = sim();
    sim.set_temporary_lifetime(Duration::from_secs(900));
    let id_file = write(&dir, "id", FILES.0);
    let key_file = write(&dir, "key", FILES.1);
    let profile = write(
        &dir,
        "credentials",
        &format!(
            "[default]\nsecret_id = {}\nsecret_key = {}\n",
            PROFILE.0, PROFILE.1
        ),
    );
    let env_creds = sim.issue_temporary_credentials(TARGET.0, Duration::from_secs(7200));
    let mut vars: Vec<(&str, String)> = tke_env(&dir);
    vars.push(("TENCENTCLOUD_SECRET_ID", env_creds.secret_id.clone()));
    vars.push(("TENCENTCLOUD_SECRET_KEY", env_creds.secret_key.clone()));
    vars.push(("TENCENTCLOUD_TOKEN", env_creds.token.clone()));
    vars.push((
        "TENCENTCLOUD_CREDENTIALS_FILE",
        profile.display().to_string(),
    ));
    let vars: BTreeMap<String, String> = vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let accounts = [
        account(
            "inline",
            &format!(
                "secret_id = \"{}\"\nsecret_key = \"{}\"\nrole_arn = \"{ROLE_ARN}\"\nsts_endpoint = \"{STS}\"",
                BASE.0, BASE.1
            ),
        ),
        account(
            "files",
            &format!(
                "secret_id_file = {:?}\nsecret_key_file = {:?}",
                id_file.display().to_string(),
                key_file.display().to_string()
            ),
        ),
        account("env", "credentials = \"env\""),
        account("profile", "credentials = \"profile\""),
        account("cvm", &cvm(CVM_ROLE)),
        account(
            "pod",
            &format!("credentials = \"oidc\"\nsts_endpoint = \"{STS}\"\nrole_arn = \"{ROLE_ARN}\""),
        ),
        account("chain", &format!("metadata_endpoint = \"{METADATA}\"")),
    ]
    .concat();
    let rig = Rig::start(sim, &dir, &accounts, vars);

    // A full cycle, healthy, then a rotation, then every source failing.
    rig.first_polls().await;
    assert!(rig.exporter.all_up(), "{:?}", rig.exporter.store().pairs());
    tokio::time::sleep(Duration::from_secs(660)).await;
    assert!(rig.exporter.all_up());
    rig.sim.revoke_temporary_credentials();
    rig.sim
        .set_metadata_fault(Some(MetadataFault::CodeNotSuccess));
    rig.sim.set_sts_fault(Some("InternalError"));
    std::fs::remove_file(dir.join("web-identity-token")).unwrap();
    rig.poll_now().await;
    let metrics = rig.get("/metrics").await;
    let status_page = rig.get("/").await;
    let failed = rig
        .exporter
        .store()
        .pairs()
        .into_values()
        .filter(|p| !p.up)
        .count();
    assert!(
        failed >= 4,
        "sources failed: {:?}",
        rig.exporter.store().pairs()
    );
    // The error values themselves, as the pollers get them: Display, alternate and Debug.
    let transport = Transport::service(rig.sim.router());
    let mut errors = Vec::new();
    for a in &rig.config.accounts {
        let ctx = FetchContext {
            transport: &transport,
            timeout: Duration::from_secs(2),
        };
        let source = tencent_live_exporter::tencent::credentials::CredentialSource::new(
            a.credentials.clone(),
        );
        if let Err(e) = source.current(ctx).await {
            let api = ApiError::from(e.clone());
            errors.push(format!("{e}\n{e:#}\n{e:?}\n{api}\n{api:?}"));
        }
    }
    assert!(errors.len() >= 3, "{errors:?}");
    let text = logs.text();
    errors.extend(
        text.lines()
            .filter(|l| l.contains("poll failed"))
            .map(str::to_owned),
    );
    let config_text = rig.config.to_redacted_toml();
    let config_debug = format!("{:?}", rig.config);
    assert!(
        text.contains("TRACE") || text.contains("DEBUG"),
        "logs were captured"
    );
    assert!(text.contains("credentials obtained"));

    let mut secrets: Vec<String> = [BASE.1, TARGET.1, FILES.1, PROFILE.1, WEB_TOKEN]
        .map(String::from)
        .to_vec();
    let issued = rig.sim.issued_credentials();
    assert!(issued.len() >= 6, "{}", issued.len());
    for c in &issued {
        secrets.push(c.secret_key.clone());
        secrets.push(c.token.clone());
    }
    for (what, haystack) in [
        ("logs", &text),
        ("/metrics", &metrics),
        ("status page", &status_page),
        ("--check-config", &config_text),
        ("Debug of the config", &config_debug),
        ("errors", &errors.join("\n")),
    ] {
        for secret in &secrets {
            assert!(
                !haystack.contains(secret.as_str()),
                "a secret ({}…) appears in {what}",
                &secret[..4]
            );
        }
    }
    // Every line is searched; the identities may show, the secrets never do.
    assert!(
        text.lines().count() > 50,
        "{} log lines",
        text.lines().count()
    );
}

/// The metadata service is reached directly even when the environment names a proxy (which the
/// API client still uses): the real binary with `http_proxy` pointing at a listener that records
/// connections, and `NO_PROXY` exempting only the API's host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_service_is_never_asked_through_a_proxy_from_the_environment() {
    let sim = sim();
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(sim.clone().serve(listener, shutdown.clone()));
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let dir = temp_dir();
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[poll]\npackage_types = [\"traffic\"]\nmax_retries = 0\ntimeout = \"5s\"\n\
             [[accounts]]\nname = \"cvm\"\ncredentials = \"cvm_role\"\n\
             metadata_endpoint = \"http://localhost:{port}\"\nendpoint = \"http://127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tencent-live-exporter"))
        .args(["--once", "--log.level", "warn", "--config.file"])
        .arg(&file)
        .env("http_proxy", &proxy_url)
        .env("HTTP_PROXY", &proxy_url)
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(
        PATIENCE,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("--once finishes")
    .unwrap()
    .unwrap();
    let proxied = proxy.accept().is_ok();
    shutdown.cancel();
    assert!(!proxied, "the metadata service was asked through the proxy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = Samples::parse(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        m.value(r#"tencent_live_up{account="cvm",package_type="traffic"}"#),
        1.0
    );
}
