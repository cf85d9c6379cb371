//! The daemon as a process: --check-config, --once, signals (SIGTERM, SIGHUP).

use super::*;
use crate::support::{BIN, Process};

#[test]
fn check_config_redacts_secrets_and_names_faults() {
    let dir = std::env::temp_dir().join(format!("tle-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, "[[accounts]]\nname = \"p\"\nsecret_id = \"AKIDcheck\"\nsecret_key = \"hunter2-very-secret\"\n").unwrap();
    let (ok, out) = run(Command::new(BIN)
        .args(["--check-config", "--config.file"])
        .arg(&good));
    assert!(ok, "{out}");
    assert!(
        out.contains("AKIDcheck") && out.contains("[REDACTED]"),
        "{out}"
    );
    assert!(!out.contains("hunter2"), "secret printed:\n{out}");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[poll]\npage_size = 5\n[[accounts]]\nname = \"p\"\nsecret_id = \"a\"\nsecret_key = \"hunter2-very-secret\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["--check-config", "--config.file"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("poll.page_size"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn once_in_demo_mode_prints_the_exposition_and_exits_zero() {
    let out = Command::new(BIN)
        .args(["--demo", "--once", "--log.level", "error"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = Samples::parse(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        m.value(r#"tencent_live_up{account="demo",package_type="traffic"}"#),
        1.0
    );
    // Something of every Type, including the page's example package.
    for kind in ["traffic", "transcode", "top_speed_codec", "co_anchoring"] {
        assert!(
            m.0.keys()
                .any(|k| k.contains(&format!("package_type=\"{kind}\",package_id="))),
            "no {kind}"
        );
    }
    assert!(m.0.keys().any(|k| k.contains("package_id=\"281975\"")));
}

#[test]
fn sigterm_stops_the_daemon_gracefully_with_exit_code_zero() {
    let mut daemon = Process::spawn(Command::new(BIN).arg("--demo"));
    daemon.addrs();
    let (ok, out) = run(Command::new("kill").args(["-TERM", &daemon.id().to_string()]));
    assert!(ok, "{out}");
    let status = daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
}

/// Scrapes a running binary's /metrics with a bounded number of tries.
fn scrape_process(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Waits (bounded by PATIENCE) until the daemon's /metrics satisfies `ok`.
fn wait_for_metrics(daemon: &mut Process, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let port = daemon.port();
    let started = std::time::Instant::now();
    loop {
        if let Some(text) = scrape_process(port).filter(|t| ok(t)) {
            return text;
        }
        assert!(
            started.elapsed() < PATIENCE && daemon.try_wait().is_none(),
            "timed out waiting for {what}; the exporter's stderr:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_the_file_and_a_bad_file_keeps_the_running_configuration() {
    let dir = std::env::temp_dir().join(format!("tle-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.toml");
    std::fs::write(&file, "[poll]\npackage_types = [\"traffic\"]\n").unwrap();
    let mut daemon = Process::spawn(
        Command::new(BIN)
            .args(["--demo", "--config.file"])
            .arg(&file),
    );
    let pid = daemon.id().to_string();

    wait_for_metrics(&mut daemon, "the first traffic poll", |t| {
        t.contains(r#"tencent_live_up{account="demo",package_type="traffic"} 1"#)
    });
    std::fs::write(
        &file,
        "[poll]\npackage_types = [\"traffic\", \"co_anchoring\"]\n",
    )
    .unwrap();
    assert!(run(Command::new("kill").args(["-HUP", &pid])).0);
    let text = wait_for_metrics(&mut daemon, "co_anchoring after SIGHUP", |t| {
        t.contains(r#"tencent_live_up{account="demo",package_type="co_anchoring"} 1"#)
    });
    assert!(
        text.contains("tencent_live_exporter_config_last_reload_successful 1"),
        "{text}"
    );

    // Values that overflowed (and panicked the reload task, so SIGHUP never worked again) are
    // refused like any bad value; the daemon keeps running and the next good SIGHUP applies.
    std::fs::write(
        &file,
        "[poll]\ninterval = \"300000000000y\"\nmax_staleness = \"300000000000y\"\n",
    )
    .unwrap();
    assert!(run(Command::new("kill").args(["-HUP", &pid])).0);
    wait_for_metrics(&mut daemon, "the refused overflowing reload", |t| {
        t.contains("tencent_live_exporter_config_last_reload_successful 0")
            && t.contains(r#"tencent_live_up{account="demo",package_type="co_anchoring"} 1"#)
    });
    std::fs::write(
        &file,
        "[poll]\npackage_types = [\"traffic\", \"co_anchoring\", \"transcode\"]\n",
    )
    .unwrap();
    assert!(run(Command::new("kill").args(["-HUP", &pid])).0);
    wait_for_metrics(&mut daemon, "transcode after the next good SIGHUP", |t| {
        t.contains(r#"tencent_live_up{account="demo",package_type="transcode"} 1"#)
            && t.contains("tencent_live_exporter_config_last_reload_successful 1")
    });

    std::fs::write(&file, "[poll]\npage_size = 5000\n").unwrap();
    assert!(run(Command::new("kill").args(["-HUP", &pid])).0);
    let text = wait_for_metrics(&mut daemon, "the failed reload", |t| {
        t.contains("tencent_live_exporter_config_last_reload_successful 0")
    });
    assert!(
        text.contains(r#"tencent_live_up{account="demo",package_type="co_anchoring"} 1"#),
        "running configuration kept"
    );
    drop(daemon);
}

#[test]
fn once_stops_at_sigterm_without_waiting_for_its_poll() {
    // Each signal against a process of its own, side by side: each spends its first second in
    // the start hold before its poll goes out.
    std::thread::scope(|scope| {
        for signal in ["-TERM", "-INT"] {
            scope.spawn(move || once_stops_at(signal));
        }
    });
}

/// `--once` against an API endpoint that accepts connections and never answers (the poll would
/// wait out its 10-minute timeout), sent `signal` once its poll is in flight.
fn once_stops_at(signal: &str) {
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hang.local_addr().unwrap();
    hang.set_nonblocking(true).unwrap();
    let dir = std::env::temp_dir().join(format!("tle-once-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("config{signal}.toml"));
    std::fs::write(
        &file,
        format!(
            "[poll]\ntimeout = \"10m\"\nmax_retries = 0\npackage_types = [\"traffic\"]\n\
             [[accounts]]\nname = \"a\"\nsecret_id = \"i\"\nsecret_key = \"k\"\nendpoint = \"http://{addr}\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["--once", "--log.level", "error", "--config.file"])
        .arg(&file)
        .env("NO_PROXY", "*")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Waits (bounded) until the poll is in flight.
    let started = std::time::Instant::now();
    let held = loop {
        match hang.accept() {
            Ok((conn, _)) => break conn,
            Err(_) => {
                assert!(started.elapsed() < PATIENCE, "the poll never connected");
                assert!(child.try_wait().unwrap().is_none(), "exited early");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    assert!(run(Command::new("kill").args([signal, &child.id().to_string()])).0);
    let stopping = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(5),
            "--once did not stop within 5 s of {signal}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(held);
    // Not every poll succeeded: exit 1, and the exposition so far (with up 0) is printed.
    assert_eq!(status.code(), Some(1), "{signal}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(out.contains("tencent_live_exporter_build_info"), "{out}");
}
