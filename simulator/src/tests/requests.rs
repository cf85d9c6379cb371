//! The simulator's checks of a request: paging, signatures, parameters, ordering, rate limit.

use super::*;

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
    // t=1.0 s: they left it; the two refused arrivals (t=0.6 s, t=0.999 s) still count, as
    // Tencent counts every arrival, so exactly 8 fit.
    tokio::time::advance(Duration::from_millis(1)).await;
    for _ in 0..8 {
        assert_eq!(outcome(&call(&sim, &Req::new(body.clone())).await), "ok");
    }
    assert_eq!(
        outcome(&call(&sim, &Req::new(body.clone())).await),
        "RequestLimitExceeded"
    );

    let log = sim.requests();
    assert_eq!(log.len(), 32);
    assert_eq!(
        log.iter()
            .filter(|r| r.outcome == "RequestLimitExceeded")
            .count(),
        3
    );
    let start = log[0].at;
    assert_eq!(
        log[31].at.duration_since(start),
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
