//! The exposition: what `/metrics` serves. Packages as the API reported them become series text
//! (`packages.rs`), the store keeps each account's last answer and publishes the encoded, and
//! pre-compressed, exposition when something changed (`store.rs`), and the exporter's own
//! metrics (scrape counts, API errors, build info) come from `metrics.rs`. Every byte of the
//! text format, the exporter's own metrics included, is written by `text.rs`.

pub mod metrics;
pub mod packages;
pub mod store;
mod text;
