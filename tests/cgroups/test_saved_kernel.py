"""cgroups/saved.py on the real kernel: `delete`'s removal of a stopped container's cgroup from
its record, without the manager, only when create made it all and the kernel lets each
directory go; exec's move of its process into the cgroup from the record, as the manager's
add_pid."""

import os
import uuid

import pytest

from ocirt.cgroups.saved import joinable, remove_if_empty
from ocirt.errors import OcirtError


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


def test_a_cgroup_with_a_child_cgroup_is_left_to_the_manager_which_removes_the_rest(make_cg):
    cg = make_cg()
    held = cg.dirs()[0]  # the first made: the last leaf tried, after the others went
    child = os.path.join(held, "child")
    os.mkdir(child)
    try:
        assert not remove_if_empty(cg.to_dict())
        assert held in leftovers(cg)
    finally:
        os.rmdir(child)
    cg.destroy()  # the manager, after remove_if_empty gave up part way: the rest goes
    assert leftovers(cg) == []


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


def own_cgroup_lines(pid: int) -> set:
    with open(f"/proc/{pid}/cgroup") as f:
        return set(f.read().splitlines())


def test_exec_joins_every_hierarchy_from_the_record_as_the_manager_does(make_cg, procs):
    by_manager, by_record = make_cg(), make_cg()
    first, second = procs(), procs()
    by_manager.add_pid(first.pid)
    joined = joinable(by_record.to_dict())
    assert joined is not None
    joined.add_pid(second.pid)

    def where(pid: int, cg) -> set:  # /proc/PID/cgroup, the container's own path said "X"
        return {line.replace(cg.cgroups_path, "X") for line in own_cgroup_lines(pid)}

    assert where(second.pid, by_record) == where(first.pid, by_manager)
    assert by_record.pids() == [second.pid]
    assert joined.self_placement() == by_record.self_placement()  # born in, then its own moves


def test_a_move_into_a_cgroup_that_is_gone_names_it(make_cg, procs):
    cg = make_cg()
    saved = cg.to_dict()
    gone = dict(saved, paths={k: v + "-gone" for k, v in saved["paths"].items()})
    if saved.get("unified"):
        gone["unified"] = saved["unified"] + "-gone"
    joined = joinable(gone)
    assert joined is not None
    with pytest.raises(OcirtError, match=r"cannot move process \d+ into cgroup .*-gone"):
        joined.add_pid(procs().pid)


def test_no_record_or_a_systemd_one_is_joined_by_the_manager():
    assert joinable(None) is None
    assert joinable({}) is None
    assert joinable({"kind": "v2", "paths": {}, "unified": "/x", "systemd": {"unit": "u"}}) is None


def test_exec_process_gets_in_by_itself_as_the_managers_move_puts_it(make_cg, procs):
    """Joinable.self_placement (exec's way in): a child born in the cgroup2 directory (hybrid,
    v2) that writes 0 to each v1 hierarchy's `tasks` first thing is where the manager's add_pid
    puts a process, in every hierarchy; from a python with one thread (clone3's condition)."""
    import subprocess
    import sys

    by_manager, by_record = make_cg(), make_cg()
    first = procs()
    by_manager.add_pid(first.pid)
    placement = joinable(by_record.to_dict()).self_placement()
    assert placement == by_record.self_placement()  # the record's, as the manager's
    code = (
        "import os, sys\n"
        "from ocirt.children import fork_placed, open_self_moves\n"
        "from ocirt.kernel.linux import LinuxKernel\n"
        "k = LinuxKernel()\n"
        "born_in, files = sys.argv[1] or None, sys.argv[2:]\n"
        "fds = open_self_moves(k, (born_in, files))\n"
        "pid, placed = fork_placed(k, born_in, lambda: True, os.fork)\n"
        "if pid == 0:\n"
        "    for fd in fds:\n"
        "        k.move_self(fd)\n"
        "    with open('/proc/self/cgroup') as f:\n"
        "        sys.stdout.write(f.read())\n"
        "    sys.stdout.flush()\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "assert placed\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, placement[0] or "", *placement[1]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr

    def where(lines, cg) -> set:  # the container's own path said "X"
        return {line.replace(cg.cgroups_path, "X") for line in lines}

    assert where(out.stdout.splitlines(), by_record) == where(own_cgroup_lines(first.pid), by_manager)
    assert by_record.pids() == []  # it has exited: the cgroup is empty again


def test_a_damaged_record_naming_a_directory_that_is_no_cgroup_removes_nothing(tmp_path, make_cg):
    """created and paths naming an empty directory of another file system (a damaged
    state.json): delete's rmdir would have taken it; it is the manager's, and nothing goes."""
    cg = make_cg()
    empty = tmp_path / "empty"
    empty.mkdir()
    saved = cg.to_dict()
    saved["created"] = [*saved["created"], str(empty)]
    assert not remove_if_empty(saved)
    assert empty.is_dir()
    from ocirt import cgroups

    manager = cgroups.manager_from_state(cg.layout, saved)
    assert str(empty) not in manager.created  # (cgroup.in_hierarchy)
    manager.destroy()
    assert empty.is_dir() and leftovers(cg) == []
