//! Turning packages into Prometheus series, and the exporter's own counters.
//!
//! [`encode`] is pure: it reads what the store holds and returns the text exposition. It does no
//! I/O and never calls the API; it runs once when a poll ends, not per scrape.

use std::collections::HashSet;

use prometheus::proto::MetricFamily;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::clock::unix_now;
use crate::domain::{Package, PackageKind, QueryType, TrafficBillMode};
use crate::exposition::text::{Value, Writer};

/// `Content-Type` of the text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const CACHED: &str = "Cached: the value as of the last successful poll of DescribeLivePackageInfo.";

/// Everything about one (account, query type) pair that is exported.
#[derive(Debug, Clone, Copy)]
pub struct PairSeries<'a> {
    /// The `account` label of every series of the pair.
    pub account: &'a str,
    /// The query type polled: the `package_type` label of the pair series (`traffic`,
    /// `transcode`, `co_anchoring`).
    pub query: QueryType,
    /// Whether the latest poll succeeded: `tencent_live_up` 1 or 0.
    pub up: bool,
    /// Unix seconds (wall clock) at which the last successful poll ended:
    /// `tencent_live_exporter_last_success_timestamp_seconds`; `None` (no sample) before the
    /// first success.
    pub last_success_unix: Option<f64>,
    /// Duration of the latest poll, all its pages and retries, in seconds:
    /// `tencent_live_exporter_poll_duration_seconds`; `None` before the first poll ends.
    pub poll_duration_seconds: Option<f64>,
    /// `PackageBillMode` of the last success (-1 or 0 none, 201..206, 304; API page, 输出参数):
    /// `tencent_live_package_bill_mode`; `None` (no sample) when the API left it out or null.
    pub bill_mode: Option<i64>,
    /// `FluxPackageBillMode` of the last success, one `tencent_live_traffic_bill_mode` sample
    /// each (labels `account`, `product`, `area`); empty for transcode and co-anchoring pairs.
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
    /// A fresh registry of the exporter's own families: the API call counters and histogram
    /// (`tencent_live_exporter_api_*`), `…_invalid_fields_total`, `…_list_rereads_total`,
    /// `…_build_info` (1), `…_config_last_reload_successful` (1) and
    /// `…_config_last_reload_success_timestamp_seconds` (now). One per process: counters count
    /// across polls and reloads.
    // Proven: registers constant, distinct metric definitions into a fresh registry: cannot fail (every unit test builds one).
    #[allow(clippy::expect_used)]
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

    /// One call sent (retries count again): `tencent_live_exporter_api_requests_total{account}`.
    pub fn api_request(&self, account: &str) {
        self.requests.with_label_values(&[account]).inc();
    }

    /// One failed call: `tencent_live_exporter_api_request_errors_total{account, code}`, `code`
    /// from `crate::tencent::client::ApiError::code` (the API's `Error.Code`, or `http_<status>`,
    /// `timeout`, `connect`, `decode`, `response_too_large`, `credentials`).
    pub fn api_error(&self, account: &str, code: &str) {
        self.errors.with_label_values(&[account, code]).inc();
    }

    /// One call's duration in seconds, send to last byte (failed calls too):
    /// `tencent_live_exporter_api_request_duration_seconds{account}`, buckets 25 ms to 30 s.
    pub fn api_duration(&self, account: &str, seconds: f64) {
        self.duration.with_label_values(&[account]).observe(seconds);
    }

    /// One field of an answer that was missing, null where required, or unusable, and was
    /// skipped: `tencent_live_exporter_invalid_fields_total{account, field}`, `field` the API's
    /// name (`ExpireTime`, `Total`, …).
    pub fn invalid_field(&self, account: &str, field: &str) {
        self.invalid_fields
            .with_label_values(&[account, field])
            .inc();
    }

    /// One re-read of a list that was incomplete (`reason`: see `crate::poll::poller::Incomplete`).
    pub fn list_reread(&self, account: &str, package_type: &str, reason: &str) {
        self.list_rereads
            .with_label_values(&[account, package_type, reason])
            .inc();
    }

    /// Drops every series labelled with `account` (an account removed by a reload), so that
    /// its counters do not stay on `/metrics` forever.
    pub fn remove_account(&self, account: &str) {
        use prometheus::core::Collector as _;
        let _ = self.requests.remove_label_values(&[account]);
        let _ = self.duration.remove_label_values(&[account]);
        // The crate has no removal by partial match: find the account's label sets among the
        // series and remove each whole. Every vec labelled by `account` is listed here.
        for vec in [&self.errors, &self.invalid_fields, &self.list_rereads] {
            let label_sets: Vec<Vec<(String, String)>> = vec
                .collect()
                .iter()
                .flat_map(|family| family.get_metric())
                .map(|m| {
                    m.get_label()
                        .iter()
                        .map(|l| (l.name().to_owned(), l.value().to_owned()))
                        .collect::<Vec<_>>()
                })
                .filter(|labels| labels.iter().any(|(n, v)| n == "account" && v == account))
                .collect();
            for labels in label_sets {
                let labels: std::collections::HashMap<&str, &str> = labels
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                let _ = vec.remove(&labels);
            }
        }
    }

    /// The registry's families, for [`Writer::metric_families`].
    pub(crate) fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }
}

impl Default for ExporterMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Index of the first package family in [`families`]; the ones before are per pair.
const FIRST_PACKAGE_FAMILY: usize = 5;

/// Number of families a pair contributes to, in exposition order.
pub const FAMILY_COUNT: usize = FIRST_PACKAGE_FAMILY + PACKAGE_FAMILIES.len();

type Field = fn(&Package) -> Option<Value>;

/// The package families: name, which unit they take (`Some(true)` bytes only, `Some(false)`
/// time only, `None` both), and the field they export.
const PACKAGE_FAMILIES: [(&str, Option<bool>, Field); 10] = [
    ("tencent_live_package_quota_bytes", Some(true), |p| {
        p.quota.map(Value::Uint)
    }),
    ("tencent_live_package_used_bytes", Some(true), |p| {
        p.used.map(Value::Uint)
    }),
    ("tencent_live_package_remaining_bytes", Some(true), |p| {
        p.remaining.map(Value::Uint)
    }),
    ("tencent_live_package_quota_seconds", Some(false), |p| {
        p.quota.map(Value::Uint)
    }),
    ("tencent_live_package_used_seconds", Some(false), |p| {
        p.used.map(Value::Uint)
    }),
    ("tencent_live_package_remaining_seconds", Some(false), |p| {
        p.remaining.map(Value::Uint)
    }),
    ("tencent_live_package_expiry_timestamp_seconds", None, |p| {
        p.expires_at.map(Value::Int)
    }),
    (
        "tencent_live_package_purchase_timestamp_seconds",
        None,
        |p| p.purchased_at.map(Value::Int),
    ),
    ("tencent_live_package_auto_renew", None, |p| {
        p.auto_renew.map(Value::Int)
    }),
    ("tencent_live_package_renewal_result", None, |p| {
        p.renewal_result.map(Value::Int)
    }),
];

/// Every family of package and pair series, in exposition order: (name, HELP text).
fn families() -> [(&'static str, String); FAMILY_COUNT] {
    let amount_help =
        |what: &str, unit: &str, of: &str| format!("{what} of a {of} package in {unit}. {CACHED}");
    let time_packages = "transcode or co-anchoring";
    [
        (
            "tencent_live_up",
            "1 when the latest poll of this account and query type succeeded, else 0.".into(),
        ),
        (
            "tencent_live_exporter_last_success_timestamp_seconds",
            "Unix time of the last successful poll of this account and query type.".into(),
        ),
        (
            "tencent_live_exporter_poll_duration_seconds",
            "Duration of the latest poll of this account and query type, all pages.".into(),
        ),
        (
            "tencent_live_package_bill_mode",
            format!(
                "PackageBillMode of this account and query type (-1 or 0 none, 201..206, 304). {CACHED}"
            ),
        ),
        (
            "tencent_live_traffic_bill_mode",
            format!(
                "Traffic bill mode by product (standard, leb) and area (mainland, overseas), from FluxPackageBillMode. {CACHED}"
            ),
        ),
        (
            PACKAGE_FAMILIES[0].0,
            amount_help("Total quota", "bytes", "traffic"),
        ),
        (
            PACKAGE_FAMILIES[1].0,
            amount_help("Used amount", "bytes", "traffic"),
        ),
        (
            PACKAGE_FAMILIES[2].0,
            amount_help("Remaining amount", "bytes", "traffic"),
        ),
        (
            PACKAGE_FAMILIES[3].0,
            amount_help("Total quota", "seconds", time_packages),
        ),
        (
            PACKAGE_FAMILIES[4].0,
            amount_help("Used amount", "seconds", time_packages),
        ),
        (
            PACKAGE_FAMILIES[5].0,
            amount_help("Remaining amount", "seconds", time_packages),
        ),
        (
            PACKAGE_FAMILIES[6].0,
            format!("Unix time the package expires (ExpireTime, Beijing time). {CACHED}"),
        ),
        (
            PACKAGE_FAMILIES[7].0,
            format!("Unix time the package was bought (BuyTime, Beijing time). {CACHED}"),
        ),
        (
            PACKAGE_FAMILIES[8].0,
            format!("1 when the package renews automatically (WillRenew), else 0. {CACHED}"),
        ),
        (
            PACKAGE_FAMILIES[9].0,
            format!("RenewalResult: 1 renewed, 0 not yet, negative failed. {CACHED}"),
        ),
    ]
}

/// The samples of one (account, query type) pair, family by family, without HELP/TYPE lines:
/// what a poll changes. [`assemble`] joins the pieces of all pairs into the exposition.
#[derive(Debug, Clone, Default)]
pub struct PairPiece {
    /// The sample lines of every family, one after the other.
    buf: Vec<u8>,
    /// Where each family's lines end in `buf` (they begin where the previous one ends).
    ends: [usize; FAMILY_COUNT],
}

impl PairPiece {
    /// The sample lines of family `i` (in [`families`] order).
    fn family(&self, i: usize) -> &[u8] {
        let start = i
            .checked_sub(1)
            .and_then(|j| self.ends.get(j))
            .copied()
            .unwrap_or(0);
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.buf.get(start..end).unwrap_or_default()
    }

    /// Bytes of sample lines this piece holds.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the piece holds no sample line (a pair with nothing to show yet).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Encodes one pair's series. A package for which `skip(kind, id)` holds is left out (it is
/// already exported by another pair of the same account); within the pair, a package id that
/// comes twice gives one series, since a duplicate series makes Prometheus reject the scrape.
pub fn encode_pair(pair: &PairSeries<'_>, skip: &dyn Fn(PackageKind, &str) -> bool) -> PairPiece {
    let mut w = Writer::with_capacity(512 + pair.packages.map_or(0, |p| p.len() * 1024));
    let mut ends = [0; FAMILY_COUNT];
    let pair_labels = [
        ("account", pair.account),
        ("package_type", pair.query.label()),
    ];
    let pair_values = [
        Some(Value::Int(i64::from(pair.up))),
        pair.last_success_unix.map(Value::Float),
        pair.poll_duration_seconds.map(Value::Float),
        pair.bill_mode.map(Value::Int),
    ];
    let names = |i: usize| match i {
        0 => "tencent_live_up",
        1 => "tencent_live_exporter_last_success_timestamp_seconds",
        2 => "tencent_live_exporter_poll_duration_seconds",
        _ => "tencent_live_package_bill_mode",
    };
    for (i, value) in pair_values.into_iter().enumerate() {
        if let Some(v) = value {
            w.sample(names(i), &pair_labels, v);
        }
        if let Some(end) = ends.get_mut(i) {
            *end = w.len();
        }
    }
    for m in pair.traffic_bill_modes {
        w.sample(
            "tencent_live_traffic_bill_mode",
            &[
                ("account", pair.account),
                ("product", m.product),
                ("area", m.area),
            ],
            Value::Int(m.mode),
        );
    }
    if let Some(end) = ends.get_mut(FIRST_PACKAGE_FAMILY - 1) {
        *end = w.len();
    }

    // One row per package, labels resolved once.
    let mut seen: HashSet<(PackageKind, &str)> = HashSet::new();
    let rows: Vec<(&Package, String, String)> = pair
        .packages
        .unwrap_or_default()
        .iter()
        .filter(|p| !skip(p.kind, &p.id) && seen.insert((p.kind, p.id.as_str())))
        .map(|p| (p, p.kind.label(), p.status.label()))
        .collect();
    for (f, (name, bytes, field)) in PACKAGE_FAMILIES.iter().enumerate() {
        for (package, kind, status) in &rows {
            if bytes.is_some_and(|b| b != package.unit.is_bytes()) {
                continue;
            }
            if let Some(v) = field(package) {
                let labels = [
                    ("account", pair.account),
                    ("package_type", kind.as_str()),
                    ("package_id", package.id.as_str()),
                    ("status", status.as_str()),
                ];
                w.sample(name, &labels, v);
            }
        }
        if let Some(end) = ends.get_mut(FIRST_PACKAGE_FAMILY + f) {
            *end = w.len();
        }
    }
    PairPiece {
        buf: w.into_bytes(),
        ends,
    }
}

/// Joins pair pieces into the exposition: family by family, each with its HELP and TYPE once
/// (a family no piece has samples of is left out), then the exporter's own metrics, gathered
/// from their registry and written by the same `text::Writer` (the one owner of the text
/// format). `size_hint` is the previous exposition's length, so the buffer is allocated once.
/// Copies bytes only.
pub fn assemble<'a>(
    pieces: impl Iterator<Item = &'a PairPiece> + Clone,
    exporter: &ExporterMetrics,
    size_hint: usize,
) -> Vec<u8> {
    let mut w = Writer::with_capacity(size_hint + size_hint / 16 + 4096);
    for (i, (name, help)) in families().iter().enumerate() {
        w.family(name, help, "gauge");
        for piece in pieces.clone() {
            w.lines(piece.family(i));
        }
        w.end_family();
    }
    w.metric_families(&exporter.gather());
    w.into_bytes()
}

/// Encodes the whole exposition at once: per-pair state, package series, then the exporter's
/// metrics. A package exported by an earlier pair of the same account is not repeated.
pub fn encode(pairs: &[PairSeries<'_>], exporter: &ExporterMetrics) -> Vec<u8> {
    let mut seen: HashSet<(&str, PackageKind, &str)> = HashSet::new();
    let pieces: Vec<PairPiece> = pairs
        .iter()
        .map(|pair| {
            let piece = encode_pair(pair, &|kind, id| seen.contains(&(pair.account, kind, id)));
            for p in pair.packages.unwrap_or_default() {
                seen.insert((pair.account, p.kind, p.id.as_str()));
            }
            piece
        })
        .collect();
    assemble(pieces.iter(), exporter, 0)
}

#[cfg(test)]
mod tests;
