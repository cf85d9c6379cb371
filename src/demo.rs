//! `--demo`: the Live API simulator on an ephemeral loopback port, and a demo account pointed
//! at it, so the exporter runs with no Tencent account. Built with the default feature `demo`
//! only (the simulator is the crate `tencent-live-simulator`).

use anyhow::Context as _;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{RawAccount, RawConfig};
use tencent_live_simulator::Simulator;

/// The demo account's name: the `account` label of every demo series.
pub const ACCOUNT: &str = "demo";
/// Demo keys: they open only the in-process simulator.
const SECRET_ID: &str = "AKIDDEMO00000000000000000000000000";
const SECRET_KEY: &str = "demo-secret-key-not-a-real-one";
/// Demo polls often so that graphs move; a configured interval still wins.
pub const INTERVAL: &str = "30s";
/// How often the demo's packages are brought up to date with their usage.
const USAGE_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// Starts the simulator with the demo packages; returns its base URL.
pub async fn start_simulator(shutdown: CancellationToken) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the demo simulator to a loopback port")?;
    let addr = listener.local_addr()?;
    let (origin, started) = (time::OffsetDateTime::now_utc(), tokio::time::Instant::now());
    let sim = Simulator::demo(SECRET_ID, SECRET_KEY);
    // The usage clock: the demo's packages are used at steady rates per second, whatever the
    // poll interval (see `Simulator::demo`).
    let clock = sim.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(USAGE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => clock.advance_demo(SECRET_ID, origin, started.elapsed()),
            }
        }
    });
    tokio::spawn(async move {
        if let Err(e) = sim.serve(listener, shutdown).await {
            tracing::error!("demo simulator stopped: {e}");
        }
    });
    tracing::info!(%addr, "demo: Live API simulator started");
    Ok(format!("http://{addr}"))
}

/// Replaces the configured accounts with the demo account.
pub fn apply(raw: &mut RawConfig, endpoint: &str) {
    raw.accounts = Some(vec![RawAccount {
        name: ACCOUNT.into(),
        secret_id: Some(SECRET_ID.into()),
        secret_key: Some(SecretString::from(SECRET_KEY)),
        endpoint: Some(endpoint.into()),
        ..RawAccount::default()
    }]);
    raw.poll.interval.get_or_insert_with(|| INTERVAL.into());
}
