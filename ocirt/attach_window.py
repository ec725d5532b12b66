"""Open the kernel's cgroup-attach window early, beside a command's other work.

Moving a process into a cgroup (a write to cgroup.procs) takes the kernel's global
threadgroup rw-semaphore for writing, and the first writer after a quiet spell waits for an RCU
grace period: 5-10 ms on a small VM, the single largest wait in `create`. Writers that follow
within about one grace period are cheap (0.1 ms). So create and exec start here, before their
imports and config checks: a thread writes this process's own pid into the cgroup it is already
in (a move to where it is, which changes nothing), and pays the grace period while the main
thread goes on. Their own moves (stage 1 into the container's cgroup, in every hierarchy) then
land inside the window.

Only an optimisation: any failure (no cgroupfs, no permission, an unknown layout) is ignored.
`wait()` must be called before the caller forks, and before it makes cgroup directories (which
would wait for the same lock anyway). Stdlib only, and cheap to import: it runs before the rest.
"""

from __future__ import annotations

import _thread
import os


def own_procs_file(proc_cgroup: str) -> str | None:
    """The cgroup.procs of this process's own cgroup, from /proc/self/cgroup's text: on the v2
    hierarchy where there is one (pure v2: /sys/fs/cgroup; hybrid: its unified mount), else
    on the first v1 hierarchy mounted at /sys/fs/cgroup/<controllers>."""
    candidates: list[str] = []
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        path = parts[2].rstrip("/")
        if not parts[1]:
            for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                if os.path.exists(root + "/cgroup.controllers"):  # a v2 mount's root
                    candidates.insert(0, root + path)
                    break
        else:
            candidates.append(f"/sys/fs/cgroup/{parts[1].removeprefix('name=')}{path}")
    for d in candidates:
        if os.path.exists(d + "/cgroup.procs"):
            return d + "/cgroup.procs"
    return None


def _rewrite_own_pid(done) -> None:
    try:
        with open("/proc/self/cgroup", "rb") as f:
            procs = own_procs_file(f.read().decode("utf-8", "replace"))
        pid = str(os.getpid()).encode()
        if procs is not None:
            with open(procs, "rb") as f:
                here = pid in f.read().split()
            if here:  # only ever a move to where this process already is
                fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)
    except OSError:
        pass
    finally:
        done.release()


class Window:
    """The warm-up thread; `wait()` joins it (at once when it never started)."""

    def __init__(self) -> None:
        self._done: _thread.LockType | None = None

    def start(self) -> Window:
        done = _thread.allocate_lock()
        done.acquire()
        try:
            _thread.start_new_thread(_rewrite_own_pid, (done,))
        except RuntimeError:  # no thread to be had: nothing to wait for
            return self
        self._done = done
        return self

    def wait(self) -> None:
        if self._done is not None:
            self._done.acquire()
            self._done.release()
            self._done = None


def start() -> Window:
    return Window().start()
