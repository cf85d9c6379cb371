//! `--demo`: the Live API simulator on an ephemeral loopback port, and two demo accounts pointed
//! at it, so the exporter runs with no Tencent account. Their packages are billed as Tencent
//! bills them, once per demo day (`--demo.day`) at a bill hour, in expiry order (the simulator's
//! `Demo`). Built with the default feature `demo` only (the simulator is the crate
//! `tencent-live-simulator`).

use anyhow::Context as _;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{RawAccount, RawConfig};
use tencent_live_simulator::Demo;

/// The daily-settled demo account's name: the `account` label of its series.
pub const ACCOUNT: &str = "demo";
/// The monthly-settled demo account's name (its packages are frozen).
pub const MONTHLY_ACCOUNT: &str = "demo-monthly";
/// Demo keys: they open only the in-process simulator.
const SECRET_ID: &str = "AKIDDEMO00000000000000000000000000";
const SECRET_KEY: &str = "demo-secret-key-not-a-real-one";
const MONTHLY_SECRET_ID: &str = "AKIDDEMOMONTHLY0000000000000000000";
const MONTHLY_SECRET_KEY: &str = "demo-monthly-secret-key-not-a-real-one";
/// Demo polls often, so that each bill (one per demo day, 2m by default) shows within an hour
/// of demo time; a configured interval still wins.
pub const INTERVAL: &str = "5s";
/// How often the demo's bills are issued when due: well under the shortest demo day (1 s).
const BILLING_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// Starts the simulator with the demo accounts, billed over a demo day of `day`; returns its
/// base URL.
pub async fn start_simulator(
    shutdown: CancellationToken,
    day: std::time::Duration,
) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the demo simulator to a loopback port")?;
    let addr = listener.local_addr()?;
    let (origin, started) = (time::OffsetDateTime::now_utc(), tokio::time::Instant::now());
    let mut demo = Demo::new(
        (SECRET_ID, SECRET_KEY),
        Some((MONTHLY_SECRET_ID, MONTHLY_SECRET_KEY)),
        origin,
        day,
    );
    let sim = demo.simulator().clone();
    // The billing clock: bills land when due in wall-clock time, whatever the poll interval.
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(BILLING_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {
                    let bills = demo.advance(started.elapsed());
                    if bills > 0 {
                        tracing::debug!(bills, "demo: daily bills issued");
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        if let Err(e) = sim.serve(listener, shutdown).await {
            tracing::error!("demo simulator stopped: {e}");
        }
    });
    tracing::info!(%addr, day = %humantime::format_duration(day), "demo: Live API simulator started");
    Ok(format!("http://{addr}"))
}

/// Replaces the configured accounts with the demo accounts.
pub fn apply(raw: &mut RawConfig, endpoint: &str) {
    let account = |name: &str, id: &str, key: &str| RawAccount {
        name: name.into(),
        secret_id: Some(id.into()),
        secret_key: Some(SecretString::from(key)),
        endpoint: Some(endpoint.into()),
        ..RawAccount::default()
    };
    raw.accounts = Some(vec![
        account(ACCOUNT, SECRET_ID, SECRET_KEY),
        account(MONTHLY_ACCOUNT, MONTHLY_SECRET_ID, MONTHLY_SECRET_KEY),
    ]);
    raw.poll.interval.get_or_insert_with(|| INTERVAL.into());
}
