//! The Live API simulator as a process, for `bench/run.py`: `K` accounts (`AKIDbench0..`, keys
//! `bench-key-0..`) with `N` traffic packages each (and, with `TYPES` = 3, `N` transcode and `N`
//! co-anchoring packages too), and `GET /__requests` answering the request log as lines
//! (`secret_id page_num outcome milliseconds_since_start package_type`).
//!
//! `cargo run --release --example bench_simulator -- 127.0.0.1:0 ACCOUNTS PACKAGES [TYPES]`

use std::fmt::Write as _;

use axum::routing::get;
use serde_json::json;
use tencent_live_simulator::Simulator;
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen = args.get(1).map_or("127.0.0.1:0", String::as_str);
    let accounts: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let packages: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(100);
    let types: u8 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1);

    let sim = Simulator::new();
    for a in 0..accounts {
        let id = format!("AKIDbench{a}");
        sim.add_account(&id, &format!("bench-key-{a}"));
        sim.set_packages(
            &id,
            0,
            (0..packages)
                .map(|i| {
                    json!({"Id": format!("{a}-{i}"), "Type": 0, "Status": 1, "Total": 500_000_000_000u64,
                           "Used": 2_365_271_265u64 + i as u64, "Left": 497_634_728_735u64 - i as u64,
                           "BuyTime": "2026-07-16 18:46:08", "ExpireTime": "2027-07-16 18:46:08",
                           "WillRenew": 0, "RenewalResult": 0})
                })
                .collect(),
        );
        // Query 1 lists transcode packages (Type 1, minutes), query 2 co-anchoring (Type 3, hours).
        for (query, kind) in [(1u8, 1), (2, 3)]
            .into_iter()
            .take(usize::from(types.max(1) - 1))
        {
            sim.set_packages(
                &id,
                query,
                (0..packages)
                    .map(|i| {
                        json!({"Id": format!("{a}-{query}-{i}"), "Type": kind, "Status": 1, "Total": 60_000u64,
                               "Used": 1_000u64 + i as u64, "Left": 59_000u64 - i as u64,
                               "BuyTime": "2026-07-16 18:46:08", "ExpireTime": "2027-07-16 18:46:08",
                               "WillRenew": 0, "RenewalResult": 0})
                    })
                    .collect(),
            );
        }
    }
    let start = tokio::time::Instant::now();
    let log = sim.clone();
    let router = sim.router().route(
        "/__requests",
        get(move || {
            let log = log.clone();
            async move {
                let mut out = String::new();
                for r in log.requests() {
                    let _ = writeln!(
                        out,
                        "{} {} {} {:.3} {}",
                        r.secret_id.unwrap_or_default(),
                        r.page_num.unwrap_or(0),
                        r.outcome,
                        r.at.duration_since(start).as_secs_f64() * 1000.0,
                        r.package_type.unwrap_or(-1)
                    );
                }
                out
            }
        }),
    );
    let listener = TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await
}

async fn shutdown() {
    let _ = tokio::signal::ctrl_c().await;
}
