//! Unit tests of the bill history.

use super::*;
use crate::domain::{Status, Unit};

const T: PackageKind = PackageKind::Traffic;

fn pkg(id: &str, kind: PackageKind, used: Option<u64>) -> Package {
    Package {
        id: id.into(),
        kind,
        status: Status::InUse,
        unit: Unit::Bytes,
        quota: Some(1_000),
        used,
        remaining: used.map(|u| 1_000 - u),
        expires_at: None,
        purchased_at: None,
        auto_renew: None,
        renewal_result: None,
    }
}

fn amounts(h: &BillHistory, kind: PackageKind) -> Vec<u64> {
    h.bills(kind).iter().map(|b| b.amount).collect()
}

#[test]
fn a_rise_of_used_between_two_successes_is_a_bill_and_flat_polls_are_none() {
    let mut h = BillHistory::default();
    h.observe(&[pkg("a", T, Some(100))], 0.0);
    assert!(
        h.bills(T).is_empty(),
        "the first success is only a baseline"
    );
    h.observe(&[pkg("a", T, Some(100))], 60.0);
    h.observe(&[pkg("a", T, Some(250))], 120.0);
    h.observe(&[pkg("a", T, Some(250))], 180.0);
    assert_eq!(
        h.bills(T),
        [Bill {
            seen_unix: 120.0,
            amount: 150
        }]
    );
}

#[test]
fn a_package_leaving_the_list_is_no_negative_bill_nor_hides_a_real_one() {
    let mut h = BillHistory::default();
    h.observe(&[pkg("old", T, Some(1_000)), pkg("new", T, Some(0))], 0.0);
    // The exhausted package drops out while the next one is billed 30: the sum fell by 970.
    h.observe(&[pkg("new", T, Some(30))], 60.0);
    assert_eq!(amounts(&h, T), [30]);
    // Only a departure: no bill at all.
    h.observe(&[], 120.0);
    assert_eq!(amounts(&h, T), [30]);
}

#[test]
fn a_new_package_counts_what_was_already_taken_from_it() {
    let mut h = BillHistory::default();
    h.observe(&[pkg("a", T, Some(10))], 0.0);
    h.observe(&[pkg("a", T, Some(10)), pkg("bought", T, Some(0))], 60.0);
    assert!(h.bills(T).is_empty(), "a fresh package is no bill");
    h.observe(
        &[
            pkg("a", T, Some(15)),
            pkg("bought", T, Some(0)),
            pkg("c", T, Some(7)),
        ],
        120.0,
    );
    assert_eq!(amounts(&h, T), [12]);
}

#[test]
fn failed_polls_and_an_unknown_used_keep_the_baseline() {
    let mut h = BillHistory::default();
    h.observe(&[pkg("a", T, Some(10))], 0.0);
    // A poll that leaves Used out (invalid field) is no bill, and the next is measured from 10.
    h.observe(&[pkg("a", T, None)], 60.0);
    h.observe(&[pkg("a", T, Some(40))], 120.0);
    assert_eq!(amounts(&h, T), [30]);
    // A used that went down (corrected by Tencent) is no bill either.
    h.observe(&[pkg("a", T, Some(35))], 180.0);
    assert_eq!(amounts(&h, T), [30]);
}

#[test]
fn types_are_billed_separately_and_the_history_is_bounded() {
    let s = PackageKind::TopSpeedCodec;
    let mut h = BillHistory::default();
    for day in 0..20u64 {
        h.observe(
            &[
                pkg("t", PackageKind::Transcode, Some(day * 2)),
                pkg("s", s, Some(day * 3)),
            ],
            day as f64 * 86_400.0,
        );
    }
    assert_eq!(h.bills(s).len(), MAX_BILLS);
    assert_eq!(amounts(&h, s), [3; MAX_BILLS]);
    assert_eq!(amounts(&h, PackageKind::Transcode), [2; MAX_BILLS]);
    assert_eq!(
        h.bills(s).last().map(|b| b.seen_unix),
        Some(19.0 * 86_400.0)
    );
    assert!(h.bills(T).is_empty());
}

#[test]
fn the_daily_amount_is_what_the_later_bills_took_over_their_span() {
    let bill = |day: f64, amount| Bill {
        seen_unix: day * 86_400.0,
        amount,
    };
    assert_eq!(daily_amount(&[]), None);
    assert_eq!(daily_amount(&[bill(1.0, 5)]), None);
    assert_eq!(daily_amount(&[bill(1.0, 5), bill(1.0, 5)]), None);
    // Bills of 100 a day; one of them late, then two days in one (polls failed).
    let bills = [
        bill(0.0, 999),
        bill(1.0, 100),
        bill(2.5, 100),
        bill(4.0, 200),
    ];
    assert_eq!(daily_amount(&bills), Some(100.0));
}
