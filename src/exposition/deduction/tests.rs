//! Unit and property tests of the deduction order.

use proptest::prelude::*;

use super::*;
use crate::domain::Unit;

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn pkg(id: &str, kind: PackageKind, status: Status, left: u64, expires: Option<i64>) -> Package {
    Package {
        id: id.into(),
        kind,
        status,
        unit: kind.unit().unwrap_or(Unit::Bytes),
        quota: Some(left + 10),
        used: Some(10),
        remaining: Some(left),
        expires_at: expires,
        purchased_at: Some(NOW - 100 * DAY),
        auto_renew: None,
        renewal_result: None,
    }
}

fn traffic(id: &str, left: u64, expires_in_days: i64) -> Package {
    pkg(
        id,
        PackageKind::Traffic,
        Status::Unused,
        left,
        Some(NOW + expires_in_days * DAY),
    )
}

/// The ids of the queue of `kind`, in deduction order.
fn order(list: &[Package], kind: PackageKind) -> Vec<&str> {
    queues(list, NOW)
        .into_iter()
        .find(|q| q.kind == kind)
        .map(|q| q.order.iter().map(|&i| list[i].id.as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn the_earliest_expiry_is_deducted_first_and_the_others_count_what_is_ahead() {
    let list = [
        traffic("late", 300, 30),
        traffic("soon", 100, 5),
        traffic("mid", 200, 10),
    ];
    assert_eq!(order(&list, PackageKind::Traffic), ["soon", "mid", "late"]);
    assert_eq!(usable_ahead(&list, NOW), [Some(300), Some(0), Some(100)]);
}

#[test]
fn equal_expiry_goes_by_buy_time_then_by_id_numerically() {
    let mut a = traffic("9", 1, 10);
    let mut b = traffic("10", 2, 10);
    let mut c = traffic("2", 4, 10);
    // BuyTime decides before the Id: "10" was bought first.
    a.purchased_at = Some(NOW - 5 * DAY);
    b.purchased_at = Some(NOW - 6 * DAY);
    c.purchased_at = Some(NOW - 5 * DAY);
    let list = [a, b, c];
    assert_eq!(order(&list, PackageKind::Traffic), ["10", "2", "9"]);
    assert_eq!(usable_ahead(&list, NOW), [Some(6), Some(0), Some(2)]);

    // Same BuyTime: 9 before 10 (numbers), not "10" before "9" (strings).
    let list = [traffic("10", 1, 10), traffic("9", 1, 10)];
    assert_eq!(order(&list, PackageKind::Traffic), ["9", "10"]);
    // A missing BuyTime goes after a given one.
    let mut undated = traffic("1", 1, 10);
    undated.purchased_at = None;
    let list = [undated, traffic("2", 1, 10)];
    assert_eq!(order(&list, PackageKind::Traffic), ["2", "1"]);
}

#[test]
fn ids_compare_as_strings_when_not_numbers_and_numbers_go_first() {
    let list = [
        traffic("pkg-b", 1, 10),
        traffic("pkg-a", 1, 10),
        traffic("10", 1, 10),
        traffic("007", 1, 10),
        traffic("7", 1, 10),
    ];
    assert_eq!(
        order(&list, PackageKind::Traffic),
        ["007", "7", "10", "pkg-a", "pkg-b"]
    );
}

#[test]
fn a_package_without_expire_time_goes_after_every_dated_one_and_is_not_expired() {
    let undated = pkg("0", PackageKind::Traffic, Status::InUse, 50, None);
    let list = [undated, traffic("1", 7, 300)];
    assert_eq!(order(&list, PackageKind::Traffic), ["1", "0"]);
    assert_eq!(usable_ahead(&list, NOW), [Some(7), Some(0)]);
}

#[test]
fn packages_that_cannot_be_deducted_get_no_sample_and_count_for_nobody() {
    let t = PackageKind::Traffic;
    let list = [
        pkg("expired", t, Status::Expired, 1_000, Some(NOW + DAY)),
        pkg("frozen", t, Status::Frozen, 2_000, Some(NOW + DAY)),
        pkg("exhausted", t, Status::Exhausted, 4_000, Some(NOW + DAY)),
        pkg("refunded", t, Status::Refunded, 8_000, Some(NOW + DAY)),
        pkg("unknown", t, Status::Unknown(9), 16_000, Some(NOW + DAY)),
        pkg("empty", t, Status::InUse, 0, Some(NOW + DAY)),
        // Past its ExpireTime though the API still says in use; and expiring right at the poll.
        pkg("past", t, Status::InUse, 32_000, Some(NOW - 1)),
        pkg("at-poll", t, Status::InUse, 64_000, Some(NOW)),
        pkg("usable", t, Status::Unused, 5, Some(NOW + 2 * DAY)),
    ];
    let mut no_left = pkg("no-left", t, Status::InUse, 1, Some(NOW + DAY));
    no_left.remaining = None;
    let list: Vec<Package> = list.into_iter().chain([no_left]).collect();
    let ahead = usable_ahead(&list, NOW);
    assert_eq!(ahead.iter().filter(|a| a.is_some()).count(), 1, "{ahead:?}");
    assert_eq!(ahead[8], Some(0), "nothing unusable counts ahead of it");
    assert_eq!(order(&list, t), ["usable"]);
}

#[test]
fn transcode_and_top_speed_codec_are_separate_queues() {
    let list = [
        pkg(
            "t1",
            PackageKind::Transcode,
            Status::InUse,
            600,
            Some(NOW + 9 * DAY),
        ),
        pkg(
            "s1",
            PackageKind::TopSpeedCodec,
            Status::InUse,
            60,
            Some(NOW + DAY),
        ),
        pkg(
            "t2",
            PackageKind::Transcode,
            Status::Unused,
            1200,
            Some(NOW + 20 * DAY),
        ),
        pkg(
            "s2",
            PackageKind::TopSpeedCodec,
            Status::Unused,
            120,
            Some(NOW + 2 * DAY),
        ),
    ];
    assert_eq!(
        usable_ahead(&list, NOW),
        [Some(0), Some(0), Some(600), Some(60)]
    );
    assert_eq!(queues(&list, NOW).len(), 2);
}

#[test]
fn a_repeated_id_is_taken_once() {
    let list = [traffic("1", 10, 5), traffic("1", 10, 5), traffic("2", 1, 9)];
    assert_eq!(usable_ahead(&list, NOW), [Some(0), None, Some(10)]);
}

fn any_status() -> impl Strategy<Value = Status> {
    prop_oneof![
        4 => Just(Status::InUse),
        4 => Just(Status::Unused),
        1 => Just(Status::Expired),
        1 => Just(Status::Frozen),
        1 => Just(Status::Exhausted),
        1 => Just(Status::Refunded),
    ]
}

fn any_kind() -> impl Strategy<Value = PackageKind> {
    prop_oneof![
        Just(PackageKind::Traffic),
        Just(PackageKind::Transcode),
        Just(PackageKind::TopSpeedCodec),
    ]
}

/// Lists of distinct ids (the poller refuses repeated ones), with ties in expiry and buy time
/// made likely, numeric and non-numeric ids, missing fields.
fn any_list() -> impl Strategy<Value = Vec<Package>> {
    proptest::collection::vec(
        (
            any_kind(),
            any_status(),
            proptest::option::weighted(0.9, 0..5u64),
            proptest::option::weighted(0.85, -2..4i64),
            proptest::option::weighted(0.9, 0..3i64),
            prop_oneof![Just(""), Just("x"), Just("0")],
        ),
        0..12,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(
                |(n, (kind, status, left, expires, bought, prefix))| Package {
                    id: format!("{prefix}{}", (n * 7919) % 23 + n * 100),
                    kind,
                    status,
                    unit: kind.unit().unwrap_or(Unit::Bytes),
                    quota: left.map(|l| l * 1000 + 5),
                    used: Some(5),
                    remaining: left.map(|l| l * 1000),
                    expires_at: expires.map(|d| NOW + d * DAY),
                    purchased_at: bought.map(|d| NOW - d * DAY),
                    auto_renew: None,
                    renewal_result: None,
                },
            )
            .collect()
    })
}

proptest! {
    /// Whatever the list: the first usable package of each queue has 0 ahead; of two usable
    /// packages of one queue exactly one is ahead of the other, and its ahead plus its own
    /// `Left` is the other's ahead; exactly the usable packages get a value, and an ahead is
    /// always a sum of usable packages' `Left`; the order of the list changes nothing.
    #[test]
    fn usable_ahead_is_the_queue_position_whatever_the_list(
        list in any_list(),
        shuffle in proptest::collection::vec(any::<proptest::sample::Index>(), 12),
    ) {
        let ahead = usable_ahead(&list, NOW);
        let usable_total: u64 = list
            .iter()
            .filter(|p| is_usable(p, NOW))
            .filter_map(|p| p.remaining)
            .sum();
        for (p, a) in list.iter().zip(&ahead) {
            prop_assert_eq!(a.is_some(), is_usable(p, NOW), "{:?}", p);
            if let Some(a) = a {
                prop_assert!(*a + p.remaining.unwrap_or(0) <= usable_total);
            }
        }
        for q in queues(&list, NOW) {
            prop_assert_eq!(ahead[q.order[0]], Some(0));
        }
        for (i, a) in list.iter().enumerate() {
            for (j, b) in list.iter().enumerate() {
                if i == j || a.kind != b.kind {
                    continue;
                }
                let (Some(x), Some(y)) = (ahead[i], ahead[j]) else { continue };
                let a_first = deduction_order(a, b) == Ordering::Less;
                let b_first = deduction_order(b, a) == Ordering::Less;
                prop_assert!(a_first != b_first, "exactly one first: {:?} {:?}", a, b);
                if a_first {
                    prop_assert!(x + a.remaining.unwrap_or(0) <= y);
                } else {
                    prop_assert!(y + b.remaining.unwrap_or(0) <= x);
                }
            }
        }
        // Consecutive in a queue: the next one's ahead is exactly this one's plus its Left.
        for q in queues(&list, NOW) {
            for w in q.order.windows(2) {
                prop_assert_eq!(
                    ahead[w[1]],
                    ahead[w[0]].map(|a| a + list[w[0]].remaining.unwrap_or(0))
                );
            }
        }
        // A permutation of the input changes no package's value.
        let mut permuted: Vec<(Package, Option<u64>)> =
            list.iter().cloned().zip(ahead.iter().copied()).collect();
        for (k, ix) in shuffle.iter().enumerate() {
            if !permuted.is_empty() {
                let a = k % permuted.len();
                let b = ix.index(permuted.len());
                permuted.swap(a, b);
            }
        }
        let (plist, expected): (Vec<Package>, Vec<Option<u64>>) = permuted.into_iter().unzip();
        prop_assert_eq!(usable_ahead(&plist, NOW), expected);
    }
}
