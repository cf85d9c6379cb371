//! The store: the last complete result of every (account, query type) pair, and the exposition
//! published from them.
//!
//! Pollers write here when a poll ends ([`Store::record_success`], [`Store::record_failure`]):
//! a short lock, no encoding. Publishing ([`Store::publish_now`], run by [`run_publisher`] on a
//! blocking thread) re-encodes only the pairs that changed, each into its own [`PairPiece`],
//! assembles the exposition from the pieces, gzips it, and swaps it in whole with the pair
//! states it was made from. Publishes coalesce: however many polls end in a burst, at most one
//! per [`PUBLISH_PERIOD`], and always one after the last change.
//!
//! `/metrics` and the status page only read the published snapshot ([`Store::exposition`],
//! [`Store::pairs`]): a lock-free load of an `Arc`, so they never wait on an encoding, never see
//! half a poll, and always show the same pairs and packages. A poll counts as done (for
//! [`Store::subscribe_polls`]) once it is published.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::{ExporterMetrics, PairPiece, PairSeries, assemble, encode_pair};
use crate::packages::{Package, PackageKind, QueryType, TrafficBillMode};
use crate::poller::{PollError, PollOutcome};

/// The shortest time between two publishes: polls that end within it share one assembly and
/// one gzip of the exposition.
pub const PUBLISH_PERIOD: Duration = Duration::from_secs(1);

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
    /// The last complete list; `None` before the first success, and once it is stale (no
    /// success for `max_staleness`): stale packages leave `/metrics` and the status page at once.
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

impl PairState {
    fn series<'a>(&'a self, (account, query): &'a PairKey) -> PairSeries<'a> {
        PairSeries {
            account,
            query: *query,
            up: self.up,
            last_success_unix: self.last_success_unix,
            poll_duration_seconds: self.poll_duration_seconds,
            bill_mode: self.bill_mode,
            traffic_bill_modes: &self.traffic_bill_modes,
            packages: self.packages.as_deref(),
        }
    }

    /// Drops what a stale pair no longer shows: its packages and bill modes.
    fn drop_stale(&mut self) {
        self.packages = None;
        self.bill_mode = None;
        self.traffic_bill_modes = Vec::new();
    }
}

/// The encoded `/metrics` answer, plain and gzip-compressed, both made once per publish.
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

/// What scrapes read: an exposition and the pair states it was made from.
#[derive(Default)]
struct Published {
    exposition: Arc<Exposition>,
    pairs: Arc<BTreeMap<PairKey, PairState>>,
}

/// The live state, behind a lock held only to copy or change a few fields.
struct Live {
    pairs: BTreeMap<PairKey, PairState>,
    /// Pairs changed since the last publish: their pieces are encoded again.
    dirty: HashSet<PairKey>,
    /// Something outside the pairs changed (exporter metrics, removed pairs, staleness limit).
    changed: bool,
    /// Polls recorded since the last publish.
    polls_pending: u64,
    /// Counts requests for a publish ([`Store::publish`]), so a caller can wait for one.
    requested: u64,
    /// Package series of a pair with no success for this long are dropped (a reload may change it).
    max_staleness: Duration,
}

/// The publisher's own state: one publish at a time.
#[derive(Default)]
struct Pieces {
    by_pair: HashMap<PairKey, Arc<PairPiece>>,
}

pub struct Store {
    live: Mutex<Live>,
    /// Held by the one publish in progress (never by a scrape).
    pieces: Mutex<Pieces>,
    /// Swapped whole by a publish; a scrape loads the `Arc` and nothing else.
    published: ArcSwap<Published>,
    metrics: Arc<ExporterMetrics>,
    /// Wakes the publisher after a change.
    wake: Notify,
    /// Counts published polls, so callers can wait for the next one.
    polls_done: watch::Sender<u64>,
    /// Counts publishes, so the staleness sweeper re-plans after any change.
    publishes: watch::Sender<u64>,
    /// The latest request ([`Live::requested`]) the published exposition includes.
    published_request: watch::Sender<u64>,
    /// Tests: a publish waits here after its snapshot, to be caught in progress.
    #[cfg(test)]
    hold: Mutex<Option<Hold>>,
}

#[cfg(test)]
struct Hold {
    started: tokio::sync::oneshot::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
}

/// Whether a recorded failure changed the pair's state (first failure, or a different code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    Changed,
}

impl Store {
    /// A store with an exposition of the exporter's own metrics only. Call [`run_publisher`]
    /// (or [`Store::publish_now`]) to publish what pollers record.
    pub fn new(metrics: Arc<ExporterMetrics>, max_staleness: Duration) -> Self {
        let store = Store {
            live: Mutex::new(Live {
                pairs: BTreeMap::new(),
                dirty: HashSet::new(),
                changed: true,
                polls_pending: 0,
                requested: 0,
                max_staleness,
            }),
            pieces: Mutex::new(Pieces::default()),
            published: ArcSwap::from_pointee(Published::default()),
            metrics,
            wake: Notify::new(),
            polls_done: watch::Sender::new(0),
            publishes: watch::Sender::new(0),
            published_request: watch::Sender::new(0),
            #[cfg(test)]
            hold: Mutex::new(None),
        };
        store.publish_now(Instant::now());
        store
    }

    pub fn metrics(&self) -> &Arc<ExporterMetrics> {
        &self.metrics
    }

    /// Changes the live state under its lock, marks the pair dirty, and wakes the publisher.
    fn change<T>(&self, key: PairKey, f: impl FnOnce(&mut PairState) -> T) -> T {
        let out = {
            let mut live = self.live.lock().expect("store lock");
            let out = f(live.pairs.entry(key.clone()).or_default());
            live.dirty.insert(key);
            live.polls_pending += 1;
            out
        };
        self.wake.notify_one();
        out
    }

    /// Records a complete poll: the pair's list is replaced whole.
    pub fn record_success(
        &self,
        account: &str,
        query: QueryType,
        outcome: PollOutcome,
        took: Duration,
    ) -> Transition {
        self.change((account.to_owned(), query), |pair| {
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
            transition
        })
    }

    /// Records a failed poll: `up` goes to 0, the last complete list stays until it is stale.
    pub fn record_failure(
        &self,
        account: &str,
        query: QueryType,
        error: &PollError,
        took: Duration,
    ) -> Transition {
        self.change((account.to_owned(), query), |pair| {
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
            transition
        })
    }

    /// Forgets every pair not in `keep` (accounts or query types removed by a reload).
    pub fn retain_pairs(&self, keep: &HashSet<PairKey>) {
        {
            let mut live = self.live.lock().expect("store lock");
            live.pairs.retain(|k, _| keep.contains(k));
            live.changed = true;
        }
        self.wake.notify_one();
    }

    pub fn set_max_staleness(&self, max_staleness: Duration) {
        self.live.lock().expect("store lock").max_staleness = max_staleness;
        self.publish();
    }

    /// When the next pair's package series turn stale, if any pair still shows some.
    pub fn next_stale_deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        let live = self.live.lock().expect("store lock");
        let max = live.max_staleness;
        live.pairs
            .values()
            .filter(|p| p.packages.is_some())
            .filter_map(|p| p.last_success_at)
            .filter_map(|t| t.checked_add(max)?.checked_add(Duration::from_millis(1)))
            .filter(|d| *d > now)
            .min()
    }

    /// Publishes so far; `changed()` wakes after the next one.
    pub fn subscribe_published(&self) -> watch::Receiver<u64> {
        self.publishes.subscribe()
    }

    /// Asks for a publish (something outside the pairs changed, or time made a pair stale);
    /// the publisher runs it within [`PUBLISH_PERIOD`].
    pub fn publish(&self) {
        self.request_publish();
    }

    fn request_publish(&self) -> u64 {
        let request = {
            let mut live = self.live.lock().expect("store lock");
            live.changed = true;
            live.requested += 1;
            live.requested
        };
        self.wake.notify_one();
        request
    }

    /// [`Store::publish`], and waits until the published exposition includes everything
    /// recorded before the call (e.g. the reload result, before `POST /-/reload` answers). Gives
    /// up after a few publish periods, should the publisher have stopped.
    pub async fn publish_and_wait(&self) {
        let request = self.request_publish();
        let mut published = self.published_request.subscribe();
        let _ = tokio::time::timeout(
            PUBLISH_PERIOD * 5,
            published.wait_for(|&done| done >= request),
        )
        .await;
    }

    /// Publishes now, on the calling thread: drops the package series of pairs that turned
    /// stale by `now`, re-encodes the pairs changed since the last publish, assembles, gzips
    /// and swaps in the exposition together with the pair states it shows. Returns whether
    /// anything had changed (nothing is done otherwise). CPU-heavy: async code runs it through
    /// [`run_publisher`], on a blocking thread.
    pub fn publish_now(&self, now: Instant) -> bool {
        let mut pieces = self.pieces.lock().expect("pieces lock");
        let (snapshot, dirty, polls) = {
            let mut live = self.live.lock().expect("store lock");
            let max = live.max_staleness;
            let mut stale = Vec::new();
            for (key, pair) in &mut live.pairs {
                let fresh = pair
                    .last_success_at
                    .is_some_and(|t| now.saturating_duration_since(t) <= max);
                if pair.packages.is_some() && !fresh {
                    pair.drop_stale();
                    stale.push(key.clone());
                }
            }
            live.dirty.extend(stale);
            if live.dirty.is_empty() && !live.changed && live.polls_pending == 0 {
                return false;
            }
            live.changed = false;
            let dirty = std::mem::take(&mut live.dirty);
            let polls = std::mem::take(&mut live.polls_pending);
            (live.pairs.clone(), dirty, (polls, live.requested))
        };
        let (polls, request) = polls;
        self.held_here();

        pieces.by_pair.retain(|k, _| snapshot.contains_key(k));
        for key in &dirty {
            if let Some(state) = snapshot.get(key) {
                let piece = encode_pair(&state.series(key), &|_, _| false);
                pieces.by_pair.insert(key.clone(), Arc::new(piece));
            }
        }
        let ordered = ordered_pieces(&snapshot, &pieces.by_pair);
        let hint = self.published.load().exposition.text.len();
        let text = assemble(ordered.iter().map(|p| &**p), &self.metrics, hint);
        let exposition = Arc::new(Exposition::new(text));
        self.published.store(Arc::new(Published {
            exposition,
            pairs: Arc::new(snapshot),
        }));
        drop(pieces);
        // Counted before the polls it carries: whoever sees a poll as done also sees the
        // publish that showed it (tests count publishes once the polls are done).
        self.publishes.send_modify(|n| *n += 1);
        if polls > 0 {
            self.polls_done.send_modify(|n| *n += polls);
        }
        self.published_request.send_replace(request);
        true
    }

    /// The answer of `/metrics`: no encoding, no lock, nothing held while it is sent.
    pub fn exposition(&self) -> Arc<Exposition> {
        self.published.load().exposition.clone()
    }

    /// Every pair's state as last published (for the status page and `--once`): the same
    /// pairs and packages the current exposition shows.
    pub fn pairs(&self) -> BTreeMap<PairKey, PairState> {
        BTreeMap::clone(&self.published.load().pairs)
    }

    /// Published polls so far; `changed()` wakes when more are.
    pub fn subscribe_polls(&self) -> watch::Receiver<u64> {
        self.polls_done.subscribe()
    }

    /// Tests: where a held publish waits (after its snapshot, before the swap).
    #[cfg(test)]
    fn held_here(&self) {
        if let Some(hold) = self.hold.lock().expect("hold lock").take() {
            let _ = hold.started.send(());
            let _ = hold.release.recv();
        }
    }

    #[cfg(not(test))]
    fn held_here(&self) {}

    /// Tests: the next publish signals `started` after taking its snapshot, then waits until
    /// `release` gets a message (or its sender is dropped).
    #[cfg(test)]
    fn hold_next_publish(
        &self,
    ) -> (
        tokio::sync::oneshot::Receiver<()>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (started, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release) = std::sync::mpsc::channel();
        *self.hold.lock().expect("hold lock") = Some(Hold { started, release });
        (started_rx, release_tx)
    }
}

/// The pieces in exposition order (by account, then query type). A package that an earlier
/// pair of the same account already exports (the API listed it under two query types) is left
/// out of the later pair's piece, re-encoded for this publish only: one series per package.
fn ordered_pieces(
    snapshot: &BTreeMap<PairKey, PairState>,
    by_pair: &HashMap<PairKey, Arc<PairPiece>>,
) -> Vec<Arc<PairPiece>> {
    let mut out = Vec::with_capacity(snapshot.len());
    let mut account: Option<&str> = None;
    let mut seen: HashSet<(PackageKind, &str)> = HashSet::new();
    for (key, state) in snapshot {
        if account != Some(key.0.as_str()) {
            account = Some(key.0.as_str());
            seen.clear();
        }
        let packages = state.packages.as_deref().unwrap_or_default();
        let overlaps = !seen.is_empty()
            && packages
                .iter()
                .any(|p| seen.contains(&(p.kind, p.id.as_str())));
        let piece = if overlaps {
            let earlier = seen.clone();
            Arc::new(encode_pair(&state.series(key), &|kind, id| {
                earlier.contains(&(kind, id))
            }))
        } else {
            match by_pair.get(key) {
                Some(piece) => piece.clone(),
                None => Arc::new(encode_pair(&state.series(key), &|_, _| false)),
            }
        };
        seen.extend(packages.iter().map(|p| (p.kind, p.id.as_str())));
        out.push(piece);
    }
    out
}

/// Publishes what pollers record, until `shutdown`: after a change, at once if the last publish
/// is at least [`PUBLISH_PERIOD`] old, else when it is; the work runs on a blocking thread.
pub async fn run_publisher(store: Arc<Store>, shutdown: CancellationToken) {
    let mut last: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = store.wake.notified() => {}
        }
        if let Some(next) = last.and_then(|t| t.checked_add(PUBLISH_PERIOD)) {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(next) => {}
            }
        }
        let now = Instant::now();
        let worker = store.clone();
        match tokio::task::spawn_blocking(move || worker.publish_now(now)).await {
            Ok(true) => last = Some(now),
            Ok(false) => {}
            Err(e) => tracing::error!("publishing the exposition failed: {e}"),
        }
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

    /// Publishes what was recorded, and returns the exposition.
    fn text(s: &Store) -> String {
        s.publish_now(Instant::now());
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

    /// A package the API lists under two query types of one account is one series (a repeated
    /// series makes Prometheus drop samples), whichever pair's piece is re-encoded; and it comes
    /// back under the later pair when the earlier one no longer lists it.
    #[tokio::test(start_paused = true)]
    async fn a_package_under_two_query_types_of_one_account_is_one_series() {
        let s = Store::new(Arc::new(ExporterMetrics::new()), Duration::from_secs(900));
        let count = |t: &str, id: &str| {
            t.lines()
                .filter(|l| l.starts_with("tencent_live_package_quota_bytes{"))
                .filter(|l| l.contains(&format!("package_id=\"{id}\"")))
                .count()
        };
        s.record_success(
            "a",
            QueryType::Traffic,
            outcome(&["x", "p"]),
            Duration::ZERO,
        );
        s.record_success("a", QueryType::Transcode, outcome(&["x"]), Duration::ZERO);
        s.record_success("b", QueryType::Transcode, outcome(&["x"]), Duration::ZERO);
        let t = text(&s);
        assert_eq!(count(&t, "x"), 2, "once per account: {t}");
        // Only the later pair changes: its cached piece must still leave x out.
        s.record_success("a", QueryType::Transcode, outcome(&["x"]), Duration::ZERO);
        assert_eq!(count(&text(&s), "x"), 2);
        // Only the earlier pair changes, and drops x: the later pair shows it again.
        s.record_success("a", QueryType::Traffic, outcome(&["p"]), Duration::ZERO);
        let t = text(&s);
        assert_eq!(count(&t, "x"), 2, "{t}");
        assert_eq!(count(&t, "p"), 1);
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

    /// Package ids on `/metrics`, by account.
    fn exported_ids(text: &str) -> std::collections::BTreeSet<(String, String)> {
        text.lines()
            .filter(|l| l.starts_with("tencent_live_package_quota_bytes{"))
            .map(|l| {
                let label = |name: &str| {
                    let from = l.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                    l[from..].split('"').next().unwrap().to_owned()
                };
                (label("account"), label("package_id"))
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_status_page_shows_the_packages_metrics_shows_also_once_stale() {
        let s = Store::new(Arc::new(ExporterMetrics::new()), Duration::from_secs(900));
        s.record_success(
            "old",
            QueryType::Traffic,
            outcome(&["p-old"]),
            Duration::ZERO,
        );
        tokio::time::advance(Duration::from_secs(600)).await;
        s.record_success(
            "new",
            QueryType::Traffic,
            outcome(&["p-new"]),
            Duration::ZERO,
        );
        tokio::time::advance(Duration::from_secs(301)).await;
        s.record_failure("old", QueryType::Traffic, &FAIL, Duration::ZERO);
        let metrics = text(&s);
        let page = crate::status_page::render(&s.pairs(), "/metrics", unix_now());
        assert_eq!(
            exported_ids(&metrics),
            [("new".to_owned(), "p-new".to_owned())].into(),
            "{metrics}"
        );
        assert!(page.contains("p-new"), "{page}");
        assert!(
            !page.contains("p-old"),
            "stale on /metrics, so gone here too: {page}"
        );
        assert!(page.contains("<h2>Packages (1)</h2>"), "{page}");
    }

    /// One step of a random history of a store.
    #[derive(Debug, Clone)]
    enum Step {
        Success(usize, QueryType, Vec<u8>),
        Failure(usize, QueryType),
        Advance(u64),
        Publish,
        Remove(usize),
        Staleness(u64),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        let query = prop::sample::select(QueryType::ALL.to_vec());
        prop_oneof![
            (
                0..3usize,
                query.clone(),
                prop::collection::vec(0..5u8, 0..4)
            )
                .prop_map(|(a, q, ids)| Step::Success(a, q, ids)),
            (0..3usize, query).prop_map(|(a, q)| Step::Failure(a, q)),
            (0..400u64).prop_map(Step::Advance),
            Just(Step::Publish),
            (0..3usize).prop_map(Step::Remove),
            (60..600u64).prop_map(Step::Staleness),
        ]
    }

    proptest::proptest! {
        /// Whatever happens, the status page lists exactly the packages `/metrics` exports,
        /// and a published poll count implies the exposition shows that poll.
        #[test]
        fn status_page_and_metrics_always_show_the_same_packages(
            steps in proptest::collection::vec(step(), 1..40)
        ) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            rt.block_on(async {
                let s = Store::new(Arc::new(ExporterMetrics::new()), Duration::from_secs(300));
                let mut accounts: std::collections::HashSet<usize> = (0..3).collect();
                for step in steps {
                    match step {
                        Step::Success(a, q, ids) => {
                            accounts.insert(a);
                            let ids: Vec<String> = ids.iter().map(|i| format!("p{i}")).collect();
                            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                            s.record_success(&format!("a{a}"), q, outcome(&ids), Duration::ZERO);
                        }
                        Step::Failure(a, q) => {
                            accounts.insert(a);
                            s.record_failure(&format!("a{a}"), q, &FAIL, Duration::ZERO);
                        }
                        Step::Advance(secs) => tokio::time::advance(Duration::from_secs(secs)).await,
                        Step::Publish => {
                            s.publish_now(Instant::now());
                        }
                        Step::Remove(a) => {
                            accounts.remove(&a);
                            let keep = accounts
                                .iter()
                                .flat_map(|a| QueryType::ALL.map(|q| (format!("a{a}"), q)))
                                .collect();
                            s.retain_pairs(&keep);
                        }
                        Step::Staleness(secs) => s.set_max_staleness(Duration::from_secs(secs)),
                    }
                    let metrics = String::from_utf8(s.exposition().text.to_vec()).unwrap();
                    let pairs = s.pairs();
                    let listed: std::collections::BTreeSet<(String, String)> = pairs
                        .iter()
                        .flat_map(|((account, _), p)| {
                            p.packages
                                .iter()
                                .flat_map(|l| l.iter())
                                .map(move |p| (account.clone(), p.id.clone()))
                        })
                        .collect();
                    assert_eq!(listed, exported_ids(&metrics));
                    let page = crate::status_page::render(&pairs, "/metrics", unix_now());
                    for (account, id) in &listed {
                        assert!(page.contains(&format!("<td>{account}</td><td>{id}</td>")), "{page}");
                    }
                    for ((account, query), p) in pairs.iter() {
                        let up = format!(
                            "tencent_live_up{{account=\"{account}\",package_type=\"{}\"}} {}",
                            query.label(),
                            u8::from(p.up)
                        );
                        assert!(metrics.lines().any(|l| l == up), "{up} missing:\n{metrics}");
                    }
                }
            });
        }
    }

    /// Records a success for each of `accounts` x 3 query types, one every `gap`.
    async fn burst(s: &Store, accounts: usize, gap: Duration) {
        for a in 0..accounts {
            for q in QueryType::ALL {
                let id = format!("{a}-{}", q.label());
                s.record_success(&format!("acct{a:04}"), q, outcome(&[&id]), Duration::ZERO);
                tokio::time::advance(gap).await;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_polls_publishes_a_bounded_number_of_times_and_after_the_last() {
        let s = Arc::new(Store::new(
            Arc::new(ExporterMetrics::new()),
            Duration::from_secs(900),
        ));
        let shutdown = CancellationToken::new();
        let publisher = tokio::spawn(run_publisher(s.clone(), shutdown.clone()));
        let publishes = s.subscribe_published();
        let before = *publishes.borrow();
        let started = Instant::now();
        // 300 accounts x 3 types = 900 polls ending 5 ms apart: 4.5 s of polls.
        burst(&s, 300, Duration::from_millis(5)).await;
        let mut polls = s.subscribe_polls();
        while *polls.borrow_and_update() < 900 {
            polls.changed().await.unwrap();
        }
        let runs = *publishes.borrow() - before;
        let elapsed = started.elapsed();
        // One per started second of the burst at most, plus the one after the last poll.
        let bound = elapsed.as_secs() + 2;
        assert!(
            (1..=bound).contains(&runs),
            "{runs} publishes for 900 polls over {elapsed:?}"
        );
        assert!(elapsed < Duration::from_millis(4500) + PUBLISH_PERIOD + Duration::from_millis(10));
        // The last poll is on /metrics, with every other one.
        let t = String::from_utf8(s.exposition().text.to_vec()).unwrap();
        assert_eq!(t.matches("tencent_live_up{").count(), 900);
        assert!(t.contains(r#"package_id="299-co_anchoring""#));
        assert_eq!(
            t.matches("# HELP tencent_live_package_quota_bytes ")
                .count(),
            1,
            "one HELP per family"
        );
        // Nothing more to publish: the publisher sleeps.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(*publishes.borrow() - before, runs);
        shutdown.cancel();
        publisher.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_scrape_is_answered_while_a_publish_is_in_progress() {
        use tower::ServiceExt as _;
        struct NoReload;
        impl crate::server::Reload for NoReload {
            fn reload(
                &self,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>>
            {
                Box::pin(async { Err("not in this test".into()) })
            }
        }
        let s = Arc::new(Store::new(
            Arc::new(ExporterMetrics::new()),
            Duration::from_secs(900),
        ));
        let shutdown = CancellationToken::new();
        let publisher = tokio::spawn(run_publisher(s.clone(), shutdown.clone()));
        burst(&s, 300, Duration::ZERO).await;
        let mut polls = s.subscribe_polls();
        while *polls.borrow_and_update() < 900 {
            polls.changed().await.unwrap();
        }
        let (started, release) = s.hold_next_publish();
        s.record_success(
            "late",
            QueryType::Traffic,
            outcome(&["late-1"]),
            Duration::ZERO,
        );
        started.await.unwrap();
        // The publish has its snapshot and is stopped before the swap: scrapes still answer,
        // with the previous exposition whole.
        let app = crate::server::router(s.clone(), "/metrics", Arc::new(NoReload));
        for path in ["/metrics", "/"] {
            let resp = app
                .clone()
                .oneshot(
                    axum::http::Request::get(path)
                        .body(axum::body::Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            let body = String::from_utf8_lossy(&body);
            assert!(body.contains("acct0299"), "{path}");
            assert!(!body.contains("late-1"), "{path}: half a publish");
        }
        assert_eq!(*s.subscribe_polls().borrow(), 900);
        release.send(()).unwrap();
        while *polls.borrow_and_update() < 901 {
            polls.changed().await.unwrap();
        }
        assert!(text(&s).contains("late-1"));
        shutdown.cancel();
        publisher.await.unwrap();
    }
}
