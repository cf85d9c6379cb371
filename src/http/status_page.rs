//! The status page at `/`: every account and query type with its state, then one pool view per
//! (account, package type): usable remaining, the packages in Tencent's deduction order (the one
//! bills draw from first), frozen and expired quota in their own colours, and the last bills
//! this exporter saw itself with the runway they imply. Plain server-rendered HTML, no external
//! assets, every value escaped (HTML metacharacters, and control characters shown as escapes).
//!
//! Rendering is pure (state and clock in, HTML out); it reads the store's last results and never
//! calls the API. Amounts are in Tencent's console units: traffic in decimal bytes (1 TB =
//! 1000 GB, CSS doc 267/52220), transcode in minutes, co-anchoring in hours.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use crate::domain::{Package, PackageKind, Status, Unit};
use crate::exposition::bills::{Bill, daily_amount};
use crate::exposition::deduction::queues;
use crate::exposition::store::{PairKey, PairState};

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.2em;margin:1.4em 0 .4em}h3{font-size:1.05em;margin:1.2em 0 .3em}\
table{border-collapse:collapse;width:100%}th,td{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}\
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.up{color:#176f2c;font-weight:600}.down{color:#b00020;font-weight:600}.muted{color:#777}\
.bar{background:#eee;width:8em;height:.8em;display:inline-block;vertical-align:middle;margin-right:.4em}\
.bar span{display:block;height:100%;background:#2e7d32}.bar span.warn{background:#ef6c00}.bar span.crit{background:#c62828}\
.bar span.frozen{background:#1565c0}.bar span.expired{background:#8d6e63}.bar span.other{background:#9e9e9e}\
.pool-bar{display:flex;height:1em;width:100%;max-width:40em;background:#eee;margin:.3em 0}\
.pool-bar span.usable{background:#2e7d32}.pool-bar span.frozen{background:#1565c0}.pool-bar span.expired{background:#8d6e63}\
b.usable{color:#176f2c}b.frozen,tr.frozen td{color:#1565c0}b.expired,tr.expired td{color:#6d4c41}tr.other td{color:#777}\
tr.current td{font-weight:600}.soon{color:#b00020;font-weight:600}.later{color:#ef6c00}\
.estimate{background:#fff8e1;border-left:3px solid #ef6c00;padding:.3em .6em}";

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
    polls(&mut html, pairs, now_unix);
    html.push_str("<h2>Pools</h2>\n");
    if pairs.is_empty() {
        html.push_str("<p class=\"muted\">No packages: no poll has finished yet.</p>\n");
    }
    for ((account, query), p) in pairs {
        let title = format!("{} · {}", escape(account), escape(query.label()));
        let Some(list) = p.packages.as_deref() else {
            let why = match p.last_success_unix {
                None => "never read: no poll of this pair has succeeded yet".to_owned(),
                Some(t) => format!(
                    "no current list: the last success, {}, is older than poll.max_staleness",
                    ago(now_unix - t)
                ),
            };
            let _ = writeln!(
                html,
                "<h3>{title}</h3>\n<p class=\"muted\">{}</p>",
                escape(&why)
            );
            continue;
        };
        let mut kinds: Vec<PackageKind> = Vec::new();
        for k in list.iter().map(|p| p.kind) {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        if kinds.is_empty() {
            let _ = writeln!(
                html,
                "<h3>{title}</h3>\n<p class=\"muted\">No packages listed.</p>"
            );
        }
        let polled = p.last_success_unix.unwrap_or(now_unix);
        for kind in kinds {
            let bills = p.bills.bills(kind);
            pool(&mut html, account, kind, list, &bills, polled, now_unix);
        }
    }
    html.push_str("<p class=\"muted\">Values are cached from each pair's last successful poll. Times are Beijing time (UTC+8), as Tencent Cloud shows them; traffic in decimal units (1 TB = 1000 GB), as in Tencent's console and bills.</p>\n</body></html>\n");
    html
}

/// The polls table, and below it each distinct error once with the pairs it concerns.
fn polls(html: &mut String, pairs: &BTreeMap<PairKey, PairState>, now_unix: f64) {
    html.push_str("<h2>Polls</h2>\n<table><thead><tr><th>Account</th><th>Package type</th><th>State</th><th>Last success</th><th>Last poll took</th><th>Packages</th><th>Last error</th></tr></thead><tbody>\n");
    if pairs.is_empty() {
        html.push_str(
            "<tr><td colspan=\"7\" class=\"muted\">No poll has finished yet.</td></tr>\n",
        );
    }
    // Each distinct detail once: an expired key fails every pair of its account alike.
    let mut errors: Vec<(&str, Vec<String>)> = Vec::new();
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
        let count = match (&p.packages, p.last_success_unix) {
            (Some(l), _) => l.len().to_string(),
            (None, None) => "<span class=\"muted\">never read</span>".to_owned(),
            (None, Some(_)) => "<span class=\"muted\">stale</span>".to_owned(),
        };
        let detail = match p.last_error_detail.as_deref() {
            Some(d) => {
                let pair = format!("{account} · {}", query.label());
                let n = match errors.iter().position(|(e, _)| *e == d) {
                    Some(i) => i,
                    None => {
                        errors.push((d, Vec::new()));
                        errors.len() - 1
                    }
                };
                if let Some((_, who)) = errors.get_mut(n) {
                    who.push(pair);
                }
                format!(" <a href=\"#error-{}\">error {}</a>", n + 1, n + 1)
            }
            None => String::new(),
        };
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{state}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{count}</td><td>{}{detail}</td></tr>",
            escape(account),
            escape(query.label()),
            escape(&last),
            escape(&took),
            escape(p.last_error.as_deref().unwrap_or("")),
        );
    }
    html.push_str("</tbody></table>\n");
    if !errors.is_empty() {
        html.push_str("<h3>Errors</h3>\n<ol class=\"errors\">\n");
        for (n, (detail, who)) in errors.iter().enumerate() {
            let _ = writeln!(
                html,
                "<li id=\"error-{}\"><small class=\"muted\">{}</small><br>{}</li>",
                n + 1,
                escape(&who.join(", ")),
                escape(detail)
            );
        }
        html.push_str("</ol>\n");
    }
}

/// Where a package of a pool stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    /// Usable: its position in Tencent's queue (0 is drawn from now) and what stands ahead.
    Queue(usize, u64),
    /// Frozen (status 3): not drawn from while frozen, and its validity keeps running.
    Frozen,
    /// Expired, or past its ExpireTime: its `Left` is lost.
    Expired,
    /// Exhausted, refunded, `Left` 0 or unknown, unknown status.
    Other,
}

impl Place {
    fn class(self) -> &'static str {
        match self {
            Self::Queue(0, _) => "current",
            Self::Queue(..) => "queued",
            Self::Frozen => "frozen",
            Self::Expired => "expired",
            Self::Other => "other",
        }
    }
}

/// One (account, package type) pool: summary, packages in deduction order then the rest,
/// and the bills seen. `polled` is the poll's time (as the gauges use it), `now` the clock.
fn pool(
    html: &mut String,
    account: &str,
    kind: PackageKind,
    list: &[Package],
    bills: &[Bill],
    polled: f64,
    now: f64,
) {
    let t = polled.floor() as i64;
    let order = queues(list, t)
        .into_iter()
        .find(|q| q.kind == kind)
        .map(|q| q.order)
        .unwrap_or_default();
    let mut rows: Vec<(&Package, Place)> = Vec::new();
    let mut ahead = 0u64;
    for (n, p) in order.iter().filter_map(|&i| list.get(i)).enumerate() {
        rows.push((p, Place::Queue(n, ahead)));
        ahead = ahead.saturating_add(p.remaining.unwrap_or(0));
    }
    let usable = ahead;
    let mut seen: HashSet<&str> = rows.iter().map(|(p, _)| p.id.as_str()).collect();
    for p in list.iter().filter(|p| p.kind == kind) {
        if !seen.insert(&p.id) {
            continue;
        }
        let left = p.remaining.unwrap_or(0);
        let past = p.expires_at.is_some_and(|e| e <= t);
        let place = if p.status == Status::Frozen && left > 0 {
            Place::Frozen
        } else if left > 0
            && (p.status == Status::Expired
                || (past && matches!(p.status, Status::Unused | Status::InUse)))
        {
            Place::Expired
        } else {
            Place::Other
        };
        rows.push((p, place));
    }
    // After the queue: frozen quota, then lost quota, then the rest.
    let rank = |place: &Place| match place {
        Place::Queue(..) => 0,
        Place::Frozen => 1,
        Place::Expired => 2,
        Place::Other => 3,
    };
    rows.sort_by_key(|(_, place)| rank(place));
    let sum = |want: Place| -> u64 {
        rows.iter()
            .filter(|(_, place)| *place == want)
            .filter_map(|(p, _)| p.remaining)
            .fold(0u64, u64::saturating_add)
    };
    let (frozen, expired) = (sum(Place::Frozen), sum(Place::Expired));
    let unit = rows.first().map_or(Unit::Bytes, |(p, _)| p.unit);

    let _ = write!(
        html,
        "<h3>{} · {}</h3>\n<p>Usable <b class=\"usable\">{}</b> in {} package{}",
        escape(account),
        escape(&kind.label()),
        amount(usable, unit),
        order.len(),
        if order.len() == 1 { "" } else { "s" },
    );
    if frozen > 0 {
        let _ = write!(
            html,
            " · frozen <b class=\"frozen\">{}</b>",
            amount(frozen, unit)
        );
    }
    if expired > 0 {
        let _ = write!(
            html,
            " · expired unused <b class=\"expired\">{}</b> (lost)",
            amount(expired, unit)
        );
    }
    html.push_str("</p>\n");
    let total = usable as f64 + frozen as f64 + expired as f64;
    if total > 0.0 {
        html.push_str("<div class=\"pool-bar\">");
        for (class, v) in [("usable", usable), ("frozen", frozen), ("expired", expired)] {
            if v > 0 {
                let _ = write!(
                    html,
                    "<span class=\"{class}\" style=\"width:{:.1}%\"></span>",
                    v as f64 / total * 100.0
                );
            }
        }
        html.push_str("</div>\n");
    }

    html.push_str("<table><thead><tr><th>Deduction order</th><th>Package</th><th>Status</th><th>Remaining</th><th>of quota</th><th>Usable ahead of it</th><th>Expires</th></tr></thead><tbody>\n");
    for (p, place) in &rows {
        let (position, ahead) = match place {
            Place::Queue(0, _) => ("1 · drawn from now".to_owned(), amount(0, p.unit)),
            Place::Queue(n, a) => ((n + 1).to_string(), amount(*a, p.unit)),
            Place::Frozen => ("frozen: not drawn from".to_owned(), String::new()),
            Place::Expired => ("expired: quota lost".to_owned(), String::new()),
            Place::Other => ("not usable".to_owned(), String::new()),
        };
        let remaining = p.remaining.map_or_else(String::new, |r| amount(r, p.unit));
        let remaining = if *place == Place::Expired {
            format!("{remaining} lost")
        } else {
            remaining
        };
        let _ = writeln!(
            html,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            place.class(),
            escape(&position),
            escape(&p.id),
            escape(&p.status.label()),
            escape(&remaining),
            ratio_bar(p, *place),
            escape(&ahead),
            expiry(p, *place, now),
        );
    }
    html.push_str("</tbody></table>\n");
    bills_seen(html, bills, usable, unit, now);
}

/// Remaining / quota as a bar coloured by the package's place.
fn ratio_bar(p: &Package, place: Place) -> String {
    let (Some(r), Some(q)) = (p.remaining, p.quota) else {
        return String::new();
    };
    if q == 0 {
        return String::new();
    }
    let ratio = r as f64 / q as f64;
    let class = match place {
        Place::Queue(..) if ratio < 0.05 => " class=\"crit\"",
        Place::Queue(..) if ratio < 0.10 => " class=\"warn\"",
        Place::Queue(..) => "",
        Place::Frozen => " class=\"frozen\"",
        Place::Expired => " class=\"expired\"",
        Place::Other => " class=\"other\"",
    };
    format!(
        "<span class=\"bar\"><span{class} style=\"width:{:.1}%\"></span></span>{:.1}%",
        (ratio * 100.0).clamp(0.0, 100.0),
        ratio * 100.0
    )
}

/// The expiry date and how far it is, coloured for usable packages only.
fn expiry(p: &Package, place: Place, now: f64) -> String {
    let Some(t) = p.expires_at else {
        return "<span class=\"muted\">no ExpireTime</span>".to_owned();
    };
    let days = (t as f64 - now) / 86_400.0;
    let class = match place {
        Place::Queue(..) if days < 3.0 => "soon",
        Place::Queue(..) if days < 14.0 => "later",
        Place::Queue(..) => "",
        Place::Frozen if days < 14.0 => "soon",
        _ => "muted",
    };
    let when = if days < 0.0 && matches!(p.status, Status::InUse | Status::Unused) {
        // Past its ExpireTime, yet the API has not moved it to expired: say both, so nobody
        // takes it for an expired package (nor for a usable one).
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
        escape(&beijing_time(t, false)),
        escape(&when)
    )
}

/// The bills this exporter saw for the pool, newest first, and the runway they imply.
fn bills_seen(html: &mut String, bills: &[Bill], usable: u64, unit: Unit, now: f64) {
    html.push_str("<div class=\"estimate\"><b>Estimate from this exporter's own polls since it started</b> (a bill is a rise of Used between two successful polls; Prometheus's rules use the longer history).<br>");
    if bills.is_empty() {
        html.push_str("No bill seen yet.");
    } else {
        html.push_str("Last bills seen: ");
        let seen: Vec<String> = bills
            .iter()
            .rev()
            .map(|b| {
                format!(
                    "{} at {} ({})",
                    amount(b.amount, unit),
                    beijing_time(b.seen_unix.floor() as i64, true),
                    ago(now - b.seen_unix)
                )
            })
            .collect();
        html.push_str(&escape(&seen.join("; ")));
        html.push_str(".<br>");
        let runway = match daily_amount(bills) {
            None => "Runway: needs a second bill.".to_owned(),
            Some(daily) if daily <= 0.0 => "Runway: no usage billed.".to_owned(),
            Some(_) if usable == 0 => {
                "<span class=\"soon\">Runway: none, nothing usable is left (pay-as-you-go).</span>"
                    .to_owned()
            }
            Some(daily) => {
                let days = usable as f64 / daily;
                let class = if days < 3.0 {
                    "soon"
                } else if days < 14.0 {
                    "later"
                } else {
                    ""
                };
                // "about under an hour" says nothing more than "under an hour".
                let about = if days >= 1.0 / 24.0 { "about " } else { "" };
                format!(
                    "Average {} a day: <span class=\"{class}\">runway {about}{}</span> (usable remaining / average daily bill).",
                    escape(&amount_f(daily, unit)),
                    escape(&days_words(days))
                )
            }
        };
        html.push_str(&runway);
    }
    html.push_str("</div>\n");
}

/// An amount as Tencent's console shows it: traffic in decimal units (`1.00 TB`,
/// `497.6 GB`), transcode in minutes, co-anchoring in hours.
pub fn amount(value: u64, unit: Unit) -> String {
    amount_f(value as f64, unit)
}

fn amount_f(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Bytes => {
            if value >= 1e12 {
                format!("{:.2} TB", value / 1e12)
            } else if value >= 1e9 {
                format!("{:.1} GB", value / 1e9)
            } else if value >= 1e6 {
                format!("{:.1} MB", value / 1e6)
            } else if value >= 1e3 {
                format!("{:.1} kB", value / 1e3)
            } else {
                format!("{value:.0} B")
            }
        }
        Unit::Minutes => format!("{} min", grouped(value / 60.0)),
        Unit::Hours => format!("{} h", grouped(value / 3600.0)),
    }
}

/// A count with thousands separators; one decimal when it is not whole.
fn grouped(v: f64) -> String {
    let whole = v.trunc();
    let mut digits = format!("{whole:.0}");
    let mut out = String::new();
    while digits.len() > 3 {
        let tail = digits.split_off(digits.len() - 3);
        out = format!(",{tail}{out}");
    }
    let frac = v - whole;
    let frac = if frac.abs() >= 0.05 {
        format!("{:.1}", frac).trim_start_matches('0').to_owned()
    } else {
        String::new()
    };
    format!("{digits}{out}{frac}")
}

fn days_words(days: f64) -> String {
    if days >= 2.0 {
        format!("{days:.0} days")
    } else if days >= 1.5 / 24.0 {
        format!("{:.0} hours", days * 24.0)
    } else if days >= 1.0 / 24.0 {
        "1 hour".into()
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
    } else if s < 48.0 * 3600.0 {
        format!("{:.1} h ago", s / 3600.0)
    } else {
        format!("{:.0} days ago", s / 86_400.0)
    }
}

/// `YYYY-MM-DD` (or with ` HH:MM`) of a Unix time in Beijing time.
fn beijing_time(unix: i64, with_time: bool) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| {
            let t = t.to_offset(time::macros::offset!(+8));
            let date = format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day());
            if with_time {
                format!("{date} {:02}:{:02}", t.hour(), t.minute())
            } else {
                date
            }
        })
        .unwrap_or_default()
}

/// Escapes a value for HTML text and attribute positions: the metacharacters as entities, and
/// every control character (CR, LF, ESC, DEL, C1 controls, bidirectional overrides, line and
/// paragraph separators) as a visible `\n`, `\r`, `\t` or `\u{…}` escape, so no value can
/// break the page's structure nor hide or reorder text.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}') =>
            {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
