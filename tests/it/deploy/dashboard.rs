//! The Grafana dashboard, `deploy/grafana/tencent-live-packages.json`, generated from the
//! mixin (`deploy/mixin/dashboards.json.jsonnet`): every query names only series that exist
//! (the README's Metrics table, the recording rules) and carries the job filter (and the
//! cluster filter when the mixin sets `clusterLabel`), every query parses as PromQL, no amount
//! is shown in IEC units, and every alert's runbook is linked.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::support::{repo_path, run, tool};

/// Grafana units of bytes in IEC (1024-based) multiples; Tencent counts 1 TB = 1000 GB.
const IEC_UNITS: &[&str] = &[
    "bytes", "kbytes", "mbytes", "gbytes", "tbytes", "pbytes", "binBps", "binbps",
];

/// The mixin's default runbook URL pattern (`runbookURLPattern`), %s = alert name in lower case.
const RUNBOOK_PATTERN: &str =
    "https://github.com/tencent-live-exporter/tencent-live-exporter#runbook-%s";

fn committed() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo_path("deploy/grafana/tencent-live-packages.json")).unwrap(),
    )
    .expect("the dashboard is JSON")
}

/// `jsonnet deploy/mixin/dashboards.json.jsonnet`, with `config` (jsonnet) over `_config`.
fn generated(config: &str) -> Value {
    let (ok, out) = run(Command::new(tool("jsonnet"))
        .args(["--tla-code", &format!("config={config}")])
        .arg(repo_path("deploy/mixin/dashboards.json.jsonnet")));
    assert!(ok, "jsonnet:\n{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("jsonnet output is not JSON: {e}\n{out}"))
}

/// Metric names of the README's Metrics table (`a_b_c` / `_d_c` rows expand the shorthand
/// against the first name; a histogram also has `_bucket`, `_sum` and `_count` series), the
/// recording rules of `alerts.yml`.
fn known_series() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let table = readme.split("\n## Metrics").nth(1).expect("## Metrics");
    let table = table.split("\n## ").next().unwrap();
    let mut known = BTreeSet::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').collect();
        let names: Vec<&str> = cells[1].split('`').skip(1).step_by(2).collect();
        let first = names[0];
        for name in names {
            let name = match name.strip_prefix('_') {
                // `_used_bytes` after `tencent_live_package_quota_bytes`: replace as many
                // trailing words of the first name as the shorthand has.
                Some(_) => {
                    let words: Vec<&str> = first.split('_').collect();
                    let keep = words.len() - name.matches('_').count();
                    format!("{}{name}", words[..keep].join("_"))
                }
                None => name.to_owned(),
            };
            if cells[3].contains("histogram") {
                for suffix in ["_bucket", "_sum", "_count"] {
                    known.insert(format!("{name}{suffix}"));
                }
            }
            known.insert(name);
        }
    }
    assert!(known.len() >= 15, "README Metrics table: {known:?}");
    known.extend(rule_names("record"));
    known
}

/// The `record` (or `alert`) names of the rules in `deploy/prometheus/alerts.yml`.
fn rule_names(kind: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo_path("deploy/prometheus/alerts.yml")).unwrap();
    let rules: serde_json::Value = serde_norway::from_str(&text).expect("alerts.yml parses");
    let names: Vec<String> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r[kind].as_str().map(str::to_owned))
        .collect();
    assert!(!names.is_empty(), "no {kind} rule in alerts.yml");
    names
}

/// One vector selector of a PromQL expression: the metric name and its matchers
/// (label, operator, value).
#[derive(Debug)]
struct Selector {
    metric: String,
    matchers: Vec<(String, String, String)>,
}

impl Selector {
    fn has(&self, label: &str, op: &str, value: &str) -> bool {
        self.matchers
            .iter()
            .any(|(l, o, v)| l == label && o == op && v == value)
    }
}

/// The vector selectors of `expr` (which the dashboard writes with a name before every `{`):
/// identifiers that are not function calls, keywords, grouping label lists, numbers or
/// durations. Panics on a matcher it cannot read.
fn selectors(expr: &str) -> Vec<Selector> {
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    while i < b.len() {
        let c = b[i];
        if c == b'[' {
            i += expr[i..].find(']').expect("closing ]") + 1;
        } else if c.is_ascii_digit() || c == b'.' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = &expr[start..i];
            let next = skip_ws(i);
            if GROUPING.contains(&word) && b.get(next) == Some(&b'(') {
                i = next + expr[next..].find(')').expect("closing )") + 1;
            } else if KEYWORDS.contains(&word)
                || b.get(next) == Some(&b'(')
                // An aggregation written `sum by (...) (...)`.
                || GROUPING[..2].iter().any(|g| {
                    expr[next..].starts_with(g)
                        && expr[next + g.len()..].trim_start().starts_with('(')
                })
            {
                continue;
            } else {
                let mut matchers = Vec::new();
                if b.get(next) == Some(&b'{') {
                    let end = next + expr[next..].find('}').expect("closing }");
                    matchers = matchers_of(&expr[next + 1..end]);
                    i = end + 1;
                }
                out.push(Selector {
                    metric: word.to_owned(),
                    matchers,
                });
            }
        } else {
            assert!(c != b'{', "a selector without a metric name in {expr}");
            i += 1;
        }
    }
    out
}

/// `label op "value", ...` (values without `,` `"` or `}`, as the dashboard writes them).
fn matchers_of(body: &str) -> Vec<(String, String, String)> {
    body.split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| {
            let op_at = m.find(['=', '!']).unwrap_or_else(|| panic!("matcher {m}"));
            let label = m[..op_at].trim();
            let rest = &m[op_at..];
            let op = ["=~", "!~", "!=", "="]
                .into_iter()
                .find(|op| rest.starts_with(op))
                .unwrap_or_else(|| panic!("matcher {m}"));
            let value = rest[op.len()..].trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or_else(|| panic!("matcher value {m}"));
            (label.to_owned(), op.to_owned(), value.to_owned())
        })
        .collect()
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// (place, PromQL) of every panel query.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    panels(dashboard)
        .into_iter()
        .flat_map(|p| {
            p["targets"].as_array().into_iter().flatten().map(|t| {
                (
                    format!(
                        "{}/{}",
                        p["title"].as_str().unwrap_or("?"),
                        t["refId"].as_str().unwrap_or("?")
                    ),
                    t["expr"].as_str().unwrap_or("").to_owned(),
                )
            })
        })
        .collect()
}

/// Every unit the dashboard sets: field defaults (`unit`) and overrides (`{"id": "unit"}`).
fn units(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(u)) = map.get("unit") {
                out.push(u.clone());
            }
            if map.get("id") == Some(&Value::from("unit")) {
                out.push(map["value"].as_str().unwrap_or("").to_owned());
            }
            map.values().for_each(|v| units(v, out));
        }
        Value::Array(list) => list.iter().for_each(|v| units(v, out)),
        _ => {}
    }
}

/// What is wrong with `dashboard`, generated with `cluster` as `clusterLabel`.
fn problems(dashboard: &Value, cluster: Option<&str>) -> Vec<String> {
    let known = known_series();
    let mut errors = Vec::new();
    let job = ("job", "=~", "$job");

    let mut ids = BTreeSet::new();
    for p in panels(dashboard) {
        let title = p["title"].as_str().unwrap_or("?");
        if !ids.insert(p["id"].as_u64()) {
            errors.push(format!("duplicate panel id {}", p["id"]));
        }
        if p["type"] == "row" {
            continue;
        }
        if p["targets"].as_array().is_none_or(Vec::is_empty) {
            errors.push(format!("panel {title} has no queries"));
        }
        if p["datasource"]["uid"] != "${datasource}" {
            errors.push(format!("panel {title} ignores the datasource variable"));
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            if t["datasource"]["uid"] != "${datasource}" {
                errors.push(format!(
                    "query {title}/{} ignores the datasource variable",
                    t["refId"]
                ));
            }
        }
    }

    let variables: Vec<&Value> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let variable = |name: &str| variables.iter().find(|v| v["name"] == name).copied();
    match variable("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        _ => errors.push("no datasource variable of type datasource (prometheus)".into()),
    }
    let mut exprs = queries(dashboard);
    let mut wanted = vec!["job", "account", "package_type"];
    wanted.extend(cluster.map(|_| "cluster"));
    for name in wanted {
        let Some(v) = variable(name) else {
            errors.push(format!("no {name} variable"));
            continue;
        };
        let query = v["query"]["query"].as_str().unwrap_or("");
        match query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
        {
            Some((metric, _))
                if v["type"] == "query" && v["multi"] == true && v["includeAll"] == true =>
            {
                exprs.push((format!("variable {name}"), metric.trim().to_owned()));
            }
            _ => errors.push(format!(
                "variable {name} is not a multi-value label_values query with All: {v}"
            )),
        }
    }
    if cluster.is_none() && variable("cluster").is_some() {
        errors.push("a cluster variable without clusterLabel".into());
    }
    if variable("status").is_none() {
        errors.push("no status variable (the Packages table's)".into());
    }

    for (place, expr) in &exprs {
        let found = selectors(expr);
        if found.is_empty() {
            errors.push(format!("{place}: no series in {expr:?}"));
        }
        for s in &found {
            if !known.contains(&s.metric) {
                errors.push(format!(
                    "{place}: {} is neither in the README's Metrics table nor a recording rule",
                    s.metric
                ));
            }
            if let Some(label) = cluster {
                if !s.has(label, "=~", "$cluster") && place != "variable cluster" {
                    errors.push(format!(
                        "{place}: {} has no {label}=~\"$cluster\"",
                        s.metric
                    ));
                }
            }
            // The exporter's series by their job; recording rules (named level:metric:op)
            // aggregate the job away and are joined with the polled accounts instead.
            let job_selected = s.has(job.0, job.1, job.2)
                || (place.starts_with("variable") && s.matchers.iter().any(|(l, ..)| l == "job"));
            if !s.metric.contains(':') && !job_selected && place != "variable job" {
                errors.push(format!("{place}: {} has no job=~\"$job\"", s.metric));
            }
        }
        if !place.starts_with("variable") {
            if !found.iter().any(|s| s.has(job.0, job.1, job.2)) {
                errors.push(format!("{place}: not filtered by the job variable"));
            }
            // The build info has no account label.
            if !expr.contains("account=~\"$account\"") && !expr.contains("build_info") {
                errors.push(format!("{place}: ignores the account variable"));
            }
        }
    }

    let mut all_units = Vec::new();
    units(dashboard, &mut all_units);
    for u in all_units.iter().filter(|u| IEC_UNITS.contains(&u.as_str())) {
        errors.push(format!(
            "IEC unit {u}: Tencent counts in decimal units (decbytes)"
        ));
    }

    let alerts: BTreeSet<String> = rule_names("alert").into_iter().collect();
    let mut linked = BTreeSet::new();
    for p in panels(dashboard) {
        for link in p["links"].as_array().into_iter().flatten() {
            let title = link["title"].as_str().unwrap_or("");
            let Some(alert) = title.strip_prefix("Runbook: ") else {
                continue;
            };
            let want = RUNBOOK_PATTERN.replace("%s", &alert.to_lowercase());
            if link["url"] != want.as_str() {
                errors.push(format!(
                    "runbook link of {alert}: {} is not {want}",
                    link["url"]
                ));
            }
            if !alerts.contains(alert) {
                errors.push(format!("runbook link to {alert}, which is no alert"));
            }
            linked.insert(alert.to_owned());
        }
    }
    for alert in alerts.difference(&linked) {
        errors.push(format!("no panel links the runbook of {alert}"));
    }

    if dashboard["uid"] != "tencent-live-packages" || !dashboard["id"].is_null() {
        errors.push("uid must be tencent-live-packages and id null (importable)".into());
    }
    errors
}

#[test]
fn the_dashboard_queries_name_known_series_carry_the_job_filter_and_use_decimal_units() {
    let dashboard = committed();
    let queries = queries(&dashboard);
    assert!(queries.len() >= 30, "{queries:#?}");
    let errors = problems(&dashboard, None);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn the_dashboard_check_finds_a_missing_job_filter_an_unknown_series_iec_units_and_a_dead_link() {
    let mut dashboard = committed();
    let target = &mut dashboard["panels"][1]["targets"][0]["expr"];
    let expr = target
        .as_str()
        .unwrap()
        .replace("job=~\"$job\"", "job=~\".+\"");
    *target = Value::from(expr.replace(":rate7d", ":rate6h"));
    dashboard["panels"][2]["fieldConfig"]["defaults"]["unit"] = Value::from("bytes");
    dashboard["panels"][1]["links"] = Value::Array(Vec::new());
    let errors = problems(&dashboard, None).join("\n");
    for want in [
        "not filtered by the job variable",
        "runway_seconds:rate6h is neither",
        "IEC unit bytes",
        "no panel links the runbook of TencentLiveRunwayLow",
    ] {
        assert!(errors.contains(want), "{want:?} not found in:\n{errors}");
    }
}

#[test]
#[cfg_attr(missing_jsonnet, ignore = "needs jsonnet: apt-get install jsonnet")]
fn the_dashboard_is_the_mixins_output_and_a_cluster_label_filters_every_query() {
    assert_eq!(
        generated("{}"),
        committed(),
        "deploy/grafana/tencent-live-packages.json is not the output of \
         jsonnet deploy/mixin/dashboards.json.jsonnet"
    );
    let clustered = generated("{ clusterLabel: 'k8s_cluster', daySeconds: 120 }");
    let errors = problems(&clustered, Some("k8s_cluster"));
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // A compressed day (the demo's) makes the daily bars that long.
    let bars: Vec<&Value> = panels(&clustered)
        .into_iter()
        .filter(|p| p["fieldConfig"]["defaults"]["custom"]["drawStyle"] == "bars")
        .collect();
    assert_eq!(bars.len(), 2);
    assert!(bars.iter().all(|p| p["interval"] == "2m"), "{bars:#?}");
    assert!(
        panels(&committed())
            .iter()
            .filter(|p| p["fieldConfig"]["defaults"]["custom"]["drawStyle"] == "bars")
            .all(|p| p["interval"] == "1d")
    );
}

#[test]
#[cfg_attr(
    missing_promtool,
    ignore = "needs promtool: apt-get install prometheus"
)]
fn every_dashboard_query_parses_as_promql() {
    // promtool checks a rule file's expressions: one recording rule per query, with Grafana's
    // variables as a user who picks "All" everywhere sends them.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let queries = queries(&committed());
    for (i, (_, expr)) in queries.iter().enumerate() {
        let expr = [
            ("$__rate_interval", "1m"),
            ("$__interval", "1d"),
            ("$job", ".*"),
            ("$cluster", ".*"),
            ("$account", ".*"),
            ("$package_type", ".*"),
            ("$status", ".*"),
        ]
        .iter()
        .fold(expr.clone(), |e, (from, to)| e.replace(from, to));
        assert!(!expr.contains('$'), "unhandled variable in {expr}");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: '{}'\n",
            expr.replace('\'', "''")
        ));
    }
    let path = std::env::temp_dir().join(format!("tle-dashboard-{}.rules.yml", std::process::id()));
    std::fs::write(&path, rules).unwrap();
    let (ok, out) = run(Command::new(tool("promtool"))
        .args(["check", "rules"])
        .arg(&path));
    let _ = std::fs::remove_file(&path);
    assert!(ok, "promtool check rules (the dashboard's queries):\n{out}");
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{out}"
    );
}
