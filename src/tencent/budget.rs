//! The request budget of one Tencent key: at most N calls *arriving* at the API in any one-second
//! window, whatever the network does.
//!
//! Tencent counts a call when it arrives (see `/work/shared/reference/tencent-live-api.md`:
//! "counted per API + region + sub-account by the server's arrival time"). A call may arrive at
//! any moment between its send and the moment its answer (or failure) is back, so a call is
//! counted in every one-second window that overlaps that span. The budget therefore hands out
//! permits: a permit is taken just before a call is sent and is held until [`WINDOW`] after the
//! answer or failure is back. At most N permits are held at once.
//!
//! A call abandoned in flight (the other pages of a poll that failed, a poll stopped by a reload
//! or shutdown) has no answer to wait for, and the bytes it wrote may still be on their way to the
//! server (in the network, in a proxy). Its permit is held as if the call had run to its timeout,
//! which is the latest its failure would have been back: until [`WINDOW`] after
//! `sent + timeout` (see [`Permit::sending`]), so abandoning a call never shortens its span.
//!
//! Why that bounds arrivals: if N+1 calls could arrive in one window `[t, t+1 s)`, each was sent
//! before `t+1 s` and came back at or after `t`, so each held its permit from its send until past
//! `t+1 s`; at the latest of their sends all N+1 permits were held at once, which the budget never
//! allows. (`tests::no_window_can_receive_more_than_the_limit` checks it for arbitrary timings.)
//!
//! Waiters are served fairly: each *lane* (an account's poller of one query type) has its own
//! first-in-first-out queue and free permits go round-robin over the lanes that wait, so one
//! poller's 100 concurrent page requests cannot starve its account's other two pollers.
//!
//! One budget is shared by every configured account that signs with the same Tencent key
//! (see `crate::app`); a reload keeps it, with its held permits, and [`Budget::set_limit`] applies
//! a new limit at once. Time is `tokio::time`, so tests drive it with `tokio::time::pause`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// How long a permit stays held after its call's answer is back: the one-second window the server
/// counts in, plus a guard for timer granularity.
pub const WINDOW: Duration = Duration::from_millis(1_025);

/// A shared request budget. See the [module documentation](self).
#[derive(Debug)]
pub struct Budget {
    state: Mutex<State>,
    /// Wakes waiters when a permit enters its cool-down or the limit changes.
    changed: Notify,
}

#[derive(Debug)]
struct State {
    /// Permits allowed at once (the calls per second).
    limit: usize,
    /// Calls sent whose answer is not back yet.
    in_flight: usize,
    /// When each finished call's permit comes free, soonest first (`back + WINDOW`; later for an
    /// abandoned call, so not in the order pushed).
    cooling: BinaryHeap<Reverse<Instant>>,
    /// Lanes with waiters, in round-robin order: the front lane is served next.
    lanes: VecDeque<Lane>,
}

#[derive(Debug)]
struct Lane {
    name: String,
    waiters: VecDeque<oneshot::Sender<()>>,
}

impl State {
    fn held(&self) -> usize {
        self.in_flight + self.cooling.len()
    }

    /// Frees expired permits and grants free ones to waiters, round-robin over lanes.
    fn pump(&mut self, now: Instant) {
        while self.cooling.peek().is_some_and(|t| t.0 <= now) {
            self.cooling.pop();
        }
        while self.held() < self.limit {
            let Some(mut lane) = self.lanes.pop_front() else {
                return;
            };
            while let Some(waiter) = lane.waiters.pop_front() {
                // A waiter that gave up (its poll was cancelled) has dropped its receiver.
                if waiter.send(()).is_ok() {
                    self.in_flight += 1;
                    break;
                }
            }
            if !lane.waiters.is_empty() {
                self.lanes.push_back(lane);
            }
        }
    }
}

/// The right to have one call in flight. [`Permit::done`] (answer or failure back) starts its
/// [`WINDOW`] of cool-down; dropped without it (the call abandoned), the cool-down starts no
/// earlier than the call's timeout would have ended it.
#[derive(Debug)]
pub struct Permit<'a> {
    budget: &'a Budget,
    /// `sent + timeout` once the call is sent: the latest its failure would be back.
    latest_back: Option<Instant>,
}

impl Permit<'_> {
    /// Says the call is being sent now and gives up after `timeout`: if it is abandoned, its
    /// permit is held until [`WINDOW`] after `now + timeout`.
    pub fn sending(&mut self, timeout: Duration) {
        self.latest_back = Instant::now().checked_add(timeout);
    }

    /// The answer or failure is back: the permit cools down for [`WINDOW`] from now.
    pub fn done(mut self) {
        self.latest_back = None;
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        let back = self.latest_back.map_or(now, |t| t.max(now));
        let mut state = self.budget.lock();
        state.in_flight -= 1;
        state.cooling.push(Reverse(back + WINDOW));
        drop(state);
        self.budget.changed.notify_waiters();
    }
}

/// A waiter's place in its lane: if it is dropped after being granted but before it took the
/// permit, the permit goes back unused.
struct Waiting<'a> {
    budget: &'a Budget,
    granted: oneshot::Receiver<()>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.granted.close();
        if self.granted.try_recv().is_ok() {
            let mut state = self.budget.lock();
            state.in_flight -= 1;
            state.pump(Instant::now());
        }
    }
}

impl Budget {
    /// A budget of `per_second` calls (at least 1).
    pub fn new(per_second: u32) -> Self {
        Budget {
            state: Mutex::new(State {
                limit: per_second.max(1) as usize,
                in_flight: 0,
                cooling: BinaryHeap::new(),
                lanes: VecDeque::new(),
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls allowed per second.
    pub fn per_second(&self) -> usize {
        self.lock().limit
    }

    /// Applies a new limit at once, keeping the permits held: after 10 -> 20 the calls of the
    /// last second still count against the 20; after 20 -> 10 no call is sent until fewer than
    /// 10 permits are held.
    pub fn set_limit(&self, per_second: u32) {
        let mut state = self.lock();
        state.limit = per_second.max(1) as usize;
        state.pump(Instant::now());
        drop(state);
        self.changed.notify_waiters();
    }

    /// Permits held now (calls in flight plus calls in their cool-down).
    pub fn held(&self) -> usize {
        let mut state = self.lock();
        state.pump(Instant::now());
        state.held()
    }

    fn enqueue(&self, lane: &str, waiter: oneshot::Sender<()>) {
        let mut state = self.lock();
        match state.lanes.iter_mut().find(|l| l.name == lane) {
            Some(l) => l.waiters.push_back(waiter),
            None => state.lanes.push_back(Lane {
                name: lane.to_owned(),
                waiters: VecDeque::from([waiter]),
            }),
        }
    }

    /// Waits for a permit in `lane`'s queue; send the call right after, and drop the permit when
    /// its answer or failure is back.
    pub async fn acquire(&self, lane: &str) -> Permit<'_> {
        let (tx, rx) = oneshot::channel();
        let mut waiting = Waiting {
            budget: self,
            granted: rx,
        };
        self.enqueue(lane, tx);
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let next_free = {
                let mut state = self.lock();
                state.pump(Instant::now());
                state.cooling.peek().map(|t| t.0)
            };
            let sleep = async {
                match next_free {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                got = &mut waiting.granted => {
                    if got.is_ok() {
                        // Taken: the guard's receiver is spent, so its drop returns nothing.
                        drop(waiting);
                        return Permit { budget: self, latest_back: None };
                    }
                    // Never expected (the budget drops no waiter it has not granted); queue again
                    // rather than spin or panic.
                    let (tx, rx) = oneshot::channel();
                    waiting.granted = rx;
                    self.enqueue(lane, tx);
                }
                () = &mut changed => {}
                () = sleep => {}
            }
        }
    }
}

/// What ties an account to others' budgets: the Tencent key that signs its calls and, when set,
/// its `rate_limit_group`. For `AssumeRole` the key is the source key (the temporary keys it
/// yields sign for the same account); for CVM roles and TKE OIDC, the role. The texts name the
/// key and never hold a secret (a SecretId is not one).
fn identities(account: &crate::config::AccountConfig) -> Vec<String> {
    let mut ids = vec![base_key(&account.credentials.base)];
    if let Some(group) = &account.rate_limit_group {
        ids.push(format!("rate_limit_group {group:?}"));
    }
    ids
}

/// Which budget each account draws from, by account name. See [`budget_groups`].
pub fn budget_keys(accounts: &[crate::config::AccountConfig]) -> HashMap<String, String> {
    budget_groups(accounts)
        .into_iter()
        .flat_map(|(key, names)| names.into_iter().map(move |n| (n, key.clone())))
        .collect()
}

fn base_key(base: &crate::tencent::credentials::BaseSource) -> String {
    use crate::tencent::credentials::{BaseSource, SecretIdFrom};
    match base {
        BaseSource::Static {
            secret_id: SecretIdFrom::Inline(id),
            ..
        } => format!("SecretId {id}"),
        BaseSource::Static {
            secret_id: SecretIdFrom::File(path),
            ..
        } => format!("SecretId of {}", path.display()),
        BaseSource::Env(credentials) => format!("SecretId {}", credentials.secret_id),
        BaseSource::Profile { file, profile } => {
            format!("profile [{profile}] of {}", file.display())
        }
        BaseSource::CvmRole {
            role,
            metadata_endpoint,
        } => format!(
            "CVM role {} of {}",
            role.as_deref().unwrap_or("(the instance's)"),
            metadata_endpoint.as_str().trim_end_matches('/')
        ),
        BaseSource::Oidc(oidc) => format!("OIDC role {}", oidc.role_arn),
        // The chain signs with its first link that gives credentials.
        BaseSource::Chain(links) => links
            .iter()
            .find_map(|l| l.source.as_ref().ok())
            .map_or_else(|| "credential chain".to_owned(), base_key),
    }
}

/// The budgets `accounts` draw from, each named with the names of its accounts, in
/// configuration order. Accounts that sign with the same key share one budget, and so do
/// accounts of one `rate_limit_group`, transitively: a group joins the budget of every key its
/// accounts sign with, since Tencent counts per key whatever label an account has. A budget is
/// named by its first `rate_limit_group`, else by its key. For `--check-config`, the start-up
/// log and [`budget_keys`].
pub fn budget_groups(accounts: &[crate::config::AccountConfig]) -> Vec<(String, Vec<String>)> {
    // Union-find over account positions: each joins the first account with a shared identity.
    fn root(parent: &[usize], mut i: usize) -> usize {
        while let Some(&p) = parent.get(i) {
            if p == i {
                break;
            }
            i = p;
        }
        i
    }
    let mut parent: Vec<usize> = (0..accounts.len()).collect();
    let mut first_with: HashMap<String, usize> = HashMap::new();
    for (i, account) in accounts.iter().enumerate() {
        for id in identities(account) {
            let j = *first_with.entry(id).or_insert(i);
            let (a, b) = (root(&parent, i), root(&parent, j));
            if let Some(slot) = parent.get_mut(a.max(b)) {
                *slot = a.min(b);
            }
        }
    }
    let mut groups: Vec<(usize, Option<String>, String, Vec<String>)> = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        let r = root(&parent, i);
        let group = account
            .rate_limit_group
            .as_ref()
            .map(|g| format!("rate_limit_group {g:?}"));
        match groups.iter_mut().find(|(k, ..)| *k == r) {
            Some((_, named, _, names)) => {
                if named.is_none() {
                    *named = group;
                }
                names.push(account.name.clone());
            }
            None => groups.push((
                r,
                group,
                base_key(&account.credentials.base),
                vec![account.name.clone()],
            )),
        }
    }
    groups
        .into_iter()
        .map(|(_, group, key, names)| (group.unwrap_or(key), names))
        .collect()
}

/// The largest number of instants that fall in any half-open window of `window` length.
/// Used by tests (here and in `tests/`) to check the budget from a log of arrival times.
// Proven: `start <= end < len` by the loop bounds.
#[allow(clippy::indexing_slicing)]
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

/// The most calls that can fall in one `window`-long half-open window `[t, t + window)` when each
/// call may arrive anywhere in its closed span `[sent, back]`, over every `t` and every choice of
/// arrival times: the adversary's count. A span meets `[t, t + window)` when
/// `sent < t + window` and `back >= t`, i.e. when `t` is in `(sent - window, back]`.
pub fn max_possible_in_any_window(spans: &[(Instant, Instant)], window: Duration) -> usize {
    // Events on t: a span starts counting just after `sent - window` and stops after `back`.
    // Shift by `window` to stay non-negative: t' = t + window in (sent, back + window].
    let mut events: Vec<(Instant, i32)> = Vec::with_capacity(spans.len() * 2);
    for &(sent, back) in spans {
        // Open at `sent` (exclusive), closed at `back + window` (inclusive): as integer-free
        // instants, an opening at `sent` counts for t' > sent, a closing after `back + window`.
        events.push((sent, 1));
        events.push((back + window, -1));
    }
    // At equal instants, closings (inclusive ends) are counted before openings (exclusive starts)
    // are applied: t' = x is inside spans ending at x, and not yet inside spans opening at x. So
    // measure between events: after applying every opening at x, the count holds on (x, next).
    // A span ending at x and one opening at x never overlap at any t', so apply closings first.
    events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut best) = (0i32, 0i32);
    for (_, delta) in events {
        now += delta;
        best = best.max(now);
    }
    best.max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    /// Runs `calls` (start delay, round trip) in `lanes` concurrent lanes against a budget of
    /// `limit`; returns each call's (sent, back).
    async fn run_calls(
        limit: u32,
        lanes: usize,
        calls: Vec<(u64, u64)>,
    ) -> Vec<(Instant, Instant)> {
        let budget = Arc::new(Budget::new(limit));
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, (delay, rtt)) in calls.into_iter().enumerate() {
            let (budget, log) = (budget.clone(), log.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let permit = budget.acquire(&format!("lane{}", i % lanes)).await;
                let sent = Instant::now();
                tokio::time::sleep(Duration::from_millis(rtt)).await;
                let back = Instant::now();
                drop(permit);
                log.lock().unwrap().push((sent, back));
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(log).unwrap().into_inner().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// For any send/answer timings, no one-second window can receive more than the limit,
        /// wherever in its span each call arrives.
        #[test]
        fn no_window_can_receive_more_than_the_limit(
            limit in 1u32..8,
            lanes in 1usize..4,
            calls in proptest::collection::vec((0u64..3_000, 0u64..1_500), 1..60),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            let n = calls.len();
            let spans = rt.block_on(run_calls(limit, lanes, calls));
            prop_assert_eq!(spans.len(), n);
            let worst = max_possible_in_any_window(&spans, Duration::from_secs(1));
            prop_assert!(worst <= limit as usize, "{} calls could arrive in one second at a limit of {}", worst, limit);
        }
    }

    #[test]
    fn the_adversary_count_sees_overlapping_spans() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // Sent at 0 and back at 500 / sent at 1400: the first may arrive at 500, the second at
        // 1400, 900 ms apart: both in one window.
        assert_eq!(
            max_possible_in_any_window(
                &[(ms(0), ms(500)), (ms(1400), ms(1400))],
                Duration::from_secs(1)
            ),
            2
        );
        // Back at 0, sent at 1000 exactly: never in one half-open window.
        assert_eq!(
            max_possible_in_any_window(
                &[(ms(0), ms(0)), (ms(1000), ms(1000))],
                Duration::from_secs(1)
            ),
            1
        );
        assert_eq!(max_possible_in_any_window(&[], Duration::from_secs(1)), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn three_concurrent_pollers_never_exceed_the_budget() {
        let budget = Arc::new(Budget::new(10));
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for lane in 0..3 {
            let (budget, log) = (budget.clone(), log.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..40 {
                    let _permit = budget.acquire(&format!("lane{lane}")).await;
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
        // No slower than the budget requires: 12 rounds of (7 ms + WINDOW).
        let took = times.iter().max().unwrap().duration_since(start);
        assert!(
            took <= (WINDOW + Duration::from_millis(7)) * 12,
            "took {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_up_to_the_limit_goes_at_once_and_the_next_waits_for_the_answer() {
        let budget = Budget::new(20);
        let start = Instant::now();
        let mut permits = Vec::new();
        for _ in 0..20 {
            permits.push(budget.acquire("a").await);
        }
        assert_eq!(Instant::now(), start);
        // Answers come back after 300 ms: the 21st call waits for one WINDOW after that.
        tokio::time::sleep(Duration::from_millis(300)).await;
        permits.clear();
        let _p = budget.acquire("a").await;
        assert_eq!(
            Instant::now().duration_since(start),
            Duration::from_millis(300) + WINDOW
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_in_flight_holds_its_permit_until_its_answer_is_back() {
        let budget = Arc::new(Budget::new(1));
        let slow = budget.acquire("a").await;
        let b = budget.clone();
        let waiter = tokio::spawn(async move {
            let _p = b.acquire("b").await;
            Instant::now()
        });
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            !waiter.is_finished(),
            "no permit while the only call is in flight"
        );
        drop(slow);
        let got = waiter.await.unwrap();
        assert_eq!(got.duration_since(start), Duration::from_secs(5) + WINDOW);
    }

    /// A call abandoned in flight (its poll failed on another page, or was stopped) may still
    /// arrive: its permit is held as if it had run to its timeout, never less.
    #[tokio::test(start_paused = true)]
    async fn an_abandoned_call_holds_its_permit_as_if_it_ran_to_its_timeout() {
        let budget = Arc::new(Budget::new(1));
        let start = Instant::now();
        let mut sent = budget.acquire("a").await;
        sent.sending(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(sent);
        let _p = budget.acquire("a").await;
        assert_eq!(
            Instant::now().duration_since(start),
            Duration::from_secs(10) + WINDOW
        );
        // Answered: one WINDOW from the answer, whatever the timeout.
        let budget = Budget::new(1);
        let start = Instant::now();
        let mut answered = budget.acquire("a").await;
        answered.sending(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
        answered.done();
        let _p = budget.acquire("a").await;
        assert_eq!(
            Instant::now().duration_since(start),
            Duration::from_millis(100) + WINDOW
        );
        // Dropped before it was sent: nothing left the host.
        let budget = Budget::new(1);
        let start = Instant::now();
        drop(budget.acquire("a").await);
        let _p = budget.acquire("a").await;
        assert_eq!(Instant::now().duration_since(start), WINDOW);
    }

    #[tokio::test(start_paused = true)]
    async fn lanes_are_served_round_robin() {
        let budget = Arc::new(Budget::new(1));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        // Lane "traffic" queues 10 calls before the others queue one each.
        let mut tasks = Vec::new();
        for (lane, n) in [("traffic", 10), ("transcode", 1), ("coanchor", 1)] {
            for _ in 0..n {
                let (budget, order) = (budget.clone(), order.clone());
                tasks.push(tokio::spawn(async move {
                    let _p = budget.acquire(lane).await;
                    order.lock().unwrap().push(lane);
                }));
                tokio::task::yield_now().await;
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let pos = |lane| order.iter().position(|l| *l == lane).unwrap();
        // The first traffic call went at once; then one of each waiting lane in turn.
        assert_eq!(pos("transcode"), 2, "{order:?}");
        assert_eq!(pos("coanchor"), 3, "{order:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_limit_applies_at_once_and_keeps_the_history() {
        let budget = Budget::new(10);
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..10 {
            drop(budget.acquire("a").await);
            sent.push(Instant::now());
        }
        budget.set_limit(20);
        for _ in 0..20 {
            drop(budget.acquire("a").await);
            sent.push(Instant::now());
        }
        // The 10 calls before the change still count against the 20.
        assert_eq!(max_in_any_window(&sent, Duration::from_secs(1)), 20);
        assert_eq!(sent[19].duration_since(start), Duration::ZERO);
        assert_eq!(sent[20].duration_since(start), WINDOW);
        assert_eq!(sent[29].duration_since(start), WINDOW);
        // Lowered: nothing goes until fewer than 5 are held.
        budget.set_limit(5);
        let before = Instant::now();
        drop(budget.acquire("a").await);
        assert!(Instant::now().duration_since(before) >= WINDOW - Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_waiter_gives_its_place_back() {
        let budget = Arc::new(Budget::new(1));
        let held = budget.acquire("a").await;
        let b = budget.clone();
        let gave_up = tokio::spawn(async move {
            let _p = b.acquire("a").await;
        });
        tokio::task::yield_now().await;
        gave_up.abort();
        let _ = gave_up.await;
        drop(held);
        tokio::time::sleep(WINDOW).await;
        assert_eq!(budget.held(), 0);
        let start = Instant::now();
        let _p = budget.acquire("b").await;
        assert_eq!(Instant::now(), start);
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
