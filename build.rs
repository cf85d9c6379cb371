//! Build facts for `--version` and `tencent_live_exporter_build_info`, and the test tools that
//! are missing on this machine.
//!
//! Environment given to the crate (each can be set from outside, e.g. by a Docker build without
//! `.git`; empty or unknown values become `unknown`):
//! - `TLE_GIT_REVISION`: `git rev-parse --short=12 HEAD`
//! - `TLE_GIT_BRANCH`: `git rev-parse --abbrev-ref HEAD` (`HEAD` when detached)
//! - `TLE_BUILD_DATE`: RFC 3339 UTC; from `SOURCE_DATE_EPOCH` (reproducible builds) or now
//! - `TLE_RUSTC_VERSION`: the first line of `$RUSTC --version`
//!
//! Test tools: for each tool an integration test needs (promtool, prometheus, alertmanager,
//! amtool, chromium, kubectl, jsonnet) that is not on `PATH`, the cfg `missing_<tool>` is set, so the test
//! is reported as *ignored* with the package to install
//! (`#[cfg_attr(missing_promtool, ignore = "...")]`). Under `CI=true` no such cfg is ever set: the test runs
//! and fails on the missing tool, so CI cannot pass by skipping.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The tools integration tests run, as `tests/it/support.rs` names them.
const TOOLS: [&str; 7] = [
    "promtool",
    "prometheus",
    "alertmanager",
    "amtool",
    "chromium",
    "kubectl",
    "jsonnet",
];

fn main() {
    for var in [
        "TLE_GIT_REVISION",
        "TLE_GIT_BRANCH",
        "SOURCE_DATE_EPOCH",
        "PATH",
        "CI",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");

    let revision = given("TLE_GIT_REVISION").or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    let branch = given("TLE_GIT_BRANCH").or_else(|| git(&["rev-parse", "--abbrev-ref", "HEAD"]));
    let rustc = std::env::var_os("RUSTC")
        .and_then(|rustc| Command::new(rustc).arg("--version").output().ok())
        .filter(|out| out.status.success())
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        });
    let epoch = given("SOURCE_DATE_EPOCH")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    for (name, value) in [
        ("TLE_GIT_REVISION", revision),
        ("TLE_GIT_BRANCH", branch),
        ("TLE_BUILD_DATE", Some(rfc3339(epoch))),
        ("TLE_RUSTC_VERSION", rustc),
    ] {
        let value = value.unwrap_or_else(|| "unknown".into());
        println!("cargo:rustc-env={name}={value}");
    }

    // A new commit or branch switch changes HEAD or the branch's ref (in a worktree both live
    // under the common git directory, which `git rev-parse --git-path` finds).
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &head_ref]));
    }
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watched.into_iter().flatten().map(PathBuf::from) {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }

    for tool in TOOLS {
        println!("cargo::rustc-check-cfg=cfg(missing_{tool})");
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for tool in TOOLS {
        // Debian installs Alertmanager as `prometheus-alertmanager` (as tests/it/support.rs knows).
        let names: &[&str] = match tool {
            "alertmanager" => &["alertmanager", "prometheus-alertmanager"],
            _ => &[tool],
        };
        let found = dirs
            .iter()
            .any(|d| names.iter().any(|n| is_executable(&d.join(n))));
        if !ci && !found {
            println!("cargo:rustc-cfg=missing_{tool}");
        }
    }
    // A tool installed later (same PATH) changes its directory: look again then.
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
}

/// A value set from outside, unless empty.
fn given(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC), by
/// Howard Hinnant's `civil_from_days`.
fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}
