"""The manager interface without cgroupfs: which manager the factory picks, what state.json
keeps and gives back, the none manager, and the package's import rules."""

import os
import subprocess
import sys

import pytest

from ocirt import cgroups
from ocirt.cgroups import Manager, manager_for, manager_from_state, no_cgroup, parse_mountinfo
from ocirt.cgroups.cgroup_v1 import V1Cgroup
from ocirt.cgroups.cgroup_v2 import V2Cgroup
from ocirt.cgroups.nocgroup import NoCgroup
from ocirt.cgroups.systemd import SystemdCgroup
from ocirt.errors import ConfigError, OcirtError

V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
HYBRID = (
    "30 23 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
    "31 23 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    "32 23 0:28 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer\n"
)
V1 = (
    "31 23 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    "32 23 0:28 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
)
NO_CGROUP = "the container has no cgroup"


class NoBus:
    """A bus that must not be used (the factory only places)."""

    def __call__(self):
        raise AssertionError("no D-Bus call expected")


class RecordingFS:
    def __init__(self):
        self.log = []

    def read(self, path):
        return "cpuset cpu io memory pids" if path.endswith("/cgroup.controllers") else ""

    def write(self, path, value):
        self.log.append(("write", path, value))

    def mkdir(self, path):
        self.log.append(("mkdir", path))
        return True

    def exists(self, path):
        return False

    def subdirs(self, path):
        return []

    def sleep(self, s):
        pass


# ---------------------------------------------------------------- the factory


@pytest.mark.parametrize("text,cls", [(V2, V2Cgroup), (HYBRID, V1Cgroup), (V1, V1Cgroup)])
def test_manager_for_picks_by_layout(text, cls):
    lay = parse_mountinfo(text)
    cg = manager_for(lay, "/a/b", "c1")
    assert type(cg) is cls and isinstance(cg, Manager) and cg.kind == lay.kind
    assert cg.dirs() and all(d.endswith("/a/b") for d in cg.dirs())


@pytest.mark.parametrize("text", [V2, HYBRID])
def test_manager_for_systemd(text):
    lay = parse_mountinfo(text)
    cg = manager_for(lay, "system.slice:p:n", "c1", systemd=True, bus=NoBus())
    assert type(cg) is SystemdCgroup and cg.kind == lay.kind
    assert type(cg.files) is (V2Cgroup if lay.kind == "v2" else V1Cgroup)
    assert all(d.endswith("/system.slice/p-n.scope") for d in cg.dirs())


@pytest.mark.parametrize("systemd", [False, True])
def test_cgroups_path_must_be_a_string(systemd):
    with pytest.raises(ConfigError, match="/linux/cgroupsPath: must be a string"):
        manager_for(parse_mountinfo(V2), ["x"], "c1", systemd=systemd, bus=NoBus())


def test_state_of_the_previous_version_still_loads():
    """state.json's "cgroup" as earlier releases wrote it: the same dict back, the same dirs."""
    saved = {
        "version": 1,
        "kind": "hybrid",
        "cgroupsPath": "/x",
        "paths": {"memory": "/sys/fs/cgroup/memory/x", "freezer": "/sys/fs/cgroup/freezer/x"},
        "unified": "/sys/fs/cgroup/unified/x",
        "created": ["/sys/fs/cgroup/memory/x", "/sys/fs/cgroup/freezer/x"],
        "devices": [{"allow": False, "type": "a", "major": None, "minor": None, "access": "rwm"}],
    }
    cg = manager_from_state(parse_mountinfo(HYBRID), saved)
    assert type(cg) is V1Cgroup and cg.to_dict() == saved
    assert cg.path() == "/sys/fs/cgroup/freezer/x" and cg.path("") == saved["unified"]
    assert [r.v1_line() for r in cg.device_rules()] == ["a"]
    sd = dict(saved, systemd={"unit": "ocirt-x.scope", "slice": "system.slice", "started": True})
    again = manager_from_state(parse_mountinfo(HYBRID), sd, bus=NoBus())
    assert type(again) is SystemdCgroup and again.to_dict() == sd and again.started


@pytest.mark.parametrize("text", [V2, HYBRID, V1])
def test_round_trip(text):
    lay = parse_mountinfo(text)
    cg = manager_for(lay, "/r/t", "c1")
    again = manager_from_state(lay, cg.to_dict())
    assert type(again) is type(cg) and again.to_dict() == cg.to_dict()


def test_a_cgroup_of_another_layout_is_refused():
    d = manager_for(parse_mountinfo(V2), "/x", "c1").to_dict()
    with pytest.raises(OcirtError, match="made on a cgroup v2 host but this host is cgroup hybrid"):
        manager_from_state(parse_mountinfo(HYBRID), d)


@pytest.mark.parametrize("saved", [{}, None])
def test_no_cgroup_from_state(saved):
    cg = manager_from_state(parse_mountinfo(V2), saved, pid=1234)
    assert type(cg) is NoCgroup and cg.pid == 1234 and cg.to_dict() == {}


def test_every_manager_has_every_operation():
    ops = [n for n, v in vars(Manager).items() if callable(v) and not n.startswith("_") and n != "placement"]
    for cls in (V1Cgroup, V2Cgroup, SystemdCgroup, NoCgroup):
        missing = [n for n in ops if getattr(cls, n) is getattr(Manager, n)]
        assert missing == [], f"{cls.__name__} lacks {missing}"


# ---------------------------------------------------------------- the none manager


def test_no_cgroup_makes_nothing_and_says_so():
    cg = no_cgroup(parse_mountinfo(V2))
    assert cg.kind == "none" and cg.dirs() == [] and cg.created == [] and cg.to_dict() == {}
    cg.create()
    cg.add_pid(os.getpid())
    cg.destroy()
    assert cg.frozen() is False and cg.wait_empty() is True and cg.device_rules() is None
    for op in (cg.freeze, cg.thaw, cg.stats, cg.kill_all, cg.path):
        with pytest.raises(OcirtError, match=f"^{NO_CGROUP}$"):
            op()


def test_no_cgroup_takes_only_device_rules():
    cg = no_cgroup(parse_mountinfo(V2))
    cg.apply({"devices": [{"allow": False, "access": "rwm"}], "memory": {}}, kernel=None)
    for asked in ({"pids": {"limit": 5}}, {"devices": [], "cpu": {"shares": 2}}, {}):
        with pytest.raises(OcirtError, match=f"^{NO_CGROUP}$"):
            cg.apply(asked)
    cg.apply(cgroups.Resources.parse({"devices": []}))
    with pytest.raises(OcirtError, match=f"^{NO_CGROUP}$"):
        cg.apply(cgroups.Resources.parse({"devices": [], "pids": {"limit": 2}}))


def test_no_cgroup_pids_are_the_init_pid_namespace():
    assert no_cgroup(parse_mountinfo(V2), 0).pids() == []
    p = subprocess.Popen(["sleep", "100"])
    try:
        # sharing this pid namespace: just the init
        assert no_cgroup(parse_mountinfo(V2), p.pid).pids() == [p.pid]
    finally:
        p.kill()
        p.wait()


def test_no_cgroup_placement_is_where_the_runtime_is():
    lay = parse_mountinfo(HYBRID)
    here = no_cgroup(lay).placement()
    assert type(here) is V1Cgroup and here.created == []
    own = cgroups.parse_proc_cgroup("2:memory:/a\n1:freezer:/b\n0::/c\n")
    here = cgroups.current(lay, own)
    assert here.paths == {"memory": "/sys/fs/cgroup/memory/a", "freezer": "/sys/fs/cgroup/freezer/b"}
    assert here.unified == "/sys/fs/cgroup/unified/c"


# ---------------------------------------------------------------- apply takes the kernel


def test_v2_device_rules_need_a_kernel_before_any_write():
    fs = RecordingFS()
    cg = manager_for(parse_mountinfo(V2), "/x", "c1", fs=fs)
    with pytest.raises(OcirtError, match="no kernel given"):
        cg.apply({"pids": {"limit": 3}, "devices": [{"allow": False, "access": "rwm"}]})
    assert fs.log == []
    cg.apply({"pids": {"limit": 3}})
    assert fs.log == [("write", "/sys/fs/cgroup/x/pids.max", "3")]


def test_v1_device_rules_are_files():
    fs = RecordingFS()
    lay = parse_mountinfo(V1 + "33 23 0:29 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices\n")
    cg = manager_for(lay, "/x", "c1", fs=fs)
    cg.apply({"devices": [{"allow": False, "access": "rwm"}]})
    assert ("write", "/sys/fs/cgroup/devices/x/devices.deny", "a") in fs.log


# ---------------------------------------------------------------- imports


def _modules_after(stmt: str) -> set:
    code = f"import sys; {stmt}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    return set(out.stdout.split())


def test_import_rules():
    mods = _modules_after("import ocirt.cgroups.cgroup")
    assert "ocirt.cgroups.systemd" not in mods and "ocirt.cgroups.dbus" not in mods
    mods = _modules_after("import ocirt.cgroups")
    assert not {"ocirt.cgroups.systemd", "ocirt.cgroups.update", "re", "json"} & mods
    mods = _modules_after("import ocirt.cgroups.update")
    assert not {m for m in mods if m == "ocirt.cli" or m.startswith("ocirt.commands")}


# ---------------------------------------------------------------- a container without a cgroup


def test_container_without_a_cgroup(tmp_path):
    """state.json's `{}`: the operations that need a cgroup say so; update records nothing."""
    from ocirt.cgroups.update import apply_resources
    from ocirt.container import Container
    from ocirt.state import ContainerState, StateDir, Status, proc_start_time

    sd = StateDir(str(tmp_path), "c1")
    os.makedirs(sd.path)
    me = os.getpid()  # stands for a running init sharing our pid namespace
    sd.save(ContainerState(id="c1", bundle=str(tmp_path), pid=me, pid_start=proc_start_time(me)))
    c = Container(sd, sd.load())
    assert c.status() is Status.RUNNING
    assert type(c.cgroup()) is NoCgroup and c.cgroup().pids() == [me]
    warned = []
    for op in (c.pause, lambda: apply_resources(c, {"pids": {"limit": 3}}, warned.append)):
        with pytest.raises(OcirtError, match=f"^{NO_CGROUP}$"):
            op()
    assert sd.load().cgroup == {} and warned == []


# -- saved_frozen: the status commands read the freezer from state.json's record --------------


def test_saved_frozen_reads_the_v1_freezer_then_the_v2_directory(tmp_path):
    from ocirt.state import saved_frozen

    v1, v2 = tmp_path / "freezer", tmp_path / "unified"
    v1.mkdir()
    v2.mkdir()
    (v1 / "freezer.self_freezing").write_text("1\n")
    (v2 / "cgroup.freeze").write_text("0\n")
    hybrid = {"kind": "hybrid", "paths": {"freezer": str(v1)}, "unified": str(v2)}
    assert saved_frozen(hybrid) is True
    (v1 / "freezer.self_freezing").write_text("0\n")
    assert saved_frozen(hybrid) is False
    (v2 / "cgroup.freeze").write_text("1\n")
    assert saved_frozen({"kind": "v2", "paths": {}, "unified": str(v2)}) is True
    assert saved_frozen({"kind": "hybrid", "paths": {}, "unified": str(v2)}) is True  # no v1 freezer


def test_saved_frozen_without_a_cgroup_or_its_files(tmp_path):
    from ocirt.state import saved_frozen

    assert saved_frozen(None) is False
    assert saved_frozen({}) is False
    assert saved_frozen({"kind": "v2", "unified": str(tmp_path / "gone")}) is False


def test_rmtree_lists_a_directory_only_when_rmdir_says_busy():
    import errno as _errno

    class FS(RecordingFS):
        tree = {"/c": ["/c/sub"], "/c/sub": []}

        def rmdir(self, path):
            self.log.append(("rmdir", path))
            if self.tree.get(path):
                raise OSError(_errno.EBUSY, "busy")
            self.tree.pop(path, None)
            for kids in self.tree.values():
                if path in kids:
                    kids.remove(path)

        def subdirs(self, path):
            self.log.append(("subdirs", path))
            return list(self.tree.get(path, []))

    lay = parse_mountinfo(V1)
    cg = manager_for(lay, "/a", "c1")
    fs = FS()
    cg.fs = fs
    cg.rmtree("/c/sub", 1.0)  # a leaf: one rmdir, no listing
    assert fs.log == [("rmdir", "/c/sub")]
    fs.tree = {"/c": ["/c/sub"], "/c/sub": []}
    fs.log.clear()
    cg.rmtree("/c", 1.0)  # a child cgroup of its own: busy, listed, the child, then it
    assert fs.log == [("rmdir", "/c"), ("subdirs", "/c"), ("rmdir", "/c/sub"), ("rmdir", "/c")]


class HostFS(RecordingFS):
    """Every cgroup.procs lists two processes; signals are recorded, not sent."""

    def read(self, path):
        return "101\n102\n" if path.endswith("/cgroup.procs") else super().read(path)

    def kill(self, pid, sig):
        self.log.append(("kill", pid, sig))


@pytest.mark.parametrize("text", [V2, HYBRID, V1])
@pytest.mark.parametrize("systemd", [False, True])
def test_a_record_naming_a_hierarchy_root_is_no_cgroup_of_the_containers(text, systemd):
    """A damaged state.json whose cgroup record names a hierarchy's root (or a directory outside
    every hierarchy) as the container's own, made by create: `kill --all` and `delete --force`
    signalled every process below it, on the root cgroup every process of the host. Such a
    directory is none of the container's: left out, nothing of the cgroup is the container's
    (members.owns_cgroup), and its processes are those of its pid namespace alone."""
    from ocirt.members import container_pids, owns_cgroup

    lay = parse_mountinfo(text)
    good = manager_for(lay, "/a/b", "c1").to_dict()
    good["created"] = list(manager_for(lay, "/a/b", "c1").dirs())
    damaged = dict(good, paths=dict(lay.mounts), unified=lay.unified)
    damaged["created"] = [*lay.mounts.values(), *([lay.unified] if lay.unified else []), "/tmp", "/"]
    if systemd:
        good["systemd"] = damaged["systemd"] = {"unit": "x.scope", "slice": "system.slice"}
    again = manager_from_state(lay, good, fs=HostFS())
    assert again.dirs() and again.dirs() == manager_for(lay, "/a/b", "c1").dirs()
    assert container_pids(again, 0, 0) == [101, 102]  # (its own cgroup: all of it)
    fs = HostFS()
    cg = manager_from_state(lay, damaged, fs=fs)
    assert type(cg) is NoCgroup and cg.created == [] and not owns_cgroup(cg)
    assert container_pids(cg, 0, 0) == []
    with pytest.raises(OcirtError, match=NO_CGROUP):
        cg.kill_all(9)
    if lay.mounts:  # v1: one hierarchy's root among its own directories: that one goes
        ctrl, mount = next(iter(lay.mounts.items()))
        partly = dict(good, paths={**good["paths"], ctrl: mount}, created=[*good["created"], mount])
        cg = manager_from_state(lay, partly, fs=fs)
        assert cg.dirs() == [d for d in again.dirs() if d != good["paths"][ctrl]]
        assert cg.created == good["created"]
    assert not [e for e in fs.log if e[0] == "kill"]
