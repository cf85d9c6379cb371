//! tencent-live-exporter: Tencent Cloud Live prepaid packages as Prometheus metrics.
//! See ARCHITECTURE.md for the map.
//!
//! No code path reachable from input may panic: outside tests, `unwrap`, `expect`, indexing and
//! `panic!` are refused by clippy; the few that remain carry an `#[allow]` with the proof.
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
// Issue 10 reworks this module; its two remaining spots are proven here. `expect`: the window is
// full and `per_second` is at least 1 (config validation), so it has a front. Indexing in `max_in_any_window`:
// `start <= end < len` by the loop bounds.
#[allow(clippy::expect_used, clippy::indexing_slicing)]
pub mod budget;
pub mod cli;
pub mod config;
pub mod demo;
// Issue 14 rewrites this module. Its `expect`s register constant, distinct metric definitions
// into a fresh registry (cannot fail; every unit test builds one) and encode into a `Vec`
// (infallible writer).
#[allow(clippy::expect_used)]
pub mod metrics;
pub mod packages;
pub mod poller;
pub mod scheduler;
pub mod server;
// The simulator stands in for Tencent in tests and `--demo`; it only ever hears from this
// exporter on loopback. Its indexes are the package types it validated itself (0..=2), its lock
// is never held across a panic.
#[allow(clippy::expect_used, clippy::indexing_slicing)]
pub mod simulator;
pub mod status_page;
// Issue 14 rewrites this module. Its `expect`s are lock acquisitions: a lock is poisoned only by a
// panic while held, and no critical section in this crate can panic (these lints); and
// compressing into a `Vec` (infallible writer).
#[allow(clippy::expect_used)]
pub mod store;
pub mod tencent;
pub mod web;

/// The git revision this binary was built from (`build.rs`), or `unknown`.
pub const REVISION: &str = match option_env!("TLE_GIT_REVISION") {
    Some(r) => r,
    None => "unknown",
};
