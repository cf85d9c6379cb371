//! The stack's processes: a guard that kills (and reaps) every child on drop, also on panic, and
//! removes the scratch directory; each child started on a port it chooses itself
//! (`127.0.0.1:0`) and read back from its log, so no other process can take the port between
//! the choice and the bind; and a relay, a loopback listener this test holds from the start,
//! that forwards each connection to the exporter once it is up (Prometheus' configuration must
//! name the target before the exporter is started).

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::{TcpListener, TcpStream};

use crate::support::address_in;

/// Bound on a child's start, up to the line that reports its address: Prometheus opens its
/// storage, the exporter starts its demo simulator first, on a loaded machine.
const START_PATIENCE: Duration = Duration::from_secs(30);
/// How often a starting child's log is read again (a local file).
const START_ROUND: Duration = Duration::from_millis(10);

/// Children killed (and reaped) on drop, and the scratch directory removed.
pub(crate) struct Processes {
    pub(crate) dir: PathBuf,
    children: Vec<(&'static str, Child)>,
}

impl Processes {
    /// A guard over a new scratch directory, with no child yet.
    pub(crate) fn new() -> Processes {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("tle-alerting-e2e-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Processes {
            dir,
            children: Vec::new(),
        }
    }

    /// The last 40 lines of `name`'s log (stdout and stderr).
    pub(crate) fn log(&self, name: &str) -> String {
        let text = self.full_log(name);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn full_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Starts `cmd` as `name`, its stdout and stderr in `name.log`.
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

    /// Waits (bounded) for the first line of `name`'s log that holds `marker`, and returns the
    /// `address=` of that line: the address the child bound. Panics if the child exits first.
    pub(crate) async fn bound_address(&mut self, name: &str, marker: &str) -> SocketAddr {
        let since = Instant::now();
        loop {
            self.assert_running();
            let log = self.full_log(name);
            if let Some(line) = log.lines().find(|l| l.contains(marker)) {
                return address_in(line).unwrap_or_else(|| {
                    panic!("{name} logs no address=HOST:PORT where expected: {line}")
                });
            }
            assert!(
                since.elapsed() < START_PATIENCE,
                "{name} did not log {marker:?} within {START_PATIENCE:?}:\n{}",
                self.log(name)
            );
            tokio::time::sleep(START_ROUND).await;
        }
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

/// A loopback listener held by the test for its whole run, whose connections are forwarded to
/// an upstream set later (closed while there is none): a target address that Prometheus can be
/// configured with before the process behind it has chosen its port.
pub(crate) struct Relay {
    /// Where the relay listens.
    pub(crate) address: SocketAddr,
    upstream: Arc<OnceLock<SocketAddr>>,
}

impl Relay {
    /// Binds the relay and serves it on the test's runtime (it stops with the runtime).
    pub(crate) async fn start() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let address = listener.local_addr().expect("relay address");
        let upstream = Arc::new(OnceLock::<SocketAddr>::new());
        let to = upstream.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Some(&to) = to.get() else {
                    continue; // dropped: the scrape fails as it would on a closed port
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { address, upstream }
    }

    /// Forwards every later connection to `to`.
    pub(crate) fn forward_to(&self, to: SocketAddr) {
        self.upstream
            .set(to)
            .expect("the relay's upstream is set once");
    }
}
