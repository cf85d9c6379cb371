//! Tencent's deduction order: which usable package a daily bill draws from first, and how much
//! usable quota stands ahead of each package in that queue.
//!
//! Source: Tencent Cloud CSS "Prepaid Resource Packages" (document 267/52220; the same rules in
//! the MPS resource-pack document 1041/48810): several packages of one type are deducted in order
//! of expiry, the one that expires first goes first. This module owns that order and nothing
//! else; it is a pure function of one poll's list and the poll's time. `metrics` turns it into
//! `tencent_live_package_usable_ahead_{bytes,seconds}`, the status page shows the queue with it.
//!
//! - A package is *usable* when its status is unused or in use, its `Left` is known and above 0,
//!   and its `ExpireTime` is after the poll (a package with no `ExpireTime` counts as not
//!   expired). Nothing else is deducted from: expired, frozen, exhausted, refunded, unknown
//!   statuses and `Left` 0 get no place in a queue and count for nobody.
//! - One queue per package `Type` (the package's own kind): transcode and top-speed codec
//!   packages, both listed by the transcode query, are separate queues.
//! - Order: earlier `ExpireTime` first (a package without one after every dated one); equal
//!   `ExpireTime`: earlier `BuyTime` (none after any), then the smaller `Id`: numerically when both
//!   parse as integers, as strings when neither does. Comparing a numeric with a non-numeric
//!   `Id` "as strings" would not be a total order (`9 < 10` numerically, `10 < 1a < 9` as
//!   strings), so a numeric `Id` goes before a non-numeric one; numerically equal spellings (`07`,
//!   `7`) are then ordered as strings, so two distinct packages are never tied.
//! - A package id listed twice (for one `Type`) is taken once, at its first entry: the encoder
//!   exports one series per id, and the poller refuses such lists anyway.

use std::cmp::Ordering;
use std::collections::HashSet;

use crate::domain::{Package, PackageKind, Status};

/// Whether Tencent can deduct from `p` at `now_unix` (Unix seconds of the poll): status unused or
/// in use, `Left` known and above 0, and `ExpireTime` absent or after `now_unix`.
pub fn is_usable(p: &Package, now_unix: i64) -> bool {
    matches!(p.status, Status::Unused | Status::InUse)
        && p.remaining.is_some_and(|left| left > 0)
        && p.expires_at.is_none_or(|e| e > now_unix)
}

/// Tencent's deduction order between two packages of one queue: `Less` when `a` is deducted
/// before `b`. A total order (see the module doc for the `Id` rule); `Equal` only for the same
/// expiry, purchase time and `Id` string.
pub fn deduction_order(a: &Package, b: &Package) -> Ordering {
    /// `None` (not given) after every given time.
    fn time(t: Option<i64>) -> (bool, i64) {
        (t.is_none(), t.unwrap_or(0))
    }
    time(a.expires_at)
        .cmp(&time(b.expires_at))
        .then_with(|| time(a.purchased_at).cmp(&time(b.purchased_at)))
        .then_with(|| id_order(&a.id, &b.id))
}

/// Smaller `Id` first: numerically when both parse as integers; numeric before non-numeric;
/// as strings otherwise, and as strings between numerically equal spellings.
fn id_order(a: &str, b: &str) -> Ordering {
    let key = |s: &str| s.parse::<i128>().ok();
    match (key(a), key(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| a.cmp(b))
}

/// One deduction queue: the usable packages of one `Type` in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// The packages' own `Type`.
    pub kind: PackageKind,
    /// Indices into the list, in deduction order: the first is the one bills draw from now.
    pub order: Vec<usize>,
}

/// The deduction queues of one poll's list at `now_unix` (the poll's time, Unix seconds), one per
/// package `Type` that has a usable package, in order of the `Type`'s first appearance in the
/// list. Packages that are not usable (and later entries of a repeated id) are in no queue.
pub fn queues(packages: &[Package], now_unix: i64) -> Vec<Queue> {
    let mut seen: HashSet<(PackageKind, &str)> = HashSet::new();
    let mut out: Vec<Queue> = Vec::new();
    for (i, p) in packages.iter().enumerate() {
        if !seen.insert((p.kind, p.id.as_str())) || !is_usable(p, now_unix) {
            continue;
        }
        match out.iter_mut().find(|q| q.kind == p.kind) {
            Some(q) => q.order.push(i),
            None => out.push(Queue {
                kind: p.kind,
                order: vec![i],
            }),
        }
    }
    for q in &mut out {
        q.order
            .sort_by(|&a, &b| match (packages.get(a), packages.get(b)) {
                (Some(a), Some(b)) => deduction_order(a, b),
                _ => Ordering::Equal,
            });
    }
    out
}

/// For each entry of `packages` (same index): `Some(ahead)` for a usable package, the summed
/// `Left` (base unit) of the usable packages of the same `Type` that Tencent deducts before it;
/// `None` for a package that is not usable at `now_unix` (the poll's time, Unix seconds). Sums
/// saturate rather than overflow (each `Left` is below 2^53, so only an absurd list could reach
/// `u64::MAX`).
pub fn usable_ahead(packages: &[Package], now_unix: i64) -> Vec<Option<u64>> {
    let mut out = vec![None; packages.len()];
    for q in queues(packages, now_unix) {
        let mut ahead: u64 = 0;
        for i in q.order {
            let left = packages.get(i).and_then(|p| p.remaining).unwrap_or(0);
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(ahead);
            }
            ahead = ahead.saturating_add(left);
        }
    }
    out
}

#[cfg(test)]
mod tests;
