//! The binary: parse flags, load and validate the configuration, then run. Errors are printed
//! with their whole chain and turned into an exit code; nothing here panics on bad input.
//! Also `--version`, and `--check-config`'s report of where each account's keys come from.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{IsTerminal as _, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use tencent_live_exporter::cli::{Cli, LogFormat, log_colour};
use tencent_live_exporter::config::{self, Overrides};
#[cfg(feature = "demo")]
use tencent_live_exporter::demo;
use tencent_live_exporter::tencent::credentials::{CredentialSource, FetchContext};
use tencent_live_exporter::tencent::transport::Transport;
use tencent_live_exporter::{app, http, logging};

fn main() -> ExitCode {
    // First: SIGHUP, SIGTERM and SIGINT wait (blocked, queued by the kernel) until their
    // handlers exist, so that one sent during start is never the default, fatal action.
    #[cfg(unix)]
    signals::block();
    let cli = Cli::parse();
    if cli.version {
        print!("{}", tencent_live_exporter::version_text());
        return ExitCode::SUCCESS;
    }
    init_logging(&cli);
    let format = cli.log_format;
    match run(cli) {
        Ok(code) => code,
        // logfmt and json are read by log collectors: the error is one event like any other,
        // its line breaks escaped by the format.
        Err(e) if format != LogFormat::Text => {
            tracing::error!("{e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            // The chain may quote a file or an API answer: no raw control byte, and a
            // multi-line message (a TOML parse error's excerpt) indented under its first line.
            let message = format!("{e:#}")
                .split('\n')
                .map(|line| logging::escape_controls(line).into_owned())
                .collect::<Vec<_>>()
                .join("\n  ");
            eprintln!("tencent-live-exporter: error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async_run(cli))
}

async fn async_run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        listen_address: cli.listen_address.clone(),
        telemetry_path: cli.telemetry_path.clone(),
    };
    let shutdown = CancellationToken::new();
    let mut reloads = signals::handle(shutdown.clone())?;
    // --demo.day without --demo, or out of range: exit 2 naming the flag.
    let demo_day = cli.demo_day().map_err(anyhow::Error::msg)?;
    #[cfg(feature = "demo")]
    let demo_endpoint = match demo_day {
        Some(day) => Some(demo::start_simulator(shutdown.clone(), day).await?),
        None => None,
    };
    #[cfg(not(feature = "demo"))]
    let _ = demo_day;
    // The flag stays (so a script that passes it gets this message, not clap's "unexpected
    // argument"), and refuses to start: exit 2.
    #[cfg(not(feature = "demo"))]
    if cli.demo {
        anyhow::bail!(
            "--demo: this binary was built without the demo feature (the Live API simulator); \
             build it with the default features"
        );
    }
    // The same steps at start and at every reload: file, environment, demo, flags.
    let file = cli.config_file.clone();
    let loader: app::ConfigLoader = Arc::new(move || {
        let env = config::process_env();
        let raw = config::load_raw(file.as_deref(), env.clone())?;
        #[cfg(feature = "demo")]
        let raw = {
            let mut raw = raw;
            if let Some(endpoint) = &demo_endpoint {
                demo::apply(&mut raw, endpoint);
            }
            raw
        };
        Ok(config::Config::validate(raw, &overrides, &env)?)
    });
    // A SIGHUP before this point is coalesced into the start: this reads the newest file.
    reloads.mark_unchanged();
    let config = loader()?;
    for warning in config::permission_warnings(cli.config_file.as_deref()) {
        tracing::warn!("{warning}");
    }
    // A web config file that cannot be read, parsed or turned into TLS refuses to start (exit 2);
    // --check-config validates it too.
    let web = http::WebOptions::from_file(cli.web_config_file.as_deref())?;

    if cli.check_config {
        print!("{}", config.to_redacted_toml());
        let (report, without) = check_credentials(&config).await?;
        print!("{report}");
        if !without.is_empty() {
            eprintln!(
                "tencent-live-exporter: error: no credential source gives keys for account {}",
                without.join(", ")
            );
            return Ok(ExitCode::from(2));
        }
        return Ok(ExitCode::SUCCESS);
    }
    // --demo's simulator is this process's own: no other process shares its windows.
    #[cfg(feature = "demo")]
    let handover = !cli.demo;
    #[cfg(not(feature = "demo"))]
    let handover = true;
    if cli.once {
        let (text, ok) = app::once(&config, shutdown.clone(), handover).await?;
        shutdown.cancel();
        std::io::stdout()
            .write_all(&text)
            .context("writing to stdout")?;
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }

    let listeners = app::bind(&config).await?;
    // The signals are handled and the listeners bound: systemd may send SIGHUP from now on.
    #[cfg(target_os = "linux")]
    notify_ready();
    let daemon = app::Daemon {
        config,
        loader: Some(loader),
        web,
        reloads: Some(reloads),
        handover,
        transport: None,
    };
    app::run(listeners, daemon, shutdown.cancelled_owned()).await?;
    Ok(ExitCode::SUCCESS)
}

/// `--check-config`: resolves every account's credential source once, all at the same time
/// (files, environment, metadata service, STS; never the Live API), each within `poll.timeout`.
/// Gives the report (TOML comments, so the whole output still parses) and the accounts that
/// would have no keys.
async fn check_credentials(config: &config::Config) -> anyhow::Result<(String, Vec<String>)> {
    let transport = Transport::http(config.poll.timeout).context("building the HTTP client")?;
    let timeout = config.poll.timeout;
    let mut probes = tokio::task::JoinSet::new();
    for (i, account) in config.accounts.iter().enumerate() {
        // A source of its own, from the configured spec: the check shares no cache.
        let source = CredentialSource::new(account.credentials.clone());
        let transport = transport.clone();
        probes.spawn(async move {
            let ctx = FetchContext {
                transport: &transport,
                timeout,
            };
            let outcome = tokio::time::timeout(timeout, source.probe(ctx)).await;
            (i, outcome)
        });
    }
    let mut outcomes = Vec::new();
    while let Some(done) = probes.join_next().await {
        outcomes.push(done.context("a credential check failed to run")?);
    }
    outcomes.sort_by_key(|(i, _)| *i);
    let mut report = String::from("\n# Credentials, resolved once (no Live API call):\n");
    let mut without = Vec::new();
    for (account, (_, outcome)) in config.accounts.iter().zip(outcomes) {
        let name = &account.name;
        let configured = account.credentials.base.name();
        let line = match outcome {
            Ok(Ok(p)) => {
                let via = if configured == p.from {
                    String::new()
                } else {
                    format!(" (via {configured})")
                };
                let kind = match (p.assumed_role, p.temporary) {
                    (true, _) => "temporary keys of role_arn (AssumeRole)",
                    (false, true) => "temporary keys",
                    (false, false) => "long-term keys",
                };
                format!("ok: {}{via}, SecretId {}, {kind}", p.from, p.secret_id)
            }
            Ok(Err(e)) => {
                without.push(format!("{name:?}"));
                format!("NO KEYS: {e}")
            }
            Err(_) => {
                without.push(format!("{name:?}"));
                format!(
                    "NO KEYS: credential source {configured}: no answer within poll.timeout ({})",
                    humantime::format_duration(config.poll.timeout)
                )
            }
        };
        // A SecretId or an error text (a path, a file's content) may hold control characters,
        // which a TOML comment may not.
        let line = config::comment(&line);
        let _ =
            std::fmt::Write::write_fmt(&mut report, format_args!("# account {name:?}: {line}\n"));
    }
    Ok((report, without))
}

/// Tells systemd that the exporter is up (`Type=notify`, sd_notify(3)'s `READY=1` on
/// `$NOTIFY_SOCKET`): its signal handlers are installed and its listeners bound. systemd runs no
/// `ExecReload=` before it, so `systemctl reload` right after `systemctl restart` never sends a
/// SIGHUP between `exec` and `main`, where no process can block it and it kills. Without
/// `NOTIFY_SOCKET` (not under systemd, or another `Type=`) it does nothing; a failure is logged,
/// never fatal.
#[cfg(target_os = "linux")]
fn notify_ready() {
    use std::os::linux::net::SocketAddrExt as _;
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    // A leading `@` names a socket in the abstract namespace.
    let addr = match path.as_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|addr| UnixDatagram::unbound()?.send_to_addr(b"READY=1\n", &addr));
    if let Err(e) = sent {
        tracing::warn!(
            "telling systemd the exporter is ready (NOTIFY_SOCKET {}): {e}",
            path.to_string_lossy()
        );
    }
}

/// Signals from the first instruction: blocked in `main` before anything else, then handled
/// once the runtime runs. SIGTERM or SIGINT: stop polling, finish in-flight scrapes, exit 0.
/// SIGHUP: a reload request, counted in a watch (the daemon reloads on each change).
#[cfg(unix)]
mod signals {
    use anyhow::Context as _;
    use tokio::signal::unix::{SignalKind, signal};
    use tokio::sync::watch;
    use tokio_util::sync::CancellationToken;

    /// The signals the daemon handles.
    fn set() -> libc::sigset_t {
        // SAFETY: `sigemptyset` and `sigaddset` only write the set they are given, which is a
        // valid, owned value.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            set
        }
    }

    /// Blocks the signals in this (the main) thread: the kernel queues them, and the runtime's
    /// threads, created after, inherit the mask.
    pub fn block() {
        let set = set();
        // SAFETY: changes the calling thread's signal mask only; `set` is valid.
        unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
    }

    /// Installs the handlers, then unblocks the signals in this thread, which receives any
    /// queued during start. Gives the reload requests.
    pub fn handle(shutdown: CancellationToken) -> anyhow::Result<watch::Receiver<u64>> {
        let mut term = signal(SignalKind::terminate()).context("watching SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("watching SIGINT")?;
        let mut hup = signal(SignalKind::hangup()).context("watching SIGHUP")?;
        let (requests, reloads) = watch::channel(0u64);
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
            shutdown.cancel();
        });
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                requests.send_modify(|n| *n += 1);
            }
        });
        let set = set();
        // SAFETY: as in `block`; the handlers are installed, so a queued signal is handled.
        unsafe {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
        Ok(reloads)
    }
}

#[cfg(not(unix))]
mod signals {
    use tokio::sync::watch;
    use tokio_util::sync::CancellationToken;

    /// Ctrl-C stops; there is no SIGHUP (reload with `POST /-/reload`).
    pub fn handle(shutdown: CancellationToken) -> anyhow::Result<watch::Receiver<u64>> {
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
        });
        Ok(watch::channel(0).1)
    }
}

fn init_logging(cli: &Cli) {
    // The flag sets our crate's level; dependencies stay at warn unless RUST_LOG says more.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "warn,tencent_live_exporter={}",
            cli.log_level.as_str()
        ))
    });
    // Colour codes only for a person at a terminal: journald, `docker logs` and files get
    // plain text; NO_COLOR (https://no-color.org) turns it off everywhere.
    let colour = log_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let subscriber = logging::subscriber(cli.log_format, filter, colour, std::io::stderr);
    let _ = tracing::subscriber::set_global_default(subscriber);
}
