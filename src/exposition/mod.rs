//! The exposition: what `/metrics` serves. Packages as the API reported them become series text
//! (`packages.rs`), the store keeps each account's last answer and publishes the encoded, and
//! pre-compressed, exposition when something changed (`store.rs`), and the exporter's own
//! metrics (scrape counts, API errors, build info) come from `metrics.rs`.

// `expect`s register constant, distinct metric definitions into a fresh registry (cannot fail;
// every unit test builds one) and encode into a `Vec` (infallible writer).
#[allow(clippy::expect_used)]
pub mod metrics;
pub mod packages;
// `expect`s are lock acquisitions: a lock is poisoned only by a panic while held, and no
// critical section in this crate can panic (these lints); and compressing into a `Vec`
// (infallible writer).
#[allow(clippy::expect_used)]
pub mod store;
