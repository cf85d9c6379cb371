//! Unit tests of `text`: our writer against the `prometheus` crate's `TextEncoder` for the
//! exporter's real families.

use std::collections::BTreeMap;

use prometheus::{Encoder, TextEncoder};

use super::*;
use crate::telemetry::ExporterMetrics;

/// One parsed sample: (metric name, labels in written order, value).
type Sample = (String, Vec<(String, String)>, f64);

/// A small reader of the text format 0.0.4, for comparing two outputs sample by sample:
/// `# TYPE` lines into a map, samples with their labels unescaped and values parsed as
/// Prometheus does (`+Inf`, `-Inf`, `NaN`, Go float syntax).
fn parse(text: &str) -> (BTreeMap<String, (String, String)>, Vec<Sample>) {
    let mut headers: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            headers.entry(name.into()).or_default().0 = help.into();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            headers.entry(name.into()).or_default().1 = kind.into();
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
            samples.push(parse_sample(line));
        }
    }
    (headers, samples)
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).unwrap();
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let rest_after_comma = rest.strip_prefix(',').unwrap_or(rest);
            let (key, r) = rest_after_comma.split_once("=\"").unwrap();
            let mut value = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                match chars.next().unwrap() {
                    (_, '\\') => match chars.next().unwrap().1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => panic!("bad escape \\{c} in {line:?}"),
                    },
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_owned(), value));
            rest = &r[end + 1..];
        }
    }
    let value = rest.strip_prefix(' ').unwrap();
    let value = match value {
        "+Inf" | "inf" => f64::INFINITY,
        "-Inf" | "-inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|e| panic!("{e}: {line:?}")),
    };
    (name, labels, value)
}

/// Writes `metrics`' gathered families with our writer and with `TextEncoder`, and checks
/// that they read back the same: HELP and TYPE of every family, and sample by sample the
/// name, labels and value (NaN equal to NaN), in the same order.
fn assert_same_as_text_encoder(metrics: &ExporterMetrics) -> String {
    let families = metrics.gather();
    let mut ours = Writer::with_capacity(0);
    ours.metric_families(&families);
    let ours = String::from_utf8(ours.into_bytes()).unwrap();
    let mut theirs = Vec::new();
    TextEncoder::new().encode(&families, &mut theirs).unwrap();
    let theirs = String::from_utf8(theirs).unwrap();
    let (our_headers, our_samples) = parse(&ours);
    let (their_headers, their_samples) = parse(&theirs);
    assert_eq!(
        our_headers, their_headers,
        "ours:\n{ours}\ntheirs:\n{theirs}"
    );
    assert_eq!(
        our_samples.len(),
        their_samples.len(),
        "ours:\n{ours}\ntheirs:\n{theirs}"
    );
    for (o, t) in our_samples.iter().zip(&their_samples) {
        assert_eq!(
            (&o.0, &o.1),
            (&t.0, &t.1),
            "ours:\n{ours}\ntheirs:\n{theirs}"
        );
        assert!(
            o.2 == t.2 || (o.2.is_nan() && t.2.is_nan()),
            "{} {:?}: ours {} theirs {}",
            o.0,
            o.1,
            o.2,
            t.2
        );
    }
    ours
}

#[test]
fn the_exporters_families_read_back_as_the_text_encoders() {
    let m = ExporterMetrics::new();
    m.init_account("idle");
    for (account, seconds) in [("busy", 0.2), ("busy", 31.0), ("a\"b\\c\nd", 0.025)] {
        m.api_request(account);
        m.api_duration(account, seconds);
        m.api_error(account, "timeout");
        m.invalid_field(account, "Total");
        m.list_reread(account, "traffic", "duplicate_ids");
    }
    m.reload_result(false);
    let ours = assert_same_as_text_encoder(&m);
    // The format details the rest of the exposition follows: integers without `.0`, the
    // `+Inf` bucket, escaped label values, each family typed.
    for line in [
        r#"tencent_live_exporter_api_request_duration_seconds_bucket{account="busy",le="1"} 1"#,
        r#"tencent_live_exporter_api_request_duration_seconds_bucket{account="busy",le="+Inf"} 2"#,
        r#"tencent_live_exporter_api_request_duration_seconds_sum{account="busy"} 31.2"#,
        r#"tencent_live_exporter_api_request_duration_seconds_count{account="busy"} 2"#,
        r#"tencent_live_exporter_api_requests_total{account="a\"b\\c\nd"} 1"#,
        r#"tencent_live_exporter_api_requests_total{account="idle"} 0"#,
        "tencent_live_exporter_config_last_reload_successful 0",
        "# TYPE tencent_live_exporter_api_request_duration_seconds histogram",
        "# TYPE tencent_live_exporter_api_requests_total counter",
        "# TYPE tencent_live_exporter_build_info gauge",
    ] {
        assert!(ours.lines().any(|l| l == line), "missing {line}\n{ours}");
    }
}

#[test]
fn floats_are_written_as_the_text_format_reads_them() {
    let mut w = Writer::with_capacity(0);
    w.family("x", "a \\ and a\nnewline", "gauge");
    for v in [
        1.0,
        -0.0,
        0.25,
        1e-7,
        1e21,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ] {
        w.sample("x", &[], Value::Float(v));
    }
    w.sample("x", &[("k", "v")], Value::Int(-3));
    w.sample("x", &[], Value::Uint(u64::MAX));
    w.end_family();
    let text = String::from_utf8(w.into_bytes()).unwrap();
    assert_eq!(
        text,
        "# HELP x a \\\\ and a\\nnewline\n# TYPE x gauge\nx 1\nx -0\nx 0.25\nx 0.0000001\n\
         x 1000000000000000000000\nx NaN\nx +Inf\nx -Inf\nx{k=\"v\"} -3\nx 18446744073709551615\n"
    );
}

#[test]
fn a_family_without_samples_is_left_out() {
    let mut w = Writer::with_capacity(0);
    w.family("empty", "nothing", "gauge");
    w.end_family();
    w.family("full", "", "counter");
    w.sample("full", &[], Value::Int(1));
    w.end_family();
    assert_eq!(
        String::from_utf8(w.into_bytes()).unwrap(),
        "# TYPE full counter\nfull 1\n"
    );
}

proptest::proptest! {
    // Each case builds a registry and encodes it twice: 64 cases keep the test well under a
    // second in a debug build.
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever the account names (quotes, backslashes, newlines, any Unicode), label values
    /// and observed durations, our writer and `TextEncoder` read back the same samples.
    #[test]
    fn any_exporter_metrics_read_back_as_the_text_encoders(
        calls in proptest::collection::vec(
            ("\\PC{0,6}|[\"\\\\\n a]{0,4}", "[a-z_0-9]{0,8}", 0.0..100.0f64, 0..3u8),
            0..12,
        )
    ) {
        let m = ExporterMetrics::new();
        for (account, code, seconds, kind) in &calls {
            match kind {
                0 => m.api_request(account),
                1 => {
                    m.api_duration(account, *seconds);
                    m.api_error(account, code);
                }
                _ => {
                    m.invalid_field(account, code);
                    m.list_reread(account, code, "empty_page");
                }
            }
        }
        assert_same_as_text_encoder(&m);
    }
}
