//! Unit tests of `sts`.

use axum::body::Body;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

const ACCOUNT: &str = "AKIDbaseaccount";
const KEY: &str = "base-secret-key";
const ROLE: &str = "qcs::cam::uin/100000000001:roleName/live-readonly";

async fn send(sim: &Simulator, request: axum::http::Request<Body>) -> (u16, Value) {
    let response = sim.router().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A signed POST / (service from `service`), optionally with a token.
fn signed(
    action: &str,
    service: &str,
    id: &str,
    key: &str,
    token: Option<&str>,
    body: &Value,
) -> axum::http::Request<Body> {
    let body = body.to_string();
    let timestamp = unix_now();
    let host = "sts.simulator.test";
    let auth = sign::authorization(
        id,
        key,
        &SigningInput {
            host,
            content_type: "application/json",
            service,
            timestamp,
            body: body.as_bytes(),
        },
    );
    let version = if STS_ACTIONS.contains(&action) {
        STS_VERSION
    } else {
        super::super::VERSION
    };
    let mut b = axum::http::Request::post("/")
        .header("host", host)
        .header("content-type", "application/json")
        .header("x-tc-action", action)
        .header("x-tc-version", version)
        .header("x-tc-timestamp", timestamp.to_string())
        .header("authorization", auth);
    if let Some(token) = token {
        b = b.header("x-tc-token", token);
    }
    b.body(Body::from(body)).unwrap()
}

fn assume(session: &str) -> Value {
    json!({"RoleArn": ROLE, "RoleSessionName": session, "DurationSeconds": 7200})
}

fn sim() -> Simulator {
    let sim = Simulator::new();
    sim.add_account(ACCOUNT, KEY);
    sim.add_role(ROLE, ACCOUNT);
    sim
}

#[tokio::test(start_paused = true)]
async fn assume_role_issues_credentials_the_live_api_accepts_until_they_expire() {
    let sim = sim();
    sim.set_temporary_lifetime(Duration::from_secs(900));
    let (status, answer) = send(
        &sim,
        signed("AssumeRole", "sts", ACCOUNT, KEY, None, &assume("s1")),
    )
    .await;
    assert_eq!(status, 200);
    let creds = &answer["Response"]["Credentials"];
    let id = creds["TmpSecretId"].as_str().unwrap().to_owned();
    let key = creds["TmpSecretKey"].as_str().unwrap().to_owned();
    let token = creds["Token"].as_str().unwrap().to_owned();
    let expired = answer["Response"]["ExpiredTime"].as_i64().unwrap();
    assert!(
        (expired - unix_now() - 900).abs() <= 2,
        "capped at the lifetime"
    );
    let live = |token: Option<&str>| {
        signed(
            super::super::ACTION,
            "live",
            &id,
            &key,
            token,
            &json!({"PackageType": 0}),
        )
    };
    let code = |v: &Value| v["Response"]["Error"]["Code"].as_str().map(str::to_owned);
    let (_, ok) = send(&sim, live(Some(&token))).await;
    assert_eq!(code(&ok), None, "{ok}");
    let (_, wrong) = send(&sim, live(Some("not-the-token"))).await;
    assert_eq!(code(&wrong).as_deref(), Some(TOKEN_FAILURE));
    let (_, missing) = send(&sim, live(None)).await;
    assert_eq!(code(&missing).as_deref(), Some(TOKEN_FAILURE));
    tokio::time::advance(Duration::from_secs(900)).await;
    let (_, expired) = send(&sim, live(Some(&token))).await;
    assert_eq!(code(&expired).as_deref(), Some(TOKEN_FAILURE));
    assert_eq!(sim.issued_credentials().len(), 1);
    assert!(!format!("{:?}", sim.issued_credentials()).contains(&key));
}

#[tokio::test]
async fn assume_role_checks_signature_role_and_faults() {
    let sim = sim();
    let code = |v: &Value| v["Response"]["Error"]["Code"].as_str().map(str::to_owned);
    let (_, bad_key) = send(
        &sim,
        signed("AssumeRole", "sts", ACCOUNT, "wrong", None, &assume("s1")),
    )
    .await;
    assert_eq!(
        code(&bad_key).as_deref(),
        Some("AuthFailure.SignatureFailure")
    );
    let (_, bad_service) = send(
        &sim,
        signed("AssumeRole", "live", ACCOUNT, KEY, None, &assume("s1")),
    )
    .await;
    assert_eq!(
        code(&bad_service).as_deref(),
        Some("AuthFailure.SignatureFailure")
    );
    let other_role = json!({"RoleArn": "qcs::cam::uin/1:roleName/none", "RoleSessionName": "s1"});
    let (_, no_role) = send(
        &sim,
        signed("AssumeRole", "sts", ACCOUNT, KEY, None, &other_role),
    )
    .await;
    assert_eq!(
        code(&no_role).as_deref(),
        Some("ResourceNotFound.RoleNotExist")
    );
    sim.set_sts_fault(Some("InternalError"));
    let (_, fault) = send(
        &sim,
        signed("AssumeRole", "sts", ACCOUNT, KEY, None, &assume("s1")),
    )
    .await;
    assert_eq!(code(&fault).as_deref(), Some("InternalError"));
    let log = sim.credential_requests();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0].signed_by.as_deref(), Some(ACCOUNT));
    assert!(sim.issued_credentials().is_empty());
}

#[tokio::test]
async fn the_metadata_service_serves_the_attached_role() {
    let sim = sim();
    let get = |path: &str| {
        axum::http::Request::get(path)
            .header("host", "metadata.simulator.test")
            .body(Body::empty())
            .unwrap()
    };
    let (status, _) = send(&sim, get(METADATA_PATH)).await;
    assert_eq!(status, 404, "no role attached");
    sim.attach_instance_role("cvm-role", ACCOUNT);
    let response = sim.router().oneshot(get(METADATA_PATH)).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"cvm-role");
    let (status, creds) = send(&sim, get(&format!("{METADATA_PATH}cvm-role"))).await;
    assert_eq!(status, 200);
    assert_eq!(creds["Code"], "Success");
    assert!(
        creds["TmpSecretId"]
            .as_str()
            .unwrap()
            .starts_with("AKIDtmp")
    );
    let (status, _) = send(&sim, get(&format!("{METADATA_PATH}other"))).await;
    assert_eq!(status, 404);
    sim.set_metadata_fault(Some(MetadataFault::CodeNotSuccess));
    let (_, failure) = send(&sim, get(&format!("{METADATA_PATH}cvm-role"))).await;
    assert_eq!(failure["Code"], "Failure");
    sim.set_metadata_fault(Some(MetadataFault::Unavailable));
    let (status, _) = send(&sim, get(&format!("{METADATA_PATH}cvm-role"))).await;
    assert_eq!(status, 503);
    let outcomes: Vec<String> = sim
        .credential_requests()
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(
        outcomes,
        ["http_404", "ok", "ok", "http_404", "fault:code", "http_503"]
    );
}
