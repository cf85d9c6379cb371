//! Tencent's daily deduction of prepaid packages, as a deterministic engine driven by an explicit
//! clock (no wall clock inside): [`Billing`] owns one account's packages, its usage and its bills.
//!
//! The rules, from Tencent Cloud CSS "Prepaid Resource Packages" (document 267/52220; the same in
//! the MPS resource-pack document 1041/48810 and the CSS billing overview 267/53309):
//!
//! - Usage accrues continuously, but one day's usage is deducted the next day, when the daily bill
//!   is issued (the bill time varies): a package's `Used`/`Left` stay flat between bills and move
//!   by a whole day's usage at once. Here a bill is issued at a seeded "bill hour" of Beijing time
//!   between 02:00 and 11:00, and about one day in eight late, at 20:30.
//! - The packages of one `Type` are drawn down in order of expiry: earliest `ExpireTime` first
//!   (ties: earlier `BuyTime`, then the smaller `Id`, numerically when both are numbers; no
//!   `ExpireTime` last). A package goes unused (0) -> in use (1) -> used up (4).
//! - What no usable package covers is billed pay-as-you-go (counted, see
//!   [`Billing::pay_as_you_go`]).
//! - A package bought on day D does not cover the usage of day D-1 (billed on day D).
//! - A package whose `ExpireTime` is past at the bill takes nothing and shows expired (2).
//! - An account on monthly settlement has its packages frozen (3): they take nothing (the usage
//!   is billed after use, counted as pay-as-you-go here) and their validity keeps running.
//!
//! Time is an offset from an `origin` (the wall-clock instant shown as [`Billing::origin`]);
//! `day` is the length of one day (86,400 s for real use, minutes in `--demo`), so every time of
//! the engine, package times included, scales with it.

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, macros::offset};

/// `Status` values of `DescribeLivePackageInfo`.
pub mod status {
    /// Not drawn from yet.
    pub const UNUSED: i64 = 0;
    /// Being drawn from.
    pub const IN_USE: i64 = 1;
    /// Past its `ExpireTime`.
    pub const EXPIRED: i64 = 2;
    /// Frozen by monthly settlement.
    pub const FROZEN: i64 = 3;
    /// Used up.
    pub const EXHAUSTED: i64 = 4;
}

/// One prepaid package as the engine keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    /// `Id`.
    pub id: String,
    /// `Type`: 0 traffic, 1 transcode, 2 top speed codec, 3 co-anchoring; the deduction queue.
    pub kind: i64,
    /// `Total`, in the API's units (bytes, minutes, hours).
    pub total: i64,
    /// `Used`, same units; `Left` is `total - used`.
    pub used: i64,
    /// `Status` (see [`status`]).
    pub status: i64,
    /// `BuyTime`, as an offset from the origin (negative: before it).
    pub bought: Duration,
    /// `ExpireTime`, as an offset from the origin; `None`: never expires.
    pub expires: Option<Duration>,
    /// `WillRenew`, raw.
    pub will_renew: Value,
    /// `RenewalResult`, raw.
    pub renewal_result: Value,
}

impl Package {
    /// A package with `used` of `total` used, status unused (or in use when `used > 0`), bought
    /// and expiring at these offsets, not renewing (`WillRenew` and `RenewalResult` 0).
    pub fn new(
        id: &str,
        kind: i64,
        (total, used): (i64, i64),
        bought: Duration,
        expires: Option<Duration>,
    ) -> Self {
        Package {
            id: id.to_owned(),
            kind,
            total,
            used,
            status: if used > 0 {
                status::IN_USE
            } else {
                status::UNUSED
            },
            bought,
            expires,
            will_renew: json!(0),
            renewal_result: json!(0),
        }
    }

    /// `Left`.
    pub fn left(&self) -> i64 {
        self.total - self.used
    }

    /// Whether it expires at or before `t`.
    fn expired_at(&self, t: Duration) -> bool {
        self.expires.is_some_and(|e| e <= t)
    }
}

/// Tencent's deduction order: earlier `ExpireTime` (none last), then earlier `BuyTime`, then the
/// smaller `Id` (numerically when both parse as numbers).
pub fn deduction_order(a: &Package, b: &Package) -> std::cmp::Ordering {
    let expiry = |p: &Package| (p.expires.is_none(), p.expires);
    expiry(a)
        .cmp(&expiry(b))
        .then(a.bought.cmp(&b.bought))
        .then_with(|| match (a.id.parse::<u64>(), b.id.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.id.cmp(&b.id),
        })
}

/// One bill as issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bill {
    /// The day whose usage it deducts (day 0 holds the origin).
    pub usage_day: i64,
    /// When it was issued, as an offset from the origin (on day `usage_day + 1`).
    pub at: Duration,
}

/// One account's packages, usage and daily bills (see the [module](self) for the rules).
#[derive(Debug, Clone)]
pub struct Billing {
    origin: OffsetDateTime,
    day: Duration,
    /// Time of day (Beijing) at the origin, as an offset into day 0, in `[0, day)`.
    clock_at_origin: Duration,
    seed: u64,
    monthly: bool,
    packages: Vec<Package>,
    /// Steady usage per day, per `Type` (index 0..=3).
    daily_usage: [i64; 4],
    /// Extra usage: (`Type`, day, amount).
    extra_usage: Vec<(i64, i64, i64)>,
    /// The next day whose usage is not billed yet.
    next_usage_day: i64,
    /// Per `Type`: usage billed so far, and what of it no package covered.
    billed: [i64; 4],
    pay_as_you_go: [i64; 4],
    bills: Vec<Bill>,
}

/// Hours in a day, as the bill hour's unit.
const HOURS: f64 = 24.0;

impl Billing {
    /// An account with no packages and no usage. `origin` is the wall-clock instant of offset 0;
    /// `day` the length of a day (clamped to at least 1 ms); `beijing_hour_at_origin` the Beijing
    /// time of day at the origin, in hours (`[0, 24)`; for real days, [`Self::beijing_hour_of`]);
    /// `seed` draws the bill hours. The first bill is the one of the day before the origin's,
    /// when its bill hour is still ahead.
    pub fn new(
        origin: OffsetDateTime,
        day: std::time::Duration,
        beijing_hour_at_origin: f64,
        seed: u64,
    ) -> Self {
        let day = Duration::try_from(day)
            .unwrap_or(Duration::MAX)
            .max(Duration::milliseconds(1));
        let hour = beijing_hour_at_origin.rem_euclid(HOURS);
        let mut billing = Billing {
            origin,
            day,
            clock_at_origin: day * (hour / HOURS),
            seed,
            monthly: false,
            packages: Vec::new(),
            daily_usage: [0; 4],
            extra_usage: Vec::new(),
            next_usage_day: -1,
            billed: [0; 4],
            pay_as_you_go: [0; 4],
            bills: Vec::new(),
        };
        if billing.bill_at(-1) < Duration::ZERO {
            billing.next_usage_day = 0;
        }
        billing
    }

    /// The Beijing time of day of `t`, in hours: the `beijing_hour_at_origin` of real days.
    pub fn beijing_hour_of(t: OffsetDateTime) -> f64 {
        let t = t.to_offset(offset!(+8));
        f64::from(t.hour()) + f64::from(t.minute()) / 60.0 + f64::from(t.second()) / 3600.0
    }

    /// Puts the account on monthly settlement: its packages show frozen and take nothing.
    pub fn set_monthly_settlement(&mut self, monthly: bool) {
        self.monthly = monthly;
        self.refresh_statuses(Duration::ZERO);
    }

    /// Adds a package.
    pub fn add_package(&mut self, package: Package) {
        self.packages.push(package);
        self.refresh_statuses(Duration::ZERO);
    }

    /// Sets the steady usage of a `Type` (0..=3), per day; others are ignored.
    pub fn set_daily_usage(&mut self, kind: i64, per_day: i64) {
        if let Some(u) = usize::try_from(kind)
            .ok()
            .and_then(|k| self.daily_usage.get_mut(k))
        {
            *u = per_day.max(0);
        }
    }

    /// Adds usage of a `Type` on `day` (on top of the steady usage). Usage of a day already
    /// billed is never billed.
    pub fn add_usage(&mut self, kind: i64, day: i64, amount: i64) {
        self.extra_usage.push((kind, day, amount.max(0)));
    }

    /// The wall-clock instant of offset 0.
    pub fn origin(&self) -> OffsetDateTime {
        self.origin
    }

    /// The length of a day.
    pub fn day(&self) -> Duration {
        self.day
    }

    /// The offset of the start (Beijing midnight) of `day`.
    pub fn day_start(&self, day: i64) -> Duration {
        self.day * (day as f64) - self.clock_at_origin
    }

    /// The day that holds offset `t`.
    pub fn day_of(&self, t: Duration) -> i64 {
        ((t + self.clock_at_origin).as_seconds_f64() / self.day.as_seconds_f64()).floor() as i64
    }

    /// The bill hour (Beijing time, in hours) of the bill issued on `day`: seeded, in
    /// `[2, 11)`, or 20.5 (a late bill) on about one day in eight.
    pub fn bill_hour(&self, day: i64) -> f64 {
        let draw = mix(self.seed ^ (day as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if draw % 8 == 0 {
            20.5
        } else {
            2.0 + 9.0 * ((draw >> 11) as f64 / (1u64 << 53) as f64)
        }
    }

    /// When the bill for the usage of `usage_day` is issued (on the next day, at its bill hour).
    pub fn bill_at(&self, usage_day: i64) -> Duration {
        self.day_start(usage_day + 1) + self.day * (self.bill_hour(usage_day + 1) / HOURS)
    }

    /// The usage of a `Type` on `day`.
    pub fn usage_of_day(&self, kind: i64, day: i64) -> i64 {
        let steady = usize::try_from(kind)
            .ok()
            .and_then(|k| self.daily_usage.get(k))
            .copied()
            .unwrap_or(0);
        steady
            + self
                .extra_usage
                .iter()
                .filter(|(k, d, _)| *k == kind && *d == day)
                .map(|(_, _, a)| a)
                .sum::<i64>()
    }

    /// Usage of a `Type` accrued by `t` but not billed yet (whole days not yet billed, plus the
    /// steady usage of the current day so far, pro rata).
    pub fn unbilled(&self, kind: i64, t: Duration) -> i64 {
        let today = self.day_of(t);
        let whole: i64 = (self.next_usage_day..today)
            .map(|d| self.usage_of_day(kind, d))
            .sum();
        let fraction = (t - self.day_start(today)).as_seconds_f64() / self.day.as_seconds_f64();
        whole + (self.usage_of_day(kind, today) as f64 * fraction).floor() as i64
    }

    /// Issues every bill due at or before `now` (in order), then marks packages expired by `now`;
    /// the bills issued.
    pub fn bill_until(&mut self, now: Duration) -> Vec<Bill> {
        let mut issued = Vec::new();
        loop {
            let usage_day = self.next_usage_day;
            let at = self.bill_at(usage_day);
            if at > now {
                break;
            }
            self.issue(usage_day, at);
            self.next_usage_day += 1;
            issued.push(Bill { usage_day, at });
        }
        self.refresh_statuses(now);
        self.bills.extend(&issued);
        issued
    }

    /// [`Self::bill_until`] at `elapsed` after the origin.
    pub fn advance(&mut self, elapsed: std::time::Duration) -> Vec<Bill> {
        self.bill_until(Duration::try_from(elapsed).unwrap_or(Duration::MAX))
    }

    /// Deducts the usage of `usage_day`, billed at `at`.
    fn issue(&mut self, usage_day: i64, at: Duration) {
        self.refresh_statuses(at);
        let mut order: Vec<usize> = (0..self.packages.len()).collect();
        order.sort_by(
            |&a, &b| match (self.packages.get(a), self.packages.get(b)) {
                (Some(a), Some(b)) => deduction_order(a, b),
                _ => std::cmp::Ordering::Equal,
            },
        );
        for kind in 0..4i64 {
            let usage = self.usage_of_day(kind, usage_day);
            let mut due = usage;
            for &i in &order {
                let day_of_purchase = self.packages.get(i).map(|p| self.day_of(p.bought));
                let Some(p) = self.packages.get_mut(i) else {
                    continue;
                };
                let usable = p.kind == kind
                    && matches!(p.status, status::UNUSED | status::IN_USE)
                    && p.left() > 0
                    && !p.expired_at(at)
                    && day_of_purchase.is_some_and(|d| d <= usage_day);
                if !usable || due == 0 {
                    continue;
                }
                let take = due.min(p.left());
                p.used += take;
                due -= take;
                p.status = if p.left() == 0 {
                    status::EXHAUSTED
                } else {
                    status::IN_USE
                };
            }
            if let Ok(k) = usize::try_from(kind) {
                if let Some(b) = self.billed.get_mut(k) {
                    *b += usage;
                }
                if let Some(p) = self.pay_as_you_go.get_mut(k) {
                    *p += due;
                }
            }
        }
    }

    /// Expired (by `now`) and frozen statuses.
    fn refresh_statuses(&mut self, now: Duration) {
        for p in &mut self.packages {
            if matches!(p.status, status::UNUSED | status::IN_USE | status::FROZEN)
                && p.expired_at(now)
            {
                p.status = status::EXPIRED;
            } else if self.monthly && matches!(p.status, status::UNUSED | status::IN_USE) {
                p.status = status::FROZEN;
            }
        }
    }

    /// The packages, in the order they were added.
    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    /// The bills issued so far, oldest first.
    pub fn bills(&self) -> &[Bill] {
        &self.bills
    }

    /// Usage of a `Type` billed so far.
    pub fn billed(&self, kind: i64) -> i64 {
        usize::try_from(kind)
            .ok()
            .and_then(|k| self.billed.get(k))
            .copied()
            .unwrap_or(0)
    }

    /// Usage of a `Type` that no package covered: billed pay-as-you-go (monthly settlement:
    /// all of it).
    pub fn pay_as_you_go(&self, kind: i64) -> i64 {
        usize::try_from(kind)
            .ok()
            .and_then(|k| self.pay_as_you_go.get(k))
            .copied()
            .unwrap_or(0)
    }

    /// The packages as the API lists them for query `query_type` (0: Type 0; 1: Types 1 and 2;
    /// 2: Type 3), times in Beijing time relative to the origin.
    pub fn list(&self, query_type: u8) -> Vec<Value> {
        self.packages
            .iter()
            .filter(|p| query_of(p.kind) == Some(query_type))
            .map(|p| self.to_json(p))
            .collect()
    }

    fn to_json(&self, p: &Package) -> Value {
        let at = |offset: Duration| Value::String(beijing_time(self.origin, offset));
        json!({
            "Id": p.id,
            "Type": p.kind,
            "Status": p.status,
            "Total": p.total,
            "Used": p.used,
            "Left": p.left(),
            "BuyTime": at(p.bought),
            "ExpireTime": p.expires.map_or(Value::Null, at),
            "WillRenew": p.will_renew,
            "RenewalResult": p.renewal_result,
        })
    }
}

/// The query (`PackageType` of the request) that lists packages of this `Type`.
pub fn query_of(kind: i64) -> Option<u8> {
    match kind {
        0 => Some(0),
        1 | 2 => Some(1),
        3 => Some(2),
        _ => None,
    }
}

/// `origin` shifted by `offset`, in Beijing time (UTC+8), as `YYYY-MM-DD HH:MM:SS`.
pub(crate) fn beijing_time(origin: OffsetDateTime, offset: Duration) -> String {
    let origin = origin.to_offset(offset!(+8));
    let t = origin.checked_add(offset).unwrap_or(origin);
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

/// SplitMix64's finaliser: a well-spread 64-bit hash of `x`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
