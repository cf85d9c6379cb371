//! The one HTTP path of every Tencent call: the Live API, STS and the CVM metadata service.
//!
//! A [`Transport`] holds two cloneable boxed tower services (`http::Request<Bytes>` →
//! `http::Response`): one for the Live API and STS (through the environment's proxy, if any) and
//! one for the metadata service (never through a proxy). Production builds both from reqwest
//! ([`Transport::http`]); tests inject one service, such as the simulator's router, for both
//! ([`Transport::service`]): no sockets, so paused time drives every deadline, and signing,
//! budget, deadline, answer cap and parsing run exactly as in production.
//!
//! [`Transport::exchange`] is the only place a request is sent: the deadline, the status and
//! declared-length check, the body read within its cap, and one function (`classify`) that
//! turns every failure into a [`TransportError`], naming the proxy when one was used. This module
//! owns the answer-size caps ([`Answer::limit`]).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{self, HeaderValue, header};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper_util::client::proxy::matcher::Matcher;
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

/// Any error a service gives, boxed; the one error mapping looks inside for reqwest's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// An answer's body as every service gives it.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;
/// One request: an absolute URI, headers and the whole body.
pub type Request = http::Request<Bytes>;
type Service = BoxCloneSyncService<Request, http::Response<ResponseBody>, BoxError>;

/// Cap of a Live API answer (a page of packages): larger ones are refused while being read,
/// never buffered whole.
pub const MAX_API_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// Cap of an answer of the metadata service or STS: they are small (one set of credentials).
pub const MAX_CREDENTIAL_ANSWER_BYTES: usize = 64 * 1024;
/// Connecting to the link-local metadata service takes no longer than this.
pub const METADATA_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Which kind of answer a call expects: it sets the size cap and the route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `DescribeLivePackageInfo`: through the environment's proxy; [`MAX_API_ANSWER_BYTES`].
    LiveApi,
    /// `AssumeRole*`: through the environment's proxy; [`MAX_CREDENTIAL_ANSWER_BYTES`].
    Sts,
    /// The CVM metadata service: never through a proxy; [`MAX_CREDENTIAL_ANSWER_BYTES`].
    Metadata,
}

impl Answer {
    /// The most bytes an answer of this kind may have.
    pub const fn limit(self) -> usize {
        match self {
            Answer::LiveApi => MAX_API_ANSWER_BYTES,
            Answer::Sts | Answer::Metadata => MAX_CREDENTIAL_ANSWER_BYTES,
        }
    }

    /// Whether the call bypasses any proxy (the metadata service is link-local to the instance:
    /// a proxy could neither reach it nor be trusted with the role credentials it answers).
    const fn direct(self) -> bool {
        matches!(self, Answer::Metadata)
    }
}

/// Why one exchange failed. Never carries secret material (headers are never quoted).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransportError {
    /// A status outside 2xx; the body is not read.
    #[error("HTTP {0}")]
    Status(u16),
    /// The declared or the read length is over the cap (bytes).
    #[error("answer larger than {0} bytes, refused")]
    TooLarge(usize),
    /// The deadline, and ` (through the proxy …)` when the call went through one.
    #[error("no answer within {0:?}{1}")]
    Timeout(Duration, String),
    /// No answer head: connecting, TLS, sending; the cause chain and the proxy, if any.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The head came, the body broke off.
    #[error("answer cut off: {0}")]
    CutOff(String),
}

impl From<http::Error> for TransportError {
    fn from(e: http::Error) -> Self {
        TransportError::Connect(format!("building the request: {e}"))
    }
}

/// How every Tencent call reaches its server. Cheap to clone: clones share the connection pools.
#[derive(Clone)]
pub struct Transport {
    /// The Live API and STS.
    proxied: Service,
    /// The metadata service.
    direct: Service,
    /// The environment's proxy rules, to name the proxy in errors (reqwest names only the URL
    /// asked for, even when the connection that failed was the proxy's); none when injected.
    proxies: Option<Arc<Matcher>>,
}

impl Transport {
    /// HTTPS (or HTTP to a local simulator) with reqwest and rustls, keep-alive, a proxy only
    /// from the environment's `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY`, `connect_timeout`
    /// to connect; the metadata service directly, [`METADATA_CONNECT_TIMEOUT`] to connect.
    /// Redirects are never followed: a 3xx is an answer like any other, so a signed request (with
    /// `X-TC-Token`) never goes to a host the configuration did not name.
    pub fn http(connect_timeout: Duration) -> Result<Transport, reqwest::Error> {
        Ok(Transport::reqwest(
            client(connect_timeout).build()?,
            client(METADATA_CONNECT_TIMEOUT).no_proxy().build()?,
            Some(Matcher::from_system()),
        ))
    }

    fn reqwest(
        proxied: reqwest::Client,
        direct: reqwest::Client,
        proxies: Option<Matcher>,
    ) -> Self {
        Transport {
            proxied: from_reqwest(proxied),
            direct: from_reqwest(direct),
            proxies: proxies.map(Arc::new),
        }
    }

    /// Every call through `service` (such as `Simulator::router()`), which gets each request as a
    /// server would: the path in origin form and a `Host` header.
    pub fn service<S, B>(service: S) -> Transport
    where
        S: tower::Service<http::Request<Full<Bytes>>, Response = http::Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let service = service
            .map_request(as_received)
            .map_response(|response: http::Response<B>| {
                response.map(|body| body.map_err(Into::into).boxed_unsync())
            })
            .map_err(Into::into);
        let service = BoxCloneSyncService::new(service);
        Transport {
            proxied: service.clone(),
            direct: service,
            proxies: None,
        }
    }

    /// Sends `request` and reads the answer's body, all within `deadline`. A status outside 2xx
    /// or a `Content-Length` over the cap is refused before any body byte is read; a body that
    /// grows past the cap is refused while it is read, never buffered whole.
    pub async fn exchange(
        &self,
        answer: Answer,
        request: Request,
        deadline: Duration,
    ) -> Result<Bytes, TransportError> {
        let uri = request.uri().clone();
        let through = || match (&self.proxies, answer.direct()) {
            (Some(matcher), false) => through(proxy_for(&uri, matcher).as_deref()),
            _ => String::new(),
        };
        let service = if answer.direct() {
            &self.direct
        } else {
            &self.proxied
        };
        match tokio::time::timeout(deadline, read(service.clone(), request, answer.limit())).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(failure)) => Err(classify(failure, deadline, through)),
            Err(_) => Err(TransportError::Timeout(deadline, through())),
        }
    }
}

/// How [`read`] failed, before classification.
enum Failure {
    Status(u16),
    TooLarge(usize),
    /// The service gave no answer head.
    Send(BoxError),
    /// The body broke off.
    Body(BoxError),
}

async fn read(service: Service, request: Request, limit: usize) -> Result<Bytes, Failure> {
    let response = service.oneshot(request).await.map_err(Failure::Send)?;
    if !response.status().is_success() {
        return Err(Failure::Status(response.status().as_u16()));
    }
    let declared = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Failure::TooLarge(limit));
    }
    // Boxed as `Send` here, where the compiler can prove it: inside an `async fn` the body's
    // boxed error type trips a higher-ranked `Send` check (rust-lang/rust#64552).
    let collect: Pin<Box<dyn Future<Output = _> + Send>> =
        Box::pin(Limited::new(response.into_body(), limit).collect());
    match collect.await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(Failure::TooLarge(limit)),
        Err(e) => Err(Failure::Body(e)),
    }
}

/// The one mapping of failures: reqwest's timeouts are timeouts, its body and decode errors cut
/// answers, anything else before the head a failed connection; `through` names the proxy.
fn classify(failure: Failure, deadline: Duration, through: impl Fn() -> String) -> TransportError {
    let (error, reading) = match failure {
        Failure::Status(status) => return TransportError::Status(status),
        Failure::TooLarge(limit) => return TransportError::TooLarge(limit),
        Failure::Send(e) => (e, false),
        Failure::Body(e) => (e, true),
    };
    let reqwest = error.downcast_ref::<reqwest::Error>();
    if reqwest.is_some_and(reqwest::Error::is_timeout) {
        TransportError::Timeout(deadline, through())
    } else if reading || reqwest.is_some_and(|e| e.is_body() || e.is_decode()) {
        TransportError::CutOff(format!("{}{}", error_chain(&*error), through()))
    } else {
        TransportError::Connect(format!("{}{}", error_chain(&*error), through()))
    }
}

/// A reqwest client as a boxed service.
fn from_reqwest(client: reqwest::Client) -> Service {
    BoxCloneSyncService::new(tower::service_fn(move |request: Request| {
        let client = client.clone();
        async move {
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            Ok::<_, BoxError>(
                http::Response::from(response)
                    .map(|body| body.map_err(BoxError::from).boxed_unsync()),
            )
        }
    }))
}

/// The request as a server receives it: the path and query only, the authority as `Host`.
fn as_received(request: Request) -> http::Request<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    if let Some(authority) = parts.uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.entry(header::HOST).or_insert(host);
    }
    if let Some(path) = parts.uri.path_and_query() {
        parts.uri = http::Uri::from(path.clone());
    }
    http::Request::from_parts(parts, Full::new(body))
}

fn client(connect_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("tencent-live-exporter/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
}

/// What a transport error adds when the call went through a proxy: reqwest names the API's URL
/// only, even when the connection that failed was the proxy's.
fn through(proxy: Option<&str>) -> String {
    proxy.map_or(String::new(), |p| {
        format!(" (through the proxy {p}, from HTTP(S)_PROXY / ALL_PROXY; NO_PROXY exempts hosts)")
    })
}

/// The proxy `matcher` (reqwest's rules: `HTTPS_PROXY` / `HTTP_PROXY` by the URI's scheme, else
/// `ALL_PROXY`, none for hosts in `NO_PROXY`) sends calls to `uri` through, as
/// `scheme://host:port`: any user and password in the variable are left out.
pub fn proxy_for(uri: &http::Uri, matcher: &Matcher) -> Option<String> {
    let intercept = matcher.intercept(uri)?;
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

#[cfg(test)]
mod tests;
