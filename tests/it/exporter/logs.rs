//! The daemon's logs as a user reads them: an API that answers a hostile error `Message`
//! (a multi-line CAM text, a forged log line, terminal escapes, NUL) leaves one log line per
//! event with no raw control byte, in `--log.format` text, logfmt and json.

use super::*;
use tencent_live_simulator::Fault;

const BIN: &str = env!("CARGO_BIN_EXE_tencent-live-exporter");

/// What an attacker-controlled gateway (or a genuine multi-line CAM message) could answer.
const HOSTILE: &str = "you are not authorized to perform operation (live:DescribeLivePackageInfo)\n\
resource (qcs::live::uin/100000000001:*) has no permission\r\n\
2026-12-04T23:00:00.000Z ERROR forged: all accounts deleted\u{1b}[2J\u{1b}]0;pwned\u{7}\0\u{9b}31m";

/// Runs `--once --log.format <format>` against a simulator whose every answer is the hostile
/// error, and gives the process's stderr.
async fn stderr_of_once(format: &str) -> String {
    let sim = Simulator::new();
    sim.add_account("AKIDhostile", "hostile-key");
    sim.set_persistent_fault(
        "AKIDhostile",
        Some(Fault::ApiErrorMessage {
            code: "UnauthorizedOperation".into(),
            message: HOSTILE.into(),
        }),
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(listener, shutdown.clone()));
    let dir = std::env::temp_dir().join(format!("tle-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join(format!("hostile-{format}.toml"));
    let toml = crate::support::config_toml(
        &[("victim", "AKIDhostile", "hostile-key")],
        &endpoint,
        "max_retries = 0",
    );
    std::fs::write(&config, toml).unwrap();
    let format = format.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["--once", "--log.level", "info", "--log.format", &format])
            .arg("--config.file")
            .arg(&config)
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    shutdown.cancel();
    assert_eq!(out.status.code(), Some(1), "every poll failed: exit 1");
    String::from_utf8(out.stderr).unwrap()
}

/// Each line of `stderr` starts as a log line of `format` does and holds no control byte.
fn assert_lines_are_genuine(format: &str, stderr: &str) {
    assert!(!stderr.is_empty());
    assert!(stderr.ends_with('\n'), "{stderr:?}");
    for line in stderr.lines() {
        for c in line.chars() {
            assert!(
                !c.is_control(),
                "{format}: raw {c:?} in a log line: {line:?}"
            );
        }
        let genuine = match format {
            "logfmt" => line.starts_with("time=20"),
            "json" => serde_json::from_str::<Value>(line).is_ok(),
            // The text format: an RFC 3339 timestamp, then the level.
            _ => line.starts_with("20") && line.as_bytes().get(10) == Some(&b'T'),
        };
        assert!(genuine, "{format}: a line that is no log line: {line:?}");
        assert!(
            !line.starts_with("2026-12-04T23:00:00.000Z ERROR"),
            "{format}: forged line: {line:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_api_error_message_stays_one_escaped_log_line_in_every_format() {
    // The three runs are independent (a simulator and a config file each) and each spends most
    // of its second or two in the daemon's start hold: run them together.
    let formats = ["text", "logfmt", "json"];
    let (text, logfmt, json) = tokio::join!(
        stderr_of_once(formats[0]),
        stderr_of_once(formats[1]),
        stderr_of_once(formats[2])
    );
    for (format, stderr) in formats.into_iter().zip([text, logfmt, json]) {
        assert_lines_are_genuine(format, &stderr);
        // The message is there to read, escaped: its line break as `\n`, the forged line
        // after it, inside the one line that reports the failure.
        let report = stderr
            .lines()
            .find(|l| l.contains("UnauthorizedOperation"))
            .unwrap_or_else(|| panic!("{format}: no line names the API error:\n{stderr}"));
        assert!(
            report.contains(r"\n2026-12-04T23:00:00.000Z ERROR forged: all accounts deleted"),
            "{format}: {report}"
        );
        if format == "logfmt" {
            assert!(report.contains(" level=WARN "), "{report}");
            assert!(report.contains(r"\x1b[2J"), "{report}");
            assert!(report.contains(r"\x00"), "{report}");
        }
        if format == "json" {
            // JSON keeps the exact text: a collector decodes the same message.
            let v: Value = serde_json::from_str(report).unwrap();
            assert!(v.to_string().contains("forged"), "{v}");
            let decoded = v["fields"]
                .as_object()
                .unwrap()
                .values()
                .filter_map(Value::as_str)
                .any(|s| s.contains(HOSTILE));
            assert!(
                decoded,
                "the JSON line does not decode to the message: {report}"
            );
        }
    }
}

/// The error that stops the start (a file the TOML parser refuses, quoted with an excerpt of the
/// file: a line of its own that reads like a log line) is itself a log line in logfmt and json:
/// one event, at level ERROR, that a log collector parses like every other line.
#[test]
fn a_refused_start_is_one_error_log_line_in_logfmt_and_json() {
    let dir = std::env::temp_dir().join(format!("tle-it-refused-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("refused.toml");
    std::fs::write(
        &config,
        "[poll\n2026-12-04T23:00:00.000Z ERROR forged: all accounts deleted\n",
    )
    .unwrap();
    for format in ["logfmt", "json"] {
        let out = Command::new(BIN)
            .args(["--log.format", format, "--config.file"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{format}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_lines_are_genuine(format, &stderr);
        assert_eq!(stderr.lines().count(), 1, "{format}: {stderr}");
        let level = match format {
            "logfmt" => " level=ERROR ",
            _ => "\"level\":\"ERROR\"",
        };
        assert!(
            stderr.contains(level) && stderr.contains("TOML parse error"),
            "{format}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
