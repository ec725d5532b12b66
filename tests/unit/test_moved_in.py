"""Where every child of create would be moved into its cgroup by the parent (cgroup v1 and
hybrid hosts, the cgroupfs driver, root, a process with another thread: a program using the
Python API), the children go first: stage 1 is forked before the cgroup is made, and the parent
moves the init once stage 1 has said its pid (create.LateCgroup, stages.InitSpec.moved_in).
With one thread (the command line) the cgroup comes first and the child gets into it by itself
(Manager.self_placement). Played through `ocirt plan` (create's own steps against the recording
kernel) on a given layout, and through the protocol over a real socket pair."""

import json
import threading

import pytest

from ocirt import cgroups
from ocirt import create as create_mod
from ocirt.checks import CreateOptions
from ocirt.cli import main
from ocirt.protocol import Channel, Failed, Proceed

V1 = cgroups.Layout(
    "hybrid",
    mounts={c: f"/sys/fs/cgroup/{c}" for c in ("cpu", "memory", "pids", "devices")},
    unified="/sys/fs/cgroup/unified",
)
V2 = cgroups.Layout("v2", unified="/sys/fs/cgroup")


def plan_lines(bundle, capsys, monkeypatch, layout, cgroupns=True, alone=False):
    """The plan of a create on `layout`, by a process with another thread (not `alone`)."""
    from ocirt import plan as plan_mod

    monkeypatch.setattr(cgroups, "detect", lambda *a: layout)
    monkeypatch.setattr(plan_mod.PlanEffects, "alone", lambda self: alone)
    path = bundle / "config.json"
    config = json.loads(path.read_text())
    if cgroupns:
        config["linux"]["namespaces"].append({"type": "cgroup"})
    path.write_text(json.dumps(config))
    assert main(["--root", str(bundle / "state"), "plan", "--bundle", str(bundle), "c1"]) == 0
    return capsys.readouterr().out.splitlines()


def at(lines, prefix):
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))


def test_on_v1_the_init_waits_for_its_move_before_its_cgroup_namespace_and_mount(
    plan_bundle, capsys, monkeypatch
):
    lines = plan_lines(plan_bundle, capsys, monkeypatch, V1)
    fork = at(lines, "fork()")
    first_mkdir = at(lines, "mkdir('/sys/fs/cgroup/")
    stage1 = lines.index("# init: namespaces")  # one fork (stages.one_fork): the init's own
    moves = [i for i, line in enumerate(lines) if "cgroup.procs'" in line]
    init = lines.index("# init: setup")
    made = at(lines, "wait('until the runtime has made the cgroup')")
    moved = at(lines, "wait('until the runtime has moved the init into its cgroup')")
    cgroupns = at(lines, "unshare(CLONE_NEWCGROUP)")
    cgroup_mount = next(i for i, line in enumerate(lines) if "/sys/fs/cgroup', 'tmpfs'" in line)
    # the cgroup is made after the init's fork; the init is moved into it once it has
    # entered its namespaces
    assert fork < first_mkdir < stage1 < min(moves) and max(moves) < init
    assert all("'<init-pid>')" in lines[i] for i in moves) and len(moves) == 5
    # the init makes every namespace but the cgroup one first, and that one once moved
    stage1_unshare = next(line for line in lines[stage1:init] if line.startswith("unshare("))
    assert "CLONE_NEWCGROUP" not in stage1_unshare
    # the init mounts the cgroup's directories once they exist, and waits to be in the
    # cgroup only before its identity switch (which drops what its cgroup namespace needs)
    assert at(lines, "mount('proc'") < made < cgroup_mount < at(lines, "pivot_root(")
    assert at(lines, "pivot_root(") < moved < cgroupns < at(lines, "setresuid(")


def test_with_a_user_namespace_or_hooks_the_init_is_in_its_cgroup_before_them(
    plan_bundle, capsys, monkeypatch
):
    """With a new user namespace the parent says one word only, once the init is moved (stage
    1 waits for its id maps meanwhile, and would take a first one for that); with hooks the
    init is moved before they run."""
    path = plan_bundle / "config.json"
    config = json.loads(path.read_text())
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 65536}]
    config["hooks"] = {"createRuntime": [{"path": "/bin/true"}]}
    path.write_text(json.dumps(config))
    lines = plan_lines(plan_bundle, capsys, monkeypatch, V1)
    assert not any(line.startswith("wait('until the runtime has made") for line in lines)
    moved = at(lines, "wait('until the runtime has moved the init into its cgroup')")
    cgroup_mount = next(i for i, line in enumerate(lines) if "/sys/fs/cgroup', 'tmpfs'" in line)
    assert moved < at(lines, "unshare(CLONE_NEWCGROUP)") < cgroup_mount < at(lines, "hook('createRuntime'")


def test_on_v1_with_one_thread_the_cgroup_comes_first_and_the_init_gets_in_by_itself(
    plan_bundle, capsys, monkeypatch
):
    lines = plan_lines(plan_bundle, capsys, monkeypatch, V1, alone=True)
    tasks = [
        i for i, line in enumerate(lines) if line.startswith("open('/sys/fs/cgroup/") and "/tasks'" in line
    ]
    moves = [i for i, line in enumerate(lines) if line.startswith("move_self(")]
    assert len(tasks) == len(moves) == 4  # cpu, memory, pids, devices
    assert at(lines, "mkdir('/sys/fs/cgroup/") < min(tasks) < at(lines, "fork_into('/sys/fs/cgroup/unified/")
    init = lines.index("# init: namespaces")  # its first acts: into the v1 hierarchies
    first_unshare = next(i for i in range(init, len(lines)) if lines[i].startswith("unshare("))
    assert at(lines, "fork_into(") < init < min(moves) and max(moves) < first_unshare
    assert not any(line.startswith("wait(") or "cgroup.procs'" in line for line in lines)


def test_on_v2_stage1_is_born_in_the_cgroup_made_first(plan_bundle, capsys, monkeypatch):
    lines = plan_lines(plan_bundle, capsys, monkeypatch, V2, alone=True)
    assert at(lines, "mkdir('/sys/fs/cgroup/") < at(lines, "fork_into(")
    assert not any(line.startswith("wait(") or "cgroup.procs'" in line for line in lines)
    # stage 1 made the cgroup namespace, once in the cgroup
    assert at(lines, "unshare(CLONE_NEWCGROUP)") < lines.index("# init: setup")


@pytest.mark.parametrize(
    "layout, opts, alone, moved",
    [
        (V1, {}, False, True),
        (V1, {}, True, False),  # one thread: the child gets in by itself (self_placement)
        (V2, {}, False, False),
        (V1, {"systemd_cgroup": True}, False, False),  # the unit starts with its first process
        (V1, {"rootless": True}, False, False),  # whether there is a cgroup at all is learnt by trying
    ],
)
def test_which_creates_move_the_init(layout, opts, alone, moved):
    asked = []

    def is_alone():
        asked.append(1)
        return alone

    assert create_mod.moves_init(CreateOptions(id="c1", bundle="/b", **opts), layout, is_alone) is moved
    assert bool(asked) == (layout is V1 and not opts)  # asked last: it ends an open attach window


def test_the_inits_failure_is_read_after_it_left_with_our_message_unread():
    """The init may fail and end while the parent moves it: the kernel then reports the reset
    first, and the init's Failed is still there to be read after it."""
    parent, child = Channel.pair()
    parent.send(Proceed())  # never read: the init is failing meanwhile
    child.send(Failed("mount proc: not an ordinary directory", 20))
    child.close()
    msg = parent.recv()
    assert isinstance(msg, Failed) and msg.errno == 20
    assert parent.recv() is None
    parent.close()


def test_a_failure_before_the_move_hears_the_children_out():
    """When making the cgroup fails, the parent tells the children no answer comes (the init
    ends at its wait) and takes the init's pid from what stage 1 sent, for the undo."""
    parent, child = Channel.pair()
    child.send(create_mod.InitPid(4242))  # stage 1's, before it exited
    heard = []

    class Init:  # the init, at its wait: it reads the hang-up, reports, and closes
        def run(self):
            heard.append(child.recv())
            child.send(Failed("container init exited before the init was in its cgroup"))
            child.close()

    t = threading.Thread(target=Init().run)
    t.start()
    pid, failure = create_mod.HostEffects().hear_out(parent)
    assert pid == 4242 and "before the init was in its cgroup" in str(failure)
    t.join(5)
    assert heard == [None]
    parent.close()


def test_a_plan_whose_cgroup_cannot_be_configured_is_the_usual_error(plan_bundle, capsys, monkeypatch):
    """The cgroup is made after stage 1's fork there: a plan that fails then says why in one
    line, as create would (it has no children to hear out)."""
    monkeypatch.setattr(cgroups, "detect", lambda *a: V1)
    path = plan_bundle / "config.json"
    config = json.loads(path.read_text())
    config["linux"]["resources"] = {"unified": {"nosuch.file": "1"}}
    path.write_text(json.dumps(config))
    assert main(["--root", str(plan_bundle / "state"), "plan", "--bundle", str(plan_bundle), "c1"]) == 1
    err = capsys.readouterr().err
    assert "/linux/resources/unified/nosuch.file" in err and "internal error" not in err


def test_the_init_binds_the_directories_the_parents_word_names():
    """The children are forked before the parent has made the cgroup's manager (nor loaded
    its modules): the init learns the directories its cgroup mount binds from the parent's
    first word, whichever that is (the made one, or, with a new user namespace, the moved one)."""
    from types import SimpleNamespace

    from ocirt import stages

    binds = [["/sys/fs/cgroup/cpu/ocirt/c1", "cpu"], ["/sys/fs/cgroup/unified/ocirt/c1", "unified"]]
    for new, words in ((["mount"], 2), (["mount", "user"], 1)):
        spec = SimpleNamespace(
            moved_in=True, ns=SimpleNamespace(new=new), rootfs=SimpleNamespace(cgroup_binds=[])
        )
        parent, child = Channel.pair()
        parent.send(Proceed(binds=binds))
        if words == 2:
            parent.send(Proceed(binds=binds))
        fx = stages.InitEffects(child)
        stages.cgroup_made(None, spec, fx)
        assert spec.rootfs.cgroup_binds == binds
        stages.in_cgroup(None, spec, fx)  # the moved word read once, whichever came first
        assert fx.made is (words == 2) and fx.moved
        parent.close()
        assert child.recv() is None
        child.close()
