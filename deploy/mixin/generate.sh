#!/usr/bin/env bash
# Writes every file generated from the monitoring mixin (deploy/mixin), or with --check fails
# when one differs from what is committed (CI runs it so, from deploy/check.sh):
#
#   deploy/prometheus/alerts.yml          the rule file for a real day (daySeconds=86400)
#   deploy/prometheus/demo/alerts.yml     the same for the demo's default day (--demo.day 2m)
#   deploy/grafana/tencent-live-packages.json the Grafana dashboard, and its copy in
#   deploy/kubernetes/dashboards/         the kustomize base (a base reads no file outside it)
#   deploy/kubernetes/prometheusrule.yaml the PrometheusRule, from alerts.yml
#                                         (deploy/kubernetes/generate-prometheusrule.py)
#   deploy/prometheus/alerts.test.yml     the billing timelines' unit tests
#                                         (deploy/prometheus/billing_timelines.py)
#
# Needs Debian's `jsonnet` and python3 with PyYAML (deploy/check.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0

# emit TARGET CMD...: CMD's output is TARGET.
emit() {
  local target=$1
  shift
  "$@" >"$scratch/out"
  set -- "" "$target"
  if $check; then
    if ! diff -u "$2" "$scratch/out" >"$scratch/diff" 2>&1; then
      echo "$2 differs from what deploy/mixin generates (run deploy/mixin/generate.sh):" >&2
      sed -n 1,40p "$scratch/diff" >&2
      status=1
    fi
  else
    cp "$scratch/out" "$2"
    echo "wrote $2"
  fi
}

emit deploy/prometheus/alerts.yml jsonnet -S --tla-code daySeconds=86400 deploy/mixin/alerts.yml.jsonnet
emit deploy/prometheus/demo/alerts.yml jsonnet -S --tla-code daySeconds=120 deploy/mixin/alerts.yml.jsonnet
emit deploy/grafana/tencent-live-packages.json jsonnet deploy/mixin/dashboards.json.jsonnet
emit deploy/kubernetes/dashboards/tencent-live-packages.json jsonnet deploy/mixin/dashboards.json.jsonnet
emit deploy/prometheus/alerts.test.yml python3 deploy/prometheus/billing_timelines.py
if $check; then
  python3 deploy/kubernetes/generate-prometheusrule.py --check || status=1
else
  python3 deploy/kubernetes/generate-prometheusrule.py
fi
exit "$status"
