#!/usr/bin/env bash
# Checks what deploy/release/build.sh left in target/dist/ as a user would use it:
#   the archive: sha256sums.txt verifies, it unpacks to one directory with the binary, LICENSE,
#     README.md, config.example.toml and deploy/, and the unpacked binary runs (--version, and
#     --demo answering a scrape on a loopback port);
#   the .deb (unless --no-deb): dpkg -i installs the binary, the unit (not enabled), the conffiles
#     and the system user; the installed binary runs (--version, --demo); an upgrade keeps an
#     edited conffile; dpkg --purge removes the binary, /etc/tencent-live-exporter and the user.
# Needs root for the .deb part (dpkg). Usage: bash deploy/release/check.sh [--no-deb]
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=deploy/release/common.sh
source deploy/release/common.sh "$@"
scratch=$(mktemp -d)
demo_pid=
cleanup() {
  [[ -n $demo_pid ]] && kill "$demo_pid" 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }
fail() {
  printf 'FAILED: %s\n' "$*" >&2
  exit 1
}

# demo_scrape BINARY: runs BINARY --demo on a free loopback port and waits (bounded) until its
# /metrics reports the demo account's traffic pair up.
demo_scrape() {
  local bin=$1 port out i
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$bin" --demo --log.format=logfmt --web.listen-address="127.0.0.1:$port" 2>"$scratch/demo.log" &
  demo_pid=$!
  for i in $(seq 1 100); do
    out=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' \
      "http://127.0.0.1:$port/metrics" 2>/dev/null || true)
    if [[ $out == *'tencent_live_up{account="demo",package_type="traffic"} 1'* ]]; then
      kill "$demo_pid"
      wait "$demo_pid" || true
      demo_pid=
      grep -c '^process_' <<<"$out" | xargs printf '%s: --demo answered a scrape (tencent_live_up 1, %s process_* lines)\n' "$bin"
      return 0
    fi
    sleep 0.1
  done
  cat "$scratch/demo.log" >&2
  fail "$bin --demo did not answer a scrape with tencent_live_up 1 within 10 s"
}

step "sha256sums.txt"
(cd "$dist" && sha256sum -c sha256sums.txt)

step "the archive"
arch_tar=$(cd "$dist" && ls "$name-$version".linux-*.tar.gz)
tar -C "$scratch" -xzf "$dist/$arch_tar"
top=${arch_tar%.tar.gz}
[[ $(ls "$scratch") == "$top" ]] || fail "$arch_tar does not unpack to one directory $top"
for f in "$name" LICENSE README.md README.zh-CN.md CHANGELOG.md config.example.toml deploy/systemd/$name.service \
  deploy/prometheus/alerts.yml deploy/grafana/tencent-live-packages.json deploy/tencent/live-readonly-policy.json; do
  [[ -e $scratch/$top/$f ]] || fail "$arch_tar has no $top/$f"
done
[[ -x $scratch/$top/$name ]] || fail "the archive's binary is not executable"
grep -q "Apache License" "$scratch/$top/LICENSE" || fail "LICENSE is not the Apache License"
"$scratch/$top/$name" --version | tee "$scratch/version"
grep -q "$version" "$scratch/version" || fail "--version does not say $version"
demo_scrape "$scratch/$top/$name"

[[ -n $with_deb ]] || exit 0

step "the .deb: dpkg -i"
deb=$(cd "$dist" && ls "${name}_$version"-*.deb)
dpkg-deb --info "$dist/$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$dist/$deb" | awk '{print $1, $2, $6}' | grep -v '/$' | sed -n 1,12p  # sed reads to the end: head would close the pipe early and SIGPIPE would fail pipefail
if dpkg-query -W "$name" >/dev/null 2>&1; then dpkg --purge "$name" >/dev/null; fi
dpkg -i "$dist/$deb"
[[ -x /usr/bin/$name ]] || fail "no /usr/bin/$name"
unit=$(dpkg -L "$name" | grep -E "/systemd/system/$name\.service$") || fail "no systemd unit installed"
grep -q "^ExecStart=/usr/bin/$name " "$unit" || fail "$unit does not run /usr/bin/$name"
grep -q "^User=$name$" "$unit" || fail "$unit does not run as $name"
if compgen -G "/etc/systemd/system/*.wants/$name.service" >/dev/null; then
  fail "the unit was enabled at install: it needs keys first"
fi
conffiles=$(dpkg-query --control-show "$name" conffiles)
for f in /etc/$name/config.toml /etc/$name/env; do
  grep -q "^ *$f" <<<"$conffiles" || fail "$f is not a conffile: $conffiles"
done
getent passwd "$name" >/dev/null || fail "no system user $name"
[[ $(stat -c '%a %U %G' /etc/$name/config.toml) == "640 root $name" ]] ||
  fail "config.toml is $(stat -c '%a %U %G' /etc/$name/config.toml), not 640 root $name"
[[ $(stat -c '%a %U %G' /etc/$name/env) == "600 root root" ]] ||
  fail "env is $(stat -c '%a %U %G' /etc/$name/env), not 600 root root"
[[ -f /usr/share/doc/$name/deploy/prometheus/alerts.yml && -f /usr/share/doc/$name/README.md ]] ||
  fail "docs or deploy/ missing under /usr/share/doc/$name"
[[ -f /usr/share/doc/$name/copyright ]] || fail "no /usr/share/doc/$name/copyright"
echo "installed: /usr/bin/$name, $unit (not enabled), conffiles, user $name, docs"

step "the installed binary"
/usr/bin/$name --version
demo_scrape /usr/bin/$name
# The shipped config.toml is all comments: it validates as it is (one account, keys from the chain).
TENCENTCLOUD_SECRET_ID=AKIDcheck TENCENTCLOUD_SECRET_KEY=check \
  runuser -u "$name" -- /usr/bin/$name --check-config --config.file=/etc/$name/config.toml >/dev/null ||
  fail "the system user cannot load /etc/$name/config.toml"

step "upgrade: a newer package keeps an edited conffile"
echo '# edited by the administrator' >>/etc/$name/config.toml
dpkg-deb -R "$dist/$deb" "$scratch/pkg"
sed -i -E "s/^Version: .*/Version: $version-99/" "$scratch/pkg/DEBIAN/control"
dpkg-deb --root-owner-group -b "$scratch/pkg" "$scratch/upgrade.deb" >/dev/null
dpkg -i "$scratch/upgrade.deb"
[[ $(dpkg-query -W -f '${Version}' "$name") == "$version-99" ]] || fail "upgrade did not install"
grep -q '^# edited by the administrator$' /etc/$name/config.toml || fail "the upgrade lost an edit of config.toml"
[[ $(stat -c '%a %U %G' /etc/$name/config.toml) == "640 root $name" ]] || fail "the upgrade changed config.toml's mode"
/usr/bin/$name --version >/dev/null

step "dpkg --purge"
dpkg --purge "$name"
[[ ! -e /usr/bin/$name ]] || fail "/usr/bin/$name left after purge"
[[ ! -e /etc/$name ]] || fail "/etc/$name left after purge"
! getent passwd "$name" >/dev/null || fail "user $name left after purge"
! getent group "$name" >/dev/null || fail "group $name left after purge"
[[ ! -e $unit ]] || fail "$unit left after purge"
echo "purged: binary, unit, /etc/$name, user and group gone"
echo "release artefacts OK"
