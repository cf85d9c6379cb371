//! The harness: a simulator and a real exporter serving on `127.0.0.1:0`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use secrecy::SecretString;
use tencent_live_exporter::app::Exporter;
use tencent_live_exporter::config::{Config, Overrides, RawAccount, RawConfig};
use tencent_live_exporter::simulator::Simulator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Generous bound on anything a test waits for; a hang fails instead of blocking CI.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Harness {
    pub sim: Simulator,
    pub exporter: Exporter,
    /// Base URL of the exporter's HTTP server.
    pub url: String,
    pub shutdown: CancellationToken,
    http: reqwest::Client,
}

/// An account of the simulator and the exporter: (name, secret_id, secret_key).
pub type Account = (&'static str, &'static str, &'static str);

impl Harness {
    /// Starts the simulator and an exporter for `accounts`; `tune` adjusts the raw config.
    /// The poll interval is an hour: tests make polls happen with `poll_now`.
    pub async fn start(
        sim: Simulator,
        accounts: &[Account],
        tune: impl FnOnce(&mut RawConfig),
    ) -> Harness {
        let shutdown = CancellationToken::new();
        let sim_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim_url = format!("http://{}", sim_listener.local_addr().unwrap());
        tokio::spawn(sim.clone().serve(sim_listener, shutdown.clone()));

        let mut raw = RawConfig::default();
        raw.poll.interval = Some("1h".into());
        raw.accounts = Some(
            accounts
                .iter()
                .map(|(name, id, key)| RawAccount {
                    name: (*name).into(),
                    secret_id: Some((*id).into()),
                    secret_key: Some(SecretString::from(*key)),
                    endpoint: Some(sim_url.clone()),
                })
                .collect(),
        );
        tune(&mut raw);
        let config = Config::validate(raw, &Overrides::default(), &BTreeMap::new())
            .expect("valid test config");
        let exporter = Exporter::start(&config, shutdown.clone()).expect("exporter starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(tencent_live_exporter::server::serve(
            listener,
            exporter.router(),
            shutdown.clone(),
        ));
        Harness {
            sim,
            exporter,
            url,
            shutdown,
            http: reqwest::Client::new(),
        }
    }

    pub async fn first_polls(&self) {
        tokio::time::timeout(PATIENCE, self.exporter.wait_for_polls(1))
            .await
            .expect("first polls finish");
    }

    pub async fn poll_now(&self) {
        tokio::time::timeout(PATIENCE, self.exporter.poll_now())
            .await
            .expect("polls finish");
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("exporter answers")
    }

    pub async fn scrape_text(&self) -> String {
        let resp = self.get("/metrics").await;
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    pub async fn scrape(&self) -> Samples {
        Samples::parse(&self.scrape_text().await)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A scrape as `series → value`, the series written as in the exposition.
#[derive(Debug)]
pub struct Samples(pub BTreeMap<String, f64>);

impl Samples {
    pub fn parse(text: &str) -> Samples {
        let mut map = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
            let value: f64 = value.parse().expect("sample value parses");
            assert!(
                map.insert(series.to_owned(), value).is_none(),
                "duplicate series {series}"
            );
        }
        Samples(map)
    }

    pub fn get(&self, series: &str) -> Option<f64> {
        self.0.get(series).copied()
    }

    /// The value of a series that must be there.
    pub fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("no series {series} in:\n{}", self.dump()))
    }

    pub fn with_prefix(&self, prefix: &str) -> Vec<(&String, &f64)> {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .collect()
    }

    pub fn dump(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k} {v}\n")).collect()
    }
}

/// A tool the test needs: its path, or `None` locally when missing. Under `CI=true` a missing
/// tool fails the test, so CI can never pass by skipping.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{name} is required under CI=true but is not on PATH (.ci/run installs it)");
        }
        eprintln!(
            "SKIPPED: {name} not on PATH (install Debian's prometheus package); under CI=true this fails"
        );
    }
    found
}

/// Runs a tool, returning (success, combined output).
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("tool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}
