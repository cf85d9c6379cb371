//! The simulator's HTTP side: the axum handler, request checks (body cap, signature, clock
//! skew, rate limit), injected faults applied to the answer, and the API's answer and error shapes.

use super::*;

/// The API's error shape.
pub(super) fn error_answer(code: &str, message: &str, request_id: String) -> Value {
    json!({
        "Response": {
            "Error": { "Code": code, "Message": message },
            "RequestId": request_id,
        }
    })
}

/// The router's state: the simulator, and what lets go of hanging requests.
#[derive(Clone)]
pub(super) struct Served {
    pub(super) sim: Simulator,
    pub(super) release: CancellationToken,
}

/// What the handler sends.
pub(super) enum Reply {
    /// HTTP 200 with this JSON (an answer or an API error).
    Json(Value),
    Status(StatusCode),
    Hang,
    Garbage,
    Truncated(Vec<u8>),
    Huge {
        bytes: usize,
        request_id: String,
    },
}

pub(super) async fn handle(AxumState(served): AxumState<Served>, request: Request) -> Response {
    let (before, after) = served.sim.network_delays();
    if !before.is_zero() {
        tokio::time::sleep(before).await;
    }
    let response = answer_request(&served, request).await;
    if !after.is_zero() {
        tokio::time::sleep(after).await;
    }
    response
}

pub(super) async fn answer_request(served: &Served, request: Request) -> Response {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_BODY_BYTES).await.ok();
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let json_type = [(header::CONTENT_TYPE, "application/json")];
    match served
        .sim
        .process(&parts.headers, body.as_deref(), at, now_unix)
    {
        Reply::Json(answer) => (StatusCode::OK, json_type, answer.to_string()).into_response(),
        Reply::Status(status) => (
            status,
            [(header::CONTENT_TYPE, "text/html")],
            format!("<html><body><h1>{status}</h1></body></html>"),
        )
            .into_response(),
        Reply::Hang => {
            served.release.cancelled().await;
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the simulator is shutting down",
            )
                .into_response()
        }
        Reply::Garbage => (StatusCode::OK, json_type, GARBAGE_BODY).into_response(),
        Reply::Truncated(text) => (StatusCode::OK, json_type, text).into_response(),
        Reply::Huge { bytes, request_id } => {
            let prefix =
                format!(r#"{{"Response":{{"RequestId":"{request_id}","LivePackageInfoList":["#);
            let body = HugeBody {
                prefix: Bytes::from(prefix),
                remaining: bytes,
            };
            (StatusCode::OK, json_type, Body::new(body)).into_response()
        }
    }
}

/// A [`Fault::Huge`] body: `remaining` more bytes, the prefix first, then spaces, in chunks of at
/// most [`HUGE_CHUNK_BYTES`]. No size hint, so it goes out chunked.
pub(super) struct HugeBody {
    prefix: Bytes,
    remaining: usize,
}

impl hyper::body::Body for HugeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let chunk = if this.prefix.is_empty() {
            Bytes::from_static(&HUGE_PADDING).slice(..this.remaining.min(HUGE_CHUNK_BYTES))
        } else {
            let n = this.prefix.len().min(this.remaining);
            this.prefix.split_to(n)
        };
        this.remaining -= chunk.len();
        Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }
}

/// A header's value as text (lossy for non-UTF-8 bytes), if present.
pub(super) fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Runs every check in the real API's order and builds the success object (without `RequestId`).
// Proven: `package_type` comes from `parse_query`, which accepts only 0..=2; the arrays have 3.
#[allow(clippy::indexing_slicing)]
pub(super) fn answer(
    state: &mut State,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    parsed_body: Option<&Value>,
    at: Instant,
    now_unix: i64,
) -> Result<Answer, ApiError> {
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
    // Temporary credentials (of the metadata service or STS) sign for their role's account.
    let token = header_text(headers, &HeaderName::from_static("x-tc-token"));
    let (account_id, temporary_key) = match state.sts.resolve(&auth.secret_id, token.as_deref(), at)
    {
        Ok(Some((account, key))) => (account, Some(key)),
        Ok(None) => (auth.secret_id.clone(), None),
        Err((code, message)) => return Err(err(code, message)),
    };
    let Some(account) = state.accounts.get_mut(&account_id) else {
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
        temporary_key.as_deref().unwrap_or(&account.secret_key),
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

    // Rate limit, strict as Tencent's: every arrival counts, refused ones included, so the 21st
    // call in any one-second window (by arrival) is refused.
    let window = Duration::from_secs(1);
    while account
        .arrivals
        .front()
        .is_some_and(|first| at.saturating_duration_since(*first) >= window)
    {
        account.arrivals.pop_front();
    }
    let limit = usize::try_from(state.rate_limit).unwrap_or(usize::MAX);
    let seen = account.arrivals.len();
    account.arrivals.push_back(at);
    if seen >= limit {
        return Err(err(
            "RequestLimitExceeded",
            format!("Your current request rate exceeds the limit of {limit} per second."),
        ));
    }

    // Parameters.
    let query = parse_query(parsed_body)?;

    // Faults, for requests that would otherwise be answered "ok".
    let page_num = query.page.map_or(1, |(num, _)| num);
    let mut null_totals = account.null_totals;
    let mut truncated = false;
    let mut shift_back = 0usize;
    let mut empty_page = false;
    let list = &mut account.lists[query.package_type];
    match account.faults.take(query.package_type, page_num) {
        None => {}
        Some(Fault::HttpStatus(code)) => {
            return Ok(Answer::Replaced(Replacement::Status(fault_status(code))));
        }
        Some(Fault::Hang) => return Ok(Answer::Replaced(Replacement::Hang)),
        Some(Fault::Garbage) => return Ok(Answer::Replaced(Replacement::Garbage)),
        Some(Fault::Huge(bytes)) => return Ok(Answer::Replaced(Replacement::Huge(bytes))),
        Some(Fault::ApiError(code)) => {
            let message = format!("Simulated fault: {code}.");
            return Ok(Answer::Replaced(Replacement::ApiError(code, message)));
        }
        Some(Fault::ApiErrorMessage { code, message }) => {
            return Ok(Answer::Replaced(Replacement::ApiError(code, message)));
        }
        Some(Fault::Truncated) => truncated = true,
        Some(Fault::NullTotals) => null_totals = true,
        Some(Fault::ShrinkBefore(n)) => shrink_front(list, query.order, n),
        Some(Fault::GrowBefore(n)) => grow_front(list, query.order, n),
        Some(Fault::ShiftBack(n)) => shift_back = n,
        Some(Fault::EmptyPage) => empty_page = true,
    }

    let drain = state.drain && query.page.is_none_or(|(num, _)| num == 1);
    if drain {
        let now = demo::beijing_time(time::Duration::ZERO);
        for package in list.iter_mut() {
            drain_package(package, &now);
        }
    }

    let mut items: Vec<&Value> = list.iter().collect();
    items.sort_by(|a, b| compare_packages(a, b, query.order));

    let total = items.len();
    let (page_items, page_num, page_size, total_page): (Vec<Value>, i64, i64, usize) =
        match query.page {
            Some((num, size)) => {
                // num >= 1 and 10 <= size <= 100 were checked.
                let size_usize = usize::try_from(size).unwrap_or(usize::MAX);
                let skip = usize::try_from(num.saturating_sub(1))
                    .unwrap_or(usize::MAX)
                    .saturating_mul(size_usize)
                    .saturating_sub(shift_back);
                let take = if empty_page { 0 } else { size_usize };
                let page = items
                    .iter()
                    .skip(skip)
                    .take(take)
                    .map(|v| (*v).clone())
                    .collect();
                (page, num, size, total.div_ceil(size_usize.max(1)))
            }
            None => (
                items
                    .iter()
                    .take(if empty_page { 0 } else { usize::MAX })
                    .map(|v| (*v).clone())
                    .collect(),
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
        let value = if null_totals { Value::Null } else { value };
        response.insert(name.to_owned(), value);
    }
    Ok(if truncated {
        Answer::Truncated(response)
    } else {
        Answer::Ok(response)
    })
}
