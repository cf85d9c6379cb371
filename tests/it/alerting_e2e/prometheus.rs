//! The Prometheus half of the stack's checks: the dashboard's queries and variables, the
//! mixin's rules generated for the demo day, and what one round asks Prometheus' HTTP API (see
//! the parent module for what is asserted).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::DEMO_DAY_SECONDS;
use crate::support::{repo_path, tool};

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

    /// POST `path`: the HTTP status and body.
    pub(crate) async fn post(&self, path: &str) -> Result<(u16, String), String> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.map_err(|e| e.to_string())?))
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

/// The scrape job of the mixin's configuration (`exporterSelector`, `job="..."`), read without
/// generating the rules (a twentieth of the time), so that Prometheus can start with its
/// scrape job while `jsonnet` generates them.
pub(crate) fn configured_job() -> String {
    let out = Command::new(tool("jsonnet"))
        .arg("-J")
        .arg(repo_path("deploy/mixin"))
        .arg("-S")
        .arg("-e")
        .arg("(import 'config.libsonnet')._config.exporterSelector")
        .output()
        .expect("jsonnet runs");
    assert!(
        out.status.success(),
        "jsonnet (deploy/mixin's exporterSelector): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let selector = String::from_utf8(out.stdout).expect("the selector is UTF-8");
    selector
        .trim()
        .strip_prefix("job=\"")
        .and_then(|s| s.strip_suffix('"'))
        .filter(|job| !job.contains('"'))
        .unwrap_or_else(|| panic!("exporterSelector is not job=\"...\": {selector}"))
        .to_owned()
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

/// The checks against Prometheus, and what the rounds have seen so far.
#[derive(Default)]
pub(crate) struct Checks {
    queries: Vec<DashboardQuery>,
    /// The dashboard's query variables: (variable, metric, label).
    variables: Vec<(String, String, String)>,
    rule_count: usize,
    /// The rule groups' last evaluation times as of the latest full round: nothing the test
    /// asks about changes between two evaluations (they follow the 1 s scrapes).
    last_evaluation: String,
    pub(crate) target_up: bool,
    /// Queries (dashboard place or rule name) that answered without error at least once after
    /// the target was up, and the number of series of their best answer.
    evaluated: BTreeMap<String, usize>,
    /// Rule name → health and last error of the latest round.
    rule_health: BTreeMap<String, (String, String)>,
    /// Variable → values.
    variables_seen: BTreeMap<String, usize>,
    /// (alertname, package_type, package_id) → best state seen ("firing" beats "pending").
    pub(crate) alerts: BTreeMap<(String, String, String), String>,
    /// Annotations that failed to expand.
    template_errors: BTreeSet<String>,
    /// Alerts active in the latest round.
    active_now: BTreeSet<String>,
}

impl Checks {
    /// The checks of the shipped dashboard and of `rule_count` generated rules.
    pub(crate) fn new(rule_count: usize) -> Checks {
        let dashboard: Value = serde_json::from_str(
            &std::fs::read_to_string(repo_path("deploy/grafana/tencent-live-packages.json"))
                .expect("deploy/grafana/tencent-live-packages.json"),
        )
        .expect("the dashboard is JSON");
        let queries = dashboard_queries(&dashboard);
        assert!(queries.len() >= 10, "dashboard queries: {queries:#?}");
        Checks {
            variables: dashboard_variables(&dashboard),
            queries,
            rule_count,
            ..Checks::default()
        }
    }

    /// How many dashboard queries are checked.
    pub(crate) fn query_count(&self) -> usize {
        self.queries.len()
    }

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

    /// One round of questions to Prometheus, asked in full only when its rules have been
    /// evaluated again since the last one; panics on any query error and on any alert the
    /// demo must not raise.
    pub(crate) async fn round(&mut self, api: &Api) {
        if !self.target_up {
            if let Ok(data) = api.data("/api/v1/targets", &[]).await {
                self.target_up = data["activeTargets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| t["health"] == "up");
            }
            if !self.target_up {
                return;
            }
        }

        // Rules as Prometheus loaded them: their health, and their expressions.
        let groups = api
            .data("/api/v1/rules", &[])
            .await
            .expect("GET /api/v1/rules");
        let evaluated_at: String = groups["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| g["lastEvaluation"].as_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(" ");
        if evaluated_at == self.last_evaluation {
            return;
        }
        self.last_evaluation = evaluated_at;
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
                self.rule_health.insert(name, (health, last_error));
            }
        }

        let dashboard = self
            .queries
            .iter()
            .map(|q| (q.place.clone(), q.promql.clone(), q.instant));
        let rules = rule_queries
            .into_iter()
            .map(|(name, query)| (format!("rule {name}"), query, true));
        for (place, promql, instant) in dashboard.chain(rules).collect::<Vec<_>>() {
            if self.evaluated.get(&place).is_some_and(|&n| n > 0) {
                continue;
            }
            let series = api
                .series(&promql, instant)
                .await
                .unwrap_or_else(|e| panic!("{place}: Prometheus refuses\n{promql}\n{e}"));
            let best = self.evaluated.entry(place).or_default();
            *best = (*best).max(series);
        }

        for (name, metric, label) in &self.variables {
            let values = api
                .data(
                    &format!("/api/v1/label/{label}/values"),
                    &[("match[]", metric)],
                )
                .await
                .unwrap_or_else(|e| {
                    panic!("variable {name}: label_values({metric}, {label}): {e}")
                });
            self.variables_seen
                .insert(name.clone(), values.as_array().map_or(0, Vec::len));
        }

        let alerts = api
            .data("/api/v1/alerts", &[])
            .await
            .expect("GET /api/v1/alerts");
        self.active_now.clear();
        for alert in alerts["alerts"].as_array().into_iter().flatten() {
            self.alert(alert);
        }
    }

    /// Records one active alert of Prometheus; panics if the demo must not raise it.
    fn alert(&mut self, alert: &Value) {
        let label = |name: &str| alert["labels"][name].as_str().unwrap_or("").to_owned();
        let (name, package, package_type) = (
            label("alertname"),
            label("package_id"),
            label("package_type"),
        );
        let account = label("account");
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
                self.template_errors
                    .insert(format!("{name} {package} {key}: {text}"));
            }
        }
        self.active_now.insert(name.clone());
        let best = self
            .alerts
            .entry((name, package_type, package))
            .or_default();
        if *best != "firing" {
            *best = state;
        }
    }

    /// What is not yet shown; empty when the test has seen everything.
    pub(crate) fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if !self.target_up {
            missing.push("the scrape target up".to_owned());
            return missing;
        }
        let rule_count = self.rule_count;
        if self.rule_health.len() != rule_count {
            missing.push(format!(
                "{rule_count} rules loaded (Prometheus has {})",
                self.rule_health.len()
            ));
        }
        for (name, (health, _)) in &self.rule_health {
            if health != "ok" {
                missing.push(format!("rule {name} evaluated (health {health})"));
            }
        }
        for q in &self.queries {
            let may_be_empty = DASHBOARD_MAY_BE_EMPTY.iter().any(|m| q.promql.contains(m));
            match self.evaluated.get(&q.place) {
                None => missing.push(format!("dashboard {} evaluated", q.place)),
                Some(0) if !may_be_empty => {
                    missing.push(format!("dashboard {} has data: {}", q.place, q.promql))
                }
                _ => {}
            }
        }
        for name in self.rule_health.keys() {
            match self.evaluated.get(&format!("rule {name}")) {
                None => missing.push(format!("rule {name} expression evaluated")),
                Some(0) if !RULES_MAY_BE_EMPTY.contains(&name.as_str()) => {
                    missing.push(format!("rule {name} expression has data"))
                }
                _ => {}
            }
        }
        for (name, _, _) in &self.variables {
            if self.variables_seen.get(name).copied().unwrap_or(0) == 0 {
                missing.push(format!("variable {name} has values"));
            }
        }
        missing.extend(
            self.required_alerts_missing()
                .into_iter()
                .map(|a| format!("alert {a} pending or firing")),
        );
        missing
    }

    /// What the rounds have seen, for a failure's message.
    pub(crate) fn report(&self) -> String {
        format!(
            "evaluated (series): {:#?}\nrules: {:#?}\nalerts seen: {:#?}",
            self.evaluated, self.rule_health, self.alerts
        )
    }

    /// Panics if an annotation failed to expand, or if an exporter-health alert is active in
    /// the latest round.
    pub(crate) fn assert_expanded_and_healthy(&self, exporter_log: &str) {
        assert!(
            self.template_errors.is_empty(),
            "alert annotations failed to expand: {:#?}",
            self.template_errors
        );
        let unhealthy: Vec<_> = self
            .active_now
            .iter()
            .filter(|a| HEALTHY_NOT_ACTIVE.contains(&a.as_str()))
            .collect();
        assert!(
            unhealthy.is_empty(),
            "health alerts active while the demo is healthy: {unhealthy:?}\nexporter log:\n{exporter_log}"
        );
    }
}
