//! The shipped Prometheus and Alertmanager files and the exposition, checked by promtool and
//! amtool; the Grafana dashboard in [`dashboard`].

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;
use tencent_live_simulator::Simulator;

use crate::support::{Harness, repo_path, run, tool};

mod dashboard;

#[test]
#[cfg_attr(
    missing_promtool,
    ignore = "needs promtool: apt-get install prometheus"
)]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let promtool = tool("promtool");
    // The unit tests are the long part: promtool evaluates every rule at each evaluation step up
    // to a group's last eval_time (days, hour by hour, for the billing timelines of
    // alerts.test.yml; hours, minute by minute, in alerts.minute.test.yml), some 13 s of CPU.
    // alerts.test.yml's groups, split with each group's text unchanged and every group in
    // exactly one half, and the minute file run in three promtool processes at once.
    let scratch = Scratch::new();
    std::fs::copy(
        repo_path("deploy/prometheus/alerts.yml"),
        scratch.0.join("alerts.yml"),
    )
    .unwrap();
    let mut halves = Vec::new();
    for (file, parts) in [("alerts.test.yml", 2), ("alerts.minute.test.yml", 1)] {
        let shipped =
            std::fs::read_to_string(repo_path(&format!("deploy/prometheus/{file}"))).unwrap();
        for (i, text) in split_rule_tests(&shipped, parts).into_iter().enumerate() {
            let path = scratch.0.join(format!("{file}.{i}.yml"));
            std::fs::write(&path, text).unwrap();
            halves.push(path);
        }
    }
    std::thread::scope(|s| {
        let tests: Vec<_> = halves
            .iter()
            .map(|half| {
                let promtool = &promtool;
                // GOGC=400: the rule evaluations allocate briskly; collecting at 4x the live
                // heap (some 120 MB) instead of 2x saves about a fifth of promtool's CPU.
                s.spawn(move || {
                    run(Command::new(promtool)
                        .args(["test", "rules"])
                        .arg(half)
                        .env("GOGC", "400"))
                })
            })
            .collect();
        // The real-day rule file and the demo's (a 2-minute day), both generated from the mixin.
        for rules in [
            "deploy/prometheus/alerts.yml",
            "deploy/prometheus/demo/alerts.yml",
        ] {
            let (ok, out) = run(Command::new(&promtool)
                .arg("check")
                .arg("rules")
                .arg(repo_path(rules)));
            assert!(ok, "promtool check rules {rules}:\n{out}");
            assert!(!out.to_lowercase().contains("warning"), "{out}");
        }
        let (ok, out) = run(Command::new(&promtool)
            .arg("check")
            .arg("config")
            .arg(repo_path("deploy/prometheus/prometheus.yml")));
        assert!(ok, "promtool check config:\n{out}");
        for (half, test) in halves.iter().zip(tests) {
            let (ok, out) = test.join().unwrap();
            assert!(ok, "promtool test rules ({}):\n{out}", half.display());
        }
    });
}

/// `alerts.test.yml` cut into `n` files of whole test groups, each with the shipped header
/// (`rule_files`, `evaluation_interval`) and every group's text as it is, balanced by each
/// group's last `eval_time` (promtool's work grows with it). Panics unless every group lands
/// in exactly one file.
fn split_rule_tests(shipped: &str, n: usize) -> Vec<String> {
    let (header, groups) = shipped
        .split_once("\ntests:\n")
        .expect("alerts.test.yml has a top-level `tests:`");
    let mut starts: Vec<usize> = groups
        .match_indices("\n  - name: ")
        .map(|(i, _)| i + 1)
        .collect();
    if groups.starts_with("  - name: ") {
        starts.insert(0, 0);
    }
    assert!(starts.len() >= n, "{} test groups", starts.len());
    // Comment lines before the first group stay with the header.
    let header = format!("{header}\ntests:\n{}", &groups[..starts[0]]);
    let mut bounds = starts.clone();
    bounds.push(groups.len());
    let mut by_cost: Vec<(u64, &str)> = bounds
        .windows(2)
        .map(|w| {
            let group = &groups[w[0]..w[1]];
            let last = group
                .lines()
                .filter_map(|l| l.trim().strip_prefix("eval_time: "))
                .map(minutes)
                .max()
                .unwrap_or(0);
            (last, group)
        })
        .collect();
    by_cost.sort_by_key(|g| std::cmp::Reverse(g.0));
    let mut files = vec![(0, header.clone()); n];
    for (cost, group) in &by_cost {
        let lightest = files.iter_mut().min_by_key(|(c, _)| *c).unwrap();
        lightest.0 += cost.max(&1);
        lightest.1.push_str(group);
        if !group.ends_with('\n') {
            lightest.1.push('\n');
        }
    }
    let names = |text: &str| text.matches("\n  - name: ").count();
    assert_eq!(
        files.iter().map(|(_, f)| names(f)).sum::<usize>(),
        starts.len(),
        "every test group is run once"
    );
    files.into_iter().map(|(_, f)| f).collect()
}

/// Minutes of a promtool duration such as `9d23h`, `24h58m`, `30m` or `90s`.
fn minutes(duration: &str) -> u64 {
    let mut total = 0;
    let mut number = 0;
    for c in duration.trim().chars() {
        match c {
            '0'..='9' => number = number * 10 + u64::from(c as u8 - b'0'),
            'd' => (total, number) = (total + number * 1440, 0),
            'h' => (total, number) = (total + number * 60, 0),
            'm' => (total, number) = (total + number, 0),
            _ => number = 0,
        }
    }
    total
}

/// A scratch directory, removed at the end.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("tle-rule-tests-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
#[cfg_attr(
    missing_amtool,
    ignore = "needs amtool: apt-get install prometheus-alertmanager"
)]
fn alertmanager_config_passes_amtool_and_routes_by_severity() {
    let amtool = tool("amtool");
    let config = repo_path("deploy/alertmanager/alertmanager.yml");
    let (ok, out) = run(Command::new(&amtool).arg("check-config").arg(&config));
    assert!(ok, "amtool check-config:\n{out}");
    assert!(out.contains("2 inhibit rules"), "{out}");
    for (labels, receiver) in [
        (
            &["severity=critical", "alertname=TencentLiveRunwayCritical"][..],
            "page",
        ),
        (
            &["severity=warning", "alertname=TencentLiveRunwayLow"][..],
            "ticket",
        ),
        // One replica of two down: a ticket, by severity alone (no route or inhibition names it).
        (
            &[
                "severity=warning",
                "alertname=TencentLiveExporterReplicaDown",
            ][..],
            "ticket",
        ),
        (&["alertname=NoSeverity"][..], "ticket"),
    ] {
        let (ok, out) = run(Command::new(&amtool)
            .args(["config", "routes", "test", "--config.file"])
            .arg(&config)
            .args(labels));
        assert!(ok, "amtool config routes test {labels:?}:\n{out}");
        let got = out
            .lines()
            .filter(|l| !l.starts_with("Warning:"))
            .collect::<Vec<_>>();
        assert_eq!(got, [receiver], "{labels:?} routes to {receiver}: {out}");
    }
}

#[tokio::test]
#[cfg_attr(
    missing_promtool,
    ignore = "needs promtool: apt-get install prometheus"
)]
async fn the_exposition_passes_promtool_check_metrics_with_no_finding() {
    let promtool = tool("promtool");
    // Every kind of series: packages of all Types, null renew fields, an unknown status, a failed pair.
    let sim = Simulator::new();
    sim.add_account("AKIDlint", "lint-key");
    // A usable traffic package beside the example's, so usable_ahead_bytes has samples too.
    let mut traffic = Simulator::example_response_packages();
    traffic
        .push(json!({"Id": "f1", "Type": 0, "Status": 0, "Total": 1000, "Used": 0, "Left": 1000}));
    sim.set_packages("AKIDlint", 0, traffic);
    sim.set_packages(
        "AKIDlint",
        1,
        vec![
            json!({"Id": "t1", "Type": 1, "Status": 9, "Total": 100, "Used": 1, "Left": 99, "BuyTime": "2026-01-01 00:00:00", "ExpireTime": "2027-01-01 00:00:00", "WillRenew": null, "RenewalResult": null}),
            json!({"Id": "t2", "Type": 2, "Status": 1, "Total": 100, "Used": 1, "Left": 99}),
        ],
    );
    sim.set_packages(
        "AKIDlint",
        2,
        vec![json!({"Id": "c1", "Type": 3, "Status": 0, "Total": 10, "Used": 0, "Left": 10})],
    );
    let h = Harness::start(
        sim,
        &[
            ("lint", "AKIDlint", "lint-key"),
            ("broken", "AKIDunknown", "x"),
        ],
        "",
    )
    .await;
    h.first_polls().await;
    let text = h.scrape_text().await;
    assert!(
        text.contains("tencent_live_package_quota_seconds"),
        "{text}"
    );
    for family in [
        "tencent_live_package_usable_ahead_bytes{",
        "tencent_live_package_usable_ahead_seconds{",
    ] {
        assert!(text.contains(family), "{family}\n{text}");
    }
    assert!(
        text.contains(r#"tencent_live_up{account="broken",package_type="traffic"} 0"#),
        "{text}"
    );
    // The process collector's families go through the same writer, so promtool sees them too.
    #[cfg(target_os = "linux")]
    assert!(
        text.contains("\n# TYPE process_cpu_seconds_total counter\n"),
        "{text}"
    );
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{findings}"
    );
    assert_eq!(findings.trim(), "", "promtool check metrics has findings");
}

/// The Kubernetes configuration the kustomize base turns into its ConfigMap.
fn kubernetes_config() -> String {
    std::fs::read_to_string(repo_path("deploy/kubernetes/config.toml")).unwrap()
}

#[test]
fn the_kubernetes_config_toml_is_a_valid_configuration() {
    let path = repo_path("deploy/kubernetes/config.toml");
    let env = std::collections::BTreeMap::from([
        ("TENCENTCLOUD_SECRET_ID".to_owned(), "AKIDk8s".to_owned()),
        ("TENCENTCLOUD_SECRET_KEY".to_owned(), "k".to_owned()),
    ]);
    let config = tencent_live_exporter::config::load(
        Some(&path),
        &tencent_live_exporter::config::Overrides::default(),
        env,
    )
    .expect("deploy/kubernetes/config.toml validates");
    assert_eq!(config.accounts.len(), 1);
    assert!(kubernetes_config().contains("[[accounts]]"));
}

#[test]
#[cfg_attr(
    missing_kubectl,
    ignore = "needs kubectl: apt-get install kubernetes-client"
)]
fn the_kustomize_base_renders_with_the_generated_config_map_mounted() {
    let kubectl = tool("kubectl");
    let out = Command::new(&kubectl)
        .arg("kustomize")
        .arg(repo_path("deploy/kubernetes"))
        .output()
        .unwrap();
    let rendered = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<serde_json::Value> = rendered
        .split("\n---\n")
        .map(|d| serde_norway::from_str(d).expect("rendered YAML parses"))
        .collect();
    let mut kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "PrometheusRule",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
    );
    let of = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap();
    let config_map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["data"].get("config.toml").is_some())
        .expect("the config ConfigMap");
    assert_eq!(
        config_map["data"]["config.toml"].as_str(),
        Some(kubernetes_config().as_str())
    );
    let name = config_map["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("tencent-live-exporter-"), "{name}");
    let pod = &of("Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["configMap"]["name"].as_str(), Some(name));
    // The pod runs as its own ServiceAccount (for a TKE pod identity annotation).
    let account = of("ServiceAccount")["metadata"]["name"].as_str().unwrap();
    assert_eq!(pod["serviceAccountName"].as_str(), Some(account));
    // The dashboard, byte for byte, in a ConfigMap Grafana's sidecar picks up.
    let dashboard = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["data"].get("tencent-live-packages.json").is_some())
        .expect("the dashboard ConfigMap");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        dashboard["data"]["tencent-live-packages.json"].as_str(),
        Some(
            std::fs::read_to_string(repo_path("deploy/grafana/tencent-live-packages.json"))
                .unwrap()
                .as_str()
        ),
        "deploy/kubernetes/dashboards/ is a stale copy: cp deploy/grafana/*.json deploy/kubernetes/dashboards/"
    );
    // The rules are the generated file, unchanged.
    let rule = of("PrometheusRule");
    assert!(
        rule["spec"]["groups"][0]["rules"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
}

/// Whether `.dockerignore`-style `rules` send `path` (a file or folder relative to the context)
/// in the build context: the last rule that matches the path or one of its parent folders
/// decides, `!` re-includes. Rules here are `*` or a plain path (a trailing `/` is dropped).
fn sent_in_build_context(rules: &str, path: &str) -> bool {
    let path = path.trim_start_matches("./").trim_end_matches('/');
    let mut sent = true;
    for rule in rules
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (include, pattern) = match rule.strip_prefix('!') {
            Some(p) => (true, p.trim_end_matches('/')),
            None => (false, rule.trim_end_matches('/')),
        };
        let matches = pattern == "*" || path == pattern || path.starts_with(&format!("{pattern}/"));
        if matches {
            sent = include;
        }
    }
    sent
}

#[test]
fn the_docker_build_context_holds_every_path_the_dockerfile_copies_and_every_crate() {
    let dockerfile = std::fs::read_to_string(repo_path("deploy/docker/Dockerfile")).unwrap();
    let ignore =
        std::fs::read_to_string(repo_path("deploy/docker/Dockerfile.dockerignore")).unwrap();
    // The sources of the builder stage's COPYs (the last word is the destination).
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|args| !args.starts_with("--from"))
        .flat_map(|args| {
            let words: Vec<&str> = args.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    assert!(copied.contains(&"src"), "{copied:?}");
    for path in &copied {
        assert!(
            sent_in_build_context(&ignore, path),
            "the Dockerfile copies {path}, which Dockerfile.dockerignore leaves out of the build context"
        );
    }
    // Cargo needs every workspace member's manifest to build any one of them.
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo_path("Cargo.toml")).unwrap()).unwrap();
    let members = manifest["workspace"]["members"].as_array().unwrap();
    for member in members
        .iter()
        .filter_map(|m| m.as_str())
        .filter(|m| *m != ".")
    {
        assert!(
            copied.contains(&member),
            "the Dockerfile does not copy the workspace member {member}"
        );
    }
    // The rules themselves, so that a broken matcher cannot pass the test.
    assert!(!sent_in_build_context(&ignore, "target"));
    assert!(!sent_in_build_context(&ignore, "README.md"));
    assert!(sent_in_build_context(&ignore, "src/main.rs"));
}

/// The README's recording-rule table names exactly the records of the shipped rule file (a row
/// `…_{bytes,seconds}:…` names both), so a record added to, renamed in or dropped from the
/// mixin cannot leave the table behind.
#[test]
fn the_readme_lists_exactly_the_recording_rules_of_alerts_yml() {
    let rules = std::fs::read_to_string(repo_path("deploy/prometheus/alerts.yml")).unwrap();
    let shipped: std::collections::BTreeSet<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .map(|name| name.trim().to_owned())
        .collect();
    assert!(shipped.len() >= 20, "records found: {shipped:?}");

    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let table = readme
        .split("### Recording rules (the pool view)")
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .expect("README section ### Recording rules (the pool view)");
    let mut listed = std::collections::BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let name = row[3..].split('`').next().unwrap();
        match name.split_once("{bytes,seconds}") {
            Some((head, tail)) => {
                listed.insert(format!("{head}bytes{tail}"));
                listed.insert(format!("{head}seconds{tail}"));
            }
            None => {
                listed.insert(name.to_owned());
            }
        }
    }
    let unlisted: Vec<_> = shipped.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&shipped).collect();
    assert!(
        unlisted.is_empty() && stale.is_empty(),
        "README's recording-rule table: records it lacks {unlisted:?}; rows naming no record {stale:?}"
    );
}
