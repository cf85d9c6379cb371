//! The shipped Grafana dashboard and the generated alert rules against a real Prometheus server
//! (Debian's `prometheus`, 2.42) scraping the real exporter binary in `--demo` mode.
//!
//! The demo bills its packages once per demo day, as Tencent does (the simulator's billing), and
//! the test runs it with a day of [`DEMO_DAY_SECONDS`]: the rules Prometheus loads are the
//! mixin's rules for that day, those `jsonnet -S --tla-code daySeconds=N
//! deploy/mixin/alerts.yml.jsonnet` writes ([`generated_rules`]; every window, threshold and
//! `for` scales with the day). Prometheus scrapes and evaluates every second;
//! the exporter polls every second; the demo's first bill lands 0.41 of a day after its start. The
//! test asserts that:
//!
//! - the scrape target is up and every generated rule is loaded and evaluates (`health` ok);
//! - every query of the dashboard (instant or range, as its panel runs it, with the Grafana
//!   variables replaced) and every rule expression (recording and alerting) answers without
//!   error, and has data, except
//!   those listed in [`DASHBOARD_MAY_BE_EMPTY`] and [`RULES_MAY_BE_EMPTY`], which the demo cannot
//!   trigger (no API errors, no invalid fields, no outage);
//! - the dashboard's `label_values` variables find values;
//! - the demo's top speed codec pool, which runs out at its second bill (1.5 days of usage),
//!   drives `TencentLiveRunwayCritical` and `TencentLiveRunwayLow`, and its unused transcode
//!   package `demo-transcode-new` (5 days left) drives `TencentLiveQuotaExpiringUnused`, to
//!   pending or firing, with annotations whose templates expand without error; the traffic pool,
//!   whose in-use package runs out at the first bill but has a 1 TB package queued behind it,
//!   raises no pool alert; `TencentLivePayAsYouGo` concerns only the top speed codec pool; the
//!   monthly-settled account, whose packages are frozen, raises no runway, pay-as-you-go or
//!   expiring-quota alert;
//! - once the target is up, no exporter-health alert is active.
//!
//! An external server's progress cannot be driven, so this test polls Prometheus' HTTP API every
//! 500 ms, bounded by [`DEADLINE`]. Both processes are killed by a guard, also on panic.
//!
//! The exporter is started only once Prometheus has discovered its target, so the first scrape
//! follows within a second, before the first bill. Alert states are recorded on every round, so
//! a pending state seen once counts.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::{repo_path, tool};

/// Bound on the whole test once both processes are started.
const DEADLINE: Duration = Duration::from_secs(90);
/// The demo's day in the e2e tests (`--demo.day`), and the `daySeconds` their rules are
/// generated for: the first bill lands after 4.1 s, the top speed codec pool runs out at the
/// second, after 11.8 s. A shorter day would shave under a second off each test and eat the
/// margins they need on a loaded machine: Prometheus must scrape the packages before the first
/// bill (the exporter's start, first poll, publish and a 1 s scrape: 1.5 s to 2.5 s), and the
/// runway alerts live between the two bills (7.7 s), where the critical one must go pending,
/// firing, through Alertmanager's `group_wait` and reach the receiver (2.5 s to 4 s).
pub(crate) const DEMO_DAY_SECONDS: u32 = 10;
/// How often Prometheus' API is asked again.
const ROUND: Duration = Duration::from_millis(500);
/// How often Prometheus is asked whether it has discovered its target: every 100 ms of delay
/// there delays the whole test (a cheap question to a local server).
const DISCOVERY_ROUND: Duration = Duration::from_millis(100);

/// Dashboard queries (by a metric they use) that may be empty with the demo: it makes no failed
/// API calls and its answers have no invalid fields.
const DASHBOARD_MAY_BE_EMPTY: &[&str] = &[
    "tencent_live_exporter_api_request_errors_total",
    "tencent_live_exporter_invalid_fields_total",
];

/// Rules whose expression may be empty with the demo; every other rule (recording rules
/// included) must have data.
/// - `TencentLivePayAsYouGo`: the top speed codec pool may not have run out yet.
/// - `TencentLivePollFailing`, `TencentLiveApiErrorsHigh`, `TencentLiveDataStale`,
///   `TencentLiveReplicaDataStale`: the simulator answers every poll.
/// - `TencentLiveExporterDown`, `TencentLiveExporterReplicaDown`, `TencentLiveExporterAbsent`:
///   the target is scraped.
const RULES_MAY_BE_EMPTY: &[&str] = &[
    "TencentLivePayAsYouGo",
    "TencentLivePollFailing",
    "TencentLiveApiErrorsHigh",
    "TencentLiveDataStale",
    "TencentLiveReplicaDataStale",
    "TencentLiveExporterDown",
    "TencentLiveExporterReplicaDown",
    "TencentLiveExporterAbsent",
];

/// Alerts that must not be active at the end (`TencentLiveExporterAbsent` is pending until the
/// first scrape; `TencentLiveExporterDown` and `TencentLiveApiErrorsHigh` are left out because a
/// scrape or a call can time out on a loaded machine).
const HEALTHY_NOT_ACTIVE: &[&str] = &[
    "TencentLiveExporterAbsent",
    "TencentLiveDataStale",
    "TencentLiveReplicaDataStale",
    "TencentLivePollFailing",
];

/// Pool alerts that must never be active for the traffic pool (its in-use package runs out at
/// the first bill, but a queued 1 TB package keeps the pool going for 23 days), nor for the
/// monthly-settled account (frozen packages: a frozen-quota warning, no pool alert).
const POOL_QUIET: &[&str] = &[
    "TencentLiveRunwayLow",
    "TencentLiveRunwayCritical",
    "TencentLivePayAsYouGo",
    "TencentLiveQuotaExpiringUnused",
];

/// (alertname, package_type or package_id) that must reach pending or firing.
const REQUIRED_ALERTS: &[(&str, &str)] = &[
    ("TencentLiveRunwayCritical", "top_speed_codec"),
    ("TencentLiveRunwayLow", "top_speed_codec"),
    ("TencentLiveQuotaExpiringUnused", "demo-transcode-new"),
];

/// A child process killed (and reaped) on drop, and the scratch directory removed.
pub(crate) struct Processes {
    pub(crate) dir: PathBuf,
    pub(crate) children: Vec<(&'static str, Child)>,
}

impl Processes {
    pub(crate) fn log(&self, name: &str) -> String {
        let text =
            std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub(crate) fn spawn(&mut self, name: &'static str, cmd: &mut Command) {
        let log = File::create(self.dir.join(format!("{name}.log"))).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.children.push((name, child));
    }

    /// Panics if a process has exited.
    pub(crate) fn assert_running(&mut self) {
        let mut dead = Vec::new();
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                dead.push((*name, status));
            }
        }
        if let Some((name, status)) = dead.first() {
            panic!("{name} exited early ({status}):\n{}", self.log(name));
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

pub(crate) fn scratch_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir =
        std::env::temp_dir().join(format!("tle-prometheus-e2e-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// One query of the dashboard: where it is, its PromQL with Grafana's variables replaced, and
/// whether the panel runs it as an instant query.
#[derive(Debug)]
struct DashboardQuery {
    place: String,
    promql: String,
    instant: bool,
}

/// Grafana's variables as a dashboard user with "All" selected everywhere would send them.
fn substitute(expr: &str) -> String {
    let replaced = [
        ("${job}", ".*"),
        ("$job", ".*"),
        ("${cluster}", ".*"),
        ("$cluster", ".*"),
        ("${account}", ".*"),
        ("$account", ".*"),
        ("${package_type}", ".*"),
        ("$package_type", ".*"),
        ("${status}", ".*"),
        ("$status", ".*"),
        ("${__rate_interval}", "1m"),
        ("$__rate_interval", "1m"),
        ("${__interval}", "15s"),
        ("$__interval", "15s"),
        ("${__range}", "1h"),
        ("$__range", "1h"),
    ]
    .iter()
    .fold(expr.to_owned(), |e, (from, to)| e.replace(from, to));
    assert!(
        !replaced.contains('$'),
        "unhandled Grafana variable in {expr}"
    );
    replaced
}

fn dashboard_queries(dashboard: &Value) -> Vec<DashboardQuery> {
    fn walk(panels: &Value, out: &mut Vec<DashboardQuery>) {
        for panel in panels.as_array().into_iter().flatten() {
            walk(&panel["panels"], out);
            let title = panel["title"].as_str().unwrap_or("?");
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("every target has an expr");
                out.push(DashboardQuery {
                    place: format!("{title}/{}", target["refId"].as_str().unwrap_or("?")),
                    promql: substitute(expr),
                    instant: target["instant"].as_bool() == Some(true),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// `label_values(metric, label)` of the dashboard's query variables: (variable, metric with the
/// other variables replaced, label).
fn dashboard_variables(dashboard: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"]
            .as_str()
            .or_else(|| var["query"].as_str())
            .expect("query variable has a query");
        let inner = query
            .trim()
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable query {query} is not label_values(...)"));
        let (metric, label) = inner.rsplit_once(',').expect("label_values(metric, label)");
        out.push((
            var["name"].as_str().unwrap_or("?").to_owned(),
            substitute(metric.trim()),
            label.trim().to_owned(),
        ));
    }
    out
}

/// The mixin's rules for a day of [`DEMO_DAY_SECONDS`], as a rule file.
pub(crate) struct Rules {
    /// The rule file: one group holding the mixin's recording rules then its alerting rules, as
    /// `deploy/mixin/alerts.yml.jsonnet` assembles them, written as JSON (which YAML reads).
    pub(crate) file: String,
    /// How many rules it holds.
    pub(crate) count: usize,
}

/// The mixin's rules for a day of [`DEMO_DAY_SECONDS`]: the rule objects that
/// `jsonnet -S --tla-code daySeconds=N deploy/mixin/alerts.yml.jsonnet` writes, evaluated by
/// `jsonnet` as JSON. Debian's C++ `jsonnet` takes under a second for them but about 15 s more
/// for the mixin's YAML emitter, which this test does not need: `deploy/check.sh` holds the
/// emitter's output to the mixin (`generate.sh --check`) and to `promtool check rules`.
/// `atRiskMinHistory` is one (demo) day here instead of three, so that the quota-at-risk records
/// have data within the test's short run; the three-day gate itself is held by the promtool
/// timelines of `deploy/prometheus/alerts.test.yml`.
pub(crate) fn generated_rules() -> Rules {
    let program = format!(
        "local mixin = (import 'mixin.libsonnet') + {{ _config+:: {{ daySeconds: {DEMO_DAY_SECONDS}, atRiskMinHistory: 86400 }} }};\n\
         {{ groups: [{{ name: 'tencent-live-exporter', rules: std.flattenArrays(\
         [g.rules for g in mixin.prometheusRules.groups + mixin.prometheusAlerts.groups]) }}] }}"
    );
    let out = Command::new(tool("jsonnet"))
        .arg("-J")
        .arg(repo_path("deploy/mixin"))
        .arg("-e")
        .arg(program)
        .output()
        .expect("jsonnet runs");
    assert!(
        out.status.success(),
        "jsonnet (deploy/mixin's rules): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = String::from_utf8(out.stdout).expect("the rule file is UTF-8");
    let parsed: Value = serde_json::from_str(&file).expect("jsonnet writes JSON");
    let count = parsed["groups"][0]["rules"].as_array().map_or(0, Vec::len);
    assert!(count > 10, "the mixin has rules: {file}");
    Rules { file, count }
}

/// The Prometheus (or Alertmanager) HTTP API.
pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
}

impl Api {
    /// GET `path` with `params`; the parsed JSON answer, whatever the HTTP status (errors come
    /// as `{"status":"error",...}` with a 4xx).
    pub(crate) async fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.base), params)
            .map_err(|e| e.to_string())?;
        let resp = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        let text = resp.text().await.map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
    }

    /// The data of a successful answer; `Err` with Prometheus' error otherwise.
    pub(crate) async fn data(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let answer = self.get(path, params).await?;
        if answer["status"] == "success" {
            Ok(answer["data"].clone())
        } else {
            Err(format!(
                "{}: {}",
                answer["errorType"].as_str().unwrap_or("?"),
                answer["error"].as_str().unwrap_or("?")
            ))
        }
    }

    /// Evaluates `promql` now (instant) or over the last minute (range, step 1s): the number of
    /// series, or Prometheus' error.
    async fn series(&self, promql: &str, instant: bool) -> Result<usize, String> {
        let data = if instant {
            self.data("/api/v1/query", &[("query", promql)]).await?
        } else {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            let (start, end) = (format!("{:.3}", now - 60.0), format!("{now:.3}"));
            self.data(
                "/api/v1/query_range",
                &[
                    ("query", promql),
                    ("start", &start),
                    ("end", &end),
                    ("step", "1"),
                ],
            )
            .await?
        };
        Ok(data["result"].as_array().map_or(0, Vec::len))
    }
}

/// Waits (bounded by `deadline` from `started`) until Prometheus has discovered its target (the
/// discovery manager hands targets over after up to 5 s), then starts the exporter's `--demo`
/// with a day of [`DEMO_DAY_SECONDS`] on `exporter_port` with a 1 s poll interval, so that its
/// first poll is scraped at once, before the demo's first bill. The
/// exporter runs without any `TLE*`/`TENCENTCLOUD*` variable of the test's environment.
pub(crate) async fn start_demo_once_discovered(
    procs: &mut Processes,
    api: &Api,
    exporter_port: u16,
    started: Instant,
    deadline: Duration,
) {
    loop {
        procs.assert_running();
        assert!(
            started.elapsed() < deadline,
            "Prometheus did not discover its target in time:\n{}",
            procs.log("prometheus")
        );
        if let Ok(data) = api.data("/api/v1/targets", &[]).await {
            if data["activeTargets"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
            {
                break;
            }
        }
        tokio::time::sleep(DISCOVERY_ROUND).await;
    }
    eprintln!(
        "e2e: Prometheus discovered its target after {:?}",
        started.elapsed()
    );
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
            .arg(format!("127.0.0.1:{exporter_port}"))
            .env("TLE__POLL__INTERVAL", "1s"),
    );
}

/// The one scrape job the rules select (`job="..."` in their expressions).
pub(crate) fn rule_job(rules: &Rules) -> String {
    let parsed: Value = serde_json::from_str(&rules.file).expect("the rule file is JSON");
    let exprs: Vec<&str> = parsed["groups"][0]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["expr"].as_str())
        .collect();
    let jobs: BTreeSet<&str> = exprs
        .iter()
        .flat_map(|e| {
            e.match_indices("job=\"")
                .map(move |(i, m)| (e, i + m.len()))
        })
        .map(|(e, start)| {
            let rest = &e[start..];
            &rest[..rest.find('"').expect("closing quote")]
        })
        .collect();
    assert_eq!(jobs.len(), 1, "the rules select one scrape job: {jobs:?}");
    jobs.into_iter().next().unwrap().to_owned()
}

fn prometheus_config(job: &str, rules: &Path, exporter_port: u16) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - '{}'\n\
         scrape_configs:\n  - job_name: '{job}'\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n",
        rules.display()
    )
}

/// What the rounds have seen so far.
#[derive(Default)]
struct Seen {
    target_up: bool,
    /// Queries (dashboard place or rule name) that answered without error at least once after
    /// the target was up, and the number of series of their best answer.
    evaluated: BTreeMap<String, usize>,
    /// Rule name → health and last error of the latest round.
    rule_health: BTreeMap<String, (String, String)>,
    /// Variable → values.
    variables: BTreeMap<String, usize>,
    /// (alertname, package_type, package_id) → best state seen ("firing" beats "pending").
    alerts: BTreeMap<(String, String, String), String>,
    /// Annotations that failed to expand.
    template_errors: BTreeSet<String>,
    /// Alerts active in the latest round.
    active_now: BTreeSet<String>,
}

impl Seen {
    fn required_alerts_missing(&self) -> Vec<String> {
        REQUIRED_ALERTS
            .iter()
            .filter(|(name, which)| {
                !self
                    .alerts
                    .keys()
                    .any(|(n, t, p)| n == name && (t == which || p == which))
            })
            .map(|(name, which)| format!("{name} {which}"))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    missing_prometheus,
    ignore = "needs prometheus: apt-get install prometheus"
)]
#[cfg_attr(missing_jsonnet, ignore = "needs jsonnet: apt-get install jsonnet")]
async fn a_real_prometheus_evaluates_every_dashboard_query_and_rule_and_the_demo_drives_alerts() {
    let prometheus = tool("prometheus");
    let generated = generated_rules();
    let rule_count = generated.count;
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("deploy/grafana/tencent-live-packages.json"))
            .expect("deploy/grafana/tencent-live-packages.json"),
    )
    .expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard);
    let variables = dashboard_variables(&dashboard);
    assert!(queries.len() >= 10, "dashboard queries: {queries:#?}");

    let mut procs = Processes {
        dir: scratch_dir(),
        children: Vec::new(),
    };
    // The generated rules, with the scrape job named as they expect.
    let rules = procs.dir.join("alerts.yml");
    std::fs::write(&rules, &generated.file).unwrap();
    let (exporter_port, prometheus_port) = (free_port(), free_port());
    let config = procs.dir.join("prometheus.yml");
    std::fs::write(
        &config,
        prometheus_config(&rule_job(&generated), &rules, exporter_port),
    )
    .unwrap();

    let started = Instant::now();
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
    let api = Api {
        base: format!("http://127.0.0.1:{prometheus_port}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
    };

    start_demo_once_discovered(&mut procs, &api, exporter_port, started, DEADLINE).await;

    let mut seen = Seen::default();
    let outcome = loop {
        procs.assert_running();
        round(&api, &queries, &variables, &mut seen).await;
        let missing = missing(&seen, &queries, &variables, rule_count);
        if missing.is_empty() {
            break Ok(());
        }
        if started.elapsed() > DEADLINE {
            break Err(missing);
        }
        tokio::time::sleep(ROUND).await;
    };
    if let Err(missing) = outcome {
        panic!(
            "after {:?}, still missing:\n  {}\n\nevaluated (series): {:#?}\nrules: {:#?}\nalerts seen: {:#?}\n\
             --- prometheus log ---\n{}\n--- exporter log ---\n{}",
            started.elapsed(),
            missing.join("\n  "),
            seen.evaluated,
            seen.rule_health,
            seen.alerts,
            procs.log("prometheus"),
            procs.log("exporter"),
        );
    }
    assert!(
        seen.template_errors.is_empty(),
        "alert annotations failed to expand: {:#?}",
        seen.template_errors
    );
    let unhealthy: Vec<_> = seen
        .active_now
        .iter()
        .filter(|a| HEALTHY_NOT_ACTIVE.contains(&a.as_str()))
        .collect();
    assert!(
        unhealthy.is_empty(),
        "health alerts active while the demo is healthy: {unhealthy:?}\nexporter log:\n{}",
        procs.log("exporter")
    );
    eprintln!(
        "prometheus e2e: done in {:?}; {} dashboard queries, {} rules; alerts seen: {:?}",
        started.elapsed(),
        queries.len(),
        rule_count,
        seen.alerts
    );
}

/// One round of questions to Prometheus; panics on any query error.
async fn round(
    api: &Api,
    queries: &[DashboardQuery],
    variables: &[(String, String, String)],
    seen: &mut Seen,
) {
    if !seen.target_up {
        if let Ok(data) = api.data("/api/v1/targets", &[]).await {
            seen.target_up = data["activeTargets"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["health"] == "up");
        }
        if !seen.target_up {
            return;
        }
    }

    // Rules as Prometheus loaded them: their health, and their expressions.
    let groups = api
        .data("/api/v1/rules", &[])
        .await
        .expect("GET /api/v1/rules");
    let mut rule_queries = Vec::new();
    for group in groups["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let name = rule["name"].as_str().unwrap_or("?").to_owned();
            let health = rule["health"].as_str().unwrap_or("?").to_owned();
            let last_error = rule["lastError"].as_str().unwrap_or("").to_owned();
            assert_ne!(health, "err", "rule {name} fails to evaluate: {last_error}");
            rule_queries.push((
                name.clone(),
                rule["query"].as_str().unwrap_or("").to_owned(),
            ));
            seen.rule_health.insert(name, (health, last_error));
        }
    }

    let dashboard = queries
        .iter()
        .map(|q| (q.place.clone(), q.promql.clone(), q.instant));
    let rules = rule_queries
        .into_iter()
        .map(|(name, query)| (format!("rule {name}"), query, true));
    for (place, promql, instant) in dashboard.chain(rules) {
        if seen.evaluated.get(&place).is_some_and(|&n| n > 0) {
            continue;
        }
        let series = api
            .series(&promql, instant)
            .await
            .unwrap_or_else(|e| panic!("{place}: Prometheus refuses\n{promql}\n{e}"));
        let best = seen.evaluated.entry(place).or_default();
        *best = (*best).max(series);
    }

    for (name, metric, label) in variables {
        let values = api
            .data(
                &format!("/api/v1/label/{label}/values"),
                &[("match[]", metric)],
            )
            .await
            .unwrap_or_else(|e| panic!("variable {name}: label_values({metric}, {label}): {e}"));
        seen.variables
            .insert(name.clone(), values.as_array().map_or(0, Vec::len));
    }

    let alerts = api
        .data("/api/v1/alerts", &[])
        .await
        .expect("GET /api/v1/alerts");
    seen.active_now.clear();
    for alert in alerts["alerts"].as_array().into_iter().flatten() {
        let name = alert["labels"]["alertname"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        let package = alert["labels"]["package_id"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let package_type = alert["labels"]["package_type"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let account = alert["labels"]["account"].as_str().unwrap_or("");
        assert!(
            !(package_type == "traffic" && POOL_QUIET.contains(&name.as_str())),
            "the traffic pool hands over to its queued package and must not alert: {alert}"
        );
        assert!(
            !(account == "demo-monthly" && POOL_QUIET.contains(&name.as_str())),
            "frozen packages raise no pool alert: {alert}"
        );
        assert!(
            name != "TencentLivePayAsYouGo"
                || package_type == "top_speed_codec"
                || package_type == "transcode",
            "only the top speed codec pool runs out (and the transcode one when its only \
             package expires on day 5): {alert}"
        );
        let state = alert["state"].as_str().unwrap_or("?").to_owned();
        for (key, text) in alert["annotations"].as_object().into_iter().flatten() {
            let text = text.as_str().unwrap_or("");
            if text.contains("error expanding template") || text.contains("<no value>") {
                seen.template_errors
                    .insert(format!("{name} {package} {key}: {text}"));
            }
        }
        seen.active_now.insert(name.clone());
        let best = seen
            .alerts
            .entry((name, package_type, package))
            .or_default();
        if *best != "firing" {
            *best = state;
        }
    }
}

/// What is not yet shown; empty when the test has seen everything.
fn missing(
    seen: &Seen,
    queries: &[DashboardQuery],
    variables: &[(String, String, String)],
    rule_count: usize,
) -> Vec<String> {
    let mut missing = Vec::new();
    if !seen.target_up {
        missing.push("the scrape target up".to_owned());
        return missing;
    }
    if seen.rule_health.len() != rule_count {
        missing.push(format!(
            "{rule_count} rules loaded (Prometheus has {})",
            seen.rule_health.len()
        ));
    }
    for (name, (health, _)) in &seen.rule_health {
        if health != "ok" {
            missing.push(format!("rule {name} evaluated (health {health})"));
        }
    }
    for q in queries {
        let may_be_empty = DASHBOARD_MAY_BE_EMPTY.iter().any(|m| q.promql.contains(m));
        match seen.evaluated.get(&q.place) {
            None => missing.push(format!("dashboard {} evaluated", q.place)),
            Some(0) if !may_be_empty => {
                missing.push(format!("dashboard {} has data: {}", q.place, q.promql))
            }
            _ => {}
        }
    }
    for name in seen.rule_health.keys() {
        match seen.evaluated.get(&format!("rule {name}")) {
            None => missing.push(format!("rule {name} expression evaluated")),
            Some(0) if !RULES_MAY_BE_EMPTY.contains(&name.as_str()) => {
                missing.push(format!("rule {name} expression has data"))
            }
            _ => {}
        }
    }
    for (name, _, _) in variables {
        if seen.variables.get(name).copied().unwrap_or(0) == 0 {
            missing.push(format!("variable {name} has values"));
        }
    }
    missing.extend(
        seen.required_alerts_missing()
            .into_iter()
            .map(|a| format!("alert {a} pending or firing")),
    );
    missing
}
