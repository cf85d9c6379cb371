//! Soak under controlled time: polling with several accounts and random faults, for
//! `TLE_SOAK_MINUTES` minutes of paused time (default 20, a few seconds of a `cargo test`; CI's
//! `.ci/run` sets 360, six hours, about a minute on 2 cores). Asserts
//! that no account ever crossed its budget in any second, that no scrape ever held a duplicate
//! series, that the series and the memory held stay flat, and that the end state equals the
//! start state once the faults stop.

use std::time::Duration;

use serde_json::json;
use tencent_live_exporter::tencent::budget::max_in_any_window;
use tencent_live_simulator::Simulator;

use crate::support::{Account, Harness, Samples};

const ACCOUNTS: [Account; 4] = [
    ("s1", "AKIDsoak1000000000000000000000000000", "soak-key-1"),
    ("s2", "AKIDsoak2000000000000000000000000000", "soak-key-2"),
    ("s3", "AKIDsoak3000000000000000000000000000", "soak-key-3"),
    ("s4", "AKIDsoak4000000000000000000000000000", "soak-key-4"),
];
const RPS: usize = 5;
const POLL: &str = "interval = \"1m\"\npage_size = 10\ntimeout = \"2s\"\nmax_retries = 1\nbackoff_base = \"100ms\"\nbackoff_max = \"2s\"\nrequests_per_second = 5";

/// Minutes of soak without `TLE_SOAK_MINUTES`: enough for the faults to be felt.
const DEFAULT_MINUTES: u32 = 20;
/// The budget is checked over the request log every this many minutes (the log is bounded).
const BUDGET_CHECK_EVERY: u32 = 60;

fn soak_minutes() -> u32 {
    match std::env::var("TLE_SOAK_MINUTES") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|m| *m > 0)
            .unwrap_or_else(|| panic!("TLE_SOAK_MINUTES={v:?}: a number of minutes above 0")),
        Err(_) => DEFAULT_MINUTES,
    }
}

fn sim() -> Simulator {
    let sim = Simulator::new();
    for (n, (_, id, key)) in ACCOUNTS.iter().enumerate() {
        sim.add_account(id, key);
        let pkg = |i: usize, kind: u8| {
            json!({"Id": format!("{n}-{kind}-{i}"), "Type": kind, "Status": 1, "Total": 10_000, "Used": i, "Left": 10_000 - i,
                   "BuyTime": "2026-01-01 00:00:00", "ExpireTime": "2099-06-01 00:00:00", "WillRenew": 1, "RenewalResult": 0})
        };
        sim.set_packages(id, 0, (0..30).map(|i| pkg(i, 0)).collect());
        sim.set_packages(id, 1, (0..5).map(|i| pkg(i, 1)).collect());
        sim.set_packages(id, 2, (0..2).map(|i| pkg(i, 3)).collect());
    }
    sim
}

/// Package series only (values that do not depend on time or on the faults).
fn package_series(m: &Samples) -> Vec<(String, f64)> {
    m.0.iter()
        .filter(|(k, _)| k.starts_with("tencent_live_package_") && k.contains("package_id="))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn hours_of_random_faults_stay_within_budget_and_flat() {
    let minutes = soak_minutes();
    let h = Harness::in_process(sim(), &ACCOUNTS, POLL);
    h.first_polls().await;
    let start = h.scrape().await;
    let baseline_series = start.0.len();
    let baseline_packages = package_series(&start);
    assert_eq!(
        baseline_packages.len(),
        4 * 37 * 8,
        "8 series per usable package"
    );
    let baseline_bytes = h.scrape_text().await.len();

    for (seed, (_, id, _)) in ACCOUNTS.iter().enumerate() {
        h.sim.set_random_faults(id, 0.15, seed as u64 + 1);
    }
    let mut worst_series = 0;
    let mut largest_text = 0;
    let mut down_seen = 0;
    for minute in 1..=minutes {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let text = h.scrape_text().await;
        let m = Samples::parse(&text); // panics on a duplicate series
        worst_series = worst_series.max(m.0.len());
        largest_text = largest_text.max(text.len());
        down_seen +=
            m.0.iter()
                .filter(|(k, v)| k.starts_with("tencent_live_up{") && **v == 0.0)
                .count();
        // The request log is bounded, so check the budget every hour over the last hour, and
        // at the end over what is left.
        if minute % BUDGET_CHECK_EVERY == 0 || minute == minutes {
            let log = h.sim.requests();
            for (_, id, _) in ACCOUNTS {
                let times: Vec<_> = log
                    .iter()
                    .filter(|r| r.secret_id.as_deref() == Some(id))
                    .map(|r| r.at)
                    .collect();
                let peak = max_in_any_window(&times, Duration::from_secs(1));
                assert!(
                    peak <= RPS,
                    "{id}: {peak} calls in one second at minute {minute}"
                );
            }
            h.sim.clear_requests();
        }
    }
    eprintln!(
        "soak: {minutes} min, {baseline_series} series at start, at most {worst_series}; exposition {baseline_bytes} -> at most {largest_text} bytes; {down_seen} up=0 samples seen"
    );
    // Counters grow a label set per error code; everything else is fixed. A handful of error
    // codes is all the random faults can produce.
    assert!(
        worst_series <= baseline_series + 4 * 8,
        "series grew: {worst_series} vs {baseline_series}"
    );
    assert!(
        largest_text <= baseline_bytes + 16 * 1024,
        "exposition grew: {largest_text} vs {baseline_bytes}"
    );
    assert!(
        down_seen > 0,
        "the faults were felt at least once (else this soak proves nothing)"
    );

    for (_, id, _) in ACCOUNTS {
        h.sim.set_random_faults(id, 0.0, 0);
    }
    h.poll_now().await;
    let end = h.scrape().await;
    assert_eq!(
        package_series(&end),
        baseline_packages,
        "the end state equals the start state"
    );
    assert!(
        end.0
            .iter()
            .filter(|(k, _)| k.starts_with("tencent_live_up{"))
            .all(|(_, v)| *v == 1.0)
    );
}
