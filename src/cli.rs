//! Command-line flags. Each flag can also be set from the environment (`TLE_*`, one underscore;
//! config-file keys use `TLE__SECTION__KEY`).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tencent-live-exporter",
    version,
    about = "Prometheus exporter for Tencent Cloud Live prepaid packages (traffic, transcode, co-anchoring)."
)]
pub struct Cli {
    /// TOML configuration file (see config.example.toml). Without it, one account "default"
    /// from TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY.
    #[arg(long = "config.file", env = "TLE_CONFIG_FILE", value_name = "PATH")]
    pub config_file: Option<PathBuf>,

    /// Address to listen on [default: 0.0.0.0:9877]; overrides web.listen_address.
    #[arg(
        long = "web.listen-address",
        env = "TLE_WEB_LISTEN_ADDRESS",
        value_name = "ADDR"
    )]
    pub listen_address: Option<String>,

    /// Path of the metrics [default: /metrics]; overrides web.telemetry_path.
    #[arg(
        long = "web.telemetry-path",
        env = "TLE_WEB_TELEMETRY_PATH",
        value_name = "PATH"
    )]
    pub telemetry_path: Option<String>,

    /// Web configuration file in the Prometheus exporter-toolkit format: TLS, client
    /// certificates, basic auth (bcrypt), extra response headers. Re-read while running.
    #[arg(
        long = "web.config.file",
        env = "TLE_WEB_CONFIG_FILE",
        value_name = "PATH"
    )]
    pub web_config_file: Option<PathBuf>,

    /// Log level.
    #[arg(long = "log.level", env = "TLE_LOG_LEVEL", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Log format.
    #[arg(long = "log.format", env = "TLE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Validate the configuration, print it with secrets redacted, and exit (0 valid, 2 not).
    #[arg(long = "check-config", env = "TLE_CHECK_CONFIG")]
    pub check_config: bool,

    /// Poll everything once, print the exposition to stdout, exit 1 if any poll failed.
    #[arg(long = "once", env = "TLE_ONCE")]
    pub once: bool,

    /// Run against a built-in simulator of the Live API with demo packages: no Tencent account
    /// needed. Any configured accounts are replaced by the demo account.
    #[arg(long = "demo", env = "TLE_DEMO")]
    pub demo: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_parse_with_their_contract_names() {
        Cli::command().debug_assert();
        let c = Cli::try_parse_from([
            "x",
            "--config.file",
            "/etc/tle.toml",
            "--web.listen-address",
            "127.0.0.1:1",
            "--web.telemetry-path",
            "/m",
            "--web.config.file",
            "/etc/tle/web.yml",
            "--log.level",
            "debug",
            "--log.format",
            "json",
            "--check-config",
            "--once",
            "--demo",
        ])
        .unwrap();
        assert_eq!(c.config_file.unwrap().to_str(), Some("/etc/tle.toml"));
        assert_eq!(c.listen_address.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(c.telemetry_path.as_deref(), Some("/m"));
        assert_eq!(
            c.web_config_file.unwrap().to_str(),
            Some("/etc/tle/web.yml")
        );
        assert_eq!(
            (c.log_level, c.log_format),
            (LogLevel::Debug, LogFormat::Json)
        );
        assert!(c.check_config && c.once && c.demo);
        assert!(Cli::try_parse_from(["x", "--log.format", "xml"]).is_err());
    }
}
