//! The status page in a real headless browser (Debian's chromium): it renders, shows the demo's
//! pools in deduction order, and a screenshot is taken (set `TLE_STATUS_SCREENSHOT` to keep it; the
//! README's `docs/status-page.png` is the same shot of `--demo` after two bills, at 1280x2200).

use std::process::Command;
use std::time::Duration;

use crate::support::{BIN, PATIENCE, Process, run, tool};

/// Chromium as the environment's notes say it runs here: headless, no sandbox (root), and no
/// background networking (this machine has no network).
fn chromium(browser: &std::path::Path, profile: &std::path::Path) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// A plain HTTP/1.1 GET over loopback: the whole answer, or `None` while nothing listens.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
#[cfg_attr(missing_chromium, ignore = "needs chromium: apt-get install chromium")]
fn the_status_page_renders_the_demo_packages_in_chromium() {
    let browser = tool("chromium");
    // A real-length demo day: no bill (which would exhaust demo-flux-low) during the test.
    let mut daemon = Process::spawn(Command::new(BIN).args(["--demo", "--demo.day=1d"]));
    let port = daemon.port();
    // Wait (bounded) until the first poll of every demo pair is on the page: the pairs' first
    // polls are spread, so one pair on the page says nothing of the others.
    let started = std::time::Instant::now();
    loop {
        let polled = http_get(port, "/").is_some_and(|page| {
            ["demo-flux-low", "demo-transcode-new", "demo-mic"]
                .iter()
                .all(|id| page.contains(id))
        });
        if polled {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the demo never showed its packages; the exporter's stderr:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let dir = std::env::temp_dir().join(format!("tle-chromium-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    // The DOM and the screenshot come from two browsers (profiles of their own) at once.
    let shot = dir.join("status-page.png");
    let ((ok, dom), (shot_ok, shot_out)) = std::thread::scope(|scope| {
        let dom = scope.spawn(|| {
            run(chromium(&browser, &dir.join("profile-dom"))
                .arg("--dump-dom")
                .arg(&url))
        });
        let screenshot = run(chromium(&browser, &dir.join("profile-shot"))
            .arg(format!("--screenshot={}", shot.display()))
            .arg("--window-size=1280,1500")
            .arg(&url));
        (dom.join().unwrap(), screenshot)
    });
    assert!(ok, "chromium --dump-dom failed:\n{dom}");
    for expected in [
        "<h1>Tencent Live Exporter</h1>",
        "demo-flux-low",
        "demo-transcode-new",
        "demo-mic",
        "281975",
        "<span class=\"up\">up</span>",
        "<h2>Pools</h2>",
        "<h3>demo · top_speed_codec</h3>",
        "1 · drawn from now",
        "Estimate from this exporter's own polls since it started",
    ] {
        assert!(
            dom.contains(expected),
            "rendered page lacks {expected:?}:\n{dom}"
        );
    }
    // The traffic pool in Tencent's deduction order: the package expiring first comes first.
    let low = dom.find("<td>demo-flux-low</td>").unwrap();
    let main = dom.find("<td>demo-flux-main</td>").unwrap();
    assert!(low < main, "deduction order");

    assert!(shot_ok, "chromium --screenshot failed:\n{shot_out}");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real screenshot, {} bytes",
        png.len()
    );
    if let Ok(dest) = std::env::var("TLE_STATUS_SCREENSHOT") {
        std::fs::copy(&shot, dest).unwrap();
    }
    drop(daemon);
}
