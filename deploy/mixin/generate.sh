#!/usr/bin/env bash
# Writes every file generated from the monitoring mixin (deploy/mixin), or with --check fails
# when one differs from what is committed (CI runs it so, from deploy/check.sh):
#
#   deploy/prometheus/alerts.yml          the rule file for a real day (daySeconds=86400)
#   deploy/prometheus/demo/alerts.yml     the same for the demo's default day (--demo.day 2m)
#   deploy/grafana/tencent-live-packages.json            the Grafana dashboard, and its copy in
#   deploy/kubernetes/dashboards/tencent-live-packages.json the kustomize base (a base reads no
#                                         file outside its folder)
#   deploy/kubernetes/prometheusrule.yaml the PrometheusRule, from alerts.yml
#                                         (deploy/kubernetes/generate-prometheusrule.py)
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

# put TARGET: $scratch/out becomes TARGET, or with --check is compared with it.
put() {
  if $check; then
    if ! diff -u "$1" "$scratch/out" >"$scratch/diff" 2>&1; then
      echo "$1 differs from what deploy/mixin generates (run deploy/mixin/generate.sh):" >&2
      sed -n 1,40p "$scratch/diff" >&2
      status=1
    fi
  else
    cp "$scratch/out" "$1"
    echo "wrote $1"
  fi
}

# emit DAY_SECONDS TARGET: the rule file for a day of DAY_SECONDS seconds.
emit() {
  jsonnet -S --tla-code "daySeconds=$1" deploy/mixin/alerts.yml.jsonnet >"$scratch/out"
  put "$2"
}

emit 86400 deploy/prometheus/alerts.yml
emit 120 deploy/prometheus/demo/alerts.yml
for target in deploy/grafana/tencent-live-packages.json deploy/kubernetes/dashboards/tencent-live-packages.json; do
  jsonnet deploy/mixin/dashboards.json.jsonnet >"$scratch/out"
  put "$target"
done
if $check; then
  python3 deploy/kubernetes/generate-prometheusrule.py --check || status=1
else
  python3 deploy/kubernetes/generate-prometheusrule.py
fi
exit "$status"
