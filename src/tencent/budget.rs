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

use crate::tencent::credentials::{BaseSource, SecretIdFrom, SourceSpec};
use crate::tencent::credentials::{read_profile, read_secret_file};

/// How long a permit stays held after its call's answer is back: the one-second window the server
/// counts in, plus a guard for timer granularity.
pub const WINDOW: Duration = Duration::from_millis(1_025);

/// What Tencent counts an account's calls against, as far as the exporter knows without asking:
/// `SecretId <id>` for long-term keys (read now from the file or profile that holds it),
/// `role <role_arn>` for `role_arn` and the TKE role, `CVM role <name>` for the CVM role. The text
/// names the key or role and holds no secret (a SecretId is not one). A file that cannot be read
/// now gives `secret_id_file <path>` or `profile [<name>] of <path>`, so that the account still
/// has a budget of its own.
pub fn identity(spec: &SourceSpec) -> String {
    if let Some(role) = &spec.assume_role {
        return format!("role {}", role.role_arn);
    }
    base_identity(&spec.base)
}

fn base_identity(base: &BaseSource) -> String {
    match base {
        BaseSource::Static {
            secret_id: SecretIdFrom::Inline(id),
            ..
        } => format!("SecretId {id}"),
        BaseSource::Static {
            secret_id: SecretIdFrom::File(path),
            ..
        } => read_secret_file(path, "secret_id_file").map_or_else(
            |_| format!("secret_id_file {}", path.display()),
            |id| format!("SecretId {id}"),
        ),
        BaseSource::Env(credentials) => format!("SecretId {}", credentials.secret_id),
        BaseSource::Profile { file, profile } => read_profile(file, profile).map_or_else(
            |_| format!("profile [{profile}] of {}", file.display()),
            |c| format!("SecretId {}", c.secret_id),
        ),
        BaseSource::CvmRole { role, .. } => match role {
            Some(role) => format!("CVM role {role}"),
            None => "CVM role of the instance".to_owned(),
        },
        BaseSource::Oidc(oidc) => format!("role {}", oidc.role_arn),
        // The chain signs with its first link that gives credentials.
        BaseSource::Chain(links) => links
            .iter()
            .find_map(|l| l.source.as_ref().ok())
            .map_or_else(|| "credential chain".to_owned(), base_identity),
    }
}

/// One account as the plan sees it.
#[derive(Clone, Copy, Debug)]
pub struct PlanAccount<'a> {
    /// The account's name.
    pub name: &'a str,
    /// Its credential configuration, for its [`identity`].
    pub credentials: &'a SourceSpec,
    /// Its `rate_limit_group`, if set.
    pub rate_limit_group: Option<&'a str>,
}

/// One budget of a [`Plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedBudget {
    /// Its name in logs and `--check-config`: `rate_limit_group "<name>"` when a group joins it,
    /// else its identity.
    pub name: String,
    /// The identities it holds, in configuration order, without repeats.
    pub identities: Vec<String>,
    /// Its accounts' names, in configuration order.
    pub accounts: Vec<String>,
}

/// Which accounts share a budget: the one place it is decided. Accounts with one identity share a
/// budget, and so do the accounts of one `rate_limit_group`, transitively (a group joins the
/// budget of every identity its accounts have: Tencent counts per key whatever label an account
/// has).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The budgets, in the configuration order of their first account.
    pub budgets: Vec<PlannedBudget>,
    /// Each account's identity, by name.
    pub identities: HashMap<String, String>,
}

impl Plan {
    /// Plans `accounts` (reads the key files and profiles they name; asks no service).
    pub fn new<'a>(accounts: impl IntoIterator<Item = PlanAccount<'a>>) -> Plan {
        let accounts: Vec<(PlanAccount<'a>, String)> = accounts
            .into_iter()
            .map(|a| (a, identity(a.credentials)))
            .collect();
        // Union-find over account positions: each joins the first account with a shared tie.
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
        for (i, (account, id)) in accounts.iter().enumerate() {
            let group = account
                .rate_limit_group
                .map(|g| format!("rate_limit_group {g:?}"));
            for tie in std::iter::once(id.clone()).chain(group) {
                let j = *first_with.entry(tie).or_insert(i);
                let (a, b) = (root(&parent, i), root(&parent, j));
                if let Some(slot) = parent.get_mut(a.max(b)) {
                    *slot = a.min(b);
                }
            }
        }
        let mut roots: Vec<usize> = Vec::new();
        let mut plan = Plan::default();
        for (i, (account, id)) in accounts.iter().enumerate() {
            let r = root(&parent, i);
            let group = account
                .rate_limit_group
                .map(|g| format!("rate_limit_group {g:?}"));
            let budget = match roots.iter().position(|&k| k == r) {
                Some(n) => plan.budgets.get_mut(n),
                None => {
                    roots.push(r);
                    plan.budgets.push(PlannedBudget {
                        name: id.clone(),
                        identities: Vec::new(),
                        accounts: Vec::new(),
                    });
                    plan.budgets.last_mut()
                }
            };
            if let Some(budget) = budget {
                if let Some(group) = group {
                    if !budget.name.starts_with("rate_limit_group ") {
                        budget.name = group;
                    }
                }
                if !budget.identities.contains(id) {
                    budget.identities.push(id.clone());
                }
                budget.accounts.push(account.name.to_owned());
            }
            plan.identities.insert(account.name.to_owned(), id.clone());
        }
        plan
    }

    /// The budget `account` draws from.
    pub fn budget_of(&self, account: &str) -> Option<&PlannedBudget> {
        self.budgets
            .iter()
            .find(|b| b.accounts.iter().any(|a| a == account))
    }

    /// Says which accounts share a budget (start-up and reload): one line per shared budget.
    pub fn log(&self, requests_per_second: u32) {
        for budget in &self.budgets {
            if budget.accounts.len() > 1 || budget.identities.len() > 1 {
                tracing::info!(
                    budget = %budget.name,
                    identities = ?budget.identities,
                    accounts = ?budget.accounts,
                    requests_per_second,
                    "these accounts share one request budget (Tencent counts per sub-account)"
                );
            } else {
                tracing::debug!(budget = %budget.name, accounts = ?budget.accounts, "request budget");
            }
        }
    }
}

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

    fn spec(secret_id: &str) -> SourceSpec {
        SourceSpec {
            base: BaseSource::Static {
                secret_id: SecretIdFrom::Inline(secret_id.to_owned()),
                secret_key: crate::tencent::credentials::SecretKeyFrom::Inline(
                    secrecy::SecretString::from("k".to_owned()),
                ),
            },
            assume_role: None,
        }
    }

    /// A plan of (account name, SecretId, rate_limit_group).
    fn plan_of(accounts: &[(String, String, Option<String>)]) -> Plan {
        let specs: Vec<SourceSpec> = accounts.iter().map(|(_, id, _)| spec(id)).collect();
        Plan::new(
            accounts
                .iter()
                .zip(&specs)
                .map(|((name, _, group), credentials)| PlanAccount {
                    name,
                    credentials,
                    rate_limit_group: group.as_deref(),
                }),
        )
    }

    /// One step of an operator's history, at `at` ms after the previous one.
    #[derive(Clone, Debug)]
    enum Step {
        /// Account `account` (modulo the accounts configured) polls: `calls` calls in a row,
        /// each answered after `rtt` ms.
        Poll {
            at: u64,
            account: usize,
            calls: usize,
            rtt: u64,
        },
        /// A reload to these accounts: (name generation, key, group), and a limit.
        Reload {
            at: u64,
            accounts: Vec<(u8, usize, Option<u8>)>,
            limit: u32,
        },
        /// The process stops (calls in flight abandoned), waits for quiet, and a new one starts.
        Restart { at: u64 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u64..800, 0usize..4, 1usize..12, 0u64..900)
                .prop_map(|(at, account, calls, rtt)| Step::Poll { at, account, calls, rtt }),
            2 => (
                0u64..800,
                proptest::collection::vec((0u8..3, 0usize..3, proptest::option::of(0u8..2)), 1..4),
                1u32..8,
            )
                .prop_map(|(at, accounts, limit)| Step::Reload { at, accounts, limit }),
            1 => (0u64..800).prop_map(|at| Step::Restart { at }),
        ]
    }

    const KEYS: [&str; 3] = ["AKIDzero", "AKIDone", "AKIDtwo"];
    const TIMEOUT: Duration = Duration::from_secs(2);

    /// Plays `steps` in virtual time; gives each SecretId's call spans (sent, latest arrival) and
    /// the highest limit in force.
    async fn play(steps: Vec<Step>) -> (HashMap<String, Vec<(Instant, Instant)>>, u32) {
        let log = Arc::new(std::sync::Mutex::new(HashMap::<String, Vec<_>>::new()));
        let mut limit = 4;
        let mut max_limit = limit;
        let mut accounts: Vec<(String, String, Option<String>)> =
            vec![("a0".into(), KEYS[0].into(), None)];
        let mut budgets = Budgets::new(limit, Duration::ZERO);
        budgets.apply(&plan_of(&accounts), limit);
        let mut tasks = tokio::task::JoinSet::new();
        for step in steps {
            match step {
                Step::Poll {
                    at,
                    account,
                    calls,
                    rtt,
                } => {
                    tokio::time::sleep(Duration::from_millis(at)).await;
                    let Some((name, key, _)) = accounts.get(account % accounts.len()) else {
                        continue;
                    };
                    let (budget, key, log) = (budgets.account(name), key.clone(), log.clone());
                    let lane = format!("{name}/{account}");
                    tasks.spawn(async move {
                        for _ in 0..calls {
                            let mut permit = budget.acquire_signed(&lane, &key, false).await;
                            permit.sending(TIMEOUT);
                            let sent = Instant::now();
                            // Logged before the answer: a call abandoned in flight may still
                            // arrive up to its timeout.
                            let i = {
                                let mut log = log.lock().unwrap();
                                let spans = log.entry(key.clone()).or_default();
                                spans.push((sent, sent + TIMEOUT));
                                spans.len() - 1
                            };
                            tokio::time::sleep(Duration::from_millis(rtt)).await;
                            log.lock().unwrap().get_mut(&key).unwrap()[i].1 = Instant::now();
                            permit.done();
                        }
                    });
                }
                Step::Reload {
                    at,
                    accounts: new,
                    limit: l,
                } => {
                    tokio::time::sleep(Duration::from_millis(at)).await;
                    accounts = new
                        .iter()
                        .enumerate()
                        .map(|(i, (generation, key, group))| {
                            (
                                format!("a{i}g{generation}"),
                                KEYS[*key].to_owned(),
                                group.map(|g| format!("g{g}")),
                            )
                        })
                        .collect();
                    limit = l;
                    max_limit = max_limit.max(limit);
                    budgets.apply(&plan_of(&accounts), limit);
                }
                Step::Restart { at } => {
                    tokio::time::sleep(Duration::from_millis(at)).await;
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    budgets.quiet().await;
                    budgets = Budgets::new(limit, WINDOW);
                    budgets.apply(&plan_of(&accounts), limit);
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        let log = std::mem::take(&mut *log.lock().unwrap());
        (log, max_limit)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever the operator does (reloads that rename, merge, split and change the limit;
        /// restarts mid-poll), no SecretId can receive more than the limit in any one second.
        #[test]
        fn no_window_can_receive_more_than_the_limit_across_reloads_and_restarts(
            steps in proptest::collection::vec(step(), 1..24),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            let (log, limit) = rt.block_on(play(steps));
            for (key, spans) in log {
                let worst = max_possible_in_any_window(&spans, Duration::from_secs(1));
                prop_assert!(worst <= limit as usize, "{} calls of {} could arrive in one second at a limit of {}", worst, key, limit);
            }
        }
    }

    /// The plan keys budgets by what Tencent counts: one SecretId, however it is read, is one
    /// budget; a group joins two keys; a role is its own identity.
    #[test]
    fn the_plan_keys_budgets_by_secret_id_and_joins_groups() {
        let dir = std::env::temp_dir().join(format!("tle-budget-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let id_file = dir.join("secret_id");
        std::fs::write(&id_file, "AKIDsame\n").unwrap();
        let profile = dir.join("credentials");
        std::fs::write(&profile, "[team]\nsecret_id = AKIDsame\nsecret_key = k\n").unwrap();
        let inline = spec("AKIDsame");
        let mut from_file = spec("unused");
        from_file.base = BaseSource::Static {
            secret_id: SecretIdFrom::File(id_file),
            secret_key: crate::tencent::credentials::SecretKeyFrom::Inline(
                secrecy::SecretString::from("k".to_owned()),
            ),
        };
        let from_profile = SourceSpec {
            base: BaseSource::Profile {
                file: profile,
                profile: "team".into(),
            },
            assume_role: None,
        };
        let other = spec("AKIDother");
        let rotated = spec("AKIDsecond");
        let plan = Plan::new([
            PlanAccount {
                name: "inline",
                credentials: &inline,
                rate_limit_group: None,
            },
            PlanAccount {
                name: "file",
                credentials: &from_file,
                rate_limit_group: None,
            },
            PlanAccount {
                name: "profile",
                credentials: &from_profile,
                rate_limit_group: None,
            },
            PlanAccount {
                name: "other",
                credentials: &other,
                rate_limit_group: None,
            },
            PlanAccount {
                name: "old",
                credentials: &other,
                rate_limit_group: Some("sub"),
            },
            PlanAccount {
                name: "new",
                credentials: &rotated,
                rate_limit_group: Some("sub"),
            },
        ]);
        let names: Vec<(&str, Vec<&str>, Vec<&str>)> = plan
            .budgets
            .iter()
            .map(|b| {
                (
                    b.name.as_str(),
                    b.identities.iter().map(String::as_str).collect(),
                    b.accounts.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                (
                    "SecretId AKIDsame",
                    vec!["SecretId AKIDsame"],
                    vec!["inline", "file", "profile"]
                ),
                (
                    "rate_limit_group \"sub\"",
                    vec!["SecretId AKIDother", "SecretId AKIDsecond"],
                    vec!["other", "old", "new"]
                ),
            ]
        );
        let mut role = spec("AKIDsame");
        role.assume_role = Some(crate::tencent::credentials::AssumeRoleSpec {
            role_arn: "qcs::cam::uin/1:roleName/r".into(),
            session_name: "s".into(),
            sts_endpoint: "https://sts.tencentcloudapi.com".parse().unwrap(),
            duration_seconds: 7200,
            external_id: None,
        });
        assert_eq!(identity(&role), "role qcs::cam::uin/1:roleName/r");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A rename, a merge and a split carry the permits of each SecretId into its new budget.
    #[tokio::test(start_paused = true)]
    async fn a_reload_carries_every_permit_of_a_secret_id_into_its_new_budget() {
        let acc =
            |n: &str, k: &str, g: Option<&str>| (n.to_owned(), k.to_owned(), g.map(str::to_owned));
        let budgets = Budgets::new(4, Duration::ZERO);
        budgets.apply(
            &plan_of(&[acc("a", "AKIDa", None), acc("b", "AKIDb", None)]),
            4,
        );
        // Four calls of AKIDa in flight, two of AKIDb answered (cooling).
        let a = budgets.account("a");
        let mut in_flight = Vec::new();
        for _ in 0..4 {
            in_flight.push(a.acquire("x").await);
        }
        let b = budgets.account("b");
        for _ in 0..2 {
            b.acquire("x").await.done();
        }
        // Renamed: "a" is now "team", same key: nothing more may go.
        budgets.apply(
            &plan_of(&[acc("team", "AKIDa", None), acc("b", "AKIDb", None)]),
            4,
        );
        assert_eq!(budgets.held("SecretId AKIDa"), 4);
        // Merged by a group: the 4 + 2 already exceed the limit; a call waits for the cool-down.
        budgets.apply(
            &plan_of(&[
                acc("team", "AKIDa", Some("g")),
                acc("b", "AKIDb", Some("g")),
            ]),
            4,
        );
        assert_eq!(budgets.held("SecretId AKIDb"), 6);
        let start = Instant::now();
        drop(in_flight);
        let _p = budgets.account("b").acquire("y").await;
        assert_eq!(Instant::now().duration_since(start), WINDOW);
        // Split again: each key keeps its own ledger.
        budgets.apply(
            &plan_of(&[acc("team", "AKIDa", None), acc("b", "AKIDb", None)]),
            4,
        );
        assert_eq!(budgets.held("SecretId AKIDb"), 1);
        assert_eq!(budgets.held("SecretId AKIDa"), 0);
    }

    /// A key rotated under an account (its file rewritten) joins the account's budget next to
    /// the old key's calls.
    #[tokio::test(start_paused = true)]
    async fn a_rotated_key_keeps_the_calls_of_the_last_second() {
        let budgets = Budgets::new(3, Duration::ZERO);
        budgets.apply(&plan_of(&[("a".into(), "AKIDold".into(), None)]), 3);
        let a = budgets.account("a");
        let start = Instant::now();
        for _ in 0..3 {
            a.acquire_signed("x", "AKIDold", false).await.done();
        }
        let _p = a.acquire_signed("x", "AKIDnew", false).await;
        assert_eq!(Instant::now().duration_since(start), WINDOW);
        assert_eq!(budgets.held("SecretId AKIDnew"), 1);
    }

    /// A new process holds its first call for its hold; the stopping one is quiet once its
    /// abandoned calls' timeouts have passed.
    #[tokio::test(start_paused = true)]
    async fn a_new_process_holds_its_first_call_and_a_stopping_one_waits_for_quiet() {
        let old = Budget::new(5);
        let mut abandoned = old.acquire("x").await;
        abandoned.sending(Duration::from_secs(3));
        let start = Instant::now();
        drop(abandoned);
        let shared = Budgets {
            shared: old.shared.clone(),
        };
        shared.quiet().await;
        assert_eq!(Instant::now().duration_since(start), Duration::from_secs(3));
        let budgets = Budgets::new(5, WINDOW);
        budgets.apply(&plan_of(&[("a".into(), "AKIDa".into(), None)]), 5);
        let start = Instant::now();
        let _p = budgets.account("a").acquire("x").await;
        assert_eq!(Instant::now().duration_since(start), WINDOW);
    }

    /// A freed permit wakes one waiter: the work to serve n queued calls grows linearly.
    #[tokio::test(start_paused = true)]
    async fn serving_queued_calls_takes_linear_work() {
        async fn locks(n: usize) -> u64 {
            let budgets = Budgets::new(20, Duration::ZERO);
            let budget = budgets.account("a");
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..n {
                let budget = budget.clone();
                tasks.spawn(async move { budget.acquire(&format!("l{}", i % 30)).await.done() });
            }
            while tasks.join_next().await.is_some() {}
            budgets.lock_count()
        }
        let (small, large) = (locks(100).await, locks(1_000).await);
        // Quadratic work (every waiter woken per freed permit) was ~100x for 10x the calls.
        assert!(
            large < small * 15,
            "100 calls: {small} locks, 1000 calls: {large}"
        );
    }
}
