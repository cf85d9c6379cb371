// The mixin's Grafana dashboard, built from _config (config.libsonnet). The fields it reads, and
// their defaults when this file is used without config.libsonnet:
//
//   daySeconds          length of one billing day: the daily-deduction bars and the day-based
//                       thresholds (runway, days to expiry) scale with it (the demo's day is 120)
//   exporterSelector    selector of the exporter's series: the job variable offers the jobs it matches
//   clusterLabel        '' (none) or a label such as 'cluster': adds a cluster variable and a
//                       matcher on it to every query
//   runbookURLPattern   printf pattern of a runbook link, %s = the alert name in lower case
//   runwayWarningDays, runwayCriticalDays, expiringUnusedHorizonDays   colour thresholds, as the alerts
//   pollIntervalSeconds, stalenessPolls   the staleness threshold line (as TencentLiveDataStale)
//   dashboardTimezone   the dashboard's time zone: a daily bar covers one day of it, and Tencent
//                       bills per Beijing day, so a bar holds one daily bill
local defaults = {
  daySeconds: 86400,
  exporterSelector: 'job="tencent-live"',
  clusterLabel: '',
  runbookURLPattern: 'https://github.com/tencent-live-exporter/tencent-live-exporter#runbook-%s',
  runwayWarningDays: 7,
  runwayCriticalDays: 2,
  expiringUnusedHorizonDays: 14,
  pollIntervalSeconds: 300,
  stalenessPolls: 3,
  dashboardTimezone: 'Asia/Shanghai',
};

{
  _config+:: {},
  grafanaDashboards+:: {
    'tencent-live-packages.json': (import 'dashboards/tencent-live-packages.libsonnet')(defaults + $._config),
  },
}
