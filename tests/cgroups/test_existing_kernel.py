"""A container's cgroup that exists before create (runc's rules): a frozen one is refused, a
non-empty one is joined with a warning, delete removes it when nothing else is in it; and
exec --cgroup's sub-cgroups (Manager.sub)."""

import os
import uuid

import pytest

from ocirt import cgroups
from ocirt.errors import OcirtError


def unique_name() -> str:
    return f"ocirt-test-{os.getpid()}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def existing(make_cg):
    """A cgroup made beforehand (as an engine or an administrator would), and a second manager
    of the same path, as the container's create would have it."""

    def make():
        first = make_cg()
        second = cgroups.manager_for(first.layout, first.cgroups_path, unique_name())
        return first, second

    return make


def test_frozen_cgroup_refused_before_a_process_goes_in(existing):
    first, second = existing()
    first.freeze()
    with pytest.raises(OcirtError, match="container's cgroup unexpectedly frozen"):
        second.create()
    first.thaw()


def test_frozen_parent_refused_and_what_was_made_removed(make_cg, layout):
    parent = make_cg()
    parent.freeze()
    child = cgroups.manager_for(layout, parent.cgroups_path + "/child", unique_name())
    with pytest.raises(OcirtError, match="unexpectedly frozen"):
        child.create()
    assert not any(os.path.exists(d) for d in child.dirs()), "the refused create left its dirs"
    parent.thaw()


def test_non_empty_cgroup_joined_with_a_warning(existing, procs):
    first, second = existing()
    first.add_pid(procs().pid)
    warnings = []
    second.create(warn=warnings.append)
    assert warnings == ["container's cgroup is not empty: 1 process(es) found"]


def test_empty_existing_cgroup_no_warning(existing):
    _, second = existing()
    warnings = []
    second.create(warn=warnings.append)
    assert warnings == []


def test_destroy_removes_an_existing_empty_cgroup(existing):
    first, second = existing()
    second.create()
    assert second.created == [] or all(d not in second.created for d in second.dirs())
    second.destroy()
    assert not any(os.path.exists(d) for d in second.dirs())


def test_destroy_leaves_an_existing_cgroup_with_processes(existing, procs):
    first, second = existing()
    second.create()
    p = procs()
    first.add_pid(p.pid)
    second.destroy()
    assert p.poll() is None, "destroy touched a process"
    assert os.path.isdir(first.path())


def test_sub_cgroup(cg, procs):
    started = []
    for d in cg.dirs():
        os.mkdir(os.path.join(d, "sub"))
        for name in ("cpuset.cpus", "cpuset.mems"):  # v1: an empty cpuset takes no task
            # (v2: the sub-cgroup has cpuset files only where the controller is enabled for it)
            if os.path.exists(os.path.join(d, name)) and os.path.exists(os.path.join(d, "sub", name)):
                with open(os.path.join(d, name)) as f, open(os.path.join(d, "sub", name), "w") as out:
                    out.write(f.read().strip())
    try:
        sub = cg.sub({"": "sub"})
        assert sub.dirs() == [os.path.join(d, "sub") for d in cg.dirs()]
        p = procs()
        started.append(p)
        sub.add_pid(p.pid)
        assert p.pid in cg.pids()
        assert sub.created == []
        with pytest.raises(OcirtError, match="not a sub cgroup path"):
            cg.sub({"": "../escape"})
        with pytest.raises(OcirtError, match="no sub-cgroup"):
            cg.sub({"": "missing"})
        if cg.kind != "v2":
            with pytest.raises(OcirtError, match="unknown controller"):
                cg.sub({"no-such-controller": "sub"})
    finally:
        for p in started:
            p.kill()
            p.wait()
        cg.wait_empty()
        for d in cg.dirs():
            os.rmdir(os.path.join(d, "sub"))


def test_sub_cgroup_of_one_controller(cg):
    if cg.kind == "v2":
        pytest.skip("v1: per controller")
    controller = next(iter(cg.paths))
    os.mkdir(os.path.join(cg.paths[controller], "one"))
    try:
        sub = cg.sub({controller: "one"})
        assert sub.paths[controller] == os.path.join(cg.paths[controller], "one")
        assert all(sub.paths[c] == d for c, d in cg.paths.items() if c != controller)
        assert sub.unified == cg.unified
    finally:
        os.rmdir(os.path.join(cg.paths[controller], "one"))
