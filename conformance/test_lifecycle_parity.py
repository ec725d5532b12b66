"""Lifecycle commands as runc 1.1.5 does them where engines and users notice: what a foreground
`run` does with the signals sent to it, the signal state the container's process starts with,
and the error messages of start, delete and create (runtime.md, and runc's behaviour where the
spec says nothing)."""

import os
import re
import shlex
import subprocess
import sys

import pytest
from runtime import one_line, output, sh, wait_for

SLEEP = ["sleep", "1000"]


def out_mount(host_dir):
    """A host dir bind-mounted read-write at /tmp/out in the container (on the /tmp tmpfs)."""
    return {"destination": "/tmp/out", "type": "bind", "source": str(host_dir), "options": ["rbind", "rw"]}


def _stdout_so_far(proc):
    return os.pread(proc.out_file.fileno(), 4096, 0).decode(errors="replace")


# ---- run in the foreground: every signal goes on to the container's process ------------------


@pytest.mark.parametrize("sig", ["INT", "TERM", "HUP", "QUIT", "USR1", "USR2", "ALRM", "TSTP", "40"])
def test_run_forwards_the_signal_to_the_process(rt, make_bundle, sig):
    # The process (pid 1 of its namespace: only a signal it handles reaches it) says which signal
    # it got; the runtime neither dies of it (SIGALRM, a real-time one) nor stops (SIGTSTP): it
    # passes it on and exits with the process's status. (Not SIGPIPE: runc passes it on, ocirt
    # keeps it ignored, as its own writes raise it.)
    b = make_bundle(sh(f'trap "echo got {sig}; exit 9" {sig}; echo ready; while :; do sleep 0.1; done'))
    proc = rt.popen("run", "--bundle", b.path, b.id)
    rt.ids.append(b.id)
    try:
        wait_for(lambda: "ready" in _stdout_so_far(proc), what="the process to set its trap")
        proc.send_signal(int(sig) if sig.isdigit() else getattr(__import__("signal"), f"SIG{sig}"))
        proc.wait(timeout=20)
        out, err = output(proc)
        assert proc.returncode == 9, (out, err)
        assert f"got {sig}" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---- the signal state the process starts with --------------------------------------------------

# SIGHUP, SIGINT, SIGUSR1, SIGPIPE, SIGTERM: ignored by the caller (nohup, a shell's background
# job, a supervisor that ignores SIGPIPE) they are still at their default actions in the container.
CALLER_IGNORES = (1, 2, 10, 13, 15)
IGNORE_THEM = 'trap "" HUP INT USR1 PIPE TERM'


def _ignored(status_text):
    for line in status_text.splitlines():
        if line.startswith("SigIgn:"):
            mask = int(line.split()[1], 16)
            return {n for n in CALLER_IGNORES if mask & (1 << (n - 1))}
    raise AssertionError(f"no SigIgn in {status_text!r}")


def test_run_signals_the_caller_ignores_are_not_ignored_in_the_container(run_in):
    p = run_in(["cat", "/proc/self/status"], run_kw={"prelude": IGNORE_THEM})
    assert p.returncode == 0, p.stderr
    assert _ignored(p.stdout) == set()


def test_create_signals_the_caller_ignores_are_not_ignored_in_the_container(rt, make_bundle, tmp_path):
    outdir = tmp_path / "out"
    outdir.mkdir()
    b = make_bundle(
        sh("exec cat /proc/self/status > /tmp/out/status"),
        mutate=lambda c: c["mounts"].append(out_mount(outdir)),
    )
    p = rt.create(b.id, b, prelude=IGNORE_THEM)
    assert p.returncode == 0, p.stderr
    assert rt.start(b.id).returncode == 0
    rt.wait_status(b.id, "stopped")
    assert _ignored((outdir / "status").read_text()) == set()
    assert rt.delete(b.id).returncode == 0


# glibc's own two, SIGCANCEL (32) and SIGSETXID (33): a runtime started by glibc's posix_spawn
# (Python 3.13's subprocess, a supervisor written in C) has them ignored (the spawn sets them so in
# its child before the exec), and the container's process should not.
SPAWNED = (
    f"exec {shlex.quote(sys.executable)}"
    ' -c "import os, sys; p = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ);'
    ' sys.exit(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]))" "$@"'
)
GLIBC_INTERNAL = (32, 33)


def _ignored_of(status_text, sigs):
    mask = int(next(line for line in status_text.splitlines() if line.startswith("SigIgn:")).split()[1], 16)
    return {n for n in sigs if mask & (1 << (n - 1))}


@pytest.mark.runc_deviates(
    "runc 1.1.5's container process keeps signal 32 ignored when runc came with it ignored (33 is reset)"
)
def test_run_glibc_signals_a_spawned_runtime_has_ignored_are_not_ignored_in_the_container(run_in):
    probe = subprocess.run(
        ["sh", "-c", SPAWNED, "sh", "/bin/cat", "/proc/self/status"], capture_output=True, text=True
    )
    if probe.returncode != 0 or _ignored_of(probe.stdout, GLIBC_INTERNAL) != set(GLIBC_INTERNAL):
        pytest.skip("this C library's posix_spawn does not leave 32 and 33 ignored")
    p = run_in(["cat", "/proc/self/status"], run_kw={"prelude": SPAWNED})
    assert p.returncode == 0, p.stderr
    assert _ignored_of(p.stdout, GLIBC_INTERNAL) == set()


# ---- global flags ------------------------------------------------------------------------------


def test_log_json_lines_are_compact(rt, new_id, tmp_path):
    # runc's logrus writes {"level":"error","msg":"...","time":"..."}: no blank after ':' or ','.
    log = tmp_path / "log.json"
    p = rt.state(new_id(), global_args=["--log", str(log), "--log-format", "json"])
    assert p.returncode != 0
    line = log.read_text().strip()
    assert re.fullmatch(r'\{"level":"error","msg":"container does not exist[^"]*","time":"[^"]+"\}', line), (
        line
    )


@pytest.mark.parametrize("fmt", ["bad", "JSON", "Text"])
def test_bad_log_format_fails_before_the_log_file_is_made(rt, tmp_path, fmt):
    log = tmp_path / "log"
    p = rt("list", global_args=["--log", str(log), "--log-format", fmt])
    assert p.returncode != 0
    assert f"invalid log-format: {fmt}" in one_line(p.stderr)
    assert "level=error" in p.stderr  # the error line itself on stderr: there is no log file
    assert not log.exists()


def test_empty_log_format_is_text(rt, new_id, tmp_path):
    log = tmp_path / "log"
    p = rt.state(new_id(), global_args=["--log", str(log), "--log-format", ""])
    assert p.returncode != 0
    assert log.read_text().startswith('time="'), log.read_text()


# ---- a runtime started without stdio ---------------------------------------------------------


@pytest.mark.parametrize("closed", ["1>&- 2>&-", "0<&- 1>&- 2>&-", "2>&-"])
def test_create_with_stdio_closed_leaves_the_container_usable(rt, make_bundle, closed):
    # Whatever the runtime opens into the free slots (its state directory, with its lock) must
    # not go to the container's process: start, state and delete still work at once.
    b = make_bundle(SLEEP)
    p = rt.create(b.id, b, prelude=f"exec {closed}")
    assert p.returncode == 0
    assert rt.state_json(b.id)["status"] == "created"
    assert rt.start(b.id, timeout=15).returncode == 0
    assert rt.delete(b.id, force=True, timeout=15).returncode == 0
    assert rt.state(b.id).returncode != 0


def test_run_detached_with_stdio_closed_leaves_the_container_usable(rt, make_bundle):
    b = make_bundle(SLEEP)
    p = rt.run(b.id, b, extra=["--detach"], prelude="exec 0<&- 1>&- 2>&-")
    assert p.returncode == 0
    assert rt.state_json(b.id)["status"] == "running"
    assert rt.delete(b.id, force=True, timeout=15).returncode == 0


@pytest.mark.parametrize("sig", ["TERM", "INT", "HUP"])
def test_run_signalled_while_it_creates_leaves_nothing_behind(rt, make_bundle, tmp_path, sig):
    # runc keeps a signal that comes while it makes the container: it neither dies half way
    # (a container left `creating`, its state in --root) nor hangs.
    mark = tmp_path / "hook-runs"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"touch {mark}; sleep 2"]}
    b = make_bundle(["true"], hooks={"createRuntime": [hook]})
    proc = rt.popen("run", "--bundle", b.path, b.id)
    rt.ids.append(b.id)
    try:
        wait_for(mark.exists, what="the createRuntime hook to run")
        proc.send_signal(getattr(__import__("signal"), f"SIG{sig}"))
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output(proc)
    assert rt.state(b.id).returncode != 0, "the container is still there"
    assert os.listdir(rt.root) == []


def test_run_with_stdin_closed_gives_the_process_a_stdin(rt, make_bundle):
    """The process's fd 0 is open (runc: a pipe; ocirt: /dev/null), not a file the runtime
    happened to open into the free slot, nor closed."""
    b = make_bundle(["sh", "-c", "test -e /proc/self/fd/0 && echo OPEN; readlink /proc/self/fd/0"])
    p = rt.run(b.id, b, prelude="exec 0<&-")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("OPEN\n"), p.stdout
    assert "bundle" not in p.stdout and "ocirt" not in p.stdout, p.stdout


@pytest.mark.parametrize("command", ["state", "ps"])
def test_a_command_with_stdout_closed_succeeds(rt, make_bundle, command):
    """What it prints goes nowhere (ocirt: an internal error when Python had no sys.stdout).
    (runc's `list` fails there: "write /dev/stdout: bad file descriptor".)"""
    b = make_bundle(SLEEP)
    assert rt.create(b.id, b).returncode == 0
    p = rt(command, b.id, prelude="exec 1>&-")
    assert p.returncode == 0, p.stderr
    assert rt.delete(b.id, force=True).returncode == 0
