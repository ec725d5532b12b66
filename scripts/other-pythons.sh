#!/bin/sh
# The conformance suite on ocirt once more for each other Python 3 this machine has on PATH
# (python3.12, python3.13): pyproject.toml asks for >= 3.11, and a user's distribution ships
# its own. Each gets a venv of its own (.venv-3.12, ...) with ocirt installed as a user would
# (`pip install .`); the suite itself runs on the main venv, against that ocirt. Then the unit
# and cgroup tests under that Python (the library itself, from the tree). An interpreter that
# is not there, or that does not start, is skipped with a note.
#   scripts/other-pythons.sh [VERSION...]      (default: 3.12 3.13)
set -eu
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- 3.12 3.13

# The first python$1 that starts and has venv: on PATH, in /usr/bin or /usr/local/bin, or one
# pyenv installed (its shim on PATH answers only for the selected version)
find_python() {
  root=$(pyenv root 2>/dev/null || echo "${HOME:-}/.pyenv")
  for c in "python$1" "/usr/bin/python$1" "/usr/local/bin/python$1" "$root/versions/$1".*/bin/"python$1"; do
    p=$(command -v "$c" 2>/dev/null) || continue
    if "$p" -c 'import venv, ensurepip' >/dev/null 2>&1; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

for v in "$@"; do
  if ! py=$(find_python "$v"); then
    echo "other-pythons: no working python$v with venv here; skipped" >&2
    continue
  fi
  venv=.venv-$v
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade --force-reinstall --no-deps . >/dev/null
  "$venv/bin/python" -m pip install -q . >/dev/null   # (its dependencies, for this interpreter)
  ./scripts/direct-launcher.sh "$venv"
  echo "other-pythons: the conformance suite on ocirt under $("$venv/bin/python" -V)"
  OCI_RUNTIME="$(pwd)/$venv/bin/ocirt" .venv/bin/python -m pytest -n 2 -q -p no:cacheprovider conformance
  "$venv/bin/python" -m pip install -q pytest pytest-xdist hypothesis click >/dev/null   # (click: benchmarks/bench.py, which a unit test loads)
  "$venv/bin/python" -m pytest -n 2 -q -p no:cacheprovider tests/unit tests/cgroups
done
