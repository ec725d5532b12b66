"""Bad cgroup input: `unified` keys that name cgroup core files, a cgroupsPath through a cgroup
file, and `delete --force` of a container whose state.json is damaged.

No test writes the pid of a host process that is not its own into a cgroup file: the pid
`unified` names is a `sleep` the test started.
"""

import json
import os
import shutil

import pytest
from runtime import assert_failed_cleanly, cgroup_dirs, one_line, pid_alive, read_text, remove_cgroup_trees

SLEEP = ["sleep", "1000"]


def _cgroups(pid):
    return read_text(f"/proc/{pid}/cgroup")


@pytest.mark.runc_deviates(
    "runc 1.1.5 writes every unified key as given, cgroup.procs included (a process of the host "
    "moved into the container's cgroup); on a hybrid host it refuses all of unified, which passes",
    strict=False,
)
@pytest.mark.parametrize("key", ["cgroup.procs", "cgroup.threads", "cgroup.kill", "cgroup.subtree_control"])
def test_unified_core_file_is_refused(rt, make_bundle, host_process, key):
    """A cgroup core file is not a resource: create fails naming the key, writes nothing."""
    sleeper = host_process(SLEEP)
    before = _cgroups(sleeper.pid)
    value = {"cgroup.kill": "1", "cgroup.subtree_control": "+pids"}.get(key, str(sleeper.pid))
    b = make_bundle(SLEEP, linux={"resources": {"unified": {key: value}}})
    p = rt.create(b.id, b)
    try:
        assert_failed_cleanly(rt, b, p, pointer=f"/linux/resources/unified/{key}")
    finally:
        rt.delete(b.id, force=True)
        assert _cgroups(sleeper.pid) == before
    assert sleeper.poll() is None


@pytest.mark.parametrize("key", ["cgroup.procs", "cgroup.kill"])
def test_update_refuses_a_unified_core_file(rt, make_bundle, tmp_path, host_process, key):
    """`update -r` takes the same resources: the same refusal (runc on cgroup v1 and hybrid refuses
    unified altogether)."""
    sleeper = host_process(SLEEP)
    before = _cgroups(sleeper.pid)
    b = make_bundle(SLEEP)
    assert rt.create(b.id, b).returncode == 0
    res = tmp_path / "resources.json"
    res.write_text(json.dumps({"unified": {key: str(sleeper.pid) if key == "cgroup.procs" else "1"}}))
    if rt.is_runc and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.xfail("runc 1.1.5 writes unified keys blindly on cgroup v2")
    p = rt("update", "-r", str(res), b.id)
    assert p.returncode != 0
    if rt.is_ocirt:  # (runc: a warning line before its error)
        line = one_line(p.stderr)
        assert f"/unified/{key}" in line, line
    assert _cgroups(sleeper.pid) == before
    assert rt.status(b.id) == "created"
    assert rt.delete(b.id, force=True).returncode == 0


@pytest.mark.runc_deviates(
    "runc 1.1.5 fails (not a directory) but leaves the directories it made for the path"
)
@pytest.mark.parametrize("name", ["cgroup.procs", "tasks", "cpuset.cpus"])
def test_cgroups_path_through_a_cgroup_file_leaves_nothing(rt, make_bundle, name):
    """linux.cgroupsPath whose last component is a file of its parent cgroup (in one hierarchy or
    all): create fails and removes every directory it made, in every hierarchy."""
    b = make_bundle(SLEEP)
    top = b.cgroups_path
    b.config["linux"]["cgroupsPath"] = f"{top}/H/{name}"
    b.save()
    p = rt.create(b.id, b)
    try:
        assert p.returncode != 0
        one_line(p.stderr)
        if rt.is_ocirt:
            assert "/linux/cgroupsPath" in p.stderr, p.stderr
        assert cgroup_dirs(top) == [], "a failed create left directories"
        assert os.listdir(rt.root) == []
    finally:
        remove_cgroup_trees(cgroup_dirs(top))


DAMAGES = {
    "empty": lambda f: open(f, "w").close(),
    "garbage": lambda f: open(f, "wb").write(b"\xff\x00garbage"),
    "directory": lambda f: (os.unlink(f), os.mkdir(f)),
    "missing": os.unlink,
}


@pytest.mark.parametrize(
    "damage",
    [
        "empty",
        "garbage",
        "directory",
        pytest.param(
            "missing",
            marks=pytest.mark.runc_deviates(
                "runc 1.1.5 takes the container for gone: exits 0, removes the state directory and "
                "leaves the init and its cgroup"
            ),
        ),
    ],
)
def test_delete_force_of_an_unreadable_state_of_a_created_container(rt, make_bundle, damage):
    """state.json that tells nothing, of a created container whose init waits: `delete --force`
    fails with a one-line error and leaves the init, its cgroup and the state directory, so that
    nothing is lost track of (runc fails on a state.json it cannot parse as well)."""
    b = make_bundle(SLEEP)
    assert rt.create(b.id, b).returncode == 0
    pid = rt.state_json(b.id)["pid"]
    state_dir = os.path.join(rt.root, b.id)
    state_file = os.path.join(state_dir, "state.json")
    saved = open(state_file, "rb").read()
    DAMAGES[damage](state_file)
    try:
        p = rt.delete(b.id, force=True)
        assert p.returncode != 0
        line = one_line(p.stderr)
        if rt.is_ocirt:
            assert "state.json" in line, line
        assert pid_alive(pid)
        assert os.path.isdir(state_dir)
        assert cgroup_dirs(b.cgroups_path)
    finally:
        if os.path.isdir(state_file):
            shutil.rmtree(state_file)
        os.makedirs(state_dir, exist_ok=True)
        with open(state_file, "wb") as f:
            f.write(saved)
        assert rt.delete(b.id, force=True).returncode == 0
    assert not pid_alive(pid)
    assert cgroup_dirs(b.cgroups_path) == []


def _damage_cgroup(state, how):
    if how == "null":
        state["cgroup"] = None
    elif how == "wrong-type":
        state["cgroup"] = ["/sys/fs/cgroup"]
    elif how == "missing":
        del state["cgroup"]
    elif how == "created-null":
        state["cgroup"]["created"] = None
    elif how == "created-bad":
        state["cgroup"]["created"] = ["/", 1]


@pytest.mark.parametrize("how", ["null", "wrong-type", "missing", "created-null", "created-bad"])
def test_delete_force_with_a_damaged_cgroup_record(rt, make_bundle, how):
    """ocirt's state.json with its cgroup record damaged: `delete --force` kills the container and
    removes its own cgroup directories (where the record, else config.json, says they are), never
    a parent it cannot tell it made."""
    if not rt.is_ocirt:
        pytest.skip("ocirt's state.json format")
    b = make_bundle(SLEEP)
    leaf = f"{b.cgroups_path}/leaf"
    b.config["linux"]["cgroupsPath"] = leaf
    b.save()
    try:
        assert rt.create(b.id, b).returncode == 0
        pid = rt.state_json(b.id)["pid"]
        state_file = os.path.join(rt.root, b.id, "state.json")
        with open(state_file) as f:
            state = json.load(f)
        _damage_cgroup(state, how)
        with open(state_file, "w") as f:
            json.dump(state, f)
        p = rt.delete(b.id, force=True)
        assert p.returncode == 0, p.stderr
        assert "Traceback" not in p.stderr
        assert not pid_alive(pid)
        assert cgroup_dirs(leaf) == []
        assert not os.path.exists(os.path.join(rt.root, b.id))
    finally:
        remove_cgroup_trees(cgroup_dirs(b.cgroups_path))
