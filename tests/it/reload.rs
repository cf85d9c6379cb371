//! Reloads: accounts added, removed or changed start, stop or restart their pollers; the rest
//! keep their series and schedule; a bad file keeps the running configuration. In process, with
//! paused time.

use std::time::Duration;

use serde_json::json;
use tencent_live_simulator::Simulator;

use crate::support::{Account, Harness};

const A: Account = ("a", "AKIDreloadA000000000000000000000000", "key-a");
const B: Account = ("b", "AKIDreloadB000000000000000000000000", "key-b");
const C: Account = ("c", "AKIDreloadC000000000000000000000000", "key-c");

fn sim() -> Simulator {
    let sim = Simulator::new();
    for (name, id, key) in [A, B, C] {
        sim.add_account(id, key);
        sim.set_packages(id, 0, vec![json!({"Id": format!("{name}-1"), "Type": 0, "Status": 1, "Total": 100, "Used": 1, "Left": 99})]);
    }
    sim
}

fn calls_of(sim: &Simulator, id: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.secret_id.as_deref() == Some(id))
        .count()
}

fn quota(account: &str) -> String {
    format!(
        r#"tencent_live_package_quota_bytes{{account="{account}",package_type="traffic",package_id="{account}-1",status="in_use"}}"#
    )
}

#[tokio::test(start_paused = true)]
async fn reload_starts_stops_and_restarts_only_what_changed() {
    let h = Harness::in_process(
        sim(),
        &[A, B],
        "interval = \"5m\"\npackage_types = [\"traffic\"]",
    );
    h.first_polls().await;
    assert_eq!((calls_of(&h.sim, A.1), calls_of(&h.sim, B.1)), (1, 1));

    // Half an interval later: remove B, add C. A keeps its series and its schedule.
    tokio::time::advance(Duration::from_secs(150)).await;
    h.rewrite_config(&[A, C], "interval = \"5m\"\npackage_types = [\"traffic\"]");
    let (status, body) = h.call("POST", "/-/reload").await;
    assert_eq!(status, 200, "{body}");
    tokio::time::timeout(Duration::from_secs(5), h.exporter.wait_for_polls(1))
        .await
        .expect("C polls at once");
    let m = h.scrape().await;
    assert_eq!(m.value(&quota("a")), 100.0);
    assert_eq!(m.value(&quota("c")), 100.0);
    assert_eq!(m.get(&quota("b")), None, "a removed account's series go");
    assert!(
        !m.0.keys()
            .any(|k| k.contains("account=\"b\"") && k.starts_with("tencent_live_up"))
    );
    assert_eq!(
        calls_of(&h.sim, A.1),
        1,
        "an unchanged account is not polled by the reload"
    );
    assert_eq!(
        m.value("tencent_live_exporter_config_last_reload_successful"),
        1.0
    );

    // A's next tick is still at 5m from its start, not 5m from the reload.
    tokio::time::sleep(Duration::from_secs(151)).await;
    assert_eq!(calls_of(&h.sim, A.1), 2, "A kept its schedule");
    assert_eq!(
        calls_of(&h.sim, C.1),
        1,
        "C started at the reload, so it is not due yet"
    );
    assert_eq!(calls_of(&h.sim, B.1), 1, "B stopped");

    // A changed key restarts A (which polls at once with the new key).
    h.sim.add_account(A.1, "key-a2");
    h.sim.set_packages(
        A.1,
        0,
        vec![json!({"Id": "a-1", "Type": 0, "Status": 1, "Total": 200, "Used": 1, "Left": 199})],
    );
    h.rewrite_config(
        &[("a", A.1, "key-a2"), C],
        "interval = \"5m\"\npackage_types = [\"traffic\"]",
    );
    assert_eq!(h.call("POST", "/-/reload").await.0, 200);
    tokio::time::timeout(Duration::from_secs(5), async {
        while calls_of(&h.sim, A.1) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("A restarted");
    h.exporter.wait_for_polls(1).await;
    let m = h.scrape().await;
    assert_eq!(m.value(&quota("a")), 200.0);
    assert_eq!(
        m.value(r#"tencent_live_up{account="a",package_type="traffic"}"#),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn a_bad_file_keeps_the_running_configuration_and_says_why() {
    let h = Harness::in_process(sim(), &[A], "package_types = [\"traffic\"]");
    h.first_polls().await;
    std::fs::write(&h.config_path, "[poll]\npage_size = 5\n").unwrap();
    let (status, body) = h.call("POST", "/-/reload").await;
    assert_eq!(status, 500);
    assert!(body.contains("poll.page_size"), "{body}");
    let m = h.scrape().await;
    assert_eq!(
        m.value("tencent_live_exporter_config_last_reload_successful"),
        0.0
    );
    assert_eq!(m.value(&quota("a")), 100.0, "series stay");
    h.poll_now().await;
    assert_eq!(
        calls_of(&h.sim, A.1),
        2,
        "the old configuration still polls"
    );

    // Fixing the file restores a good reload.
    h.rewrite_config(&[A], "package_types = [\"traffic\"]");
    let before = h
        .scrape()
        .await
        .value("tencent_live_exporter_config_last_reload_success_timestamp_seconds");
    assert_eq!(h.call("POST", "/-/reload").await.0, 200);
    let m = h.scrape().await;
    assert_eq!(
        m.value("tencent_live_exporter_config_last_reload_successful"),
        1.0
    );
    assert!(
        m.value("tencent_live_exporter_config_last_reload_success_timestamp_seconds") >= before
    );
}

#[tokio::test(start_paused = true)]
async fn changing_package_types_drops_and_adds_pairs() {
    let h = Harness::in_process(sim(), &[A], "package_types = [\"traffic\", \"transcode\"]");
    h.first_polls().await;
    assert!(
        h.scrape()
            .await
            .get(r#"tencent_live_up{account="a",package_type="transcode"}"#)
            .is_some()
    );
    h.rewrite_config(&[A], "package_types = [\"traffic\", \"co_anchoring\"]");
    assert_eq!(h.call("POST", "/-/reload").await.0, 200);
    h.exporter.wait_for_polls(1).await;
    let m = h.scrape().await;
    assert_eq!(
        m.get(r#"tencent_live_up{account="a",package_type="transcode"}"#),
        None
    );
    assert_eq!(
        m.value(r#"tencent_live_up{account="a",package_type="co_anchoring"}"#),
        1.0
    );
    assert_eq!(
        m.value(r#"tencent_live_up{account="a",package_type="traffic"}"#),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn changing_only_max_staleness_keeps_every_accounts_pollers() {
    let poll = "interval = \"5m\"\npackage_types = [\"traffic\"]";
    let h = Harness::in_process(sim(), &[A, B], poll);
    h.first_polls().await;
    tokio::time::advance(Duration::from_secs(150)).await;

    // max_staleness is the store's alone: no account restarts (a restart polls at once).
    h.rewrite_config(&[A, B], &format!("{poll}\nmax_staleness = \"1h\""));
    assert_eq!(h.call("POST", "/-/reload").await.0, 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!((calls_of(&h.sim, A.1), calls_of(&h.sim, B.1)), (1, 1));
    tokio::time::sleep(Duration::from_secs(150)).await;
    assert_eq!(
        (calls_of(&h.sim, A.1), calls_of(&h.sim, B.1)),
        (2, 2),
        "both kept their schedule"
    );

    // Any other [poll] setting restarts them.
    h.rewrite_config(
        &[A, B],
        &format!("{poll}\nmax_staleness = \"1h\"\ntimeout = \"9s\""),
    );
    assert_eq!(h.call("POST", "/-/reload").await.0, 200);
    h.exporter.wait_for_polls(1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(calls_of(&h.sim, A.1), 3, "A restarted and polled at once");
}

#[tokio::test(start_paused = true)]
async fn the_reload_log_says_what_changed() {
    let (logs, _guard) = crate::support::Logs::capture(tracing::Level::INFO);
    let h = Harness::in_process(sim(), &[A, B], "package_types = [\"traffic\"]");
    h.first_polls().await;

    // Only [poll] changes: no account is said to have changed.
    h.rewrite_config(&[A, B], "package_types = [\"traffic\"]\ntimeout = \"9s\"");
    assert_eq!(h.call("POST", "/-/reload").await.0, 200);
    let text = logs.text();
    assert!(
        text.contains("reload: [poll] settings changed, every account restarts"),
        "{text}"
    );
    assert!(!text.contains("account's"), "{text}");

    // B's keys change and A goes: each line says which.
    const B2: Account = ("b", "AKIDreloadB000000000000000000000000", "key-b-rotated");
    h.rewrite_config(&[B2], "package_types = [\"traffic\"]\ntimeout = \"9s\"");
    assert_eq!(h.call("POST", "/-/reload").await.0, 200);
    let text = logs.text();
    let line = |account: &str, what: &str| {
        text.lines()
            .any(|l| l.contains(&format!("account={account}")) && l.contains(what))
    };
    assert!(line("a", "reload: account removed"), "{text}");
    assert!(line("b", "reload: account's credentials changed"), "{text}");
}

/// An exporter on account A whose first reload is held up: it has read the old file (account B)
/// and waits, as a slow disk would, until `release` is sent; every later read gives the new file
/// (account C). `calls` counts the reads.
struct HeldReload {
    exporter: std::sync::Arc<tencent_live_exporter::app::Exporter>,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    release: std::sync::mpsc::Sender<()>,
    first: tokio::task::JoinHandle<Result<(), String>>,
    _sim: Simulator,
}

async fn hold_a_reload(tag: &str) -> HeldReload {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, mpsc};
    use tencent_live_exporter::app::{ConfigLoader, Exporter};
    use tencent_live_exporter::config::{self, Overrides};
    use tencent_live_exporter::tencent::transport::Transport;
    use tokio_util::sync::CancellationToken;

    use crate::support::{IN_PROCESS_ENDPOINT, PATIENCE, config_toml};

    let parse = |accounts: &[Account]| {
        let path = std::env::temp_dir().join(format!(
            "tle-reload-{tag}-{}-{}.toml",
            std::process::id(),
            accounts[0].0
        ));
        std::fs::write(&path, config_toml(accounts, IN_PROCESS_ENDPOINT, "")).unwrap();
        config::load(Some(&path), &Overrides::default(), Default::default()).unwrap()
    };
    let (old, new) = (parse(&[B]), parse(&[C]));
    let calls = Arc::new(AtomicUsize::new(0));
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let entered_tx = Mutex::new(entered_tx);
    let loader: ConfigLoader = {
        let calls = calls.clone();
        Arc::new(move || {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                // The first reload reads the old file, then is held up before it returns.
                entered_tx.lock().unwrap().send(()).unwrap();
                release_rx.lock().unwrap().recv_timeout(PATIENCE).unwrap();
                Ok(old.clone())
            } else {
                Ok(new.clone())
            }
        })
    };
    let sim = sim();
    let exporter = Exporter::start_with(
        &parse(&[A]),
        CancellationToken::new(),
        Transport::service(sim.router()),
        Some(loader),
    );
    let first = tokio::spawn({
        let e = exporter.clone();
        async move { e.reload_in_task().await }
    });
    tokio::task::spawn_blocking(move || entered.recv_timeout(PATIENCE).unwrap())
        .await
        .unwrap();
    HeldReload {
        exporter,
        calls,
        release,
        first,
        _sim: sim,
    }
}

/// Waits for a reload's task and its outcome, within the test's patience.
async fn reloaded(task: tokio::task::JoinHandle<Result<(), String>>) {
    tokio::time::timeout(crate::support::PATIENCE, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Once every reload is done: the newer configuration (account C) runs, the older (B) does not.
async fn assert_the_newest_file_runs(exporter: &tencent_live_exporter::app::Exporter) {
    exporter.wait_for_polls(1).await;
    let text = String::from_utf8(exporter.store().exposition().text.to_vec()).unwrap();
    assert!(
        text.contains(r#"tencent_live_up{account="c",package_type="traffic"} 1"#),
        "the newer configuration (account c) does not run:\n{text}"
    );
    assert!(
        !text.contains(r#"tencent_live_up{account="b""#),
        "the older one ran last:\n{text}"
    );
}

/// Two reloads at once: the first one's read of the configuration is held up (as a slow disk
/// would) while the file changes and the second one starts. The newest file must be the one that
/// runs: without serialization the second applies first and the first then applies the old file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_reloads_apply_in_order() {
    use std::sync::atomic::Ordering;

    let HeldReload {
        exporter,
        calls,
        release,
        first,
        _sim,
    } = hold_a_reload("order").await;
    let mut second = tokio::spawn({
        let e = exporter.clone();
        async move { e.reload_in_task().await }
    });
    // Unserialized, the second reload finishes now, before the first; serialized, it waits.
    let _ = tokio::time::timeout(Duration::from_millis(300), &mut second).await;
    release.send(()).unwrap();
    reloaded(first).await;
    reloaded(second).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_the_newest_file_runs(&exporter).await;
    exporter.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_removed_accounts_own_series_go_too() {
    let h = Harness::in_process(
        sim(),
        &[A, B],
        "interval = \"5m\"\npackage_types = [\"traffic\"]",
    );
    h.first_polls().await;
    let m = h.scrape().await;
    assert_eq!(
        m.value(r#"tencent_live_exporter_api_requests_total{account="b"}"#),
        1.0
    );
    let mut published = h.exporter.store().subscribe_published();
    h.rewrite_config(&[A], "interval = \"5m\"\npackage_types = [\"traffic\"]");
    assert_eq!(h.call("POST", "/-/reload").await.0, 200);
    let of_b = |m: &crate::support::Samples| -> Vec<String> {
        m.0.keys()
            .filter(|k| k.contains("account=\"b\""))
            .cloned()
            .collect()
    };
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        while !of_b(&h.scrape().await).is_empty() {
            published.changed().await.unwrap();
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "series of b stay: {:?}",
        of_b(&h.scrape().await)
    );
    let m = h.scrape().await;
    assert_eq!(
        m.value(r#"tencent_live_exporter_api_requests_total{account="a"}"#),
        1.0,
        "the remaining account keeps its counters"
    );
}

/// A burst of reloads while one is running: every caller gets an answer, and the burst costs one
/// more reload, not one per caller (a burst of `POST /-/reload` once held hundreds of connection
/// slots for a second each, one reload after another). The shared reload still reads the newest
/// file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_reloads_shares_one_queued_reload() {
    use crate::support::PATIENCE;
    use std::sync::atomic::Ordering;

    let HeldReload {
        exporter,
        calls,
        release,
        first,
        _sim,
    } = hold_a_reload("burst").await;
    // Each caller is polled once (it joins the queue on its first poll) before the running
    // reload is let go, so the whole burst is known to have arrived while it ran.
    let (joined_tx, mut joined) = tokio::sync::mpsc::unbounded_channel::<()>();
    let burst: Vec<_> = (0..50)
        .map(|_| {
            let (e, joined_tx) = (exporter.clone(), joined_tx.clone());
            tokio::spawn(async move {
                let reload = e.reload_in_task();
                tokio::pin!(reload);
                tokio::select! {
                    biased;
                    done = &mut reload => return done,
                    () = std::future::ready(()) => {}
                }
                joined_tx.send(()).unwrap();
                reload.await
            })
        })
        .collect();
    for _ in 0..50 {
        tokio::time::timeout(PATIENCE, joined.recv())
            .await
            .unwrap()
            .unwrap();
    }
    release.send(()).unwrap();
    reloaded(first).await;
    for reload in burst {
        reloaded(reload).await;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the running reload and one shared by the burst"
    );
    assert_the_newest_file_runs(&exporter).await;
    exporter.stop().await;
}
