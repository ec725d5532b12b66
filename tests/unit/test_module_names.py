"""The test modules' basenames are unique across tests/ and conformance/: neither has an
__init__.py, so pytest imports each module by its basename, and two of one name in a run (CI
collects both trees in one) end it with an "import file mismatch" error before any test runs."""

import collections
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_no_two_test_modules_share_a_basename():
    seen = collections.defaultdict(list)
    for tree in ("tests", "conformance"):
        for directory, _dirs, files in os.walk(os.path.join(REPO, tree)):
            for name in files:
                if name.startswith("test_") and name.endswith(".py"):
                    seen[name].append(os.path.relpath(os.path.join(directory, name), REPO))
    assert {n: p for n, p in seen.items() if len(p) > 1} == {}
