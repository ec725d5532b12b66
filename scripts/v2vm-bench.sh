#!/bin/sh
# benchmarks/bench.py on a cgroup-v2-only kernel, in the v2 VM of ../shared/v2vm.
# Usage: scripts/v2vm-bench.sh [bench.py args...]   (default: 5 rounds of the timed metrics)
#        OCIRT_B=<another venv> scripts/v2vm-bench.sh ...   (A/B: that venv's ocirt in runc's place;
#        it must be in a folder the guest shares, as ../shared/v2vm/README.md lists them; not /tmp)
#
# Inside the VM the host's files (/ and the repo) are reached over 9p, where every stat, open
# and read is a round trip to the host: a Python command, which opens dozens of files as it
# starts and imports, would measure that, not itself. So the guest first copies the runtimes
# to its own tmpfs the interpreter (python3.11 and its standard library) with ocirt's installed
# package and its run-time dependencies as a venv; the benchmark runs that copy (the floor is
# the copied interpreter's start). runc stays where it is installed: one binary, mapped once
# and then served from the guest's page cache (a copy of it on the guest's tmpfs ran `runc
# run` 2.5x slower there: 875 ms against 353, medians of 8). The shared libraries both load
# (libc and the like) stay on the host's /, for both alike.
set -eu
. "$(dirname "$0")/v2vm-env.sh"
if ! v2vm_setup; then
  echo "v2vm-bench: no v2 VM harness at $vm" >&2
  exit 1
fi
[ $# -gt 0 ] || set -- --rounds 5 --only run --only lifecycle --only state --only short --only exec
py=$(readlink -f "$repo/.venv/bin/python3")
ver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
stdlib=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
site="$repo/.venv/lib/python$ver/site-packages"
runc=${RUNC:-$(command -v runc)}
b=""
if [ -n "${OCIRT_B:-}" ]; then
  b=$(cd "$OCIRT_B" && pwd)/lib/python$ver/site-packages
  [ -d "$b/ocirt" ] || { echo "v2vm-bench: no ocirt in $b" >&2; exit 1; }
fi
exec "$vm/run-in-v2vm.sh" "set -eu; cd '$repo'; export TMPDIR=/tmp
L=/tmp/local; mkdir -p \$L/py/bin \$L/py/lib
cp '$py' \$L/py/bin/python$ver
tar -C '$(dirname "$stdlib")' --exclude=test --exclude=idlelib --exclude=tkinter --exclude=turtledemo \
  -cf - 'python$ver' | tar -C \$L/py/lib -xf -
local_venv() {  # \$1: the guest's venv, \$2: the site-packages its packages come from
  mkdir -p \$1/bin \$1/lib/python$ver/site-packages
  ln -s \$L/py/bin/python$ver \$1/bin/python3
  printf 'home = %s\ninclude-system-site-packages = false\nversion = %s\n' \$L/py/bin $ver > \$1/pyvenv.cfg
  (cd \$2 && cp -a ocirt ocirt-*.dist-info cffi _cffi_backend*.so pycparser jsonschema \
    jsonschema_specifications referencing rpds attrs attr pyroute2 typing_extensions.py \$1/lib/python$ver/site-packages/)
  sed '1s|.*|#!'\$1'/bin/python3 -IS|' '$repo/.venv/bin/ocirt' > \$1/bin/ocirt
  chmod +x \$1/bin/ocirt
  \$1/bin/ocirt --root /run/ocirt run --bundle bundles/default v2-bench-smoke >/dev/null
}
local_venv \$L/venv '$site'
B='$runc'
if [ -n '$b' ]; then local_venv \$L/venvb '$b'; B=\$L/venvb/bin/ocirt; fi
'$repo/.venv/bin/python' benchmarks/bench.py --runtime-a \$L/venv/bin/ocirt --runtime-b \$B $*"
