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

/// A new, empty scratch directory under the system's temp dir, named by `tag`, the process and a
/// counter, so tests running side by side never share one.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tle-it-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
        // The daemon's own serving (app::serve: listeners, graceful stop), not a rebuilt one.
        tokio::spawn(tencent_live_exporter::app::serve(
            vec![listener],
            h.exporter.clone(),
            Default::default(),
            None,
            h.shutdown.clone().cancelled_owned(),
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

/// The exporter binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tencent-live-exporter");

/// The exporter run as a process, serving on ports it chose itself: each listen address is
/// given with port 0 and read back from its `serving address=…` log line (info, in every
/// `--log.format`), so no port is picked by the test and handed over, which another process
/// could take in between. Its stderr is drained by a thread (a full pipe never blocks it) and
/// kept for failure messages. Killed (and reaped) on drop.
pub struct Process {
    child: std::process::Child,
    log: Arc<Mutex<String>>,
    lines: std::sync::mpsc::Receiver<String>,
    listening: usize,
    serving: Vec<std::net::SocketAddr>,
}

impl Process {
    /// Spawns `cmd` serving on `127.0.0.1:0`; see [`Process::spawn_on`].
    pub fn spawn(cmd: &mut Command) -> Process {
        Self::spawn_on(cmd, &["127.0.0.1:0"])
    }

    /// Spawns `cmd` with a `--web.listen-address` per address (each with port 0), stdout to
    /// null, stderr kept. The serving lines are info: `RUST_LOG` and `TLE_LOG_LEVEL` are
    /// removed, and `cmd` must not lower `--log.level` below info. Does not wait: see
    /// [`Process::addrs`].
    pub fn spawn_on(cmd: &mut Command, addresses: &[&str]) -> Process {
        for address in addresses {
            cmd.arg(format!("--web.listen-address={address}"));
        }
        let mut child = cmd
            .env_remove("RUST_LOG")
            .env_remove("TLE_LOG_LEVEL")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the exporter binary starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = std::sync::mpsc::channel();
        let kept = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
                drop(log);
                // The receiver may be gone (the test no longer waits): keep draining.
                let _ = tx.send(line);
            }
        });
        Process {
            child,
            log,
            lines,
            listening: addresses.len(),
            serving: Vec::new(),
        }
    }

    /// The process id, for signals.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The addresses it serves on, in its serving lines' order; waits (bounded) until every
    /// listener serves. A process that exits first, or never serves, fails the test with its
    /// exit status and stderr.
    pub fn addrs(&mut self) -> &[std::net::SocketAddr] {
        let started = std::time::Instant::now();
        while self.serving.len() < self.listening {
            let left = PATIENCE.saturating_sub(started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.serving.extend(serving_address(&line)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "the exporter did not serve within {PATIENCE:?}; its stderr:\n{}",
                        self.log()
                    );
                }
                // Stderr closed: the process is gone (or going).
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().expect("reap the exporter");
                    panic!(
                        "the exporter exited before serving ({status}); its stderr:\n{}",
                        self.log()
                    );
                }
            }
        }
        &self.serving
    }

    /// The first address it serves on, with the host as 127.0.0.1 (for a listener on every
    /// interface); waits as [`Process::addrs`].
    pub fn addr(&mut self) -> std::net::SocketAddr {
        let mut addr = self.addrs()[0];
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        addr
    }

    /// The port of [`Process::addr`].
    pub fn port(&mut self) -> u16 {
        self.addr().port()
    }

    /// Whether it has exited (`Some(status)`), without waiting.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("poll the exporter")
    }

    /// Waits (bounded by `within`) for it to exit; a process still running then fails the
    /// test with its stderr.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "the exporter did not exit within {within:?}; its stderr:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address of a `serving` log line in the text, logfmt or json format, else `None`.
fn serving_address(line: &str) -> Option<std::net::SocketAddr> {
    let serving = line.contains(" serving address=")
        || line.contains(" msg=serving ")
        || line.contains(r#""message":"serving""#);
    serving.then(|| address_in(line)).flatten()
}

/// The `address` field of a log line: `address=HOST:PORT` (quoted or not: logfmt, as Prometheus,
/// Alertmanager and the exporter's text and logfmt formats write it) or `"address":"HOST:PORT"`
/// (the exporter's json), else `None`.
pub fn address_in(line: &str) -> Option<std::net::SocketAddr> {
    let (_, rest) = line
        .split_once(" address=")
        .or_else(|| line.split_once(r#""address":"#))?;
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[test]
fn the_address_of_a_log_line_is_read_as_each_process_writes_it() {
    let cases = [
        (
            r#"ts=2026-12-05T02:06:34.776Z caller=tls_config.go:232 level=info component=web msg="Listening on" address=127.0.0.1:45885"#,
            Some("127.0.0.1:45885"),
        ),
        (
            r#"msg="Listening on" address="[::1]:9093""#,
            Some("[::1]:9093"),
        ),
        (r#"msg="Listening on" address=:9093"#, None),
        ("no address here", None),
    ];
    for (line, want) in cases {
        assert_eq!(address_in(line), want.map(|a| a.parse().unwrap()), "{line}");
    }
}

#[test]
fn serving_lines_of_every_log_format_give_their_address() {
    for (line, address) in [
        (
            "2026-12-05T02:06:27.520457Z  INFO tencent_live_exporter::app: serving address=127.0.0.1:35757 path=/metrics accounts=2 interval=5s",
            Some("127.0.0.1:35757"),
        ),
        (
            "time=2026-12-05T02:06:29.528Z level=INFO source=src/app.rs:602 msg=serving address=[::]:37075 path=/metrics",
            Some("[::]:37075"),
        ),
        (
            r#"{"timestamp":"2026-12-05T02:06:31.533616Z","level":"INFO","fields":{"message":"serving","address":"127.0.0.1:36049","path":"/metrics"},"target":"tencent_live_exporter::app"}"#,
            Some("127.0.0.1:36049"),
        ),
        (
            "2026-12-05T02:06:27.000000Z  INFO tencent_live_exporter::demo: demo: Live API simulator started addr=127.0.0.1:32905 day=2m",
            None,
        ),
    ] {
        assert_eq!(
            serving_address(line),
            address.map(|a| a.parse().unwrap()),
            "{line}"
        );
    }
}

/// A child that cannot start fails the test with why: its exit status and its own words, not a
/// bare "exit status: 2" (here an address another socket holds).
#[test]
fn a_process_that_exits_before_serving_fails_with_its_stderr() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = held.local_addr().unwrap().to_string();
    let failed = std::panic::catch_unwind(|| {
        Process::spawn_on(Command::new(BIN).arg("--demo"), &[&address]).addrs();
    })
    .expect_err("an address in use cannot serve");
    let message = failed.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("exited before serving (exit status: 2)")
            && message.contains(&format!("listening on {address}")),
        "{message}"
    );
}

/// A loopback address that refuses connections, for "a service that is down": a socket bound to
/// it and never listening (connections get a reset). Keep the socket for as long as the address
/// is in use: while it is held no other process can bind the port, which a listener dropped to
/// free its port would allow.
pub fn refused_address() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind((std::net::Ipv4Addr::LOCALHOST, 0).into())
        .expect("bind a loopback port");
    let addr = socket.local_addr().expect("its address");
    (socket, addr)
}

#[test]
fn a_refused_address_refuses_and_cannot_be_taken() {
    let (_held, addr) = refused_address();
    let refused = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(std::net::TcpListener::bind(addr).is_err());
}
