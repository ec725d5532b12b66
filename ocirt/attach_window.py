"""Open the kernel's cgroup-attach window early, beside a command's other work.

Moving a process into a cgroup (a write to cgroup.procs) takes the kernel's global
threadgroup rw-semaphore for writing, and the first writer after a quiet spell waits for an RCU
grace period: 5-10 ms on a small VM, the single largest wait in `create`. Writers that follow
within about one grace period are cheap (0.1 ms). So create and exec start here, before their
imports and config checks: a thread writes this process's own pid into the cgroup it is already
in (a move to where it is, which changes nothing), and pays the grace period while the main
thread goes on; it moves itself again every few milliseconds, which keeps the window open, until
the caller's own moves (create's stage 1 or exec's process into the container's cgroup, in every
hierarchy) are done and it calls `close()`: on a loaded machine the caller may otherwise arrive
after the window closed.
The caller forks while the thread lives (the child has no thread; the thread shares no lock with
it), and its cgroup mkdirs simply wait in the kernel while the first move holds cgroup_mutex.

With the cgroupfs driver create, run and exec open no window on any host: their child gets
into its cgroup by itself (Manager.self_placement: born in the cgroup2 directory, then `0` into
each v1 hierarchy's `tasks`, a move the kernel makes without the grace period), and a window's
first write would even hold it up (it holds cgroup_mutex through the grace period, and mkdir
and clone3 into a cgroup take that mutex). They open one with a systemd-managed cgroup (joined
by a move). exec's rare moves by the parent (execCPUAffinity.initial) wait for it whole, as
does create.LateCgroup (a creating process with another thread) where no window was opened.

Only an optimisation: any failure (no cgroupfs, no permission, an unknown layout) is ignored,
and the thread ends by itself half a second after it started. Cheap to import (posix, not os;
see bin/ocirt): the launcher (ocirt/launch.py) starts it before anything else is imported, as
early as Python code can run, so that the grace period starts ~4 ms sooner.
"""

import _thread
import posix
import time

from .gonum import decimal  # (no imports)
from .paths import exists  # posix and sys only: cheap this early too


def own_procs_file(proc_cgroup: str) -> "str | None":
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
                if exists(root + "/cgroup.controllers"):  # a v2 mount's root
                    candidates.insert(0, root + path)
                    break
        else:
            candidates.append(f"/sys/fs/cgroup/{parts[1].removeprefix('name=')}{path}")
    for d in candidates:
        if exists(d + "/cgroup.procs"):
            return d + "/cgroup.procs"
    return None


def own_procs_fd() -> "int | None":
    """cgroup.procs of this process's own cgroup, opened for writing; None where there is none
    to be had, or where that file does not list this process (a move must only ever be to
    where the process already is)."""
    try:
        with open("/proc/self/cgroup", "rb") as f:
            text = f.read().decode("utf-8", "replace")
        procs = own_procs_file(text)
        if procs is None:
            return None
        with open(procs, "rb") as f:
            if str(posix.getpid()).encode() not in f.read().split():
                return None
        return posix.open(procs, posix.O_WRONLY | posix.O_CLOEXEC)
    except OSError:
        return None


def threads() -> int:
    """How many threads this process has (/proc/self/stat's num_threads); 0 if unreadable."""
    try:
        with open("/proc/self/stat", "rb") as f:
            data = f.read()
        return decimal(data[data.rindex(b")") + 2 :].split()[17])
    except (OSError, ValueError, IndexError):
        return 0


def _keep_open(fd: int, going, first, stop, done, keep: float, every: float) -> None:
    # no reads here: a thread's first sizeable allocation would make it a malloc arena of its own
    pid = str(posix.getpid()).encode()
    try:
        going.release()  # the starter may go on: this thread keeps the GIL until the write
        posix.write(fd, pid)  # the one that waits for the grace period (without the GIL)
        first.release()
        deadline = time.monotonic() + keep
        # the window stays open about one grace period after the last move: moved again now
        # and then until the caller has made its own moves (or gave up on them)
        while not stop.acquire(True, every) and time.monotonic() < deadline:
            posix.write(fd, pid)
    except OSError:
        pass
    finally:
        posix.close(fd)
        if first.locked():
            first.release()
        done.release()


class Window:
    """The warm-up thread. `close()` once the caller's own moves are done (the thread ends by
    itself after `keep` seconds anyway); `wait_open()` waits for the first move."""

    def __init__(self) -> None:
        self._first: _thread.LockType | None = None
        self._stop: _thread.LockType | None = None
        self._done: _thread.LockType | None = None

    def start(self, keep: float = 0.5, every: float = 0.002) -> "Window":
        fd = own_procs_fd()
        if fd is None:
            return self  # nothing to open: no thread
        going, first, stop, done = (_thread.allocate_lock() for _ in range(4))
        for lock in (going, first, stop, done):
            lock.acquire()
        try:
            _thread.start_new_thread(_keep_open, (fd, going, first, stop, done, keep, every))
        except RuntimeError:  # no thread to be had: nothing to open
            posix.close(fd)
            return self
        # Until the thread is in its first write: a new thread runs only once this one lets go
        # of the GIL, which an import-heavy start does only every 5 ms (the switch interval).
        going.acquire(True, 0.05)
        self._first, self._stop, self._done = first, stop, done
        return self

    def end(self, timeout: float = 0.05) -> None:
        """close(), then wait (at most `timeout`) until the thread is gone from the process."""
        self.close()
        if self._done is None:
            return
        if self._done.acquire(True, timeout):
            self._done.release()
        deadline = time.monotonic() + timeout
        while threads() > 1 and time.monotonic() < deadline:
            time.sleep(0.0002)  # its Python part is done: the thread itself is ending

    def wait_open(self) -> None:
        if self._first is not None:
            self._first.acquire()
            self._first.release()

    def close(self) -> None:
        if self._stop is not None and self._stop.locked():
            self._stop.release()


def alone(window: "Window | None") -> bool:
    """This process has no other thread (Kernel.fork_into's condition); `window`'s thread, if
    one was opened, is ended first (a process that makes its children in their cgroup needs none)."""
    if window is not None:
        window.end()
    return threads() == 1


def start() -> "Window":
    """The window, opened (nothing to open where this process has no cgroup.procs of its own
    it may write: no thread then)."""
    return Window().start()
