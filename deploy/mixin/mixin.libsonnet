// The tencent-live-exporter monitoring mixin: prometheusRules (recording rules),
// prometheusAlerts (alerting rules) and grafanaDashboards; tuned through _config
// (config.libsonnet).
(import 'config.libsonnet') +
(import 'rules.libsonnet') +
(import 'alerts.libsonnet') +
(import 'dashboards.libsonnet')
