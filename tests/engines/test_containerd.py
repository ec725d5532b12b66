"""ocirt under containerd 1.6: `ctr` drives containerd-shim-runc-v2, which drives ocirt
(`ctr run --runc-binary`). Needs root and containerd, ctr and containerd-shim-runc-v2 on PATH.

Everything is private to the session: a containerd started here with root, state and sockets under a
tmp dir D, a namespace unique to the session, ocirt's state under D/runc-root. The fixture removes all
of it again, also when a test fails: containers and tasks, the containerd process (by PID), the shims
of the namespace (by PID), D, the namespace's cgroups and the shim sockets this run left in
/run/containerd/s. See ../shared/ENGINES.md (from the repository root) for what the shim calls.
"""

import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest
from engine_helpers import (
    CONTAINERD_MARKS,
    OCIRT,
    REPO,
    TTY_COLS,
    TTY_ROWS,
    WAIT_SIZE,
    Containerd,
    features_gaps,
    run_in_pty,
)

pytestmark = CONTAINERD_MARKS


class Session:
    """ctr on a private containerd, in a namespace unique to the session."""

    def __init__(self, containerd, ns):
        self.containerd = containerd
        self.d = containerd.d
        self.address = containerd.address
        self.ns = ns
        self.ids = set()  # every container id this session used

    def ctr(self, *args, **kw):
        return self.containerd.ctr(self.ns, *args, **kw)

    def run_flags(self, flags, rootfs, cid):
        self.ids.add(cid)
        # urfave/cli stops at the first positional argument: every flag goes before the rootfs.
        return [
            "--runtime",
            "io.containerd.runc.v2",
            "--runc-binary",
            OCIRT,
            "--runc-root",
            f"{self.d}/runc-root",
            "--fifo-dir",
            f"{self.d}/fifo",
            *flags,
            "--rootfs",
            rootfs,
            cid,
        ]

    def run(self, flags, rootfs, cid, *cmd, **kw):
        return self.ctr("run", *self.run_flags(flags, rootfs, cid), *cmd, **kw)

    def ctr_argv(self, *args):
        return ["ctr", "-a", self.address, "-n", self.ns, *args]

    def task_status(self, cid):
        for line in self.ctr("tasks", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return fields[-1]
        return None


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("containerd"))
    os.makedirs(f"{d}/fifo")
    daemon = Containerd(d)
    c = Session(daemon, f"ocirt-test-{uuid.uuid4().hex[:8]}")
    try:
        daemon.start()
        yield c
    finally:
        daemon.remove_all(c.ns)
        daemon.stop([c.ns], {(c.ns, cid) for cid in c.ids})


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    path = tmp_path_factory.mktemp("ctr-rootfs") / "rootfs"
    subprocess.run(["sh", os.path.join(REPO, "bundles", "mkrootfs.sh"), str(path)], check=True)
    yield str(path)
    shutil.rmtree(path.parent, ignore_errors=True)


def test_run_rm_echo(containerd, rootfs):
    cid = "echo"
    res = containerd.run(["--rm"], rootfs, cid, "/bin/echo", "hello-ctr")
    assert res.stdout == "hello-ctr\n"
    assert cid not in containerd.ctr("containers", "ls", "-q").stdout.split()


def test_exit_code_propagates(containerd, rootfs):
    cid = "exit7"
    res = containerd.run(["--rm"], rootfs, cid, "/bin/sh", "-c", "exit 7", check=False)
    assert res.returncode == 7, res.stdout + res.stderr


def test_detached_exec_ps_pause_resume_kill_rm(containerd, rootfs):
    cid = "detached"
    containerd.run(["-d"], rootfs, cid, "/bin/sleep", "300")
    assert containerd.task_status(cid) == "RUNNING"

    res = containerd.ctr(
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        "--fifo-dir",
        f"{containerd.d}/fifo",
        cid,
        "/bin/sh",
        "-c",
        "echo in-exec; tr '\\0' ' ' < /proc/1/cmdline",
    )
    assert res.stdout == "in-exec\n/bin/sleep 300 ", res.stdout

    res = containerd.ctr(
        "tasks",
        "exec",
        "--exec-id",
        "e2",
        "--fifo-dir",
        f"{containerd.d}/fifo",
        cid,
        "/bin/sh",
        "-c",
        "exit 3",
        check=False,
    )
    assert res.returncode == 3, res.stdout + res.stderr

    ps = containerd.ctr("tasks", "ps", cid).stdout.splitlines()
    assert ps[0].split()[0] == "PID"
    pids = [int(line.split()[0]) for line in ps[1:]]
    assert len(pids) == 1
    with open(f"/proc/{pids[0]}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"/bin/sleep", b"300"]

    containerd.ctr("tasks", "pause", cid)
    assert containerd.task_status(cid) == "PAUSED"
    containerd.ctr("tasks", "resume", cid)
    assert containerd.task_status(cid) == "RUNNING"

    containerd.ctr("tasks", "kill", "-s", "SIGKILL", cid)
    deadline = time.monotonic() + 20
    while containerd.task_status(cid) != "STOPPED":
        assert time.monotonic() < deadline, containerd.ctr("tasks", "ls").stdout
        time.sleep(0.1)
    containerd.ctr("tasks", "rm", cid)
    containerd.ctr("containers", "rm", cid)
    assert containerd.ctr("containers", "ls", "-q").stdout.split() == []
    assert not os.path.exists(f"{containerd.d}/runc-root/{cid}")


def _lines(out):
    """The lines a container wrote to its terminal, less ctr's own log lines: ctr may log
    "resize pty ... cannot resize a stopped container" when the process ends before ctr resized."""
    return [line for line in out.splitlines() if "resize pty" not in line]


def test_run_tty(containerd, rootfs):
    """`ctr run -t`: the shim has ocirt hand the pty master back over --console-socket. ctr wants
    a terminal of its own, hence run_in_pty."""
    cid = "tty"
    argv = containerd.ctr_argv(
        "run",
        "-t",
        *containerd.run_flags(["--rm"], rootfs, cid),
        "/bin/sh",
        "-c",
        "tty; " + WAIT_SIZE + "; echo tty-done",
    )
    rc, out = run_in_pty(argv)
    assert rc == 0, out
    lines = _lines(out)
    assert re.fullmatch(r"/dev/pts/\d+", lines[0]), out
    assert lines[1:] == [f"{TTY_ROWS} {TTY_COLS}", "tty-done"], out  # ctr passed its size on
    assert cid not in containerd.ctr("containers", "ls", "-q").stdout.split()


def test_exec_tty_and_features_cover_config(containerd, rootfs):
    """`ctr tasks exec -t` in a running task; and `ocirt features` lists all that the shim's
    config.json uses (containerd 1.6 itself never calls `features`: ENGINES.md)."""
    cid = "exectty"
    containerd.run(["-d"], rootfs, cid, "/bin/sleep", "300")
    try:
        for attempt in range(3):  # ctr -t can exit before it relayed the output (its race)
            rc, out = run_in_pty(
                containerd.ctr_argv(
                    "tasks",
                    "exec",
                    "-t",
                    "--exec-id",
                    f"t{attempt}",
                    "--fifo-dir",
                    f"{containerd.d}/fifo",
                    cid,
                    "/bin/sh",
                    "-c",
                    "tty; echo exec-done; exit 5",
                )
            )
            assert rc == 5, out
            lines = _lines(out)
            if lines:
                break
        assert re.fullmatch(r"/dev/pts/\d+", lines[0]), out
        assert lines[1:] == ["exec-done"], out

        bundle = f"{containerd.d}/state/io.containerd.runtime.v2.task/{containerd.ns}/{cid}"
        with open(f"{bundle}/config.json") as f:
            config = json.load(f)
        assert features_gaps(config) == []
    finally:
        containerd.ctr("tasks", "kill", "-s", "SIGKILL", cid, check=False)
        deadline = time.monotonic() + 20
        while containerd.task_status(cid) not in ("STOPPED", None) and time.monotonic() < deadline:
            time.sleep(0.1)
        containerd.ctr("tasks", "rm", "-f", cid, check=False)
        containerd.ctr("containers", "rm", cid, check=False)
