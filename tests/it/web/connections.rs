//! The hardened accept loop: header and write timeouts, bounded connections, stalled readers, graceful shutdown.

use super::*;

/// Reads until the server closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out))
        .await
        .expect("the server closes the connection")
        .ok();
    out
}

#[tokio::test]
async fn an_idle_or_slow_connection_is_closed_after_the_header_timeout() {
    let timeout = Duration::from_millis(200);
    let server = Server::start_with(app(), None, |o| o.header_read_timeout = timeout).await;

    // Connects and never sends a byte.
    let start = Instant::now();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let sent = read_until_closed(&mut idle).await;
    assert!(start.elapsed() >= timeout - Duration::from_millis(50));
    assert!(!String::from_utf8_lossy(&sent).contains("200 OK"));

    // Sends a request line, then stalls inside the headers (slowloris).
    let start = Instant::now();
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let sent = read_until_closed(&mut slow).await;
    assert!(start.elapsed() >= timeout - Duration::from_millis(50));
    assert!(!String::from_utf8_lossy(&sent).contains("200 OK"));

    // A client that sends its request in time is served.
    let resp = client().get(server.http("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_tls_client_that_never_says_hello_is_closed_after_the_timeout() {
    let dir = Dir::new();
    let ca = Ca::new("CA");
    let timeout = Duration::from_millis(200);
    let server = Server::start_with(app(), Some(&tls_files(&dir, &ca, "")), |o| {
        o.header_read_timeout = timeout
    })
    .await;
    let start = Instant::now();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    assert!(read_until_closed(&mut idle).await.is_empty());
    assert!(start.elapsed() >= timeout - Duration::from_millis(50));
}

#[tokio::test]
async fn at_the_bound_a_new_connection_closes_the_one_waiting_longest() {
    let server = Server::start_with(app(), None, |o| o.max_connections = 2).await;
    // Two connections hold both slots without sending anything.
    let mut oldest = TcpStream::connect(server.addr).await.unwrap();
    let mut newer = TcpStream::connect(server.addr).await.unwrap();
    // Served: the oldest one is closed to make room.
    let resp = tokio::time::timeout(PATIENCE, client().get(server.http("/metrics")).send())
        .await
        .expect("served at the bound")
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(read_until_closed(&mut oldest).await.is_empty());
    // The newer one still has its slot and is served.
    newer
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let sent = String::from_utf8(read_until_closed(&mut newer).await).unwrap();
    assert!(sent.starts_with("HTTP/1.1 200 OK"), "{sent}");
}

#[tokio::test]
async fn a_connection_whose_request_is_being_handled_is_never_closed_for_a_newcomer() {
    let entered = Arc::new(Semaphore::new(0));
    let release = Arc::new(Semaphore::new(0));
    let router = {
        let (entered, release) = (entered.clone(), release.clone());
        app().route(
            "/slow",
            get(move || {
                let (entered, release) = (entered.clone(), release.clone());
                async move {
                    entered.add_permits(1);
                    release.acquire().await.unwrap().forget();
                    "finished\n"
                }
            }),
        )
    };
    let server = Server::start_with(router, None, |o| o.max_connections = 1).await;
    let url = server.http("/slow");
    let slow = tokio::spawn(async move { client().get(url).send().await?.text().await });
    tokio::time::timeout(PATIENCE, entered.acquire())
        .await
        .expect("the request arrives")
        .unwrap()
        .forget();
    let url = server.http("/metrics");
    let mut waiting = tokio::spawn(async move { client().get(url).send().await });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "served beyond the bound while the only connection was busy"
    );
    release.add_permits(1);
    let body = tokio::time::timeout(PATIENCE, slow)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(body, "finished\n");
    let resp = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("served once the slot frees")
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_keep_alive_connection_left_idle_is_closed_after_the_header_timeout() {
    let timeout = Duration::from_millis(200);
    let server = Server::start_with(app(), None, |o| o.header_read_timeout = timeout).await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let sent = String::from_utf8(read_until_closed(&mut conn).await).unwrap();
    assert!(sent.starts_with("HTTP/1.1 200 OK"), "{sent}");
    assert!(start.elapsed() >= timeout - Duration::from_millis(50));
}

/// A body big enough that a few answers fill the socket buffers of a client that does not read.
fn big_app(bytes: usize) -> Router {
    let body: &'static str = Box::leak("x".repeat(bytes).into_boxed_str());
    app().route("/big", get(move || async move { body }))
}

/// A connection with a small receive buffer that pipelines `requests` GETs of `path` and never
/// reads the answers.
async fn stalled_reader(addr: SocketAddr, path: &str, requests: usize) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").repeat(requests);
    // Bounded: the server reads requests only while it can write answers.
    let _ = tokio::time::timeout(
        Duration::from_millis(500),
        stream.write_all(request.as_bytes()),
    )
    .await;
    stream
}

#[tokio::test]
async fn a_client_that_does_not_read_is_cut_off_at_the_write_deadline() {
    let write_timeout = Duration::from_millis(300);
    let server = Server::start_with(big_app(64 * 1024), None, |o| {
        o.write_timeout = write_timeout
    })
    .await;
    // The server runs on this test's thread: its debug line says when it cuts a connection off.
    let (logs, _guard) = crate::support::Logs::capture(tracing::Level::DEBUG);
    let requests = 200;
    let mut stalled = stalled_reader(server.addr, "/big", requests).await;
    // Nothing is read until the server has closed the connection (the deadline passed).
    let waiting = Instant::now();
    while !logs.text().contains("connection closed: error writing") {
        assert!(
            waiting.elapsed() < PATIENCE,
            "the stalled connection was never cut off"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Reading now gets what the kernel had buffered, then the close: far fewer answers than
    // were asked (without the deadline, all 200 would come once reading starts).
    let sent = read_until_closed(&mut stalled).await;
    let answers = String::from_utf8_lossy(&sent)
        .matches("HTTP/1.1 200 OK")
        .count();
    assert!(
        answers < requests / 2,
        "{answers} of {requests} answers sent"
    );
    // The server still answers others.
    let resp = client().get(server.http("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// Raises the soft limit on open files to `want` (at most the hard limit): this test holds both
/// ends of 600 connections, more than a default soft limit of 1024 allows.
fn raise_open_files_limit(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by reference.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < want as libc::rlim_t {
            limit.rlim_cur = (want as libc::rlim_t).min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= 1300,
        "open-files limit {} is too low for 600 connections",
        limit.rlim_cur
    );
}

/// The attack on the default limits: 600 connections that send requests and never read
/// (more than the 512 connection slots). A scrape still answers within a second. Loopback only,
/// every wait bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_answers_within_a_second_while_600_stalled_readers_are_open() {
    raise_open_files_limit(4096);
    let server = Server::start_with(big_app(64 * 1024), None, |_| {}).await;
    let mut stalled = Vec::new();
    for _ in 0..600 {
        stalled.push(stalled_reader(server.addr, "/big", 20).await);
    }
    // Built before the clock starts: what is timed is the server, not the client's setup.
    let scraper = client();
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let start = Instant::now();
        let resp = tokio::time::timeout(
            Duration::from_secs(1),
            scraper.get(server.http("/metrics")).send(),
        )
        .await
        .expect("a scrape answers within 1 s with 600 stalled readers open")
        .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), METRICS);
        worst = worst.max(start.elapsed());
        eprintln!(
            "scrape latency with 600 stalled readers open: {:?}",
            start.elapsed()
        );
    }
    eprintln!("scrape latency with 600 stalled readers open: worst of 5 = {worst:?}");
    assert!(worst < Duration::from_secs(1), "{worst:?}");
    drop(stalled);
}

#[tokio::test]
async fn shutdown_lets_the_in_flight_scrape_finish() {
    let entered = Arc::new(Semaphore::new(0));
    let release = Arc::new(Semaphore::new(0));
    let router = {
        let (entered, release) = (entered.clone(), release.clone());
        app().route(
            "/slow",
            get(move || {
                let (entered, release) = (entered.clone(), release.clone());
                async move {
                    entered.add_permits(1);
                    release.acquire().await.unwrap().forget();
                    "finished\n"
                }
            }),
        )
    };
    let mut server = Server::start_with(router, None, |_| {}).await;
    let url = server.http("/slow");
    let scrape = tokio::spawn(async move { client().get(url).send().await?.text().await });
    tokio::time::timeout(PATIENCE, entered.acquire())
        .await
        .expect("the request arrives")
        .unwrap()
        .forget();

    server.shutdown.cancel();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut server.task)
            .await
            .is_err(),
        "the server stopped before its in-flight request finished"
    );
    release.add_permits(1);
    let body = tokio::time::timeout(PATIENCE, scrape)
        .await
        .expect("the scrape finishes")
        .unwrap()
        .unwrap();
    assert_eq!(body, "finished\n");
    tokio::time::timeout(PATIENCE, &mut server.task)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    // Nothing listens any more.
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[test]
fn a_bad_web_config_file_refuses_to_start() {
    let dir = Dir::new();
    let missing = WebOptions::from_file(Some(&dir.path("absent.yml"))).unwrap_err();
    assert!(missing.to_string().contains("absent.yml"), "{missing}");
    let config = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: c\n  key_file: k\n",
    );
    let e = WebOptions::from_file(Some(&config))
        .unwrap_err()
        .to_string();
    assert!(e.contains("failed to read") && e.contains("web.yml"), "{e}");
    let unknown = dir.write("unknown.yml", "tls_config:\n  cert_file: c\n");
    let e = WebOptions::from_file(Some(&unknown))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `tls_config`"), "{e}");
    assert!(WebOptions::from_file(None).unwrap().config.is_none());
}
