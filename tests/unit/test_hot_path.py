"""What the short commands and `run` leave out: modules they do not need, files read or written
again (the mount table, state.json)."""

import os
import subprocess
import sys

import pytest

from ocirt import cgroups
from ocirt import create as create_mod
from ocirt.container import OpenContainer
from ocirt.state import ContainerState

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _isolated(script: str) -> str:
    """stdout of `script` in a fresh `python -I -S` with this tree's ocirt first on sys.path."""
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {REPO!r}); " + script],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_state_imports_no_extension_module_it_does_not_use():
    """`state` takes no lock (fcntl), does not wait on the fifo (select), runs no hooks and sets
    no cpu weights (math): none of them is loaded with its modules."""
    script = (
        "import sys; import ocirt.cli, ocirt.commands.state, ocirt.commands.kill,"
        " ocirt.commands.delete, ocirt.commands.start, ocirt.container;"
        "print(sorted(m for m in ('select', 'ocirt.hooks', 'math') if m in sys.modules));"
        "import ocirt.cgroups; print('math' in sys.modules)"
    )
    out = _isolated(script).split("\n")
    assert out[0] == "[]"
    assert out[1] == "False"  # the cgroup managers load math only to convert cpu shares


def test_shares_to_weight_still_converts():
    from ocirt.cgroups.resources import shares_to_weight

    assert (shares_to_weight(2), shares_to_weight(1024), shares_to_weight(262144)) == (1, 100, 10000)


def test_open_container_reads_the_mount_table_at_most_once(monkeypatch):
    calls = []
    real = cgroups.detect

    def counting_detect(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(cgroups, "detect", counting_detect)
    c = OpenContainer(sd=None, state=ContainerState(id="x", bundle="/", pid=os.getpid()))
    c.cgroup()
    c.cgroup()
    assert len(calls) == 1
    given = OpenContainer(sd=None, state=ContainerState(id="x", bundle="/", pid=0), layout=c.layout)
    given.cgroup()
    assert len(calls) == 1  # a layout passed in (run: create's) is not read again


def test_host_effects_keeps_the_layout_it_read():
    fx = create_mod.HostEffects()
    assert fx.layout is None
    opts = create_mod.CreateOptions(id="x", bundle="/", root="/nonexistent")
    layout = fx.cgroup_layout()
    assert fx.layout is layout
    assert fx.cgroup(opts, {}, {}, layout).layout is layout


def test_to_make_lists_missing_parents_first(tmp_path):
    (tmp_path / "a").mkdir()
    dirs = [str(tmp_path / "a" / "p" / "c"), str(tmp_path / "b" / "p" / "c"), str(tmp_path / "a")]
    assert create_mod._to_make(dirs) == [
        str(tmp_path / "a" / "p"),
        str(tmp_path / "a" / "p" / "c"),
        str(tmp_path / "b"),
        str(tmp_path / "b" / "p"),
        str(tmp_path / "b" / "p" / "c"),
    ]
    # a parent shared by two directories is listed once
    assert create_mod._to_make([str(tmp_path / "n" / "x"), str(tmp_path / "n" / "y")]) == [
        str(tmp_path / "n"),
        str(tmp_path / "n" / "x"),
        str(tmp_path / "n" / "y"),
    ]


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.isdir("/sys/fs/cgroup"), reason="needs root and cgroupfs"
)
def test_what_state_json_says_before_the_cgroup_is_made_is_what_it_made():
    """create saves state.json before making the cgroup (a killed create leaves what to remove)
    and again only if making it did something else than foreseen."""
    name = f"ocirt-test-tomake-{os.getpid()}"
    layout = cgroups.detect()
    cg = cgroups.manager_for(layout, f"/{name}/c", "c")
    if not cg.dirs():
        pytest.skip("no cgroupfs hierarchy")
    foreseen = create_mod._to_make(cg.dirs())
    try:
        cg.create()
        assert cg.to_dict()["created"] == foreseen
    finally:
        cg.destroy()
    assert not any(os.path.exists(d) for d in foreseen)


class _Unshares:
    def __init__(self):
        self.flags = []

    def unshare(self, flags):
        self.flags.append(flags)


class _Spec:
    def __init__(self, new, join=(), one_fork=False):
        from ocirt.namespaces import Namespaces

        self.ns = Namespaces(new=list(new), join=list(join))
        self.one_fork = one_fork


def test_namespaces_made_before_the_cgroup_attach():
    """Stage 1 makes its namespaces while the parent attaches it; not the cgroup namespace,
    and none when a user namespace is made or one is joined."""
    from ocirt import stages
    from ocirt.kernel import CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID

    kern = _Unshares()
    early = stages.namespaces_before_cgroup(kern, _Spec(["mount", "pid", "network", "cgroup"]))
    assert early == CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET and kern.flags == [early]
    # one fork (the init's own start): the parent made the pid namespace
    kern = _Unshares()
    early = stages.namespaces_before_cgroup(kern, _Spec(["mount", "pid", "network"], one_fork=True))
    assert early == CLONE_NEWNS | CLONE_NEWNET and kern.flags == [early]
    for spec in (
        _Spec(["user", "mount"]),
        _Spec(["mount"], [("network", "/proc/1/ns/net", 0)]),
        _Spec(["cgroup"]),
    ):
        kern = _Unshares()
        assert stages.namespaces_before_cgroup(kern, spec) == 0 and kern.flags == []


def test_without_gc_gives_the_collector_back_with_nothing_pending():
    """create/run/exec run without the cyclic collector; once main() returns it is on again (a
    caller in the same process keeps its own), and what the command allocated does not make
    the next allocation pay for a collection."""
    import gc

    from ocirt.commands import without_gc

    assert gc.isenabled()
    with without_gc():
        assert not gc.isenabled()
        junk = [[i] for i in range(5000)]  # tracked objects: the young generation's count grows
        assert gc.get_count()[0] > 700
    assert gc.isenabled() and gc.get_count()[0] < 700
    del junk
    gc.disable()
    try:
        with without_gc():
            pass
        assert not gc.isenabled()  # disabled by the caller: left so
    finally:
        gc.enable()


def test_exec_loads_no_console_or_struct_without_a_terminal():
    script = (
        "import sys; import ocirt.cli, ocirt.commands.exec, ocirt.execute, ocirt.execspec,"
        " ocirt.container, ocirt.kernel.linux;"
        "print(sorted(m for m in ('ocirt.console', 'struct', 'ocirt.rootfs') if m in sys.modules))"
    )
    assert _isolated(script).strip() == "[]"


def test_create_leaves_the_rootfs_module_to_the_init():
    """create's parent needs the init's RootfsSpec and which mounts are idmapped
    (ocirt/rootfs_spec.py), not ocirt/rootfs.py (the largest module; the init loads it)."""
    script = (
        "import sys; import ocirt.cli, ocirt.commands.create, ocirt.commands.run, ocirt.create,"
        " ocirt.checks, ocirt.mapping, ocirt.stages, ocirt.kernel.linux;"
        "print(sorted(m for m in ('ocirt.rootfs',) if m in sys.modules))"
    )
    assert _isolated(script).strip() == "[]"


def test_loopback_up_sends_the_struct_ifreq_struct_would_pack(monkeypatch):
    import struct

    from ocirt import stages

    calls = []

    def ioctl(sock, request, arg):
        calls.append((request, arg))
        return struct.pack("16sH", b"lo", 0x8) + b"\0" * (len(arg) - 18)  # IFF_LOOPBACK

    monkeypatch.setattr(stages.fcntl, "ioctl", ioctl)
    stages.loopback_up()
    assert calls == [
        (0x8913, struct.pack("16sH", b"lo", 0)),
        (0x8914, struct.pack("16sH", b"lo", 0x8 | 0x1)),
    ]


def test_delete_lists_an_empty_cgroup_of_its_own_once():
    from ocirt import members

    class EmptyCgroup:
        created = ["/sys/fs/cgroup/pids/c1"]
        listed = 0

        def dirs(self):
            return ["/sys/fs/cgroup/pids/c1"]

        def pids(self):
            self.listed += 1
            return []

        def kill_all(self, sig):
            raise AssertionError("nothing to signal")

    cg = EmptyCgroup()
    members.kill_and_wait(cg, 0, 0)
    assert cg.listed == 1


def test_created_is_rfc3339_in_utc_with_nanoseconds(monkeypatch):
    """create's `created`, from integers (no strftime, no float remainder: each is a first call
    into libc or libm that faults in pages of it)."""
    import re
    import time

    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_000_000_007)
    assert create_mod.rfc3339() == "2023-11-14T22:13:20.000000007Z"
    monkeypatch.undo()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", create_mod.rfc3339())


def test_the_attach_window_module_only_with_a_systemd_cgroup():
    """With cgroupfs the child gets into its cgroup by itself: create, run and exec load no
    attach window (cli.Globals.attach_window, whose rule the launcher follows)."""
    script = (
        "import sys; import ocirt.cli, ocirt.commands.create, ocirt.commands.run, ocirt.commands.exec;"
        "from ocirt.log import Logger;"
        "g = ocirt.cli.Globals(root='/nonexistent', log=Logger());"
        "print(g.attach_window(), 'ocirt.attach_window' in sys.modules)"
    )
    assert _isolated(script).strip() == "None False"
