#!/bin/sh
# The whole test run (after scripts/setup.sh): ruff (lint, format) and mypy, unit + kernel tests and the conformance suite on
# ocirt, the conformance suite on runc (the reference), the suite on ocirt under the other Pythons
# this machine has (scripts/other-pythons.sh), then the cgroup tests on a v2-only kernel.
set -eu
cd "$(dirname "$0")/.."
py=.venv/bin/python
# lint, format and types first: fast, and they fail early
$py -m ruff check ocirt tests conformance benchmarks experiments
$py -m ruff format --check ocirt tests conformance benchmarks experiments
$py -m mypy
$py -m pytest -n 2 tests conformance
OCI_RUNTIME=runc $py -m pytest -n 2 -q conformance
./scripts/other-pythons.sh
./scripts/v2vm-tests.sh
