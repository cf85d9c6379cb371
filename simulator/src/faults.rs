//! Injected faults: what one request of an account gets instead of its answer, queued per
//! SecretId or drawn from a seeded random mix.

use super::*;

/// One injected fault, applied to one request of an account (by SecretId).
///
/// See the [crate documentation](crate#fault-injection) for when faults apply and how they are logged.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer with this HTTP status and a short HTML (non-JSON) body, `Content-Type: text/html`.
    /// Statuses outside 200..=599 are answered (and logged) as 500.
    HttpStatus(u16),
    /// Accept the request and never answer, so the client's deadline must fire.
    Hang,
    /// HTTP 200, `Content-Type: application/json`, body `<html>502 Bad Gateway</html>\x00\xff`.
    Garbage,
    /// HTTP 200 with the first half (by bytes, rounded down) of the real answer's JSON text.
    Truncated,
    /// HTTP 200 with a body of exactly this many bytes, streamed in chunks of at most 64 KiB without
    /// a `Content-Length` (chunked transfer), never held in memory: a JSON prefix
    /// (`{"Response":{"RequestId":"…","LivePackageInfoList":[`) then spaces.
    Huge(usize),
    /// The API's error shape (HTTP 200) with this code and a generic message: e.g. `InternalError`,
    /// `RequestLimitExceeded`, `AuthFailure.SignatureFailure`, `ResourceNotFound.StopService`.
    ApiError(String),
    /// The API's error shape (HTTP 200) with this code and exactly this message: e.g. a
    /// multi-line CAM permission message, or a hostile one holding control bytes.
    ApiErrorMessage {
        /// The `Error.Code`.
        code: String,
        /// The `Error.Message`, sent as given.
        message: String,
    },
    /// Answer normally, but with `TotalPage`/`TotalNum`/`PageNum`/`PageSize` null this once.
    NullTotals,
    /// Before answering, remove this many packages from the front of the queried list, "front"
    /// meaning first in the order this request asks for (so later pages shift back). Permanent.
    ShrinkBefore(usize),
    /// Before answering, insert this many copies of the queried list's first package (first in the
    /// order this request asks for) in front of it, so the list grows at its front and the page being
    /// read starts with the previous page's last ids. Permanent; a list never grows past 100 000.
    GrowBefore(usize),
    /// Answer this page as if the list had moved back by this many packages between pages, with
    /// its totals unchanged: the page starts with the previous page's last ids and the ids it
    /// would have ended with are never listed. This request only.
    ShiftBack(usize),
    /// Answer an empty list with the real totals (which promise more). This request only.
    EmptyPage,
}

impl Fault {
    /// The random-fault menu.
    pub(super) fn random(index: u64) -> Fault {
        match index % 8 {
            0 => Fault::HttpStatus(500),
            1 => Fault::HttpStatus(503),
            2 => Fault::Garbage,
            3 => Fault::Truncated,
            4 => Fault::ApiError("InternalError".to_owned()),
            5 => Fault::ApiError("RequestLimitExceeded".to_owned()),
            6 => Fault::NullTotals,
            // Transient: a permanent change would leave a list that no longer matches the start.
            _ => Fault::ShiftBack(1),
        }
    }
}

/// SplitMix64: a tiny deterministic generator for reproducible random faults.
#[derive(Debug, Clone)]
pub(super) struct SplitMix64(pub(super) u64);

impl SplitMix64 {
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(super) fn next_unit(&mut self) -> f64 {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
    }
}

pub(super) struct RandomFaults {
    /// In `(0, 1]`.
    pub(super) probability: f64,
    pub(super) rng: SplitMix64,
}

impl RandomFaults {
    /// One draw: the generator advances once, and once more when the request is faulted.
    pub(super) fn draw(&mut self) -> Option<Fault> {
        (self.rng.next_unit() < self.probability).then(|| Fault::random(self.rng.next_u64()))
    }
}

/// The faults set up for one account.
#[derive(Default)]
pub(super) struct Faults {
    pub(super) queued: VecDeque<Fault>,
    /// By `(query type, page number)`.
    pub(super) pages: HashMap<(usize, i64), Fault>,
    pub(super) persistent: Option<Fault>,
    pub(super) random: Option<RandomFaults>,
}

impl Faults {
    /// The fault for a request that passed every check, by precedence.
    pub(super) fn take(&mut self, package_type: usize, page_num: i64) -> Option<Fault> {
        if let Some(fault) = self.queued.pop_front() {
            return Some(fault);
        }
        if let Some(fault) = self.pages.get(&(package_type, page_num)) {
            return Some(fault.clone());
        }
        if let Some(fault) = &self.persistent {
            return Some(fault.clone());
        }
        self.random.as_mut().and_then(RandomFaults::draw)
    }
}

/// Fault injection: which requests of an account get a [`Fault`] instead of their answer.
impl Simulator {
    /// Queues faults for the account's next requests, one per request, in order. Only requests that
    /// pass every check take one (see the [crate documentation](crate#fault-injection)); a queued fault wins over
    /// page, persistent and random faults. Unknown accounts are ignored (with a warning), and
    /// [`Self::add_account`] clears an account's faults.
    pub fn push_faults(&self, secret_id: &str, faults: impl IntoIterator<Item = Fault>) {
        // Collected before locking, so an iterator that calls back into the simulator cannot deadlock.
        let faults: Vec<Fault> = faults.into_iter().collect();
        if let Some(account) = self.lock().account_mut(secret_id) {
            account.faults.queued.extend(faults);
        }
    }

    /// A fault applied to every request of the account (that no queued or page fault applies to)
    /// until cleared with `None`.
    pub fn set_persistent_fault(&self, secret_id: &str, fault: Option<Fault>) {
        if let Some(account) = self.lock().account_mut(secret_id) {
            account.faults.persistent = fault;
        }
    }

    /// A fault for page `page_num` (1-based; an unpaged request is page 1) of query `query_type`
    /// (0, 1 or 2), applied every time that page is requested (unless a queued fault applies) until
    /// cleared with `None`. Unknown accounts and query types, and page numbers below 1, are ignored
    /// (with a warning).
    pub fn set_page_fault(
        &self,
        secret_id: &str,
        query_type: u8,
        page_num: i64,
        fault: Option<Fault>,
    ) {
        if query_type > 2 {
            tracing::warn!(query_type, "simulator: query type must be 0, 1 or 2");
            return;
        }
        if page_num < 1 {
            tracing::warn!(page_num, "simulator: page numbers start at 1");
            return;
        }
        let mut state = self.lock();
        let Some(account) = state.account_mut(secret_id) else {
            return;
        };
        let key = (usize::from(query_type), page_num);
        match fault {
            Some(fault) => {
                account.faults.pages.insert(key, fault);
            }
            None => {
                account.faults.pages.remove(&key);
            }
        }
    }

    /// Queued faults not yet applied (0 for an unknown account).
    pub fn pending_faults(&self, secret_id: &str) -> usize {
        self.lock()
            .accounts
            .get(secret_id)
            .map_or(0, |a| a.faults.queued.len())
    }

    /// Each request of the account that no queued, page or persistent fault applies to gets, with
    /// this probability, a fault drawn from `HttpStatus(500)`, `HttpStatus(503)`, `Garbage`,
    /// `Truncated`, `ApiError("InternalError")`, `ApiError("RequestLimitExceeded")`, `NullTotals` and
    /// `ShiftBack(1)`, by a SplitMix64 generator seeded with `seed`: the same requests in the same
    /// order get the same faults. A probability of 0 or below (or NaN) turns random faults off;
    /// above 1 is 1. Calling again restarts the generator.
    pub fn set_random_faults(&self, secret_id: &str, probability: f64, seed: u64) {
        if let Some(account) = self.lock().account_mut(secret_id) {
            account.faults.random = (probability > 0.0).then(|| RandomFaults {
                probability: probability.min(1.0),
                rng: SplitMix64(seed),
            });
        }
    }
}
