//! The exposition: what `/metrics` serves. `packages.rs` is the domain (a package, its kind,
//! status and units, as the API reported them, independent of JSON and Prometheus);
//! `bills.rs` the daily bills the exporter saw itself (rises of `Used` between polls);
//! `deduction.rs` is Tencent's deduction order (which usable package a bill draws from first);
//! `metrics.rs` turns each (account, query type) pair's packages into series text and owns the
//! exporter's own metrics (API calls and errors, invalid fields, reloads, build info);
//! `store.rs` keeps each pair's last complete result and publishes the encoded, and
//! pre-compressed, exposition when something changed.
//! Every byte of the text format, the exporter's own metrics included, is written by `text.rs`.

pub mod bills;
pub mod deduction;
pub mod metrics;
pub mod packages;
pub mod store;
mod text;
