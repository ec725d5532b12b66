"""Helpers of the kernel tests that drive the ocirt CLI of the source tree (fixtures: conftest.py)."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OCIRT = [sys.executable, "-m", "ocirt"]


def make_bundle(directory, rootfs: str, args: list[str], cgroups_path: str | None = None, **process) -> str:
    """A bundle of bundles/runc-spec.json with `args`, the given process fields and, if given,
    linux.cgroupsPath."""
    with open(os.path.join(REPO, "bundles", "runc-spec.json")) as f:
        config = json.load(f)
    config["root"]["path"] = rootfs
    config["process"].update(args=args, **process)
    if cgroups_path is not None:
        config["linux"]["cgroupsPath"] = cgroups_path
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    return str(directory)


def run_err_to_file(
    argv: list, err_path, timeout: float = 60, cwd: str | None = REPO, stdout=subprocess.DEVNULL, **kw
) -> subprocess.CompletedProcess:
    """Run a command whose stderr goes to a file, not a pipe (a container's init, which create
    or run -d leave behind, inherits it and would hold a pipe open); stdin is /dev/null, stdout
    too unless given; `kw` go to subprocess.run (preexec_fn, say). The CompletedProcess's
    stderr is the file's text."""
    with open(err_path, "w+") as err:
        p = subprocess.run(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, timeout=timeout, **kw
        )
        err.seek(0)
        p.stderr = err.read()
    return p


def read_until(fd: int, marker: bytes, timeout: float = 20) -> bytes:
    """Read a pty master until `marker` shows up, the other side closes, or time runs out."""
    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out and time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: every slave fd is closed
            break
        if not chunk:
            break
        out += chunk
    return out


def remove_cgroup_parent(name: str) -> None:
    """rmdir /<name> in every cgroup hierarchy: the shared parent of a test module's cgroups.
    While another xdist worker still has a cgroup below it, rmdir fails and is ignored (the last
    one out removes it); where it has none, EBUSY is the kernel still taking a child just
    removed offline, and the rmdir is tried again for a moment."""
    for top in os.listdir("/sys/fs/cgroup"):
        path = os.path.join("/sys/fs/cgroup", top, name)
        deadline = time.monotonic() + 2.0
        while True:
            try:
                os.rmdir(path)
            except OSError as e:
                busy = e.errno == errno.EBUSY and not any(d.is_dir() for d in os.scandir(path))
                if busy and time.monotonic() < deadline:  # (no child cgroup of another worker)
                    time.sleep(0.02)
                    continue
            break


def remove_cgroup_dirs(relative: str, timeout: float = 5.0) -> None:
    """A test's own cgroup (/<relative>) removed from every hierarchy, whatever a failed test or
    runtime left there: its processes killed, then rmdir, deepest first, again for a moment
    where the kernel still refuses it (EBUSY: a process just gone, a child just removed)."""
    found = [
        d for top in os.listdir("/sys/fs/cgroup") for d, _, _ in os.walk(f"/sys/fs/cgroup/{top}/{relative}")
    ]
    deadline = time.monotonic() + timeout
    for path in sorted(found, key=lambda p: p.count("/"), reverse=True):
        while True:
            try:
                with open(os.path.join(path, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)


class ConsoleSocket:
    """The engine's side of --console-socket: a listening socket, and the pty master it gets."""

    def __init__(self, path: str):
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.server.settimeout(60)  # a runtime that never connects fails the test, not hangs it
        self.master = None

    def receive(self) -> tuple[bytes, int]:
        conn, _ = self.server.accept()
        with conn:
            name, fds, _, _ = socket.recv_fds(conn, 64, 1)
        assert len(fds) == 1
        self.master = fds[0]
        return name, self.master

    def close(self) -> None:
        if self.master is not None:
            os.close(self.master)
        self.server.close()


def child_of(pid: int) -> int:
    """A child of process `pid` (the first /proc lists): the process a command forked."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == str(pid):
                return int(entry)
    raise AssertionError(f"no child of {pid}")


def waits_in_fifo_open(wchan: str, timeout: float = 20) -> bool:
    """Whether the task whose /proc/.../wchan is `wchan` got into an open of a fifo that waits
    for the other end (the kernel's wait_for_partner) within `timeout`; False where /proc does
    not name the wait or the task is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(wchan) as f:
                if f.read().strip() == "wait_for_partner":
                    return True
        except OSError:
            return False
        time.sleep(0.001)
    return False


def waits_for_start(pid: int, timeout: float = 20) -> bool:
    """Whether the created container's init `pid` got into its open of exec.fifo within
    `timeout`. `create` returns once the init is set up, a moment before that open (and, where
    it becomes the waiting program, before that execve)."""
    return waits_in_fifo_open(f"/proc/{pid}/wchan", timeout)


def assert_gone(pid: int, timeout: float = 10) -> None:
    """Until `pid` is gone, or a zombie (killed: a reaper that does not reap keeps it so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"{pid} still alive")


def preload_env(tmp_path, source: str, *cc_args: str) -> dict:
    """The environment of a Python that imports this tree's ocirt with `source` (C functions
    that stand before the C library's, compiled with `cc_args`) preloaded."""
    src, lib = tmp_path / "preload.c", tmp_path / "preload.so"
    src.write_text(source)
    subprocess.run(["cc", "-shared", "-fPIC", *cc_args, "-o", str(lib), str(src), "-ldl"], check=True)
    return dict(os.environ, LD_PRELOAD=str(lib), PYTHONPATH=REPO)
