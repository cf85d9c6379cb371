#!/usr/bin/env python3
"""Writes alerts.test.yml: the billing timelines of issue 18 as promtool unit tests.

    python3 deploy/prometheus/billing_timelines.py > deploy/prometheus/alerts.test.yml

(deploy/mixin/generate.sh runs it; --check there fails when the file differs.) A small model of
Tencent's billing makes the input series: one bill a day at a bill hour, deducted from the usable
packages in expiry order (earliest first), the rest billed pay-as-you-go; each package's series
carry its status (unused, in_use, exhausted, expired, frozen) and usable_ahead as the exporter
computes it. Each scenario states what a user needs, checked hour by hour on the ALERTS series.
"""
import sys
STEP = 3600  # input interval, s (alerts.minute.test.yml uses 300 for its replaced exporter)
DAY = 86400
TB = 10**12
GB = 10**9

def bill_hours(days, hours=(20, 26, 19, 23, 27, 18, 22, 25, 21, 24), late=None, start=0):
    """Bill of day k at UTC hour k*24 + hours[k % n] (02:00-11:00 Beijing = 18:00-03:00 UTC);
    `late`: {k: hour} e.g. 12.5 (20:30 Beijing)."""
    out = []
    for k in range(start, days):
        h = (late or {}).get(k, hours[k % len(hours)])
        out.append(k * 24 + h)
    return out

class Pkg:
    def __init__(s, id, total, used=0, expiry_h=None, frozen=False, appear_h=0, drop_h=None, ptype="traffic"):
        s.id, s.total, s.used, s.expiry_h, s.frozen = id, total, used, expiry_h, frozen
        s.appear_h, s.drop_h, s.ptype = appear_h, drop_h, ptype

def usable(p, h):
    return (not p.frozen and p.total - p.used > 0 and (p.expiry_h is None or p.expiry_h > h)
            and p.appear_h <= h and (p.drop_h is None or p.drop_h > h))

def status(p, h):
    if p.frozen: return "frozen"
    if p.expiry_h is not None and p.expiry_h <= h: return "expired"
    if p.total - p.used <= 0: return "exhausted"
    return "in_use" if p.used > 0 else "unused"

def order(p):
    return (p.expiry_h is None, p.expiry_h or 0, p.id)

def simulate(account, pkgs, bills, hours, instance=lambda h: "exporter:9877", gaps=()):
    """bills: list of (hour, amount). Returns {series_name: [value or None or 'stale']}."""
    n = int(hours * 3600 / STEP) + 1
    series = {}
    bills = sorted(bills)
    bi = 0
    payg = 0
    for i in range(n):
        h = i * STEP / 3600
        while bi < len(bills) and bills[bi][0] <= h + 1e-9:
            bh, amount = bills[bi]
            for p in sorted([p for p in pkgs if usable(p, bh)], key=order):
                take = min(amount, p.total - p.used)
                p.used += take
                amount -= take
            payg += amount
            bi += 1
        if any(a <= h < b for a, b in gaps):
            continue
        inst = instance(h)
        by_type = {}
        for p in pkgs:
            if p.appear_h > h or (p.drop_h is not None and p.drop_h <= h):
                continue
            by_type.setdefault(p.ptype, []).append(p)
        for ptype, ps in by_type.items():
            unit = "bytes" if ptype == "traffic" else "seconds"
            ahead = 0
            aheads = {}
            for p in sorted([p for p in ps if usable(p, h)], key=order):
                aheads[p.id] = ahead
                ahead += p.total - p.used
            for p in ps:
                st = status(p, h)
                lab = f'{{account="{account}",package_type="{ptype}",package_id="{p.id}",status="{st}",instance="{inst}",job="tencent-live"}}'
                def put(m, v):
                    series.setdefault(m + lab, {})[i] = v
                put(f"tencent_live_package_used_{unit}", p.used)
                put(f"tencent_live_package_remaining_{unit}", p.total - p.used)
                if p.expiry_h is not None:
                    put("tencent_live_package_expiry_timestamp_seconds", int(p.expiry_h * 3600))
                if p.id in aheads:
                    put(f"tencent_live_package_usable_ahead_{unit}", aheads[p.id])
    out = {}
    for name, pts in series.items():
        vals = []
        last = max(pts)
        first = min(pts)
        for i in range(n):
            if i in pts:
                vals.append(pts[i])
            elif first < i and (i - 1) in pts:
                vals.append("stale")
            else:
                vals.append(None)
        while vals and vals[-1] is None:
            vals.pop()
        out[name] = vals
    return out

def fmt(v):
    if isinstance(v, float) and v == int(v):
        v = int(v)
    return str(v)

def compress(vals):
    toks = []
    i = 0
    while i < len(vals):
        v = vals[i]
        j = i
        while j + 1 < len(vals) and vals[j + 1] == v and v != "stale":
            j += 1
        n = j - i + 1
        if v is None:
            toks.append("_" if n == 1 else f"_x{n}")
        elif v == "stale":
            toks.append("stale")
        else:
            toks.append(fmt(v) if n == 1 else f"{fmt(v)}x{n - 1}")
        i = j + 1
    return " ".join(toks)

def dur(h):
    m = round(h * 60)
    d, m = divmod(m, 1440)
    hh, m = divmod(m, 60)
    s = (f"{d}d" if d else "") + (f"{hh}h" if hh else "") + (f"{m}m" if m else "")
    return s or "0m"

class Group:
    def __init__(s, name, comment):
        s.name, s.comment, s.series, s.alert_tests, s.expr_tests, s.last = name, comment, {}, [], [], 0
    def add(s, sim):
        s.series.update(sim)
    def firing_every_hour(s, alert, account, ptype, severity, from_h, to_h, note=""):
        n = to_h - from_h
        s.expr_tests.append((f"# {note}\n" if note else "") + f"""      - expr: count_over_time(ALERTS{{alertname="{alert}",alertstate="firing",account="{account}",package_type="{ptype}"}}[{dur(n)}:1h])
        eval_time: {dur(to_h)}
        exp_samples:
          - labels: '{{alertname="{alert}",alertstate="firing",account="{account}",package_type="{ptype}",severity="{severity}"}}'
            value: {n + 1}""")
        s.last = max(s.last, to_h)
    def firing_every_hour_pkg(s, alert, account, ptype, pid, severity, from_h, to_h):
        n = to_h - from_h
        s.expr_tests.append(f"""      - expr: count_over_time(ALERTS{{alertname="{alert}",alertstate="firing",account="{account}",package_id="{pid}"}}[{dur(n)}:1h])
        eval_time: {dur(to_h)}
        exp_samples:
          - labels: '{{alertname="{alert}",alertstate="firing",account="{account}",package_type="{ptype}",package_id="{pid}",severity="{severity}"}}'
            value: {n + 1}""")
        s.last = max(s.last, to_h)
    def silent(s, alerts, account, from_h, to_h):
        n = to_h - from_h
        s.expr_tests.append(f"""      - expr: count_over_time(ALERTS{{alertname=~"{alerts}",alertstate="firing",account="{account}"}}[{dur(n)}:1h])
        eval_time: {dur(to_h)}
        exp_samples: []""")
        s.last = max(s.last, to_h)
    def expr(s, expr, at_h, samples):
        body = "".join(f"\n          - labels: '{l}'\n            value: {v}" for l, v in samples) if samples else " []"
        s.expr_tests.append(f"""      - expr: '{expr}'
        eval_time: {dur(at_h)}
        exp_samples:{body}""")
        s.last = max(s.last, at_h)
    def raw_alert(s, text, at_h):
        s.alert_tests.append(text)
        s.last = max(s.last, at_h)
    def render(s):
        out = [s.comment.rstrip(), f"  - name: '{s.name}'", f"    interval: {STEP // 60}m", "    input_series:"]
        for name, vals in s.series.items():
            out.append(f"      - series: '{name}'\n        values: '{compress(vals)}'")
        out.append("    alert_rule_test:")
        out.extend(s.alert_tests)
        # promtool evaluates the rules up to the last alert_rule_test's eval_time only.
        out.append(f"      - eval_time: {dur(s.last)}\n        alertname: TencentLiveApiErrorsHigh\n        exp_alerts: []")
        out.append("    promql_expr_test:")
        out.extend(s.expr_tests)
        return "\n".join(out) + "\n"


# --- the scenarios: one test group per row of issue 18's table -------------------------------

POOL = "TencentLiveRunwayLow|TencentLiveRunwayCritical|TencentLivePayAsYouGo|TencentLiveQuotaExpiringUnused|TencentLiveQuotaFrozen"
groups = []

def steady():
    g = Group("staircase: steady use, 1 TB a day, 3-4 weeks of runway: silence (traffic and transcode)", """
  # -----------------------------------------------------------------------------------------
  # Issue 18, row 1. A steady 1 TB a day of traffic (and 1,000 minutes a day of transcoding),
  # billed once a day at a bill hour between 02:00 and 11:00 Beijing time, one bill late at
  # 20:30 (day 4, 5.5 h before the next); 25-35 days of runway. Nothing fires in any hour of
  # ten days, including the first days, when Prometheus has little history.
  # -----------------------------------------------------------------------------------------""")
    days = 10
    bills = bill_hours(days, late={4: 36.5})
    g.add(simulate("steady", [Pkg("t1", 40 * TB, used=5 * TB, expiry_h=7200)], [(h, TB) for h in bills], days * 24))
    g.add(simulate("steady", [Pkg("x1", 40 * 60000, used=5 * 60000, expiry_h=7200, ptype="transcode")], [(h, 60000) for h in bills], days * 24))
    g.silent(POOL, "steady", 0, days * 24)
    return g


def weekly():
    g = Group("staircase: busy weekdays (1.5 TB), quiet weekends (0.1 TB), 2 weeks of runway: silence", """
  # -----------------------------------------------------------------------------------------
  # Issue 18, row 2. Weekdays bill 1.5 TB, weekends 0.1 TB (7.7 TB a week); 24 TB at the start,
  # about two weeks of runway after the first week. The 7-day average reads the week, not
  # the busiest day: nothing fires in any hour of twelve days.
  # -----------------------------------------------------------------------------------------""")
    days = 12
    bills = bill_hours(days)
    g.add(simulate("weekly", [Pkg("w1", 50 * TB, used=26 * TB, expiry_h=7200)],
                   [(h, (15 if k % 7 < 5 else 1) * TB // 10) for k, h in enumerate(bills)], days * 24))
    g.silent(POOL, "weekly", 0, days * 24)
    return g

def running_out():
    g = Group("staircase: running out at 1 TB a day, then pay-as-you-go until a package is bought", """
  # -----------------------------------------------------------------------------------------
  # Issue 18, rows 3, 4, 5 and 11. One 40 TB package with 12 TB left is billed 1 TB a day
  # (the bill of day 8 late, at 20:30 Beijing time, 11.5 h before the next). Bill k (from 0)
  # leaves 11 - k TB: 5 TB after bill 6, 3 TB after bill 8, 1 TB after bill 10, none after
  # bill 11; bills 12 and 13 go to pay-as-you-go; a 10 TB package is bought at 340h.
  # - 5 to 3 days left: TencentLiveRunwayLow fires in every hour.
  # - more than 3.5 days left (and 3): no TencentLiveRunwayCritical.
  # - 1 day left after the last bill: TencentLiveRunwayCritical in every hour until the pool is
  #   empty, then TencentLivePayAsYouGo in every hour (more than two days) until the package is
  #   bought, and nothing after it.
  # -----------------------------------------------------------------------------------------""")
    bills = bill_hours(14, late={8: 36.5})
    b = [int(-(-x // 1)) for x in bills]  # the hour whose sample shows the bill
    g.add(simulate("drain", [Pkg("d1", 40 * TB, used=28 * TB, expiry_h=7200),
                             Pkg("d2", 10 * TB, expiry_h=9000, appear_h=340)],
                   [(h, TB) for h in bills], 360))
    g.firing_every_hour("TencentLiveRunwayLow", "drain", "traffic", "warning", b[6] + 1, b[9] - 1)
    g.silent("TencentLiveRunwayCritical", "drain", 0, b[9] - 1)
    g.firing_every_hour("TencentLiveRunwayCritical", "drain", "traffic", "critical", b[10] + 1, b[11] - 1)
    g.firing_every_hour("TencentLivePayAsYouGo", "drain", "traffic", "critical", b[11] + 1, 339)
    g.silent("TencentLivePayAsYouGo|TencentLiveRunwayCritical", "drain", 342, 360)
    g.silent("TencentLiveRunwayCritical|TencentLivePayAsYouGo", "drain", 0, b[9] - 1)
    return g

def surge():
    g = Group("staircase: usage quadruples, a warning within two bills and none before", """
  # -----------------------------------------------------------------------------------------
  # Issue 18, row 6. 0.5 TB a day for eight bills (13 TB -> 9 TB, 18 days of runway), then
  # 2 TB a day. No warning before the surge, nor after its first bill (9.8 days at the
  # 7-day average); TencentLiveRunwayLow from the second bill of the surge on (5 TB left,
  # 2.5 days at the new rate, 5.4 at the average), in every hour.
  # -----------------------------------------------------------------------------------------""")
    bills = bill_hours(11)
    b = [int(-(-x // 1)) for x in bills]
    g.add(simulate("surge", [Pkg("s1", 20 * TB, used=7 * TB, expiry_h=7200)],
                   [(h, (TB // 2 if k < 8 else 2 * TB)) for k, h in enumerate(bills)], b[10] + 6))
    g.silent(POOL, "surge", 0, b[9] - 1)
    g.firing_every_hour("TencentLiveRunwayLow", "surge", "traffic", "warning", b[9] + 1, b[10] + 6)
    return g

def deduction_order():
    g = Group("staircase: deduction order, B loses 2.8 TB behind A", """
  # -----------------------------------------------------------------------------------------
  # Issue 18, row 7. Package a (5 TB left at 168h, expires at 408h) is deducted before b (5 TB,
  # expires at 456h: 12 days after 168h); 0.6 TB a day. a is used up in time; b receives
  # 0.6 x 12 - 5 = 2.2 TB and loses 2.8 TB: TencentLiveQuotaExpiringUnused for b in every
  # hour, never for a (not even in the first days, while Prometheus is young); the runway is
  # b's 12 days to expiry (pay-as-you-go starts then), no runway alert. At 168h Prometheus has
  # 7 days of history and the at-risk rate, which must not under-estimate, reads a bill more
  # than the days it covers (0.63 TB a day at the 138h bill): 2.3 TB at risk (306 h of
  # runway, from the last bill); with a full window, at 204h, 2.8 TB.
  # -----------------------------------------------------------------------------------------""")
    bills = bill_hours(10)
    g.add(simulate("order", [Pkg("a", 92 * TB // 10, expiry_h=408), Pkg("b", 5 * TB, expiry_h=456)],
                   [(h, 6 * TB // 10) for h in bills], 240))
    g.firing_every_hour_pkg("TencentLiveQuotaExpiringUnused", "order", "traffic", "b", "warning", 170, 240)
    # From the start: a young Prometheus's rate must not make a look at risk (a is used up in time).
    g.expr('count_over_time(ALERTS{alertname="TencentLiveQuotaExpiringUnused",alertstate="firing",package_id="a"}[240h:1h])', 240, [])
    g.silent("TencentLiveRunwayLow|TencentLiveRunwayCritical|TencentLivePayAsYouGo", "order", 0, 240)
    g.expr('round(package:tencent_live_quota_at_risk_bytes:rate7d / 1e10) / 100', 168,
           [('{account="order",package_type="traffic",package_id="a"}', 0), ('{account="order",package_type="traffic",package_id="b"}', 2.3)])
    g.expr('round(account_package_type:tencent_live_runway_seconds:rate7d / 3600)', 168,
           [('{account="order",package_type="traffic"}', 306)])
    g.expr('round(package:tencent_live_quota_at_risk_bytes:rate7d / 1e10) / 100', 204,
           [('{account="order",package_type="traffic",package_id="a"}', 0), ('{account="order",package_type="traffic",package_id="b"}', 2.8)])
    g.raw_alert("""      - eval_time: 168h
        alertname: TencentLiveQuotaExpiringUnused
        exp_alerts:
          - exp_labels: {severity: warning, account: order, package_type: traffic, package_id: b}
            exp_annotations:
              summary: Tencent Live traffic quota of order will expire unused.
              description: >-
                2.304TB of traffic package b of account order will expire unused. It expires in
                12d 0h 0m 0s, and at the average rate of the last 7 days the packages Tencent
                deducts first leave it too little time.
              runbook_url: https://github.com/tencent-live-exporter/tencent-live-exporter#runbook-tencentlivequotaexpiringunused""", 168)
    return g

def leaving():
    g = Group("staircase: an exhausted package leaves the list while the pool runs out", """
  # -----------------------------------------------------------------------------------------
  # Issue 18, row 8. a (1 TB a day) is used up by bill 7, b (4.5 TB) goes in use; a leaves the
  # API's list 2 h after bill 8 (its series end). Its past increments stay in the window: the
  # warning holds in every hour from 5.5 days left to 2.5.
  # -----------------------------------------------------------------------------------------""")
    bills = bill_hours(10)
    b = [int(-(-x // 1)) for x in bills]
    g.add(simulate("leave", [Pkg("a", 10 * TB, used=2 * TB, expiry_h=7200, drop_h=b[8] + 2),
                             Pkg("b", 45 * TB // 10, expiry_h=8000)],
                   [(h, TB) for h in bills], b[9] + 20))
    g.firing_every_hour("TencentLiveRunwayLow", "leave", "traffic", "warning", b[6] + 1, b[9] + 20)
    g.silent("TencentLiveRunwayCritical|TencentLivePayAsYouGo", "leave", 0, b[9] - 1)
    return g

def fresh():
    g = Group("staircase: a new Prometheus, no history", """
  # -----------------------------------------------------------------------------------------
  # Issue 18, row 9 and the restart with one day of history. Prometheus starts at 0 with no
  # history. "fresh": 10.5 TB left, 1 TB a day: nothing fires in three days (the rate is
  # divided by history + 1 day, so it never over-estimates). "restart": 4 TB left, 1 TB a
  # day, the second bill late (20:30 Beijing time, 6.5 h before the third): the warning
  # fires after the first bill (3 TB left, 5.5 days at the young estimate) and holds in every
  # hour (the runway counts down from the last bill, read at the highest rate of the last day,
  # so it does not lapse as the young estimate decays with history), no page until the third
  # bill leaves 1 TB, then the warning and the page in every hour.
  # -----------------------------------------------------------------------------------------""")
    bills = bill_hours(4, late={1: 36.5})
    b = [int(-(-x // 1)) for x in bills]
    g.add(simulate("fresh", [Pkg("f1", 20 * TB, used=95 * TB // 10, expiry_h=7200)], [(h, TB) for h in bills], 90))
    g.silent(POOL, "fresh", 0, 90)
    g.add(simulate("restart", [Pkg("r1", 10 * TB, used=6 * TB, expiry_h=7200)], [(h, TB) for h in bills[:3]], 90))
    # The warning holds in every hour from the first bill on: no "resolved" and "firing" again.
    g.firing_every_hour("TencentLiveRunwayLow", "restart", "traffic", "warning", b[0] + 1, 90)
    g.silent("TencentLiveRunwayCritical", "restart", 0, b[2] - 1)
    g.firing_every_hour("TencentLiveRunwayLow", "restart", "traffic", "warning", b[2] + 1, 90)
    g.firing_every_hour("TencentLiveRunwayCritical", "restart", "traffic", "critical", b[2] + 1, 90)
    return g

def flapping():
    g = Group("staircase: the runway warning holds while a bill leaves the window or is skipped", """
  # -----------------------------------------------------------------------------------------
  # The runway between bills. "six": Prometheus starts at 0 with 9 TB left, 1 TB a day; after
  # the fourth bill (5 TB left, 6 days of history) TencentLiveRunwayLow fires in every hour
  # until the pool is nearly empty. "skip": steady 1 TB a day with 14 TB left; one day has no
  # bill, the next day two; from the bill that leaves 6 TB the warning holds in every hour
  # (the skipped bill and bills leaving the 7-day window do not lengthen the runway: it counts
  # down from the last bill and reads the highest rate of the last day). No page in either
  # while more than 3 days are left.
  # -----------------------------------------------------------------------------------------""")
    bills = bill_hours(9)
    b = [int(-(-x // 1)) for x in bills]
    g.add(simulate("six", [Pkg("x", 40 * TB, used=31 * TB, expiry_h=7200)], [(h, TB) for h in bills], b[7] + 1))
    g.firing_every_hour("TencentLiveRunwayLow", "six", "traffic", "warning", b[3] + 1, b[7] + 1)
    g.silent("TencentLiveRunwayCritical|TencentLivePayAsYouGo", "six", 0, b[5])
    bills = bill_hours(12)
    b = [int(-(-x // 1)) for x in bills]
    bills = [h for k, h in enumerate(bills) if k != 8] + [9 * 24 + 21.5]
    g.add(simulate("skip", [Pkg("s", 40 * TB, used=26 * TB, expiry_h=7200)], [(h, TB) for h in bills], b[11]))
    g.firing_every_hour("TencentLiveRunwayLow", "skip", "traffic", "warning", b[7] + 1, b[11])
    g.silent("TencentLiveRunwayCritical|TencentLivePayAsYouGo", "skip", 0, b[9])
    return g

def together():
    g = Group("staircase: three 40 GB packages expire together", """
  # -----------------------------------------------------------------------------------------
  # Issue 18, row 10. 8.64 GB a day; at 168h three packages of 40 GB left expire together
  # 118 h later. In deduction order the first is used up, the second receives 2.5 GB, the
  # third nothing: 77.5 GB expire unused and the runway is 118 h (not 332 h). At 168h the rules
  # read it with 7 days of history, with a rate that does not under-estimate (as in row 7):
  # 73 GB at risk and 128 h of runway (from the last bill); at 204h, with a full window, the 77.5 GB.
  # TencentLiveRunwayLow and TencentLiveQuotaExpiringUnused for the second and third package
  # in every hour; not for the first.
  # -----------------------------------------------------------------------------------------""")
    bills = bill_hours(11)
    g.add(simulate("together", [Pkg("p1", 10048 * GB // 100, expiry_h=286), Pkg("p2", 40 * GB, expiry_h=286),
                                Pkg("p3", 40 * GB, expiry_h=286)],
                   [(h, 864 * GB // 100) for h in bills], 240))
    g.expr('round(account_package_type:tencent_live_quota_at_risk_bytes:sum / 1e8) / 10', 168,
           [('{account="together",package_type="traffic"}', 73)])
    g.expr('round(account_package_type:tencent_live_runway_seconds:rate7d / 3600)', 168,
           [('{account="together",package_type="traffic"}', 128)])
    g.expr('round(account_package_type:tencent_live_quota_at_risk_bytes:sum / 1e8) / 10', 204,
           [('{account="together",package_type="traffic"}', 77.5)])
    g.firing_every_hour("TencentLiveRunwayLow", "together", "traffic", "warning", 170, 240)
    g.firing_every_hour_pkg("TencentLiveQuotaExpiringUnused", "together", "traffic", "p2", "warning", 170, 240)
    g.firing_every_hour_pkg("TencentLiveQuotaExpiringUnused", "together", "traffic", "p3", "warning", 170, 240)
    # From the start: p1 is used up in time, also while Prometheus is young.
    g.expr('count_over_time(ALERTS{alertname="TencentLiveQuotaExpiringUnused",alertstate="firing",package_id="p1"}[240h:1h])', 240, [])
    return g

def frozen():
    g = Group("frozen quota: a warning, no pay-as-you-go; an empty pool pages from the start", """
  # -----------------------------------------------------------------------------------------
  # Issue 18, frozen quota and row 11's second half. "monthly": the traffic pair holds a frozen
  # 1 TB package (expires at 100 days) and an exhausted one; its transcode pair a frozen
  # 600,000 s package: TencentLiveQuotaFrozen for each (amounts in decimal units and as a
  # duration), no TencentLivePayAsYouGo. "empty": a pair whose only package is used up from
  # the start: TencentLivePayAsYouGo in every hour, with no look-back needed.
  # -----------------------------------------------------------------------------------------""")
    g.add(simulate("monthly", [Pkg("m1", TB, expiry_h=2400, frozen=True), Pkg("m0", TB, used=TB, expiry_h=2400)], [], 48))
    g.add(simulate("monthly", [Pkg("m2", 600000, used=0, expiry_h=4800, frozen=True, ptype="transcode")], [], 48))
    g.add(simulate("empty", [Pkg("e1", TB, used=TB, expiry_h=7200)], [], 48))
    g.silent("TencentLivePayAsYouGo|TencentLiveRunwayLow|TencentLiveRunwayCritical", "monthly", 0, 48)
    g.firing_every_hour("TencentLiveQuotaFrozen", "monthly", "traffic", "warning", 1, 48)
    g.firing_every_hour("TencentLiveQuotaFrozen", "monthly", "transcode", "warning", 1, 48)
    g.firing_every_hour("TencentLivePayAsYouGo", "empty", "traffic", "critical", 1, 48)
    g.raw_alert("""      - eval_time: 2h
        alertname: TencentLiveQuotaFrozen
        exp_alerts:
          - exp_labels: {severity: warning, account: monthly, package_type: traffic}
            exp_annotations:
              summary: Tencent Live traffic packages of monthly are frozen.
              description: >-
                Account monthly holds 1TB of frozen traffic quota (monthly settlement freezes prepaid
                packages; their validity keeps running). The earliest frozen package expires in 99d 22h 0m 0s.
              runbook_url: https://github.com/tencent-live-exporter/tencent-live-exporter#runbook-tencentlivequotafrozen
          - exp_labels: {severity: warning, account: monthly, package_type: transcode}
            exp_annotations:
              summary: Tencent Live transcode packages of monthly are frozen.
              description: >-
                Account monthly holds 10000 minutes of frozen transcode quota (monthly settlement freezes
                prepaid packages; their validity keeps running). The earliest frozen package expires in
                199d 22h 0m 0s.
              runbook_url: https://github.com/tencent-live-exporter/tencent-live-exporter#runbook-tencentlivequotafrozen""", 2)
    return g

groups += [steady(), weekly(), running_out(), surge(), deduction_order(), leaving(), fresh(), flapping(), together(), frozen()]
HEADER = """# GENERATED by deploy/prometheus/billing_timelines.py (run deploy/mixin/generate.sh): edit the
# script, not this file.
#
# Unit tests of alerts.yml on timelines where the packages move as Tencent bills them (issue 18):
# one bill a day at a bill hour between 02:00 and 11:00 Beijing time (18:00-03:00 UTC), the odd
# one late at 20:30 (5.5 to 11.5 h before the next), deducted in expiry order. One test group
# per row of the issue's table (each firing and each silent case); tests needing minute
# resolution (a replaced exporter, the exporter-health alerts) are in alerts.minute.test.yml.
# Run from this directory or from the repository root:
#
#   promtool test rules alerts.test.yml
#   promtool test rules deploy/prometheus/alerts.test.yml
#
# Test time starts at the Unix epoch (time() == 0 at 0h, 08:00 Beijing time). Rules are
# evaluated every hour, on series sampled every hour, as a person reading the alerts hour by
# hour would; Prometheus starts with no history at 0h. "Every hour" is checked on the ALERTS
# series: count_over_time(ALERTS{..., alertstate="firing"}[Nh:1h]) == N + 1 (every hourly point
# of the range, both ends included) and "silence" as no firing point at all. A package's
# series carry its status; a status change ends the old series with `stale` (the exporter stops
# exposing it) and starts the new one. Amounts: 1 TB = 10^12 bytes.
rule_files:
  - alerts.yml

evaluation_interval: 1h

tests:
"""

if __name__ == "__main__":
    sys.stdout.write(HEADER + "\n".join(g.render() for g in groups))
