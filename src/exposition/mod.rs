//! The exposition: what `/metrics` serves. The packages it encodes are the domain's
//! ([`crate::domain`]);
//! `metrics.rs` turns each (account, query type) pair's packages into series text and owns the
//! exporter's own metrics (API calls and errors, invalid fields, reloads, build info);
//! `store.rs` keeps each pair's last complete result and publishes the encoded, and
//! pre-compressed, exposition when something changed.
//! Every byte of the text format, the exporter's own metrics included, is written by `text.rs`.

pub mod metrics;
/// The domain types under their former path, for `http::status_page` until its rewrite lands.
pub use crate::domain as packages;
pub mod store;
mod text;
