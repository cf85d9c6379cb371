//! tencent-live-exporter: Tencent Cloud Live prepaid packages as Prometheus metrics.
//! See ARCHITECTURE.md for the map.

pub mod app;
pub mod budget;
pub mod cli;
pub mod config;
pub mod demo;
pub mod metrics;
pub mod packages;
pub mod poller;
pub mod scheduler;
pub mod server;
pub mod simulator;
pub mod status_page;
pub mod store;
pub mod tencent;
pub mod web;

/// The git revision this binary was built from (`build.rs`), or `unknown`.
pub const REVISION: &str = match option_env!("TLE_GIT_REVISION") {
    Some(r) => r,
    None => "unknown",
};
