//! The store: the last complete result of every (account, query type) pair, and the exposition
//! published from them.
//!
//! Pollers write here when a poll ends ([`Store::record_success`], [`Store::record_failure`]):
//! a short lock, no encoding. Publishing ([`Store::publish_now`], run by [`run_publisher`] on a
//! blocking thread) re-encodes only the pairs that changed, each into its own [`PairPiece`],
//! assembles the exposition from the pieces, gzips it, and swaps it in whole with the pair
//! states it was made from. Publishes coalesce: however many polls end in a burst, at most one
//! per [`PUBLISH_PERIOD`], and always one after the last change. A caller that waits for a
//! publish ([`Store::publish_and_wait`]: a reload, `--once`, a test's wait for polls) publishes
//! at once; one a client can repeat (a reload) at most [`ASKED_PUBLISH_BURST`] in a row, then
//! one per [`PUBLISH_PERIOD`].
//!
//! `/metrics` and the status page only read the published snapshot ([`Store::exposition`],
//! [`Store::pairs`]): a lock-free load of an `Arc`, so they never wait on an encoding, never see
//! half a poll, and always show the same pairs and packages. A poll counts as done (for
//! [`Store::subscribe_polls`]) once it is published.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::unix_now;
use crate::domain::{Listing, Package, PackageKind, QueryType, TrafficBillMode};
use crate::exposition::bills::BillHistory;
use crate::exposition::metrics::{Assembled, PairPiece, PairSeries, assemble, encode_pair};
use crate::telemetry::ExporterMetrics;

/// The shortest time between two publishes: polls that end within it share one assembly and
/// one gzip of the exposition.
pub const PUBLISH_PERIOD: Duration = Duration::from_secs(1);

/// Publishes a client can ask for ([`Store::publish_and_wait_bounded`]: `POST /-/reload`,
/// SIGHUP) run at once up to this many in a row, then one per [`PUBLISH_PERIOD`]: each is a
/// whole assembly and gzip (about 10 ms at 10,000 packages), so back-to-back reloads would
/// otherwise keep a core busy.
pub const ASKED_PUBLISH_BURST: u32 = 4;

/// While no poll ends, the publisher publishes again this long after its last publish, to gather
/// the exporter's own metrics anew: the `process_*` families (CPU, memory, file descriptors) move
/// on their own, and a scrape serves what the last publish gathered. A quarter of the default
/// scrape interval (60 s); the pairs' pieces are reused, so it costs an assembly and a gzip.
pub const OWN_METRICS_REFRESH: Duration = Duration::from_secs(15);

/// What one pair shows: its latest poll's state and its last complete list.
#[derive(Debug, Clone, Default)]
pub struct PairState {
    /// Whether the latest poll succeeded: `tencent_live_up`, and "up"/"down" on the status page.
    pub up: bool,
    /// When the last success ended, Unix seconds (wall clock):
    /// `tencent_live_exporter_last_success_timestamp_seconds`.
    pub last_success_unix: Option<f64>,
    /// Monotonic time of the last success, for staleness.
    pub last_success_at: Option<Instant>,
    /// How long the latest poll took, successful or not, all pages and retries included:
    /// `tencent_live_exporter_poll_duration_seconds`.
    pub poll_duration_seconds: Option<f64>,
    /// `PackageBillMode` of the last success (-1 none or unknown, 201 monthly bandwidth, …);
    /// `None` when the API left it out, and once the pair is stale.
    pub bill_mode: Option<i64>,
    /// `FluxPackageBillMode` of the last success, traffic pairs only (empty for the others, and
    /// once the pair is stale).
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
    /// The bills this exporter saw itself (rises of `Used` between two successes), for the
    /// status page: kept through failures and staleness, bounded
    /// ([`MAX_BILLS`](crate::exposition::bills::MAX_BILLS) per package `Type`).
    pub bills: Arc<BillHistory>,
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
    /// The text exposition format 0.0.4
    /// ([`CONTENT_TYPE`](crate::exposition::metrics::CONTENT_TYPE)), for clients that do not
    /// accept gzip: segments shared with the pairs' pieces, not a second copy of them.
    pub text: Assembled,
    /// `text` gzip-compressed, for clients that accept it (Prometheus does).
    pub gzip: Bytes,
}

impl Exposition {
    /// Wraps an assembled exposition and gzips it (level 1) once, here, so no scrape compresses.
    pub fn new(text: Assembled) -> Self {
        let gzip = gzip(&text);
        Exposition {
            text,
            gzip: gzip.into(),
        }
    }
}

/// Fast compression: the text is highly repetitive, so level 1 already shrinks it ~10x, at a
/// fraction of the default level's CPU.
// Proven: compressing into a `Vec`, an infallible writer.
#[allow(clippy::expect_used)]
fn gzip(text: &Assembled) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 8 + 64),
        flate2::Compression::fast(),
    );
    text.segments()
        .iter()
        .try_for_each(|s| encoder.write_all(s))
        .and_then(|()| encoder.finish())
        .expect("compressing into memory cannot fail")
}

/// A pair: (account name as configured, query type). Pairs order by account, then query type:
/// the order of the exposition and the status page.
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
    /// Package series of a pair with no success for this long are dropped (a reload may change it).
    max_staleness: Duration,
}

/// The publisher's own state: one publish at a time.
#[derive(Default)]
struct Pieces {
    by_pair: HashMap<PairKey, Arc<PairPiece>>,
}

/// The pairs' live state and the published exposition: shared (`Arc`) by the pollers that record,
/// the publisher, and the HTTP routes that read. See the module doc for the flow.
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
    /// Counts recorded polls (published or not), so `--once` can wait for its last one.
    recorded: watch::Sender<u64>,
    /// Counts publishes, so the staleness sweeper re-plans after any change.
    publishes: watch::Sender<u64>,
    /// When the next asked-for publish would run with no burst left (the theoretical arrival
    /// time of a cell rate limiter): see [`Store::publish_and_wait_bounded`].
    asked_at: Mutex<Instant>,
    /// Tests: a publish waits here after its snapshot, to be caught in progress.
    #[cfg(test)]
    hold: Mutex<Option<Hold>>,
}

#[cfg(test)]
struct Hold {
    started: tokio::sync::oneshot::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
}

/// Whether a recorded poll changed the pair's state, which decides whether it is worth a log line
/// at warning (failure) or info (recovery) level, or only at debug level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing new (logged at debug level only): the first success, a success after a success,
    /// or the same failure code again.
    Unchanged,
    /// The first poll failed, a failure follows a success, the failure code changed, or a success
    /// follows a failure (recovery): logged at warning or info level.
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
                max_staleness,
            }),
            pieces: Mutex::new(Pieces::default()),
            published: ArcSwap::from_pointee(Published::default()),
            metrics,
            wake: Notify::new(),
            polls_done: watch::Sender::new(0),
            recorded: watch::Sender::new(0),
            publishes: watch::Sender::new(0),
            asked_at: Mutex::new(Instant::now()),
            #[cfg(test)]
            hold: Mutex::new(None),
        };
        store.publish_now(Instant::now());
        store
    }

    /// The exporter's own counters and histogram, shared with the pollers and the API clients.
    pub fn metrics(&self) -> &Arc<ExporterMetrics> {
        &self.metrics
    }

    /// Changes the live state under its lock, marks the pair dirty, and wakes the publisher.
    // Proven: lock acquisition: a lock is poisoned only by a panic while held, and no critical section in this crate can panic (these lints).
    #[allow(clippy::expect_used)]
    fn change<T>(&self, key: PairKey, f: impl FnOnce(&mut PairState) -> T) -> T {
        let out = {
            let mut live = self.live.lock().expect("store lock");
            let out = f(live.pairs.entry(key.clone()).or_default());
            live.dirty.insert(key);
            live.polls_pending += 1;
            out
        };
        self.recorded.send_modify(|n| *n += 1);
        self.wake.notify_one();
        out
    }

    /// Polls recorded so far per pair, published or not.
    // Proven: lock acquisition: a lock is poisoned only by a panic while held, and no critical section in this crate can panic (these lints).
    #[allow(clippy::expect_used)]
    pub fn recorded_polls(&self) -> BTreeMap<PairKey, u64> {
        let live = self.live.lock().expect("store lock");
        live.pairs
            .iter()
            .map(|(k, p)| (k.clone(), p.polls))
            .collect()
    }

    /// Recorded polls so far (published or not); `changed()` wakes after the next one.
    pub fn subscribe_recorded(&self) -> watch::Receiver<u64> {
        self.recorded.subscribe()
    }

    /// Records a complete poll: the pair's list is replaced whole.
    pub fn record_success(
        &self,
        account: &str,
        query: QueryType,
        listing: Listing,
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
            if let Some(seen) = pair.last_success_unix {
                Arc::make_mut(&mut pair.bills).observe(&listing.packages, seen);
            }
            pair.bill_mode = listing.bill_mode;
            pair.traffic_bill_modes = listing.traffic_bill_modes;
            pair.packages = Some(listing.packages.into());
            pair.last_error = None;
            pair.last_error_detail = None;
            pair.polls += 1;
            transition
        })
    }

    /// Records a failed poll: `up` goes to 0, the last complete list stays until it is stale.
    /// `code` is the poll error's short code (the `last_error` the status page shows; a changed
    /// code is a [`Transition::Changed`]), `detail` its full message.
    pub fn record_failure(
        &self,
        account: &str,
        query: QueryType,
        code: String,
        detail: String,
        took: Duration,
    ) -> Transition {
        self.change((account.to_owned(), query), |pair| {
            let transition =
                if pair.polls > 0 && !pair.up && pair.last_error.as_deref() == Some(&code) {
                    Transition::Unchanged
                } else {
                    Transition::Changed
                };
            pair.up = false;
            pair.poll_duration_seconds = Some(took.as_secs_f64());
            pair.last_error = Some(code);
            pair.last_error_detail = Some(detail);
            pair.polls += 1;
            transition
        })
    }

    /// Forgets every pair not in `keep` (accounts or query types removed by a reload).
    // Proven: lock acquisition: a lock is poisoned only by a panic while held, and no critical section in this crate can panic (these lints).
    #[allow(clippy::expect_used)]
    pub fn retain_pairs(&self, keep: &HashSet<PairKey>) {
        {
            let mut live = self.live.lock().expect("store lock");
            live.pairs.retain(|k, _| keep.contains(k));
            live.changed = true;
        }
        self.wake.notify_one();
    }

    /// Changes `poll.max_staleness` (a reload), and asks for a publish so that a pair that is stale
    /// under the new limit leaves `/metrics` at once.
    // Proven: lock acquisition: a lock is poisoned only by a panic while held, and no critical section in this crate can panic (these lints).
    #[allow(clippy::expect_used)]
    pub fn set_max_staleness(&self, max_staleness: Duration) {
        self.live.lock().expect("store lock").max_staleness = max_staleness;
        self.publish();
    }

    /// When the next pair's package series turn stale, if any pair still shows some.
    // Proven: lock acquisition: a lock is poisoned only by a panic while held, and no critical section in this crate can panic (these lints).
    #[allow(clippy::expect_used)]
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
    // Proven: lock acquisition: a lock is poisoned only by a panic while held, and no critical section in this crate can panic (these lints).
    #[allow(clippy::expect_used)]
    pub fn publish(&self) {
        self.live.lock().expect("store lock").changed = true;
        self.wake.notify_one();
    }

    /// Marks the exposition as changed without waking the publisher: its next publish gathers
    /// the exporter's own metrics again even when no pair changed ([`OWN_METRICS_REFRESH`]).
    // Proven: lock acquisition: a lock is poisoned only by a panic while held, and no critical section in this crate can panic (these lints).
    #[allow(clippy::expect_used)]
    fn regather_own_metrics(&self) {
        self.live.lock().expect("store lock").changed = true;
    }

    /// Publishes everything recorded before the call, now, on a blocking thread: for a caller
    /// that waits for it (a reload before `POST /-/reload` answers, `--once`), which is no burst
    /// of poll ends for [`PUBLISH_PERIOD`] to coalesce.
    // Proven: lock acquisition: a lock is poisoned only by a panic while held, and no critical section in this crate can panic (these lints).
    #[allow(clippy::expect_used)]
    pub async fn publish_and_wait(self: &Arc<Self>) {
        // Something outside the pairs may have changed (a reload's result): gather it again.
        self.live.lock().expect("store lock").changed = true;
        let store = self.clone();
        // An error is a runtime shutting down: there is no one left to read the exposition.
        let _ = tokio::task::spawn_blocking(move || store.publish_now(Instant::now())).await;
    }

    /// [`Store::publish_and_wait`] for a caller a client can repeat at will (a reload: `POST
    /// /-/reload`, SIGHUP): at once for the first [`ASKED_PUBLISH_BURST`] in a row, then one per
    /// [`PUBLISH_PERIOD`], so a client cannot make the exporter publish more often than that.
    // Proven: lock acquisition: a lock is poisoned only by a panic while held, and no critical section in this crate can panic (these lints).
    #[allow(clippy::expect_used)]
    pub async fn publish_and_wait_bounded(self: &Arc<Self>) {
        let at = {
            let mut next = self.asked_at.lock().expect("asked lock");
            let now = Instant::now();
            let due = (*next).max(now);
            let tolerance = PUBLISH_PERIOD * ASKED_PUBLISH_BURST.saturating_sub(1);
            *next = due + PUBLISH_PERIOD;
            due.checked_sub(tolerance).map_or(now, |at| at.max(now))
        };
        tokio::time::sleep_until(at).await;
        self.publish_and_wait().await;
    }

    /// Publishes now, on the calling thread: drops the package series of pairs that turned
    /// stale by `now`, re-encodes the pairs changed since the last publish, assembles, gzips
    /// and swaps in the exposition together with the pair states it shows. Returns whether
    /// anything had changed (nothing is done otherwise). CPU-heavy: async code runs it through
    /// [`run_publisher`], on a blocking thread.
    // Proven: lock acquisition: a lock is poisoned only by a panic while held, and no critical section in this crate can panic (these lints).
    #[allow(clippy::expect_used)]
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
            (live.pairs.clone(), dirty, polls)
        };
        self.held_here();

        pieces.by_pair.retain(|k, _| snapshot.contains_key(k));
        for key in &dirty {
            if let Some(state) = snapshot.get(key) {
                let piece = encode_pair(&state.series(key), &|_, _| false);
                pieces.by_pair.insert(key.clone(), Arc::new(piece));
            }
        }
        let ordered = ordered_pieces(&snapshot, &pieces.by_pair);
        let text = assemble(ordered.iter().map(|p| &**p), &self.metrics);
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
/// is at least [`PUBLISH_PERIOD`] old, else when it is; after [`OWN_METRICS_REFRESH`] without
/// one, to gather the exporter's own metrics again; the work runs on a blocking thread.
pub async fn run_publisher(store: Arc<Store>, shutdown: CancellationToken) {
    let mut last: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = store.wake.notified() => {}
            () = tokio::time::sleep(OWN_METRICS_REFRESH) => store.regather_own_metrics(),
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

#[cfg(test)]
mod tests;
