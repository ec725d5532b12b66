"""The hook runner as runc runs a hook: output captured and told in the error, the state as Go
writes it, the environment of a hook without `env`, and no wait for what a hook leaves running."""

import json
import os
import posix
import time

import pytest
from cli_helpers import assert_gone

from ocirt import hooks
from ocirt.errors import OcirtError


def sh_hook(script, **kw):
    return {"path": "/bin/sh", "args": ["sh", "-c", script], **kw}


STATE = {"ociVersion": "1.3.0", "id": "c", "status": "stopped", "pid": 0, "bundle": "/b"}


def test_output_is_captured_and_told_in_the_error(capfd):
    with pytest.raises(OcirtError) as e:
        hooks.run({"prestart": [sh_hook("echo out; echo err >&2; exit 3")]}, "prestart", STATE)
    assert (
        str(e.value)
        == "/hooks/prestart/0: error running hook /bin/sh: exit status 3, stdout: out\n, stderr: err\n"
    )
    assert capfd.readouterr() == ("", "")


def test_a_signal_in_gos_words(capfd):
    with pytest.raises(OcirtError) as e:
        hooks.run({"prestart": [sh_hook("kill -9 $$")]}, "prestart", STATE)
    assert str(e.value) == "/hooks/prestart/0: error running hook /bin/sh: signal: killed, stdout: , stderr: "


def test_a_successful_hooks_output_goes_nowhere(capfd):
    hooks.run({"poststart": [sh_hook("echo out; echo err >&2")]}, "poststart", STATE)
    assert capfd.readouterr() == ("", "")


def test_what_is_kept_of_the_output_is_bounded():
    script = "head -c 300000 /dev/zero | tr '\\0' z; exit 1"
    with pytest.raises(OcirtError) as e:
        hooks.run({"prestart": [sh_hook(script)]}, "prestart", STATE)
    assert str(e.value).count("z") == hooks.OUTPUT_KEPT


def test_state_is_compact_and_without_a_zero_pid(tmp_path):
    out = tmp_path / "state"
    hooks.run({"poststop": [sh_hook(f"cat > {out}")]}, "poststop", {**STATE, "annotations": {"a": "<b>"}})
    raw = out.read_text()
    assert (
        raw
        == '{"ociVersion":"1.3.0","id":"c","status":"stopped","bundle":"/b","annotations":{"a":"\\u003cb\\u003e"}}'
    )
    assert json.loads(raw)["annotations"] == {"a": "<b>"}


def test_a_large_state_to_a_hook_that_does_not_read_it():
    hooks.run({"prestart": [sh_hook("exit 0")]}, "prestart", {**STATE, "big": "x" * (1 << 20)})


def test_env_absent_is_the_runtimes_for_runtime_hooks_and_none_for_the_containers(tmp_path, monkeypatch):
    caller = {**os.environb, b"OCIRT_HOOK_TEST": b"inherited"}  # (what the command started with)
    monkeypatch.setattr(hooks, "callers_environ", lambda: caller)
    for name in hooks.HOOK_NAMES:
        hooks.run({name: [sh_hook(f"env > {tmp_path / name}")]}, name, STATE)
        env = (tmp_path / name).read_text()
        assert ("OCIRT_HOOK_TEST=inherited" in env) == (name not in hooks.CONTAINER_HOOKS), name
    hooks.run(
        {"createContainer": [sh_hook(f"env > {tmp_path}/given")]},
        "createContainer",
        STATE,
        environ={"X": "1"},
    )
    assert "X=1" in (tmp_path / "given").read_text().split()


def test_an_empty_env_is_an_empty_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OCIRT_HOOK_TEST", "inherited")
    hooks.run({"prestart": [sh_hook(f"env > {tmp_path}/env", env=[])]}, "prestart", STATE)
    assert "OCIRT_HOOK_TEST" not in (tmp_path / "env").read_text()


def test_a_child_left_running_with_the_hooks_output_does_not_hold_the_runner(tmp_path):
    pid_file = tmp_path / "bg"
    t0 = time.monotonic()
    try:
        hooks.run(
            {"prestart": [sh_hook(f"sleep 30 & echo $! > {pid_file}; echo started")]}, "prestart", STATE
        )
        assert time.monotonic() - t0 < 5
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 9)


def test_timeout_with_the_output_pipes_still_open():
    t0 = time.monotonic()
    with pytest.raises(OcirtError, match="timed out after 1s"):
        hooks.run({"prestart": [sh_hook("echo x; exec sleep 30", timeout=1)]}, "prestart", STATE)
    assert time.monotonic() - t0 < 5


def test_without_pidfds_the_hook_still_runs_and_fails(monkeypatch):
    def no_pidfd(pid):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(posix, "pidfd_open", no_pidfd)
    hooks.run({"prestart": [sh_hook("echo fine")]}, "prestart", STATE)
    with pytest.raises(OcirtError, match="exit status 2, stdout: x"):
        hooks.run({"prestart": [sh_hook("echo x; exit 2")]}, "prestart", STATE)


def test_a_child_left_writing_forever_does_not_hold_the_runner(tmp_path):
    pid_file = tmp_path / "bg"
    script = f"(while :; do echo spam; done) & echo $! > {pid_file}"
    t0 = time.monotonic()
    try:
        hooks.run({"prestart": [sh_hook(script)]}, "prestart", STATE)
        assert time.monotonic() - t0 < 5
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 9)


def test_the_runners_fds_may_be_past_fd_setsize():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("RLIMIT_NOFILE's hard limit is under 1200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = []
    try:
        while not held or held[-1] < 1030:
            held.append(os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC))
        with pytest.raises(OcirtError, match="exit status 5, stdout: high"):
            hooks.run({"prestart": [sh_hook("echo high; exit 5", timeout=5)]}, "prestart", STATE)
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_callers_environment_is_the_one_the_process_started_with(monkeypatch):
    """/proc/self/environ: what the process was started with, not what it set since."""
    monkeypatch.setenv("OCIRT_SET_LATER", "1")
    env = hooks.callers_environ()
    assert b"OCIRT_SET_LATER" not in env and env.get(b"PATH") == os.environb.get(b"PATH")


def test_a_timed_out_hook_goes_with_what_it_started(tmp_path):
    """runc waits for the hook's children (they hold its output pipes) past the timeout; ocirt
    kills the hook's process group (its own) at the timeout: nothing of it is left running."""
    pid_file = tmp_path / "bg"
    with pytest.raises(OcirtError, match="timed out after 1s"):
        hooks.run(
            {"prestart": [sh_hook(f"sleep 30 & echo $! > {pid_file}; sleep 30", timeout=1)]},
            "prestart",
            STATE,
        )
    assert_gone(int(pid_file.read_text()))  # (killed with the hook)
