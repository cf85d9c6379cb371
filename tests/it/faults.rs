//! Fault injection: one test per fault, the real exporter against the simulator, in process with
//! paused time (timeouts and backoffs pass instantly and exactly). Each test asserts that the
//! process lives and keeps answering, that `up` and the error counters tell the truth, that the
//! last good values stay (or expire on time), and that the next good poll restores everything.

use std::time::Duration;

use serde_json::{Value, json};
use tencent_live_exporter::tencent::budget::max_in_any_window;
use tencent_live_simulator::{Fault, Simulator};

use crate::support::{Account, Harness, Logs, Samples};

const F: Account = (
    "faulty",
    "AKIDfaulty00000000000000000000000000",
    "faulty-key",
);
const G: Account = ("good", "AKIDgood0000000000000000000000000000", "good-key");

/// Page size 10, 25 traffic packages: three pages. Short deadline and backoff so that a fault's
/// retries fit in a few virtual seconds.
const POLL: &str = "page_size = 10\ntimeout = \"2s\"\nmax_retries = 2\nbackoff_base = \"100ms\"\nbackoff_max = \"1s\"\nrequests_per_second = 5\npackage_types = [\"traffic\"]\ninterval = \"5m\"";

fn package(i: usize) -> Value {
    json!({"Id": format!("p{i:02}"), "Type": 0, "Status": 1, "Total": 1000 + i, "Used": i, "Left": 1000,
           "BuyTime": "2026-01-01 00:00:00", "ExpireTime": "2099-01-01 00:00:00", "WillRenew": 0, "RenewalResult": 0})
}

/// Series of one of these packages: quota, used, remaining, expiry, purchase, auto-renew,
/// renewal result and usable-ahead (all usable: in use, Left > 0, expiring in 2099).
const SERIES_PER_PACKAGE: usize = 8;

fn sim() -> Simulator {
    let sim = Simulator::new();
    for (_, id, key) in [F, G] {
        sim.add_account(id, key);
        sim.set_packages(id, 0, (0..25).map(package).collect());
    }
    sim
}

/// A harness after its first, healthy poll, and the package series of that poll.
async fn healthy() -> (Harness, Samples) {
    let h = Harness::in_process(sim(), &[F, G], POLL);
    h.first_polls().await;
    let m = h.scrape().await;
    assert_eq!(m.value(&up("faulty")), 1.0);
    assert_eq!(packages(&m, "faulty").len(), 25 * SERIES_PER_PACKAGE);
    (h, m)
}

fn up(account: &str) -> String {
    format!(r#"tencent_live_up{{account="{account}",package_type="traffic"}}"#)
}

fn errors(account: &str, code: &str) -> String {
    format!(
        r#"tencent_live_exporter_api_request_errors_total{{account="{account}",code="{code}"}}"#
    )
}

/// The package series of an account, as (series, value).
fn packages(m: &Samples, account: &str) -> Vec<(String, f64)> {
    m.0.iter()
        .filter(|(k, _)| {
            k.starts_with("tencent_live_package_")
                && k.contains(&format!(
                    "account=\"{account}\",package_type=\"traffic\",package_id="
                ))
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn calls(sim: &Simulator, account: &Account) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.secret_id.as_deref() == Some(account.1))
        .count()
}

/// The fault made the poll fail: `up` 0, the error counted, the last good list intact, the other
/// account untouched; then the fault clears and the next poll restores exactly the old series.
async fn fails_then_recovers(h: &Harness, before: &Samples, code: &str, expected_errors: f64) {
    let m = h.scrape().await;
    assert_eq!(m.value(&up("faulty")), 0.0, "{code}");
    assert_eq!(m.value(&errors("faulty", code)), expected_errors, "{code}");
    assert_eq!(
        packages(&m, "faulty"),
        packages(before, "faulty"),
        "{code}: last good values stay"
    );
    assert_eq!(m.value(&up("good")), 1.0);
    assert_eq!(packages(&m, "good"), packages(before, "good"));
    let (status, _) = h.call("GET", "/healthz").await;
    assert_eq!(status, 200);

    h.sim.set_persistent_fault(F.1, None);
    h.poll_now().await;
    let m = h.scrape().await;
    assert_eq!(m.value(&up("faulty")), 1.0, "{code}: recovered");
    assert_eq!(
        packages(&m, "faulty"),
        packages(before, "faulty"),
        "{code}: restored exactly"
    );
}

#[tokio::test(start_paused = true)]
async fn http_500_is_retried_then_fails_the_poll() {
    let (h, before) = healthy().await;
    h.sim
        .set_persistent_fault(F.1, Some(Fault::HttpStatus(500)));
    let c0 = calls(&h.sim, &F);
    h.poll_now().await;
    assert_eq!(calls(&h.sim, &F) - c0, 3, "first try and two retries");
    fails_then_recovers(&h, &before, "http_500", 3.0).await;
}

#[tokio::test(start_paused = true)]
async fn a_hung_connection_hits_the_deadline() {
    let (h, before) = healthy().await;
    h.sim.set_persistent_fault(F.1, Some(Fault::Hang));
    let started = tokio::time::Instant::now();
    h.poll_now().await;
    let took = started.elapsed();
    // Three tries of 2 s each plus at most 1 s + 1 s of backoff.
    assert!(
        took >= Duration::from_secs(6) && took <= Duration::from_secs(9),
        "{took:?}"
    );
    fails_then_recovers(&h, &before, "timeout", 3.0).await;
}

#[tokio::test(start_paused = true)]
async fn garbage_bytes_are_a_decode_error() {
    let (h, before) = healthy().await;
    h.sim.set_persistent_fault(F.1, Some(Fault::Garbage));
    h.poll_now().await;
    fails_then_recovers(&h, &before, "decode", 3.0).await;
}

#[tokio::test(start_paused = true)]
async fn truncated_json_is_a_decode_error() {
    let (h, before) = healthy().await;
    h.sim.set_persistent_fault(F.1, Some(Fault::Truncated));
    h.poll_now().await;
    fails_then_recovers(&h, &before, "decode", 3.0).await;
}

#[tokio::test(start_paused = true)]
async fn a_huge_body_is_refused_and_not_retried() {
    let (h, before) = healthy().await;
    h.sim
        .set_persistent_fault(F.1, Some(Fault::Huge(20 * 1024 * 1024)));
    let c0 = calls(&h.sim, &F);
    h.poll_now().await;
    assert_eq!(calls(&h.sim, &F) - c0, 1);
    fails_then_recovers(&h, &before, "response_too_large", 1.0).await;
}

#[tokio::test(start_paused = true)]
async fn a_page_failing_mid_list_exposes_nothing_of_that_attempt() {
    let (h, before) = healthy().await;
    // The list changes, and page 3 fails: none of the new page 1 and 2 may show.
    h.sim.set_packages(
        F.1,
        0,
        (0..25)
            .map(|i| {
                let mut p = package(i);
                p["Used"] = json!(999);
                p
            })
            .collect(),
    );
    h.sim
        .set_page_fault(F.1, 0, 3, Some(Fault::ApiError("FailedOperation".into())));
    h.poll_now().await;
    let m = h.scrape().await;
    assert_eq!(m.value(&up("faulty")), 0.0);
    assert_eq!(
        packages(&m, "faulty"),
        packages(&before, "faulty"),
        "never half a list"
    );
    h.sim.set_page_fault(F.1, 0, 3, None);
    h.poll_now().await;
    let m = h.scrape().await;
    assert!(
        packages(&m, "faulty")
            .iter()
            .filter(|(k, _)| k.starts_with("tencent_live_package_used_bytes"))
            .all(|(_, v)| *v == 999.0)
    );
}

#[tokio::test(start_paused = true)]
async fn internal_error_is_retried_and_a_retry_that_succeeds_keeps_up() {
    let (h, _) = healthy().await;
    h.sim
        .push_faults(F.1, [Fault::ApiError("InternalError".into())]);
    h.poll_now().await;
    let m = h.scrape().await;
    assert_eq!(m.value(&up("faulty")), 1.0);
    assert_eq!(m.value(&errors("faulty", "InternalError")), 1.0);
    assert_eq!(packages(&m, "faulty").len(), 25 * SERIES_PER_PACKAGE);
}

#[tokio::test(start_paused = true)]
async fn a_request_limit_storm_never_raises_the_call_rate() {
    let (h, before) = healthy().await;
    h.sim.clear_requests();
    h.sim
        .set_persistent_fault(F.1, Some(Fault::ApiError("RequestLimitExceeded".into())));
    // Several polls of a storm, with the other account polling at the same time.
    for _ in 0..5 {
        h.poll_now().await;
    }
    let log = h.sim.requests();
    let times: Vec<_> = log
        .iter()
        .filter(|r| r.secret_id.as_deref() == Some(F.1))
        .map(|r| r.at)
        .collect();
    let peak = max_in_any_window(&times, Duration::from_secs(1));
    eprintln!(
        "RequestLimitExceeded storm: {} calls, at most {peak} in any second (budget 5)",
        times.len()
    );
    assert!(peak <= 5, "{peak} calls in one second");
    assert_eq!(times.len(), 15, "5 polls x (1 + 2 retries)");
    fails_then_recovers(&h, &before, "RequestLimitExceeded", 15.0).await;
}

#[tokio::test(start_paused = true)]
async fn auth_failure_is_not_retried_and_logged_once_per_change() {
    let (logs, _guard) = Logs::capture(tracing::Level::INFO);

    let (h, before) = healthy().await;
    h.sim.set_persistent_fault(
        F.1,
        Some(Fault::ApiError("AuthFailure.SignatureFailure".into())),
    );
    let c0 = calls(&h.sim, &F);
    for _ in 0..3 {
        h.poll_now().await;
    }
    assert_eq!(
        calls(&h.sim, &F) - c0,
        3,
        "one call per poll: never retried"
    );
    let text = logs.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("AuthFailure.SignatureFailure"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "logged once per change of state:\n{text}"
    );
    assert!(
        warnings[0].contains("request_id="),
        "with the RequestId: {}",
        warnings[0]
    );
    assert!(!text.contains(F.2), "the secret key never reaches the logs");
    fails_then_recovers(&h, &before, "AuthFailure.SignatureFailure", 3.0).await;
    assert!(logs.text().contains("polling recovered"));
}

#[tokio::test(start_paused = true)]
async fn a_stopped_service_is_not_retried() {
    let (h, before) = healthy().await;
    h.sim.set_persistent_fault(
        F.1,
        Some(Fault::ApiError("ResourceNotFound.StopService".into())),
    );
    let c0 = calls(&h.sim, &F);
    h.poll_now().await;
    assert_eq!(calls(&h.sim, &F) - c0, 1);
    fails_then_recovers(&h, &before, "ResourceNotFound.StopService", 1.0).await;
}

#[tokio::test(start_paused = true)]
async fn null_totals_still_read_every_page() {
    let (h, before) = healthy().await;
    h.sim.set_persistent_fault(F.1, Some(Fault::NullTotals));
    let c0 = calls(&h.sim, &F);
    h.poll_now().await;
    assert_eq!(
        calls(&h.sim, &F) - c0,
        3,
        "10 + 10 + 5: the short page ends it"
    );
    let m = h.scrape().await;
    assert_eq!(m.value(&up("faulty")), 1.0);
    assert_eq!(packages(&m, "faulty"), packages(&before, "faulty"));
}

fn quota_ids(m: &Samples, account: &str) -> Vec<String> {
    packages(m, account)
        .iter()
        .filter(|(k, _)| k.starts_with("tencent_live_package_quota_bytes"))
        .map(|(k, _)| {
            k.split("package_id=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// `GrowBefore(0)` changes nothing: it lets a queued fault reach the second request of a poll.
const PASS: Fault = Fault::GrowBefore(0);

#[tokio::test(start_paused = true)]
async fn a_list_that_shrinks_mid_read_is_read_again() {
    let (h, _) = healthy().await;
    // Before page 2 is answered, the first five packages go: page 2 would skip p10..p14.
    h.sim.push_faults(F.1, [PASS, Fault::ShrinkBefore(5)]);
    let c0 = calls(&h.sim, &F);
    h.poll_now().await;
    assert_eq!(
        calls(&h.sim, &F) - c0,
        3 + 2,
        "three pages (asked for together), then the list read again: two pages"
    );
    let m = h.scrape().await;
    assert_eq!(m.value(&up("faulty")), 1.0);
    let expected: Vec<String> = (5..25).map(|i| format!("p{i:02}")).collect();
    assert_eq!(
        quota_ids(&m, "faulty"),
        expected,
        "a complete, consistent list: nothing skipped"
    );
}

#[tokio::test(start_paused = true)]
async fn a_list_that_keeps_shifting_keeps_the_previous_one() {
    let (h, before) = healthy().await;
    // Every read of page 2 shrinks the list again: three reads disagree, the poll fails.
    h.sim
        .set_page_fault(F.1, 0, 2, Some(Fault::ShrinkBefore(1)));
    h.poll_now().await;
    h.sim.set_page_fault(F.1, 0, 2, None);
    let m = h.scrape().await;
    assert_eq!(m.value(&up("faulty")), 0.0);
    assert_eq!(
        packages(&m, "faulty"),
        packages(&before, "faulty"),
        "never half a list"
    );
    h.poll_now().await;
    let m = h.scrape().await;
    assert_eq!(m.value(&up("faulty")), 1.0);
    assert_eq!(
        quota_ids(&m, "faulty").len(),
        22,
        "three packages went, one per read"
    );
}

#[tokio::test(start_paused = true)]
async fn a_list_that_names_one_id_twice_is_incomplete_and_keeps_the_previous_one() {
    let (h, before) = healthy().await;
    // The API lists one package twice: whatever was read, it is not the list TotalNum counts.
    let mut list: Vec<Value> = (0..25).map(package).collect();
    list.push(package(3));
    h.sim.set_packages(F.1, 0, list);
    h.poll_now().await;
    let m = h.scrape().await; // Samples::parse fails on any duplicate series.
    assert_eq!(m.value(&up("faulty")), 0.0);
    assert_eq!(packages(&m, "faulty"), packages(&before, "faulty"));
    assert_eq!(
        m.value(r#"tencent_live_exporter_list_rereads_total{account="faulty",package_type="traffic",reason="duplicate_ids"}"#),
        2.0
    );
}

#[tokio::test(start_paused = true)]
async fn bad_field_values_skip_the_field_not_the_package() {
    let (h, _) = healthy().await;
    let mut list: Vec<Value> = (0..24).map(package).collect();
    list.push(json!({"Id": "odd", "Type": 0, "Status": 77, "Total": -5, "Used": "12", "Left": 1e300,
                     "BuyTime": "not a time", "ExpireTime": "2027-01-01 00:00:00", "WillRenew": null, "Extra": [1, 2]}));
    h.sim.set_packages(F.1, 0, list);
    h.poll_now().await;
    let m = h.scrape().await;
    assert_eq!(m.value(&up("faulty")), 1.0);
    let odd = |metric: &str| {
        format!(
            r#"tencent_live_package_{metric}{{account="faulty",package_type="traffic",package_id="odd",status="77"}}"#
        )
    };
    assert_eq!(m.get(&odd("quota_bytes")), None);
    assert_eq!(m.get(&odd("purchase_timestamp_seconds")), None);
    assert_eq!(m.value(&odd("expiry_timestamp_seconds")), 1_798_732_800.0);
    for field in ["Total", "Used", "Left", "BuyTime"] {
        let series = format!(
            r#"tencent_live_exporter_invalid_fields_total{{account="faulty",field="{field}"}}"#
        );
        assert_eq!(m.value(&series), 1.0, "{field}");
    }
}

#[tokio::test(start_paused = true)]
async fn package_series_expire_on_time_and_come_back() {
    let (h, before) = healthy().await;
    let last_success = before.value(r#"tencent_live_exporter_last_success_timestamp_seconds{account="faulty",package_type="traffic"}"#);
    h.sim
        .set_persistent_fault(F.1, Some(Fault::HttpStatus(503)));
    // max_staleness = 3 x 5m. Polls keep failing on schedule.
    tokio::time::sleep(Duration::from_secs(14 * 60)).await;
    let m = h.scrape().await;
    assert_eq!(m.value(&up("faulty")), 0.0);
    assert_eq!(
        packages(&m, "faulty").len(),
        25 * SERIES_PER_PACKAGE,
        "not stale yet at 14m"
    );
    tokio::time::sleep(Duration::from_secs(61)).await;
    let m = h.scrape().await;
    assert!(
        packages(&m, "faulty").is_empty(),
        "stale after 15m: series gone"
    );
    assert_eq!(m.value(&up("faulty")), 0.0);
    assert_eq!(m.value(r#"tencent_live_exporter_last_success_timestamp_seconds{account="faulty",package_type="traffic"}"#), last_success);
    assert_eq!(
        packages(&m, "good").len(),
        25 * SERIES_PER_PACKAGE,
        "the healthy account stays"
    );
    fails_then_recovers_after_staleness(&h, &before).await;
}

async fn fails_then_recovers_after_staleness(h: &Harness, before: &Samples) {
    h.sim.set_persistent_fault(F.1, None);
    h.poll_now().await;
    let m = h.scrape().await;
    assert_eq!(m.value(&up("faulty")), 1.0);
    assert_eq!(packages(&m, "faulty"), packages(before, "faulty"));
}

#[tokio::test(start_paused = true)]
async fn a_refused_timestamp_says_the_clock_is_off() {
    let (logs, _guard) = Logs::capture(tracing::Level::WARN);
    let (h, before) = healthy().await;
    h.sim.set_persistent_fault(
        F.1,
        Some(Fault::ApiError("AuthFailure.SignatureExpire".into())),
    );
    h.poll_now().await;
    let text = logs.text();
    assert!(
        text.lines()
            .any(|l| l.contains("AuthFailure.SignatureExpire") && l.contains("clock")),
        "the warning names the host clock:\n{text}"
    );
    fails_then_recovers(&h, &before, "AuthFailure.SignatureExpire", 1.0).await;
}

#[tokio::test(start_paused = true)]
async fn first_polls_of_many_accounts_are_spread_not_fired_at_once() {
    const MANY: [Account; 4] = [
        ("m0", "AKIDmany0000000000000000000000000000", "k0"),
        ("m1", "AKIDmany1000000000000000000000000000", "k1"),
        ("m2", "AKIDmany2000000000000000000000000000", "k2"),
        ("m3", "AKIDmany3000000000000000000000000000", "k3"),
    ];
    let sim = Simulator::new();
    for (_, id, key) in MANY {
        sim.add_account(id, key);
    }
    let start = tokio::time::Instant::now();
    let h = Harness::in_process(sim, &MANY, "package_types = [\"traffic\"]");
    h.first_polls().await;
    let log = h.sim.requests();
    let firsts: Vec<Duration> = MANY
        .iter()
        .map(|(_, id, _)| {
            log.iter()
                .find(|r| r.secret_id.as_deref() == Some(*id))
                .unwrap()
                .at
                .duration_since(start)
        })
        .collect();
    let spread = tencent_live_exporter::poll::scheduler::FIRST_POLL_SPREAD;
    for (i, at) in firsts.iter().enumerate() {
        assert!(
            *at >= spread * i as u32 && *at < spread * (i as u32 + 1),
            "account {i} first polled at {at:?}"
        );
    }
}

/// A 3xx from the API endpoint is an answer, not a hop: the signed request (and its credentials)
/// never goes to the host it names, and that host's answer is never taken. Over loopback: a tiny
/// server answers every request with 302 to the real simulator.
#[tokio::test]
async fn redirects_from_the_api_endpoint_are_not_followed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let sim = sim();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_url = format!("http://{}/", sim_listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(sim_listener, shutdown.clone()));
    let redirector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirector_url = format!("http://{}", redirector.local_addr().unwrap());
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn({
        let hits = hits.clone();
        async move {
            while let Ok((mut conn, _)) = redirector.accept().await {
                hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {sim_url}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                tokio::spawn(async move {
                    let mut buf = [0u8; 16 * 1024];
                    let _ = conn.read(&mut buf).await;
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        }
    });
    let path = std::env::temp_dir().join(format!("tle-redirect-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        crate::support::config_toml(
            &[G],
            &redirector_url,
            "max_retries = 0\npackage_types = [\"traffic\"]",
        ),
    )
    .unwrap();
    let config = tencent_live_exporter::config::load(
        Some(&path),
        &tencent_live_exporter::config::Overrides::default(),
        Default::default(),
    )
    .unwrap();
    let transport =
        tencent_live_exporter::tencent::transport::Transport::http(config.poll.timeout).unwrap();
    let exporter = tencent_live_exporter::app::Exporter::start_with(
        &config,
        shutdown.clone(),
        transport,
        None,
    );
    tokio::time::timeout(crate::support::PATIENCE, exporter.wait_for_polls(1))
        .await
        .expect("the poll ends");
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert!(sim.requests().is_empty(), "the redirect was followed");
    assert!(!exporter.all_up());
    let m =
        Samples::parse(std::str::from_utf8(&exporter.store().exposition().text.to_vec()).unwrap());
    assert_eq!(
        m.value(r#"tencent_live_up{account="good",package_type="traffic"}"#),
        0.0
    );
    assert!(
        m.with_prefix(
            r#"tencent_live_exporter_api_request_errors_total{account="good",code="http_302""#
        )
        .iter()
        .any(|(_, v)| **v >= 1.0),
        "{}",
        m.dump()
    );
    exporter.stop().await;
    shutdown.cancel();
}
