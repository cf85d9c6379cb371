//! The secured endpoint over real loopback sockets: `--web.config.file` (TLS with certificates
//! made here by rcgen, client certificates, basic auth with real bcrypt hashes, headers, rate
//! limit), re-reads driven by `check_now` (no waiting for the re-check interval), and the
//! limits every listener has (methods, header read timeout, connection bound, graceful stop).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tencent_live_exporter::http::{CHALLENGE, Reloaded, WebConfigSource, WebOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::PATIENCE;

const METRICS: &str = "tle_test_metric 1\n";

/// A stand-in for the exporter's routes: the gate in front of them is what is tested here.
fn app() -> Router {
    Router::new()
        .route("/metrics", get(|| async { METRICS }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/-/reload", post(|| async { "configuration reloaded\n" }))
}

/// A directory for one test's files, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tle-web-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A certificate authority made for the test.
struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for `sans`, as a server or a client certificate.
    fn issue(&self, sans: &[&str], client: bool) -> (String, String) {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, sans.first().copied().unwrap_or("x"));
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// One server under test.
struct Server {
    addr: SocketAddr,
    source: Option<Arc<WebConfigSource>>,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Serves `router` with the web config file at `config` (if any); `tweak` adjusts limits.
    async fn start_with(
        router: Router,
        config: Option<&Path>,
        tweak: impl FnOnce(&mut WebOptions),
    ) -> Server {
        let mut options = WebOptions::from_file(config).expect("good web config");
        // Re-reads happen when a test calls check_now, never behind its back.
        options.recheck_interval = Duration::from_secs(3600);
        tweak(&mut options);
        let source = options.config.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(tencent_live_exporter::http::server::serve_with(
            listener,
            router,
            options,
            shutdown.clone(),
        ));
        Server {
            addr,
            source,
            shutdown,
            task,
        }
    }

    async fn start(config: Option<&Path>) -> Server {
        Self::start_with(app(), config, |_| {}).await
    }

    fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn https(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    fn check_now(&self) -> Result<Reloaded, String> {
        self.source
            .as_ref()
            .unwrap()
            .check_now()
            .map_err(|e| e.to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

/// A client trusting only `ca_pem`, optionally presenting `identity` (certificate + key PEM).
fn tls_client(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .pool_max_idle_per_host(0)
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()]);
    if let Some((cert, key)) = identity {
        let pem = format!("{key}\n{cert}");
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// The server's leaf certificate as seen by a fresh TLS handshake trusting `ca_pem`.
async fn served_certificate(addr: SocketAddr, ca_pem: &str) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio::time::timeout(
        PATIENCE,
        connector.connect(ServerName::IpAddress(addr.ip().into()), tcp),
    )
    .await
    .expect("handshake finishes")
    .expect("handshake succeeds");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn pem_der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// Writes a server certificate and key issued by `ca` and a web config that serves them.
fn tls_files(dir: &Dir, ca: &Ca, extra: &str) -> PathBuf {
    let (cert, key) = ca.issue(&["127.0.0.1", "localhost"], false);
    dir.write("server.crt", &cert);
    dir.write("server.key", &key);
    // Relative paths: resolved against the web config file's directory, as the toolkit does.
    dir.write(
        "web.yml",
        &format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}"),
    )
}

#[tokio::test]
async fn tls_is_served_and_plain_http_on_the_tls_port_is_refused() {
    let dir = Dir::new();
    let ca = Ca::new("test server CA");
    let server = Server::start(Some(&tls_files(&dir, &ca, ""))).await;

    let resp = tls_client(&ca.cert_pem, None)
        .get(server.https("/metrics"))
        .send()
        .await
        .expect("HTTPS works");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), METRICS);

    // Plain HTTP gets Go's answer (400, "Client sent an HTTP request to an HTTPS server."),
    // never the metrics.
    let resp = client()
        .get(server.http("/metrics"))
        .send()
        .await
        .expect("the server answers plain HTTP with a 400");
    assert_eq!(resp.status(), 400);
    let body = resp.text().await.unwrap();
    assert!(body.contains("HTTP request to an HTTPS server"), "{body}");
    assert!(!body.contains("tle_test_metric"));

    // A client that does not trust the certificate gets nothing either.
    let stranger = Ca::new("someone else");
    assert!(
        tls_client(&stranger.cert_pem, None)
            .get(server.https("/metrics"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn client_certificates_are_required_when_configured() {
    let dir = Dir::new();
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    dir.write("client-ca.pem", &client_ca.cert_pem);
    let config = tls_files(
        &dir,
        &server_ca,
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.pem\n",
    );
    let server = Server::start(Some(&config)).await;
    let (cert, key) = client_ca.issue(&["prometheus.test"], true);

    let resp = tls_client(&server_ca.cert_pem, Some((&cert, &key)))
        .get(server.https("/metrics"))
        .send()
        .await
        .expect("a client with a certificate from the client CA is served");
    assert_eq!(resp.status(), 200);

    let without = tls_client(&server_ca.cert_pem, None)
        .get(server.https("/metrics"))
        .send()
        .await;
    assert!(without.is_err(), "served without a client certificate");

    let other_ca = Ca::new("other client CA");
    let (cert, key) = other_ca.issue(&["prometheus.test"], true);
    let foreign = tls_client(&server_ca.cert_pem, Some((&cert, &key)))
        .get(server.https("/metrics"))
        .send()
        .await;
    assert!(foreign.is_err(), "served with a certificate of another CA");
}

#[tokio::test]
async fn client_allowed_sans_admit_only_the_listed_names() {
    let dir = Dir::new();
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    dir.write("client-ca.pem", &client_ca.cert_pem);
    let config = tls_files(
        &dir,
        &server_ca,
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.pem\n  \
         client_allowed_sans: [prometheus.test]\n",
    );
    let server = Server::start(Some(&config)).await;
    let (cert, key) = client_ca.issue(&["prometheus.test"], true);
    let listed = tls_client(&server_ca.cert_pem, Some((&cert, &key)))
        .get(server.https("/metrics"))
        .send()
        .await
        .expect("a listed SAN is served");
    assert_eq!(listed.status(), 200);
    let (cert, key) = client_ca.issue(&["intruder.test"], true);
    let unlisted = tls_client(&server_ca.cert_pem, Some((&cert, &key)))
        .get(server.https("/metrics"))
        .send()
        .await;
    assert!(unlisted.is_err(), "served a SAN that is not listed");
}

#[tokio::test]
async fn a_rotated_certificate_is_served_after_the_files_change() {
    let dir = Dir::new();
    let ca = Ca::new("rotating CA");
    let config = tls_files(&dir, &ca, "");
    let first = std::fs::read_to_string(dir.path("server.crt")).unwrap();
    let server = Server::start(Some(&config)).await;
    assert_eq!(
        served_certificate(server.addr, &ca.cert_pem).await,
        pem_der(&first)
    );
    assert_eq!(server.check_now(), Ok(Reloaded::Unchanged));

    // Half a rotation (new certificate, old key) is refused: the old pair is still served.
    let (second, second_key) = ca.issue(&["127.0.0.1"], false);
    dir.write("server.crt", &second);
    let e = server.check_now().unwrap_err();
    assert!(e.contains("certificate and key"), "{e}");
    assert_eq!(
        served_certificate(server.addr, &ca.cert_pem).await,
        pem_der(&first)
    );

    // The whole rotation applies from the next connection, without a restart.
    dir.write("server.key", &second_key);
    assert_eq!(server.check_now(), Ok(Reloaded::Applied));
    assert_eq!(
        served_certificate(server.addr, &ca.cert_pem).await,
        pem_der(&second)
    );
    let resp = tls_client(&ca.cert_pem, None)
        .get(server.https("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // A truncated certificate (a copy caught mid-write) keeps the last good one.
    dir.write("server.crt", &second[..second.len() / 2]);
    assert!(server.check_now().is_err());
    assert_eq!(
        served_certificate(server.addr, &ca.cert_pem).await,
        pem_der(&second)
    );
}

/// `basic_auth_users` with real bcrypt hashes (cost 4 to keep the test fast).
fn users_yaml(users: &[(&str, &str)]) -> String {
    let mut s = String::from("basic_auth_users:\n");
    for (user, password) in users {
        s.push_str(&format!(
            "  {user}: {}\n",
            bcrypt::hash(password, 4).unwrap()
        ));
    }
    s
}

fn assert_challenged(resp: &reqwest::Response) {
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some(CHALLENGE)
    );
    assert_eq!(CHALLENGE, "Basic realm=\"tencent-live-exporter\"");
}

#[tokio::test]
async fn basic_auth_admits_the_right_password_only() {
    let dir = Dir::new();
    let config = dir.write(
        "web.yml",
        &users_yaml(&[("alice", "wonderland"), ("bob", "builder")]),
    );
    let server = Server::start(Some(&config)).await;
    let http = client();
    let get = |user: Option<(&str, &str)>, path: &str| {
        let mut req = http.get(server.http(path));
        if let Some((u, p)) = user {
            req = req.basic_auth(u, Some(p));
        }
        req.send()
    };

    for _ in 0..2 {
        // The second round is answered from the cache of verified passwords.
        let resp = get(Some(("alice", "wonderland")), "/metrics")
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), METRICS);
    }
    assert_eq!(
        get(Some(("bob", "builder")), "/healthz")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_challenged(&get(Some(("alice", "builder")), "/metrics").await.unwrap());
    assert_challenged(&get(Some(("alice", "")), "/metrics").await.unwrap());
    assert_challenged(&get(None, "/metrics").await.unwrap());
    assert_challenged(
        &get(Some(("mallory", "wonderland")), "/metrics")
            .await
            .unwrap(),
    );
    // Every path is behind the password, the reload endpoint too.
    assert_challenged(&get(None, "/healthz").await.unwrap());
    assert_challenged(&http.post(server.http("/-/reload")).send().await.unwrap());
    let reload = http
        .post(server.http("/-/reload"))
        .basic_auth("alice", Some("wonderland"))
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);
}

/// exporter-toolkit's `auth_excluded_paths`: a probe without the password gets its answer on a
/// listed path, that exact path only; every other path still asks for the password.
#[tokio::test]
async fn auth_excluded_paths_serve_a_probe_without_the_password_and_nothing_else() {
    let dir = Dir::new();
    let config = dir.write(
        "web.yml",
        &format!(
            "{}auth_excluded_paths:\n  - /healthz\n",
            users_yaml(&[("alice", "wonderland")])
        ),
    );
    let server = Server::start(Some(&config)).await;
    let http = client();
    let resp = http.get(server.http("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok\n");
    for path in ["/metrics", "/healthz/", "/HEALTHZ", "/"] {
        assert_challenged(&http.get(server.http(path)).send().await.unwrap());
    }
    assert_challenged(&http.post(server.http("/-/reload")).send().await.unwrap());
    let resp = http
        .get(server.http("/metrics"))
        .basic_auth("alice", Some("wonderland"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn basic_auth_works_over_tls_with_headers_on_every_answer() {
    let dir = Dir::new();
    let ca = Ca::new("CA");
    let extra = format!(
        "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n    \
         X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n{}",
        users_yaml(&[("prometheus", "scrape-me")])
    );
    let server = Server::start(Some(&tls_files(&dir, &ca, &extra))).await;
    let https = tls_client(&ca.cert_pem, None);
    let ok = https
        .get(server.https("/metrics"))
        .basic_auth("prometheus", Some("scrape-me"))
        .send()
        .await
        .unwrap();
    let denied = https.get(server.https("/metrics")).send().await.unwrap();
    let missing = https
        .get(server.https("/nowhere"))
        .basic_auth("prometheus", Some("scrape-me"))
        .send()
        .await
        .unwrap();
    let refused = https.delete(server.https("/metrics")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_challenged(&denied);
    assert_eq!(missing.status(), 404);
    assert_eq!(refused.status(), 405);
    for resp in [&ok, &denied, &missing, &refused] {
        let h = resp.headers();
        assert_eq!(h["strict-transport-security"], "max-age=31536000");
        assert_eq!(h["x-frame-options"], "deny");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn methods_other_than_get_and_head_get_405_but_reload_keeps_post() {
    // The default listener (no web config) gates methods as well.
    let server = Server::start(None).await;
    let http = client();
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::POST,
        reqwest::Method::PATCH,
        reqwest::Method::OPTIONS,
    ] {
        for path in ["/metrics", "/", "/nowhere"] {
            let resp = http
                .request(method.clone(), server.http(path))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 405, "{method} {path}");
            assert_eq!(resp.headers()["allow"], "GET, HEAD", "{method} {path}");
        }
    }
    let put_reload = http.put(server.http("/-/reload")).send().await.unwrap();
    assert_eq!(put_reload.status(), 405);
    assert_eq!(put_reload.headers()["allow"], "POST");
    let reload = http.post(server.http("/-/reload")).send().await.unwrap();
    assert_eq!(reload.status(), 200);
    let head = http.head(server.http("/metrics")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.text().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_broken_web_config_on_reread_keeps_the_last_good_one() {
    let dir = Dir::new();
    let config = dir.write("web.yml", &users_yaml(&[("alice", "wonderland")]));
    let server = Server::start(Some(&config)).await;
    let http = client();
    let status = |user: &'static str, password: &'static str| {
        let req = http
            .get(server.http("/metrics"))
            .basic_auth(user, Some(password));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("alice", "wonderland").await, 200);

    for (broken, why) in [
        ("basic_auth_users: [unclosed\n", "basic_auth_users"),
        (
            "basic_auth_users:\n  alice: plaintext-password\n",
            "not a bcrypt hash",
        ),
        ("basic_auth:\n  alice: x\n", "unknown field `basic_auth`"),
        (
            "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n",
            "failed to read",
        ),
    ] {
        std::fs::write(&config, broken).unwrap();
        let e = server.check_now().unwrap_err();
        assert!(e.contains(why), "{broken}: {e}");
        assert!(!e.contains("plaintext-password"), "{e}");
        assert_eq!(status("alice", "wonderland").await, 200, "{broken}");
    }
    std::fs::remove_file(&config).unwrap();
    assert!(server.check_now().is_err());
    assert_eq!(status("alice", "wonderland").await, 200);

    // A good file again applies at once: bob in, alice out.
    std::fs::write(&config, users_yaml(&[("bob", "builder")])).unwrap();
    assert_eq!(server.check_now(), Ok(Reloaded::Applied));
    assert_eq!(status("bob", "builder").await, 200);
    assert_eq!(status("alice", "wonderland").await, 401);
}

#[tokio::test]
async fn switching_tls_off_needs_a_restart() {
    let dir = Dir::new();
    let ca = Ca::new("CA");
    let config = tls_files(&dir, &ca, "");
    let server = Server::start(Some(&config)).await;
    std::fs::write(&config, users_yaml(&[("alice", "x")])).unwrap();
    let e = server.check_now().unwrap_err();
    assert!(e.contains("needs a restart"), "{e}");
    let resp = tls_client(&ca.cert_pem, None)
        .get(server.https("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn rate_limit_answers_429_beyond_the_burst() {
    let dir = Dir::new();
    let config = dir.write("web.yml", "rate_limit:\n  interval: 1h\n  burst: 2\n");
    let server = Server::start(Some(&config)).await;
    let http = client();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            http.get(server.http("/metrics"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 429]);
}

#[tokio::test]
async fn probes_pass_a_spent_rate_limit_and_take_no_token() {
    let dir = Dir::new();
    let config = dir.write("web.yml", "rate_limit:\n  interval: 1h\n  burst: 1\n");
    let server = Server::start(Some(&config)).await;
    let http = client();
    let status = |path: &'static str| {
        let req = http.get(server.http(path));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // Probes before the only token is spent leave it there...
    for _ in 0..5 {
        assert_eq!(status("/healthz").await, 200);
    }
    assert_eq!(status("/metrics").await, 200);
    assert_eq!(status("/metrics").await, 429);
    // ...and once it is spent, probes still pass.
    for _ in 0..5 {
        assert_eq!(status("/healthz").await, 200);
    }
}

mod connections;
