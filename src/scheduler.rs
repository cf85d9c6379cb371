//! The scheduler: one background task per (account, query type) pair, on its own interval.
//!
//! A pair's poll runs inside its own loop, so it is never started twice; ticks missed while a
//! poll ran are skipped, not burst; the first polls of many accounts are spread over a few
//! seconds. All pairs of an account share one [`LiveClient`] and so one request budget.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::config::PollConfig;
use crate::packages::QueryType;
use crate::poller::{PollError, poll_pair};
use crate::store::{Store, Transition};
use crate::tencent::client::{ApiError, LiveClient};

/// Spacing of the first polls of successive accounts.
pub const FIRST_POLL_SPREAD: Duration = Duration::from_millis(250);

/// The running pollers.
pub struct Scheduler {
    tasks: JoinSet<()>,
    /// Bumped to make every pair poll now (tests, and reloads later).
    trigger: watch::Sender<u64>,
}

impl Scheduler {
    /// Starts a poller per (client, query type) pair.
    pub fn spawn(
        clients: &[Arc<LiveClient>],
        poll: &PollConfig,
        store: Arc<Store>,
        shutdown: CancellationToken,
    ) -> Scheduler {
        let trigger = watch::Sender::new(0);
        let mut tasks = JoinSet::new();
        let spread = FIRST_POLL_SPREAD.min(poll.interval / (clients.len().max(1) as u32));
        for (i, client) in clients.iter().enumerate() {
            for &query in &poll.package_types {
                let pair = PairPoller {
                    client: client.clone(),
                    query,
                    poll: poll.clone(),
                    store: store.clone(),
                    first_delay: spread * i as u32,
                };
                tasks.spawn(pair.run(trigger.subscribe(), shutdown.clone()));
            }
        }
        Scheduler { tasks, trigger }
    }

    /// Makes every pair poll as soon as its current poll (if any) is done.
    pub fn poll_now(&self) {
        self.trigger.send_modify(|n| *n += 1);
    }

    /// Waits for every poller to stop (after shutdown was cancelled).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

struct PairPoller {
    client: Arc<LiveClient>,
    query: QueryType,
    poll: PollConfig,
    store: Arc<Store>,
    first_delay: Duration,
}

impl PairPoller {
    async fn run(self, mut trigger: watch::Receiver<u64>, shutdown: CancellationToken) {
        let mut ticker =
            tokio::time::interval_at(Instant::now() + self.first_delay, self.poll.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
                changed = trigger.changed() => if changed.is_err() { return },
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                () = self.poll_once() => {}
            }
        }
    }

    async fn poll_once(&self) {
        let account = self.client.account();
        let started = Instant::now();
        let result = poll_pair(
            &*self.client,
            self.query,
            self.poll.page_size,
            self.poll.retry,
        )
        .await;
        let took = started.elapsed();
        match result {
            Ok(outcome) => {
                for f in &outcome.invalid_fields {
                    self.store.metrics().invalid_field(account, f.field);
                }
                if let Some(first) = outcome.invalid_fields.first() {
                    tracing::warn!(
                        account, query = %self.query, count = outcome.invalid_fields.len(),
                        field = first.field, package_id = first.package_id.as_deref().unwrap_or("-"),
                        reason = %first.reason,
                        "answer had unusable fields; skipped them and kept the rest"
                    );
                }
                if outcome.duplicates > 0 {
                    tracing::info!(account, query = %self.query, duplicates = outcome.duplicates,
                        "the same package id came twice (pages shifted while being read); kept once");
                }
                let packages = outcome.packages.len();
                let (pages, calls) = (outcome.pages, outcome.calls);
                let transition = self
                    .store
                    .record_success(account, self.query, outcome, took);
                if transition == Transition::Changed {
                    tracing::info!(account, query = %self.query, "polling recovered");
                }
                tracing::debug!(account, query = %self.query, packages, pages, calls, took_ms = took.as_millis() as u64, "poll done");
            }
            Err(error) => {
                let transition = self.store.record_failure(account, self.query, &error, took);
                log_failure(account, self.query, &error, transition);
            }
        }
    }
}

/// Failures are logged at warning level once per change of state, at debug level otherwise.
fn log_failure(account: &str, query: QueryType, error: &PollError, transition: Transition) {
    let (code, request_id) = match error {
        PollError::Api { error, .. } => {
            (error.code(), error.request_id().unwrap_or("-").to_owned())
        }
        PollError::PageCap { .. } => ("page_cap".into(), "-".into()),
    };
    let hint = match error {
        PollError::Api {
            error: ApiError::Api { code, .. },
            ..
        } if code == "AuthFailure.SignatureExpire" => {
            " (the signature timestamp was refused: this host's clock is probably off by more than 5 minutes)"
        }
        _ => "",
    };
    if transition == Transition::Changed {
        tracing::warn!(account, query = %query, code, request_id, "poll failed: {error}{hint}");
    } else {
        tracing::debug!(account, query = %query, code, request_id, "poll failed again: {error}");
    }
}
