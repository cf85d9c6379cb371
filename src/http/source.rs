//! The web configuration file as it applies now, re-read so that rotated certificates, keys
//! and users apply without a restart.
//!
//! A check reads the file and every file it names (certificate, key, client CA) and compares a
//! digest of their bytes with what is applied: content, not mtimes, so a same-second rewrite or
//! a Kubernetes secret's symlink swap is noticed too. A file that fails to read, parse or build
//! keeps the last good configuration, and the reason is logged once (until it changes).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::auth::{Authenticator, Users};
use super::rate::RateLimiter;
use super::tls::{self, Material};
use super::web_config::{self, WebConfigError};

/// What one version of the web configuration file makes the server do.
pub struct Active {
    /// `Some`: the listener speaks TLS, with this certificate and client policy.
    pub tls: Option<TlsAcceptor>,
    /// `Some`: every request needs basic auth, but for [`Active::auth_excluded`] paths.
    pub users: Option<Users>,
    /// `auth_excluded_paths`: served without basic auth (exact match on the request path).
    pub auth_excluded_paths: Vec<String>,
    /// Added to every response.
    pub headers: HeaderMap,
    /// `Some`: `rate_limit` applies ([`RateLimiter`]); kept across re-reads whose setting is
    /// unchanged.
    pub rate_limit: Option<Arc<RateLimiter>>,
}

impl Active {
    /// Whether `path` is served without basic auth (`auth_excluded_paths`, exact match).
    pub fn auth_excluded(&self, path: &str) -> bool {
        self.auth_excluded_paths.iter().any(|p| p == path)
    }
}

/// The outcome of a successful check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reloaded {
    /// The files are as applied.
    Unchanged,
    /// The files changed and the new configuration applies from the next connection/request.
    Applied,
}

/// `--web.config.file`: loaded at start (a bad file refuses to start), re-checked while serving.
pub struct WebConfigSource {
    path: PathBuf,
    active: RwLock<Arc<Active>>,
    seen: Mutex<Seen>,
    pub(crate) auth: Authenticator,
}

#[derive(Default)]
struct Seen {
    applied: [u8; 32],
    /// The last failure logged, so a broken file is reported once, not every check.
    last_error: Option<String>,
}

impl std::fmt::Debug for WebConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfigSource")
            .field("path", &self.path)
            .field("tls", &self.tls_enabled())
            .finish_non_exhaustive()
    }
}

/// The file and the files it names, as read now.
struct Files {
    digest: [u8; 32],
    parsed: web_config::WebConfig,
    material: Option<Material>,
}

/// Reads the file and what it names; the digest covers every byte read.
fn read(path: &Path) -> Result<Files, WebConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| WebConfigError(format!("cannot read: {e}")))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let parsed = web_config::parse(&text, dir)?;
    let material = parsed.tls.as_ref().map(Material::read).transpose()?;
    let mut digest = Sha256::new();
    digest.update((text.len() as u64).to_le_bytes());
    digest.update(text.as_bytes());
    if let Some(m) = &material {
        m.digest_into(&mut digest);
    }
    Ok(Files {
        digest: digest.finalize().into(),
        parsed,
        material,
    })
}

/// Builds what the files configure; `previous` is the configuration in force, if any.
fn build(files: Files, previous: Option<&Active>) -> Result<(Active, Vec<String>), WebConfigError> {
    let Files {
        parsed, material, ..
    } = files;
    let mut warnings = parsed.warnings;
    let tls = match (&parsed.tls, &material) {
        (Some(t), Some(m)) => {
            let (server_config, more) = tls::server_config(t, m)?;
            warnings.extend(more);
            Some(TlsAcceptor::from(server_config))
        }
        _ => None,
    };
    if let Some(previous) = previous {
        if previous.tls.is_some() != tls.is_some() {
            return Err(WebConfigError(
                "switching TLS on or off needs a restart of the exporter".into(),
            ));
        }
    }
    let rate_limit = parsed.rate_limit.map(|settings| {
        match previous
            .and_then(|p| p.rate_limit.as_ref())
            .filter(|r| r.settings == settings)
        {
            Some(same) => same.clone(),
            None => Arc::new(RateLimiter::new(settings)),
        }
    });
    let active = Active {
        tls,
        users: Users::new(parsed.users),
        auth_excluded_paths: parsed.auth_excluded_paths,
        headers: parsed.headers.into_iter().collect(),
        rate_limit,
    };
    Ok((active, warnings))
}

impl WebConfigSource {
    /// Loads the file: an error here means the exporter must not start.
    pub fn load(path: impl Into<PathBuf>) -> Result<WebConfigSource, WebConfigError> {
        let path = path.into();
        let (digest, active, warnings) = read(&path)
            .and_then(|files| {
                let digest = files.digest;
                build(files, None).map(|(active, warnings)| (digest, active, warnings))
            })
            .map_err(|e| WebConfigError(format!("web config file {}: {e}", path.display())))?;
        for w in &warnings {
            tracing::warn!(file = %path.display(), "web config: {w}");
        }
        tracing::info!(
            file = %path.display(),
            tls = active.tls.is_some(),
            basic_auth = active.users.is_some(),
            "web configuration loaded"
        );
        Ok(WebConfigSource {
            path,
            active: RwLock::new(Arc::new(active)),
            seen: Mutex::new(Seen {
                applied: digest,
                last_error: None,
            }),
            auth: Authenticator::default(),
        })
    }

    /// The web configuration file's path, as given to `--web.config.file`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Active> {
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the server speaks TLS (fixed for the life of the process).
    pub fn tls_enabled(&self) -> bool {
        self.current().tls.is_some()
    }

    /// Re-reads the file and what it names now; applies it when it changed and is good. A bad
    /// file keeps the configuration in force; the reason is returned, and logged when new.
    pub fn check_now(&self) -> Result<Reloaded, WebConfigError> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = self.current();
        let outcome = read(&self.path).and_then(|files| {
            if files.digest == seen.applied {
                return Ok(Reloaded::Unchanged);
            }
            let digest = files.digest;
            let (active, warnings) = build(files, Some(&previous))?;
            for w in &warnings {
                tracing::warn!(file = %self.path.display(), "web config: {w}");
            }
            let users_changed = active.users != previous.users;
            *self.active.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(active);
            if users_changed {
                self.auth.forget();
            }
            seen.applied = digest;
            tracing::info!(file = %self.path.display(), "web configuration reloaded");
            Ok(Reloaded::Applied)
        });
        match &outcome {
            Ok(_) => seen.last_error = None,
            Err(e) => {
                if seen.last_error.as_deref() != Some(e.0.as_str()) {
                    // A warning: the exporter keeps serving, and a rotation caught between its
                    // certificate and its key heals at the next check.
                    tracing::warn!(
                        file = %self.path.display(),
                        "web configuration not reloaded, the last good one stays: {e}"
                    );
                    seen.last_error = Some(e.0.clone());
                }
            }
        }
        outcome
    }

    /// Checks every `every` until `shutdown` (the checks run off the async threads).
    pub async fn watch(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let source = self.clone();
                    let _ = tokio::task::spawn_blocking(move || source.check_now()).await;
                }
            }
        }
    }
}
