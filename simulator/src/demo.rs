//! The API page's example response and the demo account, whose packages are used up at steady
//! rates by a wall-clock usage model (so the pool alert rules have something to show).

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
    beijing_time_at(OffsetDateTime::now_utc(), delta)
}

/// `origin` shifted by `delta`, in Beijing time (UTC+8), as `YYYY-MM-DD HH:MM:SS`.
fn beijing_time_at(origin: OffsetDateTime, delta: Duration) -> String {
    let origin = origin.to_offset(offset!(+8));
    let t = origin.checked_add(delta).unwrap_or(origin);
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

/// One demo package as it is when the demo starts.
struct Planned {
    id: &'static str,
    /// The package's `Type`: 0 traffic, 1 transcode, 2 top speed codec, 3 co-anchoring.
    kind: i64,
    /// `Status` at the start: 0 unused, 1 in use, 2 expired.
    status: i64,
    /// `Total` and `Used` at the start, in the API's units (bytes, minutes, hours).
    total: i64,
    used: i64,
    bought_days_ago: i64,
    /// Negative: expired that many days ago.
    expires_in_days: i64,
    will_renew: Value,
    renewal_result: Value,
}

/// The packages of one package `Type`, in the order Tencent draws them down (in-use first, then
/// the queued unused ones), used at a steady rate.
struct Pool {
    /// The request's `PackageType` whose list holds these packages.
    query_type: u8,
    /// Units (of the API: bytes, minutes, hours) used per second of wall-clock time.
    rate_per_second: f64,
    packages: Vec<Planned>,
}

const TB: i64 = 1_000_000_000_000;
const GB: i64 = 1_000_000_000;

/// The demo account's pools. Rates are per second of wall-clock time, so what the alert rules
/// compute does not depend on the poll interval:
///
/// - traffic (Type 0): `demo-flux-low` in use, 100 GB with 3 % left (`WillRenew`/`RenewalResult`
///   null), and `demo-flux-main` (1 TB, unused, auto-renewing) queued behind it; used at
///   0.5 MB/s (43.2 GB a day), the first runs out after 100 minutes and hands over to the second:
///   the pool lasts 23 days, so nothing pages. The API page's nine example packages are listed
///   too (one of them is still "in use" but past its expiry: not usable).
/// - transcode (Type 1): `demo-transcode-new`, unused, 10,000 minutes, expires in about 5 days
///   and is not being used: all of it will expire unused. `demo-transcode-old` expired 35 days ago.
/// - top speed codec (Type 2): `demo-topspeed` in use, 43,200 of 100,000 minutes left, used at 30
///   minutes a minute: the pool runs out in 1 day (runway alerts, critical).
/// - co-anchoring (Type 3): `demo-mic` in use, 750 of 1,000 hours left, used at 2 hours an hour:
///   15.6 days, no alert.
fn pools() -> Vec<Pool> {
    let off = || (json!(0), json!(0));
    let planned = |id,
                   kind,
                   status,
                   (total, used),
                   (bought_days_ago, expires_in_days),
                   renew: (Value, Value)| Planned {
        id,
        kind,
        status,
        total,
        used,
        bought_days_ago,
        expires_in_days,
        will_renew: renew.0,
        renewal_result: renew.1,
    };
    vec![
        Pool {
            query_type: 0,
            rate_per_second: 500_000.0,
            packages: vec![
                planned(
                    "demo-flux-low",
                    0,
                    1,
                    (100 * GB, 97 * GB),
                    (200, 165),
                    (Value::Null, Value::Null),
                ),
                planned(
                    "demo-flux-main",
                    0,
                    0,
                    (TB, 0),
                    (10, 305),
                    (json!(1), json!(0)),
                ),
            ],
        },
        Pool {
            query_type: 1,
            rate_per_second: 0.0,
            packages: vec![
                planned("demo-transcode-new", 1, 0, (10_000, 0), (360, 5), off()),
                planned("demo-transcode-old", 1, 2, (1_000, 400), (400, -35), off()),
            ],
        },
        Pool {
            query_type: 1,
            rate_per_second: 0.5,
            packages: vec![planned(
                "demo-topspeed",
                2,
                1,
                (100_000, 56_800),
                (30, 335),
                off(),
            )],
        },
        Pool {
            query_type: 2,
            rate_per_second: 2.0 / 3600.0,
            packages: vec![planned("demo-mic", 3, 1, (1_000, 250), (90, 275), off())],
        },
    ]
}

/// The pool's packages after `elapsed` of use since `origin` (the demo's start): the amount used
/// so far is drawn from the usable packages (unused or in use, quota left) in order; a package
/// drawn from goes in use, one drawn to 0 is exhausted (Status 4).
fn pool_at(pool: &Pool, origin: OffsetDateTime, elapsed: Duration) -> Vec<Value> {
    // Whole units only: the API's amounts are integers.
    let mut to_use = (pool.rate_per_second * elapsed.as_seconds_f64()).floor() as i64;
    pool.packages
        .iter()
        .map(|p| {
            let (mut used, mut status) = (p.used, p.status);
            if matches!(status, 0 | 1) && to_use > 0 {
                let take = to_use.min(p.total - used).max(0);
                used += take;
                to_use -= take;
                if take > 0 {
                    status = 1;
                }
            }
            if matches!(status, 0 | 1) && used >= p.total {
                status = 4;
            }
            json!({
                "Id": p.id,
                "Type": p.kind,
                "Status": status,
                "Total": p.total,
                "Used": used,
                "Left": p.total - used,
                "BuyTime": beijing_time_at(origin, Duration::days(-p.bought_days_ago) + Duration::minutes(-17)),
                "ExpireTime": beijing_time_at(origin, Duration::days(p.expires_in_days) + Duration::minutes(-17)),
                "WillRenew": p.will_renew,
                "RenewalResult": p.renewal_result,
            })
        })
        .collect()
}

/// The demo account's three lists (by query type) after `elapsed` since `origin`.
// Proven: query types of the demo pools are constants in 0..=2, the array has 3 lists.
#[allow(clippy::indexing_slicing)]
fn lists_at(origin: OffsetDateTime, elapsed: Duration) -> [Vec<Value>; 3] {
    let mut lists: [Vec<Value>; 3] = Default::default();
    for pool in pools() {
        lists[usize::from(pool.query_type)].extend(pool_at(&pool, origin, elapsed));
    }
    lists[0].extend(example_response_packages());
    lists
}

/// One account holding packages of all four Types (see [`pools`]), with times relative to now,
/// as they are at the demo's start; [`Simulator::advance_demo`] uses them up.
pub(super) fn demo(secret_id: &str, secret_key: &str) -> Simulator {
    let sim = Simulator::new();
    sim.add_account(secret_id, secret_key);
    for (query_type, list) in (0u8..).zip(lists_at(OffsetDateTime::now_utc(), Duration::ZERO)) {
        sim.set_packages(secret_id, query_type, list);
    }
    sim
}

impl Simulator {
    /// Sets the demo account's packages to what they are `elapsed` after the demo's start at
    /// `origin` (package times are relative to it): each pool used at its steady rate (see
    /// [`Simulator::demo`]), whatever the poll interval. Call it every second or so.
    pub fn advance_demo(
        &self,
        secret_id: &str,
        origin: OffsetDateTime,
        elapsed: std::time::Duration,
    ) {
        let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::MAX);
        for (query_type, list) in (0u8..).zip(lists_at(origin, elapsed)) {
            self.set_packages(secret_id, query_type, list);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn amounts(list: &[Value]) -> Vec<(i64, i64, i64, i64)> {
        list.iter()
            .map(|p| {
                let int = |k: &str| p[k].as_i64().expect("integer field");
                (int("Status"), int("Total"), int("Used"), int("Left"))
            })
            .collect()
    }

    proptest! {
        /// Whatever the elapsed time, each pool has used exactly its rate × elapsed (whole units),
        /// capped by what its usable packages held; Used + Left = Total; and a later time never
        /// uses less of any package.
        #[test]
        fn pools_use_their_rate_and_never_run_backwards(a in 0u64..40_000_000, b in 0u64..40_000_000) {
            let origin = OffsetDateTime::now_utc();
            let (early, late) = (a.min(b), a.max(b));
            for pool in pools() {
                let at = |s: u64| amounts(&pool_at(&pool, origin, Duration::seconds(s as i64)));
                let (start, before, after) = (at(0), at(early), at(late));
                let usable: i64 = start.iter().filter(|p| matches!(p.0, 0 | 1)).map(|p| p.3).sum();
                let used = |list: &[(i64, i64, i64, i64)]| list.iter().map(|p| p.2).sum::<i64>();
                let expected = ((pool.rate_per_second * late as f64).floor() as i64).min(usable);
                prop_assert_eq!(used(&after) - used(&start), expected);
                for ((s, total, u, left), (_, _, u_before, _)) in after.iter().zip(&before) {
                    prop_assert_eq!(u + left, *total);
                    prop_assert!(*left >= 0 && u >= u_before);
                    prop_assert!(*left > 0 || !matches!(s, 0 | 1), "an empty package is not usable");
                }
            }
        }
    }

    #[test]
    fn the_traffic_pool_hands_over_to_the_queued_package() {
        let traffic = pools().into_iter().next().unwrap();
        let origin = OffsetDateTime::now_utc();
        let ids_and_status = |s: i64| {
            pool_at(&traffic, origin, Duration::seconds(s))
                .iter()
                .map(|p| {
                    (
                        p["Id"].as_str().unwrap().to_owned(),
                        p["Status"].as_i64().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        };
        // 3 GB at 0.5 MB/s: 6000 s.
        assert_eq!(
            ids_and_status(5_999),
            [("demo-flux-low".into(), 1), ("demo-flux-main".into(), 0)]
        );
        assert_eq!(
            ids_and_status(6_000),
            [("demo-flux-low".into(), 4), ("demo-flux-main".into(), 0)]
        );
        assert_eq!(
            ids_and_status(6_001),
            [("demo-flux-low".into(), 4), ("demo-flux-main".into(), 1)]
        );
    }
}
