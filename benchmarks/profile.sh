#!/bin/sh
# Where does ocirt's time go? Two views, for one command each:
#   1. python -X importtime of `ocirt state x`: the top imports by cumulative time, then by self time
#      (`state` of a missing container: startup, CLI and the state path's imports, no kernel work);
#   2. strace -f -c of one `ocirt run` of /bin/true (the benchmark's bundle): syscall counts and
#      system time, summed over the runtime and every process it forks.
#
#   benchmarks/profile.sh [OCIRT] [TOP]      (as root)
#
# OCIRT defaults to .venv/bin/ocirt, else `ocirt` on PATH; TOP (default 25) is the number of import
# lines shown. STRACE_OPTS adds options to strace (e.g. STRACE_OPTS=-w for wall-clock time per
# syscall instead of system time). Leaves nothing behind: the container is deleted, its cgroups
# and the temp dir removed.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
ocirt=${1:-}
top=${2:-25}
if [ -z "$ocirt" ]; then
  if [ -x "$repo/.venv/bin/ocirt" ]; then ocirt=$repo/.venv/bin/ocirt; else ocirt=$(command -v ocirt || true); fi
fi
[ -n "$ocirt" ] && [ -x "$ocirt" ] || { echo "profile.sh: no ocirt found (give its path)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "profile.sh: run as root" >&2; exit 1; }

# The interpreter the ocirt launcher (bin/ocirt) starts, with its flags (-I -S), so importtime sees
# the same imports: the python3 beside it, else a source tree's .venv, else python3 on PATH. A
# script with a #! line naming Python instead (an older install) is run with that interpreter.
dir=$(dirname "$ocirt")
script=$ocirt
flags="-I -S"
if head -n 1 "$ocirt" | grep -q '^#!.*python'; then
  set -- $(head -n 1 "$ocirt" | sed -n 's/^#! *//p')
  if [ "$(basename "$1")" = env ]; then shift; fi
  py=$1; shift; flags="$*"
elif [ -x "$dir/python3" ]; then py=$dir/python3
elif [ -x "$dir/../.venv/bin/python3" ]; then py=$dir/../.venv/bin/python3
else py=python3
fi

tmp=$(mktemp -d /tmp/ocirt-profile-XXXXXX)
id="profile-$$"
cleanup() {
  "$ocirt" --root "$tmp/root" delete --force "$id" >/dev/null 2>&1 || true
  for d in /sys/fs/cgroup/*/ocirt-bench/"$id" /sys/fs/cgroup/ocirt-bench/"$id"; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
  done
  for d in /sys/fs/cgroup/*/ocirt-bench /sys/fs/cgroup/ocirt-bench; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null || true  # only when empty: another run may use it
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---- 1. import times -----------------------------------------------------------------------
# shellcheck disable=SC2086
"$py" $flags $script --root "$tmp/root" state x >/dev/null 2>&1 || true  # warm the .pyc cache
# shellcheck disable=SC2086
"$py" $flags -X importtime $script --root "$tmp/root" state x 2>"$tmp/imports" >/dev/null || true
echo "== python $flags -X importtime $ocirt state x   (microseconds; $py)"
grep '^import time:' "$tmp/imports" | sed 's/^import time://' | awk -F'|' '
  NR == 1 { next }                                   # the header line
  { self = $1 + 0; cum = $2 + 0; name = $3; sub(/^ /, "", name)
    top = (name !~ /^ /); n = name; gsub(/^ +/, "", n)
    if (top) total += cum
    count++
    printf "%10d %10d  %s\n", cum, self, name > "/dev/stderr" }
  END { printf "%d modules imported, top-level imports %.1f ms cumulative\n", count, total / 1000 }
' 2>"$tmp/rows"
echo
printf "%10s %10s  %s\n" cumul self "module (by cumulative time, indented = imported by the line above it)"
sort -k1,1nr "$tmp/rows" | head -n "$top"
echo
printf "%10s %10s  %s\n" cumul self "module (by self time)"
sort -k2,2nr "$tmp/rows" | head -n 10
for bad in click jsonschema pyroute2; do
  if awk '{print $3}' "$tmp/rows" | grep -qx "$bad"; then
    echo "NOTE: $bad is imported by 'state' (docs/DESIGN.md: hot commands must not import it)"
  fi
done
"$py" - "$ocirt" "$tmp/root" "$py" <<'EOF'
import statistics, subprocess, sys, time
ocirt, root, py = sys.argv[1:]
def med(argv, n=11):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3
print(f"wall time of `ocirt state x` without importtime: median {med([ocirt, '--root', root, 'state', 'x']):.1f} ms"
      f"; for scale, the same interpreter: `-I -S -c pass` {med([py, '-I', '-S', '-c', 'pass']):.1f} ms"
      f", `-c pass` {med([py, '-c', 'pass']):.1f} ms")
EOF

# ---- 2. syscalls of one `ocirt run` -----------------------------------------------------------
if ! command -v strace >/dev/null 2>&1; then
  echo "installing strace" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null
fi
python3 "$repo/benchmarks/bench.py" --write-bundle "$tmp/bundle" --bundle-id "$id"
echo
echo "== strace -f -c ${STRACE_OPTS:-}$ocirt run /bin/true   (all processes of the run, summed)"
rc=0
# shellcheck disable=SC2086
strace -f -c ${STRACE_OPTS:-} -o "$tmp/strace" "$ocirt" --root "$tmp/root" run --bundle "$tmp/bundle" "$id" \
  </dev/null >/dev/null 2>"$tmp/run.err" || rc=$?
cat "$tmp/strace"
if [ "$rc" != 0 ]; then
  echo "NOTE: ocirt run exited $rc: $(tail -n 3 "$tmp/run.err")"
fi
