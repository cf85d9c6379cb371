use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::tencent::sign;

const ID: &str = "AKIDsimulatortest";
const KEY: &str = "simulator-secret-key";
const HOST: &str = "127.0.0.1:18080";

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A request description; `build` signs it (unless `authorization` overrides).
#[derive(Clone)]
struct Req {
    id: String,
    key: String,
    body: String,
    timestamp: i64,
    action: Option<&'static str>,
    version: Option<&'static str>,
    host: String,
    content_type: &'static str,
    region: bool,
    token: Option<&'static str>,
    authorization: Option<String>,
    /// Body actually sent, when it differs from the signed one.
    sent_body: Option<String>,
}

impl Req {
    fn new(body: Value) -> Self {
        Req {
            id: ID.to_owned(),
            key: KEY.to_owned(),
            body: body.to_string(),
            timestamp: now_unix(),
            action: Some(ACTION),
            version: Some(VERSION),
            host: HOST.to_owned(),
            content_type: "application/json",
            region: false,
            token: None,
            authorization: None,
            sent_body: None,
        }
    }

    fn build(&self) -> Request<Body> {
        let input = sign::SigningInput {
            host: &self.host,
            content_type: self.content_type,
            service: "live",
            timestamp: self.timestamp,
            body: self.body.as_bytes(),
        };
        let authorization = self
            .authorization
            .clone()
            .unwrap_or_else(|| sign::authorization(&self.id, &self.key, &input));
        let mut b = Request::builder()
            .method("POST")
            .uri("/")
            .header("host", &self.host)
            .header("content-type", self.content_type)
            .header("x-tc-timestamp", self.timestamp.to_string())
            .header("authorization", authorization);
        if let Some(a) = self.action {
            b = b.header("x-tc-action", a);
        }
        if let Some(v) = self.version {
            b = b.header("x-tc-version", v);
        }
        if self.region {
            b = b.header("x-tc-region", "ap-guangzhou");
        }
        if let Some(t) = self.token {
            b = b.header("x-tc-token", t);
        }
        let body = self.sent_body.clone().unwrap_or_else(|| self.body.clone());
        b.body(Body::from(body)).expect("valid request")
    }
}

async fn send(sim: &Simulator, request: Request<Body>) -> Value {
    let response = sim.router().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&bytes).expect("JSON answer")
}

async fn call(sim: &Simulator, req: &Req) -> Value {
    send(sim, req.build()).await
}

fn error_code(answer: &Value) -> Option<&str> {
    answer
        .pointer("/Response/Error/Code")
        .and_then(Value::as_str)
}

fn ids(answer: &Value) -> Vec<String> {
    answer["Response"]["LivePackageInfoList"]
        .as_array()
        .expect("a package list")
        .iter()
        .map(|p| p["Id"].as_str().expect("string Id").to_owned())
        .collect()
}

fn sim_with_account() -> Simulator {
    let sim = Simulator::new();
    sim.add_account(ID, KEY);
    sim
}

fn traffic(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "Id": format!("p{i:02}"),
                "Type": 0,
                "Status": 1,
                "Total": 1000,
                "Used": 10,
                "Left": 990,
                // p00 is the oldest.
                "BuyTime": format!("2024-01-{:02} 10:00:00", i + 1),
                "ExpireTime": format!("2025-01-{:02} 10:00:00", 28 - i),
                "WillRenew": 0,
                "RenewalResult": 0
            })
        })
        .collect()
}

#[tokio::test]
async fn good_request_pages_25_packages_into_10_10_5() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, traffic(25));
    let mut seen = Vec::new();
    for (page, expected_len) in [(1, 10), (2, 10), (3, 5)] {
        let answer = call(
            &sim,
            &Req::new(json!({"PackageType": 0, "PageNum": page, "PageSize": 10})),
        )
        .await;
        assert_eq!(error_code(&answer), None, "{answer}");
        let r = &answer["Response"];
        assert_eq!(r["TotalPage"], json!(3));
        assert_eq!(r["TotalNum"], json!(25));
        assert_eq!(r["PageNum"], json!(page));
        assert_eq!(r["PageSize"], json!(10));
        assert_eq!(r["PackageBillMode"], json!(204));
        assert_eq!(r["FluxPackageBillMode"], json!("204,204,204,204,-1,-1"));
        assert!(r["RequestId"].as_str().is_some_and(|s| s.len() == 36));
        let page_ids = ids(&answer);
        assert_eq!(page_ids.len(), expected_len);
        seen.extend(page_ids);
    }
    // Default order is BuyTimeDesc: newest (p24) first, every package exactly once.
    let expected: Vec<String> = (0..25).rev().map(|i| format!("p{i:02}")).collect();
    assert_eq!(seen, expected);

    // Past the last page: empty list, totals still right.
    let answer = call(
        &sim,
        &Req::new(json!({"PackageType": 0, "PageNum": 4, "PageSize": 10})),
    )
    .await;
    assert!(ids(&answer).is_empty());
    assert_eq!(answer["Response"]["TotalNum"], json!(25));

    let log = sim.requests();
    assert_eq!(log.len(), 4);
    assert!(log.iter().all(|r| r.outcome == "ok"));
    assert_eq!(log[1].page_num, Some(2));
    assert_eq!(log[1].page_size, Some(10));
    assert_eq!(log[1].package_type, Some(0));
    assert_eq!(log[1].secret_id.as_deref(), Some(ID));
}

#[tokio::test]
async fn paging_applies_only_when_both_page_fields_are_sent() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, traffic(25));
    for body in [
        json!({"PackageType": 0}),
        json!({"PackageType": 0, "PageNum": 2}),
        json!({"PackageType": 0, "PageSize": 10}),
    ] {
        let answer = call(&sim, &Req::new(body.clone())).await;
        assert_eq!(ids(&answer).len(), 25, "{body}");
        assert_eq!(answer["Response"]["TotalNum"], json!(25));
        assert_eq!(answer["Response"]["TotalPage"], json!(1));
    }
}

#[tokio::test]
async fn null_totals_answer_null_page_fields() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, traffic(3));
    sim.set_null_totals(ID, true);
    let answer = call(
        &sim,
        &Req::new(json!({"PackageType": 0, "PageNum": 1, "PageSize": 10})),
    )
    .await;
    let r = &answer["Response"];
    assert_eq!(ids(&answer).len(), 3);
    for field in ["TotalPage", "TotalNum", "PageNum", "PageSize"] {
        assert!(r.get(field).is_some_and(Value::is_null), "{field}: {r}");
    }
    sim.set_null_totals(ID, false);
    let answer = call(&sim, &Req::new(json!({"PackageType": 0}))).await;
    assert_eq!(answer["Response"]["TotalNum"], json!(3));
}

#[tokio::test]
async fn bad_signatures_are_signature_failure() {
    let sim = sim_with_account();
    // Signed with the wrong key.
    let mut wrong_key = Req::new(json!({"PackageType": 0}));
    wrong_key.key = "not-the-key".to_owned();
    // Body changed after signing (spacing only).
    let mut tampered = Req::new(json!({"PackageType": 0}));
    tampered.sent_body = Some(r#"{"PackageType": 0}"#.to_owned());
    // Signed for a Host without the port.
    let mut other_host = Req::new(json!({"PackageType": 0}));
    let mut request = other_host.build();
    other_host.host = "127.0.0.1".to_owned();
    let signed_without_port = other_host.build();
    request.headers_mut().insert(
        header::AUTHORIZATION,
        signed_without_port.headers()[header::AUTHORIZATION].clone(),
    );
    // Credential date that is not the timestamp's UTC date.
    let mut wrong_date = Req::new(json!({"PackageType": 0}));
    let good = wrong_date.build();
    let auth = good.headers()[header::AUTHORIZATION]
        .to_str()
        .expect("ascii")
        .replace(&sign::utc_date(wrong_date.timestamp), "2019-02-25");
    wrong_date.authorization = Some(auth);

    for req in [wrong_key, tampered, wrong_date] {
        let answer = call(&sim, &req).await;
        assert_eq!(error_code(&answer), Some("AuthFailure.SignatureFailure"));
        assert!(answer["Response"]["RequestId"].is_string());
        assert!(answer["Response"].get("LivePackageInfoList").is_none());
    }
    let answer = send(&sim, request).await;
    assert_eq!(error_code(&answer), Some("AuthFailure.SignatureFailure"));
    // And the untouched request passes.
    let answer = call(&sim, &Req::new(json!({"PackageType": 0}))).await;
    assert_eq!(error_code(&answer), None, "{answer}");
    let outcomes: Vec<String> = sim.requests().into_iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes.iter().filter(|o| *o == "ok").count(), 1);
    assert_eq!(outcomes.len(), 5);
}

#[tokio::test]
async fn content_type_with_charset_is_signed_as_sent() {
    let sim = sim_with_account();
    let mut req = Req::new(json!({"PackageType": 0}));
    req.content_type = "application/json; charset=utf-8";
    assert_eq!(error_code(&call(&sim, &req).await), None);
    req.content_type = "text/plain";
    assert_eq!(
        error_code(&call(&sim, &req).await),
        Some("InvalidParameter")
    );
}

#[tokio::test]
async fn expired_timestamp_is_signature_expire() {
    let sim = sim_with_account();
    for skew in [-301, 301, -100_000, i64::MAX / 2] {
        let mut req = Req::new(json!({"PackageType": 0}));
        req.timestamp = now_unix().saturating_add(skew);
        let answer = call(&sim, &req).await;
        assert_eq!(
            error_code(&answer),
            Some("AuthFailure.SignatureExpire"),
            "skew {skew}"
        );
    }
    let mut req = Req::new(json!({"PackageType": 0}));
    req.timestamp -= 200;
    assert_eq!(error_code(&call(&sim, &req).await), None);
}

#[tokio::test]
async fn unknown_secret_id_is_secret_id_not_found() {
    let sim = sim_with_account();
    let mut req = Req::new(json!({"PackageType": 0}));
    req.id = "AKIDunknown".to_owned();
    let answer = call(&sim, &req).await;
    assert_eq!(error_code(&answer), Some("AuthFailure.SecretIdNotFound"));
    assert_eq!(sim.requests()[0].secret_id.as_deref(), Some("AKIDunknown"));
}

#[tokio::test]
async fn malformed_authorization_is_invalid_authorization() {
    let sim = sim_with_account();
    for auth in [
        "",
        "Basic Zm9vOmJhcg==",
        "TC3-HMAC-SHA256 Credential=AKID/2024-01-01/live, SignedHeaders=content-type;host, Signature=ab",
        "TC3-HMAC-SHA256 Credential=AKIDsimulatortest/2024-01-01/live/tc3_request, SignedHeaders=host, Signature=ab",
    ] {
        let mut req = Req::new(json!({"PackageType": 0}));
        req.authorization = Some(auth.to_owned());
        let answer = call(&sim, &req).await;
        assert_eq!(
            error_code(&answer),
            Some("AuthFailure.InvalidAuthorization"),
            "{auth}"
        );
    }
    let mut request = Req::new(json!({"PackageType": 0})).build();
    request.headers_mut().remove(header::AUTHORIZATION);
    let answer = send(&sim, request).await;
    assert_eq!(
        error_code(&answer),
        Some("AuthFailure.InvalidAuthorization")
    );
}

#[tokio::test]
async fn action_and_version_are_checked() {
    let sim = sim_with_account();
    let mut req = Req::new(json!({"PackageType": 0}));
    req.action = Some("DescribeLiveDomains");
    assert_eq!(error_code(&call(&sim, &req).await), Some("InvalidAction"));
    req.action = None;
    assert_eq!(error_code(&call(&sim, &req).await), Some("InvalidAction"));
    let mut req = Req::new(json!({"PackageType": 0}));
    req.version = Some("2017-03-12");
    assert_eq!(error_code(&call(&sim, &req).await), Some("NoSuchVersion"));
    req.version = None;
    assert_eq!(error_code(&call(&sim, &req).await), Some("NoSuchVersion"));
}

#[tokio::test]
async fn parameter_errors() {
    let sim = sim_with_account();
    let cases = [
        (
            json!({"PackageType": 0, "PageNum": 1, "PageSize": 5}),
            "InvalidParameterValue",
        ),
        (
            json!({"PackageType": 0, "PageSize": 5}),
            "InvalidParameterValue",
        ),
        (
            json!({"PackageType": 0, "PageNum": 1, "PageSize": 101}),
            "InvalidParameterValue",
        ),
        (
            json!({"PackageType": 0, "PageNum": 0, "PageSize": 10}),
            "InvalidParameterValue",
        ),
        (
            json!({"PackageType": 0, "PageNum": "1", "PageSize": 10}),
            "InvalidParameterValue",
        ),
        (json!({}), "MissingParameter"),
        (json!({"PackageType": null}), "MissingParameter"),
        (json!({"PackageType": 3}), "InvalidParameterValue"),
        (json!({"PackageType": -1}), "InvalidParameterValue"),
        (json!({"PackageType": "0"}), "InvalidParameterValue"),
        (json!({"PackageType": 0.5}), "InvalidParameterValue"),
        (
            json!({"PackageType": 0, "OrderBy": "Newest"}),
            "InvalidParameterValue",
        ),
        (
            json!({"PackageType": 2, "OrderBy": "ExpireTimeAsc"}),
            "InvalidParameterValue",
        ),
        (
            json!({"PackageType": 2, "OrderBy": "ExpireTimeDesc"}),
            "InvalidParameterValue",
        ),
        (
            json!({"PackageType": 0, "Region": "ap-guangzhou"}),
            "UnknownParameter",
        ),
        (json!([0]), "InvalidParameter"),
        (json!("PackageType"), "InvalidParameter"),
    ];
    for (body, code) in cases {
        let answer = call(&sim, &Req::new(body.clone())).await;
        assert_eq!(error_code(&answer), Some(code), "{body}");
        assert!(answer["Response"]["Error"]["Message"].is_string());
    }
    let mut req = Req::new(json!({}));
    req.body = "PackageType=0".to_owned();
    assert_eq!(
        error_code(&call(&sim, &req).await),
        Some("InvalidParameter")
    );
    req.body = String::new();
    assert_eq!(
        error_code(&call(&sim, &req).await),
        Some("InvalidParameter")
    );
    // Expire orders are fine for the other types; the page size 5 case was logged.
    let ok = call(
        &sim,
        &Req::new(json!({"PackageType": 1, "OrderBy": "ExpireTimeAsc"})),
    )
    .await;
    assert_eq!(error_code(&ok), None);
    assert_eq!(sim.requests()[0].page_size, Some(5));
    assert_eq!(sim.requests()[0].outcome, "InvalidParameterValue");
}

#[tokio::test]
async fn order_by_sorts_and_missing_times_sort_last() {
    let sim = sim_with_account();
    sim.set_packages(
        ID,
        0,
        vec![
            json!({"Id": "b", "BuyTime": "2024-02-01 00:00:00", "ExpireTime": "2025-03-01 00:00:00"}),
            json!({"Id": "none"}),
            json!({"Id": "a", "BuyTime": "2024-01-01 00:00:00", "ExpireTime": "2025-04-01 00:00:00"}),
            json!({"Id": "nulls", "BuyTime": null, "ExpireTime": 5}),
            json!({"Id": "c", "BuyTime": "2024-03-01 00:00:00", "ExpireTime": "2025-02-01 00:00:00"}),
        ],
    );
    let order = |o: &'static str| Req::new(json!({"PackageType": 0, "OrderBy": o}));
    assert_eq!(
        ids(&call(&sim, &Req::new(json!({"PackageType": 0}))).await),
        ["c", "b", "a", "none", "nulls"]
    );
    assert_eq!(
        ids(&call(&sim, &order("BuyTimeDesc")).await),
        ["c", "b", "a", "none", "nulls"]
    );
    assert_eq!(
        ids(&call(&sim, &order("BuyTimeAsc")).await),
        ["a", "b", "c", "none", "nulls"]
    );
    assert_eq!(
        ids(&call(&sim, &order("ExpireTimeDesc")).await),
        ["a", "b", "c", "none", "nulls"]
    );
    assert_eq!(
        ids(&call(&sim, &order("ExpireTimeAsc")).await),
        ["c", "b", "a", "none", "nulls"]
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limit_is_a_sliding_second_per_secret_id() {
    let sim = sim_with_account();
    sim.add_account("AKIDother", "other-key");
    let body = json!({"PackageType": 0});
    let outcome = |answer: &Value| error_code(answer).unwrap_or("ok").to_owned();

    // 10 at t=0, 10 at t=0.6 s: all accepted; the 21st is over.
    for _ in 0..10 {
        assert_eq!(outcome(&call(&sim, &Req::new(body.clone())).await), "ok");
    }
    tokio::time::advance(Duration::from_millis(600)).await;
    for _ in 0..10 {
        assert_eq!(outcome(&call(&sim, &Req::new(body.clone())).await), "ok");
    }
    assert_eq!(
        outcome(&call(&sim, &Req::new(body.clone())).await),
        "RequestLimitExceeded"
    );
    // Another SecretId has its own budget.
    let mut other = Req::new(body.clone());
    other.id = "AKIDother".to_owned();
    other.key = "other-key".to_owned();
    assert_eq!(outcome(&call(&sim, &other).await), "ok");

    // t=0.999 s: the first 10 are still in the window.
    tokio::time::advance(Duration::from_millis(399)).await;
    assert_eq!(
        outcome(&call(&sim, &Req::new(body.clone())).await),
        "RequestLimitExceeded"
    );
    // t=1.0 s: they left it; over-limit requests were not counted, so exactly 10 fit.
    tokio::time::advance(Duration::from_millis(1)).await;
    for _ in 0..10 {
        assert_eq!(outcome(&call(&sim, &Req::new(body.clone())).await), "ok");
    }
    assert_eq!(
        outcome(&call(&sim, &Req::new(body.clone())).await),
        "RequestLimitExceeded"
    );

    let log = sim.requests();
    assert_eq!(log.len(), 34);
    assert_eq!(
        log.iter()
            .filter(|r| r.outcome == "RequestLimitExceeded")
            .count(),
        3
    );
    let start = log[0].at;
    assert_eq!(
        log[33].at.duration_since(start),
        Duration::from_millis(1000)
    );

    // A lower limit applies at once.
    sim.set_rate_limit(2);
    tokio::time::advance(Duration::from_secs(5)).await;
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(outcome(&call(&sim, &Req::new(body.clone())).await));
    }
    assert_eq!(outcomes, ["ok", "ok", "RequestLimitExceeded"]);
}

#[tokio::test]
async fn query_1_returns_types_1_and_2_and_routing_ignores_the_type_field() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, vec![json!({"Id": "flux", "Type": 0})]);
    sim.set_packages(
        ID,
        1,
        vec![
            json!({"Id": "transcode", "Type": 1, "BuyTime": "2024-03-01 00:00:00"}),
            json!({"Id": "topspeed", "Type": 2, "BuyTime": "2024-02-01 00:00:00"}),
            json!({"Id": "null-type", "Type": null, "BuyTime": "2024-01-01 00:00:00"}),
        ],
    );
    sim.upsert_package(ID, 1, json!({"Id": "odd-type", "Type": 9}));
    sim.set_packages(ID, 2, vec![json!({"Id": "mic", "Type": 3})]);

    let q1 = call(&sim, &Req::new(json!({"PackageType": 1}))).await;
    assert_eq!(ids(&q1), ["transcode", "topspeed", "null-type", "odd-type"]);
    let types: Vec<Value> = q1["Response"]["LivePackageInfoList"]
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["Type"].clone())
        .collect();
    assert_eq!(types, [json!(1), json!(2), Value::Null, json!(9)]);
    assert_eq!(q1["Response"]["PackageBillMode"], json!(205));
    assert!(q1["Response"].get("FluxPackageBillMode").is_none());

    assert_eq!(
        ids(&call(&sim, &Req::new(json!({"PackageType": 0}))).await),
        ["flux"]
    );
    let q2 = call(&sim, &Req::new(json!({"PackageType": 2}))).await;
    assert_eq!(ids(&q2), ["mic"]);
    assert_eq!(q2["Response"]["PackageBillMode"], json!(206));
}

#[tokio::test]
async fn example_packages_round_trip_verbatim() {
    let example: Value = serde_json::from_str(demo::EXAMPLE_RESPONSE).expect("example parses");
    let packages = Simulator::example_response_packages();
    assert_eq!(packages.len(), 9);
    assert_eq!(packages[0]["Id"], json!("281975"));
    assert_eq!(packages[0]["Left"], json!(497_634_728_735_i64));

    let sim = sim_with_account();
    // The whole answer equals the page's example, RequestId aside.
    sim.set_packages(ID, 0, packages.clone());
    let mut answer = call(&sim, &Req::new(json!({"PackageType": 0}))).await;
    let request_id = answer["Response"]
        .as_object_mut()
        .and_then(|r| r.remove("RequestId"));
    assert!(request_id.is_some());
    let mut expected = example.clone();
    expected["Response"]
        .as_object_mut()
        .expect("object")
        .remove("RequestId");
    assert_eq!(answer, expected);

    // Stored in reverse: the default BuyTimeDesc order restores the page's order.
    let mut reversed = packages.clone();
    reversed.reverse();
    sim.set_packages(ID, 0, reversed);
    let answer = call(
        &sim,
        &Req::new(json!({"PackageType": 0, "PageNum": 1, "PageSize": 100})),
    )
    .await;
    let list = answer["Response"]["LivePackageInfoList"]
        .as_array()
        .expect("list");
    // Tied BuyTimes (224805/224804) come in stored order, so only compare the sorted sets there.
    assert_eq!(list.len(), 9);
    for p in &packages {
        assert!(list.contains(p), "{p}");
    }
    assert_eq!(list[0], packages[0]);
    assert_eq!(list[8], packages[8]);
}

#[tokio::test]
async fn demo_has_all_four_types_and_one_package_expiring_within_7_days() {
    let sim = Simulator::demo(ID, KEY);
    let mut all = Vec::new();
    for t in 0..3 {
        let answer = call(&sim, &Req::new(json!({"PackageType": t}))).await;
        assert_eq!(error_code(&answer), None);
        all.extend(
            answer["Response"]["LivePackageInfoList"]
                .as_array()
                .expect("list")
                .clone(),
        );
    }
    let mut types: Vec<i64> = all.iter().filter_map(|p| p["Type"].as_i64()).collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types, [0, 1, 2, 3]);

    let now = demo::beijing_time(time::Duration::ZERO);
    let week = demo::beijing_time(time::Duration::days(7));
    let expiring: Vec<&Value> = all
        .iter()
        .filter(|p| {
            p["ExpireTime"]
                .as_str()
                .is_some_and(|e| e > now.as_str() && e <= week.as_str())
        })
        .collect();
    assert_eq!(expiring.len(), 1, "{expiring:?}");
    assert_eq!(expiring[0]["Type"], json!(1));
    assert!(expiring[0]["Left"].as_i64().is_some_and(|l| l > 0));

    // Every example package is there verbatim.
    for p in Simulator::example_response_packages() {
        assert!(all.contains(&p), "{p}");
    }
    // Expired, nearly exhausted, null-renewal and in-use packages are present.
    assert!(
        all.iter().any(|p| p["Status"] == json!(2)
            && p["ExpireTime"].as_str().is_some_and(|e| e < now.as_str()))
    );
    assert!(
        all.iter()
            .any(|p| p["WillRenew"].is_null() && p["RenewalResult"].is_null())
    );
    assert!(all.iter().any(|p| {
        let (t, l) = (
            p["Total"].as_i64().unwrap_or(0),
            p["Left"].as_i64().unwrap_or(0),
        );
        p["Status"] == json!(1) && l > 0 && l * 100 <= t * 4
    }));
    assert!(all.iter().any(|p| p["Status"] == json!(1)
        && p["Type"] == json!(0)
        && p["Left"].as_i64().unwrap_or(0) * 2 > p["Total"].as_i64().unwrap_or(0)));
    for t in [2, 3] {
        assert!(
            all.iter()
                .any(|p| p["Type"] == json!(t) && p["Status"] == json!(1))
        );
    }
    // Times are current, not hard-coded: the newest purchase is within the last year.
    let year_ago = demo::beijing_time(time::Duration::days(-365));
    assert!(
        all.iter()
            .any(|p| p["BuyTime"].as_str().is_some_and(|b| b > year_ago.as_str()))
    );

    // The usage clock: traffic is used at 0.5 MB/s from the in-use package, which hands over to
    // the queued one when it runs dry (3 GB after 6000 s); polls alone use nothing.
    let package = |list: &[Value], id: &str| {
        list.iter()
            .find(|p| p["Id"] == json!(id))
            .map(|p| (p["Status"].as_i64(), p["Left"].as_i64()))
    };
    let traffic = |answer: Value| {
        answer["Response"]["LivePackageInfoList"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let first = traffic(call(&sim, &Req::new(json!({"PackageType": 0}))).await);
    let again = traffic(call(&sim, &Req::new(json!({"PackageType": 0}))).await);
    assert_eq!(
        package(&first, "demo-flux-low"),
        package(&again, "demo-flux-low")
    );
    let origin = time::OffsetDateTime::now_utc();
    sim.advance_demo(ID, origin, Duration::from_secs(100));
    let later = traffic(call(&sim, &Req::new(json!({"PackageType": 0}))).await);
    assert_eq!(
        package(&later, "demo-flux-low"),
        Some((Some(1), Some(3_000_000_000 - 50_000_000)))
    );
    assert_eq!(
        package(&later, "demo-flux-main"),
        Some((Some(0), Some(1_000_000_000_000)))
    );
    sim.advance_demo(ID, origin, Duration::from_secs(6_100));
    let handed_over = traffic(call(&sim, &Req::new(json!({"PackageType": 0}))).await);
    assert_eq!(
        package(&handed_over, "demo-flux-low"),
        Some((Some(4), Some(0)))
    );
    assert_eq!(
        package(&handed_over, "demo-flux-main"),
        Some((Some(1), Some(1_000_000_000_000 - 50_000_000)))
    );
    // The total used never jumps: 0.5 MB/s throughout.
    let used = |list: &[Value]| {
        list.iter()
            .filter(|p| p["Id"].as_str().is_some_and(|id| id.starts_with("demo-")))
            .filter_map(|p| p["Used"].as_i64())
            .sum::<i64>()
    };
    assert_eq!(used(&handed_over) - used(&first), 6_100 * 500_000);
}

#[tokio::test]
async fn drain_moves_left_into_used_on_first_pages_only() {
    let sim = sim_with_account();
    sim.set_packages(
        ID,
        0,
        vec![
            json!({"Id": "in-use", "Status": 1, "Total": 10_000, "Used": 0, "Left": 10_000, "BuyTime": "2024-03-01 00:00:00"}),
            json!({"Id": "almost", "Status": 1, "Total": 10_000, "Used": 9_970, "Left": 30, "BuyTime": "2024-02-01 00:00:00"}),
            json!({"Id": "unused", "Status": 0, "Total": 10_000, "Used": 0, "Left": 10_000, "BuyTime": "2024-01-01 00:00:00"}),
            json!({"Id": "odd", "Status": 1, "Total": "10000", "Used": null, "Left": -5, "BuyTime": "2023-01-01 00:00:00"}),
            json!({"Id": "expired", "Status": 1, "Total": 10_000, "Used": 0, "Left": 10_000, "BuyTime": "2022-01-01 00:00:00", "ExpireTime": "2023-01-01 00:00:00"}),
        ],
    );
    let first = Req::new(json!({"PackageType": 0, "PageNum": 1, "PageSize": 10}));
    // Off by default.
    let answer = call(&sim, &first).await;
    assert_eq!(
        answer["Response"]["LivePackageInfoList"][0]["Left"],
        json!(10_000)
    );

    sim.set_drain_per_poll(true);
    let answer = call(&sim, &first).await;
    let list = &answer["Response"]["LivePackageInfoList"];
    assert_eq!(list[0]["Left"], json!(9_980));
    assert_eq!(list[0]["Used"], json!(20));
    assert_eq!(list[1]["Left"], json!(10));
    assert_eq!(list[1]["Used"], json!(9_990));
    assert_eq!(list[1]["Status"], json!(1));
    assert_eq!(list[2]["Left"], json!(10_000));
    assert_eq!(list[3]["Left"], json!(-5));
    assert_eq!(list[4]["Left"], json!(10_000));

    // Page 2 does not drain; unpaged does.
    call(
        &sim,
        &Req::new(json!({"PackageType": 0, "PageNum": 2, "PageSize": 10})),
    )
    .await;
    let answer = call(&sim, &Req::new(json!({"PackageType": 0}))).await;
    let list = &answer["Response"]["LivePackageInfoList"];
    assert_eq!(list[0]["Left"], json!(9_960));
    assert_eq!(list[1]["Left"], json!(0));
    assert_eq!(list[1]["Used"], json!(10_000));
    assert_eq!(list[1]["Status"], json!(4));
    // Used up stays used up.
    let answer = call(&sim, &first).await;
    let list = &answer["Response"]["LivePackageInfoList"];
    assert_eq!(list[1]["Left"], json!(0));
    assert_eq!(list[1]["Status"], json!(4));
    assert_eq!(list[0]["Left"], json!(9_940));
}

#[tokio::test]
async fn log_records_region_header_and_token() {
    let sim = sim_with_account();
    let mut req = Req::new(json!({"PackageType": 1, "PageNum": 1, "PageSize": 20}));
    req.region = true;
    req.token = Some("session-token");
    assert_eq!(error_code(&call(&sim, &req).await), None);
    assert_eq!(
        error_code(&call(&sim, &Req::new(json!({"PackageType": 2}))).await),
        None
    );
    let log = sim.requests();
    assert_eq!(log.len(), 2);
    assert!(log[0].had_region_header);
    assert_eq!(log[0].token.as_deref(), Some("session-token"));
    assert_eq!(log[0].package_type, Some(1));
    assert_eq!(log[0].page_size, Some(20));
    assert!(!log[1].had_region_header);
    assert_eq!(log[1].token, None);
    assert_eq!(log[1].page_num, None);
    sim.clear_requests();
    assert!(sim.requests().is_empty());
}

#[test]
fn log_is_bounded() {
    let sim = Simulator::new();
    let at = Instant::now();
    let mut state = sim.lock();
    for i in 0..LOG_CAPACITY + 5 {
        state.push_log(LoggedRequest {
            at,
            secret_id: None,
            package_type: Some(i as i64),
            page_num: None,
            page_size: None,
            had_region_header: false,
            token: None,
            outcome: "ok".to_owned(),
        });
    }
    drop(state);
    let log = sim.requests();
    assert_eq!(log.len(), LOG_CAPACITY);
    assert_eq!(log[0].package_type, Some(5));
}

#[tokio::test]
async fn upsert_and_remove_by_id() {
    let sim = sim_with_account();
    sim.set_packages(ID, 2, vec![json!({"Id": "a", "Left": 1}), json!({"Id": 7})]);
    sim.upsert_package(ID, 2, json!({"Id": "a", "Left": 2}));
    sim.upsert_package(ID, 2, json!({"Id": "b"}));
    assert!(sim.remove_package(ID, 2, "7"));
    assert!(!sim.remove_package(ID, 2, "7"));
    assert!(!sim.remove_package(ID, 0, "a"));
    assert!(!sim.remove_package("AKIDnobody", 2, "a"));
    let answer = call(&sim, &Req::new(json!({"PackageType": 2}))).await;
    assert_eq!(ids(&answer), ["a", "b"]);
    assert_eq!(
        answer["Response"]["LivePackageInfoList"][0]["Left"],
        json!(2)
    );

    sim.set_bill_modes(ID, 2, Value::Null, json!("x"));
    let answer = call(&sim, &Req::new(json!({"PackageType": 2}))).await;
    assert!(answer["Response"]["PackageBillMode"].is_null());
    assert_eq!(answer["Response"]["FluxPackageBillMode"], json!("x"));
    sim.set_bill_modes(ID, 0, json!(-1), Value::Null);
    let answer = call(&sim, &Req::new(json!({"PackageType": 0}))).await;
    assert_eq!(answer["Response"]["PackageBillMode"], json!(-1));
    assert!(
        answer["Response"]
            .get("FluxPackageBillMode")
            .is_some_and(Value::is_null)
    );
}

#[tokio::test]
async fn garbage_headers_do_not_panic() {
    let sim = sim_with_account();
    let mut request = Req::new(json!({"PackageType": 0})).build();
    request.headers_mut().insert(
        "x-tc-timestamp",
        axum::http::HeaderValue::from_bytes(b"12\xff").expect("opaque header"),
    );
    assert_eq!(
        error_code(&send(&sim, request).await),
        Some("InvalidParameterValue")
    );
    let mut request = Req::new(json!({"PackageType": 0})).build();
    request.headers_mut().remove("x-tc-timestamp");
    assert_eq!(
        error_code(&send(&sim, request).await),
        Some("MissingParameter")
    );
    let mut req = Req::new(json!({"PackageType": 0}));
    req.timestamp = i64::MIN;
    assert_eq!(
        error_code(&call(&sim, &req).await),
        Some("AuthFailure.SignatureExpire")
    );
    let mut request = Req::new(json!({"PackageType": 0})).build();
    request.headers_mut().insert(
        header::HOST,
        axum::http::HeaderValue::from_bytes(b"h\xfe").expect("opaque header"),
    );
    assert_eq!(
        error_code(&send(&sim, request).await),
        Some("AuthFailure.SignatureFailure")
    );
    // Only POST / is served.
    let request = Request::builder()
        .method("GET")
        .uri("/")
        .body(Body::empty())
        .expect("request");
    let response = sim.router().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn request_ids_are_unique_and_uuid_shaped() {
    let ids: Vec<String> = (0..1000).map(|_| new_request_id()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    for id in &ids {
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }
}

#[tokio::test]
async fn serves_over_tcp_with_the_port_in_the_signed_host() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sim = Simulator::demo(ID, KEY);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(sim.clone().serve(listener, shutdown.clone()));

    let mut req = Req::new(json!({"PackageType": 2}));
    req.host = addr.to_string();
    let input = sign::SigningInput {
        host: &req.host,
        content_type: req.content_type,
        service: "live",
        timestamp: req.timestamp,
        body: req.body.as_bytes(),
    };
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nX-TC-Action: {ACTION}\r\nX-TC-Version: {VERSION}\r\nX-TC-Timestamp: {}\r\nAuthorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        req.host,
        req.timestamp,
        sign::authorization(ID, KEY, &input),
        req.body.len(),
        req.body
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(raw.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (_, body) = response.split_once("\r\n\r\n").expect("head and body");
    let answer: Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(error_code(&answer), None, "{answer}");
    assert_eq!(ids(&answer), ["demo-mic"]);

    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .expect("task");
    assert!(result.is_ok());
}

// ---- Fault injection ----

/// Status, Content-Type and body bytes of one answer.
async fn raw(sim: &Simulator, req: &Req) -> (StatusCode, Option<String>, Bytes) {
    let response = sim.router().oneshot(req.build()).await.expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, content_type, bytes)
}

fn page(num: i64) -> Req {
    Req::new(json!({"PackageType": 0, "PageNum": num, "PageSize": 10}))
}

fn outcomes(sim: &Simulator) -> Vec<String> {
    sim.requests().into_iter().map(|r| r.outcome).collect()
}

#[tokio::test]
async fn fault_http_status_answers_that_status_with_an_html_body() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, traffic(3));
    sim.push_faults(ID, [500, 502, 503, 429, 42, 600].map(Fault::HttpStatus));
    assert_eq!(sim.pending_faults(ID), 6);
    for expected in [500, 502, 503, 429, 500, 500] {
        let (status, content_type, body) = raw(&sim, &page(1)).await;
        assert_eq!(status.as_u16(), expected);
        assert_eq!(content_type.as_deref(), Some("text/html"));
        assert!(serde_json::from_slice::<Value>(&body).is_err());
        let text = String::from_utf8(body.to_vec()).expect("text");
        assert!(text.starts_with("<html>") && text.contains(&expected.to_string()));
        assert!(text.len() < 100, "{text}");
    }
    assert_eq!(sim.pending_faults(ID), 0);
    // Then back to normal.
    assert_eq!(ids(&call(&sim, &page(1)).await).len(), 3);
    assert_eq!(
        outcomes(&sim),
        [
            "fault:http_500",
            "fault:http_502",
            "fault:http_503",
            "fault:http_429",
            "fault:http_500",
            "fault:http_500",
            "ok"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn fault_hang_never_answers() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, traffic(3));
    sim.push_faults(ID, [Fault::Hang]);
    let pending = sim.router().oneshot(page(1).build());
    let result = tokio::time::timeout(Duration::from_secs(60), pending).await;
    assert!(result.is_err(), "a hanging request answered");
    assert_eq!(outcomes(&sim), ["fault:hang"]);
    assert_eq!(sim.pending_faults(ID), 0);
    // The next request is answered.
    let answer = tokio::time::timeout(Duration::from_secs(1), call(&sim, &page(1)))
        .await
        .expect("answered");
    assert_eq!(ids(&answer).len(), 3);
}

#[tokio::test]
async fn fault_garbage_is_200_with_non_json_bytes() {
    let sim = sim_with_account();
    sim.push_faults(ID, [Fault::Garbage]);
    let (status, content_type, body) = raw(&sim, &page(1)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(&body[..], b"<html>502 Bad Gateway</html>\x00\xff");
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    assert_eq!(outcomes(&sim), ["fault:garbage"]);
}

#[tokio::test]
async fn fault_truncated_is_the_first_half_of_the_real_answer() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, traffic(25));
    sim.push_faults(ID, [Fault::Truncated]);
    let (status, content_type, cut) = raw(&sim, &page(2)).await;
    let (_, _, whole) = raw(&sim, &page(2)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert!(serde_json::from_slice::<Value>(&cut).is_err());
    assert!(serde_json::from_slice::<Value>(&whole).is_ok());
    assert_eq!(cut.len(), whole.len() / 2);
    // RequestId sorts after the package list, so the first half is the same text.
    assert!(whole.starts_with(&cut));
    assert!(!cut.ends_with(b"}"));
    assert_eq!(outcomes(&sim), ["fault:truncated", "ok"]);
}

#[tokio::test]
async fn fault_huge_streams_exactly_that_many_bytes_in_small_chunks() {
    const SIZE: usize = 20 * 1024 * 1024;
    let sim = sim_with_account();
    sim.push_faults(ID, [Fault::Huge(SIZE), Fault::Huge(5), Fault::Huge(0)]);

    let response = sim
        .router()
        .oneshot(page(1).build())
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(header::CONTENT_LENGTH).is_none());
    let mut body = response.into_body();
    let (mut total, mut chunks, mut largest) = (0usize, 0usize, 0usize);
    let mut head = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.expect("frame").into_data() else {
            continue;
        };
        if head.len() < 64 {
            head.extend_from_slice(&data);
        }
        total += data.len();
        chunks += 1;
        largest = largest.max(data.len());
    }
    assert_eq!(total, SIZE);
    assert!(largest <= 64 * 1024, "{largest}");
    assert!(chunks >= SIZE / (64 * 1024), "{chunks}");
    assert!(head.starts_with(br#"{"Response":{"RequestId":""#));

    let (status, _, body) = raw(&sim, &page(1)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], br#"{"Res"#);
    let (status, _, body) = raw(&sim, &page(1)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(outcomes(&sim), ["fault:huge"; 3]);
}

#[tokio::test]
async fn fault_api_error_uses_the_error_shape() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, traffic(3));
    let codes = [
        "InternalError",
        "RequestLimitExceeded",
        "AuthFailure.SignatureFailure",
        "ResourceNotFound.StopService",
    ];
    sim.push_faults(ID, codes.map(|c| Fault::ApiError(c.to_owned())));
    for code in codes {
        let answer = call(&sim, &page(1)).await;
        assert_eq!(error_code(&answer), Some(code));
        let r = answer["Response"].as_object().expect("object");
        assert_eq!(r.len(), 2, "{answer}");
        assert!(
            r["Error"]["Message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(r["RequestId"].as_str().is_some_and(|s| s.len() == 36));
    }
    assert_eq!(outcomes(&sim), codes);
}

#[tokio::test]
async fn fault_null_totals_applies_once() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, traffic(3));
    sim.push_faults(ID, [Fault::NullTotals]);
    let answer = call(&sim, &page(1)).await;
    assert_eq!(ids(&answer).len(), 3);
    for field in ["TotalPage", "TotalNum", "PageNum", "PageSize"] {
        assert!(
            answer["Response"].get(field).is_some_and(Value::is_null),
            "{field}"
        );
    }
    let answer = call(&sim, &page(1)).await;
    assert_eq!(answer["Response"]["TotalNum"], json!(3));
    assert_eq!(answer["Response"]["PageNum"], json!(1));
    assert_eq!(outcomes(&sim), ["ok", "ok"]);
}

#[tokio::test]
async fn fault_shrink_before_shifts_page_2_back() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, traffic(25));
    // Newest first: page 1 is p24..p15, page 2 would be p14..p05.
    let first = ids(&call(&sim, &page(1)).await);
    assert_eq!(first.first().map(String::as_str), Some("p24"));
    sim.push_faults(ID, [Fault::ShrinkBefore(3)]);
    let answer = call(&sim, &page(2)).await;
    assert_eq!(
        ids(&answer),
        [
            "p11", "p10", "p09", "p08", "p07", "p06", "p05", "p04", "p03", "p02"
        ]
    );
    assert_eq!(answer["Response"]["TotalNum"], json!(22));
    assert_eq!(answer["Response"]["TotalPage"], json!(3));
    // Permanent: the three newest are gone.
    assert_eq!(ids(&call(&sim, &page(1)).await)[0], "p21");
    // Front means first in the requested order.
    sim.push_faults(ID, [Fault::ShrinkBefore(1)]);
    let answer = call(
        &sim,
        &Req::new(json!({"PackageType": 0, "PageNum": 1, "PageSize": 10, "OrderBy": "BuyTimeAsc"})),
    )
    .await;
    assert_eq!(ids(&answer)[0], "p01");
    assert_eq!(answer["Response"]["TotalNum"], json!(21));
    // More than there is empties the list.
    sim.push_faults(ID, [Fault::ShrinkBefore(usize::MAX)]);
    let answer = call(&sim, &page(2)).await;
    assert!(ids(&answer).is_empty());
    assert_eq!(answer["Response"]["TotalNum"], json!(0));
    assert!(outcomes(&sim).iter().all(|o| o == "ok"));
}

#[tokio::test]
async fn fault_grow_before_repeats_page_1_ids_on_page_2() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, traffic(25));
    let first = ids(&call(&sim, &page(1)).await);
    sim.push_faults(ID, [Fault::GrowBefore(2)]);
    let answer = call(&sim, &page(2)).await;
    let second = ids(&answer);
    // The list grew by two at its front: page 2 starts with page 1's last two ids.
    assert_eq!(second[..2], first[8..]);
    assert_eq!(second[2], "p14");
    assert_eq!(answer["Response"]["TotalNum"], json!(27));
    // Page 1 now answers the copies of its first package first.
    assert_eq!(
        ids(&call(&sim, &page(1)).await)[..4],
        ["p24", "p24", "p24", "p23"]
    );
    // Growth on an empty list does nothing; huge growth is capped.
    sim.set_packages(ID, 1, Vec::new());
    sim.push_faults(ID, [Fault::GrowBefore(5)]);
    let answer = call(&sim, &Req::new(json!({"PackageType": 1}))).await;
    assert_eq!(answer["Response"]["TotalNum"], json!(0));
    sim.push_faults(ID, [Fault::GrowBefore(usize::MAX)]);
    let answer = call(&sim, &page(1)).await;
    assert_eq!(answer["Response"]["TotalNum"], json!(100_000));
    assert!(outcomes(&sim).iter().all(|o| o == "ok"));
}

#[tokio::test]
async fn queued_faults_apply_in_order_before_page_and_persistent_faults() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, traffic(25));
    sim.set_persistent_fault(ID, Some(Fault::Garbage));
    sim.set_page_fault(ID, 0, 2, Some(Fault::HttpStatus(502)));
    sim.push_faults(
        ID,
        [
            Fault::ApiError("InternalError".to_owned()),
            Fault::HttpStatus(429),
        ],
    );
    sim.push_faults(ID, [Fault::Truncated]);
    assert_eq!(sim.pending_faults(ID), 3);

    // Refused requests take no fault.
    let mut wrong_key = page(2);
    wrong_key.key = "not-the-key".to_owned();
    assert_eq!(
        error_code(&call(&sim, &wrong_key).await),
        Some("AuthFailure.SignatureFailure")
    );
    assert_eq!(
        error_code(&call(&sim, &Req::new(json!({"PackageType": 7}))).await),
        Some("InvalidParameterValue")
    );
    assert_eq!(sim.pending_faults(ID), 3);

    for _ in 0..3 {
        raw(&sim, &page(2)).await;
    }
    assert_eq!(sim.pending_faults(ID), 0);
    // Then the page fault on page 2, the persistent fault elsewhere.
    raw(&sim, &page(2)).await;
    raw(&sim, &page(1)).await;
    sim.set_page_fault(ID, 0, 2, None);
    raw(&sim, &page(2)).await;
    sim.set_persistent_fault(ID, None);
    raw(&sim, &page(2)).await;
    assert_eq!(
        outcomes(&sim),
        [
            "AuthFailure.SignatureFailure",
            "InvalidParameterValue",
            "InternalError",
            "fault:http_429",
            "fault:truncated",
            "fault:http_502",
            "fault:garbage",
            "fault:garbage",
            "ok"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn faulted_requests_count_toward_the_rate_limit() {
    let sim = sim_with_account();
    sim.set_rate_limit(2);
    sim.push_faults(
        ID,
        [Fault::HttpStatus(500), Fault::Garbage, Fault::NullTotals],
    );
    raw(&sim, &page(1)).await;
    raw(&sim, &page(1)).await;
    // The limiter refuses the third, which takes no fault.
    assert_eq!(
        error_code(&call(&sim, &page(1)).await),
        Some("RequestLimitExceeded")
    );
    assert_eq!(sim.pending_faults(ID), 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    let answer = call(&sim, &page(1)).await;
    assert!(answer["Response"]["TotalNum"].is_null());
    assert_eq!(
        outcomes(&sim),
        [
            "fault:http_500",
            "fault:garbage",
            "RequestLimitExceeded",
            "ok"
        ]
    );
}

#[tokio::test]
async fn page_faults_hit_only_their_page_and_query_type() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, traffic(25));
    sim.set_packages(ID, 1, vec![json!({"Id": "t"})]);
    sim.set_page_fault(ID, 0, 2, Some(Fault::ApiError("InternalError".to_owned())));
    sim.set_page_fault(ID, 0, 3, Some(Fault::NullTotals));
    sim.set_page_fault(ID, 1, 1, Some(Fault::HttpStatus(503)));
    // Ignored: bad query type or page number, unknown account.
    sim.set_page_fault(ID, 3, 1, Some(Fault::Hang));
    sim.set_page_fault(ID, 0, 0, Some(Fault::Hang));
    sim.set_page_fault(ID, 0, -1, Some(Fault::Hang));
    sim.set_page_fault("AKIDnobody", 0, 1, Some(Fault::Hang));

    for _ in 0..2 {
        assert_eq!(error_code(&call(&sim, &page(1)).await), None);
        assert_eq!(
            error_code(&call(&sim, &page(2)).await),
            Some("InternalError")
        );
        assert!(call(&sim, &page(3)).await["Response"]["TotalNum"].is_null());
        assert_eq!(ids(&call(&sim, &page(4)).await).len(), 0);
    }
    // Unpaged is page 1.
    let body = json!({"PackageType": 1});
    assert_eq!(raw(&sim, &Req::new(body.clone())).await.0, 503);
    let paged = json!({"PackageType": 1, "PageNum": 1, "PageSize": 10});
    assert_eq!(raw(&sim, &Req::new(paged)).await.0, 503);
    assert_eq!(
        ids(&call(&sim, &Req::new(json!({"PackageType": 2}))).await).len(),
        0
    );

    sim.set_page_fault(ID, 0, 2, None);
    assert_eq!(ids(&call(&sim, &page(2)).await).len(), 10);
    sim.set_page_fault(ID, 1, 1, None);
    assert_eq!(ids(&call(&sim, &Req::new(body)).await), ["t"]);
}

#[tokio::test]
async fn persistent_fault_applies_until_cleared_and_add_account_resets_faults() {
    let sim = sim_with_account();
    sim.add_account("AKIDother", "other-key");
    sim.set_persistent_fault(
        ID,
        Some(Fault::ApiError("ResourceNotFound.StopService".to_owned())),
    );
    for _ in 0..3 {
        assert_eq!(
            error_code(&call(&sim, &page(1)).await),
            Some("ResourceNotFound.StopService")
        );
    }
    // Other accounts are not affected.
    let mut other = page(1);
    other.id = "AKIDother".to_owned();
    other.key = "other-key".to_owned();
    assert_eq!(error_code(&call(&sim, &other).await), None);
    sim.set_persistent_fault(ID, None);
    assert_eq!(error_code(&call(&sim, &page(1)).await), None);

    // Unknown accounts: ignored, nothing pending.
    sim.push_faults("AKIDnobody", [Fault::Hang]);
    sim.set_persistent_fault("AKIDnobody", Some(Fault::Hang));
    sim.set_random_faults("AKIDnobody", 1.0, 1);
    assert_eq!(sim.pending_faults("AKIDnobody"), 0);

    // add_account resets the account, faults included.
    sim.push_faults(ID, [Fault::Hang, Fault::Garbage]);
    sim.set_persistent_fault(ID, Some(Fault::Garbage));
    sim.set_page_fault(ID, 0, 1, Some(Fault::Garbage));
    sim.set_random_faults(ID, 1.0, 7);
    sim.add_account(ID, KEY);
    assert_eq!(sim.pending_faults(ID), 0);
    assert_eq!(error_code(&call(&sim, &page(1)).await), None);
}

/// One request's observable shape, for comparing runs.
async fn shape(sim: &Simulator, req: &Req) -> String {
    let (status, _, body) = raw(sim, req).await;
    match serde_json::from_slice::<Value>(&body) {
        Err(_) if body == GARBAGE_BODY => format!("{status} garbage"),
        Err(_) => format!("{status} not-json {}", body.len()),
        Ok(answer) => match error_code(&answer) {
            Some(code) => format!("{status} {code}"),
            None => format!(
                "{status} total {} ids {}",
                answer["Response"]["TotalNum"],
                ids(&answer).len()
            ),
        },
    }
}

#[tokio::test]
async fn random_faults_are_deterministic_per_seed_and_respect_the_probability() {
    async fn run(seed: u64, n: usize, probability: f64) -> Vec<String> {
        let sim = sim_with_account();
        sim.set_rate_limit(u32::MAX);
        // 13 packages: page 2 lists 3, or 4 when shifted back by one.
        sim.set_packages(ID, 0, traffic(13));
        sim.set_random_faults(ID, probability, seed);
        let mut shapes = Vec::with_capacity(n);
        for _ in 0..n {
            shapes.push(shape(&sim, &page(2)).await);
        }
        // Never Hang or Huge, and the log agrees with the answers.
        let log = outcomes(&sim);
        assert!(log.iter().all(|o| o != "fault:hang" && o != "fault:huge"));
        assert_eq!(log.len(), n);
        shapes
    }
    let a = run(42, 1000, 0.3).await;
    assert_eq!(a, run(42, 1000, 0.3).await);
    assert_ne!(a[..100], run(43, 100, 0.3).await[..]);

    // Count faults: anything but a 200 JSON answer with the total and page 2's three ids.
    let clean = "200 OK total 13 ids 3";
    let mut faults = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for s in &a {
        if s == clean {
            continue;
        }
        faults += 1;
        if s == "200 OK total 13 ids 4" {
            kinds.insert("shift".to_owned());
        } else {
            kinds.insert(s.split(' ').take(3).collect::<Vec<_>>().join(" "));
        }
    }
    assert!((200..=400).contains(&faults), "{faults} faults");
    assert_eq!(kinds.len(), 8, "{kinds:?}");

    assert!(run(1, 200, 0.0).await.iter().all(|s| s == clean));
    assert!(run(1, 200, f64::NAN).await.iter().all(|s| s == clean));
    assert!(run(1, 200, 5.0).await.iter().all(|s| s != clean));
}

#[test]
fn random_fault_draws_cover_the_menu_at_the_asked_rate() {
    let mut random = RandomFaults {
        probability: 0.3,
        rng: SplitMix64(7),
    };
    let draws: Vec<Fault> = (0..10_000).filter_map(|_| random.draw()).collect();
    assert!((2_700..=3_300).contains(&draws.len()), "{}", draws.len());
    for kind in 0..8 {
        let fault = Fault::random(kind);
        let n = draws.iter().filter(|f| **f == fault).count();
        assert!((250..=500).contains(&n), "{fault:?}: {n}");
    }
    assert!(
        !draws
            .iter()
            .any(|f| matches!(f, Fault::Hang | Fault::Huge(_)))
    );
}

#[tokio::test]
async fn hang_is_let_go_when_serve_shuts_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sim = sim_with_account();
    sim.push_faults(ID, [Fault::Hang]);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(sim.clone().serve(listener, shutdown.clone()));

    let mut req = Req::new(json!({"PackageType": 0}));
    req.host = addr.to_string();
    let input = sign::SigningInput {
        host: &req.host,
        content_type: req.content_type,
        service: "live",
        timestamp: req.timestamp,
        body: req.body.as_bytes(),
    };
    let raw_request = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nX-TC-Action: {ACTION}\r\nX-TC-Version: {VERSION}\r\nX-TC-Timestamp: {}\r\nAuthorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        req.host,
        req.timestamp,
        sign::authorization(ID, KEY, &input),
        req.body.len(),
        req.body
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(raw_request.as_bytes())
        .await
        .expect("write");
    let mut response = String::new();
    let read = tokio::time::timeout(
        Duration::from_millis(300),
        stream.read_to_string(&mut response),
    )
    .await;
    assert!(read.is_err(), "answered: {response}");
    assert_eq!(outcomes(&sim), ["fault:hang"]);

    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .expect("task");
    assert!(result.is_ok());
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
}

#[tokio::test(start_paused = true)]
async fn fault_shift_back_repeats_the_previous_pages_last_ids_with_the_totals_unchanged() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, traffic(20));
    let normal = call(&sim, &page(2)).await;
    sim.push_faults(ID, [Fault::ShiftBack(1)]);
    let shifted = call(&sim, &page(2)).await;
    let (normal_ids, shifted_ids) = (ids(&normal), ids(&shifted));
    assert_eq!(shifted_ids.len(), 10);
    // Page 1's last id comes again; page 2's last id is never listed.
    assert_eq!(shifted_ids[0], ids(&call(&sim, &page(1)).await)[9]);
    assert_eq!(shifted_ids[1..], normal_ids[..9]);
    assert!(!shifted_ids.contains(&normal_ids[9]));
    for field in ["TotalNum", "TotalPage"] {
        assert_eq!(shifted["Response"][field], normal["Response"][field]);
    }
    assert_eq!(outcomes(&sim), ["ok", "ok", "ok"]);
}

#[tokio::test(start_paused = true)]
async fn fault_empty_page_lists_nothing_but_keeps_the_totals() {
    let sim = sim_with_account();
    sim.set_packages(ID, 0, traffic(9));
    sim.push_faults(ID, [Fault::EmptyPage]);
    let answer = call(&sim, &page(1)).await;
    assert!(ids(&answer).is_empty());
    assert_eq!(answer["Response"]["TotalNum"], 9);
    assert_eq!(
        ids(&call(&sim, &page(1)).await).len(),
        9,
        "this request only"
    );
}

#[tokio::test(start_paused = true)]
async fn latency_and_arrival_delay_move_the_counted_arrival() {
    let sim = sim_with_account();
    sim.set_latency(Duration::from_millis(300));
    let start = Instant::now();
    call(&sim, &page(1)).await;
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    assert_eq!(
        sim.requests()[0].at.duration_since(start),
        Duration::from_millis(150),
        "arrives after half the round trip"
    );

    // Random arrival delays: 40 requests sent 50 ms apart (20 per second) bunch up at the server,
    // which counts arrivals and refuses beyond its limit.
    sim.set_latency(Duration::ZERO);
    sim.set_arrival_delay(Duration::from_millis(400), 7);
    sim.clear_requests();
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let sim = sim.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50 * i)).await;
            let sent = Instant::now();
            call(&sim, &page(1)).await;
            sent
        }));
    }
    let mut sent = Vec::new();
    for t in tasks {
        sent.push(t.await.unwrap());
    }
    let log = sim.requests();
    let arrivals: Vec<Instant> = log.iter().map(|r| r.at).collect();
    assert!(
        crate::poll::budget::max_in_any_window(&sent, Duration::from_secs(1)) <= 20,
        "sent at 20 per second"
    );
    let worst = crate::poll::budget::max_in_any_window(&arrivals, Duration::from_secs(1));
    let refused = log
        .iter()
        .filter(|r| r.outcome == "RequestLimitExceeded")
        .count();
    assert!(worst > 20, "the delays bunch arrivals: {worst}");
    assert!(refused > 0, "and the server refuses the excess");
    let accepted: Vec<Instant> = log
        .iter()
        .filter(|r| r.outcome == "ok")
        .map(|r| r.at)
        .collect();
    assert!(crate::poll::budget::max_in_any_window(&accepted, Duration::from_secs(1)) <= 20);
}
