//! Wiring: from a validated [`Config`] to running pollers, a store and a router; reloads.
//!
//! `main` and the integration tests both go through [`Exporter`], so tests drive the real daemon.

use std::collections::{BTreeMap, HashMap, HashSet};
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
use crate::poll::budget::{Budget, budget_groups, budget_keys};
use crate::poll::scheduler::{AccountPollers, first_poll_spread, sweep_staleness};
use crate::telemetry::ExporterMetrics;
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
}

/// The outcome of a reload once it has run (`None` until then), as its callers wait for it.
type ReloadOutcome = tokio::sync::watch::Receiver<Option<Result<(), String>>>;

struct Running {
    config: Config,
    accounts: BTreeMap<String, RunningAccount>,
    /// Per budget key (the signing key, or `rate_limit_group`; see [`budget_groups`]), shared by
    /// the accounts that use it and kept across restarts of their pollers and reloads, so a
    /// reload never lets a key exceed its limit in the second around it.
    budgets: HashMap<String, Arc<Budget>>,
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
                budgets: HashMap::new(),
            }),
            pairs: Mutex::new(Vec::new()),
            loader,
            reloading: tokio::sync::Mutex::new(()),
            queued_reload: Mutex::new(None),
            telemetry_path: config.web.telemetry_path.clone(),
        });
        {
            // Proof: the Arc was made just above and is not shared yet; nobody else holds the lock.
            #[allow(clippy::expect_used)]
            let mut running = exporter
                .running
                .try_lock()
                .expect("new exporter is unshared");
            let spread = first_poll_spread(config.poll.interval, config.accounts.len());
            let keys = budget_keys(&config.accounts);
            for (i, account) in config.accounts.iter().enumerate() {
                exporter.start_account(&mut running, account, &keys, spread * i as u32);
            }
            exporter.set_pairs(config);
            log_budgets(config);
        }
        store.publish();
        tokio::spawn(crate::exposition::store::run_publisher(
            store.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(sweep_staleness(store, shutdown));
        exporter
    }

    fn start_account(
        &self,
        running: &mut Running,
        account: &AccountConfig,
        keys: &HashMap<String, String>,
        first_delay: Duration,
    ) {
        let poll = &running.config.poll;
        let key = keys
            .get(&account.name)
            .cloned()
            .unwrap_or_else(|| format!("account {:?}", account.name));
        // An existing budget keeps its history; a changed limit applies to it at once.
        let budget = running
            .budgets
            .entry(key)
            .and_modify(|b| b.set_limit(poll.requests_per_second))
            .or_insert_with(|| Arc::new(Budget::new(poll.requests_per_second)))
            .clone();
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
        // Another account's change can move this one to another budget (a rate_limit_group that
        // now joins its key): such an account restarts with the budget it now shares.
        let (old_keys, new_keys) = (
            budget_keys(&running.config.accounts),
            budget_keys(&new.accounts),
        );
        for (name, account) in old_accounts {
            let unchanged = !poll_changed
                && old_keys.get(&name) == new_keys.get(&name)
                && new.accounts.contains(&account.config);
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
                let budget_moved = old_keys.get(&name) != new_keys.get(&name);
                let why = reload_reason(&account.config, new_config, budget_moved);
                tracing::info!(account = %name, "reload: {why}; its pollers stopped");
            }
        }
        running
            .budgets
            .retain(|key, _| new_keys.values().any(|k| k == key));
        running.config = new.clone();
        let spread = first_poll_spread(new.poll.interval, new.accounts.len());
        for (i, account) in new.accounts.iter().enumerate() {
            if !kept.contains(&account.name) {
                tracing::info!(account = %account.name, "reload: starting pollers");
                self.start_account(&mut running, account, &new_keys, spread * i as u32);
            }
        }
        self.set_pairs(&new);
        log_budgets(&new);
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
                self.store.publish_and_wait().await;
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.reload_result(false);
                self.store.publish_and_wait().await;
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
                self.store.publish();
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

    /// Polls counted so far per configured pair.
    fn poll_counts(&self) -> BTreeMap<PairKey, u64> {
        let pairs = self.store.pairs();
        self.pairs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|k| (k.clone(), pairs.get(k).map_or(0, |p| p.polls)))
            .collect()
    }

    /// Waits until every configured pair has finished at least `n` polls.
    pub async fn wait_for_polls(&self, n: u64) {
        let mut done = self.store.subscribe_polls();
        while self.poll_counts().values().any(|&c| c < n) {
            if done.changed().await.is_err() {
                return;
            }
        }
    }

    /// Makes every pair poll now and waits until each has finished one more poll.
    pub async fn poll_now(&self) {
        let before = self.poll_counts();
        let mut done = self.store.subscribe_polls();
        self.trigger.send_modify(|n| *n += 1);
        loop {
            let now = self.poll_counts();
            if before
                .iter()
                .all(|(k, b)| now.get(k).is_some_and(|n| n > b))
            {
                return;
            }
            if done.changed().await.is_err() {
                return;
            }
        }
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
fn reload_reason(old: &AccountConfig, new: Option<&AccountConfig>, budget_moved: bool) -> String {
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
    if changed.is_empty() && budget_moved {
        "its request budget changed (a rate_limit_group now joins or leaves its key)".into()
    } else if changed.is_empty() {
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

/// Says which accounts share a request budget (one Tencent key, or one `rate_limit_group`).
fn log_budgets(config: &Config) {
    for (key, names) in budget_groups(&config.accounts) {
        if names.len() > 1 {
            tracing::info!(
                budget = %key,
                accounts = ?names,
                requests_per_second = config.poll.requests_per_second,
                "these accounts share one request budget"
            );
        } else {
            tracing::debug!(budget = %key, accounts = ?names, "request budget");
        }
    }
}

/// `POST /-/reload`: a reload in its own task.
struct TaskReload(Arc<Exporter>);

impl Reload for TaskReload {
    fn reload(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(self.0.reload_in_task())
    }
}

/// The daemon: serve on the configured address, with the web configuration (`--web.config.file`)
/// and connection limits in `web`, until `shutdown`.
pub async fn run(
    config: Config,
    loader: Option<ConfigLoader>,
    web: crate::http::WebOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Registered before the socket exists: once a client can see the exporter, SIGHUP reloads.
    #[cfg(unix)]
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    // Every address is bound before anything runs: one that cannot be is a refusal to start.
    let mut listeners = Vec::new();
    for address in &config.web.listen_addresses {
        let listener = address
            .bind()
            .await
            .with_context(|| format!("listening on {address}"))?;
        listeners.push(listener);
    }
    let transport = Transport::http(config.poll.timeout).context("building the HTTP client")?;
    let exporter = Exporter::start_with(&config, shutdown.clone(), transport, loader);
    #[cfg(unix)]
    match hup {
        Ok(hup) => {
            tokio::spawn(reload_on_sighup(hup, exporter.clone(), shutdown.clone()));
        }
        Err(e) => tracing::warn!("cannot watch SIGHUP ({e}); reload with POST /-/reload"),
    }
    serve_until_shutdown(listeners, exporter, &config, web, shutdown).await
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
    tracing::info!("stopped");
    Ok(())
}

#[cfg(unix)]
async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    exporter: Arc<Exporter>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            got = hup.recv() => {
                if got.is_none() {
                    return;
                }
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = exporter.reload_in_task().await;
            }
        }
    }
}

/// `--once`: poll every pair once, return the exposition and whether every poll succeeded.
/// `interrupt` (SIGTERM, SIGINT) ends the wait at once: the exposition so far, and `false`.
pub async fn once(
    config: &Config,
    interrupt: CancellationToken,
) -> anyhow::Result<(bytes::Bytes, bool)> {
    let exporter = Exporter::start(config, interrupt.child_token())?;
    let interrupted = tokio::select! {
        () = exporter.wait_for_polls(1) => false,
        () = interrupt.cancelled() => true,
    };
    if interrupted {
        tracing::warn!("interrupted before every poll finished; printing what there is");
    }
    let ok = !interrupted && exporter.all_up();
    let text = bytes::Bytes::from(exporter.store().exposition().text.to_vec());
    exporter.stop().await;
    Ok((text, ok))
}
