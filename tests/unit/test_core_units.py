"""Namespaces (linux.namespaces parsed), process setup order, status transitions, CLI parsing, protocol."""

import os
import signal

import pytest

from ocirt import kernel as k
from ocirt import namespaces, process
from ocirt.cli import GLOBAL_OPTIONS, Opt, UsageError, parse
from ocirt.commands.kill import parse_signal
from ocirt.errors import ConfigError, OcirtError
from ocirt.kernel.fake import RecordingKernel
from ocirt.protocol import Channel, Failed, InitPid, Ready
from ocirt.state import ContainerState, Status


def cfg(namespaces_list, **linux):
    return {"linux": {"namespaces": namespaces_list, **linux}}


# -- namespaces ---------------------------------------------------------------------------------
def test_new_and_joined_namespaces():
    p = namespaces.parse(
        cfg(
            [
                {"type": "pid"},
                {"type": "network", "path": "/run/netns/x"},
                {"type": "mount"},
                {"type": "user", "path": "/proc/1/ns/user"},
            ]
        )
    )
    assert p.new == ["pid", "mount"]
    assert p.join == [("user", "/proc/1/ns/user", 3), ("network", "/run/netns/x", 1)]
    assert p.new_flags() == k.CLONE_NEWPID | k.CLONE_NEWNS


def test_duplicated_namespace_names_the_duplicate():
    with pytest.raises(ConfigError) as e:
        namespaces.parse(cfg([{"type": "pid"}, {"type": "ipc"}, {"type": "pid"}]))
    assert e.value.pointer == "/linux/namespaces/2"


def test_user_namespace_needs_mappings():
    with pytest.raises(ConfigError, match="/linux/uidMappings"):
        namespaces.parse(cfg([{"type": "user"}]))


def test_id_map_and_time_offsets_format():
    assert namespaces.id_map([{"containerID": 0, "hostID": 1000, "size": 65536}]) == "0 1000 65536\n"
    assert (
        namespaces.time_offsets({"monotonic": {"secs": 7}, "boottime": {"secs": 1, "nanosecs": 2}})
        == "monotonic 7 0\nboottime 1 2\n"
    )


# -- process --------------------------------------------------------------------------------------
def test_identity_switch_order_keeps_capabilities():
    kern = RecordingKernel()
    spec = process.ProcessSpec(
        args=["sh"],
        uid=1000,
        gid=1000,
        additional_gids=[5],
        no_new_privileges=True,
        capabilities={
            "bounding": ["CAP_KILL"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL"],
            "inheritable": ["CAP_KILL"],
            "ambient": ["CAP_KILL"],
        },
    )
    process.switch_identity(kern, spec, last_cap=40)
    names = kern.names()
    # bounding drops first, then keepcaps, ids, then capset, ambient, nnp last
    assert names.index("setgroups") < names.index("setresgid") < names.index("setresuid")
    assert names.index("setresuid") < names.index("capset")
    drops = [c.args[1] for c in kern.calls if c.name == "prctl" and c.args[0] == k.PR_CAPBSET_DROP]
    assert 5 not in drops and len(drops) == 40  # CAP_KILL is 5
    assert kern.find("capset")[0].args == (1 << 5, 1 << 5, 1 << 5)
    assert kern.calls[-1].args[:2] == (k.PR_SET_NO_NEW_PRIVS, 1)
    assert any(c.args[:3] == (k.PR_CAP_AMBIENT, k.PR_CAP_AMBIENT_RAISE, 5) for c in kern.find("prctl"))


def test_unknown_capability_is_a_warning_and_skipped():
    from ocirt import capabilities

    caps = {"bounding": ["CAP_KILL", "CAP_NOPE"]}
    assert capabilities.unknown(caps) == [
        "/process/capabilities/bounding/1: unknown capability 'CAP_NOPE' ignored"
    ]
    assert capabilities.masks(caps, 40)["bounding"] == 1 << 5


def test_env_and_rlimit_checks_name_their_pointer():
    with pytest.raises(ConfigError) as e:
        process.ProcessSpec(args=["sh"], env=["A=1", "NOEQUALS"]).check()
    assert e.value.pointer == "/process/env/1"
    with pytest.raises(ConfigError) as e:
        process.ProcessSpec(args=["sh"], rlimits=[{"type": "RLIMIT_NOFILE", "soft": 2, "hard": 1}]).check()
    assert e.value.pointer == "/process/rlimits/0"


def test_sysctl_needs_its_namespace():
    ns = namespaces.parse(cfg([{"type": "ipc"}]))
    namespaces.check_sysctl({"kernel.shmmax": "1", "fs.mqueue.queues_max": "2"}, ns)
    with pytest.raises(ConfigError, match="/linux/sysctl/net.ipv4.ip_forward"):
        namespaces.check_sysctl({"net.ipv4.ip_forward": "1"}, ns)
    with pytest.raises(ConfigError, match="not in a separate kernel namespace"):
        namespaces.check_sysctl({"kernel.bogus": "1"}, ns)


def test_rlimits_and_oom_score_adj():
    kern = RecordingKernel()
    spec = process.ProcessSpec(
        args=["sh"], rlimits=[{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}], oom_score_adj=100
    )
    process.set_limits(kern, spec)
    import resource

    assert kern.find("setrlimit")[0].args == (resource.RLIMIT_NOFILE, 10, 20)
    assert kern.find("write_file")[0].args == ("/proc/self/oom_score_adj", "100")


def test_oom_score_adj_untouched_when_absent():
    kern = RecordingKernel()
    process.set_limits(kern, process.ProcessSpec(args=["sh"]))
    assert not kern.calls


def test_bad_rlimit_names_its_pointer():
    with pytest.raises(ConfigError) as e:
        process.rlimit_number("RLIMIT_BOGUS", 3)
    assert e.value.pointer == "/process/rlimits/3/type"


@pytest.mark.parametrize("name", ["RLIMIT_OFILE", "NOFILE", ["RLIMIT_NOFILE"], None])
def test_only_the_specs_rlimit_names_pass_the_check(name):
    """create's parent checks the names without the resource module: the spec's (and runc's)
    sixteen; glibc's alias RLIMIT_OFILE, which the module has too, is not one (runc: "wrong
    rlimit value")."""
    with pytest.raises(ConfigError) as e:
        process.ProcessSpec(args=["sh"], rlimits=[{"type": name, "soft": 1, "hard": 1}]).check()
    assert e.value.pointer == "/process/rlimits/0/type"


def test_every_checked_rlimit_name_has_this_machines_number():
    import resource

    assert len(process.RLIMIT_NAMES) == 16
    for name in process.RLIMIT_NAMES - {"RLIMIT_LOCKS"}:
        assert process.rlimit_number(name, 0) == getattr(resource, name)
    assert not hasattr(resource, "RLIMIT_LOCKS")  # (else it should come from there)
    assert process.rlimit_number("RLIMIT_LOCKS", 0) == 10


def test_lookup_uses_the_container_path(tmp_path):
    exe = tmp_path / "prog"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert process.lookup("prog", {"PATH": f"/nonexistent:{tmp_path}"}) == str(exe)
    with pytest.raises(OcirtError, match="executable file not found in \\$PATH"):
        process.lookup("nope", {"PATH": str(tmp_path)})


# -- status -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "status,op,ok",
    [
        (Status.CREATED, "start", True),
        (Status.RUNNING, "start", False),
        (Status.STOPPED, "kill", False),
        (Status.RUNNING, "kill", True),
        (Status.RUNNING, "delete", False),
        (Status.STOPPED, "delete", True),
        (Status.PAUSED, "resume", True),
        (Status.RUNNING, "resume", False),
        (Status.RUNNING, "pause", True),
        (Status.CREATED, "delete", False),
    ],
)
def test_status_transitions(status, op, ok):
    if ok:
        status.check(op)
    else:
        with pytest.raises(OcirtError):
            status.check(op)


def test_force_allows_delete_of_running():
    Status.RUNNING.check("delete", force=True)


def test_oci_state_has_no_pid_when_stopped():
    st = ContainerState(id="a", bundle="/b", pid=42)
    assert st.oci(Status.STOPPED)["pid"] == 0
    assert st.oci(Status.RUNNING)["pid"] == 42


# -- CLI --------------------------------------------------------------------------------------------
OPTS = (Opt("bundle", "b", value=True, default="."), Opt("detach", "d"))


@pytest.mark.parametrize(
    "argv", [["--bundle", "B", "x"], ["--bundle=B", "x"], ["-b", "B", "x"], ["x", "-bundle", "B"]]
)
def test_flag_spellings(argv):
    values, args = parse(OPTS, argv, stop_at_positional=False)
    assert values["bundle"] == "B" and args == ["x"]


def test_bool_flags_and_stop_at_positional():
    values, args = parse(OPTS, ["-d", "id", "sh", "-c", "x"], stop_at_positional=True)
    assert values["detach"] is True and args == ["id", "sh", "-c", "x"]


def test_unknown_flag():
    with pytest.raises(UsageError, match="flag provided but not defined"):
        parse(OPTS, ["--nope"], stop_at_positional=False)


def test_global_flags_stop_at_command():
    values, rest = parse(
        GLOBAL_OPTIONS,
        ["--root", "/r", "--log-format=json", "create", "-b", "x", "id"],
        stop_at_positional=True,
    )
    assert values["root"] == "/r" and values["log_format"] == "json"
    assert rest == ["create", "-b", "x", "id"]


@pytest.mark.parametrize(
    "text,num", [("KILL", 9), ("SIGKILL", 9), ("9", 9), ("term", 15), ("SIGUSR1", int(signal.SIGUSR1))]
)
def test_signal_names(text, num):
    assert parse_signal(text) == num


def test_bad_signal():
    with pytest.raises(UsageError):
        parse_signal("SIGNOPE")


# -- protocol -------------------------------------------------------------------------------------
def test_protocol_round_trip_and_failure():
    a, b = Channel.pair()
    try:
        a.send(InitPid(42))
        assert b.recv() == InitPid(42)
        a.send(Failed("mount /x", 2))
        with pytest.raises(OcirtError, match="mount /x: no such file"):
            b.expect(Ready, "ready")
        a.close()
        with pytest.raises(OcirtError, match="exited before"):
            b.expect(Ready, "ready")
    finally:
        b.close()


def test_protocol_passes_fds():
    from ocirt.protocol import SeccompFd

    a, b = Channel.pair()
    r, w = os.pipe()
    try:
        a.send(SeccompFd(), fds=(w,))
        assert b.recv() == SeccompFd()
        (got,) = b.received_fds
        os.write(got, b"x")
        assert os.read(r, 1) == b"x"
        os.close(got)
    finally:
        for fd in (r, w):
            os.close(fd)
        a.close()
        b.close()


def test_parent_writes_the_id_maps_through_the_kernel():
    linux = {
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
    }
    kern = RecordingKernel()
    namespaces.write_id_maps(kern, 42, linux, unprivileged=False)
    assert [c.args for c in kern.calls] == [
        ("/proc/42/uid_map", "0 1000 1\n"),
        ("/proc/42/gid_map", "0 1000 1\n"),
    ]
    kern = RecordingKernel()
    namespaces.write_id_maps(kern, 42, linux, unprivileged=True)  # setgroups denied first
    assert [c.args[0] for c in kern.calls] == ["/proc/42/uid_map", "/proc/42/setgroups", "/proc/42/gid_map"]
    kern = RecordingKernel(fail={"write_file": PermissionError(1, "denied")})
    with pytest.raises(OcirtError) as e:
        namespaces.write_id_maps(kern, 42, linux, unprivileged=False)
    assert "/linux/uidMappings: write /proc/42/uid_map" in str(e.value)


def test_recording_kernel_records_the_parents_calls():
    kern = RecordingKernel(fork_pid=7)
    kern.mkfifo("/run/x/exec.fifo", 0o622)
    assert kern.fork() == 7
    kern.waitpid(7)
    assert kern.names() == ["mkfifo", "fork", "waitpid"]
