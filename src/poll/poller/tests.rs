//! Unit tests of `poller`.

use super::*;
use crate::domain::{PackageKind, Status, Unit};
use std::sync::Mutex;
use std::time::Duration;

/// One poll of `s` as most tests want it: traffic, PageSize 10, no retries, re-reads ignored.
async fn read_traffic(s: &Arc<Script>) -> Result<PollOutcome, PollError> {
    poll_pair(
        s.clone(),
        QueryType::Traffic,
        10,
        RetryPolicy::NONE,
        &|_| {},
    )
    .await
}

/// A scripted source: answers page N from `pages[N-1]`, records every call.
struct Script {
    pages: Vec<Result<PageAnswer, ApiError>>,
    calls: Mutex<Vec<(u32, u32)>>,
    fail_first: Mutex<u32>,
}

impl Script {
    fn new(pages: Vec<Result<PageAnswer, ApiError>>) -> Arc<Self> {
        Arc::new(Script {
            pages,
            calls: Mutex::new(Vec::new()),
            fail_first: Mutex::new(0),
        })
    }
    /// Calls made, sorted by page (pages after the first go concurrently).
    fn calls(&self) -> Vec<(u32, u32)> {
        let mut calls = self.calls.lock().unwrap().clone();
        calls.sort();
        calls
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
        full("a", Some(3), Some(21)),
        full("b", Some(3), Some(21)),
        page(&["c"], Some(3), Some(21)),
    ]);
    let out = read_traffic(&s).await.unwrap();
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
    let out = read_traffic(&s).await.unwrap();
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
    let out = read_traffic(&s).await.unwrap();
    assert_eq!(s.calls().len(), 3);
    assert_eq!(out.packages.len(), 22);
}

#[tokio::test]
async fn with_both_totals_null_stops_at_an_empty_page() {
    let s = Script::new(vec![full("a", None, None), full("b", None, None)]);
    let out = read_traffic(&s).await.unwrap();
    assert_eq!(s.calls().len(), 3, "the third, empty page ends it");
    assert_eq!(out.packages.len(), 20);
}

#[tokio::test]
async fn an_empty_page_while_the_totals_promise_more_is_read_again_then_fails() {
    let s = Script::new(vec![full("a", Some(5), None)]);
    let reasons = Mutex::new(Vec::new());
    let err = poll_pair(s.clone(), QueryType::Traffic, 10, RetryPolicy::NONE, &|r| {
        reasons.lock().unwrap().push(r)
    })
    .await
    .unwrap_err();
    assert_eq!(
        err,
        PollError::Incomplete {
            reads: 3,
            reason: Incomplete::EmptyPage
        }
    );
    assert_eq!(err.code(), "incomplete_list");
    assert_eq!(s.calls().len(), 15, "three reads of five pages");
    assert_eq!(*reasons.lock().unwrap(), [Incomplete::EmptyPage; 2]);
}

#[tokio::test]
async fn an_empty_list_with_total_num_nine_is_incomplete() {
    let s = Script::new(vec![page(&[], Some(1), Some(9))]);
    let err = read_traffic(&s).await.unwrap_err();
    assert_eq!(
        err,
        PollError::Incomplete {
            reads: 3,
            reason: Incomplete::EmptyPage
        }
    );
    // An empty list that says so is complete.
    let s = Script::new(vec![page(&[], Some(0), Some(0))]);
    let out = read_traffic(&s).await.unwrap();
    assert!(out.packages.is_empty());
}

/// `TotalPage` and `TotalNum` disagree (TotalPage one too many, as an API that computes it
/// as `TotalNum / PageSize + 1` would give): the ids read equal `TotalNum`, so the list is
/// complete, and the extra page coming empty or the one before it short proves no shift.
#[tokio::test]
async fn total_num_met_is_complete_whatever_total_page_says() {
    let s = Script::new(vec![
        full("a", Some(3), Some(20)),
        full("b", Some(3), Some(20)),
    ]);
    let out = read_traffic(&s).await.unwrap();
    assert_eq!(out.packages.len(), 20);
    assert_eq!(s.calls().len(), 3, "the third page, empty, was read");
    let s = Script::new(vec![
        full("a", Some(3), Some(15)),
        page(&["b1", "b2", "b3", "b4", "b5"], Some(3), Some(15)),
    ]);
    let out = read_traffic(&s).await.unwrap();
    assert_eq!(out.packages.len(), 15);
    // No packages of this type: TotalNum 0 with TotalPage 1 is an empty list, not a shift.
    let s = Script::new(vec![page(&[], Some(1), Some(0))]);
    let out = read_traffic(&s).await.unwrap();
    assert!(out.packages.is_empty());
    // TotalNum still rules the other way: one short of it is incomplete.
    let s = Script::new(vec![
        full("a", Some(3), Some(21)),
        full("b", Some(3), Some(21)),
    ]);
    assert!(matches!(
        read_traffic(&s).await,
        Err(PollError::Incomplete { .. })
    ));
}

#[tokio::test]
async fn fewer_packages_than_total_num_is_incomplete() {
    let s = Script::new(vec![
        full("a", Some(3), Some(25)),
        full("b", Some(3), Some(25)),
        page(&["c1", "c2", "c3", "c4"], Some(3), Some(25)),
    ]);
    let err = read_traffic(&s).await.unwrap_err();
    assert!(
        matches!(
            err,
            PollError::Incomplete {
                reason: Incomplete::CountMismatch,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_endless_list_hits_the_page_cap() {
    // Every page full and no totals: without the cap this would never end.
    let pages = (0..MAX_PAGES + 5)
        .map(|i| full(&format!("p{i}-"), None, None))
        .collect();
    let s = Script::new(pages);
    let err = read_traffic(&s).await.unwrap_err();
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
        poll_pair(
            huge.clone(),
            QueryType::Traffic,
            10,
            RetryPolicy::NONE,
            &|_| {}
        )
        .await,
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
    let err = read_traffic(&s).await.unwrap_err();
    assert_eq!(
        err,
        PollError::Api {
            page: 2,
            error: ApiError::Http(500)
        }
    );
    assert_eq!(err.code(), "http_500");
}

/// A 20-package list whose page 2 repeats the last id of page 1 and skips the list's last
/// id (totals unchanged) for the first `bad_reads` reads.
struct Shifting {
    bad_reads: u32,
    reads: Mutex<u32>,
}

impl PageSource for Shifting {
    async fn fetch_page(
        &self,
        _q: QueryType,
        page: u32,
        _size: u32,
    ) -> Result<PageAnswer, ApiError> {
        let ids: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
        let read = {
            let mut reads = self.reads.lock().unwrap();
            if page == 1 {
                *reads += 1;
            }
            *reads
        };
        let range = match (page, read <= self.bad_reads) {
            (1, _) => 0..10,
            (_, true) => 9..19,
            (_, false) => 10..20,
        };
        let ids: Vec<&str> = ids[range].iter().map(String::as_str).collect();
        page_of(&ids, Some(2), Some(20))
    }
}

fn page_of(
    ids: &[&str],
    total_page: Option<u64>,
    total_num: Option<u64>,
) -> Result<PageAnswer, ApiError> {
    page(ids, total_page, total_num)
}

#[tokio::test]
async fn a_list_that_shifts_without_changing_its_totals_is_read_again() {
    let once = Arc::new(Shifting {
        bad_reads: 1,
        reads: Mutex::new(0),
    });
    let reasons = Mutex::new(Vec::new());
    let out = poll_pair(once, QueryType::Traffic, 10, RetryPolicy::NONE, &|r| {
        reasons.lock().unwrap().push(r)
    })
    .await
    .unwrap();
    assert_eq!(out.packages.len(), 20);
    assert_eq!(out.rereads, 1);
    assert_eq!(out.calls, 4);
    assert_eq!(*reasons.lock().unwrap(), [Incomplete::DuplicateIds]);

    let always = Arc::new(Shifting {
        bad_reads: u32::MAX,
        reads: Mutex::new(0),
    });
    let err = poll_pair(always, QueryType::Traffic, 10, RetryPolicy::NONE, &|_| {})
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PollError::Incomplete {
            reads: 3,
            reason: Incomplete::DuplicateIds
        }
    );
}

/// Answers every page after `rtt`, logging when each call started.
struct Slow {
    rtt: Duration,
    pages: u64,
    started: Mutex<Vec<tokio::time::Instant>>,
}

impl PageSource for Slow {
    async fn fetch_page(
        &self,
        _q: QueryType,
        page: u32,
        _size: u32,
    ) -> Result<PageAnswer, ApiError> {
        self.started
            .lock()
            .unwrap()
            .push(tokio::time::Instant::now());
        tokio::time::sleep(self.rtt).await;
        let ids: Vec<String> = (0..10).map(|i| format!("p{page}-{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        page_of(&ids, Some(self.pages), Some(self.pages * 10))
    }
}

#[tokio::test(start_paused = true)]
async fn pages_after_the_first_are_asked_for_concurrently_and_assembled_in_order() {
    let slow = Arc::new(Slow {
        rtt: Duration::from_millis(150),
        pages: 30,
        started: Mutex::new(Vec::new()),
    });
    let start = tokio::time::Instant::now();
    let out = poll_pair(
        slow.clone(),
        QueryType::Traffic,
        10,
        RetryPolicy::NONE,
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(300),
        "page 1, then the other 29 together"
    );
    assert_eq!(out.packages.len(), 300);
    assert_eq!(out.pages, 30);
    let ids: Vec<String> = (1..=30)
        .flat_map(|p| (0..10).map(move |i| format!("p{p}-{i}")))
        .collect();
    let got: Vec<&str> = out.packages.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
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
    let out = poll_pair(s.clone(), QueryType::Traffic, 10, retry, &|_| {})
        .await
        .unwrap();
    assert_eq!(out.calls, 3);
    let s = Script::new(vec![page(&["a"], Some(1), None)]);
    *s.fail_first.lock().unwrap() = 3;
    assert!(
        poll_pair(s.clone(), QueryType::Traffic, 10, retry, &|_| {})
            .await
            .is_err()
    );
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
