//! Cost of the request budget with many queued calls (issue 19): `n` calls queue at once on one
//! budget of 20/s (one `rate_limit_group` joining many large accounts), each answered at once;
//! virtual time (so only the budget's own work is measured), one thread. Prints the CPU time
//! (wall time of the single-threaded run) and the budget's lock acquisitions per queue length:
//! linear growth is the target.
//!
//! `cargo run --example bench_budget`

use std::time::Duration;

use tencent_live_exporter::tencent::budget::Budgets;

async fn queued(n: usize) -> (Duration, u64) {
    let budgets = Budgets::new(20, Duration::ZERO);
    let budget = budgets.account("joined");
    let started = std::time::Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let budget = budget.clone();
        tasks.push(tokio::spawn(async move {
            let permit = budget.acquire(&format!("lane{}", i % 30)).await;
            permit.done();
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (started.elapsed(), budgets.lock_count())
}

fn main() {
    println!("| queued calls | CPU time | lock acquisitions |");
    println!("|---|---|---|");
    for n in [100, 1_000, 3_000] {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let (took, locks) = rt.block_on(queued(n));
        println!("| {n} | {:.1} ms | {locks} |", took.as_secs_f64() * 1e3);
    }
}
