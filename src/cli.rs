//! Command-line flags. Each flag can also be set from the environment (`TLE_*`, one underscore;
//! config-file keys use `TLE__SECTION__KEY`). Also the forms of a listen address
//! ([`ListenAddress`]), shared by the flag and the `web.listen_address` key.
//!
//! The flags behave like those of Go exporters (exporter-toolkit, kingpin): boolean flags take
//! `1/0`, `true/false`, `yes/no` (any case; also `t/f`, `y/n`, `on/off`) from their environment
//! variable, `--web.listen-address` may be given more than once, `--version` prints the
//! revision, branch, build date and toolchain.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser, ValueEnum};
use tokio::net::TcpListener;

/// The command line, as clap parses it (flag names are a contract with operators: see README).
#[derive(Debug, Parser)]
#[command(
    name = "tencent-live-exporter",
    disable_version_flag = true,
    about = "Prometheus exporter for Tencent Cloud Live prepaid packages (traffic, transcode, co-anchoring)."
)]
pub struct Cli {
    /// TOML configuration file (see config.example.toml). Without it, one account "default"
    /// from TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY.
    #[arg(long = "config.file", env = "TLE_CONFIG_FILE", value_name = "PATH")]
    pub config_file: Option<PathBuf>,

    /// Address to listen on: `:9877` (every address), `0.0.0.0:9877`, `localhost:9877` (a name,
    /// resolved at start), `[::1]:9877`. Repeat the flag to listen on several. [default:
    /// 0.0.0.0:9877]; overrides web.listen_address.
    #[arg(
        long = "web.listen-address",
        env = "TLE_WEB_LISTEN_ADDRESS",
        value_name = "ADDR",
        action = ArgAction::Append
    )]
    pub listen_address: Vec<String>,

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

    /// Log format: text (human-readable, coloured on a terminal), logfmt (promslog's
    /// `time=… level=… source=… msg=…`) or json. Control characters in logged values are
    /// escaped in every format.
    #[arg(long = "log.format", env = "TLE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Validate the configuration, print it with secrets redacted and, per account, where its
    /// keys would come from (no Live API call); exit 0 when valid and every account has a
    /// credential source, else 2.
    #[arg(long = "check-config", env = "TLE_CHECK_CONFIG", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub check_config: bool,

    /// Poll everything once, print the exposition to stdout, exit 1 if any poll failed.
    #[arg(long = "once", env = "TLE_ONCE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub once: bool,

    /// Run against a built-in simulator of the Live API with demo packages: no Tencent account
    /// needed. Any configured accounts are replaced by the demo account. Needs the default cargo
    /// feature `demo`; a binary built without it exits 2.
    #[arg(long = "demo", env = "TLE_DEMO", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub demo: bool,

    /// With --demo: the length of one demo "day" (humantime, 1s to 1d) [default: 2m]. Usage
    /// accrues over it and lands on the packages once per demo day at a bill hour, as Tencent's
    /// daily bill does; package times are in demo days too.
    #[arg(long = "demo.day", env = "TLE_DEMO_DAY", value_name = "DURATION")]
    pub demo_day: Option<String>,

    /// Print the version, git revision and branch, build date and rustc version, and exit.
    #[arg(long = "version", short = 'V', action = ArgAction::SetTrue)]
    pub version: bool,
}

/// The default of `--demo.day`.
pub const DEFAULT_DEMO_DAY: std::time::Duration = std::time::Duration::from_secs(120);
/// The shortest and longest `--demo.day`.
pub const DEMO_DAY_RANGE: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(86_400),
);

impl Cli {
    /// The demo's day: [`DEFAULT_DEMO_DAY`] unless `--demo.day` says otherwise; `None` without
    /// `--demo`. Errors (naming the flag) when `--demo.day` is given without `--demo`, does not
    /// parse, or is outside [`DEMO_DAY_RANGE`].
    pub fn demo_day(&self) -> Result<Option<std::time::Duration>, String> {
        let Some(text) = &self.demo_day else {
            return Ok(self.demo.then_some(DEFAULT_DEMO_DAY));
        };
        if !self.demo {
            return Err(format!(
                "--demo.day (TLE_DEMO_DAY) {text:?} is only meaningful with --demo; \
                 pass --demo or drop it"
            ));
        }
        let day = humantime::parse_duration(text.trim())
            .map_err(|e| format!("--demo.day {text:?} is not a duration like 2m or 30s: {e}"))?;
        let (least, most) = DEMO_DAY_RANGE;
        if day < least || day > most {
            return Err(format!(
                "--demo.day {text:?} is outside {} to {}",
                humantime::format_duration(least),
                humantime::format_duration(most)
            ));
        }
        Ok(Some(day))
    }
}

/// Whether text logs carry ANSI colour codes: only when stderr is a terminal, and never when
/// `NO_COLOR` is set to anything but the empty string (<https://no-color.org>).
pub fn log_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// One listen address, in any form Go's exporter-toolkit takes: `:9877` (every address of the
/// host), `0.0.0.0:9877`, `[::1]:9877` (IPv6, bracketed), `localhost:9877` (a name, resolved when
/// binding). The port is 0..=65535 (0: any free port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddress {
    /// Where to bind: every address, one IP, or a name resolved at bind time.
    pub host: ListenHost,
    /// The TCP port; 0 asks the system for any free one (tests).
    pub port: u16,
}

/// The host part of a [`ListenAddress`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenHost {
    /// `:port`: every address, IPv6 and IPv4 where the host has IPv6, else IPv4.
    Any,
    /// An IPv4 address (`0.0.0.0:9877`), or an IPv6 one written in brackets (`[::1]:9877`).
    Ip(IpAddr),
    /// A host name, resolved by the system's resolver when binding.
    Name(String),
}

/// The error of [`ListenAddress::from_str`]: says what was wrong and which forms are taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a listen address ({why}); use :9877, 0.0.0.0:9877, localhost:9877 or [::1]:9877"
)]
pub struct ListenAddressError {
    input: String,
    why: &'static str,
}

impl FromStr for ListenAddress {
    type Err = ListenAddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |why| ListenAddressError {
            input: input.to_owned(),
            why,
        };
        let s = input.trim();
        let (host, port) = s.rsplit_once(':').ok_or_else(|| err("no :port"))?;
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("the port is not a number"));
        }
        let port: u16 = port.parse().map_err(|_| err("the port is above 65535"))?;
        let host = if host.is_empty() {
            ListenHost::Any
        } else if let Some(inner) = host.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| err("an unclosed [ around the IPv6 address"))?;
            ListenHost::Ip(IpAddr::V6(
                inner
                    .parse::<Ipv6Addr>()
                    .map_err(|_| err("not an IPv6 address between [ and ]"))?,
            ))
        } else if host.contains(':') {
            return Err(err("an IPv6 address needs brackets, as in [::1]:9877"));
        } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
            ListenHost::Ip(IpAddr::V4(ip))
        } else if host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        {
            ListenHost::Name(host.to_owned())
        } else {
            return Err(err("the host is neither an IP address nor a host name"));
        };
        Ok(ListenAddress { host, port })
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            ListenHost::Any => write!(f, ":{}", self.port),
            ListenHost::Ip(ip) => write!(f, "{}", SocketAddr::new(*ip, self.port)),
            ListenHost::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

impl ListenAddress {
    /// Binds a listener. `:port` binds `[::]:port` (which also takes IPv4 unless the host sets
    /// `net.ipv6.bindv6only`), or `0.0.0.0:port` where the host has no IPv6. A name binds its
    /// first IPv4 address, else its first address, as Go's `net.Listen` binds one of them.
    /// Errors name the address and, for a name, what it resolved to.
    pub async fn bind(&self) -> io::Result<TcpListener> {
        let addr = match &self.host {
            ListenHost::Ip(ip) => SocketAddr::new(*ip, self.port),
            ListenHost::Any => {
                let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), self.port);
                match TcpListener::bind(v6).await {
                    Ok(listener) => return Ok(listener),
                    // No IPv6 on this host (EAFNOSUPPORT / EADDRNOTAVAIL): IPv4 only.
                    Err(e)
                        if e.kind() != io::ErrorKind::AddrInUse
                            && e.kind() != io::ErrorKind::PermissionDenied =>
                    {
                        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), self.port)
                    }
                    Err(e) => return Err(e),
                }
            }
            ListenHost::Name(name) => {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), self.port))
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("resolving {name}: {e}")))?
                    .collect();
                addrs
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or(addrs.first())
                    .copied()
                    .ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("{name} resolves to no address"),
                        )
                    })?
            }
        };
        TcpListener::bind(addr).await.map_err(|e| {
            let resolved = match &self.host {
                ListenHost::Name(_) => format!(" ({addr})"),
                _ => String::new(),
            };
            io::Error::new(e.kind(), format!("{e}{resolved}"))
        })
    }
}

/// `--log.level`: the level of this crate's logs (dependencies log at `warn`); ignored when
/// `RUST_LOG` is set, which then says it all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Errors only: a refused reload, a failed publish or accept.
    Error,
    /// Warnings too: a pair's polls failing (once per change of error), unusable answer fields.
    Warn,
    /// Info too: start, reloads, recovered polls, shutdown.
    Info,
    /// Debug too: every poll, retry and repeated failure, connections, credential fetches.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The level as `tracing`'s `EnvFilter` spells it (`error` … `trace`).
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

/// `--log.format`: how log lines are written to stderr. In every format a log line is one
/// line: control characters in values (an API's error message, a path) are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default); coloured only on a terminal without `NO_COLOR`.
    Text,
    /// logfmt in promslog's shape (`time=… level=… source=… msg=…`), as Prometheus and its
    /// exporters write it.
    Logfmt,
    /// One JSON object per line (tracing-subscriber's JSON format), for log collectors.
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
        assert_eq!(c.listen_address, ["127.0.0.1:1"]);
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
        let logfmt = Cli::try_parse_from(["x", "--log.format", "logfmt"]).unwrap();
        assert_eq!(logfmt.log_format, LogFormat::Logfmt);
        // The default stays the human text format.
        assert_eq!(
            Cli::try_parse_from(["x"]).unwrap().log_format,
            LogFormat::Text
        );
        assert!(!c.version);
        assert!(Cli::try_parse_from(["x", "--version"]).unwrap().version);
        assert!(Cli::try_parse_from(["x", "-V"]).unwrap().version);
    }

    #[test]
    fn demo_day_defaults_to_2m_with_demo_and_is_refused_without_it_or_out_of_range() {
        let day = |args: &[&str]| {
            Cli::try_parse_from([&["tencent-live-exporter"], args].concat())
                .expect("parses")
                .demo_day()
        };
        let secs = std::time::Duration::from_secs;
        assert_eq!(day(&[]), Ok(None));
        assert_eq!(day(&["--demo"]), Ok(Some(secs(120))));
        assert_eq!(day(&["--demo", "--demo.day", "5s"]), Ok(Some(secs(5))));
        assert_eq!(day(&["--demo", "--demo.day=1d"]), Ok(Some(secs(86_400))));
        assert_eq!(day(&["--demo", "--demo.day=1s"]), Ok(Some(secs(1))));
        for (args, says) in [
            (&["--demo.day", "5s"][..], "only meaningful with --demo"),
            (&["--demo", "--demo.day", "999ms"], "outside 1s to 1day"),
            (&["--demo", "--demo.day", "25h"], "outside 1s to 1day"),
            (&["--demo", "--demo.day", "soon"], "not a duration"),
        ] {
            let err = day(args).expect_err("refused");
            assert!(
                err.contains("--demo.day") && err.contains(says),
                "{args:?}: {err}"
            );
        }
    }

    #[test]
    fn every_flag_is_in_the_readme_flags_table() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        for arg in Cli::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            assert!(
                readme.contains(&format!("| `--{long}")),
                "--{long} is not in the README's flags table"
            );
        }
    }

    #[test]
    fn the_listen_address_flag_can_be_repeated() {
        let c = Cli::try_parse_from([
            "x",
            "--web.listen-address",
            ":9877",
            "--web.listen-address=[::1]:9878",
            "--web.listen-address",
            "localhost:9879",
        ])
        .unwrap();
        assert_eq!(c.listen_address, [":9877", "[::1]:9878", "localhost:9879"]);
    }

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        use std::ffi::OsStr;
        assert!(log_colour(true, None));
        assert!(log_colour(true, Some(OsStr::new(""))));
        assert!(!log_colour(true, Some(OsStr::new("1"))));
        assert!(!log_colour(true, Some(OsStr::new("false"))));
        assert!(!log_colour(false, None));
        assert!(!log_colour(false, Some(OsStr::new(""))));
    }

    fn addr(s: &str) -> ListenAddress {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn every_exporter_toolkit_listen_address_form_parses() {
        let any = addr(":9877");
        assert_eq!((any.host.clone(), any.port), (ListenHost::Any, 9877));
        assert_eq!(
            addr("0.0.0.0:9877").host,
            ListenHost::Ip("0.0.0.0".parse().unwrap())
        );
        assert_eq!(
            addr("[::1]:9877").host,
            ListenHost::Ip("::1".parse().unwrap())
        );
        assert_eq!(addr("[::]:1").host, ListenHost::Ip("::".parse().unwrap()));
        assert_eq!(
            addr("localhost:9877").host,
            ListenHost::Name("localhost".into())
        );
        assert_eq!(
            addr("exporter-1.monitoring.svc:80").host,
            ListenHost::Name("exporter-1.monitoring.svc".into())
        );
        assert_eq!(addr(" 127.0.0.1:0 ").port, 0);
        // Display gives the same form back.
        for s in [":9877", "0.0.0.0:9877", "[::1]:9877", "localhost:9877"] {
            assert_eq!(addr(s).to_string(), s);
        }
    }

    #[test]
    fn a_bad_listen_address_says_what_is_wrong() {
        for (input, why) in [
            ("9877", "no :port"),
            ("nowhere", "no :port"),
            ("localhost:", "not a number"),
            ("localhost:http", "not a number"),
            (":65536", "above 65535"),
            ("::1:9877", "needs brackets"),
            ("[::1:9877", "unclosed ["),
            ("[1.2.3.4]:9877", "not an IPv6 address"),
            ("bad host:9877", "neither an IP address nor a host name"),
            ("a..b:9877", "neither"),
        ] {
            let e = input.parse::<ListenAddress>().unwrap_err().to_string();
            assert!(e.contains(why), "{input}: {e}");
            assert!(e.contains("localhost:9877"), "{input}: {e}");
        }
    }

    #[tokio::test]
    async fn every_form_binds_and_a_name_is_resolved() {
        // :port listens on every address: reachable over IPv4 loopback.
        let any = addr(":0").bind().await.unwrap();
        let port = any.local_addr().unwrap().port();
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        // A name: resolved, its IPv4 address preferred.
        let named = addr("localhost:0").bind().await.unwrap();
        assert_eq!(
            named.local_addr().unwrap().ip(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        let v4 = addr("127.0.0.1:0").bind().await.unwrap();
        assert!(v4.local_addr().unwrap().ip().is_loopback());
        // A name that does not resolve fails, naming it.
        let e = addr("no-such-host.invalid:0").bind().await.unwrap_err();
        assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
        // Bracketed IPv6 binds where the host has IPv6 loopback.
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            let v6 = addr("[::1]:0").bind().await.unwrap();
            assert_eq!(
                v6.local_addr().unwrap().ip(),
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            );
        }
        // A port in use is an error, not a fallback to another family.
        let taken = v4.local_addr().unwrap().port();
        let e = addr(&format!("127.0.0.1:{taken}"))
            .bind()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
