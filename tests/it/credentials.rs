//! Credential sources against the simulator's metadata service and STS: every source, the chain's
//! order, `AssumeRole` on top, rotation while polling (no failed poll), `AuthFailure.TokenFailure`
//! (one refresh, one retry), every way a source fails (named, with the reason, never the secret),
//! and a full cycle at `trace` level searched for every secret and token.
//!
//! In process under paused time (the credential fetchers use the same injected transport as the
//! API calls), plus one test over real loopback sockets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tencent_live_exporter::app::{ConfigLoader, Exporter};
use tencent_live_exporter::config::{self, Config, Overrides};
use tencent_live_exporter::tencent::client::ApiError;
use tencent_live_exporter::tencent::credentials::FetchContext;
use tencent_live_exporter::tencent::transport::Transport;
use tencent_live_simulator::{Fault, MetadataFault, Simulator};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::support::{IN_PROCESS_ENDPOINT, Logs, PATIENCE, Samples};

/// The account the instance role and the base keys belong to.
const BASE: (&str, &str) = (
    "AKIDbase0000000000000000000000000000",
    "base-secret-key-3f9a1c",
);
/// The account the assumed roles see (other packages, so a test can tell whose keys were used).
const TARGET: (&str, &str) = (
    "AKIDtarget00000000000000000000000000",
    "target-secret-key-7b2e4d",
);
/// Keys only in mounted files / a profile file.
const FILES: (&str, &str) = (
    "AKIDfiles000000000000000000000000000",
    "files-secret-key-c81d5e",
);
const PROFILE: (&str, &str) = (
    "AKIDprofile0000000000000000000000000",
    "profile-secret-key-94af02",
);
const ROLE_ARN: &str = "qcs::cam::uin/100000000001:roleName/live-readonly";
const POD_ROLE_ARN: &str = "qcs::cam::uin/100000000001:roleName/tke-pod";
const CVM_ROLE: &str = "exporter-cvm-role";
const PROVIDER: &str = "tke-oidc-provider";
const WEB_TOKEN: &str = "eyJweb-identity-token-5d7e0a";

const METADATA: &str = "http://metadata.simulator.test";
const STS: &str = "http://sts.simulator.test";

/// One query type, so one pair per account; polls every 5 minutes.
const POLL: &str = "[poll]\ninterval = \"5m\"\ntimeout = \"2s\"\nmax_retries = 1\nbackoff_base = \"100ms\"\nbackoff_max = \"1s\"\npackage_types = [\"traffic\"]\n";

fn package(prefix: &str, i: usize) -> Value {
    json!({"Id": format!("{prefix}{i}"), "Type": 0, "Status": 1, "Total": 1000, "Used": i, "Left": 1000 - i,
           "BuyTime": "2026-01-01 00:00:00", "ExpireTime": "2027-01-01 00:00:00", "WillRenew": 0, "RenewalResult": 0})
}

/// Accounts with their packages (base: b0..b2, target: t0..t4, ...), roles, the instance role
/// and the OIDC provider.
fn sim() -> Simulator {
    let sim = Simulator::new();
    for ((id, key), prefix, n) in [
        (BASE, "b", 3),
        (TARGET, "t", 5),
        (FILES, "f", 2),
        (PROFILE, "p", 4),
    ] {
        sim.add_account(id, key);
        sim.set_packages(id, 0, (0..n).map(|i| package(prefix, i)).collect());
    }
    sim.add_role(ROLE_ARN, TARGET.0);
    sim.add_role(POD_ROLE_ARN, TARGET.0);
    sim.attach_instance_role(CVM_ROLE, BASE.0);
    sim.add_oidc_provider(PROVIDER, WEB_TOKEN);
    sim
}

fn temp_dir() -> PathBuf {
    crate::support::temp_dir("cred")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `name` at the in-process Live API, with these credential lines.
fn account(name: &str, lines: &str) -> String {
    format!("[[accounts]]\nname = \"{name}\"\nendpoint = \"{IN_PROCESS_ENDPOINT}\"\n{lines}\n")
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The TKE pod identity variables, the token file in `dir`.
fn tke_env(dir: &Path) -> Vec<(&'static str, String)> {
    let token_file = write(dir, "web-identity-token", WEB_TOKEN);
    vec![
        ("TKE_REGION", "ap-guangzhou".into()),
        ("TKE_PROVIDER_ID", PROVIDER.into()),
        (
            "TKE_WEB_IDENTITY_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("TKE_ROLE_ARN", POD_ROLE_ARN.into()),
    ]
}

/// The exporter with a configuration of raw `[[accounts]]` TOML and an explicit environment.
struct Rig {
    sim: Simulator,
    exporter: Arc<Exporter>,
    router: axum::Router,
    config: Config,
    shutdown: CancellationToken,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn load(dir: &Path, accounts: &str, env: &BTreeMap<String, String>) -> Result<Config, String> {
    let path = write(dir, "config.toml", &format!("{POLL}{accounts}"));
    config::load(Some(&path), &Overrides::default(), env.clone()).map_err(|e| e.0)
}

impl Rig {
    fn start(sim: Simulator, dir: &Path, accounts: &str, env: BTreeMap<String, String>) -> Rig {
        let transport = Transport::service(sim.router());
        Self::start_with(sim, dir, accounts, env, transport)
    }

    fn start_with(
        sim: Simulator,
        dir: &Path,
        accounts: &str,
        env: BTreeMap<String, String>,
        transport: Transport,
    ) -> Rig {
        let config = load(dir, accounts, &env).expect("valid test config");
        let path = dir.join("config.toml");
        let loader: ConfigLoader = Arc::new(move || {
            Ok(config::load(
                Some(&path),
                &Overrides::default(),
                env.clone(),
            )?)
        });
        let shutdown = CancellationToken::new();
        let exporter = Exporter::start_with(&config, shutdown.clone(), transport, Some(loader));
        let router = exporter.router();
        Rig {
            sim,
            exporter,
            router,
            config,
            shutdown,
        }
    }

    async fn first_polls(&self) {
        tokio::time::timeout(PATIENCE, self.exporter.wait_for_polls(1))
            .await
            .expect("first polls finish");
    }

    async fn poll_now(&self) {
        tokio::time::timeout(PATIENCE, self.exporter.poll_now())
            .await
            .expect("polls finish");
    }

    async fn get(&self, path: &str) -> String {
        let request = axum::http::Request::get(path).body(Body::empty()).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    }

    async fn scrape(&self) -> Samples {
        Samples::parse(&self.get("/metrics").await)
    }

    /// The latest poll error of an account's (only) pair.
    fn last_error(&self, account: &str) -> Option<String> {
        self.exporter
            .store()
            .pairs()
            .into_iter()
            .find(|((a, _), _)| a == account)
            .and_then(|(_, p)| p.last_error)
    }

    /// SecretIds the Live API saw, in order.
    fn live_ids(&self) -> Vec<String> {
        self.sim
            .requests()
            .into_iter()
            .filter_map(|r| r.secret_id)
            .collect()
    }

    fn credential_fetches(&self, service: &str) -> usize {
        self.sim
            .credential_requests()
            .iter()
            .filter(|r| r.service == service)
            .count()
    }
}

fn up(account: &str) -> String {
    format!(r#"tencent_live_up{{account="{account}",package_type="traffic"}}"#)
}

fn errors(account: &str, code: &str) -> String {
    format!(
        r#"tencent_live_exporter_api_request_errors_total{{account="{account}",code="{code}"}}"#
    )
}

/// The package ids exported for an account, sorted.
fn ids(m: &Samples, account: &str) -> Vec<String> {
    let prefix = format!(
        "tencent_live_package_quota_bytes{{account=\"{account}\",package_type=\"traffic\",package_id=\""
    );
    let mut ids: Vec<String> =
        m.0.keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|rest| rest.split('"').next().unwrap().to_owned())
            .collect();
    ids.sort();
    ids
}

fn expected(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Each source, working.

#[tokio::test(start_paused = true)]
async fn static_keys_from_mounted_files_are_read_again_when_they_change() {
    let dir = temp_dir();
    let id_file = write(&dir, "secret_id", &format!("{}\n", FILES.0));
    let key_file = write(&dir, "secret_key", &format!("{}\n", FILES.1));
    let rig = Rig::start(
        sim(),
        &dir,
        &account(
            "files",
            &format!(
                "secret_id_file = {:?}\nsecret_key_file = {:?}",
                id_file.display().to_string(),
                key_file.display().to_string()
            ),
        ),
        BTreeMap::new(),
    );
    assert_eq!(rig.config.accounts[0].credentials.base.name(), "static");
    rig.first_polls().await;
    let m = rig.scrape().await;
    assert_eq!(m.value(&up("files")), 1.0);
    assert_eq!(ids(&m, "files"), expected("f", 2));

    // The secret is rotated: the account gets a new key, the mounted file follows.
    rig.sim.add_account(FILES.0, "files-rotated-key-0e3b77");
    rig.sim
        .set_packages(FILES.0, 0, (0..3).map(|i| package("f", i)).collect());
    std::fs::write(&key_file, "files-rotated-key-0e3b77\n").unwrap();
    tokio::time::sleep(Duration::from_secs(61)).await;
    rig.poll_now().await;
    let m = rig.scrape().await;
    assert_eq!(m.value(&up("files")), 1.0, "{:?}", rig.last_error("files"));
    assert_eq!(ids(&m, "files"), expected("f", 3), "the new key was used");
}

#[tokio::test(start_paused = true)]
async fn env_keys_with_a_session_token_send_x_tc_token() {
    let dir = temp_dir();
    let sim = sim();
    let tmp = sim.issue_temporary_credentials(TARGET.0, Duration::from_secs(3600));
    let rig = Rig::start(
        sim,
        &dir,
        &account("env", "credentials = \"env\""),
        env(&[
            ("TENCENTCLOUD_SECRET_ID", &tmp.secret_id),
            ("TENCENTCLOUD_SECRET_KEY", &tmp.secret_key),
            ("TENCENTCLOUD_TOKEN", &tmp.token),
        ]),
    );
    rig.first_polls().await;
    let m = rig.scrape().await;
    assert_eq!(m.value(&up("env")), 1.0, "{:?}", rig.last_error("env"));
    assert_eq!(ids(&m, "env"), expected("t", 5));
    let sent = rig.sim.requests();
    assert_eq!(sent[0].secret_id.as_deref(), Some(tmp.secret_id.as_str()));
    assert_eq!(sent[0].token.as_deref(), Some(tmp.token.as_str()));

    // Fixed keys cannot be refreshed: a refused token fails the poll after one call.
    rig.sim.revoke_temporary_credentials();
    let before = rig.sim.requests().len();
    rig.poll_now().await;
    assert_eq!(rig.sim.requests().len() - before, 1, "no refresh, no retry");
    let m = rig.scrape().await;
    assert_eq!(m.value(&up("env")), 0.0);
    assert_eq!(m.value(&errors("env", "AuthFailure.TokenFailure")), 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_named_profile_is_read_from_the_credentials_file() {
    let dir = temp_dir();
    let file = write(
        &dir,
        "credentials",
        &format!(
            "[default]\nsecret_id = {}\nsecret_key = {}\n\n[live]\nsecret_id = {}\nsecret_key = {}\n",
            BASE.0, BASE.1, PROFILE.0, PROFILE.1
        ),
    );
    let rig = Rig::start(
        sim(),
        &dir,
        &account("profile", "credentials = \"profile\"\nprofile = \"live\""),
        env(&[("TENCENTCLOUD_CREDENTIALS_FILE", &file.display().to_string())]),
    );
    rig.first_polls().await;
    let m = rig.scrape().await;
    assert_eq!(
        m.value(&up("profile")),
        1.0,
        "{:?}",
        rig.last_error("profile")
    );
    assert_eq!(ids(&m, "profile"), expected("p", 4));

    // The file becomes unreadable: the last good keys stay in use, with a warning.
    let (logs, _guard) = Logs::capture(tracing::Level::WARN);
    std::fs::remove_file(&file).unwrap();
    tokio::time::sleep(Duration::from_secs(61)).await;
    rig.poll_now().await;
    assert_eq!(rig.scrape().await.value(&up("profile")), 1.0);
    let text = logs.text();
    assert!(
        text.contains("refreshing credentials failed") && text.contains("credentials file"),
        "{text}"
    );
    assert!(!text.contains(PROFILE.1));
}

#[tokio::test(start_paused = true)]
async fn cvm_role_finds_its_role_name_and_assume_role_goes_on_top() {
    let dir = temp_dir();
    let accounts = format!(
        "{}{}",
        account(
            "cvm",
            &format!("credentials = \"cvm_role\"\nmetadata_endpoint = \"{METADATA}\"")
        ),
        account(
            "assumed",
            &format!(
                "credentials = \"cvm_role\"\nrole = \"{CVM_ROLE}\"\nmetadata_endpoint = \"{METADATA}\"\n\
                 role_arn = \"{ROLE_ARN}\"\nrole_session_name = \"exporter-test\"\nsts_endpoint = \"{STS}\""
            )
        ),
    );
    let rig = Rig::start(sim(), &dir, &accounts, BTreeMap::new());
    rig.first_polls().await;
    let m = rig.scrape().await;
    assert_eq!(m.value(&up("cvm")), 1.0, "{:?}", rig.last_error("cvm"));
    assert_eq!(
        ids(&m, "cvm"),
        expected("b", 3),
        "the instance role's account"
    );
    assert_eq!(
        m.value(&up("assumed")),
        1.0,
        "{:?}",
        rig.last_error("assumed")
    );
    assert_eq!(
        ids(&m, "assumed"),
        expected("t", 5),
        "the assumed role's account"
    );

    let requests = rig.sim.credential_requests();
    let services: Vec<&str> = requests.iter().map(|r| r.service.as_str()).collect();
    assert_eq!(
        services
            .iter()
            .filter(|s| **s == "metadata:role-name")
            .count(),
        1,
        "only the account without a role asks its name: {services:?}"
    );
    let assume = requests
        .iter()
        .find(|r| r.service == "AssumeRole")
        .expect("AssumeRole called");
    let issued = rig.sim.issued_credentials();
    let metadata_ids: Vec<&str> = issued
        .iter()
        .filter(|c| c.issued_by == "metadata")
        .map(|c| c.secret_id.as_str())
        .collect();
    assert!(
        metadata_ids.contains(&assume.signed_by.as_deref().unwrap()),
        "AssumeRole signed with the instance role's temporary keys"
    );
    assert!(assume.had_token, "and their token");
    assert_eq!(assume.outcome, "ok");
    // Every Live API call used temporary keys with their token.
    for r in rig.sim.requests() {
        let id = r.secret_id.unwrap();
        let c = issued.iter().find(|c| c.secret_id == id).expect("issued");
        assert_eq!(r.token.as_deref(), Some(c.token.as_str()));
    }
}

#[tokio::test(start_paused = true)]
async fn oidc_exchanges_the_pod_token_unsigned_and_reads_the_token_file_again() {
    let dir = temp_dir();
    let tke = tke_env(&dir);
    let vars: Vec<(&str, &str)> = tke.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rig = Rig::start(
        sim(),
        &dir,
        &account(
            "pod",
            &format!("credentials = \"oidc\"\nsts_endpoint = \"{STS}\""),
        ),
        env(&vars),
    );
    rig.sim.set_temporary_lifetime(Duration::from_secs(1200));
    rig.first_polls().await;
    let m = rig.scrape().await;
    assert_eq!(m.value(&up("pod")), 1.0, "{:?}", rig.last_error("pod"));
    assert_eq!(ids(&m, "pod"), expected("t", 5));
    let call = &rig.sim.credential_requests()[0];
    assert_eq!(call.service, "AssumeRoleWithWebIdentity");
    assert!(call.unsigned, "Authorization: SKIP");
    assert_eq!(call.region.as_deref(), Some("ap-guangzhou"));

    // TKE rotates the projected token; the next refresh sends the new one.
    rig.sim
        .add_oidc_provider(PROVIDER, "eyJrotated-token-88c1f3");
    write(&dir, "web-identity-token", "eyJrotated-token-88c1f3\n");
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(rig.scrape().await.value(&up("pod")), 1.0);
    }
    let outcomes: Vec<String> = rig
        .sim
        .credential_requests()
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert!(outcomes.len() >= 2, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o == "ok"), "{outcomes:?}");
}

#[tokio::test(start_paused = true)]
async fn the_chain_takes_env_then_profile_then_cvm_role_then_oidc() {
    let dir = temp_dir();
    let profile = write(
        &dir,
        "credentials",
        &format!(
            "[default]\nsecret_id = {}\nsecret_key = {}\n",
            PROFILE.0, PROFILE.1
        ),
    );
    let empty_home = temp_dir();
    let tke = tke_env(&dir);
    let chain = account(
        "chain",
        &format!("metadata_endpoint = \"{METADATA}\"\nsts_endpoint = \"{STS}\""),
    );
    let mut all: Vec<(&str, String)> = tke.clone();
    all.push(("TENCENTCLOUD_SECRET_ID", BASE.0.into()));
    all.push(("TENCENTCLOUD_SECRET_KEY", BASE.1.into()));
    all.push((
        "TENCENTCLOUD_CREDENTIALS_FILE",
        profile.display().to_string(),
    ));
    let as_env = |v: &[(&str, String)]| -> BTreeMap<String, String> {
        v.iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    };

    // Everything available: the environment wins.
    let rig = Rig::start(sim(), &dir, &chain, as_env(&all));
    assert_eq!(rig.config.accounts[0].credentials.base.name(), "chain");
    rig.first_polls().await;
    assert_eq!(rig.live_ids(), [BASE.0]);
    drop(rig);

    // No environment keys: the profile.
    let no_env: Vec<(&str, String)> = all
        .iter()
        .filter(|(k, _)| !k.starts_with("TENCENTCLOUD_SECRET"))
        .cloned()
        .collect();
    let rig = Rig::start(sim(), &dir, &chain, as_env(&no_env));
    rig.first_polls().await;
    assert_eq!(rig.live_ids(), [PROFILE.0]);
    drop(rig);

    // No profile file either: the instance role.
    let mut no_profile: Vec<(&str, String)> = tke.clone();
    no_profile.push(("HOME", empty_home.display().to_string()));
    let rig = Rig::start(sim(), &dir, &chain, as_env(&no_profile));
    rig.first_polls().await;
    let ids = rig.live_ids();
    let issued = rig.sim.issued_credentials();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].issued_by, "metadata");
    assert_eq!(ids, [issued[0].secret_id.clone()]);
    drop(rig);

    // No instance role: TKE pod identity.
    let sim = sim();
    sim.set_metadata_fault(Some(MetadataFault::Unavailable));
    let rig = Rig::start(sim, &dir, &chain, as_env(&no_profile));
    rig.first_polls().await;
    let issued = rig.sim.issued_credentials();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].issued_by, "AssumeRoleWithWebIdentity");
    assert_eq!(rig.live_ids(), [issued[0].secret_id.clone()]);
    assert_eq!(rig.scrape().await.value(&up("chain")), 1.0);
}

mod rotation;

/// The warning a failed poll logs (it names the source and the reason).
fn poll_failed_warning(logs: &Logs) -> String {
    let text = logs.text();
    text.lines()
        .find(|l| l.contains("WARN") && l.contains("poll failed"))
        .unwrap_or_else(|| panic!("no poll failure logged:\n{text}"))
        .to_owned()
}

mod failures;

/// A reseller's role in a customer account whose trust policy requires an ExternalId: the
/// right one assumes it, a wrong or missing one is refused with an error saying so, and neither
/// value reaches an error, a log line, /metrics or the status page.
#[tokio::test(start_paused = true)]
async fn assume_role_sends_the_external_id_a_trust_policy_requires() {
    const CUSTOMER_ROLE: &str = "qcs::cam::uin/200000000002:roleName/reseller-live-readonly";
    const RIGHT: &str = "customer-42-6f1c0a8e";
    const WRONG: &str = "customer-41-deadbeef";
    let sim = sim();
    sim.add_role_with_external_id(CUSTOMER_ROLE, TARGET.0, RIGHT);
    let base = |external_id: Option<&str>| {
        let mut lines = format!(
            "secret_id = \"{}\"\nsecret_key = \"{}\"\nrole_arn = \"{CUSTOMER_ROLE}\"\nsts_endpoint = \"{STS}\"",
            BASE.0, BASE.1
        );
        if let Some(id) = external_id {
            lines.push_str(&format!("\nexternal_id = \"{id}\""));
        }
        lines
    };
    let accounts = format!(
        "{}{}{}",
        account("right", &base(Some(RIGHT))),
        account("wrong", &base(Some(WRONG))),
        account("missing", &base(None)),
    );
    let (logs, _guard) = Logs::capture(tracing::Level::DEBUG);
    let dir = temp_dir();
    let rig = Rig::start(sim, &dir, &accounts, BTreeMap::new());
    rig.first_polls().await;
    let m = rig.scrape().await;
    assert_eq!(m.value(&up("right")), 1.0, "{:?}", rig.last_error("right"));
    assert_eq!(
        ids(&m, "right"),
        expected("t", 5),
        "the customer's packages"
    );
    let text = logs.text();
    for (name, what) in [("wrong", "does not match"), ("missing", "is missing")] {
        assert_eq!(m.value(&up(name)), 0.0);
        assert_eq!(rig.last_error(name).as_deref(), Some("credentials"));
        // The warning of this account's failed poll says which role refused and why.
        let warning = text
            .lines()
            .find(|l| l.contains(&format!("account=\"{name}\"")) && l.contains("AssumeRole"))
            .unwrap_or_else(|| panic!("no warning for {name}:\n{text}"));
        assert!(
            warning.contains(&format!("AssumeRole {CUSTOMER_ROLE}"))
                && warning.contains("STS error UnauthorizedOperation")
                && warning.contains(&format!(
                    "requires an ExternalId (qcs:ExternalId); the request's {what}"
                )),
            "{name}: {warning}"
        );
    }
    let mut outcomes: Vec<String> = rig
        .sim
        .credential_requests()
        .into_iter()
        .filter(|r| r.service == "AssumeRole")
        .map(|r| r.outcome)
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        ["UnauthorizedOperation", "UnauthorizedOperation", "ok"],
        "one AssumeRole per account"
    );
    let metrics = rig.get("/metrics").await;
    let status = rig.get("/").await;
    let debug = format!("{:?}", rig.config);
    let errors: String = ["right", "wrong", "missing"]
        .iter()
        .filter_map(|a| rig.last_error(a))
        .collect();
    for secret in [RIGHT, WRONG] {
        for (place, text) in [
            ("logs", logs.text()),
            ("/metrics", metrics.clone()),
            ("status page", status.clone()),
            ("Debug of the config", debug.clone()),
            ("errors", errors.clone()),
        ] {
            assert!(
                !text.contains(secret),
                "ExternalId {secret} in {place}:\n{text}"
            );
        }
    }
}
