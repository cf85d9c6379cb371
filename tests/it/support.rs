//! The harness: a simulator and a real exporter, either over loopback sockets (real time) or
//! with the simulator's router injected as the transport (`Transport::service`: no sockets, so
//! `tokio::time::pause` controls every clock).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use tencent_live_exporter::app::{ConfigLoader, Exporter};
use tencent_live_exporter::config::{self, Overrides};
use tencent_live_exporter::tencent::transport::Transport;
use tencent_live_simulator::Simulator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};

/// Generous bound on anything a test waits for; a hang fails instead of blocking CI.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// An account of the simulator and the exporter: (name, secret_id, secret_key).
pub type Account = (&'static str, &'static str, &'static str);

/// The endpoint of the in-process simulator (its Host header is signed like any other).
pub const IN_PROCESS_ENDPOINT: &str = "http://live.simulator.test";

pub struct Harness {
    pub sim: Simulator,
    pub exporter: Arc<Exporter>,
    /// Base URL of the exporter's HTTP server; `None` in process.
    pub url: Option<String>,
    /// The exporter's routes, for in-process scrapes.
    pub router: axum::Router,
    pub shutdown: CancellationToken,
    /// The configuration file the exporter reloads from.
    pub config_path: PathBuf,
    endpoint: String,
    http: reqwest::Client,
}

/// A configuration file for `accounts` at `endpoint`; `poll` is extra `[poll]` lines. The interval
/// is an hour unless `poll` says otherwise: tests make polls happen with `poll_now`.
pub fn config_toml(accounts: &[Account], endpoint: &str, poll: &str) -> String {
    let mut s = String::from("[poll]\n");
    if !poll.contains("interval") {
        s.push_str("interval = \"1h\"\n");
    }
    s.push_str(poll);
    s.push('\n');
    for (name, id, key) in accounts {
        s.push_str(&format!(
            "[[accounts]]\nname = \"{name}\"\nsecret_id = \"{id}\"\nsecret_key = \"{key}\"\nendpoint = \"{endpoint}\"\n"
        ));
    }
    s
}

fn temp_config_path() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("tle-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("config-{}.toml", N.fetch_add(1, Ordering::Relaxed)))
}

impl Harness {
    /// Simulator and exporter over loopback sockets, in real time.
    pub async fn start(sim: Simulator, accounts: &[Account], poll: &str) -> Harness {
        let shutdown = CancellationToken::new();
        let sim_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", sim_listener.local_addr().unwrap());
        tokio::spawn(sim.clone().serve(sim_listener, shutdown.clone()));
        let mut h = Self::build(sim, accounts, poll, endpoint, shutdown, None);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        h.url = Some(format!("http://{}", listener.local_addr().unwrap()));
        tokio::spawn(tencent_live_exporter::http::server::serve(
            listener,
            h.router.clone(),
            h.shutdown.clone(),
        ));
        h
    }

    /// Simulator and exporter in process: no sockets, so paused time drives everything.
    pub fn in_process(sim: Simulator, accounts: &[Account], poll: &str) -> Harness {
        let transport = Transport::service(sim.router());
        Self::build(
            sim,
            accounts,
            poll,
            IN_PROCESS_ENDPOINT.into(),
            CancellationToken::new(),
            Some(transport),
        )
    }

    fn build(
        sim: Simulator,
        accounts: &[Account],
        poll: &str,
        endpoint: String,
        shutdown: CancellationToken,
        transport: Option<Transport>,
    ) -> Harness {
        let config_path = temp_config_path();
        std::fs::write(&config_path, config_toml(accounts, &endpoint, poll)).unwrap();
        let path = config_path.clone();
        let loader: ConfigLoader = Arc::new(move || {
            Ok(config::load(
                Some(&path),
                &Overrides::default(),
                BTreeMap::new(),
            )?)
        });
        let config = loader().expect("valid test config");
        let transport = transport.unwrap_or_else(|| Transport::http(config.poll.timeout).unwrap());
        let exporter = Exporter::start_with(&config, shutdown.clone(), transport, Some(loader));
        let router = exporter.router();
        Harness {
            sim,
            exporter,
            url: None,
            router,
            shutdown,
            config_path,
            endpoint,
            http: reqwest::Client::new(),
        }
    }

    /// Rewrites the configuration file (same endpoint) for the next reload.
    pub fn rewrite_config(&self, accounts: &[Account], poll: &str) {
        std::fs::write(
            &self.config_path,
            config_toml(accounts, &self.endpoint, poll),
        )
        .unwrap();
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
        let url = self.url.as_ref().expect("socket harness");
        self.http
            .get(format!("{url}{path}"))
            .send()
            .await
            .expect("exporter answers")
    }

    /// One request through the exporter's router (no socket): (status, body).
    pub async fn call(&self, method: &str, path: &str) -> (u16, String) {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub async fn scrape_text(&self) -> String {
        if self.url.is_some() {
            let resp = self.get("/metrics").await;
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        } else {
            let (status, body) = self.call("GET", "/metrics").await;
            assert_eq!(status, 200);
            body
        }
    }

    pub async fn scrape(&self) -> Samples {
        Samples::parse(&self.scrape_text().await)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_file(&self.config_path);
    }
}

/// A scrape as `series → value`, the series written as in the exposition.
#[derive(Debug)]
pub struct Samples(pub BTreeMap<String, f64>);

impl Samples {
    /// Parses an exposition; a duplicate series fails the test (Prometheus would reject it).
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

/// The file names a tool goes by: Debian installs Alertmanager as `prometheus-alertmanager`.
/// `build.rs` knows the same names.
pub fn names_of(tool: &str) -> Vec<&str> {
    match tool {
        "alertmanager" => vec!["alertmanager", "prometheus-alertmanager"],
        _ => vec![tool],
    }
}

/// The Debian package that gives a test tool (what `.ci/run` installs).
pub fn package_of(tool: &str) -> &'static str {
    match tool {
        "promtool" | "prometheus" => "prometheus",
        "alertmanager" | "amtool" => "prometheus-alertmanager",
        "chromium" => "chromium",
        "kubectl" => "kubernetes-client",
        "jsonnet" => "jsonnet",
        _ => "(unknown: add it to tests/it/support.rs and build.rs)",
    }
}

/// A tool the test needs: its path on `PATH`. A missing tool fails the test, naming the package.
///
/// Tests that need a tool carry `#[cfg_attr(missing_<tool>, ignore = "needs <tool>: apt-get
/// install <package>")]`: `build.rs` sets that cfg when the tool is not on `PATH`, except under
/// `CI=true`, so locally such a test is reported as *ignored* with its reason (the harness
/// shows it; it is never counted as passed), and in CI it runs and fails without the tool.
pub fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .flat_map(|dir| names_of(name).into_iter().map(move |n| dir.join(n)))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} is not on PATH: apt-get install {} (.ci/run installs it)",
                package_of(name)
            )
        })
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

/// The log lines of one test. Tracing caches each callsite's interest once per process, so a
/// per-test (thread-local) subscriber misses events whose callsite another test registered first.
/// Instead ONE global subscriber at TRACE is installed (once, before the first capture) and routes
/// each event to the capture of the thread it happens on: each test runs on its own thread, and a
/// current-thread runtime (the `#[tokio::test]` default) runs every task of that test there.
/// Events of other threads (`spawn_blocking`, multi-thread runtime workers) are not captured, so
/// [`Logs::capture`] refuses to run inside a multi-thread runtime.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// The capture of this thread's test and the most verbose level it keeps.
    static CAPTURE: RefCell<Option<(Logs, tracing::Level)>> = const { RefCell::new(None) };
}

/// Writes to the capture of the current thread (nothing when it has none).
struct ThreadCapture;

impl<'a> MakeWriter<'a> for ThreadCapture {
    type Writer = Box<dyn Write>;
    fn make_writer(&'a self) -> Self::Writer {
        match CAPTURE.with(|c| c.borrow().as_ref().map(|(logs, _)| logs.clone())) {
            Some(logs) => Box::new(logs),
            None => Box::new(std::io::sink()),
        }
    }
}

/// Whether the current thread captures events of this level.
fn captured(meta: &tracing::Metadata<'_>) -> bool {
    CAPTURE.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|(_, level)| meta.level() <= level)
    })
}

/// Installs the routing subscriber as the process's global default, once. Its filter is dynamic
/// (evaluated per event: `filter_fn` would cache its first answer per callsite), so every
/// callsite's cached interest is "sometimes", whichever test registered it.
fn route_logs() {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let installed = *INSTALLED.get_or_init(|| {
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(ThreadCapture)
            .with_filter(
                tracing_subscriber::filter::dynamic_filter_fn(|meta, _| captured(meta))
                    .with_callsite_filter(|_| tracing::subscriber::Interest::sometimes()),
            );
        let ok =
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .is_ok();
        // Interest cached by callsites registered while the subscriber was being installed.
        tracing::callsite::rebuild_interest_cache();
        ok
    });
    assert!(
        installed,
        "another global tracing subscriber was installed first"
    );
}

/// Ends a capture: the thread's previous capture (if any) is restored.
pub struct CaptureGuard(Option<(Logs, tracing::Level)>);

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        CAPTURE.with(|c| *c.borrow_mut() = previous);
    }
}

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Captures the events of the current thread at `level` and above, until the guard drops.
    /// Panics inside a multi-thread runtime, whose tasks run on other threads.
    pub fn capture(level: tracing::Level) -> (Logs, CaptureGuard) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            assert!(
                matches!(
                    runtime.runtime_flavor(),
                    tokio::runtime::RuntimeFlavor::CurrentThread
                ),
                "Logs::capture sees the events of the test's own thread only: use a current-thread runtime"
            );
        }
        route_logs();
        let logs = Logs::default();
        let previous = CAPTURE.with(|c| c.borrow_mut().replace((logs.clone(), level)));
        (logs, CaptureGuard(previous))
    }
}

/// Captures are per test, whichever tests run beside them, and keep only their level.
#[test]
fn each_thread_captures_its_own_events_at_its_level() {
    let threads: Vec<_> = [("one", tracing::Level::INFO), ("two", tracing::Level::WARN)]
        .into_iter()
        .map(|(name, level)| {
            std::thread::spawn(move || {
                let (logs, guard) = Logs::capture(level);
                for _ in 0..100 {
                    tracing::info!("info from {name}");
                    tracing::warn!("warn from {name}");
                    std::thread::yield_now();
                }
                drop(guard);
                tracing::warn!("after the capture of {name}");
                (name, logs.text())
            })
        })
        .collect();
    for thread in threads {
        let (name, text) = thread.join().unwrap();
        let other = if name == "one" { "two" } else { "one" };
        assert_eq!(
            text.matches(&format!("warn from {name}")).count(),
            100,
            "{text}"
        );
        let infos = text.matches(&format!("info from {name}")).count();
        assert_eq!(infos, if name == "one" { 100 } else { 0 }, "{text}");
        assert!(!text.contains(other), "{text}");
        assert!(!text.contains("after the capture"), "{text}");
    }
}
