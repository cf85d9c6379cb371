//! The HTTP client of `DescribeLivePackageInfo`: signs, sends, bounds and classifies one call.
//!
//! One call = one permit from the key's [`Budget`] (held from the send until one window after the
//! answer or failure is back, in the lane of the account's query type), one increment of
//! `tencent_live_exporter_api_requests_total`, one observation of the duration histogram, and on
//! failure one increment of the error counter with a `code` label.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};

use super::credentials::{CredentialError, CredentialSource, FetchContext};
use super::models::{AnswerError, PageAnswer, parse_answer};
use super::sign::{SigningInput, authorization};
use crate::exposition::metrics::ExporterMetrics;
use crate::exposition::packages::QueryType;
use crate::poll::budget::Budget;

pub const ACTION: &str = "DescribeLivePackageInfo";
pub const VERSION: &str = "2018-08-01";
/// The signing service; fixed, as in the SDKs' Live client (the endpoint may be a bare IP).
pub const SERVICE: &str = "live";
/// Bodies larger than this are refused while being read, never buffered whole.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
const CONTENT_TYPE_JSON: &str = "application/json";
/// The API's answer to a refused session token: worth one refresh and one retry.
pub const TOKEN_FAILURE: &str = "AuthFailure.TokenFailure";

/// Why one call failed. Never carries secret material.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("API error {code}: {message} (RequestId {request_id})")]
    Api {
        code: String,
        message: String,
        request_id: String,
    },
    #[error("HTTP status {0}")]
    Http(u16),
    /// The deadline, and ` (through the proxy …)` when the call went through one.
    #[error("no answer within {0:?}{1}")]
    Timeout(Duration, String),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("{0}")]
    Decode(String),
    #[error("answer larger than {MAX_BODY_BYTES} bytes, refused")]
    TooLarge,
    #[error("{0}")]
    Credentials(String),
}

impl ApiError {
    /// The `code` label of `tencent_live_exporter_api_request_errors_total`.
    pub fn code(&self) -> String {
        match self {
            ApiError::Api { code, .. } => code.clone(),
            ApiError::Http(status) => format!("http_{status}"),
            ApiError::Timeout(..) => "timeout".into(),
            ApiError::Connect(_) => "connect".into(),
            ApiError::Decode(_) => "decode".into(),
            ApiError::TooLarge => "response_too_large".into(),
            ApiError::Credentials(_) => "credentials".into(),
        }
    }

    /// Transient faults worth another try (the SDK retryer's set, plus the API's internal
    /// errors); authentication, parameter and service-state errors are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Api { code, .. } => {
                code.starts_with("RequestLimitExceeded") || code.starts_with("InternalError")
            }
            ApiError::Http(status) => *status >= 500 || *status == 429,
            ApiError::Timeout(..) | ApiError::Connect(_) | ApiError::Decode(_) => true,
            ApiError::TooLarge | ApiError::Credentials(_) => false,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            ApiError::Api { request_id, .. } => Some(request_id),
            _ => None,
        }
    }
}

impl From<CredentialError> for ApiError {
    fn from(e: CredentialError) -> Self {
        ApiError::Credentials(e.to_string())
    }
}

/// How a request reaches the API.
#[derive(Clone)]
pub enum Transport {
    /// HTTPS (or HTTP to a local simulator) with reqwest and rustls; one shared connection pool.
    Http(reqwest::Client),
    /// An in-process service, such as the simulator's router: no sockets, so tests can pause
    /// time and still run signing, budget, deadline, size cap and parsing exactly as in production.
    InProcess(axum::Router),
}

/// A client for one account. Cheap to share: pollers of the account hold it in an `Arc`.
pub struct LiveClient {
    transport: Transport,
    /// Where `POST /` goes.
    endpoint: Url,
    /// The `Host` header as reqwest sends it (port included when not the default), for signing.
    host: String,
    credentials: CredentialSource,
    /// The request budget of the key that signs, shared by all of the account's pollers and by
    /// every other account that signs with the same key (or shares its `rate_limit_group`).
    budget: Arc<Budget>,
    /// The `account` label.
    account: String,
    /// The proxy reqwest sends the calls through (`HTTPS_PROXY`, ...), without credentials:
    /// named in connection errors, which otherwise name only the API.
    proxy: Option<String>,
    metrics: Arc<ExporterMetrics>,
    /// Deadline of one call, from connect to the last body byte.
    timeout: Duration,
}

impl LiveClient {
    pub fn new(
        transport: Transport,
        endpoint: Url,
        credentials: CredentialSource,
        budget: Arc<Budget>,
        account: String,
        metrics: Arc<ExporterMetrics>,
        timeout: Duration,
    ) -> Self {
        let host = host_header(&endpoint);
        let proxy = match &transport {
            Transport::Http(_) => proxy_for(
                &endpoint,
                &hyper_util::client::proxy::matcher::Matcher::from_system(),
            ),
            Transport::InProcess(_) => None,
        };
        LiveClient {
            transport,
            endpoint,
            host,
            credentials,
            budget,
            account,
            proxy,
            metrics,
            timeout,
        }
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// Fetches one page: `PageNum` and `PageSize` are always sent (the API ignores one without
    /// the other). An `AuthFailure.TokenFailure` answer (the session token was refused) makes the
    /// account's credential source fetch new credentials, once, and the call is made once more.
    pub async fn describe_page(
        &self,
        query: QueryType,
        page_num: u32,
        page_size: u32,
    ) -> Result<PageAnswer, ApiError> {
        let body = format!(
            r#"{{"PackageType":{},"PageNum":{page_num},"PageSize":{page_size}}}"#,
            query.code()
        );
        let mut refreshed = false;
        loop {
            let (bytes, generation) = self.call(body.clone().into_bytes(), query).await?;
            let err = match parse_answer(&bytes, query) {
                Ok(answer) => return Ok(answer),
                Err(AnswerError::Api {
                    code,
                    message,
                    request_id,
                }) => ApiError::Api {
                    code,
                    message,
                    request_id,
                },
                Err(AnswerError::Decode(m)) => ApiError::Decode(m),
            };
            self.metrics.api_error(&self.account, &err.code());
            // The session token was refused (expired early, revoked): new credentials, once.
            if !refreshed && err.code() == TOKEN_FAILURE && self.credentials.refreshable() {
                refreshed = true;
                tracing::info!(
                    account = %self.account,
                    source = self.credentials.name(),
                    request_id = err.request_id().unwrap_or("-"),
                    "{TOKEN_FAILURE}: fetching new credentials and trying once more"
                );
                self.credentials.invalidate(generation);
                continue;
            }
            return Err(err);
        }
    }

    /// One signed call within the budget; returns the raw body of a 200 answer, and the
    /// generation of the credentials it was signed with.
    async fn call(&self, body: Vec<u8>, query: QueryType) -> Result<(Vec<u8>, u64), ApiError> {
        let lease = self
            .credentials
            .lease(FetchContext {
                transport: &self.transport,
                timeout: self.timeout,
            })
            .await?;
        let credentials = lease.credentials;
        // Held until the answer or failure is back (`done` below), so the call counts in every
        // window in which it may have arrived; if this future is dropped mid-call, as long as
        // the timeout would have held it.
        let mut permit = self
            .budget
            .acquire(&format!("{}/{}", self.account, query))
            .await;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let auth = authorization(
            &credentials.secret_id,
            credentials.key(),
            &SigningInput {
                host: &self.host,
                content_type: CONTENT_TYPE_JSON,
                service: SERVICE,
                timestamp,
                body: &body,
            },
        );
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_JSON));
        headers.insert("X-TC-Action", HeaderValue::from_static(ACTION));
        headers.insert("X-TC-Version", HeaderValue::from_static(VERSION));
        headers.insert("X-TC-Timestamp", HeaderValue::from(timestamp));
        headers.insert(
            "X-TC-RequestClient",
            HeaderValue::from_static(concat!("tencent-live-exporter/", env!("CARGO_PKG_VERSION"))),
        );
        let mut auth = HeaderValue::from_str(&auth)
            .map_err(|_| ApiError::Credentials("SecretId is not a valid header value".into()))?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        if let Some(token) = credentials.token() {
            let mut token = HeaderValue::from_str(token)
                .map_err(|_| ApiError::Credentials("token is not a valid header value".into()))?;
            token.set_sensitive(true);
            headers.insert("X-TC-Token", token);
        }

        self.metrics.api_request(&self.account);
        let started = tokio::time::Instant::now();
        permit.sending(self.timeout);
        let result = tokio::time::timeout(self.timeout, self.send(headers, body)).await;
        permit.done();
        self.metrics
            .api_duration(&self.account, started.elapsed().as_secs_f64());
        let result = result.unwrap_or_else(|_| {
            Err(ApiError::Timeout(
                self.timeout,
                through(self.proxy.as_deref()),
            ))
        });
        if let Err(e) = &result {
            self.metrics.api_error(&self.account, &e.code());
        }
        result.map(|bytes| (bytes, lease.generation))
    }

    async fn send(&self, headers: HeaderMap, body: Vec<u8>) -> Result<Vec<u8>, ApiError> {
        match &self.transport {
            Transport::Http(http) => {
                let mut response = http
                    .post(self.endpoint.clone())
                    .headers(headers)
                    .body(body)
                    .timeout(self.timeout)
                    .send()
                    .await
                    .map_err(|e| transport_error(&e, self.timeout, self.proxy.as_deref()))?;
                check_head(response.status().as_u16(), response.content_length())?;
                let mut limited = LimitedBody::default();
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .map_err(|e| transport_error(&e, self.timeout, self.proxy.as_deref()))?
                {
                    limited.push(&chunk)?;
                }
                Ok(limited.bytes)
            }
            Transport::InProcess(router) => {
                use http_body_util::BodyExt as _;
                use tower::ServiceExt as _;
                let mut request = axum::http::Request::post("/")
                    .body(axum::body::Body::from(body))
                    .map_err(|e| ApiError::Connect(e.to_string()))?;
                *request.headers_mut() = headers;
                let host = HeaderValue::from_str(&self.host)
                    .map_err(|e| ApiError::Connect(e.to_string()))?;
                request.headers_mut().insert(reqwest::header::HOST, host);
                let response = router
                    .clone()
                    .oneshot(request)
                    .await
                    .map_err(|e| ApiError::Connect(e.to_string()))?;
                let length = response
                    .headers()
                    .get(reqwest::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok());
                check_head(response.status().as_u16(), length)?;
                let mut body = response.into_body();
                let mut limited = LimitedBody::default();
                while let Some(frame) = body.frame().await {
                    let frame =
                        frame.map_err(|e| ApiError::Decode(format!("answer cut off: {e}")))?;
                    if let Some(data) = frame.data_ref() {
                        limited.push(data)?;
                    }
                }
                Ok(limited.bytes)
            }
        }
    }
}

/// Refuses a non-2xx status, or a declared length over the cap, before reading any body.
fn check_head(status: u16, content_length: Option<u64>) -> Result<(), ApiError> {
    if !(200..300).contains(&status) {
        return Err(ApiError::Http(status));
    }
    if content_length.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::TooLarge);
    }
    Ok(())
}

/// A body read chunk by chunk that refuses to grow past [`MAX_BODY_BYTES`].
#[derive(Default)]
struct LimitedBody {
    bytes: Vec<u8>,
}

impl LimitedBody {
    fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        if self.bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::TooLarge);
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }
}

fn transport_error(e: &reqwest::Error, timeout: Duration, proxy: Option<&str>) -> ApiError {
    let through = through(proxy);
    if e.is_timeout() {
        ApiError::Timeout(timeout, through)
    } else if e.is_body() || e.is_decode() {
        ApiError::Decode(format!("answer cut off: {}{through}", error_chain(e)))
    } else {
        ApiError::Connect(format!("{}{through}", error_chain(e)))
    }
}

/// What a transport error adds when the call went through a proxy: reqwest names the API's URL
/// only, even when the connection that failed was the proxy's.
fn through(proxy: Option<&str>) -> String {
    proxy.map_or(String::new(), |p| {
        format!(" (through the proxy {p}, from HTTP(S)_PROXY / ALL_PROXY; NO_PROXY exempts hosts)")
    })
}

/// The proxy `matcher` (reqwest's rules: `HTTPS_PROXY` / `HTTP_PROXY` by the URL's scheme, else
/// `ALL_PROXY`, none for hosts in `NO_PROXY`) sends calls to `url` through, as
/// `scheme://host:port`: any user and password in the variable are left out.
pub fn proxy_for(
    url: &Url,
    matcher: &hyper_util::client::proxy::matcher::Matcher,
) -> Option<String> {
    let uri: axum::http::Uri = url.as_str().parse().ok()?;
    let intercept = matcher.intercept(&uri)?;
    let proxy = intercept.uri();
    let host = proxy.host()?;
    let scheme = proxy.scheme_str().unwrap_or("http");
    Some(match proxy.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// reqwest's top-level message is vague ("error sending request"); the causes say what happened.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// The `Host` header value reqwest sends for a URL: the port only when it is not the default.
pub fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The HTTP client every account shares for the Live API and STS: rustls, keep-alive, a proxy
/// only from the environment's `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`. Redirects are never
/// followed: a 3xx is an answer like any other, so a signed request (with `X-TC-Token`) never
/// goes to a host the configuration did not name, and no other host's answer is accepted.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    base_client(timeout).build()
}

/// The client for the CVM metadata service: as [`http_client`], but never through a proxy,
/// whatever the environment says; the service is link-local to the instance and a proxy could
/// neither reach it nor be trusted with the role credentials it answers.
pub fn metadata_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    base_client(timeout).no_proxy().build()
}

fn base_client(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("tencent-live-exporter/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_keeps_only_non_default_ports() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            host_header(&u("https://live.tencentcloudapi.com")),
            "live.tencentcloudapi.com"
        );
        assert_eq!(
            host_header(&u("https://live.tencentcloudapi.com:443/")),
            "live.tencentcloudapi.com"
        );
        assert_eq!(host_header(&u("http://127.0.0.1:8080")), "127.0.0.1:8080");
    }

    #[test]
    fn the_proxy_in_use_is_named_without_its_credentials() {
        use hyper_util::client::proxy::matcher::Matcher;
        let api = Url::parse("https://live.tencentcloudapi.com/").unwrap();
        let local = Url::parse("http://127.0.0.1:8080/").unwrap();
        let m = Matcher::builder()
            .https("http://user:secret-pass@proxy.corp:3128")
            .http("http://plain.corp:8080")
            .no("127.0.0.1,.internal")
            .build();
        assert_eq!(
            proxy_for(&api, &m).as_deref(),
            Some("http://proxy.corp:3128")
        );
        // NO_PROXY exempts; a scheme without a proxy has none.
        assert_eq!(proxy_for(&local, &m), None);
        let internal = Url::parse("https://live.internal/").unwrap();
        assert_eq!(proxy_for(&internal, &m), None);
        assert_eq!(proxy_for(&api, &Matcher::builder().build()), None);
        let all = Matcher::builder().all("socks5h://proxy.corp:1080").build();
        assert_eq!(
            proxy_for(&api, &all).as_deref(),
            Some("socks5h://proxy.corp:1080")
        );
    }

    #[tokio::test]
    async fn a_refused_proxy_is_named_in_the_error() {
        // A port nothing listens on stands for a proxy that is down.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let proxy = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .proxy(reqwest::Proxy::https(&proxy).unwrap())
            .build()
            .unwrap();
        let e = http
            .post("https://live.tencentcloudapi.com/")
            .send()
            .await
            .unwrap_err();
        let msg = transport_error(&e, Duration::from_secs(1), Some(&proxy)).to_string();
        assert!(msg.starts_with("connection failed:"), "{msg}");
        assert!(msg.contains(&format!("through the proxy {proxy}")), "{msg}");
        let direct = transport_error(&e, Duration::from_secs(1), None).to_string();
        assert!(!direct.contains("proxy 127"), "{direct}");
        // A proxy that never answers: the timeout names it too.
        let timeout = ApiError::Timeout(Duration::from_secs(10), through(Some(&proxy)));
        assert_eq!(
            timeout.to_string(),
            format!(
                "no answer within 10s (through the proxy {proxy}, from HTTP(S)_PROXY / ALL_PROXY; NO_PROXY exempts hosts)"
            )
        );
    }

    #[test]
    fn error_codes_and_retry_classes() {
        let api = |code: &str| ApiError::Api {
            code: code.into(),
            message: String::new(),
            request_id: "r".into(),
        };
        assert_eq!(ApiError::Http(502).code(), "http_502");
        assert_eq!(
            ApiError::Timeout(Duration::from_secs(1), String::new()).code(),
            "timeout"
        );
        assert_eq!(api("InternalError.DBError").code(), "InternalError.DBError");
        assert!(api("RequestLimitExceeded.UinLimitExceeded").is_retryable());
        assert!(api("InternalError").is_retryable());
        assert!(!api("AuthFailure.SignatureFailure").is_retryable());
        assert!(!api("ResourceNotFound.StopService").is_retryable());
        assert!(!api("InvalidParameterValue").is_retryable());
        assert!(ApiError::Http(503).is_retryable());
        assert!(!ApiError::Http(404).is_retryable());
        assert!(!ApiError::TooLarge.is_retryable());
    }
}
