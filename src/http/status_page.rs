//! The status page at `/`: every account and query type with its state, and every package,
//! soonest trouble first. Plain server-rendered HTML, no external assets, every value escaped.
//!
//! Rendering is pure (state and clock in, HTML out); it reads the store's last results and never
//! calls the API.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::exposition::packages::{Package, Status, Unit};
use crate::exposition::store::{PairKey, PairState};

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}\
table{border-collapse:collapse;width:100%}th,td{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}\
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.up{color:#176f2c;font-weight:600}.down{color:#b00020;font-weight:600}.muted{color:#777}\
.bar{background:#eee;width:8em;height:.8em;display:inline-block;vertical-align:middle;margin-right:.4em}\
.bar span{display:block;height:100%;background:#2e7d32}.bar span.warn{background:#ef6c00}.bar span.crit{background:#c62828}\
.soon{color:#b00020;font-weight:600}.later{color:#ef6c00}";

/// One package row with what the ordering needs.
struct Row<'a> {
    account: &'a str,
    package: &'a Package,
    ratio: Option<f64>,
    days_left: Option<f64>,
    usable: bool,
}

impl Row<'_> {
    /// When trouble comes, in days from now: a usable package runs into trouble when it expires,
    /// or now if it is nearly empty. Unusable packages sort last.
    fn trouble(&self) -> f64 {
        if !self.usable {
            return f64::INFINITY;
        }
        let nearly_empty = self.ratio.is_some_and(|r| r < 0.10);
        let by_expiry = self.days_left.unwrap_or(f64::MAX);
        if nearly_empty {
            by_expiry.min(0.0)
        } else {
            by_expiry
        }
    }
}

/// Renders the page. `now_unix` is the current time; `telemetry_path` the metrics link.
pub fn render(pairs: &BTreeMap<PairKey, PairState>, telemetry_path: &str, now_unix: f64) -> String {
    let mut html = String::with_capacity(8 * 1024);
    let path = escape(telemetry_path);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Tencent Live Exporter</title><style>{STYLE}</style></head><body>\n\
         <h1>Tencent Live Exporter</h1>\n<p>Prepaid Tencent Cloud Live packages. \
         <a href=\"{path}\">Metrics</a> · <a href=\"/healthz\">Health</a> · version {}</p>\n",
        escape(env!("CARGO_PKG_VERSION"))
    );

    html.push_str("<h2>Polls</h2>\n<table><thead><tr><th>Account</th><th>Package type</th><th>State</th><th>Last success</th><th>Last poll took</th><th>Packages</th><th>Last error</th></tr></thead><tbody>\n");
    if pairs.is_empty() {
        html.push_str(
            "<tr><td colspan=\"7\" class=\"muted\">No poll has finished yet.</td></tr>\n",
        );
    }
    for ((account, query), p) in pairs {
        let state = if p.up {
            "<span class=\"up\">up</span>"
        } else {
            "<span class=\"down\">down</span>"
        };
        let last = p
            .last_success_unix
            .map_or_else(|| "never".to_owned(), |t| ago(now_unix - t));
        let took = p
            .poll_duration_seconds
            .map_or_else(String::new, |d| format!("{:.0} ms", d * 1000.0));
        let count = p.packages.as_ref().map_or(0, |l| l.len());
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{state}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{count}</td><td>{}{}</td></tr>",
            escape(account),
            escape(query.label()),
            escape(&last),
            escape(&took),
            escape(p.last_error.as_deref().unwrap_or("")),
            p.last_error_detail
                .as_deref()
                .map_or_else(String::new, |d| format!(
                    "<br><small class=\"muted\">{}</small>",
                    escape(d)
                )),
        );
    }
    html.push_str("</tbody></table>\n");

    let mut rows: Vec<Row<'_>> = pairs
        .iter()
        .flat_map(|((account, _), p)| {
            p.packages
                .iter()
                .flat_map(|l| l.iter())
                .map(move |package| Row {
                    account,
                    package,
                    ratio: match (package.remaining, package.quota) {
                        (Some(r), Some(q)) if q > 0 => Some(r as f64 / q as f64),
                        _ => None,
                    },
                    days_left: package.expires_at.map(|e| (e as f64 - now_unix) / 86_400.0),
                    usable: matches!(package.status, Status::Unused | Status::InUse)
                        && package.remaining.is_none_or(|r| r > 0),
                })
        })
        .collect();
    rows.sort_by(|a, b| {
        a.trouble()
            .partial_cmp(&b.trouble())
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.account.cmp(b.account))
            .then_with(|| a.package.id.cmp(&b.package.id))
    });

    let _ = writeln!(html, "<h2>Packages ({})</h2>", rows.len());
    html.push_str("<table><thead><tr><th>Account</th><th>Package</th><th>Type</th><th>Status</th><th>Remaining</th><th>of quota</th><th>Expires</th></tr></thead><tbody>\n");
    if rows.is_empty() {
        html.push_str("<tr><td colspan=\"7\" class=\"muted\">No packages.</td></tr>\n");
    }
    for row in &rows {
        let p = row.package;
        let bar = match row.ratio {
            Some(r) => {
                let class = if r < 0.05 {
                    " class=\"crit\""
                } else if r < 0.10 {
                    " class=\"warn\""
                } else {
                    ""
                };
                format!(
                    "<span class=\"bar\"><span{class} style=\"width:{:.1}%\"></span></span>{:.1}%",
                    (r * 100.0).clamp(0.0, 100.0),
                    r * 100.0
                )
            }
            None => String::new(),
        };
        let expiry = match (p.expires_at, row.days_left) {
            (Some(t), Some(days)) => {
                let class = if !row.usable {
                    "muted"
                } else if days < 3.0 {
                    "soon"
                } else if days < 14.0 {
                    "later"
                } else {
                    ""
                };
                let when = if days < 0.0 && matches!(p.status, Status::InUse | Status::Unused) {
                    // Past its ExpireTime, yet the API has not moved it to expired: say both, so
                    // nobody takes it for an expired package (nor for a usable one).
                    format!(
                        "ExpireTime passed {} ago; the API still reports it {}",
                        days_words(-days),
                        p.status.label()
                    )
                } else if days < 0.0 {
                    format!("expired {} ago", days_words(-days))
                } else {
                    format!("in {}", days_words(days))
                };
                format!(
                    "<span class=\"{class}\">{} ({})</span>",
                    escape(&beijing_date(t)),
                    escape(&when)
                )
            }
            _ => String::new(),
        };
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{bar}</td><td>{expiry}</td></tr>",
            escape(row.account),
            escape(&p.id),
            escape(&p.kind.label()),
            escape(&p.status.label()),
            escape(&p.remaining.map_or_else(String::new, |r| amount(r, p.unit))),
        );
    }
    html.push_str("</tbody></table>\n<p class=\"muted\">Values are cached from each pair's last successful poll. Times are Beijing time (UTC+8), as Tencent Cloud shows them.</p>\n</body></html>\n");
    html
}

/// Bytes in IEC units, seconds as hours.
pub fn amount(value: u64, unit: Unit) -> String {
    if unit.is_bytes() {
        const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let mut v = value as f64;
        let mut i = 0;
        while v >= 1024.0 && i < UNITS.len() - 1 {
            v /= 1024.0;
            i += 1;
        }
        if i == 0 {
            format!("{value} B")
        } else {
            format!("{v:.1} {}", UNITS.get(i).unwrap_or(&""))
        }
    } else {
        let hours = value as f64 / 3600.0;
        if hours >= 1.0 {
            format!("{hours:.1} h")
        } else {
            format!("{:.0} min", value as f64 / 60.0)
        }
    }
}

fn days_words(days: f64) -> String {
    if days >= 2.0 {
        format!("{days:.0} days")
    } else if days >= 1.0 / 24.0 {
        format!("{:.0} hours", days * 24.0)
    } else {
        "under an hour".into()
    }
}

fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 90.0 {
        format!("{s:.0} s ago")
    } else if s < 90.0 * 60.0 {
        format!("{:.0} min ago", s / 60.0)
    } else {
        format!("{:.1} h ago", s / 3600.0)
    }
}

/// `YYYY-MM-DD` of a Unix time in Beijing time.
fn beijing_date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| {
            let t = t.to_offset(time::macros::offset!(+8));
            format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
        })
        .unwrap_or_default()
}

/// HTML-escapes a value for text and attribute positions.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::packages::{PackageKind, QueryType};
    use std::sync::Arc;

    const NOW: f64 = 1_800_000_000.0;

    fn pkg(
        id: &str,
        status: Status,
        quota: u64,
        remaining: u64,
        expires_in_days: f64,
        unit: Unit,
    ) -> Package {
        Package {
            id: id.into(),
            kind: if unit.is_bytes() {
                PackageKind::Traffic
            } else {
                PackageKind::Transcode
            },
            status,
            unit,
            quota: Some(quota),
            used: Some(quota - remaining),
            remaining: Some(remaining),
            expires_at: Some((NOW + expires_in_days * 86_400.0) as i64),
            purchased_at: None,
            auto_renew: None,
            renewal_result: None,
        }
    }

    fn state(packages: Vec<Package>, up: bool) -> PairState {
        PairState {
            up,
            last_success_unix: Some(NOW - 30.0),
            poll_duration_seconds: Some(0.012),
            packages: Some(Arc::from(packages)),
            last_error: (!up).then(|| "AuthFailure.SignatureFailure".to_owned()),
            last_error_detail: (!up).then(|| {
                "page 1: API error AuthFailure.SignatureFailure: <bad> (RequestId r-1)".to_owned()
            }),
            polls: 1,
            ..PairState::default()
        }
    }

    #[test]
    fn soonest_trouble_first_with_human_units_and_escaping() {
        let mut pairs = BTreeMap::new();
        pairs.insert(
            ("prod<script>".to_owned(), QueryType::Traffic),
            state(
                vec![
                    pkg("fine", Status::InUse, 1 << 40, 1 << 39, 200.0, Unit::Bytes),
                    pkg("gone", Status::Exhausted, 100, 0, 10.0, Unit::Bytes),
                    pkg("nearly-empty", Status::InUse, 1000, 30, 100.0, Unit::Bytes),
                ],
                true,
            ),
        );
        pairs.insert(
            ("prod<script>".to_owned(), QueryType::Transcode),
            state(
                vec![pkg(
                    "expiring",
                    Status::Unused,
                    600_000,
                    600_000,
                    5.0,
                    Unit::Minutes,
                )],
                false,
            ),
        );
        let html = render(&pairs, "/metrics?x=\"1\"", NOW);
        assert!(!html.contains("<script>"), "values are escaped");
        assert!(html.contains("prod&lt;script&gt;"));
        assert!(html.contains("href=\"/metrics?x=&quot;1&quot;\""));
        let order: Vec<usize> = ["nearly-empty", "expiring", "fine", "gone"]
            .iter()
            .map(|id| {
                html.find(&format!("<td>{id}</td>"))
                    .unwrap_or_else(|| panic!("{id} missing"))
            })
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "order {order:?}");
        assert!(html.contains("512.0 GiB"), "IEC bytes");
        assert!(html.contains("166.7 h"), "seconds as hours");
        assert!(html.contains("in 5 days"));
        assert!(
            html.contains("class=\"crit\" style=\"width:3.0%\""),
            "a bar for the nearly empty one"
        );
        assert!(html.contains("<span class=\"down\">down</span>"));
        assert!(html.contains("AuthFailure.SignatureFailure"));
        assert!(html.contains("<small class=\"muted\">page 1: API error AuthFailure.SignatureFailure: &lt;bad&gt; (RequestId r-1)</small>"), "{html}");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external assets"
        );
    }

    #[test]
    fn a_package_in_use_past_its_expire_time_says_the_api_still_reports_it_in_use() {
        let mut pairs = BTreeMap::new();
        pairs.insert(
            ("prod".to_owned(), QueryType::Traffic),
            state(
                vec![
                    pkg("stale", Status::InUse, 100, 50, -501.0, Unit::Bytes),
                    pkg("done", Status::Expired, 100, 50, -3.0, Unit::Bytes),
                ],
                true,
            ),
        );
        let html = render(&pairs, "/metrics", NOW);
        assert!(
            html.contains("(ExpireTime passed 501 days ago; the API still reports it in_use)"),
            "{html}"
        );
        assert!(!html.contains("expired 501 days ago"), "{html}");
        assert!(html.contains("(expired 3 days ago)"), "{html}");
    }

    #[test]
    fn empty_state_renders() {
        let html = render(&BTreeMap::new(), "/metrics", NOW);
        assert!(html.contains("No poll has finished yet."));
        assert!(html.contains("No packages."));
    }

    #[test]
    fn amounts_are_human() {
        assert_eq!(amount(512, Unit::Bytes), "512 B");
        assert_eq!(amount(1536, Unit::Bytes), "1.5 KiB");
        assert_eq!(amount(1800, Unit::Minutes), "30 min");
        assert_eq!(amount(7200, Unit::Hours), "2.0 h");
    }

    #[test]
    fn escape_covers_html_metacharacters() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
