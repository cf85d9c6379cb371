# The start build.sh and check.sh share (sourced, from the repository root): the --no-deb flag,
# the package name, Cargo.toml's version and where the artefacts go.
#   with_deb  1, or empty with --no-deb
#   name      tencent-live-exporter
#   version   the [package] version of Cargo.toml
#   target    cargo's target directory (CARGO_TARGET_DIR or ./target)
#   dist      $target/dist
with_deb=1
[[ ${1:-} == --no-deb ]] && with_deb=
name=tencent-live-exporter
version=$(sed -nE '0,/^version = "([^"]+)"/s//\1/p' Cargo.toml)
target=$(cargo metadata --no-deps --locked --format-version 1 |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
dist=$target/dist
