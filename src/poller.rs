//! Polling one (account, query type) pair: every page, with retries, into one complete list.
//!
//! A poll either returns the whole list or fails: a fault on page 3 of 5 returns an error and
//! nothing of pages 1 and 2, so the store keeps the previous complete list.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use crate::packages::{Package, QueryType, TrafficBillMode};
use crate::tencent::client::{ApiError, LiveClient};
use crate::tencent::models::{InvalidField, PageAnswer};

/// The most pages one poll reads: 1,000 pages of 100 is 100,000 packages. A `TotalPage` beyond it
/// (or a server that never sends a short page) fails the poll instead of looping forever.
pub const MAX_PAGES: u32 = 1_000;

/// Where pages come from: the real client, or a fake in tests.
pub trait PageSource {
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

/// Retries of transient faults: exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Extra tries after the first, per page.
    pub max_retries: u32,
    /// Backoff cap before jitter for the first retry; doubles per retry.
    pub backoff_base: Duration,
    /// Upper bound of any one backoff.
    pub backoff_max: Duration,
}

impl RetryPolicy {
    pub const NONE: RetryPolicy = RetryPolicy {
        max_retries: 0,
        backoff_base: Duration::ZERO,
        backoff_max: Duration::ZERO,
    };

    /// Full jitter: uniformly random in [0, min(max, base * 2^attempt)].
    pub fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .backoff_base
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.backoff_max);
        cap.mul_f64(fastrand::f64())
    }
}

/// A complete, successful poll.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PollOutcome {
    /// One entry per package id, in the order the API listed them.
    pub packages: Vec<Package>,
    pub bill_mode: Option<i64>,
    pub traffic_bill_modes: Vec<TrafficBillMode>,
    /// Pages read.
    pub pages: u32,
    /// Calls made, retries included.
    pub calls: u32,
    pub invalid_fields: Vec<InvalidField>,
    /// Ids seen again on a later page (pages shift while being read); kept once.
    pub duplicates: usize,
}

/// Why a poll failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PollError {
    #[error("page {page}: {error}")]
    Api { page: u32, error: ApiError },
    #[error("the list changed while being read, {reads} times in a row; keeping the previous one")]
    ListChanging { reads: u32 },
    #[error(
        "more than {MAX_PAGES} pages; refusing to read on (TotalPage {total_page:?}, TotalNum {total_num:?})"
    )]
    PageCap {
        total_page: Option<u64>,
        total_num: Option<u64>,
    },
}

impl PollError {
    /// The underlying API error code, for logs and the status page.
    pub fn code(&self) -> String {
        match self {
            PollError::Api { error, .. } => error.code(),
            PollError::PageCap { .. } => "page_cap".into(),
            PollError::ListChanging { .. } => "list_changing".into(),
        }
    }
}

/// How often a poll reads the list again from page 1 when it shifted while being read.
pub const MAX_REREADS: u32 = 2;

/// Reads every page of one query type.
///
/// Paging: `PageNum` and `PageSize` are always sent. Read on while `TotalPage` says there is more;
/// if it is null, while `TotalNum` says so; if both are null, while pages come back full. An empty
/// page always ends the list.
///
/// A list that shifts while it is read (its totals change between pages, as when a package is
/// bought or removed mid-read) is read again from page 1, up to [`MAX_REREADS`] times; a list
/// still shifting after that fails the poll, so the previous complete list stays. An id that
/// comes twice is kept once.
pub async fn poll_pair<S: PageSource>(
    source: &S,
    query: QueryType,
    page_size: u32,
    retry: RetryPolicy,
) -> Result<PollOutcome, PollError> {
    let mut calls = 0;
    let mut rereads = 0;
    loop {
        let (mut outcome, shifted) =
            read_pages(source, query, page_size, retry, &mut calls).await?;
        outcome.calls = calls;
        if !shifted {
            return Ok(outcome);
        }
        if rereads >= MAX_REREADS {
            return Err(PollError::ListChanging { reads: rereads + 1 });
        }
        rereads += 1;
        tracing::debug!(%query, rereads, "the list shifted while being read; reading it again");
    }
}

/// One pass over the pages; `true` when the list visibly shifted during the pass.
async fn read_pages<S: PageSource>(
    source: &S,
    query: QueryType,
    page_size: u32,
    retry: RetryPolicy,
    calls: &mut u32,
) -> Result<(PollOutcome, bool), PollError> {
    let mut outcome = PollOutcome::default();
    let mut seen = HashSet::new();
    let mut first_totals = None;
    let mut shifted = false;
    let mut page = 1u32;
    loop {
        let answer = fetch_with_retries(source, query, page, page_size, retry, calls)
            .await
            .map_err(|error| PollError::Api { page, error })?;
        outcome.pages = page;
        let totals = (answer.total_page, answer.total_num);
        match first_totals {
            None => {
                first_totals = Some(totals);
                outcome.bill_mode = answer.bill_mode;
                outcome.traffic_bill_modes = answer.traffic_bill_modes;
            }
            Some(first) => shifted |= changed(first, totals),
        }
        outcome.invalid_fields.extend(answer.invalid_fields);
        for p in answer.packages {
            if seen.insert(p.id.clone()) {
                outcome.packages.push(p);
            } else {
                outcome.duplicates += 1;
            }
        }
        let read = u64::from(page) * u64::from(page_size);
        let more = if answer.listed == 0 {
            false
        } else if let Some(total_page) = answer.total_page {
            u64::from(page) < total_page
        } else if let Some(total_num) = answer.total_num {
            read < total_num
        } else {
            answer.listed >= page_size as usize
        };
        if !more {
            return Ok((outcome, shifted));
        }
        if page >= MAX_PAGES {
            return Err(PollError::PageCap {
                total_page: answer.total_page,
                total_num: answer.total_num,
            });
        }
        page += 1;
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
    calls: &mut u32,
) -> Result<PageAnswer, ApiError> {
    let mut attempt = 0;
    loop {
        *calls += 1;
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
mod tests {
    use super::*;
    use crate::packages::{PackageKind, Status, Unit};
    use std::sync::Mutex;

    /// A scripted source: answers page N from `pages[N-1]`, records every call.
    struct Script {
        pages: Vec<Result<PageAnswer, ApiError>>,
        calls: Mutex<Vec<(u32, u32)>>,
        fail_first: Mutex<u32>,
    }

    impl Script {
        fn new(pages: Vec<Result<PageAnswer, ApiError>>) -> Self {
            Script {
                pages,
                calls: Mutex::new(Vec::new()),
                fail_first: Mutex::new(0),
            }
        }
        fn calls(&self) -> Vec<(u32, u32)> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl PageSource for Script {
        async fn fetch_page(
            &self,
            _q: QueryType,
            page: u32,
            size: u32,
        ) -> Result<PageAnswer, ApiError> {
            self.calls.lock().unwrap().push((page, size));
            {
                let mut f = self.fail_first.lock().unwrap();
                if *f > 0 {
                    *f -= 1;
                    return Err(ApiError::Http(502));
                }
            }
            self.pages
                .get(page as usize - 1)
                .cloned()
                .unwrap_or_else(|| Ok(PageAnswer::default()))
        }
    }

    fn pkg(id: &str) -> Package {
        Package {
            id: id.into(),
            kind: PackageKind::Traffic,
            status: Status::InUse,
            unit: Unit::Bytes,
            quota: Some(1),
            used: None,
            remaining: None,
            expires_at: None,
            purchased_at: None,
            auto_renew: None,
            renewal_result: None,
        }
    }

    fn page(
        ids: &[&str],
        total_page: Option<u64>,
        total_num: Option<u64>,
    ) -> Result<PageAnswer, ApiError> {
        Ok(PageAnswer {
            packages: ids.iter().map(|i| pkg(i)).collect(),
            listed: ids.len(),
            total_page,
            total_num,
            ..PageAnswer::default()
        })
    }

    fn ids(n: usize, prefix: &str) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    fn full(
        prefix: &str,
        total_page: Option<u64>,
        total_num: Option<u64>,
    ) -> Result<PageAnswer, ApiError> {
        let v = ids(10, prefix);
        page(
            &v.iter().map(String::as_str).collect::<Vec<_>>(),
            total_page,
            total_num,
        )
    }

    #[tokio::test]
    async fn follows_total_page_and_always_sends_page_num_and_size() {
        let s = Script::new(vec![
            full("a", Some(3), Some(25)),
            full("b", Some(3), Some(25)),
            page(&["c"], Some(3), Some(25)),
        ]);
        let out = poll_pair(&s, QueryType::Traffic, 10, RetryPolicy::NONE)
            .await
            .unwrap();
        assert_eq!(s.calls(), [(1, 10), (2, 10), (3, 10)]);
        assert_eq!(out.packages.len(), 21);
        assert_eq!(out.pages, 3);
    }

    #[tokio::test]
    async fn falls_back_to_total_num_when_total_page_is_null() {
        let s = Script::new(vec![
            full("a", None, Some(20)),
            full("b", None, Some(20)),
            full("c", None, Some(20)),
        ]);
        let out = poll_pair(&s, QueryType::Traffic, 10, RetryPolicy::NONE)
            .await
            .unwrap();
        assert_eq!(s.calls().len(), 2, "TotalNum 20 at 10 a page is two pages");
        assert_eq!(out.packages.len(), 20);
    }

    #[tokio::test]
    async fn with_both_totals_null_stops_at_a_short_page() {
        let s = Script::new(vec![
            full("a", None, None),
            full("b", None, None),
            page(&["c1", "c2"], None, None),
        ]);
        let out = poll_pair(&s, QueryType::Traffic, 10, RetryPolicy::NONE)
            .await
            .unwrap();
        assert_eq!(s.calls().len(), 3);
        assert_eq!(out.packages.len(), 22);
    }

    #[tokio::test]
    async fn with_both_totals_null_stops_at_an_empty_page() {
        let s = Script::new(vec![full("a", None, None), full("b", None, None)]);
        let out = poll_pair(&s, QueryType::Traffic, 10, RetryPolicy::NONE)
            .await
            .unwrap();
        assert_eq!(s.calls().len(), 3, "the third, empty page ends it");
        assert_eq!(out.packages.len(), 20);
    }

    #[tokio::test]
    async fn an_empty_page_ends_the_list_even_if_total_page_says_more() {
        let s = Script::new(vec![full("a", Some(5), None)]);
        let out = poll_pair(&s, QueryType::Traffic, 10, RetryPolicy::NONE)
            .await
            .unwrap();
        assert_eq!(s.calls().len(), 2);
        assert_eq!(out.packages.len(), 10);
    }

    #[tokio::test]
    async fn an_endless_list_hits_the_page_cap() {
        // Every page full and no totals: without the cap this would never end.
        let pages = (0..MAX_PAGES + 5)
            .map(|i| full(&format!("p{i}-"), None, None))
            .collect();
        let s = Script::new(pages);
        let err = poll_pair(&s, QueryType::Traffic, 10, RetryPolicy::NONE)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            PollError::PageCap {
                total_page: None,
                total_num: None
            }
        );
        assert_eq!(s.calls().len(), MAX_PAGES as usize);
        let huge = Script::new(
            (0..MAX_PAGES + 5)
                .map(|i| full(&format!("q{i}-"), Some(u64::MAX), None))
                .collect(),
        );
        assert!(matches!(
            poll_pair(&huge, QueryType::Traffic, 10, RetryPolicy::NONE).await,
            Err(PollError::PageCap { .. })
        ));
    }

    #[tokio::test]
    async fn a_failing_page_fails_the_whole_poll() {
        let s = Script::new(vec![
            full("a", Some(3), None),
            Err(ApiError::Http(500)),
            full("c", Some(3), None),
        ]);
        let err = poll_pair(&s, QueryType::Traffic, 10, RetryPolicy::NONE)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            PollError::Api {
                page: 2,
                error: ApiError::Http(500)
            }
        );
        assert_eq!(err.code(), "http_500");
    }

    #[tokio::test]
    async fn duplicate_ids_across_pages_are_kept_once() {
        let s = Script::new(vec![
            page(&["a", "b"], Some(2), None),
            page(&["b", "c"], Some(2), None),
        ]);
        let out = poll_pair(&s, QueryType::Traffic, 10, RetryPolicy::NONE)
            .await
            .unwrap();
        let got: Vec<&str> = out.packages.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(got, ["a", "b", "c"]);
        assert_eq!(out.duplicates, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_within_the_policy() {
        let retry = RetryPolicy {
            max_retries: 2,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
        };
        let s = Script::new(vec![page(&["a"], Some(1), None)]);
        *s.fail_first.lock().unwrap() = 2;
        let out = poll_pair(&s, QueryType::Traffic, 10, retry).await.unwrap();
        assert_eq!(out.calls, 3);
        let s = Script::new(vec![page(&["a"], Some(1), None)]);
        *s.fail_first.lock().unwrap() = 3;
        assert!(poll_pair(&s, QueryType::Traffic, 10, retry).await.is_err());
        assert_eq!(s.calls().len(), 3);
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let r = RetryPolicy {
            max_retries: 9,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
        };
        for attempt in 0..40 {
            let cap =
                Duration::from_millis(100 * (1u64 << attempt.min(20))).min(Duration::from_secs(2));
            assert!(r.backoff(attempt) <= cap);
        }
    }
}
