//! Polling Tencent: when each (account, query type) pair is asked (the scheduler), how one pair's
//! packages are fetched and paged (the poller), and how many requests each signing key may send
//! (the request budget, within the API's 20 requests/second limit).
//!
//! - `scheduler.rs`: one task per pair on its own interval, first polls spread, never two polls
//!   of a pair at once; the staleness sweeper.
//! - `poller.rs`: one poll of one pair: every page, retries with backoff, into one complete list
//!   for the store, or an error.
//! - `budget.rs`: the per-signing-key request budget every call draws from.

pub mod budget;
pub mod poller;
pub mod scheduler;
