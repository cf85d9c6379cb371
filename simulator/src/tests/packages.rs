//! The packages the simulator serves: the example, the demo, draining, the log, upserts, TCP.

use super::*;

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

    // Billing: polls alone use nothing; the first bill (50 s into a 120 s day) takes a day of
    // traffic (43.2 GB), used up the in-use package (3 GB) and hands over to the queued one.
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
    let mut demo = crate::Demo::new(
        (ID, KEY),
        None,
        time::OffsetDateTime::now_utc(),
        Duration::from_secs(120),
    );
    assert_eq!(demo.advance(Duration::ZERO), 0);
    assert_eq!(demo.advance(Duration::from_secs(50)), 1, "the first bill");
    let sim = demo.simulator();
    let billed = traffic(call(sim, &Req::new(json!({"PackageType": 0}))).await);
    assert_eq!(package(&billed, "demo-flux-low"), Some((Some(4), Some(0))));
    assert_eq!(
        package(&billed, "demo-flux-main"),
        Some((Some(1), Some(1_000_000_000_000 - 40_200_000_000)))
    );
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
