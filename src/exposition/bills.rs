//! The daily bills this exporter has seen itself: increases of a pair's `Used` between two
//! successive successful polls, per package `Type`, the last [`MAX_BILLS`] of each.
//!
//! Tencent deducts one day's usage the next day, when the daily bill is issued (CSS "Prepaid
//! Resource Packages", document 267/52220): `Used` stays flat for about a day, then rises by a
//! whole day's usage at once. So a rise between two polls is a bill (or several, when polls
//! failed in between). The status page shows them and the runway they imply; the alerts do not
//! use them (Prometheus has the longer history).
//!
//! A rise is counted per package id, never for the pair's sum alone: a package that leaves the
//! list takes its `Used` out of the sum without any bill (it must not read as a negative bill,
//! nor hide a real one); a package that appears counts with its whole `Used` (what a bill took
//! from it since it was bought, normally 0); a package whose `Used` is missing in one poll keeps
//! its last known value. Failed polls change nothing: the next success compares with the last
//! success. Memory is bounded: the last list's `Used` per package and [`MAX_BILLS`] bills per
//! `Type`.

use std::collections::{HashMap, VecDeque};

use crate::domain::{Package, PackageKind};

/// Bills kept per (pair, package `Type`): the oldest is dropped when a newer one comes.
pub const MAX_BILLS: usize = 8;

/// One bill as this exporter saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bill {
    /// Unix seconds of the successful poll that first showed it (the bill itself was issued
    /// between that poll and the success before it).
    pub seen_unix: f64,
    /// What it took from the packages of its `Type`, in the base unit (bytes, or seconds).
    pub amount: u64,
}

/// A pair's bill history: see the module doc. `Default` is a pair never polled successfully.
#[derive(Debug, Clone, Default)]
pub struct BillHistory {
    /// `Used` by (`Type`, id) as of the last successful poll (`None`: listed, `Used` unknown);
    /// `None` before the first success.
    last_used: Option<HashMap<(PackageKind, String), Option<u64>>>,
    /// The last bills of each `Type`, oldest first.
    bills: Vec<(PackageKind, VecDeque<Bill>)>,
}

impl BillHistory {
    /// Takes one successful poll's complete list, seen at `seen_unix`: records a bill for each
    /// `Type` whose packages' `Used` rose since the previous success (nothing on the first).
    pub fn observe(&mut self, packages: &[Package], seen_unix: f64) {
        let previous = self.last_used.take();
        let mut current: HashMap<(PackageKind, String), Option<u64>> =
            HashMap::with_capacity(packages.len());
        let mut rises: Vec<(PackageKind, u64)> = Vec::new();
        for p in packages {
            let key = (p.kind, p.id.clone());
            if current.contains_key(&key) {
                continue; // a repeated id: its first entry counts, as on /metrics
            }
            let before = previous.as_ref().map(|m| m.get(&key).copied());
            let used = p.used.or(before.flatten().flatten());
            let rise = match (before, used) {
                // A package already listed: what its Used rose by (never negative).
                (Some(Some(Some(old))), Some(new)) => new.saturating_sub(old),
                // Newly listed: whatever was already taken from it.
                (Some(None), Some(new)) => new,
                // First success, or Used unknown before or now: no baseline.
                _ => 0,
            };
            if rise > 0 {
                match rises.iter_mut().find(|(k, _)| *k == p.kind) {
                    Some((_, sum)) => *sum = sum.saturating_add(rise),
                    None => rises.push((p.kind, rise)),
                }
            }
            current.insert(key, used);
        }
        for (kind, amount) in rises {
            if !self.bills.iter().any(|(k, _)| *k == kind) {
                self.bills.push((kind, VecDeque::new()));
            }
            if let Some((_, bills)) = self.bills.iter_mut().find(|(k, _)| *k == kind) {
                bills.push_back(Bill { seen_unix, amount });
                while bills.len() > MAX_BILLS {
                    bills.pop_front();
                }
            }
        }
        self.last_used = Some(current);
    }

    /// The bills seen for packages of `kind`, oldest first (at most [`MAX_BILLS`]).
    pub fn bills(&self, kind: PackageKind) -> Vec<Bill> {
        self.bills
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, b)| b.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// The average amount billed per day (base unit per 86 400 s) implied by `bills` (oldest
/// first): what the bills after the first took, over the time from the first to the last.
/// `None` with fewer than two bills or when they were seen at the same time.
pub fn daily_amount(bills: &[Bill]) -> Option<f64> {
    let (first, last) = (bills.first()?, bills.last()?);
    let span = last.seen_unix - first.seen_unix;
    if bills.len() < 2 || span <= 0.0 {
        return None;
    }
    let taken: f64 = bills.iter().skip(1).map(|b| b.amount as f64).sum();
    Some(taken / span * 86_400.0)
}

#[cfg(test)]
mod tests;
