//! The Alertmanager half of the stack's checks: the shipped `alertmanager.yml` with 1 s group
//! timings and its two webhook receivers (`page`, `ticket`) pointed at a tiny HTTP server inside
//! the test, and what one round asks Alertmanager and that server (see the parent module for
//! what is asserted).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::Notify;

use super::prometheus::Api;

/// How long the inhibited warning is watched for from the first round that sees it in
/// Alertmanager: the test's 1 s `group_wait` plus one 1 s `group_interval`. Alertmanager decides
/// whether to send it when its group is flushed, first `group_wait` after it arrived (at the
/// latest `group_wait` after it is first seen there), then every `group_interval`; a broken
/// inhibition sends it at that first flush, so the window holds its first flush and one more.
/// It runs alongside the wait for the critical twin, which also takes a `group_wait`.
const QUIET_WINDOW: Duration = Duration::from_secs(2);
/// The shipped Alertmanager configuration, with the receivers pointed at `receiver` and 1 s
/// group timings.
pub(crate) fn alertmanager_config(shipped: &str, receiver: &str) -> String {
    let mut config = shipped.to_owned();
    for (from, to) in [
        ("http://127.0.0.1:5001", receiver),
        ("group_wait: 30s", "group_wait: 1s"),
        ("group_interval: 5m", "group_interval: 1s"),
    ] {
        assert!(
            config.contains(from),
            "deploy/alertmanager/alertmanager.yml has no {from:?}"
        );
        config = config.replace(from, to);
    }
    config
}

/// One alert as a receiver got it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Received {
    receiver: String,
    alertname: String,
    account: String,
    package_type: String,
    package_id: String,
    status: String,
    description: String,
}

/// What the receiver got, and a wake-up for the test's loop on every delivery.
#[derive(Default)]
pub(crate) struct Inbox {
    received: Mutex<Vec<Received>>,
    /// Notified on every delivery, so that the test looks at once.
    pub(crate) delivered: Notify,
}

impl Inbox {
    /// Everything received so far.
    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().expect("inbox").clone()
    }
}

async fn webhook(
    State(inbox): State<Arc<Inbox>>,
    Path(receiver): Path<String>,
    body: String,
) -> &'static str {
    let body: Value = serde_json::from_str(&body).expect("Alertmanager sends JSON");
    let label = |alert: &Value, name: &str| alert["labels"][name].as_str().unwrap_or("").to_owned();
    let mut received = inbox.received.lock().expect("inbox");
    for alert in body["alerts"].as_array().into_iter().flatten() {
        received.push(Received {
            receiver: receiver.clone(),
            alertname: label(alert, "alertname"),
            account: label(alert, "account"),
            package_type: label(alert, "package_type"),
            package_id: label(alert, "package_id"),
            status: alert["status"].as_str().unwrap_or("").to_owned(),
            description: alert["annotations"]["description"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        });
    }
    drop(received);
    inbox.delivered.notify_one();
    "ok"
}

/// Starts the webhook receiver on a loopback port: its base URL and its inbox.
pub(crate) async fn start_receiver() -> (String, Arc<Inbox>) {
    let inbox = Arc::new(Inbox::default());
    let app = axum::Router::new()
        .route("/{receiver}", post(webhook))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let addr = listener.local_addr().expect("receiver address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), inbox)
}

/// The checks against Alertmanager and the receiver, and what the rounds have seen.
#[derive(Default, Debug)]
pub(crate) struct Checks {
    /// The warning twin is firing in Prometheus.
    warning_firing: bool,
    /// Alertmanager holds the warning twin as suppressed by an inhibition.
    warning_inhibited: bool,
    /// When the critical twin was first seen at the receiver.
    pub(crate) critical_received_at: Option<Instant>,
    /// When the expiring-unused alert was first seen at the receiver.
    pub(crate) expiring_received_at: Option<Instant>,
    /// When a round first saw the warning twin in Alertmanager (in any state).
    pub(crate) warning_in_alertmanager_at: Option<Instant>,
}

fn is_warning_twin(labels: &Value) -> bool {
    labels["alertname"] == "TencentLiveRunwayLow" && labels["package_type"] == "top_speed_codec"
}

fn is_critical(r: &Received) -> bool {
    r.alertname == "TencentLiveRunwayCritical"
        && r.package_type == "top_speed_codec"
        && r.status == "firing"
}

fn is_expiring(r: &Received) -> bool {
    r.alertname == "TencentLiveQuotaExpiringUnused"
        && r.package_id == "demo-transcode-new"
        && r.status == "firing"
}

impl Checks {
    /// One round: what the receiver got (panics if the inhibited warning arrived), whether the
    /// warning twin is firing in Prometheus, and Alertmanager's view of it.
    pub(crate) async fn round(
        &mut self,
        am: &Api,
        received: &[Received],
        warning_firing: bool,
        alertmanager_log: impl Fn() -> String,
    ) {
        if let Some(twin) = received
            .iter()
            .find(|r| r.alertname == "TencentLiveRunwayLow")
        {
            // Which side is broken: the inhibition, or the rule of the critical twin that
            // should have inhibited it.
            let why = if self.critical_received_at.is_some() || received.iter().any(is_critical) {
                "its critical twin had arrived: the inhibition did not hold"
            } else {
                "its critical twin TencentLiveRunwayCritical had not arrived: did its rule fire?"
            };
            panic!(
                "the inhibited warning arrived ({why}): {twin:?}\n--- alertmanager log ---\n{}",
                alertmanager_log()
            );
        }
        self.warning_firing |= warning_firing;
        if let Ok(alerts) = am.get("/api/v2/alerts", &[]).await {
            let alerts = alerts.as_array().into_iter().flatten();
            if self.warning_in_alertmanager_at.is_none()
                && alerts.clone().any(|a| is_warning_twin(&a["labels"]))
            {
                self.warning_in_alertmanager_at = Some(Instant::now());
            }
            self.warning_inhibited |= alerts.into_iter().any(|a| {
                is_warning_twin(&a["labels"])
                    && a["status"]["state"] == "suppressed"
                    && a["status"]["inhibitedBy"]
                        .as_array()
                        .is_some_and(|by| !by.is_empty())
            });
        }
        if self.critical_received_at.is_none() && received.iter().any(is_critical) {
            self.critical_received_at = Some(Instant::now());
        }
        if self.expiring_received_at.is_none() && received.iter().any(is_expiring) {
            self.expiring_received_at = Some(Instant::now());
        }
    }

    /// Everything is shown, the quiet window included.
    pub(crate) fn complete(&self) -> bool {
        self.warning_firing
            && self.warning_inhibited
            && self.critical_received_at.is_some()
            && self.expiring_received_at.is_some()
            && self
                .warning_in_alertmanager_at
                .is_some_and(|at| at.elapsed() >= QUIET_WINDOW)
    }
}

/// Panics unless every alert received was routed by severity (the critical ones page, the
/// warnings open a ticket) and is one the demo raises, and unless the expiring package's
/// description counts its quota as Tencent does.
pub(crate) fn assert_routed(received: &[Received]) {
    for r in received {
        match r.alertname.as_str() {
            _ if r.account == "demo-monthly" => {
                assert_eq!(r.receiver, "ticket", "frozen quota is a warning: {r:?}");
                assert!(
                    !r.alertname.starts_with("TencentLiveRunway")
                        && r.alertname != "TencentLivePayAsYouGo"
                        && r.alertname != "TencentLiveQuotaExpiringUnused",
                    "frozen packages raise no pool alert: {r:?}"
                );
            }
            "TencentLiveRunwayCritical" => assert_eq!(r.receiver, "page", "{r:?}"),
            "TencentLivePayAsYouGo" if r.package_type == "top_speed_codec" => {
                assert_eq!(r.receiver, "page", "{r:?}")
            }
            "TencentLiveQuotaExpiringUnused" => assert_eq!(r.receiver, "ticket", "{r:?}"),
            _ => panic!("an alert that the demo must not raise arrived: {r:?}"),
        }
        assert!(
            !(r.account == "demo" && r.package_type == "traffic"),
            "the traffic pool hands over: {r:?}"
        );
    }
    let expiring = received
        .iter()
        .find(|r| is_expiring(r))
        .expect("the expiring package arrived");
    assert!(
        expiring
            .description
            .starts_with("10000 minutes of transcode package demo-transcode-new"),
        "10,000 minutes will expire unused: {expiring:?}"
    );
}

/// What arrived, one entry per (receiver, alert, package type, package).
pub(crate) fn summary(received: &[Received]) -> BTreeSet<(&str, &str, &str, &str)> {
    received
        .iter()
        .map(|r| {
            (
                r.receiver.as_str(),
                r.alertname.as_str(),
                r.package_type.as_str(),
                r.package_id.as_str(),
            )
        })
        .collect()
}
