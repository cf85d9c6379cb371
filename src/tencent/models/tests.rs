//! Unit tests of `models`.

use super::*;
use crate::domain::Unit;

/// The API page's example answer, verbatim (one copy, kept by the simulator).
const EXAMPLE: &str = tencent_live_simulator::EXAMPLE_RESPONSE;

#[test]
fn the_api_pages_example_answer_parses_verbatim() {
    let a = parse_answer(EXAMPLE.as_bytes(), QueryType::Traffic).expect("parses");
    assert_eq!(a.invalid_fields, vec![]);
    assert_eq!(a.listed, 9);
    assert_eq!(a.packages.len(), 9);
    assert_eq!(a.bill_mode, Some(204));
    assert_eq!(a.total_page, Some(1));
    assert_eq!(a.total_num, Some(9));
    assert_eq!(
        a.request_id.as_deref(),
        Some("53fc3618-4152-4e12-a1e6-3805e647a602")
    );
    // Six fields in the example; the first four are exported.
    assert_eq!(
        a.traffic_bill_modes,
        vec![
            TrafficBillMode {
                product: "standard",
                area: "mainland",
                mode: 204
            },
            TrafficBillMode {
                product: "standard",
                area: "overseas",
                mode: 204
            },
            TrafficBillMode {
                product: "leb",
                area: "mainland",
                mode: 204
            },
            TrafficBillMode {
                product: "leb",
                area: "overseas",
                mode: 204
            },
        ]
    );
    let first = &a.packages[0];
    assert_eq!(
        first,
        &Package {
            id: "281975".into(),
            kind: PackageKind::Traffic,
            status: Status::InUse,
            unit: Unit::Bytes,
            quota: Some(500_000_000_000),
            used: Some(2_365_271_265),
            remaining: Some(497_634_728_735),
            // 2024-07-16 18:46:08 +08:00 = 10:46:08 UTC
            expires_at: Some(1_752_662_768),
            purchased_at: Some(1_721_126_768),
            auto_renew: Some(0),
            renewal_result: Some(0),
        }
    );
    assert_eq!(a.packages[3].quota, Some(1_000_000_000_000));
    assert!(
        a.packages[1..]
            .iter()
            .all(|p| p.status == Status::Exhausted)
    );
}

#[test]
fn beijing_time_is_utc_plus_eight_without_dst() {
    assert_eq!(beijing_time("1970-01-01 08:00:00"), Some(0));
    // Midsummer and midwinter alike: China has had no DST since 1991.
    assert_eq!(beijing_time("2024-07-01 08:00:00"), Some(1_719_792_000));
    assert_eq!(beijing_time("2024-01-01 08:00:00"), Some(1_704_067_200));
    assert_eq!(beijing_time("2024-02-30 00:00:00"), None);
    assert_eq!(beijing_time("2024-07-01T08:00:00"), None);
    assert_eq!(beijing_time(""), None);
}

#[test]
fn the_same_unusable_expire_time_is_new_once_per_change() {
    let answer = |expire: &str| {
        one(
            &format!(r#"{{"Id":"p","Type":0,"Status":1,"ExpireTime":"{expire}"}}"#),
            QueryType::Traffic,
        )
        .invalid_fields
    };
    let mut seen = InvalidFieldsSeen::default();
    let empty = answer("");
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].field, "ExpireTime");
    assert!(seen.changed(&empty), "first time: warn");
    for _ in 0..3 {
        assert!(!seen.changed(&answer("")), "the same again: no warning");
    }
    let zero = answer("0000-00-00 00:00:00");
    assert_eq!(zero[0].field, "ExpireTime");
    assert!(seen.changed(&zero), "a different value: warn");
    assert!(!seen.changed(&answer("0000-00-00 00:00:00")));
    assert!(
        seen.changed(&answer("2027-01-01 00:00:00")),
        "fixed: changed"
    );
    assert!(!seen.changed(&[]));
    assert!(seen.changed(&zero), "back again: warn again");
}

fn one(pkg: &str, query: QueryType) -> PageAnswer {
    let body = format!(r#"{{"Response":{{"RequestId":"r","LivePackageInfoList":[{pkg}]}}}}"#);
    parse_answer(body.as_bytes(), query).expect("parses")
}

#[test]
fn minutes_and_hours_become_seconds() {
    let t = one(
        r#"{"Id":"t","Type":1,"Status":1,"Total":1000,"Used":10,"Left":990}"#,
        QueryType::Transcode,
    );
    let p = &t.packages[0];
    assert_eq!(
        (p.quota, p.used, p.remaining),
        (Some(60_000), Some(600), Some(59_400))
    );
    let s = one(r#"{"Id":"s","Type":2,"Total":5}"#, QueryType::Transcode);
    assert_eq!(s.packages[0].quota, Some(300));
    assert_eq!(s.packages[0].kind, PackageKind::TopSpeedCodec);
    let c = one(
        r#"{"Id":"c","Type":3,"Total":2,"Left":1}"#,
        QueryType::CoAnchoring,
    );
    assert_eq!(
        (c.packages[0].quota, c.packages[0].remaining),
        (Some(7200), Some(3600))
    );
}

#[test]
fn a_missing_type_comes_from_the_query_and_an_unknown_one_is_kept() {
    let a = one(r#"{"Id":"x","Status":1,"Total":2}"#, QueryType::CoAnchoring);
    assert_eq!(a.packages[0].kind, PackageKind::CoAnchoring);
    assert_eq!(a.packages[0].quota, Some(7200));
    let b = one(
        r#"{"Id":"y","Type":7,"Status":9,"Total":2}"#,
        QueryType::Transcode,
    );
    assert_eq!(b.packages[0].kind, PackageKind::Unknown(7));
    assert_eq!(b.packages[0].status, Status::Unknown(9));
    assert_eq!(
        b.packages[0].quota,
        Some(120),
        "unit of the transcode query"
    );
}

#[test]
fn bad_fields_are_skipped_and_reported_but_the_package_stays() {
    let a = one(
        r#"{"Id":"b","Type":0,"Status":1,"Total":-5,"Used":"12","Left":9007199254740993,
               "BuyTime":"yesterday","ExpireTime":17,"WillRenew":null,"RenewalResult":1.5,"New":{"x":1}}"#,
        QueryType::Traffic,
    );
    let p = &a.packages[0];
    assert_eq!(p.id, "b");
    assert_eq!((p.quota, p.used, p.remaining), (None, None, None));
    assert_eq!(
        (p.expires_at, p.purchased_at, p.auto_renew, p.renewal_result),
        (None, None, None, None)
    );
    let fields: Vec<&str> = a.invalid_fields.iter().map(|f| f.field).collect();
    assert_eq!(
        fields,
        [
            "Total",
            "Used",
            "Left",
            "ExpireTime",
            "BuyTime",
            "RenewalResult"
        ]
    );
    assert!(
        a.invalid_fields
            .iter()
            .all(|f| f.package_id.as_deref() == Some("b"))
    );
}

#[test]
fn a_package_without_an_id_is_skipped_but_counted_for_paging() {
    let a = one(
        r#"{"Type":0,"Total":1},{"Id":""},7,{"Id":12,"Status":0}"#,
        QueryType::Traffic,
    );
    assert_eq!(a.listed, 4);
    assert_eq!(a.packages.len(), 1);
    assert_eq!(a.packages[0].id, "12");
    let fields: Vec<&str> = a.invalid_fields.iter().map(|f| f.field).collect();
    assert_eq!(fields, ["Id", "Id", "LivePackageInfoList"]);
}

#[test]
fn null_totals_and_null_list_are_not_errors() {
    let body = br#"{"Response":{"RequestId":"r","LivePackageInfoList":null,"TotalPage":null,"TotalNum":null,"PageNum":null,"PageSize":null}}"#;
    let a = parse_answer(body, QueryType::Traffic).expect("parses");
    assert_eq!((a.listed, a.total_page, a.total_num), (0, None, None));
    assert!(a.invalid_fields.is_empty());
}

#[test]
fn flux_bill_mode_skips_non_integers_and_ignores_extra_fields() {
    let body = br#"{"Response":{"RequestId":"r","FluxPackageBillMode":"201, x,204"}}"#;
    let a = parse_answer(body, QueryType::Traffic).expect("parses");
    assert_eq!(
        a.traffic_bill_modes,
        vec![
            TrafficBillMode {
                product: "standard",
                area: "mainland",
                mode: 201
            },
            TrafficBillMode {
                product: "leb",
                area: "mainland",
                mode: 204
            },
        ]
    );
    assert_eq!(a.invalid_fields.len(), 1);
    // Only traffic queries carry it.
    let t = parse_answer(body, QueryType::Transcode).expect("parses");
    assert!(t.traffic_bill_modes.is_empty());
}

#[test]
fn error_answers_carry_code_message_and_request_id() {
    let body = br#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"bad"},"RequestId":"rid-1"}}"#;
    assert_eq!(
        parse_answer(body, QueryType::Traffic),
        Err(AnswerError::Api {
            code: "AuthFailure.SignatureFailure".into(),
            message: "bad".into(),
            request_id: "rid-1".into()
        })
    );
}

fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|v| json_number(v as f64, Some(v))),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|v| json_number(v, None)),
        ".{0,12}".prop_map(Value::String),
        // Strings that look like the fields' real values.
        prop_oneof![
            Just("2024-07-16 18:46:08"),
            Just("204,x,-1"),
            Just("Id"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    let keys = prop_oneof![
        Just("Response"),
        Just("LivePackageInfoList"),
        Just("Id"),
        Just("Type"),
        Just("Status"),
        Just("Total"),
        Just("Used"),
        Just("Left"),
        Just("BuyTime"),
        Just("ExpireTime"),
        Just("WillRenew"),
        Just("RenewalResult"),
        Just("TotalPage"),
        Just("TotalNum"),
        Just("PackageBillMode"),
        Just("FluxPackageBillMode"),
        Just("Error"),
        Just("Code"),
        Just("RequestId"),
    ]
    .prop_map(str::to_owned);
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(keys.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_number(f: f64, i: Option<i64>) -> Value {
    match i {
        Some(i) => Value::from(i),
        None => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Any JSON value, bare or as the `Response`, never panics the parser.
    #[test]
    fn any_json_answer_never_panics(v in any_json()) {
        for query in QueryType::ALL {
            let bare = serde_json::to_vec(&v).unwrap();
            let _ = parse_answer(&bare, query);
            let wrapped = serde_json::to_vec(&serde_json::json!({"Response": v.clone()})).unwrap();
            let _ = parse_answer(&wrapped, query);
            let listed = serde_json::to_vec(&serde_json::json!({"Response": {"LivePackageInfoList": [v.clone(), v.clone()]}})).unwrap();
            if let Ok(a) = parse_answer(&listed, query) {
                proptest::prop_assert_eq!(a.listed, 2);
                // Whatever was exported is exact in an f64 and non-negative.
                for p in &a.packages {
                    for amount in [p.quota, p.used, p.remaining].into_iter().flatten() {
                        proptest::prop_assert!(amount <= MAX_EXACT);
                    }
                }
            }
        }
    }

    /// Arbitrary bytes never panic it either.
    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        let _ = parse_answer(&bytes, QueryType::Traffic);
    }
}

#[test]
fn garbage_is_a_decode_error() {
    for body in [
        &b"<html>"[..],
        b"{}",
        b"[]",
        b"{\"Response\":1}",
        b"{\"Response\":{\"LivePackageInfoList\":{}}}",
        b"{\"Resp",
    ] {
        assert!(
            matches!(
                parse_answer(body, QueryType::Traffic),
                Err(AnswerError::Decode(_))
            ),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}
