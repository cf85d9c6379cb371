//! The accept loop: a bounded number of connections, TLS when configured, hyper HTTP/1.1, and a
//! gate in front of the routes (methods, rate limit, basic auth, extra headers). Shutdown stops
//! accepting, lets in-flight requests finish, closes idle connections.
//!
//! Every connection has a bounded life: its TLS handshake and each request's headers within the
//! header read timeout (hyper's, which also closes a keep-alive connection idle that long), and
//! each response written within the write timeout ([`WriteDeadline`]). At the connection bound,
//! a new connection closes the one that has waited longest on its client (to send a request or
//! to read an answer), so clients that do not read, or do not send, cannot keep others out;
//! only connections whose request is being handled are never closed for a newcomer.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::WebOptions;
use super::source::{Active, WebConfigSource};

/// The `WWW-Authenticate` challenge of a 401.
pub const CHALLENGE: &str = "Basic realm=\"tencent-live-exporter\"";

/// What the router tells the web layer about its paths: the web layer itself names none.
/// Every path takes GET and HEAD but those in `post`, which take POST only; the paths in
/// `unlimited` are never rate limited and take no token.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathRules {
    /// Paths that take POST and nothing else.
    pub post: &'static [&'static str],
    /// Paths the rate limit never applies to (probes, so that other clients cannot starve them).
    pub unlimited: &'static [&'static str],
}

impl PathRules {
    /// `Some(allowed methods)` when the method is refused before routing: GET and HEAD pass
    /// everywhere (a POST-only path's router answers them with the same 405), POST only on the
    /// `post` paths.
    fn refused_method(&self, method: &Method, path: &str) -> Option<&'static str> {
        if *method == Method::GET || *method == Method::HEAD {
            None
        } else if self.post.contains(&path) {
            (*method != Method::POST).then_some(self.allowed_methods(path))
        } else {
            Some(self.allowed_methods(path))
        }
    }

    /// The methods `path` takes, as an `Allow` header value: `POST` on the `post` paths,
    /// `GET, HEAD` everywhere else.
    pub fn allowed_methods(&self, path: &str) -> &'static str {
        if self.post.contains(&path) {
            "POST"
        } else {
            "GET, HEAD"
        }
    }

    /// Whether a request to `path` is subject to the rate limit.
    pub fn limited(&self, path: &str) -> bool {
        !self.unlimited.contains(&path)
    }

    /// The one 405 answer, whether the gate refuses a method before routing or the router finds
    /// a known path with the wrong method: status 405, `Allow` with the methods the path takes,
    /// and a body naming them.
    pub fn method_not_allowed(&self, method: &Method, path: &str) -> Response<Body> {
        let allow = self.allowed_methods(path);
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, allow)],
            format!("405 method {method} not allowed on {path}; use {allow}\n"),
        )
            .into_response()
    }
}

#[derive(Clone)]
struct Gate {
    router: Router,
    rules: PathRules,
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
        let path = req.uri().path();
        if self.rules.refused_method(req.method(), path).is_some() {
            return self.rules.method_not_allowed(req.method(), path);
        }
        if let (Some(active), Some(source)) = (active, &self.source) {
            if let Some(limiter) = &active.rate_limit {
                if self.rules.limited(path) && !limiter.allow() {
                    return (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response();
                }
            }
            if let Some(users) = active
                .users
                .as_ref()
                .filter(|_| !active.auth_excluded(path))
            {
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
/// `rules` are the router's word on which paths take which methods and skip the rate limit.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    rules: PathRules,
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
        rules,
        source: options.config.clone(),
    };
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let open = Arc::new(Connections::default());
    let graceful = GracefulShutdown::new();

    loop {
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
        // At the bound: close the connection waiting longest on its client, and take its slot
        // as it goes. When every connection has a request in a handler, wait for one to finish.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if open.close_longest_waiting() {
                    tracing::debug!("connection bound reached: closed the longest-waiting one");
                }
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break, // never closed
                    },
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let (activity, close) = open.register();
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
        let write_timeout = options.write_timeout;
        let shutdown = shutdown.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let id = activity.id;
            let life = async move {
                if !tls {
                    let io = WriteDeadline::new(stream, write_timeout);
                    return connection(io, &http, gate, watcher, activity).await;
                }
                let Some(acceptor) = acceptor else {
                    return;
                };
                let handshake = tls_handshake(stream, acceptor);
                tokio::select! {
                    done = tokio::time::timeout(handshake_timeout, handshake) => match done {
                        Ok(Some(stream)) => {
                            let io = WriteDeadline::new(stream, write_timeout);
                            connection(io, &http, gate, watcher, activity).await;
                        }
                        Ok(None) => {}
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    },
                    () = shutdown.cancelled() => {}
                }
            };
            tokio::select! {
                () = life => {}
                () = close.cancelled() => {}
            }
            open.remove(id);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The open connections, and since when each has been waiting on its client (`None` while a
/// request of it is in a handler).
#[derive(Default)]
struct Connections {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

/// One connection's state, shared by its task, its service and [`Connections`].
struct Activity {
    id: u64,
    waiting_since: Mutex<Option<Instant>>,
    close: CancellationToken,
}

impl Activity {
    fn set_waiting(&self, waiting: bool) {
        if let Ok(mut since) = self.waiting_since.lock() {
            *since = waiting.then(Instant::now);
        }
    }
}

impl Connections {
    fn register(&self) -> (Arc<Activity>, CancellationToken) {
        let close = CancellationToken::new();
        let activity = Arc::new(Activity {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            waiting_since: Mutex::new(Some(Instant::now())),
            close: close.clone(),
        });
        if let Ok(mut open) = self.open.lock() {
            open.insert(activity.id, activity.clone());
        }
        (activity, close)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Closes the connection that has waited longest on its client; false if none waits.
    fn close_longest_waiting(&self) -> bool {
        let Ok(mut open) = self.open.lock() else {
            return false;
        };
        let oldest = open
            .values()
            .filter_map(|a| Some((*a.waiting_since.lock().ok()?.as_ref()?, a.id)))
            .min();
        let Some(activity) = oldest.and_then(|(_, id)| open.remove(&id)) else {
            return false;
        };
        activity.close.cancel();
        true
    }
}

/// An I/O stream whose writes must finish within a deadline: it is armed by the first write
/// after a completed flush (the start of an answer) and disarmed when a flush completes (all of
/// it handed to the kernel). A client that does not read makes the write fail with `TimedOut`
/// at the deadline, which closes the connection, however slowly it trickles.
pub struct WriteDeadline<I> {
    io: I,
    limit: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<I> WriteDeadline<I> {
    /// Wraps `io`; every answer written to it must be handed to the kernel within `limit` of its
    /// first byte (the server passes [`WebOptions::write_timeout`](super::WebOptions)).
    pub fn new(io: I, limit: Duration) -> Self {
        WriteDeadline {
            io,
            limit,
            deadline: None,
        }
    }

    /// `Pending` from the stream: an error once the deadline has passed (the sleep is polled so
    /// the task wakes at the deadline even if the client never reads).
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client did not read the answer within {:?}", self.limit),
            ))),
            _ => Poll::Pending,
        }
    }

    fn arm(&mut self) {
        if self.deadline.is_none() {
            // Saturating: a configured limit too large for an Instant means no deadline.
            let at = Instant::now()
                .checked_add(self.limit)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
            self.deadline = Some(Box::pin(tokio::time::sleep_until(at)));
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WriteDeadline<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.arm();
        match Pin::new(&mut self.io).poll_write(cx, buf) {
            Poll::Pending => self.pending(cx),
            ready => ready,
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.arm();
        match Pin::new(&mut self.io).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.pending(cx),
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.deadline = None;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.pending(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.arm();
        match Pin::new(&mut self.io).poll_shutdown(cx) {
            Poll::Pending => self.pending(cx),
            ready => ready,
        }
    }
}

async fn connection<I>(
    io: I,
    http: &http1::Builder,
    gate: Gate,
    watcher: Watcher,
    activity: Arc<Activity>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let gate = gate.clone();
        let activity = activity.clone();
        async move {
            activity.set_waiting(false);
            let resp = gate.handle(req).await;
            activity.set_waiting(true);
            Ok::<_, Infallible>(resp)
        }
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

    const RULES: PathRules = PathRules {
        post: &["/-/submit"],
        unlimited: &["/probe"],
    };

    #[test]
    fn only_get_and_head_pass_and_post_only_on_the_paths_the_router_names() {
        for (method, path, refused) in [
            (Method::GET, "/metrics", None),
            (Method::HEAD, "/", None),
            (Method::GET, "/-/submit", None), // the router answers 405 itself
            (Method::POST, "/-/submit", None),
            (Method::POST, "/metrics", Some("GET, HEAD")),
            (Method::PUT, "/metrics", Some("GET, HEAD")),
            (Method::DELETE, "/", Some("GET, HEAD")),
            (Method::OPTIONS, "/probe", Some("GET, HEAD")),
            (Method::TRACE, "/", Some("GET, HEAD")),
            (Method::PUT, "/-/submit", Some("POST")),
        ] {
            assert_eq!(
                RULES.refused_method(&method, path),
                refused,
                "{method} {path}"
            );
        }
        let nothing = PathRules::default();
        assert_eq!(
            nothing.refused_method(&Method::POST, "/-/submit"),
            Some("GET, HEAD")
        );
    }

    #[test]
    fn only_the_paths_the_router_names_skip_the_rate_limit() {
        assert!(!RULES.limited("/probe"));
        for path in ["/metrics", "/", "/-/submit", "/probe/", "/probez"] {
            assert!(RULES.limited(path), "{path}");
        }
        assert!(PathRules::default().limited("/probe"));
    }
}
