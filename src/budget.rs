//! The per-account request budget: at most N calls to the API in any one-second window.
//!
//! Every HTTP call (first tries and retries alike) takes a permit from its account's budget
//! before it is sent, whatever poller it belongs to. Time is `tokio::time`, so tests drive it
//! with `tokio::time::pause`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// The window the limit is counted in, plus a guard: the server counts by *arrival* time, and two
/// requests sent exactly one second apart can arrive less than a second apart.
pub const WINDOW: Duration = Duration::from_millis(1_025);

#[derive(Debug)]
pub struct Budget {
    /// Calls allowed per window.
    per_second: usize,
    /// Send times of the most recent calls, oldest first; never longer than `per_second`.
    /// The async mutex makes waiters queue in order, so concurrent pollers share the budget fairly.
    sent: Mutex<VecDeque<Instant>>,
}

impl Budget {
    pub fn new(per_second: u32) -> Self {
        let per_second = per_second.max(1) as usize;
        Budget {
            per_second,
            sent: Mutex::new(VecDeque::with_capacity(per_second)),
        }
    }

    pub fn per_second(&self) -> usize {
        self.per_second
    }

    /// Waits until one more call fits in the window, then records it as sent now.
    pub async fn acquire(&self) {
        let mut sent = self.sent.lock().await;
        loop {
            let now = Instant::now();
            while sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= WINDOW)
            {
                sent.pop_front();
            }
            if sent.len() < self.per_second {
                sent.push_back(now);
                return;
            }
            // Full: the oldest call leaves the window first.
            let oldest = *sent.front().expect("full window is not empty");
            tokio::time::sleep_until(oldest + WINDOW).await;
        }
    }
}

/// The largest number of instants that fall in any half-open window of `window` length.
/// Used by tests (here and in `tests/`) to check the budget from a log of send times.
pub fn max_in_any_window(times: &[Instant], window: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut best = 0;
    let mut start = 0;
    for end in 0..sorted.len() {
        while sorted[end].duration_since(sorted[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn three_concurrent_pollers_never_exceed_the_budget() {
        let budget = Arc::new(Budget::new(10));
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (budget, log) = (budget.clone(), log.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..40 {
                    budget.acquire().await;
                    log.lock().unwrap().push(Instant::now());
                    // Some work between calls, as a real poller has.
                    tokio::time::sleep(Duration::from_millis(7)).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let times = log.lock().unwrap().clone();
        assert_eq!(times.len(), 120);
        assert_eq!(max_in_any_window(&times, Duration::from_secs(1)), 10);
        // And no slower than the budget requires: 120 calls at 10 per window is 11 full waits.
        let took = times.iter().max().unwrap().duration_since(start);
        assert!(took <= WINDOW * 12, "took {took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_up_to_the_limit_goes_at_once() {
        let budget = Budget::new(20);
        let start = Instant::now();
        for _ in 0..20 {
            budget.acquire().await;
        }
        assert_eq!(Instant::now(), start);
        budget.acquire().await;
        assert_eq!(Instant::now().duration_since(start), WINDOW);
    }

    #[test]
    fn window_counting_is_half_open() {
        let t0 = Instant::now();
        let times = [
            t0,
            t0 + Duration::from_millis(999),
            t0 + Duration::from_secs(1),
        ];
        assert_eq!(max_in_any_window(&times, Duration::from_secs(1)), 2);
        assert_eq!(max_in_any_window(&[], Duration::from_secs(1)), 0);
    }
}
