//! Fault injection.

use super::*;

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
        max_in_any_window(&sent, Duration::from_secs(1)) <= 20,
        "sent at 20 per second"
    );
    let worst = max_in_any_window(&arrivals, Duration::from_secs(1));
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
    assert!(max_in_any_window(&accepted, Duration::from_secs(1)) <= 20);
}
