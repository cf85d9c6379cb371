//! Wiring: from a validated [`Config`] to running pollers, a store and a router.
//!
//! `main` and the integration tests both go through [`Exporter`], so tests drive the real daemon.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::budget::Budget;
use crate::config::Config;
use crate::metrics::ExporterMetrics;
use crate::packages::QueryType;
use crate::scheduler::Scheduler;
use crate::store::Store;
use crate::tencent::client::{LiveClient, http_client};

/// A running exporter: pollers in the background, the store they fill, the routes that read it.
pub struct Exporter {
    store: Arc<Store>,
    scheduler: Scheduler,
    router: Router,
    /// The pairs that poll: what "every pair has polled" means.
    pairs: Vec<(String, QueryType)>,
}

impl Exporter {
    /// Builds one client per account and starts polling at once.
    pub fn start(config: &Config, shutdown: CancellationToken) -> anyhow::Result<Exporter> {
        let metrics = Arc::new(ExporterMetrics::new());
        let store = Arc::new(Store::new(metrics.clone(), config.poll.max_staleness));
        let http = http_client(config.poll.timeout).context("building the HTTP client")?;
        let mut clients = Vec::new();
        let mut pairs = Vec::new();
        for account in &config.accounts {
            metrics.init_account(&account.name);
            clients.push(Arc::new(LiveClient::new(
                http.clone(),
                account.endpoint.clone(),
                account.credentials.clone(),
                Arc::new(Budget::new(config.poll.requests_per_second)),
                account.name.clone(),
                metrics.clone(),
                config.poll.timeout,
            )));
            pairs.extend(
                config
                    .poll
                    .package_types
                    .iter()
                    .map(|q| (account.name.clone(), *q)),
            );
        }
        store.publish();
        let scheduler = Scheduler::spawn(&clients, &config.poll, store.clone(), shutdown);
        let router = crate::server::router(store.clone(), &config.web.telemetry_path);
        Ok(Exporter {
            store,
            scheduler,
            router,
            pairs,
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Polls counted so far per pair.
    fn poll_counts(&self) -> BTreeMap<(String, QueryType), u64> {
        let pairs = self.store.pairs();
        self.pairs
            .iter()
            .map(|k| (k.clone(), pairs.get(k).map_or(0, |p| p.polls)))
            .collect()
    }

    /// Waits until every pair has finished at least `n` polls.
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
        self.scheduler.poll_now();
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

    /// Whether the latest poll of every pair succeeded.
    pub fn all_up(&self) -> bool {
        let pairs = self.store.pairs();
        self.pairs
            .iter()
            .all(|k| pairs.get(k).is_some_and(|p| p.up))
    }

    /// Stops polling (the caller cancelled the shutdown token) and waits for the pollers.
    pub async fn stopped(self) {
        self.scheduler.join().await;
    }
}

/// The daemon: serve on the configured address until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.web.listen_address)
        .await
        .with_context(|| format!("listening on {}", config.web.listen_address))?;
    run_on(listener, config, shutdown).await
}

/// The daemon on a given socket (tests bind `127.0.0.1:0`).
pub async fn run_on(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let exporter = Exporter::start(&config, shutdown.clone())?;
    tracing::info!(
        address = %listener.local_addr()?,
        path = %config.web.telemetry_path,
        accounts = config.accounts.len(),
        interval = %humantime::format_duration(config.poll.interval),
        "serving"
    );
    crate::server::serve(listener, exporter.router(), shutdown)
        .await
        .context("serving HTTP")?;
    // Stop pollers within a bounded time: an in-flight API call is abandoned, not awaited.
    let _ = tokio::time::timeout(Duration::from_secs(3), exporter.stopped()).await;
    tracing::info!("stopped");
    Ok(())
}

/// `--once`: poll every pair once, return the exposition and whether every poll succeeded.
pub async fn once(config: &Config) -> anyhow::Result<(bytes::Bytes, bool)> {
    let shutdown = CancellationToken::new();
    let exporter = Exporter::start(config, shutdown.clone())?;
    exporter.wait_for_polls(1).await;
    shutdown.cancel();
    let ok = exporter.all_up();
    let text = exporter.store().exposition().text.clone();
    exporter.stopped().await;
    Ok((text, ok))
}
