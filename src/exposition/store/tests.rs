//! Unit tests of `store`.

use super::*;
use crate::domain::{PackageKind, Status, Unit};
use crate::poll::poller::PollError;
use crate::tencent::client::ApiError;

fn outcome(ids: &[&str]) -> Listing {
    Listing {
        packages: ids
            .iter()
            .map(|id| Package {
                id: (*id).into(),
                kind: PackageKind::Traffic,
                status: Status::InUse,
                unit: Unit::Bytes,
                quota: Some(100),
                used: Some(1),
                remaining: Some(99),
                expires_at: None,
                purchased_at: None,
                auto_renew: None,
                renewal_result: None,
            })
            .collect(),
        ..Listing::default()
    }
}

/// Publishes what was recorded, and returns the exposition.
fn text(s: &Store) -> String {
    s.publish_now(Instant::now());
    String::from_utf8(s.exposition().text.to_vec()).unwrap()
}

const FAIL: PollError = PollError::Api {
    page: 1,
    error: ApiError::Http(500),
};

#[tokio::test(start_paused = true)]
async fn success_replaces_whole_failure_keeps_and_other_pairs_are_untouched() {
    let s = Store::new(Arc::new(ExporterMetrics::new()), Duration::from_secs(900));
    s.record_success(
        "a",
        QueryType::Traffic,
        outcome(&["p1", "p2"]),
        Duration::from_millis(5),
    );
    s.record_success(
        "a",
        QueryType::Transcode,
        outcome(&["t1"]),
        Duration::from_millis(5),
    );
    s.record_success(
        "a",
        QueryType::Traffic,
        outcome(&["p2", "p3"]),
        Duration::from_millis(5),
    );
    let t = text(&s);
    assert!(
        !t.contains("package_id=\"p1\""),
        "vanished package must go: {t}"
    );
    assert!(t.contains("package_id=\"p3\""));
    assert_eq!(
        s.record_failure(
            "a",
            QueryType::Traffic,
            FAIL.code(),
            FAIL.to_string(),
            Duration::from_millis(5)
        ),
        Transition::Changed
    );
    assert_eq!(
        s.record_failure(
            "a",
            QueryType::Traffic,
            FAIL.code(),
            FAIL.to_string(),
            Duration::from_millis(5)
        ),
        Transition::Unchanged
    );
    let t = text(&s);
    assert!(t.contains(r#"tencent_live_up{account="a",package_type="traffic"} 0"#));
    assert!(t.contains(r#"tencent_live_up{account="a",package_type="transcode"} 1"#));
    assert!(t.contains("package_id=\"p3\""), "last good list stays: {t}");
    assert!(t.contains("package_id=\"t1\""));
}

/// A package the API lists under two query types of one account is one series (a repeated
/// series makes Prometheus drop samples), whichever pair's piece is re-encoded; and it comes
/// back under the later pair when the earlier one no longer lists it.
#[tokio::test(start_paused = true)]
async fn a_package_under_two_query_types_of_one_account_is_one_series() {
    let s = Store::new(Arc::new(ExporterMetrics::new()), Duration::from_secs(900));
    let count = |t: &str, id: &str| {
        t.lines()
            .filter(|l| l.starts_with("tencent_live_package_quota_bytes{"))
            .filter(|l| l.contains(&format!("package_id=\"{id}\"")))
            .count()
    };
    s.record_success(
        "a",
        QueryType::Traffic,
        outcome(&["x", "p"]),
        Duration::ZERO,
    );
    s.record_success("a", QueryType::Transcode, outcome(&["x"]), Duration::ZERO);
    s.record_success("b", QueryType::Transcode, outcome(&["x"]), Duration::ZERO);
    let t = text(&s);
    assert_eq!(count(&t, "x"), 2, "once per account: {t}");
    // Only the later pair changes: its cached piece must still leave x out.
    s.record_success("a", QueryType::Transcode, outcome(&["x"]), Duration::ZERO);
    assert_eq!(count(&text(&s), "x"), 2);
    // Only the earlier pair changes, and drops x: the later pair shows it again.
    s.record_success("a", QueryType::Traffic, outcome(&["p"]), Duration::ZERO);
    let t = text(&s);
    assert_eq!(count(&t, "x"), 2, "{t}");
    assert_eq!(count(&t, "p"), 1);
}

#[tokio::test(start_paused = true)]
async fn package_series_expire_after_max_staleness() {
    let s = Store::new(Arc::new(ExporterMetrics::new()), Duration::from_secs(900));
    s.record_success("a", QueryType::Traffic, outcome(&["p1"]), Duration::ZERO);
    tokio::time::advance(Duration::from_secs(901)).await;
    s.record_failure(
        "a",
        QueryType::Traffic,
        FAIL.code(),
        FAIL.to_string(),
        Duration::ZERO,
    );
    let t = text(&s);
    assert!(!t.contains("package_id=\"p1\""), "{t}");
    assert!(t.contains("tencent_live_exporter_last_success_timestamp_seconds{account=\"a\""));
    s.record_success("a", QueryType::Traffic, outcome(&["p1"]), Duration::ZERO);
    assert!(text(&s).contains("package_id=\"p1\""));
}

#[test]
fn removing_an_account_drops_its_series() {
    let s = Store::new(Arc::new(ExporterMetrics::new()), Duration::from_secs(900));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        s.record_success("gone", QueryType::Traffic, outcome(&["x"]), Duration::ZERO);
        s.retain_pairs(&std::collections::HashSet::new());
    });
    assert!(!text(&s).contains("gone"));
}

/// Package ids on `/metrics`, by account.
fn exported_ids(text: &str) -> std::collections::BTreeSet<(String, String)> {
    text.lines()
        .filter(|l| l.starts_with("tencent_live_package_quota_bytes{"))
        .map(|l| {
            let label = |name: &str| {
                let from = l.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                l[from..].split('"').next().unwrap().to_owned()
            };
            (label("account"), label("package_id"))
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_status_page_shows_the_packages_metrics_shows_also_once_stale() {
    let s = Store::new(Arc::new(ExporterMetrics::new()), Duration::from_secs(900));
    s.record_success(
        "old",
        QueryType::Traffic,
        outcome(&["p-old"]),
        Duration::ZERO,
    );
    tokio::time::advance(Duration::from_secs(600)).await;
    s.record_success(
        "new",
        QueryType::Traffic,
        outcome(&["p-new"]),
        Duration::ZERO,
    );
    tokio::time::advance(Duration::from_secs(301)).await;
    s.record_failure(
        "old",
        QueryType::Traffic,
        FAIL.code(),
        FAIL.to_string(),
        Duration::ZERO,
    );
    let metrics = text(&s);
    let page = crate::http::status_page::render(&s.pairs(), "/metrics", unix_now());
    assert_eq!(
        exported_ids(&metrics),
        [("new".to_owned(), "p-new".to_owned())].into(),
        "{metrics}"
    );
    assert!(page.contains("p-new"), "{page}");
    assert!(
        !page.contains("p-old"),
        "stale on /metrics, so gone here too: {page}"
    );
    assert!(
        page.contains("<h3>old · traffic</h3>\n<p class=\"muted\">no current list"),
        "{page}"
    );
}

/// One step of a random history of a store.
#[derive(Debug, Clone)]
enum Step {
    Success(usize, QueryType, Vec<u8>),
    Failure(usize, QueryType),
    Advance(u64),
    Publish,
    Remove(usize),
    Staleness(u64),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let query = prop::sample::select(QueryType::ALL.to_vec());
    prop_oneof![
        (
            0..3usize,
            query.clone(),
            prop::collection::vec(0..5u8, 0..4)
        )
            .prop_map(|(a, q, ids)| Step::Success(a, q, ids)),
        (0..3usize, query).prop_map(|(a, q)| Step::Failure(a, q)),
        (0..400u64).prop_map(Step::Advance),
        Just(Step::Publish),
        (0..3usize).prop_map(Step::Remove),
        (60..600u64).prop_map(Step::Staleness),
    ]
}

proptest::proptest! {
    /// Whatever happens, the status page lists exactly the packages `/metrics` exports,
    /// and a published poll count implies the exposition shows that poll.
    #[test]
    fn status_page_and_metrics_always_show_the_same_packages(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let s = Store::new(Arc::new(ExporterMetrics::new()), Duration::from_secs(300));
            let mut accounts: std::collections::HashSet<usize> = (0..3).collect();
            for step in steps {
                match step {
                    Step::Success(a, q, ids) => {
                        accounts.insert(a);
                        let ids: Vec<String> = ids.iter().map(|i| format!("p{i}")).collect();
                        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                        s.record_success(&format!("a{a}"), q, outcome(&ids), Duration::ZERO);
                    }
                    Step::Failure(a, q) => {
                        accounts.insert(a);
                        s.record_failure(&format!("a{a}"), q, FAIL.code(), FAIL.to_string(), Duration::ZERO);
                    }
                    Step::Advance(secs) => tokio::time::advance(Duration::from_secs(secs)).await,
                    Step::Publish => {
                        s.publish_now(Instant::now());
                    }
                    Step::Remove(a) => {
                        accounts.remove(&a);
                        let keep = accounts
                            .iter()
                            .flat_map(|a| QueryType::ALL.map(|q| (format!("a{a}"), q)))
                            .collect();
                        s.retain_pairs(&keep);
                    }
                    Step::Staleness(secs) => s.set_max_staleness(Duration::from_secs(secs)),
                }
                let metrics = String::from_utf8(s.exposition().text.to_vec()).unwrap();
                let pairs = s.pairs();
                let listed: std::collections::BTreeSet<(String, String)> = pairs
                    .iter()
                    .flat_map(|((account, _), p)| {
                        p.packages
                            .iter()
                            .flat_map(|l| l.iter())
                            .map(move |p| (account.clone(), p.id.clone()))
                    })
                    .collect();
                assert_eq!(listed, exported_ids(&metrics));
                let page = crate::http::status_page::render(&pairs, "/metrics", unix_now());
                for (account, id) in &listed {
                    // In a pool section of its account.
                    let shown = page.split("<h3>").any(|section| {
                        section.starts_with(&format!("{account} · "))
                            && section.contains(&format!("<td>{id}</td>"))
                    });
                    assert!(shown, "{account} {id}: {page}");
                }
                for ((account, query), p) in pairs.iter() {
                    let up = format!(
                        "tencent_live_up{{account=\"{account}\",package_type=\"{}\"}} {}",
                        query.label(),
                        u8::from(p.up)
                    );
                    assert!(metrics.lines().any(|l| l == up), "{up} missing:\n{metrics}");
                }
            }
        });
    }
}

/// Records a success for each of `accounts` x 3 query types, one every `gap`.
async fn burst(s: &Store, accounts: usize, gap: Duration) {
    for a in 0..accounts {
        for q in QueryType::ALL {
            let id = format!("{a}-{}", q.label());
            s.record_success(&format!("acct{a:04}"), q, outcome(&[&id]), Duration::ZERO);
            tokio::time::advance(gap).await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_polls_publishes_a_bounded_number_of_times_and_after_the_last() {
    let s = Arc::new(Store::new(
        Arc::new(ExporterMetrics::new()),
        Duration::from_secs(900),
    ));
    let shutdown = CancellationToken::new();
    let publisher = tokio::spawn(run_publisher(s.clone(), shutdown.clone()));
    let publishes = s.subscribe_published();
    let before = *publishes.borrow();
    let started = Instant::now();
    // 300 accounts x 3 types = 900 polls ending 5 ms apart: 4.5 s of polls.
    burst(&s, 300, Duration::from_millis(5)).await;
    let mut polls = s.subscribe_polls();
    while *polls.borrow_and_update() < 900 {
        polls.changed().await.unwrap();
    }
    let runs = *publishes.borrow() - before;
    let elapsed = started.elapsed();
    // One per started second of the burst at most, plus the one after the last poll.
    let bound = elapsed.as_secs() + 2;
    assert!(
        (1..=bound).contains(&runs),
        "{runs} publishes for 900 polls over {elapsed:?}"
    );
    assert!(elapsed < Duration::from_millis(4500) + PUBLISH_PERIOD + Duration::from_millis(10));
    // The last poll is on /metrics, with every other one.
    let t = String::from_utf8(s.exposition().text.to_vec()).unwrap();
    assert_eq!(t.matches("tencent_live_up{").count(), 900);
    assert!(t.contains(r#"package_id="299-co_anchoring""#));
    assert_eq!(
        t.matches("# HELP tencent_live_package_quota_bytes ")
            .count(),
        1,
        "one HELP per family"
    );
    // Nothing more to publish: the publisher only gathers the exporter's own metrics again,
    // once per OWN_METRICS_REFRESH.
    tokio::time::sleep(OWN_METRICS_REFRESH * 2 + PUBLISH_PERIOD).await;
    assert_eq!(*publishes.borrow() - before, runs + 2);
    shutdown.cancel();
    publisher.await.unwrap();
}

/// The exporter's own metrics move between polls (the `process_*` families read CPU, memory and
/// file descriptors at each gather): with no poll for a while, the publisher gathers them again
/// every [`OWN_METRICS_REFRESH`], so a scrape never serves them older than that.
#[tokio::test(start_paused = true)]
async fn the_exporters_own_metrics_are_gathered_again_while_no_poll_ends() {
    let s = Arc::new(Store::new(
        Arc::new(ExporterMetrics::new()),
        Duration::from_secs(900),
    ));
    let shutdown = CancellationToken::new();
    let publisher = tokio::spawn(run_publisher(s.clone(), shutdown.clone()));
    s.record_success("a", QueryType::Traffic, outcome(&["p"]), Duration::ZERO);
    let mut polls = s.subscribe_polls();
    while *polls.borrow_and_update() < 1 {
        polls.changed().await.unwrap();
    }
    let sample = r#"tencent_live_exporter_api_requests_total{account="moved"} 1"#;
    // A value that changed without a poll ending (as process_cpu_seconds_total does).
    s.metrics().api_request("moved");
    let published = |s: &Store| String::from_utf8(s.exposition().text.to_vec()).unwrap();
    assert!(!published(&s).contains(sample));
    tokio::time::sleep(OWN_METRICS_REFRESH + PUBLISH_PERIOD).await;
    assert!(
        published(&s).contains(sample),
        "not gathered again after {OWN_METRICS_REFRESH:?}"
    );
    shutdown.cancel();
    publisher.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_scrape_is_answered_while_a_publish_is_in_progress() {
    use tower::ServiceExt as _;
    struct NoReload;
    impl crate::http::server::Reload for NoReload {
        fn reload(
            &self,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>>
        {
            Box::pin(async { Err("not in this test".into()) })
        }
    }
    let s = Arc::new(Store::new(
        Arc::new(ExporterMetrics::new()),
        Duration::from_secs(900),
    ));
    let shutdown = CancellationToken::new();
    let publisher = tokio::spawn(run_publisher(s.clone(), shutdown.clone()));
    burst(&s, 300, Duration::ZERO).await;
    let mut polls = s.subscribe_polls();
    while *polls.borrow_and_update() < 900 {
        polls.changed().await.unwrap();
    }
    let (started, release) = s.hold_next_publish();
    s.record_success(
        "late",
        QueryType::Traffic,
        outcome(&["late-1"]),
        Duration::ZERO,
    );
    started.await.unwrap();
    // The publish has its snapshot and is stopped before the swap: scrapes still answer,
    // with the previous exposition whole.
    let app = crate::http::server::router(s.clone(), "/metrics", Arc::new(NoReload));
    for path in ["/metrics", "/"] {
        let resp = app
            .clone()
            .oneshot(
                axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("acct0299"), "{path}");
        assert!(!body.contains("late-1"), "{path}: half a publish");
    }
    assert_eq!(*s.subscribe_polls().borrow(), 900);
    release.send(()).unwrap();
    while *polls.borrow_and_update() < 901 {
        polls.changed().await.unwrap();
    }
    assert!(text(&s).contains("late-1"));
    shutdown.cancel();
    publisher.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn bills_are_rises_of_used_between_successes_and_survive_failures_and_staleness() {
    let s = Store::new(Arc::new(ExporterMetrics::new()), Duration::from_secs(60));
    let used = |u: u64| {
        let mut o = outcome(&["a"]);
        o.packages[0].used = Some(u);
        o
    };
    s.record_success("acc", QueryType::Traffic, used(1), Duration::ZERO);
    s.record_failure(
        "acc",
        QueryType::Traffic,
        FAIL.code(),
        FAIL.to_string(),
        Duration::ZERO,
    );
    tokio::time::advance(Duration::from_secs(120)).await;
    s.publish_now(Instant::now());
    let key = ("acc".to_owned(), QueryType::Traffic);
    assert!(s.pairs()[&key].packages.is_none(), "stale");
    s.record_success("acc", QueryType::Traffic, used(41), Duration::ZERO);
    s.publish_now(Instant::now());
    let bills = s.pairs()[&key].bills.bills(PackageKind::Traffic);
    assert_eq!(bills.iter().map(|b| b.amount).collect::<Vec<_>>(), [40]);
}

/// `--once` waits for recorded polls, then publishes them itself: they count before any publish.
#[tokio::test(start_paused = true)]
async fn polls_count_as_recorded_before_they_are_published() {
    let s = Store::new(Arc::new(ExporterMetrics::new()), Duration::from_secs(900));
    let mut recorded = s.subscribe_recorded();
    s.record_success(
        "a",
        QueryType::Traffic,
        outcome(&["p1"]),
        Duration::from_millis(5),
    );
    s.record_failure(
        "a",
        QueryType::Transcode,
        "http_500".into(),
        "HTTP 500".into(),
        Duration::from_millis(5),
    );
    assert!(recorded.has_changed().unwrap());
    assert_eq!(*recorded.borrow_and_update(), 2);
    let counts = s.recorded_polls();
    assert_eq!(counts.get(&("a".into(), QueryType::Traffic)), Some(&1));
    assert_eq!(counts.get(&("a".into(), QueryType::Transcode)), Some(&1));
    assert!(s.pairs().is_empty(), "nothing published yet");
    assert!(text(&s).contains("package_id=\"p1\""));
    assert_eq!(s.pairs().len(), 2);
}

/// A client that asks for reloads back to back gets the first few published at once, then one
/// per period: each is a whole assembly and gzip, which it must not be able to run in a loop.
#[tokio::test(start_paused = true)]
async fn publishes_a_client_asks_for_run_at_once_in_a_burst_then_one_per_period() {
    let s = Arc::new(Store::new(
        Arc::new(ExporterMetrics::new()),
        Duration::from_secs(900),
    ));
    let publishes = s.subscribe_published();
    let before = *publishes.borrow();
    let started = Instant::now();
    for n in 1..=ASKED_PUBLISH_BURST {
        s.publish_and_wait_bounded().await;
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "ask {n} of the burst waited"
        );
    }
    for n in 1..=3u32 {
        s.publish_and_wait_bounded().await;
        assert_eq!(
            started.elapsed(),
            PUBLISH_PERIOD * n,
            "ask {n} after the burst"
        );
    }
    assert_eq!(
        *publishes.borrow() - before,
        u64::from(ASKED_PUBLISH_BURST) + 3,
        "every ask publishes"
    );
    // A quiet while gives the burst back.
    tokio::time::advance(PUBLISH_PERIOD * (ASKED_PUBLISH_BURST + 3)).await;
    let quiet = Instant::now();
    for _ in 0..ASKED_PUBLISH_BURST {
        s.publish_and_wait_bounded().await;
    }
    assert_eq!(quiet.elapsed(), Duration::ZERO);
}
