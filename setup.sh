#!/usr/bin/env bash
# Quick start on a fresh Debian/Ubuntu machine, as root: install the static
# busybox the default image is built from, build mcm's static release binaries, and
# run a first container on the built-in `busybox` image.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (containers need it): sudo ./setup.sh" >&2
  exit 1
fi
if ! [ -x /bin/busybox ] || ! /bin/busybox --help >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq busybox-static >/dev/null
fi
# Static release binaries (an alias in .cargo/config.toml).
cargo static
bin="target/$(rustc -vV | sed -n 's/^host: //p')/release"
"$bin/mcm" run --rm busybox echo "hello from an mcm container"
echo "mcm is ready: $bin/mcm (install: see README)"
