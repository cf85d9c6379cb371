//! Turning packages into Prometheus series, and the exporter's own counters.
//!
//! [`encode`] is pure: it reads what the store holds and returns the text exposition. It does no
//! I/O and never calls the API; it runs once when a poll ends, not per scrape.

use std::collections::HashSet;

use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::packages::{Package, QueryType, TrafficBillMode};

/// `Content-Type` of the text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const CACHED: &str = "Cached: the value as of the last successful poll of DescribeLivePackageInfo.";

/// Everything about one (account, query type) pair that is exported.
#[derive(Debug, Clone, Copy)]
pub struct PairSeries<'a> {
    pub account: &'a str,
    pub query: QueryType,
    /// Whether the latest poll succeeded.
    pub up: bool,
    pub last_success_unix: Option<f64>,
    /// Duration of the latest poll, all its pages.
    pub poll_duration_seconds: Option<f64>,
    pub bill_mode: Option<i64>,
    pub traffic_bill_modes: &'a [TrafficBillMode],
    /// `None` when the pair has no package series to show (never succeeded, or stale).
    pub packages: Option<&'a [Package]>,
}

/// The exporter's own metrics: they live as long as the process and count across polls.
pub struct ExporterMetrics {
    registry: Registry,
    requests: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
    invalid_fields: IntCounterVec,
    list_rereads: IntCounterVec,
    reload_successful: prometheus::IntGauge,
    reload_success_time: prometheus::Gauge,
}

impl ExporterMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "tencent_live_exporter_api_requests_total",
                "HTTP calls made to the Tencent Cloud Live API, retries included.",
            ),
            &["account"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "tencent_live_exporter_api_request_errors_total",
                "Failed API calls by code: the API's error code, or http_<status>, timeout, connect, decode, response_too_large.",
            ),
            &["account", "code"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "tencent_live_exporter_api_request_duration_seconds",
                "Duration of one API call, from send to the last byte of the answer.",
            )
            .buckets(vec![0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["account"],
        )
        .expect("valid metric");
        let invalid_fields = IntCounterVec::new(
            Opts::new(
                "tencent_live_exporter_invalid_fields_total",
                "Fields of API answers that were missing, null where required, or unusable, and were skipped.",
            ),
            &["account", "field"],
        )
        .expect("valid metric");
        let list_rereads = IntCounterVec::new(
            Opts::new(
                "tencent_live_exporter_list_rereads_total",
                "Package lists read again from page 1 because a read was incomplete, by reason: totals_changed, duplicate_ids, count_mismatch, empty_page.",
            ),
            &["account", "package_type", "reason"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "tencent_live_exporter_build_info",
                "Version, git revision and branch, build date (RFC 3339 UTC) and rustc version of this exporter; always 1.",
            ),
            &["version", "revision", "branch", "build_date", "rustversion"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                crate::REVISION,
                crate::BRANCH,
                crate::BUILD_DATE,
                crate::rustc_version_number(),
            ])
            .set(1);
        let reload_successful = prometheus::IntGauge::new(
            "tencent_live_exporter_config_last_reload_successful",
            "1 when the last configuration reload (SIGHUP or POST /-/reload) succeeded, else 0.",
        )
        .expect("valid metric");
        reload_successful.set(1);
        let reload_success_time = prometheus::Gauge::new(
            "tencent_live_exporter_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load (start or reload).",
        )
        .expect("valid metric");
        reload_success_time.set(unix_now());
        registry
            .register(Box::new(reload_successful.clone()))
            .expect("unique");
        registry
            .register(Box::new(reload_success_time.clone()))
            .expect("unique");
        for c in [&requests, &errors, &invalid_fields, &list_rereads] {
            registry.register(Box::new(c.clone())).expect("unique");
        }
        registry
            .register(Box::new(duration.clone()))
            .expect("unique");
        registry.register(Box::new(build_info)).expect("unique");
        ExporterMetrics {
            registry,
            requests,
            errors,
            duration,
            invalid_fields,
            list_rereads,
            reload_successful,
            reload_success_time,
        }
    }

    /// Records the outcome of a configuration reload.
    pub fn reload_result(&self, ok: bool) {
        self.reload_successful.set(i64::from(ok));
        if ok {
            self.reload_success_time.set(unix_now());
        }
    }

    /// Makes the account's request counter visible (at 0) before its first call.
    pub fn init_account(&self, account: &str) {
        self.requests.with_label_values(&[account]);
    }

    pub fn api_request(&self, account: &str) {
        self.requests.with_label_values(&[account]).inc();
    }

    pub fn api_error(&self, account: &str, code: &str) {
        self.errors.with_label_values(&[account, code]).inc();
    }

    pub fn api_duration(&self, account: &str, seconds: f64) {
        self.duration.with_label_values(&[account]).observe(seconds);
    }

    pub fn invalid_field(&self, account: &str, field: &str) {
        self.invalid_fields
            .with_label_values(&[account, field])
            .inc();
    }

    /// One re-read of a list that was incomplete (`reason`: see `crate::poller::Incomplete`).
    pub fn list_reread(&self, account: &str, package_type: &str, reason: &str) {
        self.list_rereads
            .with_label_values(&[account, package_type, reason])
            .inc();
    }

    fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }
}

impl Default for ExporterMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A sample value, written exactly: integers as integers, the rest in Rust's shortest form.
#[derive(Clone, Copy)]
enum Value {
    Int(i64),
    Uint(u64),
    Float(f64),
}

/// Writes the text format straight into one buffer: no per-series allocation, so encoding
/// 10,000 packages costs one pass and the output's own memory, not tens of MiB of label objects.
struct Writer {
    buf: Vec<u8>,
    /// Where the current family's header began, to drop a family that got no sample.
    family_start: usize,
    family_samples: usize,
}

impl Writer {
    fn family(&mut self, name: &str, help: &str) {
        self.family_start = self.buf.len();
        self.family_samples = 0;
        // HELP text escapes backslash and newline; ours contain neither, but stay safe.
        self.buf.extend_from_slice(b"# HELP ");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b' ');
        for c in help.bytes() {
            match c {
                b'\\' => self.buf.extend_from_slice(b"\\\\"),
                b'\n' => self.buf.extend_from_slice(b"\\n"),
                c => self.buf.push(c),
            }
        }
        self.buf.extend_from_slice(b"\n# TYPE ");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b" gauge\n");
    }

    /// Ends a family; an empty one (a bare HELP/TYPE) is removed.
    fn end_family(&mut self) {
        if self.family_samples == 0 {
            self.buf.truncate(self.family_start);
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: Value) {
        use std::io::Write as _;
        self.family_samples += 1;
        self.buf.extend_from_slice(name.as_bytes());
        if !labels.is_empty() {
            self.buf.push(b'{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.buf.push(b',');
                }
                self.buf.extend_from_slice(k.as_bytes());
                self.buf.extend_from_slice(b"=\"");
                for c in v.bytes() {
                    match c {
                        b'\\' => self.buf.extend_from_slice(b"\\\\"),
                        b'"' => self.buf.extend_from_slice(b"\\\""),
                        b'\n' => self.buf.extend_from_slice(b"\\n"),
                        c => self.buf.push(c),
                    }
                }
                self.buf.push(b'"');
            }
            self.buf.push(b'}');
        }
        self.buf.push(b' ');
        let _ = match value {
            Value::Int(v) => write!(self.buf, "{v}"),
            Value::Uint(v) => write!(self.buf, "{v}"),
            Value::Float(v) if v.is_nan() => write!(self.buf, "NaN"),
            Value::Float(v) if v.is_infinite() => {
                write!(self.buf, "{}", if v > 0.0 { "+Inf" } else { "-Inf" })
            }
            Value::Float(v) => write!(self.buf, "{v}"),
        };
        self.buf.push(b'\n');
    }
}

/// One package to export, with its labels resolved once.
struct Row<'a> {
    account: &'a str,
    package: &'a Package,
    kind: String,
    status: String,
}

/// Encodes the whole exposition: per-pair state, package series, then the exporter's metrics.
/// `size_hint` is the previous encoding's length, so the buffer is allocated once.
pub fn encode(pairs: &[PairSeries<'_>], exporter: &ExporterMetrics) -> Vec<u8> {
    encode_with_hint(pairs, exporter, 0)
}

/// [`encode`] into a buffer of `size_hint` bytes to begin with.
pub fn encode_with_hint(
    pairs: &[PairSeries<'_>],
    exporter: &ExporterMetrics,
    size_hint: usize,
) -> Vec<u8> {
    let mut w = Writer {
        buf: Vec::with_capacity(size_hint + size_hint / 16 + 4096),
        family_start: 0,
        family_samples: 0,
    };

    // A duplicate series makes Prometheus reject the whole scrape: one row per package.
    let mut seen: HashSet<(&str, &str, String)> = HashSet::new();
    let mut rows: Vec<Row<'_>> = Vec::new();
    for pair in pairs {
        for p in pair.packages.unwrap_or_default() {
            let kind = p.kind.label();
            if seen.insert((pair.account, p.id.as_str(), kind.clone())) {
                rows.push(Row {
                    account: pair.account,
                    package: p,
                    kind,
                    status: p.status.label(),
                });
            }
        }
    }
    drop(seen);

    let pair_family = |w: &mut Writer,
                       name: &str,
                       help: &str,
                       value: &dyn Fn(&PairSeries<'_>) -> Option<Value>| {
        w.family(name, help);
        for pair in pairs {
            if let Some(v) = value(pair) {
                w.sample(
                    name,
                    &[
                        ("account", pair.account),
                        ("package_type", pair.query.label()),
                    ],
                    v,
                );
            }
        }
        w.end_family();
    };
    pair_family(
        &mut w,
        "tencent_live_up",
        "1 when the latest poll of this account and query type succeeded, else 0.",
        &|p| Some(Value::Int(i64::from(p.up))),
    );
    pair_family(
        &mut w,
        "tencent_live_exporter_last_success_timestamp_seconds",
        "Unix time of the last successful poll of this account and query type.",
        &|p| p.last_success_unix.map(Value::Float),
    );
    pair_family(
        &mut w,
        "tencent_live_exporter_poll_duration_seconds",
        "Duration of the latest poll of this account and query type, all pages.",
        &|p| p.poll_duration_seconds.map(Value::Float),
    );
    pair_family(
        &mut w,
        "tencent_live_package_bill_mode",
        &format!(
            "PackageBillMode of this account and query type (-1 or 0 none, 201..206, 304). {CACHED}"
        ),
        &|p| p.bill_mode.map(Value::Int),
    );
    let name = "tencent_live_traffic_bill_mode";
    w.family(name, &format!("Traffic bill mode by product (standard, leb) and area (mainland, overseas), from FluxPackageBillMode. {CACHED}"));
    for pair in pairs {
        for m in pair.traffic_bill_modes {
            w.sample(
                name,
                &[
                    ("account", pair.account),
                    ("product", m.product),
                    ("area", m.area),
                ],
                Value::Int(m.mode),
            );
        }
    }
    w.end_family();

    let amount_help =
        |what: &str, unit: &str, of: &str| format!("{what} of a {of} package in {unit}. {CACHED}");
    let time_packages = "transcode or co-anchoring";
    type Field = fn(&Package) -> Option<Value>;
    let families: [(&str, String, Option<bool>, Field); 10] = [
        (
            "tencent_live_package_quota_bytes",
            amount_help("Total quota", "bytes", "traffic"),
            Some(true),
            |p| p.quota.map(Value::Uint),
        ),
        (
            "tencent_live_package_used_bytes",
            amount_help("Used amount", "bytes", "traffic"),
            Some(true),
            |p| p.used.map(Value::Uint),
        ),
        (
            "tencent_live_package_remaining_bytes",
            amount_help("Remaining amount", "bytes", "traffic"),
            Some(true),
            |p| p.remaining.map(Value::Uint),
        ),
        (
            "tencent_live_package_quota_seconds",
            amount_help("Total quota", "seconds", time_packages),
            Some(false),
            |p| p.quota.map(Value::Uint),
        ),
        (
            "tencent_live_package_used_seconds",
            amount_help("Used amount", "seconds", time_packages),
            Some(false),
            |p| p.used.map(Value::Uint),
        ),
        (
            "tencent_live_package_remaining_seconds",
            amount_help("Remaining amount", "seconds", time_packages),
            Some(false),
            |p| p.remaining.map(Value::Uint),
        ),
        (
            "tencent_live_package_expiry_timestamp_seconds",
            format!("Unix time the package expires (ExpireTime, Beijing time). {CACHED}"),
            None,
            |p| p.expires_at.map(Value::Int),
        ),
        (
            "tencent_live_package_purchase_timestamp_seconds",
            format!("Unix time the package was bought (BuyTime, Beijing time). {CACHED}"),
            None,
            |p| p.purchased_at.map(Value::Int),
        ),
        (
            "tencent_live_package_auto_renew",
            format!("1 when the package renews automatically (WillRenew), else 0. {CACHED}"),
            None,
            |p| p.auto_renew.map(Value::Int),
        ),
        (
            "tencent_live_package_renewal_result",
            format!("RenewalResult: 1 renewed, 0 not yet, negative failed. {CACHED}"),
            None,
            |p| p.renewal_result.map(Value::Int),
        ),
    ];
    for (name, help, bytes, field) in &families {
        w.family(name, help);
        for row in &rows {
            if bytes.is_some_and(|b| b != row.package.unit.is_bytes()) {
                continue;
            }
            if let Some(v) = field(row.package) {
                let labels = [
                    ("account", row.account),
                    ("package_type", row.kind.as_str()),
                    ("package_id", row.package.id.as_str()),
                    ("status", row.status.as_str()),
                ];
                w.sample(name, &labels, v);
            }
        }
        w.end_family();
    }

    // The exporter's own counters and histogram: few series, encoded by the prometheus crate.
    TextEncoder::new()
        .encode(&exporter.gather(), &mut w.buf)
        .expect("encoding into a Vec cannot fail for well-formed families");
    w.buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packages::{PackageKind, Status, Unit};

    fn pkg(id: &str, kind: PackageKind, unit: Unit) -> Package {
        Package {
            id: id.into(),
            kind,
            status: Status::InUse,
            unit,
            quota: Some(7200),
            used: Some(3600),
            remaining: Some(3600),
            expires_at: Some(1_752_662_768),
            purchased_at: None,
            auto_renew: None,
            renewal_result: Some(-1),
        }
    }

    fn text(pairs: &[PairSeries<'_>]) -> String {
        String::from_utf8(encode(pairs, &ExporterMetrics::new())).unwrap()
    }

    #[test]
    fn packages_become_series_in_their_unit_with_the_contract_labels() {
        let packages = [
            pkg("a", PackageKind::CoAnchoring, Unit::Hours),
            pkg("b", PackageKind::Traffic, Unit::Bytes),
        ];
        let modes = [TrafficBillMode {
            product: "leb",
            area: "overseas",
            mode: 204,
        }];
        let out = text(&[PairSeries {
            account: "prod",
            query: QueryType::CoAnchoring,
            up: true,
            last_success_unix: Some(1000.0),
            poll_duration_seconds: Some(0.5),
            bill_mode: Some(206),
            traffic_bill_modes: &modes,
            packages: Some(&packages),
        }]);
        let labels_a =
            r#"{account="prod",package_type="co_anchoring",package_id="a",status="in_use"}"#;
        for line in [
            format!("tencent_live_package_quota_seconds{labels_a} 7200"),
            format!("tencent_live_package_remaining_seconds{labels_a} 3600"),
            format!("tencent_live_package_expiry_timestamp_seconds{labels_a} 1752662768"),
            format!("tencent_live_package_renewal_result{labels_a} -1"),
            r#"tencent_live_package_used_bytes{account="prod",package_type="traffic",package_id="b",status="in_use"} 3600"#.to_owned(),
            r#"tencent_live_up{account="prod",package_type="co_anchoring"} 1"#.to_owned(),
            r#"tencent_live_exporter_last_success_timestamp_seconds{account="prod",package_type="co_anchoring"} 1000"#.to_owned(),
            r#"tencent_live_package_bill_mode{account="prod",package_type="co_anchoring"} 206"#.to_owned(),
            r#"tencent_live_traffic_bill_mode{account="prod",product="leb",area="overseas"} 204"#.to_owned(),
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line}\n{out}");
        }
        // Null WillRenew and BuyTime: no sample, and no empty family either.
        assert!(!out.contains("tencent_live_package_auto_renew"));
        assert!(!out.contains("purchase_timestamp"));
        assert!(out.contains("# HELP tencent_live_package_quota_bytes Total quota of a traffic package in bytes. Cached"));
        let build_info = format!(
            "tencent_live_exporter_build_info{{branch=\"{}\",build_date=\"{}\",revision=\"{}\",rustversion=\"{}\",version=\"{}\"}} 1",
            crate::BRANCH,
            crate::BUILD_DATE,
            crate::REVISION,
            crate::rustc_version_number(),
            env!("CARGO_PKG_VERSION"),
        );
        assert!(out.lines().any(|l| l == build_info), "{build_info}\n{out}");
    }

    #[test]
    fn a_failed_pair_without_packages_still_reports_up_zero() {
        let out = text(&[PairSeries {
            account: "a\"b",
            query: QueryType::Traffic,
            up: false,
            last_success_unix: None,
            poll_duration_seconds: Some(1.0),
            bill_mode: None,
            traffic_bill_modes: &[],
            packages: None,
        }]);
        assert!(
            out.contains(r#"tencent_live_up{account="a\"b",package_type="traffic"} 0"#),
            "{out}"
        );
        assert!(!out.contains("tencent_live_package_"), "{out}");
    }

    #[test]
    fn the_same_package_twice_gives_one_series() {
        let p = pkg("dup", PackageKind::Transcode, Unit::Minutes);
        let list = [p.clone(), p];
        let pair = PairSeries {
            account: "x",
            query: QueryType::Transcode,
            up: true,
            last_success_unix: None,
            poll_duration_seconds: None,
            bill_mode: None,
            traffic_bill_modes: &[],
            packages: Some(&list),
        };
        let out = text(&[pair, pair]);
        assert_eq!(
            out.matches("tencent_live_package_quota_seconds{").count(),
            1,
            "{out}"
        );
    }

    #[test]
    fn exporter_counters_count() {
        let m = ExporterMetrics::new();
        m.init_account("idle");
        m.api_request("busy");
        m.api_request("busy");
        m.api_error("busy", "timeout");
        m.invalid_field("busy", "Total");
        let out = String::from_utf8(encode(&[], &m)).unwrap();
        assert!(out.contains(r#"tencent_live_exporter_api_requests_total{account="idle"} 0"#));
        assert!(out.contains(r#"tencent_live_exporter_api_requests_total{account="busy"} 2"#));
        assert!(out.contains(
            r#"tencent_live_exporter_api_request_errors_total{account="busy",code="timeout"} 1"#
        ));
        assert!(out.contains(
            r#"tencent_live_exporter_invalid_fields_total{account="busy",field="Total"} 1"#
        ));
    }
}
