//! The API page's example response and the demo accounts, whose packages are billed as Tencent
//! bills them ([`crate::billing`]) over a compressed day, so that the pool alert rules have
//! something to show within minutes.

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::Simulator;
use crate::billing::{Billing, Package};

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
    crate::billing::beijing_time(OffsetDateTime::now_utc(), delta)
}

const TB: i64 = 1_000_000_000_000;
const GB: i64 = 1_000_000_000;

/// The Beijing time of day (hours) of the demo's start in its compressed clock: midnight, so
/// that a scraper has seen the packages before the first bill.
pub const START_HOUR: f64 = 0.0;
/// The seed of the demo's bill hours: the first bill at 09:55 of day 0 (0.41 of a demo day
/// after the start: 50 s of the default 2m day), the next at 04:16 of day 1, and the bill of
/// day 3 late (20:30).
const SEED: u64 = 623;

/// The daily-settled demo account, in demo days (`d`):
///
/// - traffic (Type 0): `demo-flux-low` in use, 100 GB with 3 % left (`WillRenew`/`RenewalResult`
///   null), and `demo-flux-main` (1 TB, unused, auto-renewing) queued behind it; 43.2 GB a day:
///   the first runs out at the first bill and hands over to the second; the pool lasts 23 days.
///   The API page's nine example packages are listed too (one of them is still "in use" but
///   past its expiry: not usable).
/// - transcode (Type 1): `demo-transcode-new`, unused, 10,000 minutes, expires in 5 days and is
///   not used: all of it will expire unused. `demo-transcode-old` expired 35 days ago.
/// - top speed codec (Type 2): `demo-topspeed` in use, 43,200 of 100,000 minutes left, 28,800
///   minutes a day: the pool runs out at the second bill, 1.5 days of usage.
/// - co-anchoring (Type 3): `demo-mic` in use, 750 of 1,000 hours left, 48 hours a day: 15.6 days.
fn daily_account(origin: OffsetDateTime, day: std::time::Duration) -> Billing {
    let mut b = Billing::new(origin, day, START_HOUR, SEED);
    let day = b.day();
    // 17 minutes (of a demo day) off the whole day, so times do not look round.
    let d = |n: f64| day * n - day * (17.0 / 1440.0);
    let mut low = Package::new(
        "demo-flux-low",
        0,
        (100 * GB, 97 * GB),
        d(-200.0),
        Some(d(165.0)),
    );
    (low.will_renew, low.renewal_result) = (Value::Null, Value::Null);
    let mut main = Package::new("demo-flux-main", 0, (TB, 0), d(-10.0), Some(d(355.0)));
    main.will_renew = Value::from(1);
    let mut old = Package::new(
        "demo-transcode-old",
        1,
        (1_000, 400),
        d(-400.0),
        Some(d(-35.0)),
    );
    old.status = crate::billing::status::EXPIRED;
    let packages = [
        low,
        main,
        Package::new(
            "demo-transcode-new",
            1,
            (10_000, 0),
            d(-360.0),
            Some(d(5.0)),
        ),
        old,
        Package::new(
            "demo-topspeed",
            2,
            (100_000, 56_800),
            d(-30.0),
            Some(d(335.0)),
        ),
        Package::new("demo-mic", 3, (1_000, 250), d(-90.0), Some(d(275.0))),
    ];
    for p in packages {
        b.add_package(p);
    }
    b.set_daily_usage(0, 43_200_000_000);
    b.set_daily_usage(2, 28_800);
    b.set_daily_usage(3, 48);
    b
}

/// The monthly-settled demo account: its packages are frozen (Status 3) and take nothing;
/// `demo-frozen-flux` (500 GB, 320 GB left) expires in 20 days, `demo-frozen-transcode` (5,000
/// minutes, 4,000 left) in 60 days; its 20 GB of traffic a day is billed after use.
fn monthly_account(origin: OffsetDateTime, day: std::time::Duration) -> Billing {
    let mut b = Billing::new(origin, day, START_HOUR, SEED + 1);
    let day = b.day();
    let d = |n: f64| day * n;
    b.set_monthly_settlement(true);
    b.add_package(Package::new(
        "demo-frozen-flux",
        0,
        (500 * GB, 180 * GB),
        d(-345.0),
        Some(d(20.0)),
    ));
    b.add_package(Package::new(
        "demo-frozen-transcode",
        1,
        (5_000, 1_000),
        d(-305.0),
        Some(d(60.0)),
    ));
    b.set_daily_usage(0, 20 * GB);
    b
}

/// The demo: a simulator with its accounts, billed over a day of any length.
#[derive(Debug, Clone)]
pub struct Demo {
    sim: Simulator,
    /// (SecretId, billing, whether the API page's example packages are listed too).
    accounts: Vec<(String, Billing, bool)>,
}

impl Demo {
    /// The demo accounts, with package times relative to `origin` and a day of `day`: the
    /// daily-settled account `daily` (SecretId, SecretKey), and when given the monthly-settled
    /// one. Call [`Demo::advance`] to issue the bills due.
    pub fn new(
        daily: (&str, &str),
        monthly: Option<(&str, &str)>,
        origin: OffsetDateTime,
        day: std::time::Duration,
    ) -> Self {
        let sim = Simulator::new();
        let mut accounts = vec![(daily.0.to_owned(), daily_account(origin, day), true)];
        sim.add_account(daily.0, daily.1);
        if let Some((id, key)) = monthly {
            sim.add_account(id, key);
            accounts.push((id.to_owned(), monthly_account(origin, day), false));
        }
        let demo = Demo { sim, accounts };
        demo.show();
        demo
    }

    /// The simulator that serves the demo accounts.
    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    /// The accounts' billing: (SecretId, billing).
    pub fn accounts(&self) -> impl Iterator<Item = (&str, &Billing)> {
        self.accounts.iter().map(|(id, b, _)| (id.as_str(), b))
    }

    /// Issues the bills due `elapsed` after the origin and shows the packages as they now are;
    /// the number of bills issued. Call it every second or so.
    pub fn advance(&mut self, elapsed: std::time::Duration) -> usize {
        let issued = self
            .accounts
            .iter_mut()
            .map(|(_, b, _)| b.advance(elapsed).len())
            .sum();
        self.show();
        issued
    }

    fn show(&self) {
        for (id, billing, examples) in &self.accounts {
            for q in 0..3u8 {
                let mut list = billing.list(q);
                if q == 0 && *examples {
                    list.extend(example_response_packages());
                }
                self.sim.set_packages(id, q, list);
            }
        }
    }
}

/// One daily-settled account (see [`daily_account`]) with times relative to now and real days,
/// as it is at the start.
pub(super) fn demo(secret_id: &str, secret_key: &str) -> Simulator {
    let day = std::time::Duration::from_secs(86_400);
    Demo::new(
        (secret_id, secret_key),
        None,
        OffsetDateTime::now_utc(),
        day,
    )
    .simulator()
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::status;

    fn package<'a>(demo: &'a Demo, id: &str) -> &'a Package {
        demo.accounts()
            .flat_map(|(_, b)| b.packages())
            .find(|p| p.id == id)
            .expect("a demo package")
    }

    /// The demo's story over a 120 s day: the first bill at 50 s hands the traffic pool over;
    /// the top speed codec pool runs out at the second bill (1.5 days of usage) and goes
    /// pay-as-you-go; the transcode package expires unused on day 5; frozen packages take nothing.
    #[test]
    fn the_demo_tells_its_story_in_compressed_days() {
        let day = std::time::Duration::from_secs(120);
        let mut demo = Demo::new(
            ("daily", "k"),
            Some(("monthly", "k")),
            OffsetDateTime::now_utc(),
            day,
        );
        demo.advance(std::time::Duration::from_secs(49));
        assert_eq!(
            package(&demo, "demo-topspeed").left(),
            43_200,
            "no bill before 09:55"
        );
        demo.advance(std::time::Duration::from_secs(50));
        assert_eq!(package(&demo, "demo-flux-low").status, status::EXHAUSTED);
        assert_eq!(package(&demo, "demo-flux-main").used, 40_200_000_000);
        assert_eq!(package(&demo, "demo-topspeed").left(), 14_400);
        demo.advance(day * 2);
        let topspeed = package(&demo, "demo-topspeed");
        assert_eq!((topspeed.left(), topspeed.status), (0, status::EXHAUSTED));
        let daily = demo.accounts().next().unwrap().1;
        assert_eq!(daily.pay_as_you_go(2), 14_400);
        assert_eq!(daily.pay_as_you_go(0), 0);
        assert_eq!(package(&demo, "demo-frozen-flux").status, status::FROZEN);
        demo.advance(day * 6);
        let transcode = package(&demo, "demo-transcode-new");
        assert_eq!((transcode.used, transcode.status), (0, status::EXPIRED));
        let frozen = package(&demo, "demo-frozen-flux");
        assert_eq!((frozen.used, frozen.status), (180 * GB, status::FROZEN));
        let monthly = demo.accounts().nth(1).unwrap().1;
        assert_eq!(monthly.pay_as_you_go(0), monthly.billed(0));
    }
}
