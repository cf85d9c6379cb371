//! The exposition: what `/metrics` serves. The packages it encodes are the domain's
//! ([`crate::domain`]); `deduction.rs` is Tencent's deduction order (which usable package a bill
//! draws from first, and the usable quota ahead of each); `bills.rs` the daily bills the exporter
//! saw itself (rises of `Used` between polls);
//! `metrics.rs` turns each (account, query type) pair's packages into series text (the
//! exporter's own metrics are [`crate::telemetry`]'s);
//! `store.rs` keeps each pair's last complete result and publishes the encoded, and
//! pre-compressed, exposition when something changed.
//! Every byte of the text format, the exporter's own metrics included, is written by `text.rs`.

pub mod bills;
pub mod deduction;
pub mod metrics;
pub mod store;
mod text;
