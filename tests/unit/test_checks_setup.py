"""The tree's checks (ruff, mypy, run by scripts/test.sh) and the typing they rest on: records
whose fields the type checker sees, and the guards that replaced unchecked Optionals."""

import os
import tomllib

import pytest

from ocirt import stages
from ocirt.cgroups import resources
from ocirt.cgroups.layout import Layout
from ocirt.errors import ConfigError, OcirtError
from ocirt.record import fields
from ocirt.state import ContainerState

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_test_sh_runs_lint_format_and_types_before_the_tests():
    with open(os.path.join(ROOT, "scripts", "test.sh")) as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    checks = [
        "$py -m ruff check ocirt tests conformance benchmarks experiments",
        "$py -m ruff format --check ocirt tests conformance benchmarks experiments",
        "$py -m mypy",
    ]
    at = [lines.index(c) for c in checks]
    first_pytest = next(i for i, line in enumerate(lines) if "pytest" in line)
    assert at == sorted(at) and at[-1] < first_pytest


def test_pyproject_installs_and_configures_the_checkers():
    project = _pyproject()
    test_extra = " ".join(project["project"]["optional-dependencies"]["test"])
    assert "ruff" in test_extra and "mypy" in test_extra
    assert "bin/ocirt" in project["tool"]["ruff"]["extend-exclude"]  # a shell/Python polyglot
    assert project["tool"]["mypy"]["packages"] == ["ocirt"]


def _record_classes():
    return [
        c
        for c in vars(resources).values()
        if isinstance(c, type) and issubclass(c, resources._Record) and c is not resources._Record
    ]


@pytest.mark.parametrize("cls", _record_classes(), ids=lambda c: c.__name__)
def test_resource_records_annotate_exactly_their_fields(cls):
    # the annotations are what the type checker knows; _fields/__slots__ what runs
    assert tuple(cls.__dict__["__annotations__"]) == cls._fields == cls.__slots__


def test_resource_records_still_default_and_compare():
    r = resources.Resources()
    assert r.memory == resources.Memory() and r.memory.limit is None and r.rdma == []
    assert r.block_io.throttle == {} and r.block_io.weight_device == []
    assert resources.Resources.parse({"cpu": {"quota": 100, "burst": 50}}).cpu.burst == 50
    with pytest.raises(ConfigError, match="larger than quota"):
        resources.Resources.parse({"cpu": {"quota": 100, "burst": 200}})


def test_record_fields_of_a_class():
    assert fields(ContainerState)[0] == "id"
    assert fields(ContainerState) == fields(ContainerState(id="c", pid=1, bundle="/b"))


def test_layout_cgroup2_mount_point():
    assert Layout("v2", unified="/sys/fs/cgroup").cgroup2() == "/sys/fs/cgroup"
    with pytest.raises(OcirtError, match="cgroup v2 is not mounted"):
        Layout("v1", mounts={"memory": "/sys/fs/cgroup/memory"}).cgroup2()


def test_init_effects_without_a_channel_say_so():
    with pytest.raises(OcirtError, match="no channel"):
        stages.InitEffects(None).map_user_ns()


def test_seccomp_notify_fd_without_a_listener_path_is_closed():
    from ocirt.seccomp import Filter

    flt = Filter.__new__(Filter)  # only what send_to_listener reads
    flt.listener_path, flt.listener_metadata = None, None
    r, w = os.pipe()
    os.close(w)
    with pytest.raises(OcirtError, match="no listenerPath"):
        flt.send_to_listener(r, {"ociVersion": "1.2.0", "pid": 1})
    with pytest.raises(OSError):
        os.fstat(r)  # closed, as on every other path
