# Sourced by scripts/v2vm-tests.sh and scripts/v2vm-bench.sh: into the repo's root ($repo), and
# $vm, the v2 VM harness (../shared/v2vm, or $V2VM_DIR); `v2vm_setup` makes it ready, false
# where there is none; a setup that fails ends the caller with its status (in an `if`, set -e
# would not).
cd "$(dirname "$0")/.."
repo=$(pwd)
vm=${V2VM_DIR:-$repo/../shared/v2vm}

v2vm_setup() {
  [ -x "$vm/run-in-v2vm.sh" ] || return 1
  "$vm/setup.sh" >/dev/null || exit $?
}
