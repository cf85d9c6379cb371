//! The accept loop: a bounded number of connections, TLS when configured, hyper HTTP/1.1 with a
//! header read timeout, and a gate in front of the routes (methods, rate limit, basic auth,
//! extra headers). Shutdown stops accepting, lets in-flight requests finish, closes idle
//! connections.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::WebOptions;
use super::source::{Active, WebConfigSource};

/// The `WWW-Authenticate` challenge of a 401.
pub const CHALLENGE: &str = "Basic realm=\"tencent-live-exporter\"";

/// The one path that takes POST.
const RELOAD_PATH: &str = "/-/reload";

/// `Some(allowed methods)` when the method is refused: only GET and HEAD, plus POST on
/// `/-/reload`.
fn refused_method(method: &Method, path: &str) -> Option<&'static str> {
    if *method == Method::GET || *method == Method::HEAD {
        None
    } else if path == RELOAD_PATH {
        (*method != Method::POST).then_some("POST")
    } else {
        Some("GET, HEAD")
    }
}

#[derive(Clone)]
struct Gate {
    router: Router,
    source: Option<Arc<WebConfigSource>>,
}

impl Gate {
    async fn handle(self, req: Request<Incoming>) -> Response<Body> {
        let active = self.source.as_ref().map(|s| s.current());
        let mut resp = self.admit(req, active.as_deref()).await;
        if let Some(active) = &active {
            for (name, value) in &active.headers {
                resp.headers_mut().insert(name.clone(), value.clone());
            }
        }
        resp
    }

    async fn admit(&self, req: Request<Incoming>, active: Option<&Active>) -> Response<Body> {
        if let Some(allow) = refused_method(req.method(), req.uri().path()) {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, allow)],
                "method not allowed\n",
            )
                .into_response();
        }
        if let (Some(active), Some(source)) = (active, &self.source) {
            if let Some(limiter) = &active.rate_limit {
                if super::rate::limited(req.uri().path()) && !limiter.allow() {
                    return (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response();
                }
            }
            if let Some(users) = &active.users {
                if !source
                    .auth
                    .check(users, req.headers().get(header::AUTHORIZATION))
                    .await
                {
                    return (
                        StatusCode::UNAUTHORIZED,
                        [(
                            header::WWW_AUTHENTICATE,
                            HeaderValue::from_static(CHALLENGE),
                        )],
                        "Unauthorized\n",
                    )
                        .into_response();
                }
            }
        }
        match self.router.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    }
}

/// Serves `router` on `listener` with `options` until `shutdown`; in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: WebOptions,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let stop_watching = shutdown.child_token();
    let _stop_watching = stop_watching.clone().drop_guard();
    let tls = match &options.config {
        Some(source) => {
            tokio::spawn(
                source
                    .clone()
                    .watch(options.recheck_interval, stop_watching.clone()),
            );
            source.tls_enabled()
        }
        None => false,
    };
    tracing::debug!(
        tls,
        max_connections = options.max_connections,
        header_read_timeout = ?options.header_read_timeout,
        "accepting connections"
    );
    let gate = Gate {
        router,
        source: options.config.clone(),
    };
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();

    loop {
        // At the bound, new connections wait in the listen backlog until one closes.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("never closed"),
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // E.g. out of file descriptors: wait, as axum::serve does, rather than spin.
                    tracing::error!("accepting a connection failed: {e}");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = shutdown.cancelled() => break,
                    }
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let gate = gate.clone();
        let http = http.clone();
        let acceptor = if tls {
            options
                .config
                .as_ref()
                .and_then(|s| s.current().tls.clone())
        } else {
            None
        };
        let handshake_timeout = options.header_read_timeout;
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if !tls {
                return connection(stream, &http, gate, watcher).await;
            }
            let Some(acceptor) = acceptor else {
                return;
            };
            let handshake = tls_handshake(stream, acceptor);
            tokio::select! {
                done = tokio::time::timeout(handshake_timeout, handshake) => match done {
                    Ok(Some(stream)) => connection(stream, &http, gate, watcher).await,
                    Ok(None) => {}
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                },
                () = shutdown.cancelled() => {}
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn connection<I>(io: I, http: &http1::Builder, gate: Gate, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let gate = gate.clone();
        async move { Ok::<_, Infallible>(gate.handle(req).await) }
    });
    let conn = http.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!("connection closed: {e}");
    }
}

/// The TLS handshake; a plain HTTP request gets a 400 saying so (as Go's server does) instead.
async fn tls_handshake(
    mut stream: TcpStream,
    acceptor: TlsAcceptor,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await.ok()? == 0 {
        return None;
    }
    // 0x16: a TLS handshake record. An ASCII capital: an HTTP method.
    if first[0] != 0x16 {
        if first[0].is_ascii_uppercase() {
            let _ = stream
                .write_all(
                    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
                      Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
                )
                .await;
            let _ = stream.shutdown().await;
        }
        return None;
    }
    match acceptor.accept(stream).await {
        Ok(stream) => Some(stream),
        Err(e) => {
            tracing::debug!("TLS handshake failed: {e}");
            None
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_and_head_and_post_on_reload_pass() {
        for (method, path, refused) in [
            (Method::GET, "/metrics", None),
            (Method::HEAD, "/", None),
            (Method::GET, "/-/reload", None), // the router answers 405 itself
            (Method::POST, "/-/reload", None),
            (Method::POST, "/metrics", Some("GET, HEAD")),
            (Method::PUT, "/metrics", Some("GET, HEAD")),
            (Method::DELETE, "/", Some("GET, HEAD")),
            (Method::OPTIONS, "/healthz", Some("GET, HEAD")),
            (Method::TRACE, "/", Some("GET, HEAD")),
            (Method::PUT, "/-/reload", Some("POST")),
        ] {
            assert_eq!(refused_method(&method, path), refused, "{method} {path}");
        }
    }
}
