//! The binary: parse flags, load and validate the configuration, then run. Errors are printed
//! with their whole chain and turned into an exit code; nothing here panics on bad input.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use tencent_live_exporter::cli::{Cli, LogFormat};
use tencent_live_exporter::config::{self, Overrides};
use tencent_live_exporter::{app, demo, web};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let demo_endpoint = if cli.demo {
        Some(demo::start_simulator(shutdown.clone()).await?)
    } else {
        None
    };
    // The same steps at start and at every reload: file, environment, demo, flags.
    let file = cli.config_file.clone();
    let loader: app::ConfigLoader = Arc::new(move || {
        let env = config::process_env();
        let mut raw = config::load_raw(file.as_deref(), env.clone())?;
        if let Some(endpoint) = &demo_endpoint {
            demo::apply(&mut raw, endpoint);
        }
        Ok(config::Config::validate(raw, &overrides, &env)?)
    });
    let config = loader()?;
    for warning in config::permission_warnings(cli.config_file.as_deref()) {
        tracing::warn!("{warning}");
    }
    // A web config file that cannot be read, parsed or turned into TLS refuses to start (exit 2);
    // --check-config validates it too.
    let web = web::WebOptions::from_file(cli.web_config_file.as_deref())?;

    if cli.check_config {
        print!("{}", config.to_redacted_toml());
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
