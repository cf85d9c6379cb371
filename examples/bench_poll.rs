//! Poll-cycle benchmark of the request budget (issue 10), for `bench/run.py`: the real exporter
//! against the in-repo simulator in process, under paused (virtual) time, so that the figures are
//! the scheduling alone: exact, repeatable, with no CPU noise. The simulator adds the network:
//! a round-trip latency (half before arrival) and optionally a random 0-400 ms arrival delay,
//! and counts arrivals per SecretId, refusing beyond 20 per second as Tencent does.
//!
//! `cargo run --example bench_poll` prints one Markdown row per case.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tencent_live_exporter::app::Exporter;
use tencent_live_exporter::config::{self, Overrides};
use tencent_live_exporter::tencent::budget::{WINDOW, max_in_any_window};
use tencent_live_exporter::tencent::transport::Transport;
use tencent_live_simulator::Simulator;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const RPS: u64 = 20;
const PAGES: u64 = 100;

struct Case {
    name: String,
    rtt_ms: u64,
    arrival_delay_ms: u64,
    accounts: usize,
}

async fn run(case: &Case) -> String {
    let sim = Simulator::new();
    sim.add_account("AKIDbench", "bench-key");
    sim.set_packages(
        "AKIDbench",
        0,
        (0..PAGES * 100)
            .map(|i| json!({"Id": format!("p{i}"), "Type": 0, "Status": 1, "Total": 1000, "Used": 1, "Left": 999,
                            "BuyTime": "2026-07-16 18:46:08", "ExpireTime": "2027-07-16 18:46:08"}))
            .collect(),
    );
    let mut toml = format!(
        "[poll]\ninterval = \"1h\"\nrequests_per_second = {RPS}\npage_size = 100\npackage_types = [\"traffic\"]\ntimeout = \"10s\"\n"
    );
    for a in 0..case.accounts {
        toml.push_str(&format!(
            "[[accounts]]\nname = \"team{a}\"\nsecret_id = \"AKIDbench\"\nsecret_key = \"bench-key\"\nendpoint = \"http://live.simulator.test\"\n"
        ));
    }
    let path = std::env::temp_dir().join(format!("tle-bench-poll-{}.toml", std::process::id()));
    std::fs::write(&path, toml).unwrap();
    let config = config::load(Some(&path), &Overrides::default(), BTreeMap::new()).unwrap();
    let exporter = Exporter::start_with(
        &config,
        CancellationToken::new(),
        Transport::service(sim.router()),
        None,
    );
    exporter.wait_for_polls(1).await;
    // The measured poll: a quiet interval later, with the network set up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    sim.set_latency(Duration::from_millis(case.rtt_ms));
    sim.set_arrival_delay(Duration::from_millis(case.arrival_delay_ms), 42);
    sim.clear_requests();
    let start = Instant::now();
    exporter.poll_now().await;
    let took = start.elapsed();
    let log = sim.requests();
    let arrivals: Vec<Instant> = log.iter().map(|r| r.at).collect();
    let first = arrivals.iter().min().unwrap();
    let last = arrivals.iter().max().unwrap();
    let refused = log
        .iter()
        .filter(|r| r.outcome == "RequestLimitExceeded")
        .count();
    let peak = max_in_any_window(&arrivals, Duration::from_secs(1));
    let calls = log.len() as u64;
    let rtt = Duration::from_millis(case.rtt_ms);
    // The floor of a budget that bounds arrivals: each call holds its place for 1 s + its RTT.
    let floor = (Duration::from_secs(1) + rtt) * (calls.div_ceil(RPS) as u32 - 1) + rtt;
    // What a budget that counted sends only would allow: one window per 20 calls.
    let send_only = Duration::from_secs(1) * (calls.div_ceil(RPS) as u32 - 1) + rtt;
    exporter.stop().await;
    let _ = std::fs::remove_file(&path);
    format!(
        "| {} | {} | {:.2} s | {:.2} s | {:.2} s ({:+.1} %) | {:.2} s | {} | {} |",
        case.name,
        calls,
        last.duration_since(*first).as_secs_f64(),
        took.as_secs_f64(),
        floor.as_secs_f64(),
        (took.as_secs_f64() / floor.as_secs_f64() - 1.0) * 100.0,
        send_only.as_secs_f64(),
        peak,
        refused
    )
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let mut cases = Vec::new();
    for rtt in [0, 50, 150, 300] {
        cases.push(Case {
            name: format!("100 pages, RTT {rtt} ms"),
            rtt_ms: rtt,
            arrival_delay_ms: 0,
            accounts: 1,
        });
    }
    for rtt in [0, 150] {
        cases.push(Case {
            name: format!("100 pages, RTT {rtt} ms + random 0-400 ms arrival delay"),
            rtt_ms: rtt,
            arrival_delay_ms: 400,
            accounts: 1,
        });
    }
    cases.push(Case {
        name: "2 accounts sharing one key, 100 pages each, RTT 150 ms + 0-400 ms delay".into(),
        rtt_ms: 150,
        arrival_delay_ms: 400,
        accounts: 2,
    });
    println!("window held after each answer: {} ms", WINDOW.as_millis());
    println!(
        "| case | calls | first to last arrival | poll (first send to last answer) | floor | send-counting budget | most arrivals in 1 s | RequestLimitExceeded |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for case in &cases {
        println!("{}", run(case).await);
    }
}
