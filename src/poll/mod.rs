//! Polling Tencent: when each account is asked (the scheduler), how one account's packages are
//! fetched and paged (the poller), and how many requests each signing key may send (the request
//! budget, the API's 20 requests/second limit).
//!
//! - `scheduler.rs`: one task per account, intervals with jitter, backoff after failures.
//! - `poller.rs`: one poll of one account: every package type, every page, into the store.
//! - `budget.rs`: the per-signing-key request budget every poll draws from.

pub mod budget;
pub mod poller;
pub mod scheduler;
