#!/bin/sh
# Run the cgroup tests again on a cgroup-v2-only kernel, in the v2 VM of ../shared/v2vm
# (this host is v1 "hybrid"; on a v2 host the same tests simply run natively).
# Usage: scripts/v2vm-tests.sh [pytest args...]   (default: the cgroup subset)
set -eu
. "$(dirname "$0")/v2vm-env.sh"
if ! v2vm_setup; then
  echo "v2vm-tests: no v2 VM harness at $vm; skipping the cgroup v2 run" >&2
  exit 0
fi
[ $# -gt 0 ] || set -- tests/cgroups tests/test_rootless.py conformance/test_cgroups.py conformance/test_systemd.py \
  tests/test_criu.py tests/engines/test_podman_checkpoint.py \
  tests/test_adversity_commands.py tests/test_adversity_create.py tests/test_waiting_init.py tests/unit/test_waiter.py
# state, sockets and fifos must not live on the shared folders inside the guest
exec "$vm/run-in-v2vm.sh" "cd '$repo' && export TMPDIR=/tmp && \
  '$repo/.venv/bin/ocirt' --root /run/ocirt run --bundle bundles/default v2-smoke && \
  '$repo/.venv/bin/python' -m pytest -q -p no:cacheprovider -p no:randomly $*"
