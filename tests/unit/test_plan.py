"""`ocirt plan`: the bundle's kernel operations, from create's own code path, without root."""

import json
import os
import posix

import pytest

from ocirt import kernel as k
from ocirt import plan as plan_mod
from ocirt import stages
from ocirt.checks import CreateOptions
from ocirt.cli import main
from ocirt.kernel.fake import Call, RecordingKernel


@pytest.fixture
def bundle(plan_bundle):
    return plan_bundle


def edit(bundle, fn):
    path = bundle / "config.json"
    config = json.loads(path.read_text())
    fn(config)
    path.write_text(json.dumps(config))


def plan_text(bundle, capsys, *extra):
    assert main(["--root", str(bundle / "state"), "plan", "--bundle", str(bundle), *extra]) == 0
    return capsys.readouterr().out.splitlines()


def index(lines, prefix):
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))


def test_text_lists_the_init_steps_in_order(bundle, capsys):
    lines = plan_text(bundle, capsys)
    root = str(bundle / "rootfs")
    order = [
        index(lines, "unshare(CLONE_NEWPID)"),  # the runtime's, for the init it forks
        index(lines, "unshare(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWNET)"),  # the init's
        index(lines, "sethostname('runc')"),
        index(lines, f"mount('proc', '{root}/proc', 'proc', 0, None)"),
        index(lines, f"mount('tmpfs', '{root}/dev', 'tmpfs', MS_NOSUID|MS_STRICTATIME, "),
        index(lines, "pivot_root('.', '.')"),
        index(lines, "umount('.', MNT_DETACH)"),
        index(lines, "mount(None, '/', None, MS_RDONLY|MS_REMOUNT|MS_BIND"),
        index(lines, "setrlimit(RLIMIT_NOFILE, 1024, 1024)"),
        index(lines, "prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN)"),
        index(lines, "setresuid(0)"),
        index(lines, "capset(0x"),
        index(lines, "prctl(PR_SET_NO_NEW_PRIVS, 1)"),
        index(lines, "execve('/bin/sh', ['sh'], "),
    ]
    assert order == sorted(order)
    assert "# init: namespaces" in lines and "# init: setup" in lines
    assert "# stage 1: namespaces" not in lines  # one fork: no user namespace (stages.one_fork)
    assert f"mkdir('{root}/proc', 0o755)" in lines  # ensure() of a missing mount point
    assert not any(line.startswith("# note:") for line in lines)
    # nothing was made: not in the rootfs, not the state dir
    assert sorted(os.listdir(bundle / "rootfs")) == ["bin"]
    assert not (bundle / "state").exists()


def test_json_parses_and_has_ops_and_args(bundle, capsys):
    assert main(["--root", str(bundle / "state"), "plan", "-b", str(bundle), "--format", "json"]) == 0
    steps = json.loads(capsys.readouterr().out)
    ops = [s["op"] for s in steps]
    assert ops[-1] == "execve" and steps[-1]["args"][0] == "/bin/sh"
    assert "pivot_root" in ops and "capset" in ops
    proc = next(s for s in steps if s["op"] == "mount" and s["args"][0] == "proc")
    assert proc["args"][1] == str(bundle / "rootfs" / "proc")
    assert proc["stage"] == "init: setup"


def test_user_namespace_maps_and_flags(bundle, capsys):
    def userns(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
        c["linux"]["namespaces"].append({"type": "network", "path": "/run/netns/x"})

    edit(bundle, userns)
    lines = plan_text(bundle, capsys)
    order = [
        index(lines, "open('/run/netns/x', O_CLOEXEC)"),
        index(lines, "setns('/run/netns/x', CLONE_NEWNET)"),
        index(lines, "unshare(CLONE_NEWUSER)"),
        index(lines, "write_file('/proc/<stage1-pid>/uid_map', '0 1000 1\\n')"),
        index(lines, "unshare(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID)"),
    ]
    assert order == sorted(order)
    # a user namespace needs stage 1 (stages.one_fork): it makes the pid namespace its fork of
    # the init enters, and is reaped once the init is ready
    stage1 = [lines.index("# create (runtime): stage 1"), lines.index("# stage 1: namespaces")]
    assert stage1 == sorted(stage1) and stage1[1] < order[0] and index(lines, "waitpid('<stage1-pid>')")
    assert "unshare(CLONE_NEWPID)" not in lines and "# init: namespaces" not in lines
    assert "ioctl('lo', 'SIOCSIFFLAGS', 'IFF_UP')" not in lines  # the network ns is joined


def test_missing_executable_is_a_note(bundle, capsys):
    os.unlink(bundle / "rootfs" / "bin" / "sh")
    lines = plan_text(bundle, capsys)
    assert lines[-2].startswith("execve('sh', ['sh'], ")
    assert "not found in the rootfs" in lines[-1]


def test_invalid_config_is_the_usual_one_line_error(bundle, capsys):
    edit(bundle, lambda c: c["process"].pop("args"))  # (no process at all is valid at create)
    assert main(["plan", "--bundle", str(bundle)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/process" in err[0] and "level=error" in err[0]


def test_bad_format_is_refused(bundle, capsys):
    assert main(["plan", "--bundle", str(bundle), "--format", "yaml"]) == 1
    assert "invalid format" in capsys.readouterr().err


def test_decode_flags():
    assert plan_mod.decode(k.MS_BIND | k.MS_REC | 0x8000000, plan_mod.MS_FLAGS) == "MS_BIND|MS_REC|0x8000000"
    assert plan_mod.decode(0, plan_mod.CLONE_FLAGS) == "0"
    assert str(Call("x", ())) == "x()"


def test_init_runs_the_shared_setup(monkeypatch):
    """The real init goes through stages.setup_init (what plan replays), then Ready, then exec."""
    seen = []

    def fake_setup(kernel, plan, fx):
        seen.append(type(fx))
        raise RuntimeError("stop")

    monkeypatch.setattr(stages, "setup_init", fake_setup)
    with pytest.raises(RuntimeError):
        stages._init(RecordingKernel(), object(), ch=None)
    assert seen == [stages.InitEffects]


def test_plan_build_against_recording_kernel(bundle):
    p = plan_mod.build(CreateOptions(id="c1", bundle=str(bundle), root=str(bundle / "state")))
    names = [s.call.name for s in p.steps if s.stage.startswith("init")]
    assert names.index("pivot_root") < names.index("capset") < names.index("execve")
    assert any(s.call.name == "join_session_keyring" and s.call.args == ("_ses.c1",) for s in p.steps)


def test_unprivileged_stage1_is_dumpable_only_while_mapped(bundle, capsys, monkeypatch):
    """Rootless: the parent (not root) can write /proc/<stage1>/uid_map only while stage 1 is
    dumpable; it is so just around the mapping."""

    def userns(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]

    edit(bundle, userns)
    monkeypatch.setattr(posix, "geteuid", lambda: 1000)  # mapping.py asks posix, not os
    lines = plan_text(bundle, capsys)
    user = index(lines, "unshare(CLONE_NEWUSER)")
    on = index(lines, "prctl(PR_SET_DUMPABLE, 1)")
    mapped = index(lines, "write_file('/proc/<stage1-pid>/uid_map'")
    off = next(
        i for i, line in enumerate(lines) if i > mapped and line.startswith("prctl(PR_SET_DUMPABLE, 0)")
    )
    assert user < on < mapped < off


def test_plan_runs_creates_own_steps(bundle, monkeypatch):
    """plan.build is create.steps with recording effects, not a copy of it."""
    from ocirt import create as create_mod

    seen = []

    def fake_steps(opts, kernel, fx):
        seen.append((type(kernel), type(fx)))
        raise RuntimeError("stop")

    monkeypatch.setattr(create_mod, "steps", fake_steps)
    with pytest.raises(RuntimeError):
        plan_mod.build(CreateOptions(id="c1", bundle=str(bundle), root=str(bundle / "state")))
    assert seen == [(plan_mod.PlanKernel, plan_mod.PlanEffects)]


def test_the_parents_steps_are_listed_in_order(bundle, capsys):
    lines = plan_text(bundle, capsys)
    state = str(bundle / "state" / "plan")
    order = [
        index(lines, f"mkdir('{state}', 0o711)"),
        index(lines, f"mkfifo('{state}/exec.fifo', 0o622)"),
        index(lines, f"open('{state}/exec.fifo', O_CLOEXEC|O_PATH)"),
        index(lines, "prctl(PR_SET_DUMPABLE, 0)"),  # the runtime: its child is born so
        index(lines, "open('/proc/self/ns/pid', O_CLOEXEC)"),
        index(lines, "unshare(CLONE_NEWPID)"),  # for its next child only: the init
        # born in the cgroup2 directory (v2, hybrid: fork_into), or an ordinary fork (v1)
        index(lines, "fork_into(")
        if any(x.startswith("fork_into(") for x in lines)
        else index(lines, "fork()"),
        index(lines, "setns('/proc/self/ns/pid', CLONE_NEWPID)"),  # its own again
        index(lines, "prctl(PR_SET_DUMPABLE, 1)"),
        lines.index("# init: namespaces"),
        index(lines, "umask(0o000)"),
        index(lines, f"write_file('{state}/state.json', '<state.json: pid <init-pid>>')"),
    ]
    assert order == sorted(order)
    assert lines.index("# create (runtime): exec.fifo") < lines.index("# create (runtime): the init")
    assert not any(line.startswith("waitpid(") for line in lines)  # the init is not reaped


def test_hooks_are_listed_where_they_run(bundle, capsys):
    def hooks(c):
        c["hooks"] = {
            n: [{"path": f"/bin/{n}", "args": [n, "x"]}]
            for n in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart")
        }

    edit(bundle, hooks)
    lines = plan_text(bundle, capsys)
    order = [
        index(lines, f"hook('{n}', '/bin/{n}', ['{n}', 'x'])")
        for n in ("prestart", "createRuntime", "createContainer")
    ]
    assert order == sorted(order) and index(lines, "mount('proc'") < order[0]
    assert order[-1] < index(lines, "pivot_root(")
    start = lines.index("# init: start")
    assert index(lines, "hook('startContainer', ") > start
    assert not any(line.startswith("hook('poststart'") for line in lines)


def test_drive_turns_messages_into_parent_calls():
    """create.drive: each child message -> the Parent call, and Proceed back (the same calls
    ocirt plan makes directly)."""
    from ocirt import create as create_mod
    from ocirt.protocol import HooksReady, InitPid, Proceed, Ready, UserNsReady

    class FakeChannel:
        def __init__(self, incoming):
            self.incoming, self.sent = list(incoming), []

        def send(self, msg, fds=()):
            self.sent.append(msg)

        def expect(self, cls, what):
            msg = self.incoming.pop(0)
            assert isinstance(msg, cls)
            return msg

    class FakeParent:
        init_pid = 0

        def __init__(self, late=None):
            self.calls, self.late = [], late

        def map_user_ns(self):
            self.calls.append("map_user_ns")

        def init_started(self, pid):
            self.init_pid = pid
            self.calls.append(("init_started", pid))

        def init_going_on(self):
            self.calls.append("init_going_on")

        def runtime_hooks(self):
            self.calls.append("runtime_hooks")
            return {"pid": self.init_pid}

        def proceed(self):
            return Proceed(binds=[["/sys/fs/cgroup/cpu/c", "cpu"]] if self.late else None)

    ch = FakeChannel([UserNsReady(), InitPid(77), HooksReady(), Ready()])
    parent = FakeParent()
    assert create_mod.drive(ch, None, parent) == 77
    assert parent.calls == ["map_user_ns", ("init_started", 77), "init_going_on", "runtime_hooks"]
    assert [type(m) for m in ch.sent] == [Proceed] * 4 and ch.sent[-1].state == {"pid": 77}

    # the init moved into a cgroup made after the fork (LateCgroup): stage 1 is not told to go
    # on (it does not wait), the init is, once moved (Parent.init_started moves it)
    ch = FakeChannel([InitPid(78), Ready()])
    parent = FakeParent(late=object())
    assert create_mod.drive(ch, None, parent) == 78
    assert parent.calls == [("init_started", 78), "init_going_on"]
    assert [type(m) for m in ch.sent] == [Proceed] and ch.sent[0].binds  # (the cgroup mount's)


def test_cgroup_files_read_as_a_new_cgroup_or_as_written(tmp_path):
    kern = plan_mod.PlanKernel(str(tmp_path))
    fs = plan_mod.RecordingCgroupFS(kern)
    (tmp_path / "cpuset.cpus").write_text("0-3\n")
    new = str(tmp_path / "c1")
    assert fs.mkdir(new) and new in kern.made
    assert fs.read(f"{new}/cpuset.cpus") == ""  # a new v1 cpuset is empty
    assert fs.read(f"{new}/cpu.shares") == ""  # nothing on the host either
    fs.write(f"{new}/cpu.shares", "512")
    assert fs.read(f"{new}/cpu.shares") == "512"
    fs.write(f"{new}/cgroup.subtree_control", "+cpu +memory")
    fs.write(f"{new}/cgroup.subtree_control", "-cpu")
    assert fs.read(f"{new}/cgroup.subtree_control") == "memory"
    assert fs.read(f"{tmp_path}/x/y/cpuset.cpus") == "0-3\n"  # not made: the nearest parent's


def test_bind_of_a_missing_source_fails_as_it_would(tmp_path):
    kern = plan_mod.PlanKernel(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        kern.mount(str(tmp_path / "missing"), "/x", None, k.MS_BIND, None)
    assert kern.calls == []
    kern.mount(str(tmp_path), "/x", None, k.MS_BIND, None)
    kern.mount(None, "/x", None, k.MS_BIND | k.MS_REMOUNT | k.MS_RDONLY, None)
    assert len(kern.calls) == 2


def test_no_cgroups_path_gives_no_warning_of_processes(bundle, capsys):
    """Without linux.cgroupsPath the plan's cgroup is new under the runtime's own: nothing is
    there yet, so create's "cgroup is not empty" warning has nothing to count (it used to count
    the host's processes: the plan took every path for an existing directory)."""
    edit(bundle, lambda c: c.get("linux", {}).pop("cgroupsPath", None))
    assert main(["--root", str(bundle / "state"), "plan", "--bundle", str(bundle)]) == 0
    out, err = capsys.readouterr()
    assert "mkdir" in out and "not empty" not in err, err


def test_rlimits_are_named_by_the_specs_names():
    """RLIMIT_LOCKS, which Python's resource module lacks, by its name too; glibc's alias
    RLIMIT_OFILE never stands for RLIMIT_NOFILE."""
    from ocirt.plan import _rlimit_name

    assert (_rlimit_name(10), _rlimit_name(7), _rlimit_name(99)) == ("RLIMIT_LOCKS", "RLIMIT_NOFILE", "99")
