"""cgroups/stopped.py on the real kernel: `delete`'s removal of a stopped container's cgroup from
its record, without the manager, only when create made it all and it is empty."""

import os
import uuid

from ocirt.cgroups.stopped import remove_if_empty


def unique_name() -> str:
    return f"ocirt-test-{os.getpid()}-{uuid.uuid4().hex[:10]}"


def leftovers(cg) -> list:
    return [d for d in cg.dirs() if os.path.exists(d)]


def test_an_empty_cgroup_made_by_create_is_removed_with_its_made_parent(make_cg):
    parent = unique_name()
    cg = make_cg(f"/{parent}/{unique_name()}")
    assert remove_if_empty(cg.to_dict())
    assert leftovers(cg) == []
    assert not any(os.path.exists(os.path.dirname(d)) for d in cg.dirs())  # the parent too


def test_a_cgroup_with_a_process_is_left_to_the_manager(make_cg, procs):
    cg = make_cg()
    cg.add_pid(procs().pid)
    assert not remove_if_empty(cg.to_dict())
    assert leftovers(cg) == cg.dirs()  # nothing removed: the fixture kills and removes


def test_a_cgroup_with_a_child_cgroup_is_left_to_the_manager(make_cg):
    cg = make_cg()
    child = os.path.join(cg.dirs()[0], "child")
    os.mkdir(child)
    try:
        assert not remove_if_empty(cg.to_dict())
        assert leftovers(cg) == cg.dirs()
    finally:
        os.rmdir(child)


def test_a_cgroup_that_existed_before_create_is_left_to_the_manager(make_cg):
    cg = make_cg()
    saved = cg.to_dict()
    saved["created"] = []  # as if it had been there before create
    assert not remove_if_empty(saved)
    assert leftovers(cg) == cg.dirs()


def test_no_record_or_a_systemd_one_is_the_managers():
    assert not remove_if_empty(None)
    assert not remove_if_empty({})
    assert not remove_if_empty(
        {"kind": "v2", "paths": {}, "unified": "/x", "created": ["/x"], "systemd": {"unit": "u"}}
    )
