//! The transport's unit tests: one path for the Live API, STS and the metadata service, one cap
//! owner, one error mapping (proxy naming included).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use hyper_util::client::proxy::matcher::Matcher;
use reqwest::Url;
use serde_json::json;

use super::*;
use crate::domain::QueryType;
use crate::telemetry::ExporterMetrics;
use crate::tencent::budget::Budget;
use crate::tencent::client::{ApiError, LiveClient};
use crate::tencent::credentials::{
    AssumeRoleSpec, BaseSource, CredentialSource, Credentials, FetchContext, SourceSpec,
};

const METADATA: &str = "http://metadata.test";
const STS: &str = "https://sts.test";
const LIVE: &str = "https://live.test";
const CREDENTIALS: &str = "/latest/meta-data/cam/security-credentials/";

fn in_an_hour() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600
}

/// A metadata service, STS and Live API in one router, each answering as Tencent's do.
fn tencent() -> Router {
    Router::new()
        .route(CREDENTIALS, get(|| async { "test-role" }))
        .route(
            &format!("{CREDENTIALS}test-role"),
            get(|| async {
                json!({
                    "TmpSecretId": "AKIDfromcvm", "TmpSecretKey": "cvm-key", "Token": "cvm-token",
                    "ExpiredTime": in_an_hour(), "Code": "Success"
                })
                .to_string()
            }),
        )
        .route(
            "/",
            post(|headers: HeaderMap| async move {
                let answer = if action(&headers) == "AssumeRole" {
                    json!({"Response": {
                        "Credentials": {"TmpSecretId": "AKIDassumed", "TmpSecretKey": "sts-key", "Token": "sts-token"},
                        "ExpiredTime": in_an_hour(), "RequestId": "sts-1"
                    }})
                } else {
                    json!({"Response": {
                        "LivePackageInfoList": [], "TotalNum": 0, "TotalPage": 0, "RequestId": "live-1"
                    }})
                };
                answer.to_string()
            }),
        )
}

fn action(headers: &HeaderMap) -> String {
    headers
        .get("X-TC-Action")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

/// `service`, recording `METHOD host path action` of every request it is given.
fn counting(service: Router) -> (Transport, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let counting = tower::service_fn(move |request: http::Request<Full<Bytes>>| {
        let host = request.headers().get(header::HOST).cloned();
        log.lock().unwrap().push(format!(
            "{} {} {} {}",
            request.method(),
            host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("-"),
            request.uri(),
            action(request.headers()),
        ));
        service.clone().oneshot(request)
    });
    (Transport::service(counting), seen)
}

fn assume_role() -> Option<AssumeRoleSpec> {
    Some(AssumeRoleSpec {
        role_arn: "qcs::cam::uin/100000000001:roleName/exporter".into(),
        session_name: "tencent-live-exporter".into(),
        sts_endpoint: Url::parse(STS).unwrap(),
        duration_seconds: 7200,
        external_id: None,
    })
}

fn cvm_then_assume_role() -> CredentialSource {
    CredentialSource::new(SourceSpec {
        base: BaseSource::CvmRole {
            role: None,
            metadata_endpoint: Url::parse(METADATA).unwrap(),
        },
        assume_role: assume_role(),
    })
}

fn live_client(transport: Transport, credentials: CredentialSource) -> LiveClient {
    LiveClient::new(
        transport,
        Url::parse(LIVE).unwrap(),
        credentials,
        Budget::new(20),
        "acct".into(),
        Arc::new(ExporterMetrics::new()),
        Duration::from_secs(5),
    )
}

/// Paused time: with a socket anywhere on the path this would not finish.
#[tokio::test(start_paused = true)]
async fn the_live_api_sts_and_metadata_calls_all_go_through_the_one_injected_service() {
    let (transport, seen) = counting(tencent());
    let client = live_client(transport, cvm_then_assume_role());
    let page = client.describe_page(QueryType::Traffic, 1, 100).await;
    assert_eq!(page.unwrap().request_id.as_deref(), Some("live-1"));
    assert_eq!(
        *seen.lock().unwrap(),
        [
            format!("GET metadata.test {CREDENTIALS} -"),
            format!("GET metadata.test {CREDENTIALS}test-role -"),
            "POST sts.test / AssumeRole".to_owned(),
            "POST live.test / DescribeLivePackageInfo".to_owned(),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_metadata_service_is_asked_on_the_direct_route_sts_and_the_live_api_on_the_proxied_one()
{
    let (proxied, through_proxy) = counting(tencent());
    let (direct, directly) = counting(tencent());
    let transport = Transport {
        proxied: proxied.proxied,
        direct: direct.direct,
        proxies: None,
    };
    let client = live_client(transport, cvm_then_assume_role());
    client
        .describe_page(QueryType::Traffic, 1, 100)
        .await
        .unwrap();
    let hosts = |seen: &Mutex<Vec<String>>| -> Vec<String> {
        let seen = seen.lock().unwrap();
        seen.iter()
            .map(|r| r.split(' ').nth(1).unwrap().to_owned())
            .collect()
    };
    assert_eq!(hosts(&directly), ["metadata.test", "metadata.test"]);
    assert_eq!(hosts(&through_proxy), ["sts.test", "live.test"]);
}

/// A body of `size` bytes, its length declared or not.
fn body_of(size: usize, declared: bool) -> axum::response::Response {
    let body = vec![b'x'; size];
    if declared {
        ([(header::CONTENT_LENGTH, size.to_string())], body).into_response()
    } else {
        body.into_response()
    }
}

#[tokio::test(start_paused = true)]
async fn each_kind_of_answer_is_read_up_to_its_cap_and_refused_one_byte_over() {
    for answer in [Answer::LiveApi, Answer::Sts, Answer::Metadata] {
        for declared in [false, true] {
            let limit = answer.limit();
            let transport = Transport::service(
                Router::new()
                    .route(
                        "/exact",
                        get(move || async move { body_of(limit, declared) }),
                    )
                    .route(
                        "/over",
                        get(move || async move { body_of(limit + 1, declared) }),
                    ),
            );
            let get = |path: &str| {
                let request = http::Request::get(format!("http://api.test{path}"))
                    .body(Bytes::new())
                    .unwrap();
                transport.exchange(answer, request, Duration::from_secs(5))
            };
            assert_eq!(get("/exact").await.map(|b| b.len()), Ok(limit));
            assert_eq!(
                get("/over").await,
                Err(TransportError::TooLarge(limit)),
                "{answer:?}, length declared: {declared}"
            );
        }
    }
    assert_eq!(Answer::LiveApi.limit(), 16 * 1024 * 1024);
    assert_eq!(Answer::Sts.limit(), 64 * 1024);
    assert_eq!(Answer::Metadata.limit(), 64 * 1024);
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_cap_is_refused_on_the_live_api_sts_and_metadata_paths_alike() {
    let huge = |limit: usize| move || async move { body_of(limit + 1, false) };
    let refused = TransportError::TooLarge(MAX_CREDENTIAL_ANSWER_BYTES).to_string();

    // The metadata service.
    let transport = Transport::service(
        Router::new().route(CREDENTIALS, get(huge(MAX_CREDENTIAL_ANSWER_BYTES))),
    );
    let ctx = FetchContext {
        transport: &transport,
        timeout: Duration::from_secs(5),
    };
    let e = cvm_then_assume_role().current(ctx).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("credential source cvm_role: metadata service {METADATA}{CREDENTIALS}: {refused}")
    );

    // STS.
    let transport =
        Transport::service(Router::new().route("/", post(huge(MAX_CREDENTIAL_ANSWER_BYTES))));
    let ctx = FetchContext {
        transport: &transport,
        timeout: Duration::from_secs(5),
    };
    let spec = SourceSpec {
        base: BaseSource::Env(Credentials::new("AKIDbase", "base-key")),
        assume_role: assume_role(),
    };
    let e = CredentialSource::new(spec).current(ctx).await.unwrap_err();
    assert!(
        e.to_string().ends_with(&format!("STS {STS}/: {refused}")),
        "{e}"
    );

    // The Live API: its own cap, the same error, classified `response_too_large`, not retried.
    let transport = Transport::service(Router::new().route("/", post(huge(MAX_API_ANSWER_BYTES))));
    let client = live_client(
        transport,
        CredentialSource::fixed(Credentials::new("AKIDx", "key-x")),
    );
    let e = client
        .describe_page(QueryType::Traffic, 1, 100)
        .await
        .unwrap_err();
    assert_eq!(e, ApiError::TooLarge);
    assert_eq!(
        e.to_string(),
        TransportError::TooLarge(MAX_API_ANSWER_BYTES).to_string()
    );
    assert_eq!(e.code(), "response_too_large");
}

#[tokio::test(start_paused = true)]
async fn a_status_outside_2xx_is_refused_before_its_body_is_read() {
    let transport = Transport::service(Router::new().route(
        "/",
        get(|| async { (StatusCode::SERVICE_UNAVAILABLE, vec![b'x'; 1 << 20]) }),
    ));
    let request = http::Request::get("http://api.test/")
        .body(Bytes::new())
        .unwrap();
    let e = transport
        .exchange(Answer::Sts, request, Duration::from_secs(5))
        .await;
    assert_eq!(e, Err(TransportError::Status(503)));
    assert_eq!(
        ApiError::from(TransportError::Status(503)),
        ApiError::Http(503)
    );
}

#[test]
fn the_proxy_in_use_is_named_without_its_credentials() {
    let api: http::Uri = "https://live.tencentcloudapi.com/".parse().unwrap();
    let local: http::Uri = "http://127.0.0.1:8080/".parse().unwrap();
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
    let internal: http::Uri = "https://live.internal/".parse().unwrap();
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
    // A port nothing listens on stands for a proxy that is down: bound and never listening, so
    // it refuses connections and no other process can take it meanwhile.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let port = closed.local_addr().unwrap().port();
    let proxy = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(&proxy).unwrap())
        .build()
        .unwrap();
    let transport = Transport::reqwest(
        http.clone(),
        http,
        Some(Matcher::builder().https(proxy.as_str()).build()),
    );
    let call = |answer| {
        let request = http::Request::post("https://live.tencentcloudapi.com/")
            .body(Bytes::new())
            .unwrap();
        transport.exchange(answer, request, Duration::from_secs(5))
    };
    let msg = ApiError::from(call(Answer::LiveApi).await.unwrap_err()).to_string();
    assert!(msg.starts_with("connection failed:"), "{msg}");
    assert!(msg.contains(&format!("through the proxy {proxy}")), "{msg}");
    // The metadata route never goes through a proxy, so never names one.
    let direct = call(Answer::Metadata).await.unwrap_err().to_string();
    assert!(!direct.contains("proxy 127"), "{direct}");
}

#[tokio::test(start_paused = true)]
async fn a_proxy_that_never_answers_is_named_in_the_timeout() {
    let proxy = "http://127.0.0.1:3128";
    let hangs = BoxCloneSyncService::new(tower::service_fn(|_: Request| {
        std::future::pending::<Result<http::Response<ResponseBody>, BoxError>>()
    }));
    let transport = Transport {
        proxied: hangs.clone(),
        direct: hangs,
        proxies: Some(Arc::new(Matcher::builder().https(proxy).build())),
    };
    let request = http::Request::post("https://live.tencentcloudapi.com/")
        .body(Bytes::new())
        .unwrap();
    let e = transport
        .exchange(Answer::LiveApi, request, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(
        ApiError::from(e).to_string(),
        format!(
            "no answer within 10s (through the proxy {proxy}, from HTTP(S)_PROXY / ALL_PROXY; NO_PROXY exempts hosts)"
        )
    );
}

/// The production clients (`client`: no redirects), with no proxy from the environment so that
/// a CI runner's `HTTP_PROXY` cannot take the loopback calls elsewhere.
fn production_clients_without_proxy() -> Transport {
    let http = || client(Duration::from_secs(5)).no_proxy().build().unwrap();
    Transport::reqwest(http(), http(), None)
}

/// A server that answers every connection with `head` and `body`, then closes it.
async fn answers_once_and_closes(head: &'static str, body: &'static [u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body).await;
            let _ = socket.shutdown().await;
        }
    });
    format!("http://{addr}/")
}

#[tokio::test]
async fn a_body_cut_short_of_its_declared_length_is_a_cut_off_answer_on_every_path() {
    let url = answers_once_and_closes(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        b"{\"Response\":",
    )
    .await;
    let transport = production_clients_without_proxy();
    for answer in [Answer::LiveApi, Answer::Sts, Answer::Metadata] {
        let request = http::Request::post(url.as_str())
            .body(Bytes::new())
            .unwrap();
        let e = transport
            .exchange(answer, request, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(e, TransportError::CutOff(_)), "{answer:?}: {e:?}");
        let api = ApiError::from(e);
        assert_eq!(api.code(), "decode", "{answer:?}");
        assert!(api.is_retryable(), "{answer:?}");
        assert!(api.to_string().starts_with("answer cut off: "), "{api}");
    }
}

#[tokio::test]
async fn a_redirect_is_an_answer_refused_by_its_status_never_followed() {
    // The place it points to would answer 200: following it would succeed.
    let target = answers_once_and_closes(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
        b"{}",
    )
    .await;
    let head: &'static str = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .leak();
    let url = answers_once_and_closes(head, b"").await;
    let transport = production_clients_without_proxy();
    for answer in [Answer::LiveApi, Answer::Sts, Answer::Metadata] {
        let request = http::Request::post(url.as_str())
            .body(Bytes::new())
            .unwrap();
        let e = transport
            .exchange(answer, request, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(e, TransportError::Status(307), "{answer:?}");
    }
}
