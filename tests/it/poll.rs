//! The poll against a server that behaves as Tencent's may (issue 10): lists that move without
//! their totals changing, empty pages with totals, arrivals delayed by the network, one key shared
//! by two configured accounts, a reload that changes the limit, and a long list next to short ones.
//! In process, with paused time; the simulator counts arrivals per SecretId as Tencent does.

use std::time::Duration;

use serde_json::{Value, json};
use tencent_live_exporter::tencent::budget::max_in_any_window;
use tencent_live_simulator::{Fault, LoggedRequest, Simulator};
use tokio::time::Instant;

use crate::support::{Account, Harness, Logs};

const A: Account = (
    "team-a",
    "AKIDpoll00000000000000000000000000000",
    "poll-key",
);
/// The same key configured a second time, under another team's label.
const B: Account = (
    "team-b",
    "AKIDpoll00000000000000000000000000000",
    "poll-key",
);
const RPS: usize = 20;

fn package(i: usize, kind: u8) -> Value {
    json!({"Id": format!("{kind}-{i:04}"), "Type": kind, "Status": 1, "Total": 1000, "Used": 1, "Left": 999,
           "BuyTime": format!("2026-01-01 00:{:02}:{:02}", (9999 - i) / 60 % 60, (9999 - i) % 60),
           "ExpireTime": "2027-01-01 00:00:00", "WillRenew": 0, "RenewalResult": 0})
}

/// One account with `traffic` traffic packages, 3 transcode and 2 co-anchoring ones.
fn sim(traffic: usize) -> Simulator {
    let sim = Simulator::new();
    sim.add_account(A.1, A.2);
    sim.set_packages(A.1, 0, (0..traffic).map(|i| package(i, 0)).collect());
    sim.set_packages(A.1, 1, (0..3).map(|i| package(i, 1)).collect());
    sim.set_packages(A.1, 2, (0..2).map(|i| package(i, 3)).collect());
    sim
}

fn poll(rps: usize, types: &str) -> String {
    format!(
        "page_size = 10\ntimeout = \"5s\"\nmax_retries = 2\nbackoff_base = \"100ms\"\nbackoff_max = \"1s\"\nrequests_per_second = {rps}\npackage_types = {types}"
    )
}

fn up(account: &str, t: &str) -> String {
    format!(r#"tencent_live_up{{account="{account}",package_type="{t}"}}"#)
}

fn quota_series(m: &crate::support::Samples, account: &str) -> usize {
    m.with_prefix(&format!(
        r#"tencent_live_package_quota_bytes{{account="{account}",package_type="traffic""#
    ))
    .len()
}

fn arrivals(log: &[LoggedRequest]) -> Vec<Instant> {
    log.iter().map(|r| r.at).collect()
}

fn refused(log: &[LoggedRequest]) -> usize {
    log.iter()
        .filter(|r| r.outcome == "RequestLimitExceeded")
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_page_that_repeats_one_id_and_skips_another_is_read_again_then_fails() {
    let (logs, _guard) = Logs::capture(tracing::Level::INFO);
    let h = Harness::in_process(sim(20), &[A], &poll(RPS, "[\"traffic\"]"));
    h.first_polls().await;
    let before = h.scrape().await;
    assert_eq!(quota_series(&before, "team-a"), 20);

    // Once: page 2 repeats page 1's last id and skips one, totals unchanged. Read again: complete.
    h.sim
        .push_faults(A.1, [Fault::GrowBefore(0), Fault::ShiftBack(1)]);
    h.poll_now().await;
    let m = h.scrape().await;
    assert_eq!(m.value(&up("team-a", "traffic")), 1.0);
    assert_eq!(quota_series(&m, "team-a"), 20);
    let reread = r#"tencent_live_exporter_list_rereads_total{account="team-a",package_type="traffic",reason="duplicate_ids"}"#;
    assert_eq!(m.value(reread), 1.0);
    assert!(
        logs.text().contains("duplicate_ids"),
        "each re-read is logged with its reason"
    );

    // Always: two re-reads, then the poll fails as incomplete_list and the previous list stays.
    h.sim.set_page_fault(A.1, 0, 2, Some(Fault::ShiftBack(1)));
    h.poll_now().await;
    let m = h.scrape().await;
    assert_eq!(
        m.value(&up("team-a", "traffic")),
        0.0,
        "never 19 packages with up 1"
    );
    assert_eq!(m.value(reread), 3.0);
    assert_eq!(quota_series(&m, "team-a"), 20, "the previous list stays");
    let (_, status) = h.call("GET", "/").await;
    assert!(
        status.contains("incomplete_list"),
        "the status page names the code"
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_page_while_total_num_promises_nine_is_not_an_empty_list() {
    let h = Harness::in_process(sim(9), &[A], &poll(RPS, "[\"traffic\"]"));
    h.first_polls().await;
    assert_eq!(quota_series(&h.scrape().await, "team-a"), 9);
    h.sim.set_page_fault(A.1, 0, 1, Some(Fault::EmptyPage));
    h.poll_now().await;
    let m = h.scrape().await;
    assert_eq!(m.value(&up("team-a", "traffic")), 0.0);
    assert_eq!(quota_series(&m, "team-a"), 9, "the previous list stays");
    assert_eq!(
        m.value(r#"tencent_live_exporter_list_rereads_total{account="team-a",package_type="traffic",reason="empty_page"}"#),
        2.0
    );
    // With null totals an empty page still ends the list.
    h.sim.set_page_fault(A.1, 0, 1, None);
    h.sim.set_null_totals(A.1, true);
    h.poll_now().await;
    assert_eq!(h.scrape().await.value(&up("team-a", "traffic")), 1.0);
}

/// Polls a 100-page list with the given network; returns the request log of that poll.
async fn poll_100_pages(h: &Harness) -> Vec<LoggedRequest> {
    h.first_polls().await;
    h.sim.clear_requests();
    // A second poll, a poll interval's worth of quiet later, with the network set up.
    tokio::time::advance(Duration::from_secs(5)).await;
    h.poll_now().await;
    h.sim.requests()
}

#[tokio::test(start_paused = true)]
async fn arrivals_delayed_at_random_never_exceed_the_limit_at_the_server() {
    let sim = sim(1000);
    sim.set_latency(Duration::from_millis(150));
    sim.set_arrival_delay(Duration::from_millis(400), 10);
    let h = Harness::in_process(
        sim,
        &[A],
        &poll(RPS, "[\"traffic\", \"transcode\", \"co_anchoring\"]"),
    );
    let log = poll_100_pages(&h).await;
    assert_eq!(log.len(), 102, "100 pages and two one-page lists, no retry");
    assert_eq!(refused(&log), 0);
    assert!(max_in_any_window(&arrivals(&log), Duration::from_secs(1)) <= RPS);
    let m = h.scrape().await;
    assert_eq!(quota_series(&m, "team-a"), 1000);
}

#[tokio::test(start_paused = true)]
async fn pages_go_as_fast_as_the_budget_allows_and_the_short_lists_are_not_starved() {
    let sim = sim(1000);
    sim.set_latency(Duration::from_millis(150));
    let h = Harness::in_process(
        sim,
        &[A],
        &poll(RPS, "[\"traffic\", \"transcode\", \"co_anchoring\"]"),
    );
    let log = poll_100_pages(&h).await;
    let first = log.iter().map(|r| r.at).min().unwrap();
    let last = log.iter().map(|r| r.at).max().unwrap();
    // 102 calls at 20 per (1.025 s + 150 ms): the sixth round starts after 5 rounds.
    let span = last.duration_since(first);
    assert!(span <= Duration::from_millis(6 * 1175), "{span:?}");
    assert!(span >= Duration::from_millis(5 * 1175 - 150), "{span:?}");
    for t in [1, 2] {
        let at = log
            .iter()
            .find(|r| r.package_type == Some(t))
            .expect("polled")
            .at;
        assert!(
            at.duration_since(first) < Duration::from_millis(1200),
            "query {t} waited {:?} behind the 100-page list",
            at.duration_since(first)
        );
    }
    assert_eq!(refused(&log), 0);
}

#[tokio::test(start_paused = true)]
async fn two_accounts_with_one_secret_id_share_one_budget() {
    let (logs, _guard) = Logs::capture(tracing::Level::INFO);
    let sim = sim(300);
    sim.set_arrival_delay(Duration::from_millis(400), 11);
    let h = Harness::in_process(
        sim,
        &[A, B],
        &poll(RPS, "[\"traffic\", \"transcode\", \"co_anchoring\"]"),
    );
    let log = poll_100_pages(&h).await;
    assert_eq!(log.len(), 2 * 32);
    assert_eq!(refused(&log), 0);
    assert!(max_in_any_window(&arrivals(&log), Duration::from_secs(1)) <= RPS);
    assert!(h.exporter.all_up());
    let text = logs.text();
    assert!(
        text.contains("share one request budget") && text.contains("team-b"),
        "start-up says which accounts share a budget:\n{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_that_raises_the_limit_keeps_the_last_seconds_calls() {
    let h = Harness::in_process(sim(1000), &[A], &poll(10, "[\"traffic\"]"));
    h.first_polls().await;
    h.sim.clear_requests();
    h.poll_now().await;
    // Right after a poll at 10 per second, the limit goes to 20: the reload polls at once.
    h.rewrite_config(&[A], &poll(RPS, "[\"traffic\"]"));
    let (status, body) = h.call("POST", "/-/reload").await;
    assert_eq!(status, 200, "{body}");
    tokio::time::timeout(Duration::from_secs(30), async {
        while h.sim.requests().len() < 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the reloaded pollers poll");
    let log = h.sim.requests();
    assert_eq!(refused(&log), 0);
    assert!(max_in_any_window(&arrivals(&log), Duration::from_secs(1)) <= RPS);
    // And the new limit applies: the second 100 pages went at 20 per second, not 10.
    let second: Vec<Instant> = arrivals(&log[100..200]);
    let span = second[99].duration_since(second[0]);
    assert!(span < Duration::from_secs(7), "{span:?}");
}
