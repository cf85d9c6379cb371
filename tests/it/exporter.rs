//! The daemon end to end: two accounts, several pages, every package Type, exact values; then
//! changes on the API side show up on the next poll, and a failing account keeps its last good
//! series without touching the other.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tencent_live_exporter::tencent::budget::max_in_any_window;
use tencent_live_simulator::Simulator;

use crate::support::{Harness, PATIENCE, Samples, run};

const ALPHA: (&str, &str, &str) = (
    "alpha",
    "AKIDalpha0000000000000000000000000",
    "alpha-secret-key",
);
const BETA: (&str, &str, &str) = (
    "beta",
    "AKIDbeta00000000000000000000000000",
    "beta-secret-key",
);

fn traffic(i: u64) -> Value {
    json!({
        "Id": format!("f{i}"), "Type": 0, "Status": 1,
        "Total": 1000 * (i + 1), "Used": i, "Left": 1000 * (i + 1) - i,
        "BuyTime": "2026-01-15 09:30:00", "ExpireTime": "2027-03-01 12:00:00",
        "WillRenew": 1, "RenewalResult": 0
    })
}

fn co_anchoring(id: &str) -> Value {
    json!({"Id": id, "Type": 3, "Status": 1, "Total": 10, "Used": 1, "Left": 9,
           "BuyTime": "2026-01-15 09:30:00", "ExpireTime": "2027-03-01 12:00:00",
           "WillRenew": null, "RenewalResult": null})
}

fn simulator() -> Simulator {
    let sim = Simulator::new();
    sim.add_account(ALPHA.1, ALPHA.2);
    sim.add_account(BETA.1, BETA.2);
    // alpha: 25 traffic packages = 3 pages of 10; both transcode Types; co-anchoring.
    sim.set_packages(ALPHA.1, 0, (0..25).map(traffic).collect());
    sim.set_bill_modes(ALPHA.1, 0, json!(202), json!("201,202,203,204,205"));
    sim.set_packages(
        ALPHA.1,
        1,
        vec![
            json!({"Id": "tc1", "Type": 1, "Status": 1, "Total": 100, "Used": 40, "Left": 60,
                   "BuyTime": "2026-01-15 09:30:00", "ExpireTime": "2027-03-01 12:00:00", "WillRenew": 0, "RenewalResult": 1}),
            json!({"Id": "ts1", "Type": 2, "Status": 4, "Total": 50, "Used": 50, "Left": 0,
                   "BuyTime": "2026-01-15 09:30:00", "ExpireTime": "2027-03-01 12:00:00", "WillRenew": 0, "RenewalResult": -1}),
        ],
    );
    sim.set_packages(ALPHA.1, 2, vec![co_anchoring("ca1")]);
    // beta: the API page's example answer, no transcode packages, 12 co-anchoring packages,
    // and null TotalPage/TotalNum throughout: paging must stop at the short page.
    sim.set_packages(BETA.1, 0, Simulator::example_response_packages());
    sim.set_packages(
        BETA.1,
        2,
        (0..12).map(|i| co_anchoring(&format!("cb{i}"))).collect(),
    );
    sim.set_null_totals(BETA.1, true);
    sim
}

fn pkg(metric: &str, account: &str, kind: &str, id: &str, status: &str) -> String {
    format!(
        r#"tencent_live_package_{metric}{{account="{account}",package_type="{kind}",package_id="{id}",status="{status}"}}"#
    )
}

fn pair(metric: &str, account: &str, query: &str) -> String {
    format!(r#"{metric}{{account="{account}",package_type="{query}"}}"#)
}

// In process under paused time: the values, paging and call counts are the point, not the
// sockets (`health_landing_and_content_type_over_http` serves over HTTP; the client over HTTP is
// in `faults` and `credentials::failures`), and the one-second publish period passes at once.
#[tokio::test(start_paused = true)]
async fn two_accounts_every_type_exact_values_then_changes_on_the_next_poll() {
    let h = Harness::in_process(simulator(), &[ALPHA, BETA], "page_size = 10");
    h.first_polls().await;
    let m = h.scrape().await;

    // Every pair up, with its bill mode.
    for (account, query, mode) in [
        ("alpha", "traffic", 202.0),
        ("alpha", "transcode", 205.0),
        ("alpha", "co_anchoring", 206.0),
        ("beta", "traffic", 204.0),
        ("beta", "transcode", 205.0),
        ("beta", "co_anchoring", 206.0),
    ] {
        assert_eq!(m.value(&pair("tencent_live_up", account, query)), 1.0);
        assert_eq!(
            m.value(&pair("tencent_live_package_bill_mode", account, query)),
            mode
        );
        assert!(
            m.value(&pair(
                "tencent_live_exporter_last_success_timestamp_seconds",
                account,
                query
            )) > 1.7e9
        );
        assert!(
            m.value(&pair(
                "tencent_live_exporter_poll_duration_seconds",
                account,
                query
            )) >= 0.0
        );
    }
    for (product, area, mode) in [
        ("standard", "mainland", 201.0),
        ("standard", "overseas", 202.0),
        ("leb", "mainland", 203.0),
        ("leb", "overseas", 204.0),
    ] {
        let s = format!(
            r#"tencent_live_traffic_bill_mode{{account="alpha",product="{product}",area="{area}"}}"#
        );
        assert_eq!(m.value(&s), mode);
    }
    assert_eq!(
        m.with_prefix("tencent_live_traffic_bill_mode{account=\"alpha\"")
            .len(),
        4,
        "the fifth field is ignored"
    );

    // alpha traffic: all 25 packages across 3 pages, bytes as sent.
    assert_eq!(
        m.with_prefix(r#"tencent_live_package_quota_bytes{account="alpha""#)
            .len(),
        25
    );
    assert_eq!(
        m.value(&pkg("quota_bytes", "alpha", "traffic", "f0", "in_use")),
        1000.0
    );
    assert_eq!(
        m.value(&pkg("used_bytes", "alpha", "traffic", "f24", "in_use")),
        24.0
    );
    assert_eq!(
        m.value(&pkg("remaining_bytes", "alpha", "traffic", "f24", "in_use")),
        24_976.0
    );
    assert_eq!(
        m.value(&pkg(
            "expiry_timestamp_seconds",
            "alpha",
            "traffic",
            "f3",
            "in_use"
        )),
        1_803_873_600.0
    );
    assert_eq!(
        m.value(&pkg(
            "purchase_timestamp_seconds",
            "alpha",
            "traffic",
            "f3",
            "in_use"
        )),
        1_768_440_600.0
    );
    assert_eq!(
        m.value(&pkg("auto_renew", "alpha", "traffic", "f3", "in_use")),
        1.0
    );
    // Transcode minutes and co-anchoring hours become seconds; the Type decides the label.
    assert_eq!(
        m.value(&pkg("quota_seconds", "alpha", "transcode", "tc1", "in_use")),
        6000.0
    );
    assert_eq!(
        m.value(&pkg("used_seconds", "alpha", "transcode", "tc1", "in_use")),
        2400.0
    );
    assert_eq!(
        m.value(&pkg(
            "remaining_seconds",
            "alpha",
            "transcode",
            "tc1",
            "in_use"
        )),
        3600.0
    );
    assert_eq!(
        m.value(&pkg(
            "remaining_seconds",
            "alpha",
            "top_speed_codec",
            "ts1",
            "exhausted"
        )),
        0.0
    );
    assert_eq!(
        m.value(&pkg(
            "renewal_result",
            "alpha",
            "top_speed_codec",
            "ts1",
            "exhausted"
        )),
        -1.0
    );
    assert_eq!(
        m.value(&pkg(
            "quota_seconds",
            "alpha",
            "co_anchoring",
            "ca1",
            "in_use"
        )),
        36_000.0
    );
    assert_eq!(
        m.value(&pkg(
            "remaining_seconds",
            "alpha",
            "co_anchoring",
            "ca1",
            "in_use"
        )),
        32_400.0
    );
    assert_eq!(
        m.get(&pkg("auto_renew", "alpha", "co_anchoring", "ca1", "in_use")),
        None,
        "null WillRenew: no sample"
    );
    assert_eq!(
        m.get(&pkg(
            "renewal_result",
            "alpha",
            "co_anchoring",
            "ca1",
            "in_use"
        )),
        None
    );
    // beta: the API page's example answer, verbatim, and 12 co-anchoring packages over two pages.
    assert_eq!(
        m.value(&pkg("quota_bytes", "beta", "traffic", "281975", "in_use")),
        500_000_000_000.0
    );
    assert_eq!(
        m.value(&pkg("used_bytes", "beta", "traffic", "281975", "in_use")),
        2_365_271_265.0
    );
    assert_eq!(
        m.value(&pkg(
            "remaining_bytes",
            "beta",
            "traffic",
            "281975",
            "in_use"
        )),
        497_634_728_735.0
    );
    assert_eq!(
        m.value(&pkg(
            "expiry_timestamp_seconds",
            "beta",
            "traffic",
            "281975",
            "in_use"
        )),
        1_752_662_768.0
    );
    assert_eq!(
        m.value(&pkg(
            "quota_bytes",
            "beta",
            "traffic",
            "242917",
            "exhausted"
        )),
        1_000_000_000_000.0
    );
    assert_eq!(
        m.with_prefix(r#"tencent_live_package_quota_bytes{account="beta""#)
            .len(),
        9
    );
    assert_eq!(
        m.with_prefix(r#"tencent_live_package_quota_seconds{account="beta""#)
            .len(),
        12
    );

    // The calls: alpha 3 + 1 + 1, beta 1 + 1 + 2 (null totals: the short second page ends it).
    assert_eq!(
        m.value(r#"tencent_live_exporter_api_requests_total{account="alpha"}"#),
        5.0
    );
    assert_eq!(
        m.value(r#"tencent_live_exporter_api_requests_total{account="beta"}"#),
        4.0
    );
    let log = h.sim.requests();
    assert_eq!(log.len(), 9);
    assert!(
        log.iter()
            .all(|r| r.outcome == "ok" && !r.had_region_header && r.token.is_none()),
        "{log:?}"
    );
    assert!(
        log.iter()
            .all(|r| r.page_size == Some(10) && r.page_num.is_some()),
        "PageNum and PageSize always sent"
    );
    for account in [ALPHA.1, BETA.1] {
        let times: Vec<_> = log
            .iter()
            .filter(|r| r.secret_id.as_deref() == Some(account))
            .map(|r| r.at)
            .collect();
        let peak = max_in_any_window(&times, Duration::from_secs(1));
        assert!(peak <= 10, "{account}: {peak} calls in one second");
        eprintln!(
            "first cycle: {account}: {} calls, at most {peak} in any second",
            times.len()
        );
    }

    // Change one package, remove one, add one; on beta remove one and add one.
    let mut f0 = traffic(0);
    f0["Used"] = json!(600);
    f0["Left"] = json!(400);
    h.sim.upsert_package(ALPHA.1, 0, f0);
    assert!(h.sim.remove_package(ALPHA.1, 0, "f24"));
    h.sim.upsert_package(
        ALPHA.1,
        0,
        json!({"Id": "f-new", "Type": 0, "Status": 0, "Total": 77, "Used": 0, "Left": 77}),
    );
    assert!(h.sim.remove_package(BETA.1, 0, "272177"));
    h.sim.upsert_package(BETA.1, 2, co_anchoring("cb-new"));
    h.poll_now().await;
    let m = h.scrape().await;
    assert_eq!(
        m.value(&pkg("used_bytes", "alpha", "traffic", "f0", "in_use")),
        600.0
    );
    assert_eq!(
        m.value(&pkg("remaining_bytes", "alpha", "traffic", "f0", "in_use")),
        400.0
    );
    assert_eq!(
        m.get(&pkg("quota_bytes", "alpha", "traffic", "f24", "in_use")),
        None,
        "a removed package disappears"
    );
    assert_eq!(
        m.value(&pkg("quota_bytes", "alpha", "traffic", "f-new", "unused")),
        77.0
    );
    assert_eq!(
        m.get(&pkg(
            "quota_bytes",
            "beta",
            "traffic",
            "272177",
            "exhausted"
        )),
        None
    );
    assert_eq!(
        m.value(&pkg(
            "quota_seconds",
            "beta",
            "co_anchoring",
            "cb-new",
            "in_use"
        )),
        36_000.0
    );
    assert_eq!(
        m.with_prefix(r#"tencent_live_package_quota_bytes{account="alpha""#)
            .len(),
        25
    );
    assert_eq!(
        m.with_prefix(r#"tencent_live_package_quota_seconds{account="beta""#)
            .len(),
        13
    );

    // beta's key stops working: beta goes down but keeps its last good series; alpha is untouched.
    h.sim.add_account(BETA.1, "rotated-elsewhere");
    h.poll_now().await;
    let m = h.scrape().await;
    for query in ["traffic", "transcode", "co_anchoring"] {
        assert_eq!(m.value(&pair("tencent_live_up", "beta", query)), 0.0);
        assert_eq!(m.value(&pair("tencent_live_up", "alpha", query)), 1.0);
    }
    assert_eq!(
        m.value(&pkg(
            "quota_seconds",
            "beta",
            "co_anchoring",
            "cb-new",
            "in_use"
        )),
        36_000.0
    );
    assert_eq!(
        m.value(r#"tencent_live_exporter_api_request_errors_total{account="beta",code="AuthFailure.SignatureFailure"}"#),
        3.0,
        "one per pair: authentication failures are not retried"
    );
    assert_eq!(m.get(r#"tencent_live_exporter_api_request_errors_total{account="alpha",code="AuthFailure.SignatureFailure"}"#), None);
}

#[tokio::test]
async fn health_landing_and_content_type_over_http() {
    let h = Harness::start(simulator(), &[ALPHA], "").await;
    let resp = h.get("/metrics").await;
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    // Before the first poll finishes the exporter's own metrics are already there.
    let body = resp.text().await.unwrap();
    assert!(body.contains("tencent_live_exporter_build_info"), "{body}");
    assert_eq!(h.get("/healthz").await.status(), 200);
    let landing = h.get("/").await.text().await.unwrap();
    assert!(landing.contains(r#"href="/metrics""#), "{landing}");
    assert_eq!(h.get("/nope").await.status(), 404);
}

mod logs;
mod process;
