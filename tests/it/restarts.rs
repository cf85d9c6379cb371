//! Reload and restart at any moment (issue 19): one test per routine act of an operator, against
//! the simulator's strict limit (20 arrivals of one SecretId in any second; the 21st refused, and
//! counted). Each asserts at most the limit in every window, no `RequestLimitExceeded`, and that
//! the exporter keeps running. In process with paused time, but for the real-process signal tests.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tencent_live_exporter::app::{self, ConfigLoader, Daemon, Exporter};
use tencent_live_exporter::config::{self, Config, Overrides};
use tencent_live_exporter::tencent::budget::max_in_any_window;
use tencent_live_exporter::tencent::transport::Transport;
use tencent_live_simulator::Simulator;
use tokio_util::sync::CancellationToken;

use crate::support::{BIN, IN_PROCESS_ENDPOINT, PATIENCE, Process};

const ID: &str = "AKIDrestartOne000000000000000000000";
const KEY: &str = "key-restart-one";
const ID2: &str = "AKIDrestartTwo000000000000000000000";
const KEY2: &str = "key-restart-two";
/// The limit the exporter is configured with: all of Tencent's 20/s.
const LIMIT: usize = 20;
const POLL: &str = "[poll]\ninterval = \"1h\"\nrequests_per_second = 20\npage_size = 10\n\
                    package_types = [\"traffic\"]\n";

fn package(i: usize) -> Value {
    json!({"Id": format!("p{i}"), "Type": 0, "Status": 1, "Total": 100, "Used": 1, "Left": 99})
}

/// A simulator with `pages` pages of 10 traffic packages for each key, 50 ms round trips.
fn sim(pages: usize, keys: &[(&str, &str)]) -> Simulator {
    let sim = Simulator::new();
    for (id, key) in keys {
        sim.add_account(id, key);
        sim.set_packages(id, 0, (0..pages * 10).map(package).collect());
    }
    sim.set_latency(Duration::from_millis(50));
    sim
}

fn temp_dir() -> PathBuf {
    crate::support::temp_dir("restarts")
}

/// An account of `id` with its keys inline.
fn inline(name: &str, id: &str, key: &str, extra: &str) -> String {
    format!(
        "[[accounts]]\nname = \"{name}\"\nsecret_id = \"{id}\"\nsecret_key = \"{key}\"\n\
         endpoint = \"{IN_PROCESS_ENDPOINT}\"\n{extra}\n"
    )
}

/// A loader of the file at `path`, with `env` as the process environment.
fn loader(path: &Path, env: BTreeMap<String, String>) -> ConfigLoader {
    let path = path.to_owned();
    Arc::new(move || {
        Ok(config::load(
            Some(&path),
            &Overrides::default(),
            env.clone(),
        )?)
    })
}

fn start(config: &Config, sim: &Simulator, loader: ConfigLoader) -> Arc<Exporter> {
    Exporter::start_with(
        config,
        CancellationToken::new(),
        Transport::service(sim.router()),
        Some(loader),
    )
}

/// A scratch directory and its `config.toml`: the web layer on port 0, [`POLL`], and account `a`
/// with [`ID`]'s keys inline.
fn one_account_config() -> (PathBuf, PathBuf) {
    let dir = temp_dir();
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[web]\nlisten_address = \"127.0.0.1:0\"\n{POLL}{}",
            inline("a", ID, KEY, "")
        ),
    )
    .unwrap();
    (dir, path)
}

/// `daemon` served on its configuration's listeners by `app::run` in a task, as `main` runs it;
/// a send on the returned channel is its shutdown.
async fn run_in_task(
    daemon: Daemon,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listeners = app::bind(&daemon.config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app::run(listeners, daemon, async move {
        let _ = stopped.await;
    }));
    (stop, running)
}

/// Every SecretId's arrivals: at most the limit in any second, and none refused.
fn assert_within_limit(sim: &Simulator) {
    let log = sim.requests();
    let mut by_id: HashMap<String, Vec<tokio::time::Instant>> = HashMap::new();
    for r in &log {
        by_id
            .entry(r.secret_id.clone().unwrap_or_default())
            .or_default()
            .push(r.at);
    }
    for (id, times) in by_id {
        let worst = max_in_any_window(&times, Duration::from_secs(1));
        eprintln!("{id}: at most {worst} arrivals in one second");
        assert!(
            worst <= LIMIT,
            "{worst} calls of {id} arrived in one second"
        );
    }
    let refused = log
        .iter()
        .filter(|r| r.outcome == "RequestLimitExceeded")
        .count();
    assert_eq!(refused, 0, "RequestLimitExceeded answers");
}

async fn poll_now(exporter: &Exporter) {
    tokio::time::timeout(PATIENCE, exporter.poll_now())
        .await
        .expect("polls finish");
}

/// Row 1: one SecretId given inline, by `secret_id_file` and by a profile (three teams' accounts)
/// is one budget, and `--check-config` says so.
#[tokio::test(start_paused = true)]
async fn one_secret_id_read_three_ways_is_one_budget() {
    let sim = sim(12, &[(ID, KEY)]);
    let dir = temp_dir();
    std::fs::write(dir.join("id"), format!("{ID}\n")).unwrap();
    std::fs::write(dir.join("key"), format!("{KEY}\n")).unwrap();
    let profile = dir.join("credentials");
    std::fs::write(
        &profile,
        format!("[team]\nsecret_id = {ID}\nsecret_key = {KEY}\n"),
    )
    .unwrap();
    let toml = format!(
        "{POLL}{}[[accounts]]\nname = \"file\"\nsecret_id_file = \"{}\"\n\
         secret_key_file = \"{}\"\nendpoint = \"{IN_PROCESS_ENDPOINT}\"\n\
         [[accounts]]\nname = \"profile\"\ncredentials = \"profile\"\nprofile = \"team\"\n\
         endpoint = \"{IN_PROCESS_ENDPOINT}\"\n",
        inline("inline", ID, KEY, ""),
        dir.join("id").display(),
        dir.join("key").display(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, toml).unwrap();
    let env = BTreeMap::from([(
        "TENCENTCLOUD_CREDENTIALS_FILE".to_owned(),
        profile.display().to_string(),
    )]);
    let load = loader(&path, env);
    let config = load().unwrap();
    let check = config.to_redacted_toml();
    assert!(
        check.contains(&format!(
            "# SecretId {ID} (shared): \"inline\", \"file\", \"profile\" (counted against SecretId {ID})"
        )),
        "{check}"
    );
    let exporter = start(&config, &sim, load);
    tokio::time::timeout(PATIENCE, exporter.wait_for_polls(1))
        .await
        .unwrap();
    poll_now(&exporter).await;
    assert!(exporter.all_up());
    assert_eq!(sim.requests().len(), 3 * 2 * 12);
    assert_within_limit(&sim);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A key rotated between two polls a moment apart (its `secret_id_file` rewritten with the
/// sub-account's second key): the new key joins the account's budget, so both keys together stay
/// within the limit.
#[tokio::test(start_paused = true)]
async fn a_rotated_key_keeps_the_calls_of_the_last_second() {
    let sim = sim(60, &[(ID, KEY), (ID2, KEY2)]);
    let dir = temp_dir();
    let (id_file, key_file) = (dir.join("id"), dir.join("key"));
    std::fs::write(&id_file, ID).unwrap();
    std::fs::write(&key_file, KEY).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "{POLL}[[accounts]]\nname = \"a\"\nsecret_id_file = \"{}\"\n\
             secret_key_file = \"{}\"\nendpoint = \"{IN_PROCESS_ENDPOINT}\"\n",
            id_file.display(),
            key_file.display()
        ),
    )
    .unwrap();
    let load = loader(&path, BTreeMap::new());
    let start_at = tokio::time::Instant::now();
    let exporter = start(&load().unwrap(), &sim, load);
    tokio::time::timeout(PATIENCE, exporter.wait_for_polls(1))
        .await
        .unwrap();
    // The files are read again a minute after the first read. Rotate before it; a poll that
    // starts before it still signs with the old key (a call leases its keys before it queues),
    // and the next poll, at once, with the new one: its calls share a second with the old key's.
    tokio::time::sleep_until(start_at + Duration::from_millis(59_000)).await;
    std::fs::write(&id_file, ID2).unwrap();
    std::fs::write(&key_file, KEY2).unwrap();
    poll_now(&exporter).await;
    poll_now(&exporter).await;
    assert!(exporter.all_up());
    let log = sim.requests();
    let second: Vec<_> = log
        .iter()
        .filter(|r| r.secret_id.as_deref() == Some(ID2))
        .map(|r| r.at)
        .collect();
    assert!(!second.is_empty(), "the rotated key was never used");
    let times: Vec<_> = log.iter().map(|r| r.at).collect();
    let worst = max_in_any_window(&times, Duration::from_secs(1));
    assert!(
        worst <= LIMIT,
        "{worst} calls of the two keys arrived in one second"
    );
    assert_within_limit(&sim);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Row 2: reloads mid-poll that add a `rate_limit_group`, swap two accounts' keys, and remove
/// the account that named the group: every SecretId keeps the calls of its last second.
#[tokio::test(start_paused = true)]
async fn reloads_mid_poll_that_group_swap_or_remove_keep_each_keys_history() {
    let sim = sim(30, &[(ID, KEY), (ID2, KEY2)]);
    let dir = temp_dir();
    let path = dir.join("config.toml");
    let write = |accounts: &str| std::fs::write(&path, format!("{POLL}{accounts}")).unwrap();
    write(&[inline("a", ID, KEY, ""), inline("b", ID2, KEY2, "")].concat());
    let load = loader(&path, BTreeMap::new());
    let exporter = start(&load().unwrap(), &sim, load);
    tokio::time::timeout(PATIENCE, exporter.wait_for_polls(1))
        .await
        .unwrap();
    let steps = [
        // Only a rate_limit_group added to one account.
        [
            inline("a", ID, KEY, "rate_limit_group = \"g\""),
            inline("b", ID2, KEY2, ""),
        ]
        .concat(),
        // The two accounts swap names (each key now under the other name, group and all).
        [
            inline("b", ID, KEY, "rate_limit_group = \"g\""),
            inline("a", ID2, KEY2, "rate_limit_group = \"g\""),
        ]
        .concat(),
        // The account that named the group goes; its key comes back under a new name.
        [inline("a", ID2, KEY2, ""), inline("new", ID, KEY, "")].concat(),
    ];
    for accounts in steps {
        let polling = {
            let exporter = exporter.clone();
            tokio::spawn(async move { exporter.poll_now().await })
        };
        // Mid-poll: some pages fetched, more to come.
        tokio::time::sleep(Duration::from_millis(400)).await;
        write(&accounts);
        exporter.reload().await.expect("the reload applies");
        let _ = tokio::time::timeout(PATIENCE, polling).await;
        poll_now(&exporter).await;
        assert!(exporter.all_up());
    }
    assert_within_limit(&sim);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Row 3: `systemctl restart` in the middle of a poll, three times: each new `app::run` holds its
/// first call one window, each stopping one waits for its abandoned calls.
#[tokio::test(start_paused = true)]
async fn restarts_mid_poll_never_let_two_processes_share_a_second() {
    let sim = sim(40, &[(ID, KEY)]);
    let (dir, path) = one_account_config();
    let load = loader(&path, BTreeMap::new());
    for _ in 0..3 {
        let (stop, running) = run_in_task(Daemon {
            config: load().unwrap(),
            loader: Some(load.clone()),
            web: Default::default(),
            reloads: None,
            handover: true,
            transport: Some(Transport::service(sim.router())),
        })
        .await;
        // Mid-poll: at least 25 more pages arrived (of 40), then SIGTERM.
        let before = sim.requests().len();
        let waited = tokio::time::Instant::now();
        while sim.requests().len() < before + 25 {
            assert!(waited.elapsed() < PATIENCE, "the poll did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(()).unwrap();
        tokio::time::timeout(PATIENCE, running)
            .await
            .expect("app::run returns")
            .unwrap()
            .unwrap();
    }
    assert_within_limit(&sim);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Row 4, in process: SIGHUPs that arrive after the configuration was read but before the daemon
/// runs are one reload, run once it serves (a burst coalesces); none is lost, none is fatal.
#[tokio::test(start_paused = true)]
async fn a_reload_requested_during_the_start_runs_once_serving() {
    let sim = sim(1, &[(ID, KEY)]);
    let (dir, path) = one_account_config();
    let reads = Arc::new(AtomicU32::new(0));
    let inner = loader(&path, BTreeMap::new());
    let counted: ConfigLoader = {
        let reads = reads.clone();
        Arc::new(move || {
            reads.fetch_add(1, Ordering::SeqCst);
            inner()
        })
    };
    let config = counted().unwrap();
    let (requests, reloads) = tokio::sync::watch::channel(0u64);
    // Three SIGHUPs while starting.
    for _ in 0..3 {
        requests.send_modify(|n| *n += 1);
    }
    let (stop, running) = run_in_task(Daemon {
        config,
        loader: Some(counted),
        web: Default::default(),
        reloads: Some(reloads),
        handover: false,
        transport: Some(Transport::service(sim.router())),
    })
    .await;
    let waited = tokio::time::Instant::now();
    while reads.load(Ordering::SeqCst) < 2 {
        assert!(
            waited.elapsed() < PATIENCE,
            "the requested reload never ran"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(reads.load(Ordering::SeqCst), 2, "one reload for the burst");
    // One more after it runs: one more reload.
    requests.send_modify(|n| *n += 1);
    while reads.load(Ordering::SeqCst) < 3 {
        assert!(waited.elapsed() < PATIENCE, "the later reload never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Row 5: a `rate_limit_group` joining many accounts: the queued calls are served with work that
/// grows with the calls (one waiter woken per freed permit), not with their square.
#[tokio::test(start_paused = true)]
async fn a_group_joining_many_accounts_serves_its_queue_in_linear_work() {
    const ACCOUNTS: usize = 12;
    const PAGES: usize = 15;
    let keys: Vec<(String, String)> = (0..ACCOUNTS)
        .map(|i| {
            (
                format!("AKIDgroup{i:02}0000000000000000000000000"),
                format!("key-{i}"),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = keys.iter().map(|(i, k)| (i.as_str(), k.as_str())).collect();
    let sim = sim(PAGES, &pairs);
    let dir = temp_dir();
    let path = dir.join("config.toml");
    let accounts: String = keys
        .iter()
        .enumerate()
        .map(|(n, (id, key))| inline(&format!("a{n}"), id, key, "rate_limit_group = \"big\""))
        .collect();
    std::fs::write(&path, format!("{POLL}{accounts}")).unwrap();
    let load = loader(&path, BTreeMap::new());
    let exporter = start(&load().unwrap(), &sim, load);
    tokio::time::timeout(PATIENCE, exporter.wait_for_polls(1))
        .await
        .unwrap();
    let calls = sim.requests().len();
    assert_eq!(calls, ACCOUNTS * PAGES);
    let locks = exporter.budgets().lock_count();
    eprintln!("{calls} calls queued in one budget: {locks} lock acquisitions");
    // Waking every waiter per freed permit took ~90 lock acquisitions per call at this size.
    assert!(
        locks <= 6 * calls as u64,
        "{locks} lock acquisitions for {calls} calls"
    );
    // One budget for all: at most 20 arrivals per second over all the keys together.
    let times: Vec<_> = sim.requests().iter().map(|r| r.at).collect();
    assert!(max_in_any_window(&times, Duration::from_secs(1)) <= LIMIT);
    assert_within_limit(&sim);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether `pid` has reached `main` (its signal mask blocks or catches SIGHUP).
fn in_main(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status.lines().any(|l| {
        (l.starts_with("SigBlk:") || l.starts_with("SigCgt:"))
            && l.split_whitespace()
                .nth(1)
                .and_then(|m| u64::from_str_radix(m, 16).ok())
                .is_some_and(|m| m & 1 != 0)
    })
}

fn send(pid: u32, signal: i32) {
    // SAFETY: `kill` with a child's pid and a valid signal number touches no memory.
    let sent = unsafe { libc::kill(pid as i32, signal) };
    assert_eq!(sent, 0, "kill({pid}, {signal})");
}

/// A daemon started with `--demo`, and the signal sent `delay` after it reached `main`.
fn start_and_signal(delay: Duration, signal: i32) -> Process {
    let mut daemon = Process::spawn(Command::new(BIN).arg("--demo"));
    let started = std::time::Instant::now();
    while !in_main(daemon.id()) {
        assert!(started.elapsed() < PATIENCE, "never reached main");
        if let Some(status) = daemon.try_wait() {
            panic!("exited before main ({status}):\n{}", daemon.log());
        }
        std::thread::yield_now();
    }
    std::thread::sleep(delay);
    send(daemon.id(), signal);
    daemon
}

/// Row 4: `systemctl reload` right after `systemctl restart`: a SIGHUP at any moment of the start
/// is a reload request, never a death; the daemon then serves and stops cleanly on SIGTERM.
#[test]
fn a_sighup_at_any_moment_of_start_is_a_reload_not_a_death() {
    // The moments run side by side: each is a process of its own.
    std::thread::scope(|scope| {
        for ms in [0, 1, 2, 3, 5, 8, 13, 21] {
            // Named, so that a failure inside the helper (a daemon that died) says which moment.
            let moment = std::thread::Builder::new().name(format!("SIGHUP at {ms} ms into main"));
            moment
                .spawn_scoped(scope, move || {
                    let mut daemon = start_and_signal(Duration::from_millis(ms), libc::SIGHUP);
                    // A daemon that dies instead fails here, with its exit status and stderr.
                    let addr = daemon.addr();
                    assert!(
                        std::net::TcpStream::connect(addr).is_ok(),
                        "SIGHUP at {ms} ms: not serving:\n{}",
                        daemon.log()
                    );
                    send(daemon.id(), libc::SIGTERM);
                    let status = daemon.wait_exit(Duration::from_secs(5));
                    assert_eq!(
                        status.code(),
                        Some(0),
                        "SIGHUP at {ms} ms:\n{}",
                        daemon.log()
                    );
                })
                .unwrap();
        }
    });
}

/// A SIGTERM during the start exits cleanly (0), not by the signal's default action.
#[test]
fn a_sigterm_during_start_exits_cleanly() {
    std::thread::scope(|scope| {
        for ms in [0, 2, 8] {
            scope.spawn(move || {
                let mut daemon = start_and_signal(Duration::from_millis(ms), libc::SIGTERM);
                let status = daemon.wait_exit(Duration::from_secs(5));
                assert_eq!(
                    status.code(),
                    Some(0),
                    "SIGTERM at {ms} ms: {status}\n{}",
                    daemon.log()
                );
            });
        }
    });
}

/// The TCP ports `pid` listens on now: its socket descriptors matched against the kernel's
/// table of listening sockets (state `0A`).
fn listening_ports(pid: u32) -> Vec<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: std::collections::HashSet<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for row in text.lines().skip(1) {
            let cols: Vec<&str> = row.split_whitespace().collect();
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                let port = cols[1].rsplit_once(':').map(|(_, p)| p);
                ports.extend(port.and_then(|p| u16::from_str_radix(p, 16).ok()));
            }
        }
    }
    ports
}

/// Row 4 under systemd: `systemctl reload` right after `systemctl restart`. A SIGHUP between
/// `exec` and `main` (the dynamic loader, the runtime's set-up) cannot be blocked by the process
/// and kills it; with `Type=notify` systemd runs no `ExecReload=` until the exporter says
/// `READY=1`, which it says once its signals are handled and it serves.
#[test]
fn under_systemd_ready_is_notified_once_signals_are_handled_and_it_serves() {
    use std::os::unix::net::UnixDatagram;
    let dir = temp_dir();
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut daemon = Process::spawn(
        Command::new(BIN)
            .arg("--demo")
            .env("NOTIFY_SOCKET", &socket_path),
    );
    let mut buf = [0u8; 256];
    let got = socket.recv(&mut buf);
    // What systemd would see at that moment: the signals are caught, and the process listens on
    // the port it then names in its serving line (where connections queue until accepted).
    let caught = in_main(daemon.id());
    let listening = listening_ports(daemon.id());
    let port = daemon.port();
    let serving = listening.contains(&port) && std::net::TcpStream::connect(daemon.addr()).is_ok();
    send(daemon.id(), libc::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
    let n = got.expect("no sd_notify message within PATIENCE");
    let message = String::from_utf8_lossy(&buf[..n]);
    assert!(
        message.lines().any(|l| l == "READY=1"),
        "notified {message:?}"
    );
    assert!(
        caught && serving,
        "READY=1 before the signals were handled ({caught}) or before serving ({serving}: \
         port {port}, listening then on {listening:?})"
    );
    assert_eq!(status.code(), Some(0));
}
