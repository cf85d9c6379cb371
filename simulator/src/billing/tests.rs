use super::*;
use proptest::prelude::*;
use time::macros::datetime;

const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

/// An account whose origin is Beijing midnight of day 0.
fn account(seed: u64) -> Billing {
    Billing::new(datetime!(2026-03-02 00:00 +8), DAY, 0.0, seed)
}

fn days(d: f64) -> Duration {
    Duration::seconds_f64(d * 86_400.0)
}

fn used(b: &Billing, id: &str) -> (i64, i64) {
    let p = b.packages().iter().find(|p| p.id == id).expect("package");
    (p.used, p.status)
}

#[test]
fn used_is_a_staircase_flat_between_bills_one_step_per_bill() {
    let mut b = account(1);
    b.add_package(Package::new(
        "1",
        0,
        (1_000, 0),
        days(-30.0),
        Some(days(300.0)),
    ));
    b.set_daily_usage(0, 10);
    let mut steps = 0;
    let mut last = 0;
    // Every half hour over six days.
    for half_hour in 0..(6 * 48) {
        let t = Duration::minutes(30 * half_hour);
        let issued = b.bill_until(t);
        let (now, _) = used(&b, "1");
        assert_eq!(now - last, 10 * issued.len() as i64, "at {t}: {issued:?}");
        steps += usize::from(now != last);
        last = now;
    }
    // Bills for days -1..=4 (the day -1 bill is issued on day 0, after the origin at midnight).
    assert_eq!(b.bills().len(), 6);
    assert_eq!(steps, 6, "one step per bill, none between");
    for bill in b.bills() {
        let hour = (bill.at - b.day_start(bill.usage_day + 1)).as_seconds_f64() / 3_600.0;
        assert!((2.0..11.0).contains(&hour) || hour == 20.5, "{bill:?}");
    }
}

#[test]
fn usage_accrues_continuously_until_its_bill() {
    let mut b = account(1);
    b.set_daily_usage(0, 2_400);
    b.bill_until(Duration::ZERO);
    assert_eq!(
        b.unbilled(0, Duration::ZERO),
        2_400,
        "day -1, billed on day 0"
    );
    assert_eq!(b.unbilled(0, Duration::hours(1)), 2_500);
    let after_bill = b.bill_at(-1);
    b.bill_until(after_bill);
    assert_eq!(
        b.unbilled(0, after_bill),
        (2_400.0 * b.bill_hour(0) / 24.0) as i64
    );
}

#[test]
fn packages_are_drawn_in_expiry_order_and_hand_over_inside_one_bill() {
    let mut b = account(2);
    // Added out of order; A expires first, then B, then C.
    b.add_package(Package::new(
        "C",
        0,
        (100, 0),
        days(-40.0),
        Some(days(30.0)),
    ));
    b.add_package(Package::new(
        "B",
        0,
        (100, 0),
        days(-50.0),
        Some(days(20.0)),
    ));
    b.add_package(Package::new(
        "A",
        0,
        (100, 85),
        days(-60.0),
        Some(days(10.0)),
    ));
    b.set_daily_usage(0, 10);
    b.bill_until(b.bill_at(-1));
    assert_eq!(used(&b, "A"), (95, status::IN_USE));
    assert_eq!(used(&b, "B"), (0, status::UNUSED));
    // The bill for day 0 takes A's last 5 and hands over to B inside the bill.
    b.bill_until(b.bill_at(0));
    assert_eq!(used(&b, "A"), (100, status::EXHAUSTED));
    assert_eq!(used(&b, "B"), (5, status::IN_USE));
    assert_eq!(used(&b, "C"), (0, status::UNUSED));
    b.bill_until(b.bill_at(10));
    assert_eq!(used(&b, "B"), (100, status::EXHAUSTED));
    assert_eq!(
        used(&b, "C"),
        (5, status::IN_USE),
        "12 bills: 15 from A, 100 from B"
    );
    assert_eq!(b.pay_as_you_go(0), 0);
}

#[test]
fn ties_on_expiry_go_by_buy_time_then_numeric_id() {
    let p = |id: &str, bought: f64| Package::new(id, 0, (1, 0), days(bought), Some(days(9.0)));
    let mut list = [p("10", -5.0), p("9", -5.0), p("1", -4.0), p("x", -6.0)];
    list.sort_by(deduction_order);
    let ids: Vec<&str> = list.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["x", "9", "10", "1"]);
    let never = Package::new("0", 0, (1, 0), days(-9.0), None);
    assert_eq!(
        deduction_order(&never, &p("5", 0.0)),
        std::cmp::Ordering::Greater
    );
}

#[test]
fn a_package_bought_today_does_not_cover_yesterday() {
    let mut b = account(3);
    b.set_daily_usage(0, 10);
    // Bought on day 1 at 01:00, before day 1's bill (for day 0's usage) at 02:00 or later.
    b.add_package(Package::new(
        "new",
        0,
        (1_000, 0),
        days(1.0) + Duration::hours(1),
        Some(days(366.0)),
    ));
    b.bill_until(b.bill_at(0));
    assert_eq!(used(&b, "new"), (0, status::UNUSED));
    assert_eq!(b.pay_as_you_go(0), 20, "days -1 and 0");
    b.bill_until(b.bill_at(1));
    assert_eq!(used(&b, "new"), (10, status::IN_USE), "day 1's usage");
    assert_eq!(b.pay_as_you_go(0), 20);
}

#[test]
fn a_late_bill_keeps_used_flat_until_20_30() {
    let b = account(4);
    let late_day = (0..200)
        .find(|&d| b.bill_hour(d) == 20.5)
        .expect("a late bill within 200 days");
    let late = (0..200).filter(|&d| b.bill_hour(d) == 20.5).count();
    assert!(
        (10..=45).contains(&late),
        "about one day in eight is late: {late}"
    );
    let mut b = b;
    b.add_package(Package::new(
        "1",
        0,
        (1_000_000, 0),
        days(-1.0),
        Some(days(400.0)),
    ));
    b.set_daily_usage(0, 10);
    let start = b.day_start(late_day);
    b.bill_until(start + Duration::hours(12));
    let before = used(&b, "1").0;
    assert_eq!(
        before,
        10 * (late_day),
        "days -1..late_day-2 billed, not late_day-1's"
    );
    b.bill_until(start + Duration::minutes(20 * 60 + 29));
    assert_eq!(used(&b, "1").0, before, "flat until 20:30");
    b.bill_until(start + Duration::minutes(20 * 60 + 30));
    assert_eq!(used(&b, "1").0, before + 10);
    // The next bill is back in the morning of the next day.
    assert!(b.bill_at(late_day) > start + Duration::hours(24 + 2));
}

#[test]
fn expired_packages_take_nothing_and_show_expired() {
    let mut b = account(5);
    b.add_package(Package::new(
        "old",
        0,
        (100, 50),
        days(-360.0),
        Some(days(2.0)),
    ));
    b.add_package(Package::new(
        "new",
        0,
        (100, 0),
        days(-10.0),
        Some(days(300.0)),
    ));
    b.set_daily_usage(0, 10);
    b.bill_until(b.bill_at(0));
    assert_eq!(used(&b, "old"), (70, status::IN_USE), "days -1 and 0");
    b.bill_until(days(6.0));
    assert_eq!(
        used(&b, "old"),
        (70, status::EXPIRED),
        "expired on day 2 with 30 left"
    );
    assert_eq!(used(&b, "new").0, 40);
    assert_eq!(b.pay_as_you_go(0), 0);
}

#[test]
fn frozen_packages_of_a_monthly_account_take_nothing() {
    let mut b = account(6);
    b.set_monthly_settlement(true);
    b.add_package(Package::new(
        "f1",
        0,
        (100, 40),
        days(-100.0),
        Some(days(3.0)),
    ));
    b.add_package(Package::new(
        "f2",
        1,
        (100, 0),
        days(-100.0),
        Some(days(300.0)),
    ));
    b.set_daily_usage(0, 10);
    b.set_daily_usage(1, 5);
    b.bill_until(days(2.5));
    assert_eq!(used(&b, "f1"), (40, status::FROZEN));
    assert_eq!(used(&b, "f2"), (0, status::FROZEN));
    b.bill_until(days(5.0));
    assert_eq!(
        used(&b, "f1"),
        (40, status::EXPIRED),
        "frozen quota expires unused"
    );
    assert_eq!(used(&b, "f2"), (0, status::FROZEN));
    assert_eq!(b.pay_as_you_go(0), b.billed(0));
    assert_eq!(b.billed(0), 10 * b.bills().len() as i64);
    let listed = b.list(1);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["Status"], 3);
}

#[test]
fn usage_no_package_covers_is_pay_as_you_go() {
    let mut b = account(7);
    b.add_package(Package::new(
        "1",
        2,
        (25, 0),
        days(-10.0),
        Some(days(300.0)),
    ));
    b.set_daily_usage(2, 10);
    b.bill_until(b.bill_at(0));
    assert_eq!((b.billed(2), b.pay_as_you_go(2)), (20, 0));
    b.bill_until(b.bill_at(1));
    assert_eq!(used(&b, "1"), (25, status::EXHAUSTED));
    assert_eq!((b.billed(2), b.pay_as_you_go(2)), (30, 5));
    b.bill_until(b.bill_at(2));
    assert_eq!(b.pay_as_you_go(2), 15);
    assert_eq!(b.pay_as_you_go(0), 0, "queues are separate");
}

#[test]
fn the_list_holds_the_api_fields_in_beijing_time() {
    let mut b = account(8);
    b.add_package(Package::new("7", 2, (100, 30), days(-1.0), Some(days(1.0))));
    let list = b.list(1);
    assert_eq!(list[0]["BuyTime"], "2026-03-01 00:00:00");
    assert_eq!(list[0]["ExpireTime"], "2026-03-03 00:00:00");
    assert_eq!(
        (list[0]["Left"].as_i64(), list[0]["Type"].as_i64()),
        (Some(70), Some(2))
    );
    assert!(b.list(0).is_empty() && b.list(2).is_empty());
}

#[test]
fn a_compressed_day_scales_every_time() {
    let mut b = Billing::new(
        datetime!(2026-03-02 00:00 UTC),
        std::time::Duration::from_secs(120),
        1.5,
        9,
    );
    assert_eq!(
        b.day_start(1),
        Duration::seconds(120) - Duration::seconds_f64(7.5)
    );
    b.add_package(Package::new(
        "1",
        0,
        (100, 0),
        days(-1.0),
        Some(Duration::seconds(600)),
    ));
    b.set_daily_usage(0, 1);
    let first = b.bill_at(-1);
    assert!(
        first > Duration::ZERO && first < Duration::seconds(60),
        "{first}"
    );
    assert_eq!(b.advance(std::time::Duration::from_secs(601)).len(), 5);
    assert_eq!(used(&b, "1"), (5, status::EXPIRED));
}

/// A package of the property test: (kind, total, used fraction, bought day, expiry day or none, id).
fn arb_package() -> impl Strategy<Value = (i64, i64, u8, i64, Option<i64>, u16)> {
    (
        0i64..2,
        0i64..500,
        0u8..=100,
        -5i64..6,
        proptest::option::of(-2i64..15),
        0u16..50,
    )
}

proptest! {
    /// Over arbitrary packages and usage, bill by bill: deducted + pay-as-you-go == billed;
    /// Used never decreases; Left + Used == Total; and a package is drawn only when every usable
    /// package of its Type ahead of it in deduction order is used up after the bill.
    #[test]
    fn every_bill_conserves_usage_and_follows_the_deduction_order(
        packages in proptest::collection::vec(arb_package(), 0..7),
        usage in proptest::collection::vec((0i64..2, -1i64..12, 0i64..300), 0..30),
        steady in (0i64..60, 0i64..60),
        monthly in proptest::bool::weighted(0.15),
        seed in any::<u64>(),
    ) {
        let mut b = account(seed);
        b.set_monthly_settlement(monthly);
        for (i, (kind, total, frac, bought, expires, id)) in packages.into_iter().enumerate() {
            let used = total * i64::from(frac) / 100;
            b.add_package(Package::new(&format!("{id}"), kind, (total, used), days(bought as f64) + Duration::minutes(i as i64), expires.map(|e| days(e as f64))));
        }
        for (kind, day, amount) in usage {
            b.add_usage(kind, day, amount);
        }
        b.set_daily_usage(0, steady.0);
        b.set_daily_usage(1, steady.1);
        let start: Vec<Package> = b.packages().to_vec();
        for usage_day in -1..12 {
            let before: Vec<Package> = b.packages().to_vec();
            let issued = b.bill_until(b.bill_at(usage_day));
            prop_assert_eq!(issued.len(), 1);
            let at = issued[0].at;
            let after = b.packages().to_vec();
            for (p, q) in before.iter().zip(&after) {
                prop_assert!(q.used >= p.used, "Used never decreases");
                prop_assert!(q.used <= q.total && q.used >= 0);
                if q.used > p.used {
                    prop_assert!(!monthly, "frozen packages take nothing");
                    prop_assert!(!p.expired_at(at) && b.day_of(p.bought) <= usage_day);
                    for (r, r_after) in before.iter().zip(&after) {
                        let usable = r.kind == p.kind && matches!(r.status, 0 | 1) && r.left() > 0
                            && !r.expired_at(at) && b.day_of(r.bought) <= usage_day;
                        if usable && deduction_order(r, p).is_lt() {
                            prop_assert_eq!(r_after.left(), 0, "{:?} drawn before {:?} was used up", p, r);
                        }
                    }
                }
            }
        }
        for kind in 0..2 {
            let deducted: i64 = b.packages().iter().zip(&start).filter(|(p, _)| p.kind == kind).map(|(p, s)| p.used - s.used).sum();
            let usage: i64 = (-1..12).map(|d| b.usage_of_day(kind, d)).sum();
            prop_assert_eq!(b.billed(kind), usage);
            prop_assert_eq!(deducted + b.pay_as_you_go(kind), usage);
        }
        for q in 0..2u8 {
            for p in b.list(q) {
                prop_assert_eq!(p["Left"].as_i64().unwrap() + p["Used"].as_i64().unwrap(), p["Total"].as_i64().unwrap());
            }
        }
    }
}
