"""Fixtures for the real-kernel cgroup tests (root; v1/hybrid on the host, v2 in the VM).

Every cgroup is named ocirt-test-<pid>-<uuid> so runs (and pytest-xdist workers) never
collide, and everything made is removed in the fixture's teardown.
"""

import os
import signal
import subprocess
import uuid

import pytest

from ocirt import cgroups


def unique_name() -> str:
    return f"ocirt-test-{os.getpid()}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def layout():
    return cgroups.detect()


@pytest.fixture
def root_only():
    if os.geteuid() != 0:
        pytest.skip("needs root (writes to cgroupfs)")


@pytest.fixture
def procs():
    """Start helper processes; all killed and reaped at teardown."""
    started = []

    def start(*argv, **kw):
        p = subprocess.Popen(list(argv) or ["sleep", "1000"], stdin=subprocess.DEVNULL, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait(timeout=10)


def leftovers(cg) -> list:
    return [d for d in cg.dirs() if os.path.exists(d)]


@pytest.fixture
def make_cg(layout, root_only):
    """make_cg(cgroups_path=None) -> created cgroup manager; destroyed (and checked gone) at teardown."""
    made = []

    def make(cgroups_path=None, create=True):
        name = unique_name()
        path = cgroups_path if cgroups_path is not None else "/" + name
        cg = cgroups.manager_for(layout, path, name)
        made.append(cg)
        if create:
            cg.create()
        return cg

    yield make
    for cg in made:
        try:
            if cg.frozen():  # thaw so that killed processes can die
                cg.thaw()
            if cg.pids():
                cg.kill_all(signal.SIGKILL)
                cg.wait_empty(5)
        finally:
            cg.destroy()
    for cg in made:
        assert leftovers(cg) == [], "destroy left cgroup directories behind"


@pytest.fixture
def cg(make_cg):
    return make_cg()
