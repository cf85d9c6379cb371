//! Polling one (account, query type) pair: every page, with retries, into one complete list.
//!
//! A poll either returns the whole list or fails: a fault on page 3 of 5 returns an error and
//! nothing of pages 1 and 2, so the store keeps the previous complete list. A list that moved
//! while it was read (see [`Incomplete`]) is read again, and fails the poll with
//! `incomplete_list` when it keeps moving.
//!
//! Once page 1 has given `TotalPage`/`TotalNum`, the other pages are asked for concurrently: each
//! waits for its permit in the budget (which paces them, fairly with the account's other
//! pollers) and the answers are assembled in page order.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::task::JoinSet;

use crate::config::RetryPolicy;
use crate::domain::{Listing, Package, QueryType, TrafficBillMode};
use crate::tencent::client::{ApiError, LiveClient};
use crate::tencent::models::{InvalidField, PageAnswer};

/// The most pages one poll reads: 1,000 pages of 100 is 100,000 packages. A `TotalPage` beyond it
/// (or a server that never sends a short page) fails the poll instead of looping forever.
pub const MAX_PAGES: u32 = 1_000;

/// Where pages come from: the real client, or a fake in tests.
pub trait PageSource: Send + Sync + 'static {
    /// Asks for page `page_num` (from 1) of `query`, `page_size` entries a page (10..=100, as the
    /// API allows); the API error on failure. Called concurrently for the pages after the first.
    fn fetch_page(
        &self,
        query: QueryType,
        page_num: u32,
        page_size: u32,
    ) -> impl Future<Output = Result<PageAnswer, ApiError>> + Send;
}

impl PageSource for LiveClient {
    fn fetch_page(
        &self,
        query: QueryType,
        page_num: u32,
        page_size: u32,
    ) -> impl Future<Output = Result<PageAnswer, ApiError>> + Send {
        self.describe_page(query, page_num, page_size)
    }
}

/// A complete, successful poll.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PollOutcome {
    /// One entry per package id, in the order the API listed them.
    pub packages: Vec<Package>,
    /// `PackageBillMode` of page 1; `None` when it was null, missing or invalid.
    pub bill_mode: Option<i64>,
    /// `FluxPackageBillMode` of page 1 (traffic queries only).
    pub traffic_bill_modes: Vec<TrafficBillMode>,
    /// Pages read in the last (complete) read.
    pub pages: u32,
    /// Calls made, retries and re-reads included.
    pub calls: u32,
    /// Unusable fields of every page of the last read, each counted and skipped, never fatal.
    pub invalid_fields: Vec<InvalidField>,
    /// Times the list was read again before it came complete.
    pub rereads: u32,
}

impl PollOutcome {
    /// The list itself, without the poll's counts: what the store keeps.
    pub fn into_listing(self) -> Listing {
        Listing {
            packages: self.packages,
            bill_mode: self.bill_mode,
            traffic_bill_modes: self.traffic_bill_modes,
        }
    }
}

/// Why a read of the list was incomplete: the list moved while it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incomplete {
    /// `TotalPage` or `TotalNum` of a later page differ from page 1's.
    TotalsChanged,
    /// An id came twice (the list shifted back between pages).
    DuplicateIds,
    /// The entries read differ from `TotalNum`, or a page before the last came short.
    CountMismatch,
    /// A page came empty while the totals promised more.
    EmptyPage,
}

impl Incomplete {
    /// The `reason` label of `tencent_live_exporter_list_rereads_total`.
    pub fn label(self) -> &'static str {
        match self {
            Incomplete::TotalsChanged => "totals_changed",
            Incomplete::DuplicateIds => "duplicate_ids",
            Incomplete::CountMismatch => "count_mismatch",
            Incomplete::EmptyPage => "empty_page",
        }
    }
}

impl fmt::Display for Incomplete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Incomplete::TotalsChanged => "the totals changed between pages",
            Incomplete::DuplicateIds => "a package id came twice",
            Incomplete::CountMismatch => "the packages read differ from TotalNum",
            Incomplete::EmptyPage => "a page came empty while the totals promised more",
        })
    }
}

/// Why a poll failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PollError {
    /// A page failed, after its retries: the poll is abandoned with every other page.
    #[error("page {page}: {error}")]
    Api {
        /// The page (from 1) whose call failed; 0 when a page's task itself ended (a panic).
        page: u32,
        /// The last try's error; its `code()` becomes the pair's `last_error`.
        error: ApiError,
    },
    /// Every read of the list moved under it: [`MAX_REREADS`] re-reads were not enough.
    #[error(
        "the list was incomplete {reads} times in a row (last: {reason}); keeping the previous one"
    )]
    Incomplete {
        /// Reads made, the first included (`MAX_REREADS + 1`).
        reads: u32,
        /// Why the last read was incomplete.
        reason: Incomplete,
    },
    /// The list claims (or, without totals, goes on for) more than [`MAX_PAGES`] pages.
    #[error(
        "more than {MAX_PAGES} pages; refusing to read on (TotalPage {total_page:?}, TotalNum {total_num:?})"
    )]
    PageCap {
        /// `TotalPage` of the answer that crossed the cap (page 1's when totals were given).
        total_page: Option<u64>,
        /// `TotalNum` of that answer.
        total_num: Option<u64>,
    },
}

impl PollError {
    /// The underlying API error code, for logs and the status page.
    pub fn code(&self) -> String {
        match self {
            PollError::Api { error, .. } => error.code(),
            PollError::PageCap { .. } => "page_cap".into(),
            PollError::Incomplete { .. } => "incomplete_list".into(),
        }
    }
}

/// How often a poll reads the list again from page 1 when a read was incomplete.
pub const MAX_REREADS: u32 = 2;

/// Reads every page of one query type.
///
/// Paging: `PageNum` and `PageSize` are always sent. When page 1 gives `TotalPage` or `TotalNum`,
/// the pages up to the larger of `TotalPage` and `TotalNum / PageSize` (rounded up) are asked for
/// concurrently. When both are null, pages are read one after another until a short or empty
/// page.
///
/// A read is complete when no id came twice and, with totals given, every page before the last
/// the totals imply came full, no page came empty while they promised more, the totals stayed
/// those of page 1 (a null is no evidence) and the entries read equal `TotalNum`. When both are
/// given and disagree, `TotalNum` rules: a `TotalPage` one too high (or 1 for an empty list)
/// only costs a call for an empty page. An incomplete read is reported to `on_reread` and read
/// again from page 1, up to [`MAX_REREADS`] times; then the poll fails with
/// [`PollError::Incomplete`], so the previous complete list stays.
pub async fn poll_pair<S: PageSource>(
    source: Arc<S>,
    query: QueryType,
    page_size: u32,
    retry: RetryPolicy,
    on_reread: &(dyn Fn(Incomplete) + Send + Sync),
) -> Result<PollOutcome, PollError> {
    let calls = Arc::new(AtomicU32::new(0));
    let mut rereads = 0;
    loop {
        let read = read_pages(&source, query, page_size, retry, &calls).await?;
        match read {
            Ok(mut outcome) => {
                outcome.calls = calls.load(Ordering::Relaxed);
                outcome.rereads = rereads;
                return Ok(outcome);
            }
            Err(reason) if rereads >= MAX_REREADS => {
                return Err(PollError::Incomplete {
                    reads: rereads + 1,
                    reason,
                });
            }
            Err(reason) => {
                rereads += 1;
                on_reread(reason);
            }
        }
    }
}

/// One read of every page: the list, or why it was incomplete.
async fn read_pages<S: PageSource>(
    source: &Arc<S>,
    query: QueryType,
    page_size: u32,
    retry: RetryPolicy,
    calls: &Arc<AtomicU32>,
) -> Result<Result<PollOutcome, Incomplete>, PollError> {
    let first = fetch_with_retries(&**source, query, 1, page_size, retry, calls)
        .await
        .map_err(|error| PollError::Api { page: 1, error })?;
    let (total_page, total_num) = (first.total_page, first.total_num);
    let size = u64::from(page_size.max(1));
    let pages = match (total_page, total_num) {
        (None, None) => {
            return read_sequentially(source, query, page_size, retry, calls, first).await;
        }
        (p, n) => p.unwrap_or(0).max(n.map_or(0, |n| n.div_ceil(size))),
    };
    if pages > u64::from(MAX_PAGES) {
        return Err(PollError::PageCap {
            total_page,
            total_num,
        });
    }
    let pages = pages.max(1) as u32;
    // Pages come back in any order; the map puts them back in page order.
    let mut answers = std::collections::BTreeMap::from([(1, first)]);
    let mut tasks = JoinSet::new();
    for page in 2..=pages {
        let (source, calls) = (source.clone(), calls.clone());
        tasks.spawn(async move {
            let answer = fetch_with_retries(&*source, query, page, page_size, retry, &calls).await;
            (page, answer)
        });
    }
    // Dropping the set (on the first failure) abandons the other pages.
    while let Some(joined) = tasks.join_next().await {
        let (page, answer) = match joined {
            Ok(done) => done,
            Err(e) => {
                return Err(PollError::Api {
                    page: 0,
                    error: ApiError::Connect(format!("page task ended: {e}")),
                });
            }
        };
        let answer = answer.map_err(|error| PollError::Api { page, error })?;
        answers.insert(page, answer);
    }
    let answers: Vec<PageAnswer> = answers.into_values().collect();
    Ok(assemble(answers, page_size, total_page, total_num))
}

/// Assembles the pages of a read with totals, in order, checking that the list is complete.
fn assemble(
    answers: Vec<PageAnswer>,
    page_size: u32,
    total_page: Option<u64>,
    total_num: Option<u64>,
) -> Result<PollOutcome, Incomplete> {
    let pages = answers.len();
    let mut outcome = PollOutcome {
        pages: pages as u32,
        ..PollOutcome::default()
    };
    let mut seen = HashSet::new();
    let mut listed = 0u64;
    let mut trouble = None;
    // The pages the totals say exist; every one before the last of them must come full.
    let full_pages = total_num
        .map(|n| n.div_ceil(u64::from(page_size.max(1))))
        .or(total_page)
        .unwrap_or(0);
    for (i, answer) in answers.into_iter().enumerate() {
        let last = i + 1 == pages;
        if i == 0 {
            outcome.bill_mode = answer.bill_mode;
            outcome.traffic_bill_modes = answer.traffic_bill_modes;
        } else if changed(
            (total_page, total_num),
            (answer.total_page, answer.total_num),
        ) {
            trouble.get_or_insert(Incomplete::TotalsChanged);
        }
        // `TotalNum`, when given, is what completeness is measured against: a `TotalPage` that
        // disagrees with it (one page too many, or 1 for an empty list) proves no shift. Only
        // without `TotalNum` does `TotalPage` say how many pages must come full.
        let promised_more = match total_num {
            Some(n) => n > listed,
            None => total_page.is_some_and(|p| p > i as u64),
        };
        let must_be_full = (i as u64 + 1) < full_pages;
        if answer.listed == 0 && promised_more {
            trouble.get_or_insert(Incomplete::EmptyPage);
        } else if !last && must_be_full && answer.listed < page_size as usize {
            trouble.get_or_insert(Incomplete::CountMismatch);
        }
        listed += answer.listed as u64;
        outcome.invalid_fields.extend(answer.invalid_fields);
        for p in answer.packages {
            if seen.insert(p.id.clone()) {
                outcome.packages.push(p);
            } else {
                trouble.get_or_insert(Incomplete::DuplicateIds);
            }
        }
    }
    if total_num.is_some_and(|n| n != listed) {
        trouble.get_or_insert(Incomplete::CountMismatch);
    }
    match trouble {
        Some(reason) => Err(reason),
        None => Ok(outcome),
    }
}

/// With both totals null: page after page until a short or empty one.
async fn read_sequentially<S: PageSource>(
    source: &Arc<S>,
    query: QueryType,
    page_size: u32,
    retry: RetryPolicy,
    calls: &Arc<AtomicU32>,
    first: PageAnswer,
) -> Result<Result<PollOutcome, Incomplete>, PollError> {
    let mut outcome = PollOutcome::default();
    let mut seen = HashSet::new();
    let mut duplicate = false;
    let mut page = 1u32;
    let mut answer = first;
    outcome.bill_mode = answer.bill_mode;
    outcome.traffic_bill_modes = std::mem::take(&mut answer.traffic_bill_modes);
    loop {
        outcome.pages = page;
        outcome
            .invalid_fields
            .extend(std::mem::take(&mut answer.invalid_fields));
        for p in std::mem::take(&mut answer.packages) {
            if seen.insert(p.id.clone()) {
                outcome.packages.push(p);
            } else {
                duplicate = true;
            }
        }
        if answer.listed < page_size as usize {
            return Ok(if duplicate {
                Err(Incomplete::DuplicateIds)
            } else {
                Ok(outcome)
            });
        }
        if page >= MAX_PAGES {
            return Err(PollError::PageCap {
                total_page: answer.total_page,
                total_num: answer.total_num,
            });
        }
        page += 1;
        answer = fetch_with_retries(&**source, query, page, page_size, retry, calls)
            .await
            .map_err(|error| PollError::Api { page, error })?;
    }
}

/// Whether the totals of a later page contradict the first page's (a null is no evidence).
fn changed(first: (Option<u64>, Option<u64>), now: (Option<u64>, Option<u64>)) -> bool {
    let differs = |a: Option<u64>, b: Option<u64>| matches!((a, b), (Some(a), Some(b)) if a != b);
    differs(first.0, now.0) || differs(first.1, now.1)
}

async fn fetch_with_retries<S: PageSource>(
    source: &S,
    query: QueryType,
    page: u32,
    page_size: u32,
    retry: RetryPolicy,
    calls: &AtomicU32,
) -> Result<PageAnswer, ApiError> {
    let mut attempt = 0;
    loop {
        calls.fetch_add(1, Ordering::Relaxed);
        match source.fetch_page(query, page, page_size).await {
            Ok(answer) => return Ok(answer),
            Err(e) if e.is_retryable() && attempt < retry.max_retries => {
                let wait = retry.backoff(attempt);
                tracing::debug!(%query, page, attempt, error = %e, ?wait, "retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
