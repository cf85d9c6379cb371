#!/usr/bin/env bash
# Builds the release artefacts from ONE `cargo build --release --locked`, into target/dist/:
#   tencent-live-exporter-<version>.linux-<arch>.tar.gz   promu's layout: one directory holding
#       the binary, LICENSE, README.md, README.zh-CN.md, CHANGELOG.md, config.example.toml and deploy/
#   tencent-live-exporter_<version>-1_<debian arch>.deb    `cargo deb --no-build` (needs cargo-deb:
#       cargo install --locked cargo-deb --version 3.6.0); left out with --no-deb
#   sha256sums.txt                                         `sha256sum -c sha256sums.txt` checks both
# <arch> is Go's name for the machine (amd64, arm64), as in Prometheus' own archives.
# Usage: bash deploy/release/build.sh [--no-deb]      deploy/release/check.sh verifies the result.
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=deploy/release/common.sh
source deploy/release/common.sh "$@"
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  armv7l) arch=armv7 ;;
  i?86) arch=386 ;;
  *) arch=$(uname -m) ;;
esac
stage=$name-$version.linux-$arch

echo "==> cargo build --release --locked ($name $version, linux-$arch)"
cargo build --release --locked
rm -rf "$dist"
mkdir -p "$dist/$stage"
install -m 0755 "$target/release/$name" "$dist/$stage/"
# No debug info is built in release; the symbol table goes too, as cargo deb does for the .deb.
if command -v strip >/dev/null; then strip --strip-unneeded "$dist/$stage/$name"; fi
install -m 0644 LICENSE README.md README.zh-CN.md CHANGELOG.md config.example.toml "$dist/$stage/"
cp -R deploy "$dist/$stage/"
tar -C "$dist" --owner=0 --group=0 --numeric-owner --sort=name -czf "$dist/$stage.tar.gz" "$stage"
rm -rf "${dist:?}/$stage"

if [[ -n $with_deb ]]; then
  echo "==> cargo deb --no-build (the binary built above)"
  cargo deb --no-build --locked --output "$dist/"
fi
(cd "$dist" && shopt -s nullglob && sha256sum -- *.tar.gz *.deb >sha256sums.txt)
echo "==> $dist"
(cd "$dist" && ls -l && cat sha256sums.txt)
