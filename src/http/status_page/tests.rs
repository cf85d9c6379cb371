//! Unit tests of the status page: pure rendering of store states.

use std::sync::Arc;

use super::*;
use crate::domain::QueryType;
use crate::exposition::bills::BillHistory;

const NOW: f64 = 1_800_000_000.0;
const DAY: f64 = 86_400.0;
const GB: u64 = 1_000_000_000;

fn pkg(
    id: &str,
    kind: PackageKind,
    status: Status,
    (quota, remaining): (u64, u64),
    expires_in_days: f64,
) -> Package {
    Package {
        id: id.into(),
        kind,
        status,
        unit: kind.unit().unwrap_or(Unit::Bytes),
        quota: Some(quota),
        used: Some(quota - remaining),
        remaining: Some(remaining),
        expires_at: Some((NOW + expires_in_days * DAY) as i64),
        purchased_at: Some((NOW - 30.0 * DAY) as i64),
        auto_renew: None,
        renewal_result: None,
    }
}

fn traffic(id: &str, status: Status, q: (u64, u64), days: f64) -> Package {
    pkg(id, PackageKind::Traffic, status, q, days)
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

fn page(pairs: Vec<((&str, QueryType), PairState)>) -> String {
    let pairs: BTreeMap<PairKey, PairState> = pairs
        .into_iter()
        .map(|((a, q), s)| ((a.to_owned(), q), s))
        .collect();
    render(&pairs, "/metrics", NOW)
}

/// The `<tr>` of package `id`.
fn row<'a>(html: &'a str, id: &str) -> &'a str {
    let cell = html
        .find(&format!("<td>{id}</td>"))
        .unwrap_or_else(|| panic!("{id} missing:\n{html}"));
    let start = html[..cell].rfind("<tr").unwrap();
    let end = cell + html[cell..].find("</tr>").unwrap();
    &html[start..end]
}

#[test]
fn a_pool_lists_its_packages_in_deduction_order_with_each_state_in_its_colour() {
    let html = page(vec![(
        ("prod", QueryType::Traffic),
        state(
            vec![
                traffic("later", Status::Unused, (1_000 * GB, 1_000 * GB), 300.0),
                traffic("gone", Status::Exhausted, (100 * GB, 0), 10.0),
                traffic("frozen", Status::Frozen, (500 * GB, 200 * GB), 20.0),
                traffic("lost", Status::Expired, (100 * GB, 40 * GB), -2.0),
                traffic("first", Status::InUse, (1_000 * GB, 497_600_000_000), 100.0),
            ],
            true,
        ),
    )]);
    let order: Vec<usize> = ["first", "later", "frozen", "lost", "gone"]
        .iter()
        .map(|id| html.find(&format!("<td>{id}</td>")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{html}");
    let first = row(&html, "first");
    assert!(
        first.starts_with("<tr class=\"current\"><td>1 · drawn from now</td>"),
        "{first}"
    );
    assert!(
        first.contains("497.6 GB"),
        "decimal, not 463.4 GiB: {first}"
    );
    let later = row(&html, "later");
    assert!(
        later.starts_with("<tr class=\"queued\"><td>2</td>"),
        "{later}"
    );
    assert!(
        later.contains("1.00 TB") && later.contains(">497.6 GB<"),
        "ahead: {later}"
    );
    let frozen = row(&html, "frozen");
    assert!(frozen.starts_with("<tr class=\"frozen\">"), "{frozen}");
    assert!(
        frozen.contains("<span class=\"frozen\" style"),
        "blue bar: {frozen}"
    );
    let lost = row(&html, "lost");
    assert!(lost.starts_with("<tr class=\"expired\">"), "{lost}");
    assert!(lost.contains("40.0 GB lost"), "{lost}");
    assert!(
        lost.contains("<span class=\"expired\" style"),
        "not green: {lost}"
    );
    assert!(row(&html, "gone").starts_with("<tr class=\"other\">"));
    assert!(
        html.contains(
            "Usable <b class=\"usable\">1.50 TB</b> in 2 packages · frozen <b class=\"frozen\">200.0 GB</b> · expired unused <b class=\"expired\">40.0 GB</b> (lost)"
        ),
        "{html}"
    );
    assert!(
        html.contains("<div class=\"pool-bar\"><span class=\"usable\""),
        "{html}"
    );
}

#[test]
fn types_are_separate_pools_in_their_console_units() {
    let html = page(vec![
        (
            ("prod", QueryType::Transcode),
            state(
                vec![
                    pkg(
                        "t",
                        PackageKind::Transcode,
                        Status::InUse,
                        (600_000, 600_000),
                        5.0,
                    ),
                    pkg(
                        "s",
                        PackageKind::TopSpeedCodec,
                        Status::InUse,
                        (6_000, 90),
                        1.0,
                    ),
                ],
                true,
            ),
        ),
        (
            ("prod", QueryType::CoAnchoring),
            state(
                vec![pkg(
                    "m",
                    PackageKind::CoAnchoring,
                    Status::InUse,
                    (3_600_000, 900_000),
                    90.0,
                )],
                true,
            ),
        ),
    ]);
    for heading in [
        "<h3>prod · transcode</h3>",
        "<h3>prod · top_speed_codec</h3>",
        "<h3>prod · co_anchoring</h3>",
    ] {
        assert!(html.contains(heading), "{heading}: {html}");
    }
    assert!(row(&html, "t").contains("10,000 min"), "{html}");
    assert!(row(&html, "s").contains("1.5 min"), "{html}");
    assert!(row(&html, "m").contains("250 h"), "{html}");
    // Each is first in its own queue: top_speed_codec is not queued behind transcode.
    assert!(row(&html, "s").contains("drawn from now"), "{html}");
    assert!(
        row(&html, "s").contains("class=\"crit\""),
        "1.5 % left: {html}"
    );
}

#[test]
fn durations_read_as_english_at_every_size() {
    let hours = |h: f64| days_words(h / 24.0);
    assert_eq!(hours(0.5), "under an hour");
    assert_eq!(hours(1.0), "1 hour");
    assert_eq!(hours(1.4), "1 hour");
    assert_eq!(hours(1.6), "2 hours");
    assert_eq!(hours(38.0), "38 hours");
    assert_eq!(days_words(27.0), "27 days");
    assert_eq!(ago(3_600.0), "60 min ago");
    // A runway under an hour is not "about under an hour".
    let mut html = String::new();
    let bill = |amount: u64, at: f64| Bill {
        amount,
        seen_unix: at,
    };
    let bills = [bill(10 * GB, NOW - DAY), bill(240 * GB, NOW)];
    bills_seen(&mut html, &bills, GB, Unit::Bytes, NOW);
    assert!(html.contains(">runway under an hour<"), "{html}");
}

#[test]
fn amounts_are_decimal_minutes_and_hours() {
    assert_eq!(amount(1_000_000_000_000, Unit::Bytes), "1.00 TB");
    assert_eq!(amount(497_600_000_000, Unit::Bytes), "497.6 GB");
    assert_eq!(amount(1_500, Unit::Bytes), "1.5 kB");
    assert_eq!(amount(512, Unit::Bytes), "512 B");
    assert_eq!(amount(1800, Unit::Minutes), "30 min");
    assert_eq!(amount(60 * 1_234_567, Unit::Minutes), "1,234,567 min");
    assert_eq!(amount(7200, Unit::Hours), "2 h");
    assert_eq!(amount(5400, Unit::Hours), "1.5 h");
}

#[test]
fn hostile_ids_accounts_and_errors_are_escaped_and_control_bytes_shown() {
    let hostile = "x\r\n\u{1b}[31m<script>alert('1')</script>\u{202e}\u{85}\0";
    let mut failing = state(vec![traffic(hostile, Status::InUse, (10, 5), 9.0)], false);
    failing.last_error = Some(format!("Code{hostile}"));
    failing.last_error_detail = Some(format!("detail {hostile}"));
    let html = page(vec![(("a\"<b>\n", QueryType::Traffic), failing)]);
    assert!(
        !html.contains("<script>") && !html.contains("<b>\\n"),
        "{html}"
    );
    for c in ['\r', '\u{1b}', '\u{202e}', '\u{85}', '\0'] {
        assert!(!html.contains(c), "{c:?} raw in the page");
    }
    // LF only where the page itself puts it: between elements, never inside a value.
    assert!(!html.contains("x\n"), "{html}");
    assert!(
        html.contains(
            "x\\r\\n\\u{001b}[31m&lt;script&gt;alert(&#39;1&#39;)&lt;/script&gt;\\u{202e}\\u{0085}\\u{0000}"
        ),
        "{html}"
    );
    assert!(html.contains("a&quot;&lt;b&gt;\\n"), "{html}");
}

#[test]
fn a_pair_never_read_says_so_and_one_error_of_many_pairs_is_shown_once() {
    let never = |up| PairState {
        up,
        last_error: Some("AuthFailure.SecretIdNotFound".into()),
        last_error_detail: Some(format!("page 1: {}", "a long explanation ".repeat(20))),
        polls: 3,
        ..PairState::default()
    };
    let html = page(vec![
        (("dead", QueryType::Traffic), never(false)),
        (("dead", QueryType::Transcode), never(false)),
        (("dead", QueryType::CoAnchoring), never(false)),
    ]);
    assert_eq!(html.matches("page 1: a long").count(), 1, "{html}");
    assert_eq!(html.matches("<a href=\"#error-1\">error 1</a>").count(), 3);
    assert!(html.contains("dead · traffic, dead · transcode, dead · co_anchoring"));
    assert_eq!(html.matches("never read</span>").count(), 3, "{html}");
    assert!(html.contains(
        "<h3>dead · transcode</h3>\n<p class=\"muted\">never read: no poll of this pair has succeeded yet</p>"
    ));
    assert!(!html.contains("Usable"), "no pool invented: {html}");
}

/// What `observe` makes of polls a day apart: (day, packages).
fn history(polls: &[(f64, Vec<Package>)]) -> Arc<BillHistory> {
    let mut h = BillHistory::default();
    for (day, list) in polls {
        h.observe(list, NOW + day * DAY);
    }
    Arc::new(h)
}

#[test]
fn bills_seen_across_polls_give_a_runway_marked_as_an_estimate() {
    let t = |id, used_gb: u64, total_gb: u64| {
        let mut p = traffic(
            id,
            Status::InUse,
            (total_gb * GB, (total_gb - used_gb) * GB),
            200.0,
        );
        p.used = Some(used_gb * GB);
        p
    };
    let bills = history(&[
        (-3.0, vec![t("old", 90, 100), t("main", 0, 1_000)]),
        // 10 GB from "old", which is exhausted and leaves the list, 40 GB from "main".
        (-2.0, vec![t("main", 40, 1_000)]),
        // A new package appears, unused; 50 GB billed.
        (-1.0, vec![t("main", 90, 1_000), t("new", 0, 500)]),
        (-0.5, vec![t("main", 90, 1_000), t("new", 0, 500)]),
        (0.0, vec![t("main", 140, 1_000), t("new", 0, 500)]),
    ]);
    let mut s = state(vec![t("main", 140, 1_000), t("new", 0, 500)], true);
    s.bills = bills;
    let html = page(vec![(("prod", QueryType::Traffic), s)]);
    assert!(
        html.contains("Estimate from this exporter's own polls since it started"),
        "{html}"
    );
    let seen = html.split("Last bills seen: ").nth(1).unwrap();
    let seen = &seen[..seen.find(".<br>").unwrap()];
    assert_eq!(
        seen.matches(" GB at ").count(),
        3,
        "no negative bill, no bill for new: {seen}"
    );
    assert!(seen.starts_with("50.0 GB at "), "newest first: {seen}");
    assert!(
        seen.contains("50.0 GB at ") && seen.contains("; 50.0 GB at ") && seen.ends_with("ago)")
    );
    // Usable 860 + 500 GB at (50 + 50 GB) / 2 days: about 27 days.
    assert!(
        html.contains("Average 50.0 GB a day: <span class=\"\">runway about 27 days</span>"),
        "{html}"
    );
}

#[test]
fn one_bill_or_none_gives_no_runway() {
    let mut s = state(vec![traffic("a", Status::InUse, (100, 60), 9.0)], true);
    let html = page(vec![(("p", QueryType::Traffic), s.clone())]);
    assert!(html.contains("No bill seen yet."), "{html}");
    let mut a = traffic("a", Status::InUse, (100, 60), 9.0);
    a.used = Some(30);
    let b = traffic("a", Status::InUse, (100, 60), 9.0);
    s.bills = history(&[(-1.0, vec![a]), (0.0, vec![b])]);
    let html = page(vec![(("p", QueryType::Traffic), s)]);
    assert!(html.contains("Last bills seen: 10 B at "), "{html}");
    assert!(html.contains("Runway: needs a second bill."), "{html}");
}

#[test]
fn a_package_in_use_past_its_expire_time_says_the_api_still_reports_it_in_use() {
    let html = page(vec![(
        ("prod", QueryType::Traffic),
        state(
            vec![
                traffic("stale", Status::InUse, (100, 50), -501.0),
                traffic("done", Status::Expired, (100, 50), -3.0),
            ],
            true,
        ),
    )]);
    assert!(
        html.contains("(ExpireTime passed 501 days ago; the API still reports it in_use)"),
        "{html}"
    );
    assert!(!html.contains("expired 501 days ago"), "{html}");
    assert!(html.contains("(expired 3 days ago)"), "{html}");
    assert!(
        row(&html, "stale").starts_with("<tr class=\"expired\">"),
        "{html}"
    );
}

#[test]
fn empty_state_renders() {
    let html = render(&BTreeMap::new(), "/metrics?x=\"1\"", NOW);
    assert!(html.contains("No poll has finished yet."));
    assert!(html.contains("No packages: no poll has finished yet."));
    assert!(html.contains("href=\"/metrics?x=&quot;1&quot;\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
}

#[test]
fn escape_covers_html_metacharacters() {
    assert_eq!(
        escape(r#"<a href="x">'&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}

#[test]
fn a_runway_under_three_days_is_red() {
    let t = |used: u64| {
        let mut p = pkg(
            "s",
            PackageKind::TopSpeedCodec,
            Status::InUse,
            (6_000, 6_000 - used),
            335.0,
        );
        p.used = Some(used);
        p
    };
    let mut s = state(vec![t(3_420)], true);
    s.bills = history(&[
        (-2.0, vec![t(60)]),
        (-1.0, vec![t(1_800)]),
        (0.0, vec![t(3_420)]),
    ]);
    let html = page(vec![(("demo", QueryType::Transcode), s)]);
    // 43 min left (a 43 % bar), billed 29 then 27 min a day: under two days.
    assert!(
        html.contains("Average 27 min a day: <span class=\"soon\">runway about 38 hours</span>"),
        "{html}"
    );
}

proptest::proptest! {
    /// Whatever a value holds, escaped it has no markup character and no control character:
    /// it cannot open an element, leave an attribute, or hide and reorder text.
    #[test]
    fn escaped_values_hold_no_markup_nor_control_characters(s in "\\PC*|[\\x00-\\x{9f}<>&\"'\\x{202e}\\x{2028}]*") {
        let out = escape(&s);
        proptest::prop_assert!(!out.contains(['<', '>', '"', '\'']), "{out}");
        proptest::prop_assert!(!out.chars().any(|c| c.is_control() || ('\u{2028}'..='\u{202e}').contains(&c)), "{out:?}");
    }
}
