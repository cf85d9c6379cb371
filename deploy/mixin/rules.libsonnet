// Recording rules: the pool view of each (account, package_type), built on how Tencent bills
// (one deduction a day, packages drawn down in expiry order). Their names are a contract with the
// dashboard and the status page. Levels: `package` = (account, package_type, package_id);
// `account_package_type` = (account, package_type). Each exists for `_bytes` (traffic) and
// `_seconds` (transcode, top_speed_codec, co_anchoring).
local lib = import 'lib.libsonnet';

{
  prometheusRules+:: {
    local c = $._config,
    local sel = c.exporterSelector,
    local P = lib.pkg(c),
    local A = lib.pair(c),
    local day = c.daySeconds,
    // The rate's window is part of the recording rules' names (rate7d): not a knob.
    local wd = 7,
    local window = lib.duration(wd * day),
    local hstep = lib.scaled(c, c.historyStep),

    local unitRules(u) = [
      {
        // Left of each usable package: unused or in use, quota left, not expired (a package
        // with no expiry sample counts as not expired).
        record: 'package:tencent_live_usable_remaining_%s:max' % u,
        expr: |||
          max by (%(P)s) (
              tencent_live_package_remaining_%(u)s{%(sel)s, status=~"unused|in_use"} > 0
            unless on (%(P)s)
              tencent_live_package_expiry_timestamp_seconds{%(sel)s} <= time()
          )
        ||| % { P: P, u: u, sel: sel },
      },
      {
        // The usable pool: 0 (not absent) when the pair has packages but none usable.
        record: 'account_package_type:tencent_live_usable_remaining_%s:sum' % u,
        expr: |||
          sum by (%(A)s) (package:tencent_live_usable_remaining_%(u)s:max)
          or
          0 * count by (%(A)s) (tencent_live_package_remaining_%(u)s{%(sel)s})
        ||| % { A: A, u: u, sel: sel },
      },
      {
        // Used per package id, merged over status (a label that changes) and replicas.
        record: 'package:tencent_live_used_%s:max' % u,
        expr: 'max by (%(P)s) (tencent_live_package_used_%(u)s{%(sel)s})' % { P: P, u: u, sel: sel },
      },
      {
        // When the pair's history in the window starts (a Unix time, to the hour): the earliest
        // evaluation of the window at which any of its packages had a Used sample. Recorded once
        // so that the rate, its upper bound and the runway read it instead of each running the
        // window's subquery again.
        record: 'account_package_type:tencent_live_used_%s:history_start_timestamp%dd' % [u, wd],
        expr: 'min by (%(A)s) (min_over_time(timestamp(package:tencent_live_used_%(u)s:max)[%(w)s:%(hstep)s]))' % { A: A, u: u, w: window, hstep: hstep },
      },
      {
        // The time of the pair's last bill (a Unix time): the latest evaluation of the last 2
        // days (bills are about a day apart, a late one up to 1.7 days) at which a package's Used
        // had grown over the step before. Absent when no bill was seen in 2 days.
        record: 'account_package_type:tencent_live_used_%s:last_bill_timestamp2d' % u,
        expr: |||
          max by (%(A)s) (
            max_over_time(
              (
                  timestamp(package:tencent_live_used_%(u)s:max)
                and on (%(P)s)
                  (package:tencent_live_used_%(u)s:max > package:tencent_live_used_%(u)s:max offset %(hstep)s)
              )[%(lb)s:%(hstep)s]
            )
          )
        ||| % { A: A, P: P, u: u, hstep: hstep, lb: lib.duration(2 * day) },
      },
      {
        // What the bills took in the window. Used never decreases, so a package's increments over
        // the window are max - min; summed per pair they survive a package leaving the list (its
        // past samples stay in the window) and do not care when in the day the bills land.
        record: 'account_package_type:tencent_live_used_%s:increase%dd' % [u, wd],
        expr: |||
          sum by (%(A)s) (
              max by (%(P)s) (max_over_time(tencent_live_package_used_%(u)s{%(sel)s}[%(w)s]))
            - min by (%(P)s) (min_over_time(tencent_live_package_used_%(u)s{%(sel)s}[%(w)s]))
          )
        ||| % { A: A, P: P, u: u, sel: sel, w: window },
      },
      {
        // Rate of consumption per second: the window's increments divided by min(history + 1
        // day, window). With little history the window holds at most history/1d + 1 bills, so a
        // young Prometheus never over-estimates, yet has a rate after its first bill.
        record: 'account_package_type:tencent_live_used_%s:rate%dd' % [u, wd],
        expr: |||
          account_package_type:tencent_live_used_%(u)s:increase%(wd)dd
          / on (%(A)s)
          clamp_max(
              time() + %(day)s
            - account_package_type:tencent_live_used_%(u)s:history_start_timestamp%(wd)dd,
            %(wsec)s
          )
        ||| % { A: A, P: P, u: u, sel: sel, w: window, wd: wd, day: lib.num(day), wsec: lib.num(wd * day) },
      },
      {
        // The rate for the quota at risk, which must not under-estimate (a package used up in
        // time would read as at risk): the same increments divided by the history itself (at
        // least 1 day, at most the window), and only where it is a measurement: at least
        // atRiskMinHistory (with fewer bills the bill hours' jitter alone moves the estimate by
        // a quarter), or 0 over at least a day (nobody uses the pair: all of it is at risk).
        // Absent otherwise, so nothing is at risk in a young Prometheus.
        record: 'account_package_type:tencent_live_used_%s:rate%dd_upper' % [u, wd],
        expr: |||
          account_package_type:tencent_live_used_%(u)s:increase%(wd)dd
          / on (%(A)s)
          clamp(%(hist)s, %(day)s, %(wsec)s)
          and on (%(A)s)
          (
              %(hist)s >= %(minh)s
            or
              (%(hist)s >= %(day)s and on (%(A)s) account_package_type:tencent_live_used_%(u)s:rate%(wd)dd == 0)
          )
        ||| % {
          A: A, P: P, u: u, sel: sel, w: window, day: lib.num(day), wsec: lib.num(wd * day), wd: wd,
          minh: lib.num(c.atRiskMinHistory * day / 86400),
          hist: '(time() - account_package_type:tencent_live_used_%s:history_start_timestamp%dd)' % [u, wd],
        },
      },
      {
        // Of each usable package, what expires unused when the pair's use goes to the packages
        // in Tencent's deduction order (earliest expiry first): the package receives at most
        // rate (the upper one) x time to its expiry - the usable quota deducted before it (usable_ahead; 0
        // when the exporter does not expose it). Absent for a package with no expiry sample.
        // Right after a bill this is the estimate; until the next bill it grows by the day's
        // usage that is not billed yet (Left stays flat while the time to expiry shrinks).
        record: 'package:tencent_live_quota_at_risk_%s:rate%dd_raw' % [u, wd],
        expr: |||
          clamp_min(
              package:tencent_live_usable_remaining_%(u)s:max
            - on (%(P)s)
              clamp_min(
                  clamp_min(max by (%(P)s) (tencent_live_package_expiry_timestamp_seconds{%(sel)s}) - time(), 0)
                * on (%(A)s) group_left ()
                  account_package_type:tencent_live_used_%(u)s:rate%(wd)dd_upper
                - on (%(P)s)
                  (
                      max by (%(P)s) (tencent_live_package_usable_ahead_%(u)s{%(sel)s})
                    or
                      0 * package:tencent_live_usable_remaining_%(u)s:max
                  ),
                0
              ),
            0
          )
        ||| % { P: P, A: A, u: u, sel: sel, wd: wd },
      },
      {
        // The quota at risk as of the last bill: the least of the raw estimate over the last
        // 1.5 days (bills are about a day apart, the odd late one up to 1.5 days).
        record: 'package:tencent_live_quota_at_risk_%s:rate%dd' % [u, wd],
        expr: 'min_over_time(package:tencent_live_quota_at_risk_%s:rate%dd_raw[%s]) and package:tencent_live_quota_at_risk_%s:rate%dd_raw' % [u, wd, lib.scaled(c, c.atRiskSmoothing), u, wd],
      },
      {
        record: 'account_package_type:tencent_live_quota_at_risk_%s:sum' % u,
        expr: 'sum by (%(A)s) (package:tencent_live_quota_at_risk_%(u)s:rate%(wd)dd)' % { A: A, u: u, wd: wd },
      },
      {
        // Left of frozen packages that have not expired (monthly settlement freezes packages;
        // their validity keeps running). Absent when there is none.
        record: 'account_package_type:tencent_live_frozen_remaining_%s:sum' % u,
        expr: |||
          sum by (%(A)s) (
              max by (%(P)s) (tencent_live_package_remaining_%(u)s{%(sel)s, status="frozen"} > 0)
            unless on (%(P)s)
              tencent_live_package_expiry_timestamp_seconds{%(sel)s} <= time()
          )
        ||| % { P: P, A: A, u: u, sel: sel },
      },
      {
        // What the daily bills took in the last day (the dashboard's bars, the status page).
        record: 'account_package_type:tencent_live_used_%s:increase1d' % u,
        expr: |||
          sum by (%(A)s) (
              max by (%(P)s) (max_over_time(tencent_live_package_used_%(u)s{%(sel)s}[%(d)s]))
            - min by (%(P)s) (min_over_time(tencent_live_package_used_%(u)s{%(sel)s}[%(d)s]))
          )
        ||| % { A: A, P: P, u: u, sel: sel, d: lib.duration(day) },
      },
    ],

    local lastBill(u) = 'account_package_type:tencent_live_used_%s:last_bill_timestamp2d' % u,
    local firstSeen(u) = 'account_package_type:tencent_live_used_%s:history_start_timestamp%dd' % [u, wd],
    local lbs = lib.num(2 * day),

    local runwayOf(u) = |||
      (
        sum by (%(A)s) (
            package:tencent_live_usable_remaining_%(u)s:max
          - on (%(P)s) package:tencent_live_quota_at_risk_%(u)s:rate%(wd)dd
          or package:tencent_live_usable_remaining_%(u)s:max
        ) > 0
      )
      / on (%(A)s)
      (
          (account_package_type:tencent_live_used_%(u)s:rate%(wd)dd > 0)
        * on (%(A)s)
          (
              clamp_max(time() + %(day)s - %(first)s, %(wsec)s)
            / clamp_max(%(last)s + %(day)s - %(first)s, %(wsec)s)
            or on (%(A)s)
              0 * account_package_type:tencent_live_used_%(u)s:rate%(wd)dd + 1
          )
      )
      - on (%(A)s)
      (
          clamp_max(time() - %(last)s, %(lbs)s)
        or on (%(A)s)
          0 * account_package_type:tencent_live_used_%(u)s:rate%(wd)dd
      )
    ||| % { A: A, P: P, u: u, wd: wd, day: lib.num(day), wsec: lib.num(wd * day), first: firstSeen(u), last: lastBill(u), lbs: lbs },

    groups+: [
      {
        name: 'tencent-live-exporter.rules',
        rules: unitRules('bytes') + unitRules('seconds') + [
          {
            // Seconds until the usable-in-time quota of the pool (of each usable package, left -
            // at risk; all of it with no expiry sample) is used up at the rate, i.e. until
            // pay-as-you-go starts. Absent when nothing is used or the pool is empty. Counted
            // from the pair's last bill (usage accrues since then; none seen in 2 days: from
            // now), at the rate as of that bill (a young Prometheus's estimate, divided by its
            // history + 1 day, does not decay until the next bill), so it shrinks between bills
            // instead of growing (no "resolved" then "firing" again). At least 0.
            record: 'account_package_type:tencent_live_runway_seconds:rate%dd' % wd,
            expr: 'clamp_min(\n  (\n%s)\n  or\n  (\n%s),\n  0\n)\n' % [runwayOf('bytes'), runwayOf('seconds')],
          },
        ],
      },
    ],
  },
}
