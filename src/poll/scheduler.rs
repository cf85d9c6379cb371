//! The scheduler: one background task per (account, query type) pair, on its own interval.
//!
//! A pair's poll runs inside its own loop, so it is never started twice; ticks missed while a
//! poll ran are skipped, not burst; the first polls of many accounts are spread over a few
//! seconds. All pairs of an account share one [`LiveClient`] and so one request budget.
//! Accounts start and stop independently, which is what a reload needs.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::config::PollConfig;
use crate::domain::QueryType;
use crate::exposition::store::{Store, Transition};
use crate::poll::poller::{Incomplete, PollError, poll_pair};
use crate::tencent::client::{ApiError, LiveClient};

/// Spacing of the first polls of successive accounts.
pub const FIRST_POLL_SPREAD: Duration = Duration::from_millis(250);

/// The spacing of first polls for `accounts` accounts: at most [`FIRST_POLL_SPREAD`], and all of
/// them started within the first half of one interval, so that every pair's first poll is done
/// within its interval even at a thousand accounts (spread over the whole interval, the last
/// account's first poll ended just after it).
pub fn first_poll_spread(interval: Duration, accounts: usize) -> Duration {
    let accounts = u32::try_from(accounts.max(1)).unwrap_or(u32::MAX);
    FIRST_POLL_SPREAD.min(interval / 2 / accounts)
}

/// The pollers of one account: one task per query type, stopped together.
pub struct AccountPollers {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl AccountPollers {
    /// Starts a poller per configured query type. `shutdown` stops them too (they run under a
    /// child token); `trigger` makes them poll now.
    pub fn spawn(
        client: Arc<LiveClient>,
        poll: &PollConfig,
        store: Arc<Store>,
        trigger: &watch::Sender<u64>,
        shutdown: &CancellationToken,
        first_delay: Duration,
    ) -> AccountPollers {
        let cancel = shutdown.child_token();
        let mut tasks = JoinSet::new();
        for &query in &poll.package_types {
            let pair = PairPoller {
                client: client.clone(),
                query,
                poll: poll.clone(),
                store: store.clone(),
                first_delay,
                invalid_seen: std::sync::Mutex::default(),
            };
            tasks.spawn(pair.run(trigger.subscribe(), cancel.clone()));
        }
        AccountPollers { cancel, tasks }
    }

    /// Stops the pollers: an in-flight poll is abandoned (its pair keeps its last result).
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Republishes when a pair's package series turn stale, so they vanish on time even while no
/// poll of that pair ends (a long outage with slow retries).
pub async fn sweep_staleness(store: Arc<Store>, shutdown: CancellationToken) {
    let mut published = store.subscribe_published();
    loop {
        let deadline = store.next_stale_deadline();
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = published.changed() => if changed.is_err() { return },
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => store.publish(),
        }
    }
}

struct PairPoller {
    client: Arc<LiveClient>,
    query: QueryType,
    poll: PollConfig,
    store: Arc<Store>,
    first_delay: Duration,
    /// Unusable fields are warned about once per change (issue 11).
    invalid_seen: std::sync::Mutex<crate::tencent::models::InvalidFieldsSeen>,
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
        let metrics = self.store.metrics().clone();
        let query = self.query;
        let on_reread = move |reason: Incomplete| {
            metrics.list_reread(account, query.label(), reason.label());
            tracing::info!(account, query = %query, reason = reason.label(),
                "the list was incomplete ({reason}); reading it again from page 1");
        };
        let result = poll_pair(
            self.client.clone(),
            self.query,
            self.poll.page_size,
            self.poll.retry,
            &on_reread,
        )
        .await;
        let took = started.elapsed();
        match result {
            Ok(outcome) => {
                for f in &outcome.invalid_fields {
                    self.store.metrics().invalid_field(account, f.field);
                }
                let new_faults = self
                    .invalid_seen
                    .lock()
                    .is_ok_and(|mut seen| seen.changed(&outcome.invalid_fields));
                if let Some(first) = outcome.invalid_fields.first().filter(|_| new_faults) {
                    tracing::warn!(
                        account, query = %self.query, count = outcome.invalid_fields.len(),
                        field = first.field, package_id = first.package_id.as_deref().unwrap_or("-"),
                        reason = %first.reason,
                        "answer had unusable fields; skipped them and kept the rest"
                    );
                }
                let packages = outcome.packages.len();
                let (pages, calls) = (outcome.pages, outcome.calls);
                let transition =
                    self.store
                        .record_success(account, self.query, outcome.into_listing(), took);
                if transition == Transition::Changed {
                    tracing::info!(account, query = %self.query, "polling recovered");
                }
                tracing::debug!(account, query = %self.query, packages, pages, calls, took_ms = took.as_millis() as u64, "poll done");
            }
            Err(error) => {
                let transition = self.store.record_failure(
                    account,
                    self.query,
                    error.code(),
                    error.to_string(),
                    took,
                );
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
        other => (other.code(), "-".into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_polls_of_any_number_of_accounts_start_within_half_an_interval() {
        let interval = Duration::from_secs(60);
        for accounts in [1_usize, 2, 10, 100, 240, 1_000, 10_000] {
            let spread = first_poll_spread(interval, accounts);
            assert!(spread <= FIRST_POLL_SPREAD);
            let last_start = spread * (accounts as u32 - 1);
            assert!(
                last_start <= interval / 2,
                "{accounts}: last first poll at {last_start:?}"
            );
        }
        assert_eq!(first_poll_spread(interval, 4), FIRST_POLL_SPREAD);
        assert_eq!(
            first_poll_spread(interval, 1_000),
            Duration::from_millis(30)
        );
    }
}
