#!/bin/sh
# Set up ocirt on a fresh Debian 12 machine (as root): system packages, the container engines the
# tests in tests/engines drive (podman, containerd, docker), a virtualenv in .venv with ocirt and
# its test tools, and the busybox rootfs of the bundled default bundle.
set -eu
cd "$(dirname "$0")/.."
need=""
# ocirt's Python: the distribution's where there is one (Debian builds it with a static libpython,
# LTO and PGO: each command starts ~1 ms sooner and runs ~15% faster than on a --enable-shared
# build, docs/PERFORMANCE.md), else the first python3 on PATH
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
command -v runc >/dev/null 2>&1 || need="$need runc"
dpkg -s busybox-static >/dev/null 2>&1 || need="$need busybox-static"
$py -c 'import venv, ensurepip' >/dev/null 2>&1 || need="$need python3-venv"
# the system's Python 3 too: the rootless tests run ocirt as uid 1000, who may not reach .venv's
[ -x /usr/bin/python3 ] || need="$need python3"
command -v strace >/dev/null 2>&1 || need="$need strace"   # tests: SIGKILL at each step of create
# a static C probe for raw syscalls (conformance/test_security.py: seccomp's ENOSYS)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ "$(uname -m)" != x86_64 ] || need="$need gcc libc6-dev"
# the shells the completion tests type into (tests/unit/test_manual.py)
command -v zsh >/dev/null 2>&1 || need="$need zsh"
[ -e /usr/share/bash-completion/bash_completion ] || need="$need bash-completion"
if [ -n "$need" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
# The engines (see tests/engines): the tests start and stop them with private state. Installed
# without recommends, and with a policy-rc.d that forbids starting services for the time of the
# install, so that no packaged daemon (docker, containerd) is started.
engines=""
for p in podman conmon catatonit fuse-overlayfs containerd docker.io skopeo umoci \
         containernetworking-plugins uidmap iptables; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || engines="$engines $p"
done
if [ -n "$engines" ]; then
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  log=$(mktemp)
  # quiet: the install's output (invoke-rc.d's "denied" notes among it) only shows if it fails
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -qq --no-install-recommends $engines; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
  rm -f "$log"
  if [ -n "$policy" ]; then rm -f "$policy"; trap - EXIT; fi
fi
[ -x .venv/bin/python ] || $py -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check '.[test,plots]'
sh scripts/direct-launcher.sh .venv   # the installed ocirt starts its Python directly
[ -x bundles/default/rootfs/bin/busybox ] || sh bundles/mkrootfs.sh bundles/default/rootfs
