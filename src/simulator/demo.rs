//! The API page's example response and the demo account.

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, macros::offset};

use super::Simulator;

/// The example response of the API page (`DescribeLivePackageInfo`, 示例1), verbatim.
pub const EXAMPLE_RESPONSE: &str = r#"{
"Response": {
"RequestId": "53fc3618-4152-4e12-a1e6-3805e647a602",
"LivePackageInfoList": [
{
"Id": "281975",
"Type": 0,
"Status": 1,
"Total": 500000000000,
"Used": 2365271265,
"Left": 497634728735,
"BuyTime": "2024-07-16 18:46:08",
"ExpireTime": "2025-07-16 18:46:08",
"WillRenew": 0,
"RenewalResult": 0
},
{
"Id": "272177",
"Type": 0,
"Status": 4,
"Total": 500000000000,
"Used": 500000000000,
"Left": 0,
"BuyTime": "2023-12-05 10:17:04",
"ExpireTime": "2024-12-05 10:17:04",
"WillRenew": 0,
"RenewalResult": 0
},
{
"Id": "265480",
"Type": 0,
"Status": 4,
"Total": 100000000000,
"Used": 100000000000,
"Left": 0,
"BuyTime": "2023-07-14 14:14:30",
"ExpireTime": "2024-07-14 14:14:30",
"WillRenew": 0,
"RenewalResult": 0
},
{
"Id": "242917",
"Type": 0,
"Status": 4,
"Total": 1000000000000,
"Used": 1000000000000,
"Left": 0,
"BuyTime": "2022-09-30 10:01:19",
"ExpireTime": "2023-09-30 10:01:19",
"WillRenew": 0,
"RenewalResult": 0
},
{
"Id": "224805",
"Type": 0,
"Status": 4,
"Total": 100000000000,
"Used": 100000000000,
"Left": 0,
"BuyTime": "2022-04-01 10:13:27",
"ExpireTime": "2023-04-01 10:13:27",
"WillRenew": 0,
"RenewalResult": 0
},
{
"Id": "224804",
"Type": 0,
"Status": 4,
"Total": 100000000000,
"Used": 100000000000,
"Left": 0,
"BuyTime": "2022-04-01 10:13:27",
"ExpireTime": "2023-04-01 10:13:27",
"WillRenew": 0,
"RenewalResult": 0
},
{
"Id": "210034",
"Type": 0,
"Status": 4,
"Total": 100000000000,
"Used": 100000000000,
"Left": 0,
"BuyTime": "2021-11-16 16:48:39",
"ExpireTime": "2022-11-16 16:48:39",
"WillRenew": 0,
"RenewalResult": 0
},
{
"Id": "174007",
"Type": 0,
"Status": 4,
"Total": 100000000000,
"Used": 100000000000,
"Left": 0,
"BuyTime": "2021-03-19 16:21:52",
"ExpireTime": "2022-03-19 16:21:52",
"WillRenew": 0,
"RenewalResult": 0
},
{
"Id": "138556",
"Type": 0,
"Status": 4,
"Total": 20000000000,
"Used": 20000000000,
"Left": 0,
"BuyTime": "2020-09-09 12:45:48",
"ExpireTime": "2021-09-09 12:45:48",
"WillRenew": 0,
"RenewalResult": 0
}
],
"PackageBillMode": 204,
"FluxPackageBillMode": "204,204,204,204,-1,-1",
"TotalPage": 1,
"TotalNum": 9,
"PageNum": 1,
"PageSize": 100
}
}"#;

pub(super) fn example_response_packages() -> Vec<Value> {
    serde_json::from_str::<Value>(EXAMPLE_RESPONSE)
        .ok()
        .and_then(|v| v.pointer("/Response/LivePackageInfoList").cloned())
        .and_then(|v| match v {
            Value::Array(items) => Some(items),
            _ => None,
        })
        .unwrap_or_default()
}

/// Now, shifted by `delta`, in Beijing time (UTC+8), as `YYYY-MM-DD HH:MM:SS`.
pub(super) fn beijing_time(delta: Duration) -> String {
    let now = OffsetDateTime::now_utc().to_offset(offset!(+8));
    let t = now.checked_add(delta).unwrap_or(now);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn package(
    id: &str,
    kind: i64,
    status: i64,
    (total, used): (i64, i64),
    (bought_days_ago, expires_in_days): (i64, i64),
    (will_renew, renewal_result): (Value, Value),
) -> Value {
    json!({
        "Id": id,
        "Type": kind,
        "Status": status,
        "Total": total,
        "Used": used,
        "Left": total - used,
        "BuyTime": beijing_time(Duration::days(-bought_days_ago) + Duration::minutes(-17)),
        "ExpireTime": beijing_time(Duration::days(expires_in_days) + Duration::minutes(-17)),
        "WillRenew": will_renew,
        "RenewalResult": renewal_result,
    })
}

const TB: i64 = 1_000_000_000_000;
const GB: i64 = 1_000_000_000;

/// One account holding packages of all four Types, with times relative to now; draining on.
///
/// - query 0 (traffic, Type 0): the API page's nine example packages, plus `demo-flux-main`
///   (in use, 1 TB with 88 % left, auto-renewing) and `demo-flux-low` (in use, 100 GB with 3 % left,
///   `WillRenew`/`RenewalResult` null);
/// - query 1 (transcode, minutes): `demo-transcode-new` (Type 1, unused, expires in about 5 days),
///   `demo-transcode-old` (Type 1, expired 35 days ago) and `demo-topspeed` (Type 2, in use);
/// - query 2 (co-anchoring, hours): `demo-mic` (Type 3, in use).
pub(super) fn demo(secret_id: &str, secret_key: &str) -> Simulator {
    let sim = Simulator::new();
    sim.add_account(secret_id, secret_key);
    let (off, none) = ((json!(0), json!(0)), (Value::Null, Value::Null));

    let mut traffic = vec![
        package(
            "demo-flux-main",
            0,
            1,
            (TB, 120 * GB),
            (60, 305),
            (json!(1), json!(0)),
        ),
        package("demo-flux-low", 0, 1, (100 * GB, 97 * GB), (200, 165), none),
    ];
    traffic.extend(example_response_packages());
    sim.set_packages(secret_id, 0, traffic);

    sim.set_packages(
        secret_id,
        1,
        vec![
            package(
                "demo-transcode-new",
                1,
                0,
                (10_000, 0),
                (360, 5),
                off.clone(),
            ),
            package(
                "demo-transcode-old",
                1,
                2,
                (1_000, 400),
                (400, -35),
                off.clone(),
            ),
            package(
                "demo-topspeed",
                2,
                1,
                (5_000, 1_200),
                (30, 335),
                off.clone(),
            ),
        ],
    );
    sim.set_packages(
        secret_id,
        2,
        vec![package("demo-mic", 3, 1, (1_000, 250), (90, 275), off)],
    );
    sim.set_drain_per_poll(true);
    sim
}
