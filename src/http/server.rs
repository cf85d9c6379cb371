//! The HTTP server: `/metrics` (from the store's pre-encoded bytes), `/`, `/healthz` and
//! `POST /-/reload`.
//!
//! Handlers never call the API and never encode: a scrape clones an `Arc` and writes bytes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::clock::unix_now;
use crate::exposition::metrics::CONTENT_TYPE;
use crate::exposition::store::{Exposition, Store};
use crate::http::serve::PathRules;

/// Something that re-reads the configuration (the exporter; a stub in tests).
pub trait Reload: Send + Sync + 'static {
    /// Reads and applies the configuration again; `Err` with the reason (for the 500's body) when
    /// it was refused, in which case the running configuration stays.
    fn reload(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

#[derive(Clone)]
struct AppState {
    store: Arc<Store>,
    telemetry_path: Arc<str>,
    reload: Arc<dyn Reload>,
}

/// The liveness / readiness probe: never rate limited, so other clients cannot starve it.
pub const HEALTH_PATH: &str = "/healthz";
/// `POST` here reloads the configuration.
pub const RELOAD_PATH: &str = "/-/reload";

/// The routes' word to the web layer: `POST` only on [`RELOAD_PATH`], GET and HEAD elsewhere;
/// [`HEALTH_PATH`] never rate limited.
pub const PATH_RULES: PathRules = PathRules {
    post: &[RELOAD_PATH],
    unlimited: &[HEALTH_PATH],
};

/// The exporter's routes. Other methods on these paths get 405 ([`PATH_RULES`]).
pub fn router(store: Arc<Store>, telemetry_path: &str, reload: Arc<dyn Reload>) -> Router {
    let state = AppState {
        store,
        telemetry_path: telemetry_path.into(),
        reload,
    };
    Router::new()
        .route(telemetry_path, get(metrics))
        .route("/", get(landing))
        .route(HEALTH_PATH, get(healthz))
        .route(RELOAD_PATH, post(reload_config))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// `POST /-/reload`: 200 when the new configuration runs, 500 with the reason when it was
/// refused (the running configuration stays), as Prometheus does.
async fn reload_config(State(state): State<AppState>) -> Response {
    match state.reload.reload().await {
        Ok(()) => (StatusCode::OK, "configuration reloaded\n").into_response(),
        Err(reason) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed, the running configuration stays: {reason}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let exposition = state.store.exposition();
    if accepts_gzip(&headers) {
        (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)),
                (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
                (header::VARY, HeaderValue::from_static("Accept-Encoding")),
            ],
            exposition.gzip.clone(),
        )
            .into_response()
    } else {
        (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)),
                (header::VARY, HeaderValue::from_static("Accept-Encoding")),
            ],
            Body::new(Segments::new(exposition)),
        )
            .into_response()
    }
}

/// The plain exposition as a response body: its segments in order, one frame each, with the
/// exact length (so `Content-Length` is set), straight from the published bytes, no copy.
struct Segments {
    exposition: Arc<Exposition>,
    next: usize,
    remaining: u64,
}

impl Segments {
    fn new(exposition: Arc<Exposition>) -> Self {
        let remaining = exposition.text.len() as u64;
        Segments {
            exposition,
            next: 0,
            remaining,
        }
    }
}

impl hyper::body::Body for Segments {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let segment = self.exposition.text.segments().get(self.next).cloned();
        self.next += 1;
        if let Some(s) = &segment {
            self.remaining = self.remaining.saturating_sub(s.len() as u64);
        }
        std::task::Poll::Ready(segment.map(|s| Ok(hyper::body::Frame::data(s))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.exposition.text.segments().len()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

/// Whether the client takes gzip, by `Accept-Encoding` as RFC 9110 §12.5.3 reads it: codings and
/// parameter names are case-insensitive; an explicit `gzip` (or `x-gzip`) entry decides by its
/// quality, else `*` does, else not; `q=0` means "not acceptable". An entry whose quality is not
/// a valid qvalue is ignored; several headers count as one list.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip: Option<bool> = None;
    let mut any: Option<bool> = None;
    for item in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let mut quality = Some(1000);
        for param in parts {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if name.trim().eq_ignore_ascii_case("q") {
                quality = qvalue(value.trim());
            }
        }
        let Some(quality) = quality else { continue };
        let slot = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding == "*" {
            &mut any
        } else {
            continue;
        };
        // Repeated entries: the most restrictive wins.
        *slot = Some(slot.unwrap_or(true) && quality > 0);
    }
    gzip.or(any).unwrap_or(false)
}

/// A qvalue (`0`, `0.5`, `1`, `1.000`; at most three decimals) in thousandths; `None` if malformed.
fn qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Unknown paths say where things are, instead of an empty 404.
async fn not_found(State(state): State<AppState>, uri: axum::http::Uri) -> Response {
    let body = format!(
        "404 not found: {}\nmetrics are at {}, the status page at /, health at /healthz\n",
        uri.path(),
        state.telemetry_path
    );
    (StatusCode::NOT_FOUND, body).into_response()
}

/// A known path with the wrong method: the gate's 405 ([`PathRules::method_not_allowed`]).
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    PATH_RULES.method_not_allowed(&method, uri.path())
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// The status page: the store's last results, rendered for a person.
async fn landing(State(state): State<AppState>) -> Response {
    // Sorting and rendering every package is CPU work that grows with the accounts: it runs on
    // a blocking thread, so scrapes served by the async workers never wait behind it.
    let rendered = tokio::task::spawn_blocking(move || {
        crate::http::status_page::render(&state.store.pairs(), &state.telemetry_path, unix_now())
    })
    .await;
    match rendered {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("rendering the status page failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering the status page failed\n",
            )
                .into_response()
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled; in-flight requests finish.
/// Plain HTTP without authentication, with the default limits of [`crate::http::WebOptions`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(
        listener,
        router,
        crate::http::WebOptions::default(),
        shutdown,
    )
    .await
}

/// [`serve`] with the web configuration (`--web.config.file`: TLS, basic auth, headers) and
/// limits in `web`. Every listener gets a header read timeout, a bound on concurrent
/// connections, and only GET/HEAD (plus POST on `/-/reload`); see `crate::http`.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    web: crate::http::WebOptions,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    crate::http::serve::serve(listener, router, PATH_RULES, web, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::ExporterMetrics;
    use axum::body::Body;
    use axum::http::{Method, Request};
    use http_body_util::BodyExt;
    use std::time::Duration;
    use tower::ServiceExt;

    struct StubReload(bool);

    impl Reload for StubReload {
        fn reload(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
            let ok = self.0;
            Box::pin(async move {
                if ok {
                    Ok(())
                } else {
                    Err("accounts[0].name: must not be empty".into())
                }
            })
        }
    }

    fn app_with(reload_ok: bool) -> Router {
        router(
            Arc::new(Store::new(
                Arc::new(ExporterMetrics::new()),
                Duration::from_secs(900),
            )),
            "/custom/metrics",
            Arc::new(StubReload(reload_ok)),
        )
    }

    fn app() -> Router {
        app_with(true)
    }

    async fn call(method: Method, uri: &str) -> (StatusCode, Option<String>, String) {
        let resp = app()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn metrics_are_served_with_the_text_format_content_type() {
        let (status, ct, body) = call(Method::GET, "/custom/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            ct.as_deref(),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        assert!(body.contains("tencent_live_exporter_build_info"), "{body}");
        let (status, _, body) = call(Method::HEAD, "/custom/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn landing_links_the_metrics_path_and_health_answers() {
        let (status, ct, body) = call(Method::GET, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ct.unwrap().starts_with("text/html"));
        assert!(body.contains("href=\"/custom/metrics\""), "{body}");
        assert_eq!(call(Method::GET, "/healthz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn refusals_say_why() {
        let (status, _, body) = call(Method::GET, "/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body.contains("/nope") && body.contains("/custom/metrics"),
            "{body}"
        );
        let resp = app()
            .oneshot(
                Request::post("/custom/metrics")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[header::ALLOW], "GET, HEAD");
        let resp = app()
            .oneshot(Request::get("/-/reload").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.headers()[header::ALLOW], "POST");
    }

    /// `PATH_RULES.method_not_allowed` is the one 405 answer: every 405 the router gives, on any
    /// path and method, is byte for byte the one the gate gives (status, `Allow`, body), never
    /// axum's own (whose `Allow` reads `GET,HEAD` and whose body is empty).
    #[tokio::test]
    async fn every_405_of_the_router_is_the_gates_one_answer() {
        let mut refused = Vec::new();
        for path in ["/custom/metrics", "/", "/healthz", "/-/reload", "/nope"] {
            for method in [
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
                Method::OPTIONS,
                Method::TRACE,
            ] {
                let resp = app()
                    .oneshot(
                        Request::builder()
                            .method(method.clone())
                            .uri(path)
                            .body(Body::empty())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                if resp.status() != StatusCode::METHOD_NOT_ALLOWED {
                    continue;
                }
                let want = PATH_RULES.method_not_allowed(&method, path);
                assert_eq!(
                    resp.headers().get(header::ALLOW),
                    want.headers().get(header::ALLOW),
                    "{method} {path}"
                );
                let got = resp.into_body().collect().await.unwrap().to_bytes();
                let want = want.into_body().collect().await.unwrap().to_bytes();
                if method != Method::HEAD {
                    assert_eq!(got, want, "{method} {path}");
                }
                refused.push(format!("{method} {path}"));
            }
        }
        for expected in ["GET /-/reload", "POST /custom/metrics", "DELETE /"] {
            assert!(refused.iter().any(|r| r == expected), "{refused:?}");
        }
    }

    #[tokio::test]
    async fn wrong_methods_and_paths_are_refused() {
        assert_eq!(
            call(Method::POST, "/custom/metrics").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            call(Method::DELETE, "/").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(call(Method::GET, "/metrics").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn reload_answers_200_or_500_with_the_reason_and_only_to_post() {
        let resp = app_with(true)
            .oneshot(Request::post("/-/reload").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = app_with(false)
            .oneshot(Request::post("/-/reload").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("accounts[0].name"));
        assert_eq!(
            call(Method::GET, "/-/reload").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn gzip_is_served_to_clients_that_accept_it() {
        use std::io::Read;
        let app = app();
        let resp = app
            .clone()
            .oneshot(
                Request::get("/custom/metrics")
                    .header("accept-encoding", "gzip")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.headers()[header::CONTENT_ENCODING], "gzip");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert!(text.contains("tencent_live_exporter_build_info"), "{text}");
        let plain = app
            .oneshot(Request::get("/custom/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let plain = plain.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            text.as_bytes(),
            &plain[..],
            "the same exposition, compressed"
        );
    }

    #[test]
    fn accept_encoding_is_parsed_with_qualities() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&m)
        };
        assert!(h("gzip"));
        assert!(h("identity, GZIP;q=0.5"));
        assert!(h("*"));
        assert!(!h("gzip;q=0"));
        assert!(!h("br, deflate"));
        assert!(!accepts_gzip(&HeaderMap::new()));
        // q=0 in any spelling refuses gzip, even when `*` would take it.
        assert!(!h("gzip;q=0, *"));
        assert!(!h("*, gzip;q=0"));
        assert!(!h("gzip;Q=0"));
        assert!(!h("gzip ; q = 0.000"));
        assert!(!h("GZip;q=0.0"));
        assert!(!h("*;q=0"));
        assert!(!h("x-gzip;q=0, *;q=1"));
        assert!(h("*;q=0.001"));
        assert!(h("br;q=0, *"));
        assert!(h("x-gzip"));
        assert!(h("gzip;q=1.000"));
        // Invalid qualities are ignored, not read as 1.
        assert!(!h("gzip;q=2"));
        assert!(!h("gzip;q=abc"));
        assert!(!h("gzip;q=0.0001"));
        assert!(!h("gzip;q=-1"));
        // Several headers are one list.
        let mut m = HeaderMap::new();
        m.append(header::ACCEPT_ENCODING, HeaderValue::from_static("*"));
        m.append(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0"),
        );
        assert!(!accepts_gzip(&m));
    }
}
