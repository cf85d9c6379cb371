//! Unit tests of `metrics`.

use super::*;
use crate::clock::unix_now;
use crate::domain::{PackageKind, Status, Unit};

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
    let labels_a = r#"{account="prod",package_type="co_anchoring",package_id="a",status="in_use"}"#;
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
    assert!(out.contains(
        "# HELP tencent_live_package_quota_bytes Total quota of a traffic package in bytes. Cached"
    ));
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

/// The process collector's families are on /metrics, with this process's real figures.
#[cfg(target_os = "linux")]
#[test]
fn process_metrics_are_exposed_on_linux() {
    let out = String::from_utf8(encode(&[], &ExporterMetrics::new())).unwrap();
    for (family, kind) in [
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
        ("process_threads", "gauge"),
    ] {
        assert!(
            out.contains(&format!("\n# TYPE {family} {kind}\n")),
            "{family} missing:\n{out}"
        );
    }
    let value = |name: &str| -> f64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} sample:\n{out}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // A live process holds memory and files, and started after 2020 and not in the future.
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_open_fds") >= 3.0);
    let start = value("process_start_time_seconds");
    assert!(start > 1.58e9 && start <= unix_now() + 1.0, "{start}");
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
    assert!(
        out.contains(
            r#"tencent_live_exporter_invalid_fields_total{account="busy",field="Total"} 1"#
        )
    );
}

#[test]
fn removing_an_account_removes_all_its_own_series_and_only_its() {
    let m = ExporterMetrics::new();
    for account in ["gone", "kept"] {
        m.init_account(account);
        m.api_request(account);
        m.api_duration(account, 0.2);
        m.api_error(account, "timeout");
        m.api_error(account, "http_503");
        m.invalid_field(account, "Total");
    }
    m.remove_account("gone");
    let out = String::from_utf8(encode(&[], &m)).unwrap();
    assert!(!out.contains(r#"account="gone""#), "{out}");
    for series in [
        r#"tencent_live_exporter_api_requests_total{account="kept"} 1"#,
        r#"tencent_live_exporter_api_request_errors_total{account="kept",code="http_503"} 1"#,
        r#"tencent_live_exporter_api_request_errors_total{account="kept",code="timeout"} 1"#,
        r#"tencent_live_exporter_invalid_fields_total{account="kept",field="Total"} 1"#,
        r#"tencent_live_exporter_api_request_duration_seconds_count{account="kept"} 1"#,
    ] {
        assert!(out.lines().any(|l| l == series), "missing {series}\n{out}");
    }
}

/// The assembled exposition holds a large pair's lines once: its segments are the piece's own
/// memory, not a copy, and their concatenation is byte for byte the one-piece encoding.
#[test]
fn assembly_shares_a_large_pairs_lines_instead_of_copying_them() {
    let list: Vec<Package> = (0..1000)
        .map(|i| pkg(&format!("p{i}"), PackageKind::Traffic, Unit::Bytes))
        .collect();
    let pair = PairSeries {
        account: "a",
        query: QueryType::Traffic,
        up: true,
        last_success_unix: Some(1.0),
        poll_duration_seconds: None,
        bill_mode: None,
        traffic_bill_modes: &[],
        packages: Some(&list),
    };
    let m = ExporterMetrics::new();
    let piece = encode_pair(&pair, &|_, _| false);
    let assembled = assemble(std::iter::once(&piece), &m);
    // process_* values (RSS, CPU) move between two gathers: compare everything else.
    let without_process = |b: Vec<u8>| -> String {
        String::from_utf8(b)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("process_"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        without_process(assembled.to_vec()),
        without_process(encode(std::slice::from_ref(&pair), &m))
    );
    assert_eq!(assembled.len(), assembled.to_vec().len());
    let (start, end) = (
        piece.buf.as_ptr() as usize,
        piece.buf.as_ptr() as usize + piece.len(),
    );
    let shared: usize = assembled
        .segments()
        .iter()
        .filter(|s| (start..end).contains(&(s.as_ptr() as usize)))
        .map(|s| s.len())
        .sum();
    assert!(
        shared * 10 >= piece.len() * 9,
        "{shared} of {} bytes shared",
        piece.len()
    );
    assert!(
        assembled.segments().len() < 2 * FAMILY_COUNT,
        "{}",
        assembled.segments().len()
    );
}

/// (account index, query index, up, [(package id, kind index)]).
type PairSpec = (usize, usize, bool, Vec<(u8, usize)>);

proptest::proptest! {
    /// Assembling per-pair pieces gives each family once, contiguous, with its HELP and TYPE
    /// once, and exactly one line per sample, whatever the pairs hold.
    #[test]
    fn pieces_assemble_into_contiguous_families(
        pairs in proptest::collection::btree_map(
            (0..3usize, 0..3usize),
            (proptest::bool::ANY, proptest::collection::vec((0..6u8, 0..4usize), 0..5)),
            0..8,
        )
    ) {
        let pairs: Vec<PairSpec> = pairs
            .into_iter()
            .map(|((a, q), (up, ps))| (a, q, up, ps))
            .collect();
        let kinds = [
            (PackageKind::Traffic, Unit::Bytes),
            (PackageKind::Transcode, Unit::Minutes),
            (PackageKind::CoAnchoring, Unit::Hours),
            (PackageKind::TopSpeedCodec, Unit::Minutes),
        ];
        let accounts = ["a", "b", "c"];
        let lists: Vec<Vec<Package>> = pairs
            .iter()
            .map(|(_, _, _, ps)| {
                ps.iter()
                    .map(|(id, k)| pkg(&format!("p{id}"), kinds[*k].0, kinds[*k].1))
                    .collect()
            })
            .collect();
        let series: Vec<PairSeries<'_>> = pairs
            .iter()
            .zip(&lists)
            .map(|((a, q, up, _), list)| PairSeries {
                account: accounts[*a],
                query: QueryType::ALL[*q],
                up: *up,
                last_success_unix: Some(1.0),
                poll_duration_seconds: None,
                bill_mode: None,
                traffic_bill_modes: &[],
                packages: Some(list),
            })
            .collect();
        let out = text(&series);
        let mut finished: HashSet<&str> = HashSet::new();
        let mut current = "";
        let mut samples: HashSet<&str> = HashSet::new();
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                proptest::prop_assert!(finished.insert(name), "{name} twice:\n{out}");
                current = name;
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                proptest::prop_assert!(
                    name.starts_with(current),
                    "{name} outside its family {current}:\n{out}"
                );
                let series = line.rsplit_once(' ').unwrap().0;
                proptest::prop_assert!(samples.insert(series), "duplicate {series}:\n{out}");
            }
        }
    }
}

#[test]
fn usable_ahead_is_exported_per_usable_package_in_its_unit() {
    let mut sooner = pkg("s", PackageKind::TopSpeedCodec, Unit::Minutes);
    sooner.expires_at = Some(1_752_000_000);
    let mut frozen = pkg("f", PackageKind::TopSpeedCodec, Unit::Minutes);
    frozen.status = crate::domain::Status::Frozen;
    frozen.expires_at = Some(1_700_000_000);
    let packages = [
        pkg("later", PackageKind::TopSpeedCodec, Unit::Minutes),
        sooner,
        frozen,
        pkg("t", PackageKind::Transcode, Unit::Minutes),
    ];
    let pair = PairSeries {
        account: "prod",
        query: QueryType::Transcode,
        up: true,
        last_success_unix: Some(1_600_000_000.5),
        poll_duration_seconds: None,
        bill_mode: None,
        traffic_bill_modes: &[],
        packages: Some(&packages),
    };
    let out = text(&[pair]);
    let series = |t: &str, id: &str, v: u64| {
        format!(
            r#"tencent_live_package_usable_ahead_seconds{{account="prod",package_type="{t}",package_id="{id}",status="in_use"}} {v}"#
        )
    };
    for line in [
        series("top_speed_codec", "later", 3600),
        series("top_speed_codec", "s", 0),
        series("transcode", "t", 0),
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line}\n{out}");
    }
    assert_eq!(
        out.matches("tencent_live_package_usable_ahead_seconds{")
            .count(),
        3,
        "{out}"
    );
    assert!(
        !out.contains("tencent_live_package_usable_ahead_bytes{"),
        "{out}"
    );
    let help = out
        .lines()
        .find(|l| l.starts_with("# HELP tencent_live_package_usable_ahead_seconds "))
        .unwrap();
    for word in [
        "transcode",
        "top_speed_codec",
        "co_anchoring",
        "ExpireTime",
        "BuyTime",
    ] {
        assert!(help.contains(word), "{help}");
    }
}

/// Issue 21: the HELP of the `_seconds` amounts names every package type they carry, the
/// top speed codec packages (listed by the transcode query) among them.
#[test]
fn the_help_of_every_seconds_amount_names_each_package_type_it_carries() {
    for family in [
        "tencent_live_package_quota_seconds",
        "tencent_live_package_used_seconds",
        "tencent_live_package_remaining_seconds",
    ] {
        let (_, help) = families()
            .into_iter()
            .find(|(name, _)| *name == family)
            .unwrap();
        for kind in ["transcode", "top_speed_codec", "co_anchoring"] {
            assert!(help.contains(kind), "{family}: {help}");
        }
    }
}
