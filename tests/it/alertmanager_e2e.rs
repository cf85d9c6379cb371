//! The generated rules and `deploy/alertmanager/alertmanager.yml`, for real: Debian's
//! `prometheus` (2.42) scrapes the real exporter binary in `--demo` mode (a demo day of
//! [`DEMO_DAY_SECONDS`], rules generated for it, as in `prometheus_e2e`) and sends its alerts to
//! Debian's `prometheus-alertmanager` (0.25), whose two webhook receivers (`page`, `ticket`)
//! point at a tiny HTTP server inside this test. The test asserts that:
//!
//! - the demo's top speed codec pool (runs out at its second bill) pages:
//!   `TencentLiveRunwayCritical` arrives at `page`, for that (account, package type);
//! - its warning twin `TencentLiveRunwayLow` fires in Prometheus, is `suppressed` (inhibited by
//!   the critical one) in Alertmanager, and never arrives at any receiver;
//! - the unused transcode package that expires in 5 days arrives at `ticket` as
//!   `TencentLiveQuotaExpiringUnused`, with its 10,000 minutes in minutes, as Tencent counts them;
//! - nothing else arrives but, once the top speed codec pool has run out,
//!   `TencentLivePayAsYouGo` for it (at `page`), and warnings about the monthly-settled account's
//!   frozen quota (at `ticket`): in particular not the traffic pool, whose in-use package runs
//!   out at the first bill but has a 1 TB package queued behind it.
//!
//! To finish in seconds, the exporter polls every second, Prometheus scrapes and evaluates every
//! second, the rules' windows and `for`s are those generated for the short demo day, and
//! Alertmanager's `group_wait` / `group_interval` are 1s; everything else is the shipped files.
//! External servers cannot be driven, so the test asks their APIs (and its receiver) every
//! 250 ms, bounded by [`DEADLINE`]; it watches for [`QUIET_WINDOW`] (two flushes of its group)
//! from when it first sees the inhibited warning in Alertmanager that it does not arrive. The
//! processes are killed by a guard, also on panic.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::post;
use serde_json::Value;

#[cfg(doc)]
use crate::prometheus_e2e::DEMO_DAY_SECONDS;
use crate::prometheus_e2e::{
    Api, Processes, free_port, generated_rules, rule_job, scratch_dir, start_demo_once_discovered,
};
use crate::support::{repo_path, tool};

/// Bound on the whole test once the processes are started.
const DEADLINE: Duration = Duration::from_secs(150);
/// How often the APIs (two cheap questions) and the receiver are asked again.
const ROUND: Duration = Duration::from_millis(250);
/// How long the inhibited warning is watched for from the first round that sees it in
/// Alertmanager: the test's 1 s `group_wait` plus one 1 s `group_interval`. Alertmanager decides
/// whether to send it when its group is flushed, first `group_wait` after it arrived (at the
/// latest `group_wait` after it is first seen there), then every `group_interval`; a broken
/// inhibition sends it at that first flush, so the window holds its first flush and one more.
/// It runs alongside the wait for the critical twin, which also takes a `group_wait`.
const QUIET_WINDOW: Duration = Duration::from_secs(2);
/// The shipped Alertmanager configuration, with the receivers pointed at `receiver` and 1 s
/// group timings.
fn alertmanager_config(shipped: &str, receiver: &str) -> String {
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
struct Received {
    receiver: String,
    alertname: String,
    account: String,
    package_type: String,
    package_id: String,
    status: String,
    description: String,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

async fn webhook(
    State(inbox): State<Inbox>,
    Path(receiver): Path<String>,
    body: String,
) -> &'static str {
    let body: Value = serde_json::from_str(&body).expect("Alertmanager sends JSON");
    let label = |alert: &Value, name: &str| alert["labels"][name].as_str().unwrap_or("").to_owned();
    let mut inbox = inbox.lock().expect("inbox");
    for alert in body["alerts"].as_array().into_iter().flatten() {
        inbox.push(Received {
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
    "ok"
}

/// Starts the webhook receiver on a loopback port: its base URL and its inbox.
async fn start_receiver() -> (String, Inbox) {
    let inbox = Inbox::default();
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

fn prometheus_config(job: &str, rules: &std::path::Path, exporter: u16, am: u16) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - '{}'\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am}']\n\
         scrape_configs:\n  - job_name: '{job}'\n    static_configs:\n      - targets: ['127.0.0.1:{exporter}']\n",
        rules.display()
    )
}

/// What the rounds have seen.
#[derive(Default, Debug)]
struct Seen {
    /// The warning twin is firing in Prometheus.
    warning_firing: bool,
    /// Alertmanager holds the warning twin as suppressed by an inhibition.
    warning_inhibited: bool,
    /// When the critical twin was first seen at the receiver (since the start).
    critical_received_at: Option<Duration>,
    /// When a round first saw the warning twin in Alertmanager (in any state).
    warning_in_alertmanager_at: Option<Instant>,
}

fn is_warning_twin(labels: &Value) -> bool {
    labels["alertname"] == "TencentLiveRunwayLow" && labels["package_type"] == "top_speed_codec"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_prometheus,
    ignore = "needs prometheus: apt-get install prometheus"
)]
#[cfg_attr(
    missing_alertmanager,
    ignore = "needs alertmanager: apt-get install prometheus-alertmanager"
)]
#[cfg_attr(missing_jsonnet, ignore = "needs jsonnet: apt-get install jsonnet")]
async fn alertmanager_pages_the_critical_pool_alert_and_inhibits_its_warning_twin() {
    let prometheus = tool("prometheus");
    let alertmanager = tool("alertmanager");
    let generated = generated_rules();
    let shipped_am = std::fs::read_to_string(repo_path("deploy/alertmanager/alertmanager.yml"))
        .expect("deploy/alertmanager/alertmanager.yml");

    let (receiver, inbox) = start_receiver().await;
    let mut procs = Processes {
        dir: scratch_dir(),
        children: Vec::new(),
    };
    let (exporter_port, prometheus_port, am_port) = (free_port(), free_port(), free_port());
    let am_config = procs.dir.join("alertmanager.yml");
    std::fs::write(&am_config, alertmanager_config(&shipped_am, &receiver)).unwrap();
    let rules = procs.dir.join("alerts.yml");
    std::fs::write(&rules, &generated.file).unwrap();
    let config = procs.dir.join("prometheus.yml");
    std::fs::write(
        &config,
        prometheus_config(&rule_job(&generated), &rules, exporter_port, am_port),
    )
    .unwrap();

    let started = Instant::now();
    procs.spawn(
        "alertmanager",
        Command::new(alertmanager)
            .arg(format!("--config.file={}", am_config.display()))
            .arg(format!("--storage.path={}", procs.dir.join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address="),
    );
    procs.spawn(
        "prometheus",
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                procs.dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}")),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let prom = Api {
        base: format!("http://127.0.0.1:{prometheus_port}"),
        http: http.clone(),
    };
    let am = Api {
        base: format!("http://127.0.0.1:{am_port}"),
        http,
    };

    start_demo_once_discovered(&mut procs, &prom, exporter_port, started, DEADLINE).await;

    let critical = |r: &Received| {
        r.alertname == "TencentLiveRunwayCritical"
            && r.package_type == "top_speed_codec"
            && r.status == "firing"
    };
    let expiring = |r: &Received| {
        r.alertname == "TencentLiveQuotaExpiringUnused"
            && r.package_id == "demo-transcode-new"
            && r.status == "firing"
    };
    let mut seen = Seen::default();
    loop {
        procs.assert_running();
        let received = inbox.lock().expect("inbox").clone();
        if let Some(twin) = received
            .iter()
            .find(|r| r.alertname == "TencentLiveRunwayLow")
        {
            panic!(
                "the inhibited warning arrived: {twin:?}\n--- alertmanager log ---\n{}",
                procs.log("alertmanager")
            );
        }
        if let Ok(data) = prom.data("/api/v1/alerts", &[]).await {
            seen.warning_firing |= data["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| is_warning_twin(&a["labels"]) && a["state"] == "firing");
        }
        if let Ok(alerts) = am.get("/api/v2/alerts", &[]).await {
            let alerts = alerts.as_array().into_iter().flatten();
            if seen.warning_in_alertmanager_at.is_none()
                && alerts.clone().any(|a| is_warning_twin(&a["labels"]))
            {
                seen.warning_in_alertmanager_at = Some(Instant::now());
            }
            seen.warning_inhibited |= alerts.into_iter().any(|a| {
                is_warning_twin(&a["labels"])
                    && a["status"]["state"] == "suppressed"
                    && a["status"]["inhibitedBy"]
                        .as_array()
                        .is_some_and(|by| !by.is_empty())
            });
        }
        if seen.critical_received_at.is_none() && received.iter().any(critical) {
            seen.critical_received_at = Some(started.elapsed());
        }
        let complete = seen.warning_firing
            && seen.warning_inhibited
            && received.iter().any(critical)
            && received.iter().any(expiring)
            && seen
                .warning_in_alertmanager_at
                .is_some_and(|at| at.elapsed() >= QUIET_WINDOW);
        if complete {
            break;
        }
        if started.elapsed() > DEADLINE {
            panic!(
                "after {:?}: {seen:?}\nreceived: {received:#?}\n--- prometheus log ---\n{}\n\
                 --- alertmanager log ---\n{}\n--- exporter log ---\n{}",
                started.elapsed(),
                procs.log("prometheus"),
                procs.log("alertmanager"),
                procs.log("exporter"),
            );
        }
        tokio::time::sleep(ROUND).await;
    }

    let received = inbox.lock().expect("inbox").clone();
    // Routed by severity: the critical ones page, the warnings open a ticket.
    for r in &received {
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
    let expiring = received.iter().find(|r| expiring(r)).unwrap();
    assert!(
        expiring
            .description
            .starts_with("10000 minutes of transcode package demo-transcode-new"),
        "10,000 minutes will expire unused: {expiring:?}"
    );
    eprintln!(
        "alertmanager e2e: done in {:?} (the critical twin received after {:?}, its warning twin \
         in Alertmanager after {:?}); received {:?}",
        started.elapsed(),
        seen.critical_received_at,
        seen.warning_in_alertmanager_at.map(|at| at - started),
        received
            .iter()
            .map(|r| (&r.receiver, &r.alertname, &r.package_type, &r.package_id))
            .collect::<BTreeSet<_>>()
    );
}
