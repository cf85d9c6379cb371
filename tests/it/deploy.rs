//! The shipped Prometheus and Alertmanager files and the exposition, checked by promtool and
//! amtool.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;
use tencent_live_exporter::simulator::Simulator;

use crate::support::{Harness, repo_path, run, tool};

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let (ok, out) = run(Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .arg(repo_path("deploy/prometheus/alerts.yml")));
    assert!(ok, "promtool check rules:\n{out}");
    assert!(!out.to_lowercase().contains("warning"), "{out}");
    let (ok, out) = run(Command::new(&promtool)
        .arg("test")
        .arg("rules")
        .arg(repo_path("deploy/prometheus/alerts.test.yml")));
    assert!(ok, "promtool test rules:\n{out}");
    let (ok, out) = run(Command::new(&promtool)
        .arg("check")
        .arg("config")
        .arg(repo_path("deploy/prometheus/prometheus.yml")));
    assert!(ok, "promtool check config:\n{out}");
}

#[test]
fn alertmanager_config_passes_amtool_and_routes_by_severity() {
    let Some(amtool) = tool("amtool") else {
        return;
    };
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
async fn the_exposition_passes_promtool_check_metrics_with_no_finding() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    // Every kind of series: packages of all Types, null renew fields, an unknown status, a failed pair.
    let sim = Simulator::new();
    sim.add_account("AKIDlint", "lint-key");
    sim.set_packages("AKIDlint", 0, Simulator::example_response_packages());
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
    assert!(
        text.contains(r#"tencent_live_up{account="broken",package_type="traffic"} 0"#),
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
