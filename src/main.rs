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
use tencent_live_exporter::{app, http};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        print!("{}", tencent_live_exporter::version_text());
        return ExitCode::SUCCESS;
    }
    init_logging(&cli);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tencent-live-exporter: error: {e:#}");
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
    cancel_on_signal(shutdown.clone())?;
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
    if cli.once {
        let (text, ok) = app::once(&config, shutdown.clone()).await?;
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

    app::run(config, Some(loader), web, shutdown).await?;
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

/// SIGTERM or SIGINT: stop polling, finish in-flight scrapes, exit 0. The handlers are
/// registered before anything listens, so a signal that arrives early is never the default
/// (fatal) one.
#[cfg(unix)]
fn cancel_on_signal(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("watching SIGINT")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        shutdown.cancel();
    });
    Ok(())
}

#[cfg(not(unix))]
fn cancel_on_signal(shutdown: CancellationToken) -> anyhow::Result<()> {
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
    });
    Ok(())
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
