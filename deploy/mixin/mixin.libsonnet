// The tencent-live-exporter monitoring mixin: prometheusRules (recording rules),
// prometheusAlerts (alerting rules) and, to come, grafanaDashboards; tuned through _config
// (config.libsonnet).
(import 'config.libsonnet') +
(import 'rules.libsonnet') +
(import 'alerts.libsonnet') +
{
  // grafanaDashboards+:: { 'tencent-live-packages.json': (import 'dashboards/packages.libsonnet') },
  grafanaDashboards+:: {},
}
