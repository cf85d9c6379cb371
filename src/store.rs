//! The store: the last complete result of every (account, query type) pair, and the exposition
//! encoded from them.
//!
//! Pollers write here when a poll ends; `/metrics` only reads [`Store::exposition`], an
//! `Arc` of bytes encoded once per poll. A failed poll changes only its own pair.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::metrics::{ExporterMetrics, PairSeries, encode_with_hint};
use crate::packages::{Package, QueryType, TrafficBillMode};
use crate::poller::{PollError, PollOutcome};

/// What one pair shows: its latest poll's state and its last complete list.
#[derive(Debug, Clone, Default)]
pub struct PairState {
    pub up: bool,
    pub last_success_unix: Option<f64>,
    /// Monotonic time of the last success, for staleness.
    pub last_success_at: Option<Instant>,
    pub poll_duration_seconds: Option<f64>,
    pub bill_mode: Option<i64>,
    pub traffic_bill_modes: Vec<TrafficBillMode>,
    /// The last complete list; `None` before the first success.
    pub packages: Option<Arc<[Package]>>,
    /// The latest failure, `None` after a success: the status page shows it, and comparing it
    /// with the next one decides whether a failure is worth a log line.
    pub last_error: Option<String>,
    /// The latest failure in words (code, message, RequestId), for a person on the status page.
    /// Errors never carry secrets.
    pub last_error_detail: Option<String>,
    /// Polls attempted, successful or not.
    pub polls: u64,
}

/// The encoded `/metrics` answer, plain and gzip-compressed, both made once per poll.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub text: Bytes,
    /// `text` gzip-compressed, for clients that accept it (Prometheus does).
    pub gzip: Bytes,
}

impl Exposition {
    pub fn new(text: Vec<u8>) -> Self {
        let gzip = gzip(&text);
        Exposition {
            text: text.into(),
            gzip: gzip.into(),
        }
    }
}

/// Fast compression: the text is highly repetitive, so level 1 already shrinks it ~10x, at a
/// fraction of the default level's CPU.
fn gzip(text: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 8 + 64),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(text)
        .and_then(|()| encoder.finish())
        .expect("compressing into memory cannot fail")
}

pub type PairKey = (String, QueryType);

pub struct Store {
    pairs: Mutex<BTreeMap<PairKey, PairState>>,
    /// Swapped whole when a poll ends; a scrape clones the `Arc` and nothing else.
    exposition: RwLock<Arc<Exposition>>,
    metrics: Arc<ExporterMetrics>,
    /// Package series of a pair with no success for this long are dropped (a reload may change it).
    max_staleness: Mutex<Duration>,
    /// Counts finished polls, so callers can wait for the next one.
    polls_done: watch::Sender<u64>,
    /// Counts encodings, so the staleness sweeper re-plans after any change.
    published: watch::Sender<u64>,
}

/// Whether a recorded failure changed the pair's state (first failure, or a different code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    Changed,
}

impl Store {
    pub fn new(metrics: Arc<ExporterMetrics>, max_staleness: Duration) -> Self {
        let store = Store {
            pairs: Mutex::new(BTreeMap::new()),
            exposition: RwLock::new(Arc::new(Exposition::default())),
            metrics,
            max_staleness: Mutex::new(max_staleness),
            polls_done: watch::Sender::new(0),
            published: watch::Sender::new(0),
        };
        store.publish();
        store
    }

    pub fn metrics(&self) -> &Arc<ExporterMetrics> {
        &self.metrics
    }

    /// Records a complete poll: the pair's list is replaced whole.
    pub fn record_success(
        &self,
        account: &str,
        query: QueryType,
        outcome: PollOutcome,
        took: Duration,
    ) -> Transition {
        let transition = {
            let mut pairs = self.pairs.lock().expect("store lock");
            let pair = pairs.entry((account.to_owned(), query)).or_default();
            let transition = if pair.up || pair.polls == 0 {
                Transition::Unchanged
            } else {
                Transition::Changed
            };
            pair.up = true;
            pair.last_success_unix = Some(unix_now());
            pair.last_success_at = Some(Instant::now());
            pair.poll_duration_seconds = Some(took.as_secs_f64());
            pair.bill_mode = outcome.bill_mode;
            pair.traffic_bill_modes = outcome.traffic_bill_modes;
            pair.packages = Some(outcome.packages.into());
            pair.last_error = None;
            pair.last_error_detail = None;
            pair.polls += 1;
            self.publish_locked(&pairs);
            transition
        };
        self.finish_poll();
        transition
    }

    /// Records a failed poll: `up` goes to 0, the last complete list stays.
    pub fn record_failure(
        &self,
        account: &str,
        query: QueryType,
        error: &PollError,
        took: Duration,
    ) -> Transition {
        let transition = {
            let mut pairs = self.pairs.lock().expect("store lock");
            let pair = pairs.entry((account.to_owned(), query)).or_default();
            let code = error.code();
            let transition =
                if pair.polls > 0 && !pair.up && pair.last_error.as_deref() == Some(&code) {
                    Transition::Unchanged
                } else {
                    Transition::Changed
                };
            pair.up = false;
            pair.poll_duration_seconds = Some(took.as_secs_f64());
            pair.last_error = Some(code);
            pair.last_error_detail = Some(error.to_string());
            pair.polls += 1;
            self.publish_locked(&pairs);
            transition
        };
        self.finish_poll();
        transition
    }

    /// Forgets every pair not in `keep` (accounts or query types removed by a reload).
    pub fn retain_pairs(&self, keep: &std::collections::HashSet<PairKey>) {
        self.pairs
            .lock()
            .expect("store lock")
            .retain(|k, _| keep.contains(k));
        self.publish();
    }

    pub fn set_max_staleness(&self, max_staleness: Duration) {
        *self.max_staleness.lock().expect("store lock") = max_staleness;
        self.publish();
    }

    /// When the next pair's package series turn stale, if any pair still shows some.
    pub fn next_stale_deadline(&self) -> Option<Instant> {
        let max = *self.max_staleness.lock().expect("store lock");
        let now = Instant::now();
        self.pairs
            .lock()
            .expect("store lock")
            .values()
            .filter(|p| p.packages.is_some())
            .filter_map(|p| p.last_success_at)
            .map(|t| t + max + Duration::from_millis(1))
            .filter(|d| *d > now)
            .min()
    }

    /// Encodings so far; `changed()` wakes after the next one.
    pub fn subscribe_published(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    fn finish_poll(&self) {
        self.polls_done.send_modify(|n| *n += 1);
    }

    /// Re-encodes the exposition from the current state.
    pub fn publish(&self) {
        let pairs = self.pairs.lock().expect("store lock");
        self.publish_locked(&pairs);
    }

    /// Encodes and swaps in the exposition while the caller holds the pairs lock, so that anyone
    /// who sees a pair's new state (its poll count) also sees it in the exposition.
    fn publish_locked(&self, pairs: &BTreeMap<PairKey, PairState>) {
        let now = Instant::now();
        let max_staleness = *self.max_staleness.lock().expect("store lock");
        let series: Vec<PairSeries<'_>> = pairs
            .iter()
            .map(|((account, query), p)| {
                let fresh = p
                    .last_success_at
                    .is_some_and(|t| now.duration_since(t) <= max_staleness);
                PairSeries {
                    account,
                    query: *query,
                    up: p.up,
                    last_success_unix: p.last_success_unix,
                    poll_duration_seconds: p.poll_duration_seconds,
                    bill_mode: p.bill_mode.filter(|_| fresh),
                    traffic_bill_modes: if fresh { &p.traffic_bill_modes } else { &[] },
                    packages: p.packages.as_deref().filter(|_| fresh),
                }
            })
            .collect();
        let hint = self.exposition.read().expect("exposition lock").text.len();
        let text = encode_with_hint(&series, &self.metrics, hint);
        *self.exposition.write().expect("exposition lock") = Arc::new(Exposition::new(text));
        self.published.send_modify(|n| *n += 1);
    }

    /// The answer of `/metrics`: no encoding, no lock held while it is sent.
    pub fn exposition(&self) -> Arc<Exposition> {
        self.exposition.read().expect("exposition lock").clone()
    }

    /// A copy of every pair's state (for the status page and `--once`).
    pub fn pairs(&self) -> BTreeMap<PairKey, PairState> {
        self.pairs.lock().expect("store lock").clone()
    }

    /// Finished polls so far; `changed()` wakes when another one ends.
    pub fn subscribe_polls(&self) -> watch::Receiver<u64> {
        self.polls_done.subscribe()
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packages::{PackageKind, Status, Unit};
    use crate::tencent::client::ApiError;

    fn outcome(ids: &[&str]) -> PollOutcome {
        PollOutcome {
            packages: ids
                .iter()
                .map(|id| Package {
                    id: (*id).into(),
                    kind: PackageKind::Traffic,
                    status: Status::InUse,
                    unit: Unit::Bytes,
                    quota: Some(100),
                    used: Some(1),
                    remaining: Some(99),
                    expires_at: None,
                    purchased_at: None,
                    auto_renew: None,
                    renewal_result: None,
                })
                .collect(),
            ..PollOutcome::default()
        }
    }

    fn text(s: &Store) -> String {
        String::from_utf8(s.exposition().text.to_vec()).unwrap()
    }

    const FAIL: PollError = PollError::Api {
        page: 1,
        error: ApiError::Http(500),
    };

    #[tokio::test(start_paused = true)]
    async fn success_replaces_whole_failure_keeps_and_other_pairs_are_untouched() {
        let s = Store::new(Arc::new(ExporterMetrics::new()), Duration::from_secs(900));
        s.record_success(
            "a",
            QueryType::Traffic,
            outcome(&["p1", "p2"]),
            Duration::from_millis(5),
        );
        s.record_success(
            "a",
            QueryType::Transcode,
            outcome(&["t1"]),
            Duration::from_millis(5),
        );
        s.record_success(
            "a",
            QueryType::Traffic,
            outcome(&["p2", "p3"]),
            Duration::from_millis(5),
        );
        let t = text(&s);
        assert!(
            !t.contains("package_id=\"p1\""),
            "vanished package must go: {t}"
        );
        assert!(t.contains("package_id=\"p3\""));
        assert_eq!(
            s.record_failure("a", QueryType::Traffic, &FAIL, Duration::from_millis(5)),
            Transition::Changed
        );
        assert_eq!(
            s.record_failure("a", QueryType::Traffic, &FAIL, Duration::from_millis(5)),
            Transition::Unchanged
        );
        let t = text(&s);
        assert!(t.contains(r#"tencent_live_up{account="a",package_type="traffic"} 0"#));
        assert!(t.contains(r#"tencent_live_up{account="a",package_type="transcode"} 1"#));
        assert!(t.contains("package_id=\"p3\""), "last good list stays: {t}");
        assert!(t.contains("package_id=\"t1\""));
    }

    #[tokio::test(start_paused = true)]
    async fn package_series_expire_after_max_staleness() {
        let s = Store::new(Arc::new(ExporterMetrics::new()), Duration::from_secs(900));
        s.record_success("a", QueryType::Traffic, outcome(&["p1"]), Duration::ZERO);
        tokio::time::advance(Duration::from_secs(901)).await;
        s.record_failure("a", QueryType::Traffic, &FAIL, Duration::ZERO);
        let t = text(&s);
        assert!(!t.contains("package_id=\"p1\""), "{t}");
        assert!(t.contains("tencent_live_exporter_last_success_timestamp_seconds{account=\"a\""));
        s.record_success("a", QueryType::Traffic, outcome(&["p1"]), Duration::ZERO);
        assert!(text(&s).contains("package_id=\"p1\""));
    }

    #[test]
    fn removing_an_account_drops_its_series() {
        let s = Store::new(Arc::new(ExporterMetrics::new()), Duration::from_secs(900));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            s.record_success("gone", QueryType::Traffic, outcome(&["x"]), Duration::ZERO);
            s.retain_pairs(&std::collections::HashSet::new());
        });
        assert!(!text(&s).contains("gone"));
    }
}
