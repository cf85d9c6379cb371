//! The exporter's own metrics: the API call counters and duration histogram, unusable fields,
//! list re-reads, build info and the reload gauges, in a `prometheus` registry that lives as long
//! as the process. The registry collects them; it does not write them: `/metrics` gathers its
//! families and writes them with the exposition's one text writer (`exposition::text`).
//! Every stage that counts something (the client, the scheduler, the reloads) imports this floor.

use prometheus::proto::MetricFamily;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::clock::unix_now;

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
    /// `…_config_last_reload_success_timestamp_seconds` (now), and on Linux the `process_*`
    /// families of the `prometheus` crate's process collector. One per process: counters count
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
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, … read
        // from /proc/self at each gather, as every Prometheus exporter serves them.
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique");
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

    /// The registry's families, for the exposition's text writer.
    pub(crate) fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }
}

impl Default for ExporterMetrics {
    fn default() -> Self {
        Self::new()
    }
}
