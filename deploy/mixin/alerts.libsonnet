// Alerting rules: pool alerts (from the recording rules of rules.libsonnet) and exporter health.
local lib = import 'lib.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local sel = c.exporterSelector,
    local P = lib.pkg(c),
    local A = lib.pair(c),
    local day = c.daySeconds,
    local days(n) = lib.num(n * day),
    local scaled(s) = lib.scaled(c, s),
    local runbook(name) = c.runbookURLPattern % std.asciiLower(name),
    // An amount as a person reads it: decimal units for traffic (1.2TB, as Tencent's console and
    // bills count so), minutes for transcode / top speed codec / co-anchoring (sold in minutes).
    local amount(v) = '{{ if eq $labels.package_type "traffic" }}{{ %s | humanize }}B{{ else }}{{ with printf "%%f / 60" %s | query }}{{ . | first | value | printf "%%.0f" }}{{ end }} minutes{{ end }}' % [v, v],
    local stale = c.pollIntervalSeconds * c.stalenessPolls,
    local staleWindow = lib.duration(stale),
    local words(seconds) = if seconds % 60 == 0 then '%d minutes' % (seconds / 60) else '%d seconds' % seconds,
    // Replicas: a target is (cluster, job, instance); a job is (cluster, job).
    local I = lib.labels(c, ['job', 'instance']),
    local J = lib.labels(c, ['job']),
    // A pair is stale on a target (see TencentLiveDataStale).
    local staleExpr = |||
      time() - max_over_time(tencent_live_exporter_last_success_timestamp_seconds{%(sel)s}[%(w)s]) > %(s)s
      or
      (
          (0 * tencent_live_up{%(sel)s} unless tencent_live_exporter_last_success_timestamp_seconds{%(sel)s})
        and
          tencent_live_up{%(sel)s} offset %(w)s
        unless
          time() - max_over_time(tencent_live_exporter_last_success_timestamp_seconds{%(sel)s}[%(w)s]) <= %(s)s
      )
    ||| % { sel: sel, w: staleWindow, s: lib.num(stale) },
    // A pair has fresh data on a target.
    local freshExpr = 'time() - max_over_time(tencent_live_exporter_last_success_timestamp_seconds{%s}[%s]) <= %s' % [sel, staleWindow, lib.num(stale)],
    // The targets down that TencentLiveExporterDown pages for.
    local served = 'last_over_time(tencent_live_up{%s}[%s])' % [sel, lib.duration(c.servedPairsLookback)],
    local downExpr = |||
      (
          up{%(sel)s} == 0
        and on (%(I)s)
          (%(served)s unless on (%(A)s) tencent_live_up{%(sel)s})
      )
      or
      (
          (up{%(sel)s} == 0 unless on (%(I)s) %(served)s)
        unless on (%(J)s)
          up{%(sel)s} == 1
      )
      or
      (
          (up{%(sel)s} == 0 unless on (%(I)s) %(served)s)
        and on (%(I)s)
          ALERTS{alertname="TencentLiveExporterDown"}
      )
    ||| % { sel: sel, I: I, J: J, A: A, served: served },
    local staleDescription = std.rstripChars(|||
      {{ if gt $value 0.0 }}The last successful poll of {{ $labels.package_type }} packages of account
      {{ $labels.account }} ({{ $labels.instance }}) was {{ $value | humanizeDuration }} ago{{ else }}Polls
      of {{ $labels.package_type }} packages of account {{ $labels.account }} ({{ $labels.instance }})
      have not succeeded in the last %s, not once since the exporter (re)started{{ end }};
      pool alerts for it cannot fire.
    ||| % words(stale), '\n'),

    local alert(name, severity, expr, forSeconds, summary, description, keep=false) = {
      alert: name,
      expr: expr,
      'for': forSeconds,
      [if keep then 'keep_firing_for']: scaled(c.poolKeepFiringFor),
      labels: { severity: severity },
      annotations: {
        summary: summary,
        // One line: the texts below are wrapped for reading only.
        description: std.strReplace(std.rstripChars(description, '\n'), '\n', ' '),
        runbook_url: runbook(name),
      },
    },

    local runwayDescription = |||
      At the average rate of the bills of the last 7 days, the {{ $labels.package_type }} quota of
      account {{ $labels.account }} that can still be used before it expires lasts
      {{ $value | humanizeDuration }}; after that, {{ $labels.package_type }} usage is billed
      pay-as-you-go.
    |||,

    groups+: [
      {
        name: 'tencent-live-exporter.alerts',
        rules: [
          alert(
            'TencentLiveRunwayLow', 'warning',
            'account_package_type:tencent_live_runway_seconds:rate7d < %s' % days(c.runwayWarningDays),
            scaled(c.runwayLowFor),
            'Tencent Live {{ $labels.package_type }} packages of {{ $labels.account }} run out within %d days.' % c.runwayWarningDays,
            runwayDescription,
            keep=true,
          ),
          alert(
            'TencentLiveRunwayCritical', 'critical',
            'account_package_type:tencent_live_runway_seconds:rate7d < %s' % days(c.runwayCriticalDays),
            scaled(c.runwayCriticalFor),
            'Tencent Live {{ $labels.package_type }} packages of {{ $labels.account }} run out within %d days.' % c.runwayCriticalDays,
            runwayDescription,
            keep=true,
          ),
          // The pair has packages and none is usable: usage is billed pay-as-you-go, for as long
          // as the pool stays empty (silence it if that is intended). Not for a pair holding
          // frozen quota (TencentLiveQuotaFrozen), nor for a pair whose series are gone
          // (TencentLiveDataStale).
          alert(
            'TencentLivePayAsYouGo', 'critical',
            |||
              (
                  account_package_type:tencent_live_usable_remaining_bytes:sum == 0
                unless on (%(A)s)
                  account_package_type:tencent_live_frozen_remaining_bytes:sum > 0
              )
              or
              (
                  account_package_type:tencent_live_usable_remaining_seconds:sum == 0
                unless on (%(A)s)
                  account_package_type:tencent_live_frozen_remaining_seconds:sum > 0
              )
            ||| % { A: A },
            scaled(c.payAsYouGoFor),
            'Tencent Live {{ $labels.package_type }} usage of {{ $labels.account }} is billed pay-as-you-go.',
            |||
              Account {{ $labels.account }} has {{ $labels.package_type }} packages but none is usable
              (used up or expired): {{ $labels.package_type }} usage is billed pay-as-you-go until a new
              package is bought.
            |||,
            keep=true,
          ),
          // A usable package expiring within the horizon keeps quota that the pair's use, going
          // to the packages in Tencent's deduction order, cannot reach before it expires (more
          // than the estimate's precision: a share of its left).
          alert(
            'TencentLiveQuotaExpiringUnused', 'warning',
            |||
              (
                  package:tencent_live_quota_at_risk_bytes:rate7d
                    > %(f)s * package:tencent_live_usable_remaining_bytes:max
                or
                  package:tencent_live_quota_at_risk_seconds:rate7d
                    > %(f)s * package:tencent_live_usable_remaining_seconds:max
              )
              and on (%(P)s)
              (
                max by (%(P)s) (tencent_live_package_expiry_timestamp_seconds{%(sel)s}) - time()
                  < %(h)s
              )
            ||| % { P: P, sel: sel, h: days(c.expiringUnusedHorizonDays), f: c.expiringUnusedMinFraction },
            scaled(c.expiringUnusedFor),
            'Tencent Live {{ $labels.package_type }} quota of {{ $labels.account }} will expire unused.',
            |||
              %(amount)s of {{ $labels.package_type }} package {{ $labels.package_id }} of account
              {{ $labels.account }} will expire unused. It expires
              {{ with printf `max(tencent_live_package_expiry_timestamp_seconds{%(sel)s,account=%%q,package_type=%%q,package_id=%%q}) - time()` $labels.account $labels.package_type $labels.package_id | query }}{{ with first . }}in {{ value . | humanizeDuration }}{{ end }}{{ else }}soon{{ end }},
              and at the average rate of the last 7 days the packages Tencent deducts first leave it too little time.
            ||| % { amount: amount('$value'), sel: sel },
            keep=true,
          ),
          // Monthly settlement froze packages of the pair: their quota cannot be used, and their
          // validity keeps running, so it can expire unused.
          alert(
            'TencentLiveQuotaFrozen', 'warning',
            |||
              account_package_type:tencent_live_frozen_remaining_bytes:sum > 0
              or
              account_package_type:tencent_live_frozen_remaining_seconds:sum > 0
            |||,
            scaled(c.quotaFrozenFor),
            'Tencent Live {{ $labels.package_type }} packages of {{ $labels.account }} are frozen.',
            |||
              Account {{ $labels.account }} holds %(amount)s of frozen {{ $labels.package_type }} quota
              (monthly settlement freezes prepaid packages; their validity keeps running). The earliest
              frozen package expires
              {{ with printf `min(tencent_live_package_expiry_timestamp_seconds{%(sel)s,account=%%q,package_type=%%q,status="frozen"} > time()) - time()` $labels.account $labels.package_type | query }}{{ with first . }}in {{ value . | humanizeDuration }}{{ end }}{{ else }}on no known date{{ end }}.
            ||| % { amount: amount('$value'), sel: sel },
            keep=true,
          ),

          // Exporter health: these follow the poll and scrape intervals, not the billing day.
          alert(
            'TencentLivePollFailing', 'warning',
            'tencent_live_up{%s} == 0' % sel,
            lib.duration(c.pollIntervalSeconds * 3),
            'tencent-live-exporter cannot poll Tencent Cloud.',
            |||
              Polling {{ $labels.package_type }} packages of account {{ $labels.account }}
              ({{ $labels.instance }}) has been failing for at least %s; its package
              metrics are frozen and will disappear.
            ||| % words(c.pollIntervalSeconds * 3),
          ),
          alert(
            'TencentLiveApiErrorsHigh', 'warning',
            |||
              sum by (%(cl)saccount, code) (rate(tencent_live_exporter_api_request_errors_total{%(sel)s}[30m]))
                / on (%(cl)saccount) group_left ()
              (sum by (%(cl)saccount) (rate(tencent_live_exporter_api_requests_total{%(sel)s}[30m])) > 0)
              > 0.10
            ||| % { sel: sel, cl: if c.clusterLabel != '' then c.clusterLabel + ', ' else '' },
            '15m',
            'Tencent Cloud API requests of tencent-live-exporter are failing.',
            |||
              {{ $value | humanizePercentage }} of the Tencent Cloud API requests for account
              {{ $labels.account }} failed with error code {{ $labels.code }} over the last 30 minutes.
            |||,
          ),
          // No successful poll of a pair for stalenessPolls polls (when the exporter drops the
          // pair's package series), or none since the exporter started although the pair has
          // been polled for that long. $value: age of the last success, 0 when there was none.
          // Critical only when no replica has fresh data for the pair; a warning (on a target
          // that is up: a dead one is TencentLiveExporterReplicaDown's) while another replica
          // has.
          alert(
            'TencentLiveDataStale', 'critical',
            '(\n%s)\nunless on (%s)\n  %s\n' % [lib.indent(staleExpr), A, freshExpr],
            '1m',
            'tencent-live-exporter data is stale.',
            staleDescription,
          ),
          alert(
            'TencentLiveReplicaDataStale', 'warning',
            '(\n%s)\nand on (%s)\n  %s\nand on (%s)\n  up{%s} == 1\n' % [lib.indent(staleExpr), A, freshExpr, I, sel],
            '1m',
            'A tencent-live-exporter replica has stale data; another replica has fresh data.',
            staleDescription + ' Another replica has fresh data for the pair.',
          ),
          // A target down pages while some pair goes unserved: a pair it served in the lookback
          // that no target up serves now, or, when it served none in the lookback (down for
          // longer, or never polled), while no target of its job is up or while it already
          // alerts (a shard of a job stays paged after its pairs leave the lookback).
          alert(
            'TencentLiveExporterDown', 'critical',
            downExpr,
            '5m',
            'tencent-live-exporter is down.',
            |||
              Prometheus has failed to scrape tencent-live-exporter at {{ $labels.instance }}
              (job {{ $labels.job }}) for 5 minutes, and no other target serves what it served;
              no Tencent Live pool alert can fire for those pairs.
            |||,
          ),
          alert(
            'TencentLiveExporterReplicaDown', 'warning',
            '%s\nunless on (%s)\n  (\n%s  )\n' % ['up{%s} == 0' % sel, I, lib.indent(lib.indent(downExpr))],
            '5m',
            'A tencent-live-exporter replica is down; another serves its data.',
            |||
              Prometheus has failed to scrape tencent-live-exporter at {{ $labels.instance }}
              (job {{ $labels.job }}) for 5 minutes; other targets serve every pair it served, so the
              pool alerts still work, without redundancy.
            |||,
          ),
          alert(
            'TencentLiveExporterAbsent', 'critical',
            'absent(up{%s})' % sel,
            '10m',
            'tencent-live-exporter target is missing.',
            |||
              Prometheus has had no scrape target for job {{ $labels.job }} for 10 minutes;
              no Tencent Live pool alert can fire.
            |||,
          ),
        ],
      },
    ],
  },
}
