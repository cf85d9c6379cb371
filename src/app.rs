//! Wiring: from a validated [`Config`] to running pollers, a store and a router; reloads.
//!
//! `main` and the integration tests both go through [`Exporter`], so tests drive the real daemon.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{AccountConfig, Config, PollConfig};
use crate::exposition::store::{PairKey, Store};
use crate::http::server::Reload;
use crate::poll::scheduler::{AccountPollers, first_poll_spread, sweep_staleness};
use crate::telemetry::ExporterMetrics;
use crate::tencent::budget::{Budgets, Plan, WINDOW};
use crate::tencent::client::LiveClient;
use crate::tencent::credentials::CredentialSource;
use crate::tencent::transport::Transport;

/// Re-reads the configuration from wherever it came from (file, environment, flags).
pub type ConfigLoader = Arc<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// How long in-flight scrapes may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// A running exporter: pollers in the background, the store they fill, the routes that read it.
pub struct Exporter {
    store: Arc<Store>,
    metrics: Arc<ExporterMetrics>,
    transport: Transport,
    shutdown: CancellationToken,
    /// Bumped to make every pair poll now (tests).
    trigger: watch::Sender<u64>,
    /// The pollers and the configuration they run with; a reload swaps parts of it.
    running: tokio::sync::Mutex<Running>,
    /// The configured pairs, for "every pair has polled" (readable without the async lock).
    pairs: Mutex<Vec<PairKey>>,
    loader: Option<ConfigLoader>,
    /// Held from reading the configuration to applying it: reloads run one at a time, in the
    /// order they were asked for, so an older file is never applied after a newer one.
    reloading: tokio::sync::Mutex<()>,
    /// The reload that is queued and has not read the configuration yet: every caller that
    /// arrives meanwhile shares its result instead of queueing one more (a burst of
    /// `POST /-/reload` runs at most two reloads: the running one and the queued one), and it
    /// still reads the newest file, since it reads after them all.
    queued_reload: Mutex<Option<ReloadOutcome>>,
    telemetry_path: String,
    /// Every request budget, kept across reloads (see [`crate::tencent::budget`]).
    budgets: Budgets,
}

/// The outcome of a reload once it has run (`None` until then), as its callers wait for it.
type ReloadOutcome = tokio::sync::watch::Receiver<Option<Result<(), String>>>;

struct Running {
    config: Config,
    accounts: BTreeMap<String, RunningAccount>,
    /// Which accounts share a budget, as [`Config::budget_plan`] decided for `config`.
    plan: Plan,
}

struct RunningAccount {
    /// What it was started from: a reload keeps the account while its new configuration is `==`.
    config: AccountConfig,
    /// Holds the account's client and, in it, the credential cache built from `config`.
    pollers: AccountPollers,
}

impl Exporter {
    /// Starts polling over HTTPS.
    pub fn start(config: &Config, shutdown: CancellationToken) -> anyhow::Result<Arc<Exporter>> {
        let transport = Transport::http(config.poll.timeout).context("building the HTTP client")?;
        Ok(Self::start_with(config, shutdown, transport, None))
    }

    /// Starts polling with a given transport and an optional source for reloads.
    pub fn start_with(
        config: &Config,
        shutdown: CancellationToken,
        transport: Transport,
        loader: Option<ConfigLoader>,
    ) -> Arc<Exporter> {
        Self::start_held(config, shutdown, transport, loader, Duration::ZERO)
    }

    /// [`Exporter::start_with`], sending no Tencent call for `hold` from now: a previous
    /// process's calls may still land in the window of this one's first (see
    /// [`crate::tencent::budget`]).
    pub fn start_held(
        config: &Config,
        shutdown: CancellationToken,
        transport: Transport,
        loader: Option<ConfigLoader>,
        hold: Duration,
    ) -> Arc<Exporter> {
        let plan = config.budget_plan();
        let budgets = Budgets::new(config.poll.requests_per_second, hold);
        budgets.apply(&plan, config.poll.requests_per_second);
        plan.log(config.poll.requests_per_second);
        let metrics = Arc::new(ExporterMetrics::new());
        let store = Arc::new(Store::new(metrics.clone(), config.poll.max_staleness));
        let exporter = Arc::new(Exporter {
            store: store.clone(),
            metrics,
            transport,
            shutdown: shutdown.clone(),
            trigger: watch::Sender::new(0),
            running: tokio::sync::Mutex::new(Running {
                config: config.clone(),
                accounts: BTreeMap::new(),
                plan,
            }),
            pairs: Mutex::new(Vec::new()),
            loader,
            reloading: tokio::sync::Mutex::new(()),
            queued_reload: Mutex::new(None),
            telemetry_path: config.web.telemetry_path.clone(),
            budgets,
        });
        {
            // Proof: the Arc was made just above and is not shared yet; nobody else holds the lock.
            #[allow(clippy::expect_used)]
            let mut running = exporter
                .running
                .try_lock()
                .expect("new exporter is unshared");
            let spread = first_poll_spread(config.poll.interval, config.accounts.len());
            for (i, account) in config.accounts.iter().enumerate() {
                exporter.start_account(&mut running, account, spread * i as u32);
            }
            exporter.set_pairs(config);
        }
        store.publish();
        tokio::spawn(crate::exposition::store::run_publisher(
            store.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(sweep_staleness(store, shutdown));
        exporter
    }

    fn start_account(&self, running: &mut Running, account: &AccountConfig, first_delay: Duration) {
        let poll = &running.config.poll;
        // Its identity's ledger, in whichever budget the plan puts it.
        let budget = self.budgets.account(&account.name);
        self.metrics.init_account(&account.name);
        // The configuration holds where the keys come from; the cache lives here, with the
        // account's pollers, and goes when a reload restarts them.
        let credentials = CredentialSource::new(account.credentials.clone());
        let client = Arc::new(LiveClient::new(
            self.transport.clone(),
            account.endpoint.clone(),
            credentials,
            budget,
            account.name.clone(),
            self.metrics.clone(),
            poll.timeout,
        ));
        let pollers = AccountPollers::spawn(
            client,
            poll,
            self.store.clone(),
            &self.trigger,
            &self.shutdown,
            first_delay,
        );
        running.accounts.insert(
            account.name.clone(),
            RunningAccount {
                config: account.clone(),
                pollers,
            },
        );
    }

    fn set_pairs(&self, config: &Config) {
        *self.pairs.lock().unwrap_or_else(PoisonError::into_inner) = config
            .accounts
            .iter()
            .flat_map(|a| {
                config
                    .poll
                    .package_types
                    .iter()
                    .map(|q| (a.name.clone(), *q))
            })
            .collect();
    }

    /// Applies a new configuration, by comparing it with the running one: an account whose
    /// [`AccountConfig`], budget and the `[poll]` settings its pollers run with are `==` keeps its
    /// pollers, series, schedule and credential cache; one added, removed or changed starts,
    /// stops or restarts. A change of `[poll]` (but `max_staleness`, which only the store reads)
    /// restarts every account; `[web]` changes need a restart of the process.
    pub async fn apply(&self, new: Config) {
        let mut running = self.running.lock().await;
        if new.web != running.config.web {
            tracing::warn!("[web] settings changed; they take effect when the process restarts");
        }
        if new.poll.max_staleness != running.config.poll.max_staleness {
            self.store.set_max_staleness(new.poll.max_staleness);
        }
        let poll_changed = pollers_settings(&new.poll) != pollers_settings(&running.config.poll);
        let old_accounts = std::mem::take(&mut running.accounts);
        let mut kept = HashSet::new();
        for (name, account) in old_accounts {
            let unchanged = !poll_changed && new.accounts.contains(&account.config);
            if unchanged {
                kept.insert(name.clone());
                running.accounts.insert(name, account);
            } else {
                account.pollers.stop().await;
                let new_config = new.accounts.iter().find(|a| a.name == name);
                if new_config.is_none() {
                    // Its own series (requests, errors, durations) go with it.
                    self.metrics.remove_account(&name);
                }
                let why = reload_reason(&account.config, new_config);
                tracing::info!(account = %name, "reload: {why}; its pollers stopped");
            }
        }
        // Every permit held (the stopped pollers' included) moves to the budget that now holds
        // its identity; kept accounts draw from their new budget at their next call.
        let plan = new.budget_plan();
        self.budgets.apply(&plan, new.poll.requests_per_second);
        running.plan = plan;
        running.config = new.clone();
        let spread = first_poll_spread(new.poll.interval, new.accounts.len());
        for (i, account) in new.accounts.iter().enumerate() {
            if !kept.contains(&account.name) {
                tracing::info!(account = %account.name, "reload: starting pollers");
                self.start_account(&mut running, account, spread * i as u32);
            }
        }
        self.set_pairs(&new);
        running.plan.log(new.poll.requests_per_second);
        let keep: HashSet<PairKey> = self
            .pairs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        self.store.retain_pairs(&keep);
    }

    /// Re-reads the configuration and applies it; a bad one keeps the running configuration.
    /// Reloads are serialized (a fair lock held from reading to applying), so concurrent ones
    /// apply in the order they started and the newest file read is the one that runs.
    pub async fn reload(&self) -> Result<(), String> {
        let Some(loader) = &self.loader else {
            return Err("this exporter has no configuration source to re-read".into());
        };
        let _one_at_a_time = self.reloading.lock().await;
        self.load_and_apply(loader).await
    }

    /// [`Exporter::reload`] for a caller that already holds `reloading`.
    async fn reload_locked(&self) -> Result<(), String> {
        let Some(loader) = &self.loader else {
            return Err("this exporter has no configuration source to re-read".into());
        };
        self.load_and_apply(loader).await
    }

    async fn load_and_apply(&self, loader: &ConfigLoader) -> Result<(), String> {
        match loader() {
            Ok(config) => {
                self.apply(config).await;
                self.metrics.reload_result(true);
                self.store.publish_and_wait_bounded().await;
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.reload_result(false);
                self.store.publish_and_wait_bounded().await;
                let reason = format!("{e:#}");
                tracing::error!("reload failed, keeping the running configuration: {reason}");
                Err(reason)
            }
        }
    }

    /// The store the pollers fill: published pair states and the exposition (`--once` prints
    /// it; tests read it).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// [`Exporter::reload`] in a task of its own: a client that hangs up, or a panic, cannot
    /// stop a reload halfway or the caller (the SIGHUP loop) for good. Callers that arrive while
    /// a reload is queued (not yet reading the configuration) share that reload's result.
    pub async fn reload_in_task(self: &Arc<Self>) -> Result<(), String> {
        let mut result = {
            let mut queued = self
                .queued_reload
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match &*queued {
                Some(result) => result.clone(),
                None => {
                    let (done, result) = tokio::sync::watch::channel(None);
                    *queued = Some(result.clone());
                    let this = self.clone();
                    tokio::spawn(async move {
                        let outcome = this.reload_queued().await;
                        done.send_replace(Some(outcome));
                    });
                    result
                }
            }
        };
        match result.wait_for(Option::is_some).await {
            Ok(outcome) => outcome
                .clone()
                .unwrap_or_else(|| Err("no reload outcome".into())),
            Err(_) => Err("the reload task ended without an outcome".into()),
        }
    }

    /// The queued reload: waits for its turn, leaves the queue (later callers queue anew, so
    /// they see a file at least as new as the one read now), then reloads in a task of its own.
    async fn reload_queued(self: &Arc<Self>) -> Result<(), String> {
        let turn = self.reloading.lock().await;
        *self
            .queued_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let this = self.clone();
        let outcome = tokio::spawn(async move { this.reload_locked().await }).await;
        drop(turn);
        match outcome {
            Ok(result) => result,
            Err(e) => {
                self.metrics.reload_result(false);
                // Shown before the answer, as a reload's own result is (load_and_apply).
                self.store.publish_and_wait_bounded().await;
                let reason = format!("the reload task failed: {e}");
                tracing::error!("{reason}");
                Err(reason)
            }
        }
    }

    /// The HTTP routes, with `POST /-/reload` wired to [`Exporter::reload_in_task`].
    pub fn router(self: &Arc<Self>) -> Router {
        let reload: Arc<dyn Reload> = Arc::new(TaskReload(self.clone()));
        crate::http::server::router(self.store.clone(), &self.telemetry_path, reload)
    }

    /// Every request budget (the benchmark and tests read their work and permits held).
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// Polls recorded so far (published or not) per configured pair.
    fn recorded_counts(&self) -> BTreeMap<PairKey, u64> {
        let recorded = self.store.recorded_polls();
        self.pairs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|k| (k.clone(), recorded.get(k).copied().unwrap_or(0)))
            .collect()
    }

    /// Waits until every configured pair has recorded at least `n` polls, published or not.
    async fn wait_for_recorded(&self, n: u64) {
        let mut recorded = self.store.subscribe_recorded();
        while self.recorded_counts().values().any(|&c| c < n) {
            if recorded.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits until every configured pair has finished at least `n` polls, and publishes them:
    /// the caller sees them at once, not after the publisher's period.
    pub async fn wait_for_polls(&self, n: u64) {
        self.wait_for_recorded(n).await;
        self.store.publish_and_wait().await;
    }

    /// Makes every pair poll now, waits until each has finished one more poll, and publishes
    /// them (as [`Exporter::wait_for_polls`]).
    pub async fn poll_now(&self) {
        let before = self.recorded_counts();
        let mut recorded = self.store.subscribe_recorded();
        self.trigger.send_modify(|n| *n += 1);
        loop {
            let now = self.recorded_counts();
            if before
                .iter()
                .all(|(k, b)| now.get(k).is_some_and(|n| n > b))
            {
                break;
            }
            if recorded.changed().await.is_err() {
                break;
            }
        }
        self.store.publish_and_wait().await;
    }

    /// Whether the latest poll of every configured pair succeeded.
    pub fn all_up(&self) -> bool {
        let pairs = self.store.pairs();
        self.pairs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .all(|k| pairs.get(k).is_some_and(|p| p.up))
    }

    /// Stops every poller and waits for them.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        let mut running = self.running.lock().await;
        for (_, account) in std::mem::take(&mut running.accounts) {
            account.pollers.stop().await;
        }
    }
}

/// Why a reload stops an account's pollers, in the words of the log line: the account is gone,
/// its own settings changed (naming which), or only `[poll]` changed (which restarts every
/// account).
fn reload_reason(old: &AccountConfig, new: Option<&AccountConfig>) -> String {
    let Some(new) = new else {
        return "account removed".into();
    };
    let mut changed = Vec::new();
    if new.endpoint != old.endpoint {
        changed.push("endpoint");
    }
    if new.credentials != old.credentials {
        changed.push("credentials");
    }
    if new.rate_limit_group != old.rate_limit_group {
        changed.push("rate_limit_group");
    }
    if changed.is_empty() {
        "[poll] settings changed, every account restarts".into()
    } else {
        format!("account's {} changed", changed.join(" and "))
    }
}

/// The `[poll]` settings an account's pollers and client run with: all of them but
/// `max_staleness`, which only the store reads (and a reload sets there).
fn pollers_settings(poll: &PollConfig) -> PollConfig {
    PollConfig {
        max_staleness: Duration::ZERO,
        ..poll.clone()
    }
}

/// `POST /-/reload`: a reload in its own task.
struct TaskReload(Arc<Exporter>);

impl Reload for TaskReload {
    fn reload(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(self.0.reload_in_task())
    }
}

/// What the daemon runs with, apart from its listeners and its shutdown.
pub struct Daemon {
    /// The configuration it starts with.
    pub config: Config,
    /// Where a reload reads the configuration from.
    pub loader: Option<ConfigLoader>,
    /// TLS, basic auth and connection limits (`--web.config.file`).
    pub web: crate::http::WebOptions,
    /// Reload requests (SIGHUP): every change of the value after the configuration was read is
    /// one, run once serving (a burst coalesces into at most two reloads). Requests made
    /// before the configuration was read are in it already.
    pub reloads: Option<watch::Receiver<u64>>,
    /// Whether another process (a previous or next exporter) may call the same API: then the
    /// first Tencent call waits one [`WINDOW`], and a stop
    /// waits until no call abandoned in flight can still arrive, so that two processes' calls
    /// never share a window. `false` with `--demo`, whose simulator is the process's own.
    pub handover: bool,
    /// How calls reach the API: `None` is HTTPS (reqwest, `poll.timeout`); tests give the
    /// simulator's router ([`Transport::service`]) so that paused time drives everything.
    pub transport: Option<Transport>,
}

/// Binds every configured address: one that cannot be bound is a refusal to start.
pub async fn bind(config: &Config) -> anyhow::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for address in &config.web.listen_addresses {
        let listener = address
            .bind()
            .await
            .with_context(|| format!("listening on {address}"))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// The daemon: serves on `listeners` until `shutdown` completes, then stops polling, finishes
/// in-flight scrapes (within [`SHUTDOWN_GRACE`]) and waits until no call it abandoned can still
/// arrive at Tencent (at most `poll.timeout`), so that the next process's first call, one
/// [`WINDOW`] after its start, never shares a window with this one's calls.
pub async fn run(
    listeners: Vec<TcpListener>,
    daemon: Daemon,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown => cancel.cancel(),
            () = cancel.cancelled() => {}
        }
    });
    let Daemon {
        config,
        loader,
        web,
        reloads,
        handover,
        transport,
    } = daemon;
    let transport = match transport {
        Some(transport) => transport,
        None => Transport::http(config.poll.timeout).context("building the HTTP client")?,
    };
    let start_hold = if handover {
        tracing::info!(
            hold = %humantime::format_duration(WINDOW),
            "the first Tencent call waits one window, so that a previous exporter's calls can no \
             longer land in the same second (a stopping exporter first waits, at most \
             poll.timeout, for its own calls abandoned in flight)"
        );
        WINDOW
    } else {
        Duration::ZERO
    };
    let exporter = Exporter::start_held(&config, token.clone(), transport, loader, start_hold);
    let served = serve(
        listeners,
        exporter.clone(),
        web,
        reloads,
        token.clone().cancelled_owned(),
    )
    .await;
    token.cancel();
    if handover
        && tokio::time::timeout(Duration::ZERO, exporter.budgets.quiet())
            .await
            .is_err()
    {
        tracing::info!(
            "waiting for calls abandoned in flight to time out (at most poll.timeout, {}), so \
             that the next process never shares a second with them",
            humantime::format_duration(config.poll.timeout)
        );
        exporter.budgets.quiet().await;
    }
    tracing::info!("stopped");
    served
}

/// Serves `exporter` (started by the caller) on `listeners` until `shutdown` completes, with a
/// reload for each change of `reloads`; then stops its pollers, after in-flight scrapes finish
/// (within [`SHUTDOWN_GRACE`]). [`run`] is the start, this, and the wait for quiet; tests that
/// need the exporter's handle (to make it poll now) call this.
pub async fn serve(
    listeners: Vec<TcpListener>,
    exporter: Arc<Exporter>,
    web: crate::http::WebOptions,
    reloads: Option<watch::Receiver<u64>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let token = exporter.shutdown.clone();
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown => cancel.cancel(),
            () = cancel.cancelled() => {}
        }
    });
    if let Some(reloads) = reloads {
        tokio::spawn(reload_on_request(reloads, exporter.clone(), token.clone()));
    }
    let config = exporter.running.lock().await.config.clone();
    serve_until_shutdown(listeners, exporter, &config, web, token).await
}

async fn serve_until_shutdown(
    listeners: Vec<TcpListener>,
    exporter: Arc<Exporter>,
    config: &Config,
    web: crate::http::WebOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let router = exporter.router();
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        tracing::info!(
            address = %listener.local_addr()?,
            path = %config.web.telemetry_path,
            accounts = config.accounts.len(),
            interval = %humantime::format_duration(config.poll.interval),
            "serving"
        );
        servers.spawn(crate::http::server::serve_with(
            listener,
            router.clone(),
            web.clone(),
            shutdown.clone(),
        ));
    }
    // Every listener serves until shutdown; the first that fails stops the process.
    let server = async {
        while let Some(done) = servers.join_next().await {
            done.context("a listener's task failed")??;
        }
        Ok::<(), anyhow::Error>(())
    };
    // In-flight scrapes get a grace period; a client that holds its connection longer is cut off.
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = server => served.context("serving HTTP")?,
        () = grace => tracing::warn!("connections still open {SHUTDOWN_GRACE:?} after shutdown; closing them"),
    }
    exporter.stop().await;
    Ok(())
}

/// Runs a reload for each change of `reloads` (SIGHUP), until shutdown.
async fn reload_on_request(
    mut reloads: watch::Receiver<u64>,
    exporter: Arc<Exporter>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = reloads.changed() => {
                if changed.is_err() {
                    return;
                }
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = exporter.reload_in_task().await;
            }
        }
    }
}

/// `--once`: poll every pair once, return the exposition and whether every poll succeeded. The
/// exposition is published once every pair has recorded its poll, without waiting for the
/// publisher's period.
/// `interrupt` (SIGTERM, SIGINT) ends the wait at once: the exposition so far, and `false`.
/// With `handover` (as [`Daemon::handover`]) the first call waits one [`WINDOW`].
pub async fn once(
    config: &Config,
    interrupt: CancellationToken,
    handover: bool,
) -> anyhow::Result<(bytes::Bytes, bool)> {
    let transport = Transport::http(config.poll.timeout).context("building the HTTP client")?;
    let hold = if handover { WINDOW } else { Duration::ZERO };
    let exporter = Exporter::start_held(config, interrupt.child_token(), transport, None, hold);
    let interrupted = tokio::select! {
        () = exporter.wait_for_recorded(1) => false,
        () = interrupt.cancelled() => true,
    };
    if interrupted {
        tracing::warn!("interrupted before every poll finished; printing what there is");
    }
    // Everything recorded, published now: the publisher would wait out its period after its
    // last publish, up to a second for nothing.
    exporter.store().publish_and_wait().await;
    let ok = !interrupted && exporter.all_up();
    let text = bytes::Bytes::from(exporter.store().exposition().text.to_vec());
    exporter.stop().await;
    Ok((text, ok))
}
