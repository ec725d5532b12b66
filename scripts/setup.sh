#!/bin/sh
# Set up ocirt on a fresh Debian 12 machine (as root): system packages, a virtualenv in .venv with
# ocirt and its test tools, and the busybox rootfs of the bundled default bundle.
set -eu
cd "$(dirname "$0")/.."
need=""
command -v runc >/dev/null 2>&1 || need="$need runc"
dpkg -s busybox-static >/dev/null 2>&1 || need="$need busybox-static"
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need="$need python3-venv"
command -v python3 >/dev/null 2>&1 || need="$need python3"
if [ -n "$need" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check '.[test]'
[ -x bundles/default/rootfs/bin/busybox ] || sh bundles/mkrootfs.sh bundles/default/rootfs
