//! The binary as an operator meets it, with the habits of Go exporters: `--version`, boolean
//! environment variables, `--check-config`'s credential report, plain logs off a terminal, and
//! several `--web.listen-address` flags.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::support::{BIN, PATIENCE, Process};

/// The binary with an empty environment (no keys, no profile, no TKE variables), a HOME of its
/// own, and `dir` for files.
fn bare(dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("HOME", dir)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c
}

fn scratch() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tle-operator-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_prints_revision_branch_build_date_and_rustc() {
    let dir = scratch();
    let out = bare(&dir).arg("--version").output().unwrap();
    assert!(out.status.success());
    let (stdout, _) = text(&out);
    assert_eq!(stdout, tencent_live_exporter::version_text());
    for fact in [
        "version 0.",
        "branch: ",
        "revision: ",
        "build date:",
        "rustc version:    rustc 1.",
    ] {
        assert!(stdout.contains(fact), "{fact} not in {stdout}");
    }
    assert!(!stdout.contains("unknown"), "{stdout}");
}

#[test]
fn demo_day_is_refused_without_demo_and_out_of_range_with_exit_2() {
    let dir = scratch();
    for (args, env, says) in [
        (
            &["--demo.day", "5s"][..],
            None,
            "only meaningful with --demo",
        ),
        (&[][..], Some("5s"), "only meaningful with --demo"),
        (&["--demo", "--demo.day=2d"][..], None, "outside 1s to 1day"),
        (
            &["--demo", "--check-config"][..],
            Some("0s"),
            "outside 1s to 1day",
        ),
    ] {
        let mut cmd = bare(&dir);
        cmd.args(args)
            .env("TENCENTCLOUD_SECRET_ID", "AKIDx")
            .env("TENCENTCLOUD_SECRET_KEY", "k");
        if let Some(day) = env {
            cmd.env("TLE_DEMO_DAY", day);
        }
        let out = cmd.output().unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains("--demo.day") && stderr.contains(says),
            "{args:?} {env:?}: {stderr}"
        );
    }
    // In range with --demo: accepted (checked without starting the daemon).
    let out = bare(&dir)
        .args(["--demo", "--demo.day=1s", "--check-config"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
}

#[test]
fn boolean_environment_variables_parse_like_go_exporters() {
    let dir = scratch();
    let run = |check: &str, demo: &str| {
        bare(&dir)
            .env("TENCENTCLOUD_SECRET_ID", "AKIDbool")
            .env("TENCENTCLOUD_SECRET_KEY", "k")
            .env("TLE_CHECK_CONFIG", check)
            .env("TLE_DEMO", demo)
            .output()
            .unwrap()
    };
    for (check, demo, demo_on) in [
        ("1", "0", false),
        ("true", "false", false),
        ("TRUE", "FALSE", false),
        ("yes", "no", false),
        ("Yes", "No", false),
        ("1", "1", true),
        ("True", "YES", true),
    ] {
        let out = run(check, demo);
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "TLE_CHECK_CONFIG={check} TLE_DEMO={demo}: {stderr}"
        );
        assert!(stdout.contains("[web]"), "{stdout}");
        // The demo replaces the accounts by its own, against a local simulator.
        assert_eq!(
            stdout.contains("name = \"demo\""),
            demo_on,
            "TLE_DEMO={demo}:\n{stdout}"
        );
    }
    let out = run("1", "maybe");
    assert_eq!(out.status.code(), Some(2));
    let (_, stderr) = text(&out);
    assert!(stderr.contains("maybe"), "{stderr}");
}

#[test]
fn check_config_reports_each_accounts_credential_source_and_exits_2_without_one() {
    let dir = scratch();
    // A closed port stands for a metadata service that is not there.
    let (_closed, closed) = crate::support::refused_address();
    let metadata = format!("http://{closed}");
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[poll]\ntimeout = \"2s\"\n\
             [[accounts]]\nname = \"keyless\"\nmetadata_endpoint = \"{metadata}\"\n\
             [[accounts]]\nname = \"fixed\"\nsecret_id = \"AKIDfixed\"\nsecret_key = \"hunter2-secret\"\n"
        ),
    )
    .unwrap();
    let out = bare(&dir)
        .arg("--check-config")
        .arg("--config.file")
        .arg(&file)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let line = |account: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("# account \"{account}\": ")))
            .unwrap_or_else(|| panic!("no report for {account}:\n{stdout}"))
            .to_owned()
    };
    let keyless = line("keyless");
    assert!(keyless.contains("NO KEYS"), "{keyless}");
    // Why: each link of the chain, the metadata service included.
    for why in ["TENCENTCLOUD_SECRET_ID", "cvm_role", "127.0.0.1"] {
        assert!(keyless.contains(why), "{why} not in {keyless}");
    }
    let fixed = line("fixed");
    assert!(
        fixed.contains("ok: static") && fixed.contains("AKIDfixed"),
        "{fixed}"
    );
    assert!(stderr.contains("\"keyless\""), "{stderr}");
    assert!(!format!("{stdout}{stderr}").contains("hunter2"));

    // With keys in the environment the chain finds them: exit 0, and the link is named.
    let out = bare(&dir)
        .env("TENCENTCLOUD_SECRET_ID", "AKIDenv")
        .env("TENCENTCLOUD_SECRET_KEY", "hunter2-env")
        .arg("--check-config")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "# account \"default\": ok: env (via chain), SecretId AKIDenv, long-term keys"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"));
}

#[test]
fn logs_off_a_terminal_carry_no_colour_codes() {
    let dir = scratch();
    let out = bare(&dir)
        .args(["--demo", "--once", "--log.level", "debug"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.lines().count() >= 2, "no log lines:\n{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "ANSI escape in piped logs:\n{stderr:?}"
    );
}

#[test]
fn every_repeated_listen_address_serves() {
    let dir = scratch();
    // Port 0 in both forms: each listener's port is read from its own serving line.
    let mut daemon = Process::spawn_on(
        bare(&dir).args(["--demo", "--log.level", "info", "--log.format", "json"]),
        &[":0", "localhost:0"],
    );
    // Both listeners are bound before the "serving" lines, one line each.
    let serving = daemon.addrs().to_vec();
    let get = |port: u16| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        write!(
            s,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    // `:port` is every interface; `localhost` resolves to the loopback address.
    let [every, localhost] = serving[..] else {
        panic!("{serving:?}")
    };
    assert!(every.ip().is_unspecified(), "{serving:?}");
    assert_eq!(localhost.ip().to_string(), "127.0.0.1", "{serving:?}");
    assert_ne!(every.port(), localhost.port());
    let (ra, rb) = (get(every.port()), get(localhost.port()));
    assert!(ra.starts_with("HTTP/1.1 200"), "{ra}");
    assert!(rb.starts_with("HTTP/1.1 200"), "{rb}");
    let log = daemon.log();
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{log}"
    );
}

#[test]
#[should_panic(expected = "no-such-tool is not on PATH: apt-get install (unknown")]
fn a_missing_tool_fails_the_test_naming_what_to_install() {
    crate::support::tool("no-such-tool");
}

#[test]
fn each_test_tool_names_its_debian_package() {
    use crate::support::package_of;
    for (tool, package) in [
        ("promtool", "prometheus"),
        ("prometheus", "prometheus"),
        ("amtool", "prometheus-alertmanager"),
        ("alertmanager", "prometheus-alertmanager"),
        ("chromium", "chromium"),
        ("kubectl", "kubernetes-client"),
    ] {
        assert_eq!(package_of(tool), package, "{tool}");
    }
}

/// The credential report is TOML comments too: a SecretId or an error text with control
/// characters (here a BEL in the environment's SecretId) must not break the output.
#[test]
fn check_config_credential_report_with_control_characters_is_valid_toml() {
    let dir = scratch();
    let out = bare(&dir)
        .env("TENCENTCLOUD_SECRET_ID", "AK\u{7}ID")
        .env("TENCENTCLOUD_SECRET_KEY", "hunter2-k")
        .arg("--check-config")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(
        stdout.contains("# account \"default\": ok: env (via chain), SecretId AK\\u{7}ID"),
        "{stdout}\n{stderr}"
    );
    let parsed: Result<toml::Table, _> = toml::from_str(&stdout);
    assert!(parsed.is_ok(), "{:?}\n{stdout}", parsed.err());
    assert!(!stdout.contains("hunter2"));
}
