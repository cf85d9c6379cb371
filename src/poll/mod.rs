//! Polling Tencent: when each (account, query type) pair is asked (the scheduler), how one pair's
//! packages are fetched and paged (the poller). The request budget every call draws from is the
//! client's (`crate::tencent::budget`).
//!
//! - `scheduler.rs`: one task per pair on its own interval, first polls spread, never two polls
//!   of a pair at once; the staleness sweeper.
//! - `poller.rs`: one poll of one pair: every page, retries with backoff, into one complete list
//!   for the store, or an error.

pub mod poller;
pub mod scheduler;
