//! tencent-live-exporter: Tencent Cloud Live prepaid packages as Prometheus metrics.
//! See ARCHITECTURE.md for the map.
//!
//! No code path reachable from input may panic: outside tests, `unwrap`, `expect`, indexing and
//! `panic!` are refused by clippy; the few that remain carry an `#[allow]` with the proof.
//! Every public item has a doc comment: `missing_docs` warns, and CI's clippy (`-D warnings`)
//! makes a missing one an error.
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
// `--demo` runs the Live API simulator (the `tencent-live-simulator` crate): default feature `demo`.
#[cfg(feature = "demo")]
pub mod demo;
pub mod domain;
pub mod exposition;
pub mod http;
pub mod logging;
pub mod poll;
pub mod telemetry;
pub mod tencent;

/// The git revision this binary was built from (`build.rs`: 12 hex digits), or `unknown`.
pub const REVISION: &str = env!("TLE_GIT_REVISION");
/// The git branch this binary was built from (`HEAD` when detached), or `unknown`.
pub const BRANCH: &str = env!("TLE_GIT_BRANCH");
/// When this binary was built, RFC 3339 UTC (`SOURCE_DATE_EPOCH` when set), or `unknown`.
pub const BUILD_DATE: &str = env!("TLE_BUILD_DATE");
/// The compiler's `rustc --version` line, e.g. `rustc 1.85.0 (4d91de4e4 2025-02-17)`.
pub const RUSTC_VERSION: &str = env!("TLE_RUSTC_VERSION");

/// The compiler's version number alone (`1.85.0`), the `rustversion` label of
/// `tencent_live_exporter_build_info` (Go exporters' `goversion`).
pub fn rustc_version_number() -> &'static str {
    RUSTC_VERSION
        .strip_prefix("rustc ")
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or(RUSTC_VERSION)
}

/// What `--version` prints, in the layout of Go exporters (prometheus/common/version):
///
/// ```text
/// tencent-live-exporter, version 0.1.0 (branch: main, revision: 0123456789ab)
///   build date:       2026-01-01T00:00:00Z
///   rustc version:    rustc 1.85.0 (4d91de4e4 2025-02-17)
///   platform:         linux/x86_64
/// ```
pub fn version_text() -> String {
    format!(
        "tencent-live-exporter, version {} (branch: {BRANCH}, revision: {REVISION})\n  \
         build date:       {BUILD_DATE}\n  \
         rustc version:    {RUSTC_VERSION}\n  \
         platform:         {}/{}\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_facts_are_filled_in_by_build_rs() {
        // Built from a git checkout (a clone or a worktree, whose .git is a file), the revision
        // and branch are known.
        if std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".git")
            .exists()
        {
            assert!(
                REVISION.len() == 12 && REVISION.bytes().all(|b| b.is_ascii_hexdigit()),
                "{REVISION}"
            );
            assert!(!BRANCH.is_empty() && BRANCH != "unknown", "{BRANCH}");
        }
        time::OffsetDateTime::parse(BUILD_DATE, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{BUILD_DATE}: {e}"));
        assert!(RUSTC_VERSION.starts_with("rustc 1."), "{RUSTC_VERSION}");
        let number = rustc_version_number();
        assert!(
            number.split('.').count() == 3 && !number.contains(' '),
            "{number}"
        );
        let text = version_text();
        for fact in [
            REVISION,
            BRANCH,
            BUILD_DATE,
            RUSTC_VERSION,
            env!("CARGO_PKG_VERSION"),
        ] {
            assert!(text.contains(fact), "{fact} not in {text}");
        }
        assert!(
            text.starts_with("tencent-live-exporter, version "),
            "{text}"
        );
    }
}
