//! The request budgets: at most N calls *arriving* at the Live API in any one-second window per
//! what Tencent counts, whatever the network, a reload or a restart does.
//!
//! Tencent counts calls per API + access region + sub-account, by the time they arrive at the
//! server (Tencent Cloud API 3.0, "API 频率限制说明", document 1278/109059). The exporter keys a
//! budget by the nearest thing it knows without asking anyone, the account's *identity*
//! ([`identity`]): the SecretId of a long-term key, wherever it is read from (inline, file,
//! profile, environment), and the role for temporary keys (`role_arn`, the CVM role, the TKE
//! role). Two long-term keys of one sub-account are joined with `rate_limit_group`, which also
//! joins whatever else its accounts sign with. [`Plan`] is the one place that decides which
//! accounts share a budget (the daemon, reloads and `--check-config` all read it).
//!
//! A call may arrive at any moment between its send and the moment its answer (or failure) is
//! back, so it is counted in every one-second window that overlaps that span. The budget hands
//! out permits: a permit is taken just before a call is sent and is held until [`WINDOW`] after
//! the answer or failure is back. At most N permits are held at once per budget.
//!
//! A call abandoned in flight (the other pages of a poll that failed, a poll stopped by a reload
//! or shutdown) has no answer to wait for, and the bytes it wrote may still be on their way to
//! the server. Its permit is held as if the call had run to its timeout, the latest its failure
//! would have been back: until [`WINDOW`] after `sent + timeout` (see [`Permit::sending`]).
//!
//! Why that bounds arrivals: if N+1 calls could arrive in one window `[t, t+1 s)`, each was sent
//! before `t+1 s` and came back at or after `t`, so each held its permit from its send until past
//! `t+1 s`; at the latest of their sends all N+1 permits were held at once, which the budget never
//! allows. (`tests::no_window_can_receive_more_than_the_limit` checks it for arbitrary timings,
//! reloads and restarts.)
//!
//! **Permits belong to an identity, not to a budget.** Each identity keeps a ledger of its calls
//! in flight and cooling down; a budget is the set of ledgers it holds. A reload
//! ([`Budgets::apply`]), whatever it renames, merges or splits, moves each ledger into the budget
//! that now holds its identity, so no act of the operator forgets what was sent. A key that
//! rotates (a `secret_id_file` rewritten) signs with a SecretId the plan did not know: its ledger
//! joins the account's budget, next to the old key's, so the calls of the last second still count.
//! An identity no account holds any more stays, while it has permits held, in the budget of the
//! account that last used it.
//!
//! **Across processes.** A new process knows nothing of the previous one's calls. The daemon
//! holds its first call for one [`WINDOW`] ([`Budgets::new`]'s `hold`), and a stopping daemon
//! waits ([`Budgets::quiet`]) until its calls abandoned in flight could no longer arrive (at most
//! `poll.timeout`) before it exits: together, a previous process's calls never share a window
//! with the next one's. A process that is killed (SIGKILL, a crash) cannot wait; the systemd
//! unit's `RestartSec` is longer than `poll.timeout` + [`WINDOW`] for that case.
//!
//! Waiters are served fairly: each *lane* (an account's poller of one query type) has its own
//! first-in-first-out queue and free permits go round-robin over the lanes that wait. A freed
//! permit wakes exactly one waiter: permits come free only with time, so one driver task sleeps
//! until the next one does and hands it over; the cost grows linearly with the calls queued.
//! Time is `tokio::time`, so tests drive it with `tokio::time::pause`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

mod plan;

pub use plan::{Plan, PlanAccount, PlannedBudget, identity};

/// How long a permit stays held after its call's answer is back: the one-second window the server
/// counts in, plus a guard for timer granularity.
pub const WINDOW: Duration = Duration::from_millis(1_025);

/// Every budget of a process, and the ledgers of every identity that has called. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Budgets {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the driver: a waiter queued, a permit started cooling, the plan changed.
    driver: Arc<Notify>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Lets the driver see that the budgets are gone, and end.
        self.driver.notify_one();
    }
}

#[derive(Debug)]
struct State {
    /// Permits allowed at once per budget (the calls per second).
    limit: usize,
    /// No permit before this instant (a previous process's calls may still land before it).
    hold_until: Instant,
    ledgers: HashMap<String, Ledger>,
    /// Indexed by the ledgers' `budget`.
    budgets: Vec<BudgetState>,
    /// Each planned account's budget and identity.
    accounts: HashMap<String, (usize, String)>,
    driver_started: bool,
    /// Lock acquisitions, for the benchmark's figures.
    locks: u64,
}

#[derive(Debug, Default)]
struct Ledger {
    /// The budget that holds it.
    budget: usize,
    /// Calls sent whose answer is not back yet.
    in_flight: usize,
    /// When each finished call's permit comes free (`back + WINDOW`; later for an abandoned
    /// call), soonest first.
    cooling: BinaryHeap<Reverse<Instant>>,
    /// The account that last called with it: where it stays once no account has it.
    last_account: Option<String>,
}

impl Ledger {
    fn expire(&mut self, now: Instant) {
        while self.cooling.peek().is_some_and(|t| t.0 <= now) {
            self.cooling.pop();
        }
    }

    fn held(&self) -> usize {
        self.in_flight + self.cooling.len()
    }
}

#[derive(Debug, Default)]
struct BudgetState {
    name: String,
    /// The identities whose ledgers it holds.
    members: Vec<String>,
    /// Lanes with waiters, in round-robin order: the front lane is served next.
    lanes: VecDeque<Lane>,
}

#[derive(Debug)]
struct Lane {
    name: String,
    waiters: VecDeque<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    account: String,
    identity: String,
    granted: oneshot::Sender<()>,
}

impl State {
    /// Frees `budget`'s expired permits and grants free ones to its waiters, round-robin over
    /// lanes. Work: one step per permit granted, plus the budget's few identities.
    fn pump(&mut self, budget: usize, now: Instant) {
        if now < self.hold_until {
            return;
        }
        let Some(b) = self.budgets.get_mut(budget) else {
            return;
        };
        if b.lanes.is_empty() {
            return;
        }
        let mut held = 0;
        for id in &b.members {
            if let Some(ledger) = self.ledgers.get_mut(id) {
                ledger.expire(now);
                held += ledger.held();
            }
        }
        while held < self.limit {
            let Some(mut lane) = b.lanes.pop_front() else {
                return;
            };
            while let Some(waiter) = lane.waiters.pop_front() {
                // A waiter that gave up (its poll was cancelled) has dropped its receiver.
                if waiter.granted.send(()).is_ok() {
                    self.ledgers.entry(waiter.identity).or_default().in_flight += 1;
                    held += 1;
                    break;
                }
            }
            if !lane.waiters.is_empty() {
                b.lanes.push_back(lane);
            }
        }
    }

    fn pump_all(&mut self, now: Instant) {
        for budget in 0..self.budgets.len() {
            self.pump(budget, now);
        }
    }

    /// When the driver must next look: the hold's end, or the soonest permit to come free in a
    /// budget that has waiters.
    fn next_wake(&self, now: Instant) -> Option<Instant> {
        let waiting = self.budgets.iter().filter(|b| !b.lanes.is_empty());
        if now < self.hold_until {
            return waiting.map(|_| self.hold_until).next();
        }
        waiting
            .flat_map(|b| b.members.iter())
            .filter_map(|id| self.ledgers.get(id)?.cooling.peek().map(|t| t.0))
            .min()
    }

    /// The budget for `identity` called by `account`: the one that holds the identity, else (a
    /// key the plan did not know: rotated, or a test's) the account's, which takes its ledger.
    fn budget_for(&mut self, account: &str, identity: &str) -> usize {
        if let Some(ledger) = self.ledgers.get(identity) {
            return ledger.budget;
        }
        let budget = match self.accounts.get(account) {
            Some((budget, _)) => *budget,
            None => {
                self.budgets.push(BudgetState {
                    name: identity.to_owned(),
                    ..BudgetState::default()
                });
                self.budgets.len() - 1
            }
        };
        if let Some(b) = self.budgets.get_mut(budget) {
            b.members.push(identity.to_owned());
        }
        self.ledgers.insert(
            identity.to_owned(),
            Ledger {
                budget,
                ..Ledger::default()
            },
        );
        budget
    }
}

impl Budgets {
    /// Empty budgets of `per_second` calls each (at least 1) that grant nothing for `hold` from
    /// now. [`Budgets::apply`] sets which accounts share which.
    pub fn new(per_second: u32, hold: Duration) -> Self {
        Budgets {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    limit: per_second.max(1) as usize,
                    hold_until: Instant::now() + hold,
                    ledgers: HashMap::new(),
                    budgets: Vec::new(),
                    accounts: HashMap::new(),
                    driver_started: false,
                    locks: 0,
                }),
                driver: Arc::new(Notify::new()),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    /// Applies a plan and a limit at once, keeping every permit held: each identity's ledger goes
    /// to the budget that now holds it (an identity no account has any more, while it has
    /// permits held, to the budget of the account that last used it), and waiters follow their
    /// identity. After 10 -> 20 the calls of the last second still count against the 20; after
    /// 20 -> 10 no call is sent until fewer than 10 permits are held.
    pub fn apply(&self, plan: &Plan, per_second: u32) {
        let now = Instant::now();
        let mut state = self.lock();
        state.limit = per_second.max(1) as usize;
        let old = std::mem::take(&mut state.budgets);
        state.budgets = plan
            .budgets
            .iter()
            .map(|b| BudgetState {
                name: b.name.clone(),
                ..BudgetState::default()
            })
            .collect();
        state.accounts = HashMap::new();
        let mut of_identity: HashMap<&str, usize> = HashMap::new();
        for (n, b) in plan.budgets.iter().enumerate() {
            for id in &b.identities {
                of_identity.insert(id, n);
            }
            for account in &b.accounts {
                let id = plan.identities.get(account).cloned().unwrap_or_default();
                state.accounts.insert(account.clone(), (n, id));
            }
        }
        let accounts = state.accounts.clone();
        let old_names: Vec<String> = old.iter().map(|b| b.name.clone()).collect();
        let mut orphans: Vec<(String, usize)> = Vec::new();
        state.ledgers.retain(|id, ledger| {
            ledger.expire(now);
            if let Some(&n) = of_identity.get(id.as_str()) {
                ledger.budget = n;
                return true;
            }
            if ledger.held() == 0 {
                return false;
            }
            match ledger.last_account.as_ref().and_then(|a| accounts.get(a)) {
                Some((n, _)) => ledger.budget = *n,
                None => orphans.push((id.clone(), ledger.budget)),
            }
            true
        });
        // Held permits of an identity no account has: a budget of their own, so they still count
        // if the identity comes back.
        for (id, was) in orphans {
            let name = old_names.get(was).cloned().unwrap_or_else(|| id.clone());
            state.budgets.push(BudgetState {
                name,
                ..BudgetState::default()
            });
            let n = state.budgets.len() - 1;
            if let Some(ledger) = state.ledgers.get_mut(&id) {
                ledger.budget = n;
            }
        }
        let members: Vec<(String, usize)> = state
            .ledgers
            .iter()
            .map(|(id, l)| (id.clone(), l.budget))
            .collect();
        for (id, n) in members {
            if let Some(b) = state.budgets.get_mut(n) {
                b.members.push(id);
            }
        }
        // Waiters follow their identity, each lane keeping its order.
        for lane in old.into_iter().flat_map(|b| b.lanes) {
            for waiter in lane.waiters {
                let n = state.budget_for(&waiter.account, &waiter.identity);
                enqueue(&mut state, n, &lane.name, waiter);
            }
        }
        state.pump_all(now);
        drop(state);
        self.shared.driver.notify_one();
    }

    /// The budget handle of `account` (as planned by the last [`Budgets::apply`]) for its client.
    pub fn account(&self, account: &str) -> Budget {
        let identity = self
            .lock()
            .accounts
            .get(account)
            .map_or_else(|| format!("account {account}"), |(_, id)| id.clone());
        Budget {
            shared: self.shared.clone(),
            account: account.to_owned(),
            identity,
        }
    }

    /// Permits held now in the budget that holds `identity` (calls in flight plus calls in their
    /// cool-down).
    pub fn held(&self, identity: &str) -> usize {
        let now = Instant::now();
        let mut state = self.lock();
        let Some(budget) = state.ledgers.get(identity).map(|l| l.budget) else {
            return 0;
        };
        let members = state
            .budgets
            .get(budget)
            .map(|b| b.members.clone())
            .unwrap_or_default();
        members
            .iter()
            .filter_map(|id| {
                let ledger = state.ledgers.get_mut(id)?;
                ledger.expire(now);
                Some(ledger.held())
            })
            .sum()
    }

    /// Waits until no call of these budgets can still arrive at Tencent: none in flight, and every
    /// abandoned call's timeout passed. A stopping daemon waits for it (at most `poll.timeout`
    /// once its pollers are stopped), so the next process's first call, one [`WINDOW`] after its
    /// start, never shares a window with this one's.
    pub async fn quiet(&self) {
        loop {
            let (in_flight, latest) = {
                let state = self.lock();
                let in_flight: usize = state.ledgers.values().map(|l| l.in_flight).sum();
                let latest = state
                    .ledgers
                    .values()
                    .flat_map(|l| l.cooling.iter())
                    .map(|t| t.0)
                    .max();
                (in_flight, latest)
            };
            let back = latest.and_then(|t| t.checked_sub(WINDOW));
            match (in_flight, back) {
                (0, None) => return,
                (0, Some(t)) if t <= Instant::now() => return,
                (0, Some(t)) => tokio::time::sleep_until(t).await,
                // Calls still in flight end within their timeout; look again soon.
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Lock acquisitions so far (the benchmark's measure of the budgets' work).
    pub fn lock_count(&self) -> u64 {
        self.lock().locks
    }

    /// How many budgets the last plan made (and identities that still hold permits).
    pub fn len(&self) -> usize {
        self.lock().budgets.len()
    }

    /// Whether there is no budget.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // The state is consistent after every statement, so a poisoned lock is still usable.
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    state.locks += 1;
    state
}

fn enqueue(state: &mut State, budget: usize, lane: &str, waiter: Waiter) {
    let Some(b) = state.budgets.get_mut(budget) else {
        return;
    };
    match b.lanes.iter_mut().find(|l| l.name == lane) {
        Some(l) => l.waiters.push_back(waiter),
        None => b.lanes.push_back(Lane {
            name: lane.to_owned(),
            waiters: VecDeque::from([waiter]),
        }),
    }
}

/// The one task that hands permits out as they come free: it sleeps until the hold ends or the
/// soonest permit of a budget with waiters comes free, grants, and sleeps again. Ends when the
/// budgets are dropped.
async fn drive(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let now = Instant::now();
            let mut state = lock(&shared);
            state.pump_all(now);
            state.next_wake(now)
        };
        let sleep = async {
            match next {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wake.notified() => {}
            () = sleep => {}
        }
    }
}

/// An account's share of [`Budgets`]: what its client draws permits from. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Budget {
    shared: Arc<Shared>,
    account: String,
    /// The account's planned [`identity`]: what its temporary keys are counted against.
    identity: String,
}

impl Budget {
    /// A budget of its own of `per_second` calls (at least 1), held by nothing else: for tests
    /// and examples.
    pub fn new(per_second: u32) -> Self {
        let budgets = Budgets::new(per_second, Duration::ZERO);
        budgets.account("standalone")
    }

    /// Calls allowed per second.
    pub fn per_second(&self) -> usize {
        lock(&self.shared).limit
    }

    /// Applies a new limit to every budget at once, keeping the permits held (see
    /// [`Budgets::apply`]).
    pub fn set_limit(&self, per_second: u32) {
        let mut state = lock(&self.shared);
        state.limit = per_second.max(1) as usize;
        state.pump_all(Instant::now());
        drop(state);
        self.shared.driver.notify_one();
    }

    /// Permits held now in this account's budget.
    pub fn held(&self) -> usize {
        Budgets {
            shared: self.shared.clone(),
        }
        .held(&self.identity)
    }

    /// Waits for a permit in `lane`'s queue, counted against the account's planned identity.
    pub async fn acquire(&self, lane: &str) -> Permit {
        let identity = self.identity.clone();
        self.acquire_as(lane, identity).await
    }

    /// Waits for a permit for a call signed with `secret_id`: long-term keys (`temporary` false)
    /// are counted against their SecretId, whichever budget holds it (a rotated key joins the
    /// account's), temporary keys against the account's role. Send the call right after, and
    /// drop the permit when its answer or failure is back.
    pub async fn acquire_signed(&self, lane: &str, secret_id: &str, temporary: bool) -> Permit {
        let identity = if temporary {
            self.identity.clone()
        } else {
            format!("SecretId {secret_id}")
        };
        self.acquire_as(lane, identity).await
    }

    async fn acquire_as(&self, lane: &str, identity: String) -> Permit {
        loop {
            let (tx, rx) = oneshot::channel();
            let mut waiting = Waiting {
                shared: self.shared.clone(),
                identity: identity.clone(),
                granted: rx,
            };
            {
                let mut state = lock(&self.shared);
                let budget = state.budget_for(&self.account, &identity);
                if let Some(ledger) = state.ledgers.get_mut(&identity) {
                    ledger.last_account = Some(self.account.clone());
                }
                let waiter = Waiter {
                    account: self.account.clone(),
                    identity: identity.clone(),
                    granted: tx,
                };
                enqueue(&mut state, budget, lane, waiter);
                state.pump(budget, Instant::now());
                if !state.driver_started {
                    state.driver_started = true;
                    tokio::spawn(drive(
                        Arc::downgrade(&self.shared),
                        self.shared.driver.clone(),
                    ));
                }
            }
            self.shared.driver.notify_one();
            // Granted by `pump` (here, by the driver or by another caller).
            if (&mut waiting.granted).await.is_ok() {
                // Taken: the guard's receiver is spent, so its drop returns nothing.
                drop(waiting);
                return Permit {
                    shared: self.shared.clone(),
                    identity,
                    latest_back: None,
                };
            }
            // Never expected (a waiter is only dropped once granted); queue again rather than
            // spin or panic.
        }
    }
}

/// The right to have one call in flight. [`Permit::done`] (answer or failure back) starts its
/// [`WINDOW`] of cool-down; dropped without it (the call abandoned), the cool-down starts no
/// earlier than the call's timeout would have ended it.
#[derive(Debug)]
pub struct Permit {
    shared: Arc<Shared>,
    /// The ledger it is counted in.
    identity: String,
    /// `sent + timeout` once the call is sent: the latest its failure would be back.
    latest_back: Option<Instant>,
}

impl Permit {
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

impl Drop for Permit {
    fn drop(&mut self) {
        let now = Instant::now();
        let back = self.latest_back.map_or(now, |t| t.max(now));
        let mut state = lock(&self.shared);
        let ledger = state.ledgers.entry(self.identity.clone()).or_default();
        ledger.in_flight = ledger.in_flight.saturating_sub(1);
        ledger.cooling.push(Reverse(back + WINDOW));
        drop(state);
        // The driver may be sleeping with nothing cooling: it has a time to wake at now.
        self.shared.driver.notify_one();
    }
}

/// A waiter's place in its lane: if it is dropped after being granted but before it took the
/// permit, the permit goes back unused.
struct Waiting {
    shared: Arc<Shared>,
    identity: String,
    granted: oneshot::Receiver<()>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.granted.close();
        if self.granted.try_recv().is_ok() {
            let mut state = lock(&self.shared);
            let budget = state.ledgers.get_mut(&self.identity).map(|ledger| {
                ledger.in_flight = ledger.in_flight.saturating_sub(1);
                ledger.budget
            });
            if let Some(budget) = budget {
                state.pump(budget, Instant::now());
            }
        }
    }
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
mod tests;
