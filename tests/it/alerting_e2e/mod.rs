//! The shipped Grafana dashboard, the generated alert rules and
//! `deploy/alertmanager/alertmanager.yml` against one real stack: Debian's `prometheus` (2.42)
//! scrapes the real exporter binary in `--demo` mode and sends its alerts to Debian's
//! `prometheus-alertmanager` (0.25), whose two webhook receivers (`page`, `ticket`) point at a
//! tiny HTTP server inside this test.
//!
//! The demo bills its packages once per demo day, as Tencent does (the simulator's billing), and
//! the test runs it with a day of [`DEMO_DAY_SECONDS`]: the rules Prometheus loads are the
//! mixin's rules for that day, those `jsonnet -S --tla-code daySeconds=N
//! deploy/mixin/alerts.yml.jsonnet` writes ([`prometheus::generated_rules`]; every window,
//! threshold and `for` scales with the day). The exporter polls every second, Prometheus scrapes
//! and evaluates every second, Alertmanager's `group_wait` / `group_interval` are 1 s; everything
//! else is the shipped files. The demo's first bill lands 0.41 of a day after its start. The
//! test asserts that:
//!
//! - the scrape target is up and every generated rule is loaded and evaluates (`health` ok);
//! - every query of the dashboard (instant or range, as its panel runs it, with the Grafana
//!   variables replaced) and every rule expression (recording and alerting) answers without
//!   error, and has data, except those listed in `DASHBOARD_MAY_BE_EMPTY` and
//!   `RULES_MAY_BE_EMPTY` (in [`prometheus`]), which the demo cannot trigger (no API errors, no
//!   invalid fields, no outage);
//! - the dashboard's `label_values` variables find values;
//! - the demo's top speed codec pool, which runs out at its second bill (1.5 days of usage),
//!   drives `TencentLiveRunwayCritical` and `TencentLiveRunwayLow`, and its unused transcode
//!   package `demo-transcode-new` (5 days left) drives `TencentLiveQuotaExpiringUnused`, to
//!   pending or firing in Prometheus, with annotations whose templates expand without error;
//!   the traffic pool, whose in-use package runs out at the first bill but has a 1 TB package
//!   queued behind it, raises no pool alert; `TencentLivePayAsYouGo` concerns only the top speed
//!   codec pool; the monthly-settled account, whose packages are frozen, raises no runway,
//!   pay-as-you-go or expiring-quota alert;
//! - at the end, no exporter-health alert is active;
//! - Alertmanager pages the critical pool alert: `TencentLiveRunwayCritical` arrives at `page`,
//!   for the top speed codec pool;
//! - its warning twin `TencentLiveRunwayLow` fires in Prometheus, is `suppressed` (inhibited by
//!   the critical one) in Alertmanager, and never arrives at any receiver, watched for
//!   `QUIET_WINDOW` (two flushes of its group, in [`alertmanager`]) from when the test first sees
//!   it in Alertmanager;
//! - `demo-transcode-new` arrives at `ticket` as `TencentLiveQuotaExpiringUnused`, with its
//!   10,000 minutes in minutes, as Tencent counts them;
//! - nothing else arrives but, once the top speed codec pool has run out,
//!   `TencentLivePayAsYouGo` for it (at `page`), and warnings about the monthly-settled account's
//!   frozen quota (at `ticket`): in particular not the traffic pool.
//!
//! One test asks all of it of one stack: the wait is real (Prometheus' discovery, two demo bills,
//! a demo day of history), so a second stack would only double it on the machine's cores; and
//! one test owns its processes outright (a stack shared by two tests would live in a static,
//! which is never dropped: the binary's exit would leave its processes behind).
//! Every process chooses its own port (`127.0.0.1:0`) and the test reads it from the process's
//! log, so no other process can take it in between. Prometheus' configuration must name the
//! exporter before the exporter is started (see below), so it names a relay that the test binds
//! first and that forwards to the exporter once the exporter has logged its address.
//!
//! Order: Alertmanager, then Prometheus (with no rule file yet), start while `jsonnet`
//! generates the rules (0.7 s on a quiet machine, up to 5 s on a loaded one), and Prometheus
//! loads them (`/-/reload`) while it discovers its target; the exporter starts only once the
//! rules are loaded and Prometheus has discovered its target (the scrape manager applies target
//! sets on a 5 s ticker), so the first scrape follows within a second, before the first bill.
//! External servers cannot be driven, so the test asks their APIs every [`ROUND`], bounded by
//! [`DEADLINE`], asking Prometheus in full only once it has evaluated its rules again, and looks
//! at once when the receiver gets a delivery. Alert states are recorded on every round, so a
//! pending state seen once counts. The processes are killed by a guard, also on panic. The
//! closing line gives the time of each phase since the start.

mod alertmanager;
mod processes;
mod prometheus;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use processes::{Processes, Relay};
use prometheus::Api;

use crate::support::{repo_path, tool};

/// Bound on the whole test once the first process is started: the exporter starts about 5 s
/// in, and what the test waits for happens in the demo's first days or never (the runway alerts
/// between its first two bills, `demo-transcode-new` expires on day 5), while later days bring
/// alerts of their own (the warning twin arrives once its critical twin has resolved), which
/// would only hide what is missing.
const DEADLINE: Duration = Duration::from_secs(6 * DEMO_DAY_SECONDS as u64);
/// The demo's day in this test (`--demo.day`), and the `daySeconds` its rules are generated
/// for: the first bill lands after 4.1 s, the top speed codec pool runs out at the second, after
/// 11.8 s. A shorter day would shave under a second off the test and eat the margins it needs
/// on a loaded machine: Prometheus must scrape the packages before the first bill (the
/// exporter's start, first poll, publish and a 1 s scrape: 1.5 s to 2.5 s), and the runway
/// alerts live between the two bills (7.7 s), where the critical one must go pending, firing,
/// through Alertmanager's `group_wait` and reach the receiver (2.5 s to 4 s).
pub(crate) const DEMO_DAY_SECONDS: u32 = 10;
/// How often the APIs are asked again (Prometheus in full only after an evaluation).
const ROUND: Duration = Duration::from_millis(250);
/// How often Prometheus is asked whether it has discovered its target: every moment of delay
/// there delays the whole test (a cheap question to a local server).
const DISCOVERY_ROUND: Duration = Duration::from_millis(50);

/// Prometheus' configuration: the rules, the exporter (through the relay) under the job the
/// rules select, and Alertmanager; everything every second.
fn prometheus_config(
    job: &str,
    rules: &std::path::Path,
    exporter: SocketAddr,
    am: SocketAddr,
) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - '{}'\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am}']\n\
         scrape_configs:\n  - job_name: '{job}'\n    static_configs:\n      - targets: ['{exporter}']\n",
        rules.display()
    )
}

/// Waits (bounded by [`DEADLINE`] from `started`) until Prometheus has discovered its target.
async fn discovered(procs: &mut Processes, api: &Api, started: Instant) {
    loop {
        procs.assert_running();
        assert!(
            started.elapsed() < DEADLINE,
            "Prometheus did not discover its target in time:\n{}",
            procs.log("prometheus")
        );
        if let Ok(data) = api.data("/api/v1/targets", &[]).await {
            if data["activeTargets"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
            {
                return;
            }
        }
        tokio::time::sleep(DISCOVERY_ROUND).await;
    }
}

/// When each phase ended, since the start, for the closing line.
#[derive(Default, Debug)]
struct Phases(Vec<(&'static str, Duration)>);

impl Phases {
    fn mark(&mut self, phase: &'static str, started: Instant) {
        self.0.push((phase, started.elapsed()));
    }

    fn mark_at(&mut self, phase: &'static str, started: Instant, at: Option<Instant>) {
        if let Some(at) = at {
            self.0.push((phase, at - started));
        }
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut phases = self.0.clone();
        phases.sort_by_key(|(_, at)| *at);
        for (i, (phase, at)) in phases.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{phase} {:.2}s", at.as_secs_f64())?;
        }
        Ok(())
    }
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
async fn one_real_stack_evaluates_the_dashboard_and_rules_and_routes_the_demos_alerts() {
    let (prometheus, alertmanager) = (tool("prometheus"), tool("alertmanager"));
    let shipped_am = std::fs::read_to_string(repo_path("deploy/alertmanager/alertmanager.yml"))
        .expect("deploy/alertmanager/alertmanager.yml");
    let started = Instant::now();
    let mut phases = Phases::default();

    // Alertmanager, the receiver and Prometheus start while jsonnet generates the rules;
    // Prometheus loads them once they are there (`/-/reload`).
    let generating = tokio::task::spawn_blocking(prometheus::generated_rules);
    let (receiver, inbox) = alertmanager::start_receiver().await;
    let mut procs = Processes::new();
    let am_config = procs.dir.join("alertmanager.yml");
    std::fs::write(
        &am_config,
        alertmanager::alertmanager_config(&shipped_am, &receiver),
    )
    .unwrap();
    procs.spawn(
        "alertmanager",
        Command::new(alertmanager)
            .arg(format!("--config.file={}", am_config.display()))
            .arg(format!("--storage.path={}", procs.dir.join("am").display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--cluster.listen-address="),
    );
    let job = prometheus::configured_job();
    let relay = Relay::start().await;
    let am_address = procs
        .bound_address("alertmanager", "msg=\"Listening on\"")
        .await;
    phases.mark("Alertmanager listening", started);

    // The rule file does not exist yet: a rule_files entry that matches no file loads none.
    let rules = procs.dir.join("alerts.yml");
    let config = procs.dir.join("prometheus.yml");
    std::fs::write(
        &config,
        prometheus_config(&job, &rules, relay.address, am_address),
    )
    .unwrap();
    procs.spawn(
        "prometheus",
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                procs.dir.join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--web.enable-lifecycle"),
    );
    let prometheus_address = procs
        .bound_address("prometheus", "msg=\"Listening on\"")
        .await;
    phases.mark("Prometheus listening", started);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let prom = Api {
        base: format!("http://{prometheus_address}"),
        http: http.clone(),
    };
    let am = Api {
        base: format!("http://{am_address}"),
        http,
    };

    let generated = generating
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    phases.mark("rules generated", started);
    assert_eq!(
        prometheus::rule_job(&generated),
        job,
        "the rules select the scrape job of the mixin's exporterSelector"
    );
    std::fs::write(&rules, &generated.file).unwrap();
    // Answers once Prometheus has loaded its configuration again (500 with the error if not).
    match prom.post("/-/reload").await {
        Ok((200, _)) => phases.mark("rules loaded", started),
        answer => panic!(
            "Prometheus did not load the rules: {answer:?}\n{}",
            procs.log("prometheus")
        ),
    }

    discovered(&mut procs, &prom, started).await;
    phases.mark("target discovered", started);
    // The demo, without any TLE*/TENCENTCLOUD* variable of the test's environment; its first
    // poll is scraped at once, before its first bill.
    let mut exporter = Command::new(env!("CARGO_BIN_EXE_tencent-live-exporter"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TLE") || key.starts_with("TENCENTCLOUD") || key == "RUST_LOG" {
            exporter.env_remove(key);
        }
    }
    procs.spawn(
        "exporter",
        exporter
            .arg("--demo")
            .arg(format!("--demo.day={DEMO_DAY_SECONDS}s"))
            .arg("--web.listen-address")
            .arg("127.0.0.1:0")
            .env("TLE__POLL__INTERVAL", "1s"),
    );
    relay.forward_to(procs.bound_address("exporter", " serving address=").await);
    phases.mark("exporter serving", started);

    let mut in_prometheus = prometheus::Checks::new(generated.count);
    let mut in_alertmanager = alertmanager::Checks::default();
    let mut prometheus_done = false;
    loop {
        procs.assert_running();
        let up_before = in_prometheus.target_up;
        in_prometheus.round(&prom).await;
        if !up_before && in_prometheus.target_up {
            phases.mark("target up", started);
        }
        let warning_firing = in_prometheus.alerts.get(&(
            "TencentLiveRunwayLow".to_owned(),
            "top_speed_codec".to_owned(),
            String::new(),
        )) == Some(&"firing".to_owned());
        let received = inbox.received();
        in_alertmanager
            .round(&am, &received, warning_firing, || procs.log("alertmanager"))
            .await;
        let missing = in_prometheus.missing();
        if !prometheus_done && missing.is_empty() {
            prometheus_done = true;
            phases.mark("Prometheus checks shown", started);
        }
        if prometheus_done && in_alertmanager.complete() {
            break;
        }
        if started.elapsed() > DEADLINE {
            panic!(
                "after {:?}, still missing in Prometheus:\n  {}\n{}\nAlertmanager: \
                 {in_alertmanager:?}\nreceived: {received:#?}\n--- prometheus log ---\n{}\n\
                 --- alertmanager log ---\n{}\n--- exporter log ---\n{}",
                started.elapsed(),
                missing.join("\n  "),
                in_prometheus.report(),
                procs.log("prometheus"),
                procs.log("alertmanager"),
                procs.log("exporter"),
            );
        }
        // A delivery to the receiver ends the wait at once.
        let _ = tokio::time::timeout(ROUND, inbox.delivered.notified()).await;
    }

    in_prometheus.assert_expanded_and_healthy(&procs.log("exporter"));
    let received = inbox.received();
    alertmanager::assert_routed(&received);
    phases.mark_at(
        "critical received",
        started,
        in_alertmanager.critical_received_at,
    );
    phases.mark_at(
        "warning in Alertmanager",
        started,
        in_alertmanager.warning_in_alertmanager_at,
    );
    phases.mark_at(
        "expiring received",
        started,
        in_alertmanager.expiring_received_at,
    );
    phases.mark("done", started);
    eprintln!(
        "alerting e2e: {phases}; {} dashboard queries, {} rules; alerts seen in Prometheus: {:?}; \
         received: {:?}",
        in_prometheus.query_count(),
        generated.count,
        in_prometheus.alerts,
        alertmanager::summary(&received)
    );
}
