//! The HTTP client of `DescribeLivePackageInfo`: signs, sends (through the account's
//! [`Transport`]) and classifies one call.
//!
//! One call = one permit from the key's [`Budget`] (held from the send until one window after the
//! answer or failure is back, in the lane of the account's query type), one increment of
//! `tencent_live_exporter_api_requests_total`, one observation of the duration histogram, and on
//! failure one increment of the error counter with a `code` label.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;

use super::api3::{self, Call, host_header};
use super::credentials::{CredentialError, CredentialSource, FetchContext};
use super::models::{AnswerError, PageAnswer, parse_answer};
use super::transport::{Answer, MAX_API_ANSWER_BYTES, Transport, TransportError};
use crate::clock::unix_seconds;
use crate::domain::QueryType;
use crate::telemetry::ExporterMetrics;
use crate::tencent::budget::Budget;

/// `X-TC-Action` of every call: the one API the exporter uses (API page, 输入参数 `Action`).
pub const ACTION: &str = "DescribeLivePackageInfo";
/// `X-TC-Version` of every call (API page, 输入参数 `Version`).
pub const VERSION: &str = "2018-08-01";
/// The signing service; fixed, as in the SDKs' Live client (the endpoint may be a bare IP).
pub const SERVICE: &str = "live";
/// The API's answer to a refused session token: worth one refresh and one retry.
pub const TOKEN_FAILURE: &str = "AuthFailure.TokenFailure";

/// Why one call failed. Never carries secret material.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The API answered `Response.Error` (with HTTP 200, as it does for every error).
    #[error("API error {code}: {message} (RequestId {request_id})")]
    Api {
        /// `Error.Code`, e.g. `AuthFailure.SignatureFailure`, `RequestLimitExceeded`: the `code`
        /// label as is.
        code: String,
        /// `Error.Message`, as the API wrote it.
        message: String,
        /// `RequestId` of the answer, for Tencent's support; logged with every failure.
        request_id: String,
    },
    /// An HTTP status outside 2xx (the API answers errors with 200, so a proxy or gateway said
    /// it): the `code` label `http_<status>`.
    #[error("HTTP status {0}")]
    Http(u16),
    /// The deadline, and ` (through the proxy …)` when the call went through one.
    #[error("no answer within {0:?}{1}")]
    Timeout(Duration, String),
    /// No connection (DNS, refused, TLS, proxy): the reason, naming the proxy when there was one.
    #[error("connection failed: {0}")]
    Connect(String),
    /// A 200 answer that is not the API's JSON shape (the reason, with a short preview of the
    /// body when it is not JSON), or a body cut off mid-way.
    #[error("{0}")]
    Decode(String),
    /// The declared or the read length passed [`MAX_API_ANSWER_BYTES`]; the rest is not read:
    /// `response_too_large`.
    #[error("answer larger than {MAX_API_ANSWER_BYTES} bytes, refused")]
    TooLarge,
    /// No credentials to sign with (the source failed, or a SecretId or token is not a valid
    /// header value): the source's [`CredentialError`] in words, never secret material.
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

    /// The answer's `RequestId` when the API answered (only [`ApiError::Api`]).
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

impl From<TransportError> for ApiError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Status(status) => ApiError::Http(status),
            TransportError::TooLarge(_) => ApiError::TooLarge,
            TransportError::Timeout(deadline, through) => ApiError::Timeout(deadline, through),
            TransportError::Connect(m) => ApiError::Connect(m),
            cut @ TransportError::CutOff(_) => ApiError::Decode(cut.to_string()),
        }
    }
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
    budget: Budget,
    /// The `account` label.
    account: String,
    metrics: Arc<ExporterMetrics>,
    /// Deadline of one call, from connect to the last body byte.
    timeout: Duration,
}

impl LiveClient {
    /// A client of `endpoint` (validated: http(s), a host, path `/`) for the account named
    /// `account` (the `account` label). Every call is signed with `credentials`, waits for a
    /// permit of `budget`, is counted in `metrics` and ends within `timeout`. Builds no
    /// connection and asks no service: cannot fail.
    pub fn new(
        transport: Transport,
        endpoint: Url,
        credentials: CredentialSource,
        budget: Budget,
        account: String,
        metrics: Arc<ExporterMetrics>,
        timeout: Duration,
    ) -> Self {
        let host = host_header(&endpoint);
        LiveClient {
            transport,
            endpoint,
            host,
            credentials,
            budget,
            account,
            metrics,
            timeout,
        }
    }

    /// The account's name, the `account` label.
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
    async fn call(&self, body: Vec<u8>, query: QueryType) -> Result<(Bytes, u64), ApiError> {
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
            .acquire_signed(
                &format!("{}/{}", self.account, query),
                &credentials.secret_id,
                credentials.token.is_some(),
            )
            .await;
        let timestamp = unix_seconds();
        let headers = api3::headers(
            &Call {
                host: &self.host,
                service: SERVICE,
                action: ACTION,
                version: VERSION,
                region: None,
                timestamp,
                body: &body,
            },
            Some(&credentials),
        )
        .map_err(|e| ApiError::Credentials(e.to_string()))?;

        let request = axum::http::Request::post(self.endpoint.as_str()).body(Bytes::from(body));

        self.metrics.api_request(&self.account);
        let started = tokio::time::Instant::now();
        permit.sending(self.timeout);
        let result = match request {
            Ok(mut request) => {
                *request.headers_mut() = headers;
                self.transport
                    .exchange(Answer::LiveApi, request, self.timeout)
                    .await
            }
            Err(e) => Err(TransportError::from(e)),
        };
        permit.done();
        self.metrics
            .api_duration(&self.account, started.elapsed().as_secs_f64());
        let result = result.map_err(ApiError::from);
        if let Err(e) = &result {
            self.metrics.api_error(&self.account, &e.code());
        }
        result.map(|bytes| (bytes, lease.generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
