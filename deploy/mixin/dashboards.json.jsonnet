// The Grafana dashboard as JSON, for deploy/grafana/tencent-live-packages.json:
//
//   jsonnet deploy/mixin/dashboards.json.jsonnet > deploy/grafana/tencent-live-packages.json
//
// config (a top-level argument) overrides _config, e.g.
//   jsonnet --tla-code config='{ clusterLabel: "cluster" }' deploy/mixin/dashboards.json.jsonnet
function(config={})
  ((import 'mixin.libsonnet') + { _config+:: config }).grafanaDashboards['tencent-live-packages.json']
