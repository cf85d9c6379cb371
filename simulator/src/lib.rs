//! An in-repo simulator of the Tencent Cloud Live API `DescribeLivePackageInfo` (version `2018-08-01`).
//!
//! It speaks the wire protocol a real client sees: `POST /` with the API 3.0 headers, a TC3-HMAC-SHA256
//! signature checked against the account's SecretKey, the documented parameter rules, a per-SecretId
//! sliding-window rate limit, and answers that are always HTTP 200 with either a `Response` object or a
//! `Response.Error` object. Tests drive it through [`Simulator::router`]; the demo mode serves it on a
//! socket through [`Simulator::serve`].
//!
//! This crate owns the test double, apart from the product: the exporter depends on it only for
//! `--demo` (its default `demo` feature) and, as a dev-dependency, for its tests, benchmarks and
//! examples; it depends on nothing of the exporter but the shared signing crate `tencent-tc3`.
//! The same router also serves the CVM metadata service and STS (`AssumeRole`,
//! `AssumeRoleWithWebIdentity`) for the credential tests (see [`METADATA_PATH`]).
//!
//! Packages are kept as raw JSON objects so that tests can inject odd values (nulls, negative numbers,
//! strings where integers belong, unknown fields). Which query returns a package is decided by the list it
//! was stored in (the `query_type` argument of the admin methods), never by its `Type` field:
//! query 0 returns traffic packages (Type 0), query 1 transcode packages (Types 1 and 2), query 2
//! co-anchoring packages (Type 3).
//!
//! # Fault injection
//!
//! A [`Fault`] replaces or alters the answer to one request of an account (see [`Simulator::push_faults`],
//! [`Simulator::set_page_fault`], [`Simulator::set_persistent_fault`] and [`Simulator::set_random_faults`]).
//! The rules:
//!
//! - Faults are only taken by requests that pass every check (action, version, Content-Type,
//!   signature, rate limit and parameters), i.e. requests that would otherwise be answered `"ok"`.
//!   A request refused for any reason is answered with that error and consumes no queued fault and
//!   no random draw.
//! - So a faulted request has passed the rate limiter and counts in the sliding window exactly like an
//!   answered one (this includes `Hang`, and `ApiError("RequestLimitExceeded")`).
//! - Precedence: a queued fault, else the page fault of the request's query type and page, else the
//!   persistent fault, else a random fault. An unpaged request (no `PageNum`/`PageSize` pair) is page 1,
//!   as its answer says.
//! - Faults that replace the answer (`HttpStatus`, `Hang`, `Garbage`, `Huge`, `ApiError`) are decided
//!   before the demo drain runs, so they drain nothing; `Truncated`, `NullTotals`, `ShrinkBefore` and
//!   `GrowBefore` build the real answer (and drain like it).
//! - The request log records `fault:http_<status>`, `fault:hang`, `fault:garbage`, `fault:truncated`,
//!   `fault:huge`, the `ApiError` code, or `ok` for `NullTotals`, `ShrinkBefore`, `GrowBefore`,
//!   `ShiftBack` and `EmptyPage`.
//!
//! # Network
//!
//! [`Simulator::set_latency`] delays every API request by half a round trip before it arrives and
//! half after its answer; [`Simulator::set_arrival_delay`] adds a random delay (seeded) before
//! arrival, as a new connection's set-up does. The rate limit counts arrivals, as Tencent does:
//! every signed arrival of a SecretId, refused ones included, so the 21st in any one-second window
//! is refused.
//! - A hanging request of [`Simulator::serve`] is let go (answered 503) when its `shutdown` is
//!   cancelled, so graceful shutdown never waits on it; under [`Simulator::router`] it hangs forever.
//!
//! No code path reachable from a request may panic: outside tests, `unwrap`, `expect`, indexing
//! and `panic!` are refused by clippy; the few that remain carry an `#[allow]` with the proof.
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod billing;
mod demo;
mod faults;
mod query;
mod serve;
mod sts;

pub use faults::Fault;
use faults::*;
use query::*;
use serve::*;

/// The API page's example answer, verbatim: the simulator serves its packages, the parser tests read it.
pub use demo::EXAMPLE_RESPONSE;
/// The demo accounts and their billing over a compressed day (`--demo`).
pub use demo::{Demo, START_HOUR as DEMO_START_HOUR};
#[cfg(test)]
mod tests;

pub use sts::{
    CredentialRequest, DEFAULT_TEMPORARY_LIFETIME, IssuedCredentials, METADATA_PATH, MetadataFault,
};

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use tencent_tc3::{self as sign, SigningInput};

/// The only action served.
pub const ACTION: &str = "DescribeLivePackageInfo";
/// The only version served.
pub const VERSION: &str = "2018-08-01";
/// The signing service name.
pub const SERVICE: &str = "live";
/// Default requests per SecretId per sliding second (the API's documented limit): the next
/// arrival in the same second is refused, and counts.
pub const DEFAULT_RATE_LIMIT: u32 = 20;
/// How many request-log entries are kept (the oldest are dropped first).
pub const LOG_CAPACITY: usize = 100_000;
/// Largest allowed distance, in seconds, between `X-TC-Timestamp` and the simulator's clock.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;
/// Largest request body read; a larger one is answered with `InvalidParameter`.
const MAX_BODY_BYTES: usize = 1 << 20;
/// The page size reported for an unpaged answer (as in the API page's example).
const UNPAGED_PAGE_SIZE: i64 = 100;
/// The parameters this action knows; any other top-level key is `UnknownParameter`, as on the real API.
const KNOWN_PARAMETERS: [&str; 4] = ["PackageType", "OrderBy", "PageNum", "PageSize"];
/// Chunk size of a [`Fault::Huge`] body.
const HUGE_CHUNK_BYTES: usize = 64 * 1024;
/// Padding of a [`Fault::Huge`] body: JSON whitespace, so the body stays a valid JSON prefix.
static HUGE_PADDING: [u8; HUGE_CHUNK_BYTES] = [b' '; HUGE_CHUNK_BYTES];
/// The body of [`Fault::Garbage`].
const GARBAGE_BODY: &[u8] = b"<html>502 Bad Gateway</html>\x00\xff";
/// [`Fault::GrowBefore`] never grows a list past this many packages.
const MAX_GROWN_LIST: usize = 100_000;

/// One request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// Arrival (before the body was read).
    pub at: Instant,
    /// The SecretId of the `Authorization` header, when it parsed (known or not).
    pub secret_id: Option<String>,
    /// `PackageType` of the body, when the body was a JSON object with an integer there.
    pub package_type: Option<i64>,
    /// `PageNum` of the body, when an integer.
    pub page_num: Option<i64>,
    /// `PageSize` of the body, when an integer.
    pub page_size: Option<i64>,
    /// Whether an `X-TC-Region` header was sent (this API wants none).
    pub had_region_header: bool,
    /// The `X-TC-Token` header, when sent.
    pub token: Option<String>,
    /// `"ok"` or the error code returned; for an injected [`Fault`], `fault:http_<status>`,
    /// `fault:hang`, `fault:garbage`, `fault:truncated`, `fault:huge`, the `ApiError` code, or `"ok"`
    /// (`NullTotals`, `ShrinkBefore`, `GrowBefore`).
    pub outcome: String,
}

/// The simulated service. Cheap to clone: all clones share one state.
#[derive(Clone)]
pub struct Simulator {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret keys.
        let state = self.lock();
        let mut ids: Vec<&String> = state.accounts.keys().collect();
        ids.sort();
        f.debug_struct("Simulator")
            .field("accounts", &ids)
            .field("rate_limit", &state.rate_limit)
            .field("drain", &state.drain)
            .field("logged_requests", &state.log.len())
            .finish()
    }
}

struct BillModes {
    package_bill_mode: Value,
    flux_package_bill_mode: Value,
}

struct Account {
    secret_key: String,
    /// Indexed by query type (the request's `PackageType`).
    lists: [Vec<Value>; 3],
    bill_modes: [BillModes; 3],
    null_totals: bool,
    /// Arrival instants of signed requests (refused ones too), oldest first, within the last
    /// second.
    arrivals: VecDeque<Instant>,
    faults: Faults,
}

impl Account {
    fn new(secret_key: &str) -> Self {
        Account {
            secret_key: secret_key.to_owned(),
            lists: [Vec::new(), Vec::new(), Vec::new()],
            bill_modes: [
                BillModes {
                    package_bill_mode: json!(204),
                    flux_package_bill_mode: json!("204,204,204,204,-1,-1"),
                },
                BillModes {
                    package_bill_mode: json!(205),
                    flux_package_bill_mode: Value::Null,
                },
                BillModes {
                    package_bill_mode: json!(206),
                    flux_package_bill_mode: Value::Null,
                },
            ],
            null_totals: false,
            arrivals: VecDeque::new(),
            faults: Faults::default(),
        }
    }
}

struct State {
    accounts: HashMap<String, Account>,
    rate_limit: u32,
    /// Round-trip time of an API request: half before arrival, half after the answer.
    latency: Duration,
    /// A random extra delay before arrival, uniform in `[0, max]`.
    arrival_delay: Option<(Duration, SplitMix64)>,
    drain: bool,
    log: VecDeque<LoggedRequest>,
    /// The metadata service and STS, and the temporary credentials they issued.
    sts: sts::StsState,
}

impl State {
    fn push_log(&mut self, entry: LoggedRequest) {
        while self.log.len() >= LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(entry);
    }

    /// The account of `secret_id`, or `None` (with a warning) for an unknown one.
    fn account_mut(&mut self, secret_id: &str) -> Option<&mut Account> {
        let account = self.accounts.get_mut(secret_id);
        if account.is_none() {
            tracing::warn!(
                secret_id,
                "simulator: no such account; call add_account first"
            );
        }
        account
    }

    /// The list for `query_type` of `secret_id`, or `None` (with a warning) for unknown ones.
    fn list_mut(&mut self, secret_id: &str, query_type: u8) -> Option<&mut Vec<Value>> {
        let Some(account) = self.accounts.get_mut(secret_id) else {
            tracing::warn!(
                secret_id,
                "simulator: no such account; call add_account first"
            );
            return None;
        };
        let Some(list) = account.lists.get_mut(usize::from(query_type)) else {
            tracing::warn!(query_type, "simulator: query type must be 0, 1 or 2");
            return None;
        };
        Some(list)
    }
}

/// An API error: code and message.
#[derive(Debug)]
struct ApiError {
    code: &'static str,
    message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        code,
        message: message.into(),
    }
}

/// A request that passed every check: its answer, or what replaces it.
enum Answer {
    Ok(Map<String, Value>),
    /// To be sent cut in half.
    Truncated(Map<String, Value>),
    Replaced(Replacement),
}

/// A fault that replaces the whole answer.
enum Replacement {
    Status(StatusCode),
    Hang,
    Garbage,
    Huge(usize),
    /// Code and message.
    ApiError(String, String),
}

impl Replacement {
    /// The request log's outcome.
    fn outcome(&self) -> String {
        match self {
            Replacement::Status(status) => format!("fault:http_{}", status.as_u16()),
            Replacement::Hang => "fault:hang".to_owned(),
            Replacement::Garbage => "fault:garbage".to_owned(),
            Replacement::Huge(_) => "fault:huge".to_owned(),
            Replacement::ApiError(code, _) => code.clone(),
        }
    }
}

/// The status sent for [`Fault::HttpStatus`]: 500 for anything outside 200..=599.
fn fault_status(code: u16) -> StatusCode {
    StatusCode::from_u16(code)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrderBy {
    BuyTimeDesc,
    BuyTimeAsc,
    ExpireTimeDesc,
    ExpireTimeAsc,
}

impl OrderBy {
    fn field(self) -> &'static str {
        match self {
            OrderBy::BuyTimeDesc | OrderBy::BuyTimeAsc => "BuyTime",
            OrderBy::ExpireTimeDesc | OrderBy::ExpireTimeAsc => "ExpireTime",
        }
    }

    fn descending(self) -> bool {
        matches!(self, OrderBy::BuyTimeDesc | OrderBy::ExpireTimeDesc)
    }
}

/// A validated request body.
struct Query {
    package_type: usize,
    /// `(PageNum, PageSize)` when both were sent.
    page: Option<(i64, i64)>,
    order: OrderBy,
}

impl Default for Simulator {
    fn default() -> Self {
        Self::new()
    }
}

impl Simulator {
    /// A simulator with no accounts, the default rate limit and no draining.
    pub fn new() -> Self {
        Simulator {
            state: Arc::new(Mutex::new(State {
                accounts: HashMap::new(),
                rate_limit: DEFAULT_RATE_LIMIT,
                latency: Duration::ZERO,
                arrival_delay: None,
                drain: false,
                log: VecDeque::new(),
                sts: sts::StsState::default(),
            })),
        }
    }

    // Proven: a lock is poisoned only by a panic while held, and no critical section here can panic.
    #[allow(clippy::expect_used)]
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("simulator state mutex poisoned")
    }

    /// Adds (or resets) an account with empty package lists and the default bill modes:
    /// `PackageBillMode` 204 for query 0 (with `FluxPackageBillMode` `"204,204,204,204,-1,-1"`),
    /// 205 for query 1 and 206 for query 2.
    pub fn add_account(&self, secret_id: &str, secret_key: &str) {
        self.lock()
            .accounts
            .insert(secret_id.to_owned(), Account::new(secret_key));
    }

    /// Replaces the packages that query `query_type` (0, 1 or 2) returns for this account.
    /// Unknown accounts and query types are ignored (with a warning).
    pub fn set_packages(&self, secret_id: &str, query_type: u8, packages: Vec<Value>) {
        if let Some(list) = self.lock().list_mut(secret_id, query_type) {
            *list = packages;
        }
    }

    /// Replaces the package with the same `Id` in that list, or appends it.
    // Proven: `i` comes from `position` on the same list, under the same lock.
    #[allow(clippy::indexing_slicing)]
    pub fn upsert_package(&self, secret_id: &str, query_type: u8, package: Value) {
        let mut state = self.lock();
        let Some(list) = state.list_mut(secret_id, query_type) else {
            return;
        };
        let key = id_key(&package);
        let existing = key
            .as_deref()
            .and_then(|k| list.iter().position(|p| id_key(p).as_deref() == Some(k)));
        match existing {
            Some(i) => list[i] = package,
            None => list.push(package),
        }
    }

    /// Removes every package with this `Id` from that list; whether any was there.
    pub fn remove_package(&self, secret_id: &str, query_type: u8, id: &str) -> bool {
        let mut state = self.lock();
        let Some(list) = state.list_mut(secret_id, query_type) else {
            return false;
        };
        let before = list.len();
        list.retain(|p| id_key(p).as_deref() != Some(id));
        list.len() != before
    }

    /// Sets the `PackageBillMode` and `FluxPackageBillMode` values answered for query `query_type`,
    /// as raw JSON (so tests can send nulls or odd types). `FluxPackageBillMode` is always in the
    /// answer to query 0; for queries 1 and 2 it is left out while it is `null`.
    pub fn set_bill_modes(
        &self,
        secret_id: &str,
        query_type: u8,
        package_bill_mode: Value,
        flux_package_bill_mode: Value,
    ) {
        let mut state = self.lock();
        let Some(account) = state.accounts.get_mut(secret_id) else {
            tracing::warn!(
                secret_id,
                "simulator: no such account; call add_account first"
            );
            return;
        };
        match account.bill_modes.get_mut(usize::from(query_type)) {
            Some(modes) => {
                modes.package_bill_mode = package_bill_mode;
                modes.flux_package_bill_mode = flux_package_bill_mode;
            }
            None => tracing::warn!(query_type, "simulator: query type must be 0, 1 or 2"),
        }
    }

    /// When set, `TotalPage`, `TotalNum`, `PageNum` and `PageSize` are answered as `null`.
    pub fn set_null_totals(&self, secret_id: &str, null: bool) {
        match self.lock().accounts.get_mut(secret_id) {
            Some(account) => account.null_totals = null,
            None => tracing::warn!(
                secret_id,
                "simulator: no such account; call add_account first"
            ),
        }
    }

    /// Accepted requests allowed per SecretId in any sliding window of one second.
    pub fn set_rate_limit(&self, per_second: u32) {
        self.lock().rate_limit = per_second;
    }

    /// Every API request takes this round trip: half of it before the request arrives (and is
    /// counted by the rate limit), half after the answer is made.
    pub fn set_latency(&self, round_trip: Duration) {
        self.lock().latency = round_trip;
    }

    /// Every API request arrives after an extra delay, uniform in `[0, max]` and drawn by a
    /// SplitMix64 generator seeded with `seed` (a zero `max` turns it off): arrivals bunch up
    /// the way delayed connection set-ups make them.
    pub fn set_arrival_delay(&self, max: Duration, seed: u64) {
        self.lock().arrival_delay = (!max.is_zero()).then_some((max, SplitMix64(seed)));
    }

    /// The delays of the next request: before its arrival, after its answer.
    fn network_delays(&self) -> (Duration, Duration) {
        let mut state = self.lock();
        let half = state.latency / 2;
        let extra = state
            .arrival_delay
            .as_mut()
            .map_or(Duration::ZERO, |(max, rng)| max.mul_f64(rng.next_unit()));
        (half + extra, state.latency - half)
    }

    /// Demo mode: each accepted page-1 (or unpaged) request moves 0.2 % of `Total` (at least 1) of
    /// every in-use (`Status` 1), not yet expired package it queries from `Left` into `Used`; a
    /// package whose `Left` reaches 0 gets `Status` 4 (used up).
    pub fn set_drain_per_poll(&self, drain: bool) {
        self.lock().drain = drain;
    }

    /// A copy of the request log, oldest first (the last [`LOG_CAPACITY`] requests).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.iter().cloned().collect()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    /// The nine packages of the API page's example response, verbatim.
    pub fn example_response_packages() -> Vec<Value> {
        demo::example_response_packages()
    }

    /// A simulator with one demo account; see [`demo`](self) for what it holds.
    pub fn demo(secret_id: &str, secret_key: &str) -> Self {
        demo::demo(secret_id, secret_key)
    }

    /// The service: `POST /` answers the API (and STS's `AssumeRole*` actions), `GET` under
    /// [`METADATA_PATH`] the metadata service; anything else gets axum's 404/405.
    pub fn router(&self) -> axum::Router {
        self.router_releasing_hangs_on(CancellationToken::new())
    }

    /// [`Self::router`], whose hanging requests ([`Fault::Hang`]) end (with a 503) once `release`
    /// is cancelled.
    fn router_releasing_hangs_on(&self, release: CancellationToken) -> axum::Router {
        axum::Router::new()
            .route("/", post(sts::dispatch))
            .route(METADATA_PATH, get(sts::metadata_role_name))
            .route(
                METADATA_PATH.trim_end_matches('/'),
                get(sts::metadata_role_name),
            )
            .route(
                &format!("{METADATA_PATH}{{role}}"),
                get(sts::metadata_credentials),
            )
            .with_state(Served {
                sim: self.clone(),
                release,
            })
    }

    /// Serves [`Self::router`] on `listener` until `shutdown` is cancelled (which also lets go of
    /// requests held by [`Fault::Hang`], so that graceful shutdown does not wait for them).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let router = self.router_releasing_hangs_on(shutdown.clone());
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }

    /// Handles one request: validates, answers (or applies a fault), logs.
    fn process(
        &self,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        at: Instant,
        now_unix: i64,
    ) -> Reply {
        let request_id = new_request_id();
        let parsed_body: Option<Value> = body.and_then(|b| serde_json::from_slice(b).ok());
        let field = |name: &str| {
            parsed_body
                .as_ref()
                .and_then(|b| b.get(name))
                .and_then(Value::as_i64)
        };
        let mut entry = LoggedRequest {
            at,
            secret_id: header_text(headers, &header::AUTHORIZATION)
                .and_then(|a| sign::parse_authorization(&a))
                .map(|a| a.secret_id),
            package_type: field("PackageType"),
            page_num: field("PageNum"),
            page_size: field("PageSize"),
            had_region_header: headers.contains_key("x-tc-region"),
            token: header_text(headers, &HeaderName::from_static("x-tc-token")),
            outcome: String::new(),
        };

        let mut state = self.lock();
        let result = answer(
            &mut state,
            headers,
            body,
            parsed_body.as_ref(),
            at,
            now_unix,
        );
        entry.outcome = match &result {
            Ok(Answer::Ok(_)) => "ok".to_owned(),
            Ok(Answer::Truncated(_)) => "fault:truncated".to_owned(),
            Ok(Answer::Replaced(replacement)) => replacement.outcome(),
            Err(e) => e.code.to_owned(),
        };
        if entry.outcome != "ok" && result.is_ok() {
            tracing::debug!(outcome = %entry.outcome, "simulator: injected fault");
        }
        state.push_log(entry);
        drop(state);

        match result {
            Ok(Answer::Ok(mut response)) => {
                response.insert("RequestId".to_owned(), Value::String(request_id));
                Reply::Json(json!({ "Response": response }))
            }
            Ok(Answer::Truncated(mut response)) => {
                response.insert("RequestId".to_owned(), Value::String(request_id));
                let mut text = json!({ "Response": response }).to_string().into_bytes();
                text.truncate(text.len() / 2);
                Reply::Truncated(text)
            }
            Ok(Answer::Replaced(replacement)) => match replacement {
                Replacement::Status(status) => Reply::Status(status),
                Replacement::Hang => Reply::Hang,
                Replacement::Garbage => Reply::Garbage,
                Replacement::Huge(bytes) => Reply::Huge { bytes, request_id },
                Replacement::ApiError(code, message) => {
                    Reply::Json(error_answer(&code, &message, request_id))
                }
            },
            Err(e) => {
                tracing::debug!(code = e.code, message = %e.message, "simulator: error answer");
                Reply::Json(error_answer(e.code, &e.message, request_id))
            }
        }
    }
}
