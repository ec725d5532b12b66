"""The operations the command line and the API share, called without either (no root needed):
signal names, the global defaults, exec's process, a leftover state dir, a container's pids."""

import json
import os
import posix
import signal

import pytest

from ocirt import defaults, execspec, signals
from ocirt.cgroups.nocgroup import NoCgroup
from ocirt.cli import UsageError, main
from ocirt.commands.kill import parse_signal as cli_parse_signal
from ocirt.container import OpenContainer, remove_leftover
from ocirt.errors import ConfigError, OcirtError
from ocirt.state import ContainerState, StateDir


# -- signals --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,num", [("KILL", 9), ("SIGKILL", 9), ("9", 9), ("term", 15), ("SIGRTMIN", int(signal.SIGRTMIN))]
)
def test_signal_names(text, num):
    assert signals.parse_signal(text) == num
    assert signals.signal_number(text) == num
    assert signals.signal_number(num) == num


@pytest.mark.parametrize("text", ["SIGNOPE", "65", "SIG_DFL", "-9", ""])
def test_unknown_signal_is_a_core_error(text):
    with pytest.raises(OcirtError) as e:
        signals.parse_signal(text)
    assert type(e.value) is OcirtError and str(e.value) == f'unknown signal "{text}"'
    with pytest.raises(UsageError) as cli:  # the command line: its usage error
        cli_parse_signal(text)
    assert str(cli.value) == str(e.value)


def test_kill_looks_the_container_up_before_the_signal(tmp_path, capsys):
    """As runc's: no such container is that error, whatever the signal (an unknown signal of an
    existing one: conformance/test_cli_input_errors.py)."""
    assert main(["--root", str(tmp_path), "kill", "box", "NOPE"]) == 1
    assert capsys.readouterr().err.strip().endswith('msg="container does not exist: box"')


# -- defaults -------------------------------------------------------------------------------------
def test_rootless_mode_values(monkeypatch):
    assert defaults.rootless_mode("true") is True
    assert defaults.rootless_mode("false") is False
    with pytest.raises(OcirtError, match='invalid value "maybe" for flag --rootless'):
        defaults.rootless_mode("maybe")
    from ocirt import cli

    with pytest.raises(UsageError, match='invalid value "maybe" for flag --rootless'):
        cli.rootless_mode("maybe")


def test_default_root(monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    monkeypatch.setattr(posix, "geteuid", lambda: 1000)  # defaults.py asks posix, not os
    assert defaults.default_root() == "/run/user/1000/ocirt"
    monkeypatch.setattr(posix, "geteuid", lambda: 0)
    assert defaults.default_root() == "/run/ocirt"


# -- exec's process -------------------------------------------------------------------------------
@pytest.fixture
def bundle(tmp_path):
    config = {
        "process": {
            "args": ["sh"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
        }
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


def test_exec_process_from_config(bundle):
    opts = execspec.ExecOptions(
        env=["A=1"],
        cwd="/tmp",
        uid=5,
        gid=6,
        additional_gids=[7],
        no_new_privileges=True,
        caps=["CAP_CHOWN", "CAP_KILL"],
    )
    proc = execspec.process_config(opts, ["id", "-u"], bundle)
    assert proc["args"] == ["id", "-u"] and proc["terminal"] is False
    assert proc["env"] == ["PATH=/bin", "A=1"] and proc["cwd"] == "/tmp"
    assert proc["user"] == {"uid": 5, "gid": 6, "additionalGids": [7]}
    assert proc["noNewPrivileges"] is True
    caps = proc["capabilities"]
    assert caps["bounding"] == ["CAP_KILL", "CAP_CHOWN"] and caps["ambient"] == []
    assert caps["inheritable"] == []  # --cap never adds to it (runc since CVE-2022-29162)
    spec = execspec.process_spec(proc, opts)
    assert (spec.args, spec.uid, spec.gid, spec.additional_gids) == (["id", "-u"], 5, 6, [7])
    assert spec.pointer == "/process"


def test_exec_process_whole(tmp_path, bundle):
    whole = {"args": ["true"], "cwd": "/"}
    opts = execspec.ExecOptions(process=whole)
    proc = execspec.process_config(opts, ["ignored"], bundle)
    assert proc == whole and proc is not whole
    bad = {"args": ["true"], "cwd": "/", "scheduler": {"policy": "SCHED_NOPE"}}
    with pytest.raises(ConfigError) as e:  # errors name the field in process.json
        execspec.process_config(execspec.ExecOptions(process=bad), [], bundle)
    assert str(e.value).startswith("process.json: /scheduler")
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"cwd": "/"}))
    opts = execspec.ExecOptions(process_file=str(path))
    with pytest.raises(OcirtError, match=r"^process.json: /args: ('args' )?is required$"):
        execspec.process_spec(execspec.process_config(opts, [], bundle), opts)


def test_exec_user_and_command_errors(bundle):
    assert execspec.parse_user("1000") == (1000, None)
    assert execspec.parse_user("1000:50") == (1000, 50)
    with pytest.raises(OcirtError, match=r"invalid --user 'root': numeric uid\[:gid\] expected"):
        execspec.parse_user("root")
    with pytest.raises(OcirtError, match=r"^process args cannot be empty$"):
        execspec.process_config(execspec.ExecOptions(), [], bundle)


def test_exec_flags_to_options():
    from ocirt.cli import parse
    from ocirt.commands.exec import OPTIONS, exec_options

    o, args = parse(
        OPTIONS,
        [
            "-e",
            "A=1",
            "-u",
            "1:2",
            "-g",
            "3",
            "--cap",
            "CAP_KILL",
            "--no-new-privs",
            "--preserve-fds",
            "2",
            "sh",
        ],
        True,
    )
    opts = exec_options(o, args)
    assert (opts.env, opts.uid, opts.gid, opts.additional_gids, opts.caps) == (
        ["A=1"],
        1,
        2,
        [3],
        ["CAP_KILL"],
    )
    assert opts.no_new_privileges and opts.preserve_fds == 2 and not opts.whole
    for argv, message in (
        (["-u", "x", "sh"], "invalid --user 'x'"),
        ([], "process args cannot be empty"),
        (["-g", "x", "sh"], "additional-gids"),
    ):
        o, args = parse(OPTIONS, argv, True)
        with pytest.raises(UsageError, match=message):
            exec_options(o, args)


# -- a container's state dir and pids -------------------------------------------------------------
def test_remove_leftover(tmp_path):
    assert remove_leftover(str(tmp_path), "gone") is False
    sd = StateDir(str(tmp_path), "half")
    os.makedirs(sd.path)
    assert remove_leftover(str(tmp_path), "half") is True
    assert not os.path.exists(sd.path)


def test_pids_without_a_cgroup():
    assert NoCgroup(pid=os.getpid()).pids() == [os.getpid()]  # our own pid namespace
    assert NoCgroup(pid=2**22 + 1).pids() == []  # no such process
    c = OpenContainer(sd=None, state=ContainerState(id="x", bundle="/", pid=os.getpid()))
    assert c.pids() == [os.getpid()]
    c.state.pid = 0
    assert c.pids() == []


def test_kill_all_returns_once_the_init_has_exited(monkeypatch):
    """The kernel takes an exiting process out of its cgroup a moment before it is a zombie:
    `kill --all KILL` waits for the init itself too, not only for an empty cgroup, so that the
    `delete` that follows finds the container stopped."""
    from ocirt import children

    class Emptied:
        unit, created = None, ["/cg"]

        def dirs(self):
            return ["/cg"]

        def frozen(self):
            return False

        def wait_empty(self):
            return True

    starts = [7, 7, 7, None]  # /proc/PID/stat: still exiting twice, then a zombie
    monkeypatch.setattr(children, "proc_start_time", lambda pid: starts.pop(0))
    c = OpenContainer(sd=None, state=ContainerState(id="x", bundle="/", pid=12345, pid_start=7))
    monkeypatch.setattr(c, "cgroup", lambda: Emptied())
    c._after_sigkill(all_processes=True)
    assert starts == []


def test_open_container_is_a_context_manager():
    closed = []

    class FakeDir:
        def unlock(self):
            closed.append(True)

    with OpenContainer(sd=FakeDir(), state=None) as c:
        assert isinstance(c, OpenContainer)
    assert closed == [True]


# -- events ---------------------------------------------------------------------------------------
class _FakeCgroup:
    kind = "v2"

    def __init__(self, unified):
        self.unified = unified
        self.calls = 0

    def stats(self):
        self.calls += 1
        if self.calls == 2:
            raise OcirtError("stats failed")
        return {"pids": {"current": 1, "limit": 5}}


class _FakeContainer:
    def __init__(self, state_file, statuses):
        self.state = ContainerState(id="box", bundle="/", cgroup={"x": 1})
        self.sd = type("SD", (), {"state_file": state_file})()
        self.statuses = list(statuses)

    def status(self):
        from ocirt.state import Status

        return Status.STOPPED if not self.statuses.pop(0) else Status.RUNNING


def test_watch_yields_stats_and_oom_until_stopped(tmp_path):
    from ocirt import events

    (tmp_path / "memory.events").write_text("low 0\noom 0\n")
    (tmp_path / "state.json").write_text("{}")
    cg = _FakeCgroup(str(tmp_path))
    c = _FakeContainer(str(tmp_path / "state.json"), [True, True, True, False])
    errors, seen = [], []
    for event in events.watch(c, cg, 0.001, on_error=errors.append):
        seen.append(event)
        if len(seen) == 1:
            (tmp_path / "memory.events").write_text("low 0\noom 2\n")
    assert seen[0] == {
        "type": "stats",
        "id": "box",
        "data": events.runc_stats({"pids": {"current": 1, "limit": 5}}),
    }
    assert seen[0]["data"]["pids"] == {"current": 1, "limit": 5}
    assert {"type": "oom", "id": "box"} in seen
    assert [str(e) for e in errors] == ["stats failed"]


def test_watched_cgroup_refuses_stopped_and_cgroupless():
    from ocirt import events

    c = _FakeContainer("/nonexistent", [False])
    with pytest.raises(OcirtError, match="^container with id box is not running$"):
        events.watched_cgroup(c)
    c = _FakeContainer("/nonexistent", [True])
    c.cgroup = lambda: NoCgroup()
    with pytest.raises(OcirtError, match="^the container has no cgroup$"):
        events.watched_cgroup(c)


def test_start_created_deletes_what_failed_to_start(monkeypatch):
    from ocirt import container

    calls = []

    class FakeDir:
        def unlock(self):
            calls.append("unlock")

    def start(self, until_executed=False):
        calls.append("start")
        assert until_executed  # run waits for the exec: a failed execve is its error
        raise OcirtError("cannot start")

    monkeypatch.setattr(container.OpenContainer, "start", start)
    monkeypatch.setattr(
        container.OpenContainer, "delete", lambda self, force=False: calls.append(("delete", force))
    )
    with pytest.raises(OcirtError, match="cannot start"):
        container.start_created(FakeDir(), None, before_start=lambda: calls.append("before"))
    assert calls == ["before", "start", ("delete", True), "unlock"]
    calls.clear()
    monkeypatch.setattr(container.OpenContainer, "start", lambda self, until_executed: calls.append("start"))
    container.start_created(FakeDir(), None)
    assert calls == ["start", "unlock"]


def test_signal_zero_is_a_signal():
    """kill(2)'s 0: existence only (runc passes "0" through as well)."""
    assert signals.parse_signal("0") == 0


# -- state.json: written whole, never renamed over another (create's last save) -------------------
def test_state_save_aside_never_renames_over_a_file(tmp_path, monkeypatch):
    """create's last save (aside=True): the old state.json is renamed aside and unlinked after,
    so that the new one is renamed where there is no file (ext4 allocates a file's blocks at
    once when it is renamed over another, and unlinking it then costs delete ~0.3 ms)."""
    sd = StateDir(str(tmp_path), "x")
    os.mkdir(sd.path)
    renames = []
    real = posix.rename

    def rename(a, b):
        there = os.path.exists(b)
        real(a, b)
        renames.append((os.path.basename(a), os.path.basename(b), there))

    monkeypatch.setattr(posix, "rename", rename)
    sd.save(ContainerState(id="x", bundle="/b", pid=1), aside=True)  # the first: nothing to set aside
    sd.save(ContainerState(id="x", bundle="/b", pid=2), aside=True)
    assert sd.load().pid == 2 and os.listdir(sd.path) == ["state.json"]
    assert renames == [
        ("state.json.tmp", "state.json", False),
        ("state.json", "state.json.old", False),
        ("state.json.tmp", "state.json", False),
    ]
    sd.save(ContainerState(id="x", bundle="/b", pid=3))  # the others: renamed over it
    assert renames[-1] == ("state.json.tmp", "state.json", True) and sd.load().pid == 3


def test_a_create_killed_while_its_state_was_aside_is_still_found(tmp_path):
    """No state.json, but the new record in state.json.tmp (or the old one in .old): what
    `delete --force` kills and removes is read from there (members.remove_damaged)."""
    sd = StateDir(str(tmp_path), "x")
    os.mkdir(sd.path)
    assert sd.salvage_aside() == {}
    cgroup = {"kind": "v1", "paths": {"pids": "/sys/fs/cgroup/pids/x"}}
    with open(sd.state_file + ".old", "w") as f:
        json.dump({"id": "x", "pid": 0, "cgroup": cgroup}, f)
    assert sd.salvage_aside() == {"pid": 0, "cgroup": cgroup}
    with open(sd.state_file + ".tmp", "w") as f:
        f.write('{"id": "x", "pid": 42, "pid_start": 7, "cgr')  # cut short: not the one to read
    assert sd.salvage_aside()["pid"] == 0
    with open(sd.state_file + ".tmp", "w") as f:
        json.dump({"id": "x", "pid": 42, "pid_start": 7, "cgroup": cgroup}, f)
    assert sd.salvage_aside() == {"pid": 42, "pid_start": 7, "cgroup": cgroup}
