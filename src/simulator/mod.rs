//! An in-repo simulator of the Tencent Cloud Live API `DescribeLivePackageInfo` (version `2018-08-01`).
//!
//! It speaks the wire protocol a real client sees: `POST /` with the API 3.0 headers, a TC3-HMAC-SHA256
//! signature checked against the account's SecretKey, the documented parameter rules, a per-SecretId
//! sliding-window rate limit, and answers that are always HTTP 200 with either a `Response` object or a
//! `Response.Error` object. Tests drive it through [`Simulator::router`]; the demo mode serves it on a
//! socket through [`Simulator::serve`].
//!
//! Packages are kept as raw JSON objects so that tests can inject odd values (nulls, negative numbers,
//! strings where integers belong, unknown fields). Which query returns a package is decided by the list it
//! was stored in (the `query_type` argument of the admin methods), never by its `Type` field:
//! query 0 returns traffic packages (Type 0), query 1 transcode packages (Types 1 and 2), query 2
//! co-anchoring packages (Type 3).

mod demo;
#[cfg(test)]
mod tests;

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::to_bytes;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::tencent::sign::{self, SigningInput};

/// The only action served.
pub const ACTION: &str = "DescribeLivePackageInfo";
/// The only version served.
pub const VERSION: &str = "2018-08-01";
/// The signing service name.
pub const SERVICE: &str = "live";
/// Default accepted requests per SecretId per sliding second (the API's documented limit).
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
    /// `"ok"` or the error code returned.
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
    /// Arrival instants of accepted requests, oldest first, within the last second.
    accepted: VecDeque<Instant>,
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
            accepted: VecDeque::new(),
        }
    }
}

struct State {
    accounts: HashMap<String, Account>,
    rate_limit: u32,
    drain: bool,
    log: VecDeque<LoggedRequest>,
}

impl State {
    fn push_log(&mut self, entry: LoggedRequest) {
        while self.log.len() >= LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(entry);
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
                drain: false,
                log: VecDeque::new(),
            })),
        }
    }

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

    /// The service: `POST /` answers the API; anything else gets axum's 404/405.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route("/", post(handle))
            .with_state(self.clone())
    }

    /// Serves [`Self::router`] on `listener` until `shutdown` is cancelled.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }

    /// Handles one request: validates, answers, logs.
    fn process(
        &self,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        at: Instant,
        now_unix: i64,
    ) -> Value {
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
            Ok(_) => "ok".to_owned(),
            Err(e) => e.code.to_owned(),
        };
        state.push_log(entry);
        drop(state);

        match result {
            Ok(mut response) => {
                response.insert("RequestId".to_owned(), Value::String(request_id));
                json!({ "Response": response })
            }
            Err(e) => {
                tracing::debug!(code = e.code, message = %e.message, "simulator: error answer");
                json!({
                    "Response": {
                        "Error": { "Code": e.code, "Message": e.message },
                        "RequestId": request_id,
                    }
                })
            }
        }
    }
}

async fn handle(AxumState(sim): AxumState<Simulator>, request: Request) -> Response {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_BODY_BYTES).await.ok();
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let answer = sim.process(&parts.headers, body.as_deref(), at, now_unix);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

/// A header's value as text (lossy for non-UTF-8 bytes), if present.
fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Runs every check in the real API's order and builds the success object (without `RequestId`).
fn answer(
    state: &mut State,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    parsed_body: Option<&Value>,
    at: Instant,
    now_unix: i64,
) -> Result<Map<String, Value>, ApiError> {
    // Common parameters.
    let action = header_text(headers, &HeaderName::from_static("x-tc-action"));
    if action.as_deref() != Some(ACTION) {
        return Err(err(
            "InvalidAction",
            format!(
                "The action `{}` is not supported.",
                action.unwrap_or_default()
            ),
        ));
    }
    let version = header_text(headers, &HeaderName::from_static("x-tc-version"));
    if version.as_deref() != Some(VERSION) {
        return Err(err(
            "NoSuchVersion",
            format!(
                "The API version `{}` does not exist for action `{ACTION}`.",
                version.unwrap_or_default()
            ),
        ));
    }
    let Some(content_type) = header_text(headers, &header::CONTENT_TYPE) else {
        return Err(err(
            "InvalidParameter",
            "The Content-Type header is missing.",
        ));
    };
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(err(
            "InvalidParameter",
            format!("Content-Type `{content_type}` is not supported; use application/json."),
        ));
    }

    // Authentication.
    let Some(authorization) = header_text(headers, &header::AUTHORIZATION) else {
        return Err(err(
            "AuthFailure.InvalidAuthorization",
            "The Authorization header is missing.",
        ));
    };
    let Some(auth) = sign::parse_authorization(&authorization) else {
        return Err(err(
            "AuthFailure.InvalidAuthorization",
            "The Authorization header is not a valid TC3-HMAC-SHA256 authorization.",
        ));
    };
    if auth.signed_headers != "content-type;host" {
        return Err(err(
            "AuthFailure.InvalidAuthorization",
            format!("SignedHeaders `{}` is not supported.", auth.signed_headers),
        ));
    }
    let Some(timestamp_text) = header_text(headers, &HeaderName::from_static("x-tc-timestamp"))
    else {
        return Err(err(
            "MissingParameter",
            "The X-TC-Timestamp header is missing.",
        ));
    };
    let Ok(timestamp) = timestamp_text.parse::<i64>() else {
        return Err(err(
            "InvalidParameterValue",
            format!("X-TC-Timestamp `{timestamp_text}` is not a Unix time in seconds."),
        ));
    };
    let Some(account) = state.accounts.get_mut(&auth.secret_id) else {
        return Err(err(
            "AuthFailure.SecretIdNotFound",
            "The SecretId is not found, please ensure that your SecretId is correct.",
        ));
    };
    // Checked before anything else looks at the timestamp's date, so only sane timestamps go further.
    if now_unix.abs_diff(timestamp) > MAX_CLOCK_SKEW_SECS {
        return Err(err(
            "AuthFailure.SignatureExpire",
            format!(
                "Signature expired. Timestamp {timestamp} is more than {MAX_CLOCK_SKEW_SECS} s away from server time {now_unix}."
            ),
        ));
    }
    let expected_date = sign::utc_date(timestamp);
    if auth.date != expected_date {
        return Err(err(
            "AuthFailure.SignatureFailure",
            format!(
                "The credential date `{}` is not the UTC date `{expected_date}` of the timestamp.",
                auth.date
            ),
        ));
    }
    let Some(body) = body else {
        return Err(err(
            "InvalidParameter",
            "The request body could not be read.",
        ));
    };
    let host = header_text(headers, &header::HOST).unwrap_or_default();
    let expected = sign::signature(
        &account.secret_key,
        &SigningInput {
            host: &host,
            content_type: &content_type,
            service: SERVICE,
            timestamp,
            body,
        },
    );
    if auth.service != SERVICE || !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes())
    {
        return Err(err(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is correct.",
        ));
    }

    // Rate limit: a sliding window of one second over accepted arrivals.
    let window = Duration::from_secs(1);
    while account
        .accepted
        .front()
        .is_some_and(|first| at.saturating_duration_since(*first) >= window)
    {
        account.accepted.pop_front();
    }
    let limit = usize::try_from(state.rate_limit).unwrap_or(usize::MAX);
    if account.accepted.len() >= limit {
        return Err(err(
            "RequestLimitExceeded",
            format!("Your current request rate exceeds the limit of {limit} per second."),
        ));
    }
    account.accepted.push_back(at);

    // Parameters.
    let query = parse_query(parsed_body)?;
    let drain = state.drain && query.page.is_none_or(|(num, _)| num == 1);
    let list = &mut account.lists[query.package_type];
    if drain {
        let now = demo::beijing_time(time::Duration::ZERO);
        for package in list.iter_mut() {
            drain_package(package, &now);
        }
    }

    let mut items: Vec<&Value> = list.iter().collect();
    let field = query.order.field();
    let descending = query.order.descending();
    items.sort_by(|a, b| {
        let (a, b) = (
            a.get(field).and_then(Value::as_str),
            b.get(field).and_then(Value::as_str),
        );
        match (a, b) {
            (Some(a), Some(b)) if descending => b.cmp(a),
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
    });

    let total = items.len();
    let (page_items, page_num, page_size, total_page): (Vec<Value>, i64, i64, usize) =
        match query.page {
            Some((num, size)) => {
                // num >= 1 and 10 <= size <= 100 were checked.
                let size_usize = usize::try_from(size).unwrap_or(usize::MAX);
                let skip = usize::try_from(num.saturating_sub(1))
                    .unwrap_or(usize::MAX)
                    .saturating_mul(size_usize);
                let page = items
                    .iter()
                    .skip(skip)
                    .take(size_usize)
                    .map(|v| (*v).clone())
                    .collect();
                (page, num, size, total.div_ceil(size_usize.max(1)))
            }
            None => (
                items.iter().map(|v| (*v).clone()).collect(),
                1,
                UNPAGED_PAGE_SIZE,
                1,
            ),
        };

    let modes = &account.bill_modes[query.package_type];
    let mut response = Map::new();
    response.insert("LivePackageInfoList".to_owned(), Value::Array(page_items));
    response.insert(
        "PackageBillMode".to_owned(),
        modes.package_bill_mode.clone(),
    );
    if query.package_type == 0 || !modes.flux_package_bill_mode.is_null() {
        response.insert(
            "FluxPackageBillMode".to_owned(),
            modes.flux_package_bill_mode.clone(),
        );
    }
    let totals = [
        ("TotalPage", json!(total_page)),
        ("TotalNum", json!(total)),
        ("PageNum", json!(page_num)),
        ("PageSize", json!(page_size)),
    ];
    for (name, value) in totals {
        let value = if account.null_totals {
            Value::Null
        } else {
            value
        };
        response.insert(name.to_owned(), value);
    }
    Ok(response)
}

/// Validates the body against the API's parameter rules.
fn parse_query(body: Option<&Value>) -> Result<Query, ApiError> {
    let Some(Value::Object(body)) = body else {
        return Err(err(
            "InvalidParameter",
            "The request body must be a JSON object.",
        ));
    };
    if let Some(unknown) = body
        .keys()
        .find(|k| !KNOWN_PARAMETERS.contains(&k.as_str()))
    {
        return Err(err(
            "UnknownParameter",
            format!("The parameter `{unknown}` is not recognized."),
        ));
    }
    let package_type = match body.get("PackageType") {
        None | Some(Value::Null) => {
            return Err(err(
                "MissingParameter",
                "The request is missing a required parameter `PackageType`.",
            ));
        }
        Some(value) => match value.as_i64() {
            Some(n @ 0..=2) => usize::try_from(n).unwrap_or_default(),
            _ => {
                return Err(err(
                    "InvalidParameterValue",
                    format!("PackageType `{value}` is invalid; use 0, 1 or 2."),
                ));
            }
        },
    };
    let page_num = optional_integer(body, "PageNum")?;
    if let Some(n) = page_num {
        if n < 1 {
            return Err(err(
                "InvalidParameterValue",
                format!("PageNum `{n}` is invalid; it starts at 1."),
            ));
        }
    }
    let page_size = optional_integer(body, "PageSize")?;
    if let Some(n) = page_size {
        if !(10..=100).contains(&n) {
            return Err(err(
                "InvalidParameterValue",
                format!("PageSize `{n}` is invalid; use 10 to 100."),
            ));
        }
    }
    let order = match body.get("OrderBy") {
        None | Some(Value::Null) => OrderBy::BuyTimeDesc,
        Some(Value::String(s)) => match s.as_str() {
            "BuyTimeDesc" => OrderBy::BuyTimeDesc,
            "BuyTimeAsc" => OrderBy::BuyTimeAsc,
            "ExpireTimeDesc" => OrderBy::ExpireTimeDesc,
            "ExpireTimeAsc" => OrderBy::ExpireTimeAsc,
            _ => {
                return Err(err(
                    "InvalidParameterValue",
                    format!("OrderBy `{s}` is invalid."),
                ));
            }
        },
        Some(other) => {
            return Err(err(
                "InvalidParameterValue",
                format!("OrderBy `{other}` is invalid."),
            ));
        }
    };
    if package_type == 2 && order.field() == "ExpireTime" {
        return Err(err(
            "InvalidParameterValue",
            "OrderBy ExpireTimeDesc/ExpireTimeAsc is not supported for PackageType 2.",
        ));
    }
    Ok(Query {
        package_type,
        page: page_num.zip(page_size),
        order,
    })
}

/// An optional integer parameter: absent or null is `None`, anything but an integer is an error.
fn optional_integer(body: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_i64().map(Some).ok_or_else(|| {
            err(
                "InvalidParameterValue",
                format!("{name} `{value}` is not an integer."),
            )
        }),
    }
}

/// Demo drain of one package: 0.2 % of `Total` (at least 1) from `Left` to `Used`; `Status` 4 at 0.
/// Only in-use packages whose `ExpireTime` (if a string) is not before `now` are drained.
fn drain_package(package: &mut Value, now: &str) {
    let Some(object) = package.as_object_mut() else {
        return;
    };
    if object
        .get("ExpireTime")
        .and_then(Value::as_str)
        .is_some_and(|expire| expire < now)
    {
        return;
    }
    let int = |name: &str| object.get(name).and_then(Value::as_i64);
    let (Some(1), Some(total), Some(used), Some(left)) =
        (int("Status"), int("Total"), int("Used"), int("Left"))
    else {
        return;
    };
    if total <= 0 || left <= 0 {
        return;
    }
    let step = (total / 500).max(1);
    let new_left = left.saturating_sub(step).max(0);
    let moved = left - new_left;
    object.insert("Left".to_owned(), json!(new_left));
    object.insert("Used".to_owned(), json!(used.saturating_add(moved)));
    if new_left == 0 {
        object.insert("Status".to_owned(), json!(4));
    }
}

/// A package's `Id` as text (strings as they are, numbers printed), for matching.
fn id_key(package: &Value) -> Option<String> {
    match package.get("Id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A UUID-v4-shaped id, unique within the process (its last group embeds a counter).
fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static BASE: OnceLock<u64> = OnceLock::new();
    let base = *BASE.get_or_init(|| RandomState::new().hash_one(SystemTime::now()));
    let n = COUNTER.fetch_add(1, AtomicOrdering::Relaxed);
    let hasher = RandomState::new();
    let a = hasher.hash_one((n, base));
    let b = hasher.hash_one((a, n));
    let tail = base.wrapping_add(n) & 0xffff_ffff_ffff;
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        tail
    )
}
