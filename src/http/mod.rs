//! The HTTP side: the routes (`/metrics`, `/`, `/healthz`, `POST /-/reload`), the status page, and
//! securing the endpoint: `--web.config.file` in the Prometheus exporter-toolkit format
//! (TLS by rustls, client certificates, basic auth with bcrypt hashes, extra response headers,
//! rate limit), re-read while running; and the hardened accept loop every listener uses
//! (header read, idle and write timeouts, bounded connections that non-reading clients cannot
//! exhaust, GET/HEAD only but for `POST /-/reload`, graceful shutdown).
//!
//! - `server.rs`: the routes and what each answers.
//! - `status_page.rs`: the HTML status page at `/`.
//! - `web_config.rs`: the exporter-toolkit YAML file → validated settings (no I/O).
//! - `tls.rs`: settings + certificate bytes → rustls `ServerConfig` and client verifiers.
//! - `auth.rs`: basic auth: constant-time bcrypt, cached successes, decoy for unknown users.
//! - `rate.rs`: `rate_limit`'s token bucket (the inbound limiter).
//! - `source.rs`: the file as it applies now; re-checks that keep the last good one.
//! - `serve.rs`: the accept loop and the gate in front of the routes.

pub mod auth;
pub mod rate;
pub mod serve;
pub mod server;
pub mod source;
pub mod status_page;
pub mod tls;
pub mod web_config;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use serve::CHALLENGE;
pub use source::{Active, Reloaded, WebConfigSource};
pub use web_config::{WebConfig, WebConfigError};

/// How long a client may take to send a request's headers (and, on TLS, its handshake); an
/// idle keep-alive connection is closed after as long.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long writing one answer may take: a client that does not read it by then is cut off.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once. Beyond it, a new connection closes the one that has waited
/// longest on its client; it waits in the listen backlog only while every connection has a
/// request being handled.
pub const MAX_CONNECTIONS: usize = 512;

/// How often the web configuration file (and the files it names) is checked for changes.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// How the HTTP server accepts and admits connections.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// `--web.config.file`; `None`: plain HTTP, no authentication.
    pub config: Option<Arc<WebConfigSource>>,
    /// How long a client may take to send a request's headers (and its TLS handshake), and how long
    /// a keep-alive connection may sit idle ([`HEADER_READ_TIMEOUT`]).
    pub header_read_timeout: Duration,
    /// Deadline for writing one answer ([`WRITE_TIMEOUT`]).
    pub write_timeout: Duration,
    /// Connections served at once ([`MAX_CONNECTIONS`]); a newcomer beyond it closes the one that
    /// has waited longest on its client.
    pub max_connections: usize,
    /// How often `--web.config.file` and the files it names are read again for changes
    /// ([`RECHECK_INTERVAL`]).
    pub recheck_interval: Duration,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            config: None,
            header_read_timeout: HEADER_READ_TIMEOUT,
            write_timeout: WRITE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            recheck_interval: RECHECK_INTERVAL,
        }
    }
}

impl WebOptions {
    /// The defaults with the web configuration file loaded, when one is given. A file that
    /// cannot be read, parsed or built into a TLS configuration is an error: refuse to start.
    pub fn from_file(path: Option<&Path>) -> Result<WebOptions, WebConfigError> {
        Ok(WebOptions {
            config: path.map(WebConfigSource::load).transpose()?.map(Arc::new),
            ..WebOptions::default()
        })
    }
}
