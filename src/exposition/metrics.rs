//! Turning packages into Prometheus series; the exporter's own metrics ([`ExporterMetrics`], in
//! `crate::telemetry`) are gathered from their registry and written after them.
//!
//! [`encode`] is pure: it reads what the store holds and returns the text exposition. It does no
//! I/O and never calls the API; it runs once when a poll ends, not per scrape.

use std::collections::HashSet;

use bytes::Bytes;

use crate::domain::{Package, PackageKind, QueryType, TrafficBillMode};
use crate::exposition::deduction::usable_ahead;
use crate::exposition::text::{Value, Writer};
use crate::telemetry::ExporterMetrics;

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

/// Index of the first package family in [`families`]; the ones before are per pair.
const FIRST_PACKAGE_FAMILY: usize = 5;

/// Number of families a pair contributes to, in exposition order.
pub const FAMILY_COUNT: usize = FIRST_PACKAGE_FAMILY + PACKAGE_FAMILIES.len();

/// A package family's value: from the package and its usable-ahead amount (`None` when the
/// package is not usable, see [`deduction`](crate::exposition::deduction)).
type Field = fn(&Package, Option<u64>) -> Option<Value>;

/// The package families: name, which unit they take (`Some(true)` bytes only, `Some(false)`
/// time only, `None` both), and the field they export.
const PACKAGE_FAMILIES: [(&str, Option<bool>, Field); 12] = [
    ("tencent_live_package_quota_bytes", Some(true), |p, _| {
        p.quota.map(Value::Uint)
    }),
    ("tencent_live_package_used_bytes", Some(true), |p, _| {
        p.used.map(Value::Uint)
    }),
    (
        "tencent_live_package_remaining_bytes",
        Some(true),
        |p, _| p.remaining.map(Value::Uint),
    ),
    ("tencent_live_package_quota_seconds", Some(false), |p, _| {
        p.quota.map(Value::Uint)
    }),
    ("tencent_live_package_used_seconds", Some(false), |p, _| {
        p.used.map(Value::Uint)
    }),
    (
        "tencent_live_package_remaining_seconds",
        Some(false),
        |p, _| p.remaining.map(Value::Uint),
    ),
    (
        "tencent_live_package_expiry_timestamp_seconds",
        None,
        |p, _| p.expires_at.map(Value::Int),
    ),
    (
        "tencent_live_package_purchase_timestamp_seconds",
        None,
        |p, _| p.purchased_at.map(Value::Int),
    ),
    ("tencent_live_package_auto_renew", None, |p, _| {
        p.auto_renew.map(Value::Int)
    }),
    ("tencent_live_package_renewal_result", None, |p, _| {
        p.renewal_result.map(Value::Int)
    }),
    (
        "tencent_live_package_usable_ahead_bytes",
        Some(true),
        |_, a| a.map(Value::Uint),
    ),
    (
        "tencent_live_package_usable_ahead_seconds",
        Some(false),
        |_, a| a.map(Value::Uint),
    ),
];

/// HELP of the usable-ahead families: what Tencent deducts before the package.
fn ahead_help(of: &str, unit: &str) -> String {
    format!(
        "Summed Left, in {unit}, of the other usable packages of the same account and package_type that Tencent deducts before this one (earlier ExpireTime, then earlier BuyTime, then smaller Id; CSS doc 267/52220), for {of}. Only usable packages (unused or in_use, Left > 0, ExpireTime not past at the poll) have a sample. {CACHED}"
    )
}

/// Every family of package and pair series, in exposition order: (name, HELP text).
fn families() -> [(&'static str, String); FAMILY_COUNT] {
    let amount_help =
        |what: &str, unit: &str, of: &str| format!("{what} of a {of} package in {unit}. {CACHED}");
    let time_packages = "transcode, top_speed_codec or co_anchoring";
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
        (
            PACKAGE_FAMILIES[10].0,
            ahead_help("traffic packages", "bytes"),
        ),
        (
            PACKAGE_FAMILIES[11].0,
            ahead_help(
                "transcode, top_speed_codec or co_anchoring packages (each type its own queue)",
                "seconds",
            ),
        ),
    ]
}

/// The samples of one (account, query type) pair, family by family, without HELP/TYPE lines:
/// what a poll changes. [`assemble`] joins the pieces of all pairs into the exposition.
#[derive(Debug, Clone, Default)]
pub struct PairPiece {
    /// The sample lines of every family, one after the other; shared, not copied, by the
    /// [`Assembled`] expositions that show them.
    buf: Bytes,
    /// Where each family's lines end in `buf` (they begin where the previous one ends).
    ends: [usize; FAMILY_COUNT],
}

impl PairPiece {
    /// The sample lines of family `i` (in [`families`] order).
    fn family(&self, i: usize) -> Bytes {
        let start = i
            .checked_sub(1)
            .and_then(|j| self.ends.get(j))
            .copied()
            .unwrap_or(0);
        let end = self.ends.get(i).copied().unwrap_or(start);
        if start <= end && end <= self.buf.len() {
            self.buf.slice(start..end)
        } else {
            Bytes::new()
        }
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
    let list = pair.packages.unwrap_or_default();
    // Tencent's queue, from the whole list at the poll's time (none without one).
    let ahead = match pair.last_success_unix {
        Some(t) => usable_ahead(list, t.floor() as i64),
        None => vec![None; list.len()],
    };
    let rows: Vec<(&Package, Option<u64>, String, String)> = list
        .iter()
        .zip(ahead)
        .filter(|(p, _)| !skip(p.kind, &p.id) && seen.insert((p.kind, p.id.as_str())))
        .map(|(p, a)| (p, a, p.kind.label(), p.status.label()))
        .collect();
    for (f, (name, bytes, field)) in PACKAGE_FAMILIES.iter().enumerate() {
        for (package, ahead, kind, status) in &rows {
            if bytes.is_some_and(|b| b != package.unit.is_bytes()) {
                continue;
            }
            if let Some(v) = field(package, *ahead) {
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
        buf: Bytes::from(w.into_bytes()),
        ends,
    }
}

/// The assembled exposition: a chain of byte segments, held once. A pair's lines of a family
/// that are at least [`SHARE_AT`] long are the pair's piece itself (a reference, not a copy);
/// headers, the exporter's own metrics and small pairs' lines are copied into segments of about
/// [`CHUNK`], so a scrape is written in few, large chunks.
#[derive(Debug, Clone, Default)]
pub struct Assembled {
    segments: Vec<Bytes>,
    len: usize,
}

/// Lines of one pair's family from this length on are shared with its piece, not copied.
pub const SHARE_AT: usize = 16 * 1024;
/// The size copied bytes are gathered into before they become a segment.
pub const CHUNK: usize = 64 * 1024;

impl Assembled {
    /// Bytes of the exposition.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was assembled yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segments, in order: the exposition is their concatenation.
    pub fn segments(&self) -> &[Bytes] {
        &self.segments
    }

    /// The exposition as one contiguous copy (`--once`, tests).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for s in &self.segments {
            out.extend_from_slice(s);
        }
        out
    }
}

impl From<Vec<u8>> for Assembled {
    /// An exposition encoded in one piece ([`encode`]).
    fn from(text: Vec<u8>) -> Self {
        Assembled {
            len: text.len(),
            segments: if text.is_empty() {
                Vec::new()
            } else {
                vec![Bytes::from(text)]
            },
        }
    }
}

/// Builds an [`Assembled`]: large shared segments as they are, small ones gathered.
#[derive(Default)]
struct Chain {
    segments: Vec<Bytes>,
    small: Vec<u8>,
    len: usize,
}

impl Chain {
    fn copy(&mut self, bytes: &[u8]) {
        if self.small.is_empty() {
            self.small.reserve_exact(CHUNK + SHARE_AT);
        }
        self.small.extend_from_slice(bytes);
        self.len += bytes.len();
        if self.small.len() >= CHUNK {
            self.flush();
        }
    }

    fn share(&mut self, bytes: Bytes) {
        if bytes.len() < SHARE_AT {
            self.copy(&bytes);
        } else {
            self.flush();
            self.len += bytes.len();
            self.segments.push(bytes);
        }
    }

    fn flush(&mut self) {
        if !self.small.is_empty() {
            self.segments
                .push(Bytes::from(std::mem::take(&mut self.small)));
        }
    }

    fn finish(mut self) -> Assembled {
        self.flush();
        Assembled {
            segments: self.segments,
            len: self.len,
        }
    }
}

/// Joins pair pieces into the exposition: family by family, each with its HELP and TYPE once
/// (a family no piece has samples of is left out), then the exporter's own metrics, gathered
/// from their registry and written by the same `text::Writer` (the one owner of the text
/// format). The pieces' lines are shared where large ([`Assembled`]): the exposition and the
/// pieces it is made of are held once.
pub fn assemble<'a>(
    pieces: impl Iterator<Item = &'a PairPiece> + Clone,
    exporter: &ExporterMetrics,
) -> Assembled {
    let mut chain = Chain::default();
    for (i, (name, help)) in families().iter().enumerate() {
        if pieces.clone().all(|p| p.family(i).is_empty()) {
            continue;
        }
        let mut w = Writer::with_capacity(256);
        w.family(name, help, "gauge");
        chain.copy(&w.into_bytes());
        for piece in pieces.clone() {
            chain.share(piece.family(i));
        }
    }
    let mut w = Writer::with_capacity(4096);
    w.metric_families(&exporter.gather());
    chain.copy(&w.into_bytes());
    chain.finish()
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
    assemble(pieces.iter(), exporter).to_vec()
}

#[cfg(test)]
mod tests;
