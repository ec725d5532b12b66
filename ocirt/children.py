"""The runtime parent's side of the children it forks (create's and exec's): making one in its
cgroup, reaping one that must not live on, handing a seccomp listener its fd, the --pid-file."""

import _signal as signal  # the C module: no IntEnum building (enum import)
import posix  # not os: start and delete reach this module (see bin/ocirt, "posix")
import time

from .errors import OcirtError
from .paths import FILE_KINDS, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, abspath, basename, dirname, join
from .record import record
from .state import Status, proc_start_time


def open_self_moves(kernel, placement) -> "list[int] | None":
    """The `tasks` files of a Manager.self_placement, opened for the child's own moves (it
    writes 0 to each, first thing: Kernel.move_self); None if one cannot be opened (then the
    parent moves the child, as without a self_placement)."""
    fds: list[int] = []
    try:
        for path in placement[1]:
            fds.append(kernel.open(path, posix.O_WRONLY | posix.O_CLOEXEC))
    except OSError:
        for fd in fds:
            kernel.close(fd)
        return None
    return fds


def self_placed(kernel, cg) -> "tuple[tuple | None, list[int]]":
    """`cg`'s Manager.self_placement with its `tasks` files opened: (placement, fds), for
    fork_placed and the child's own moves (stages.join_cgroup); (None, []) where the parent's
    way is taken: no cgroup, a manager without one, or a file that cannot be opened."""
    placement = cg.self_placement() if cg is not None else None
    if placement is None:
        return None, []
    moves = open_self_moves(kernel, placement)
    return (placement, moves) if moves is not None else (None, [])


def close_self_moves(kernel, spec) -> None:
    """The parent's copies of spec.self_moves closed (after the fork the child's are its own,
    or the fork failed)."""
    for fd in spec.self_moves:
        kernel.close(fd)
    spec.self_moves = []


def fork_placed(kernel, born_in, alone, fork) -> tuple[int, bool]:
    """A child of a Manager.self_placement: born in `born_in` (clone3 with CLONE_INTO_CGROUP) if
    this process has no other thread, then in the whole cgroup once its own moves are done
    (True); an ordinary fork where there is no directory to be born in (v1: its own moves are
    all, True) or where the birth is refused (False: the parent moves it, add_pid)."""
    if born_in is None:
        return fork(), True
    if alone():
        try:
            return kernel.fork_into(born_in), True
        except OSError:  # Linux before 5.7, a seccomp filter that refuses clone3
            pass
    return fork(), False


def child_pid_ns(kernel, new: bool = False, join: int | None = None) -> "OwnPidNs":
    """One fork (create's init, exec's process, made by the runtime itself rather than by a
    stage 1): this process's next child is born non-dumpable, and in a new pid namespace
    (unshare), the one fd `join` names (setns), or neither: this process's own. Unshare and
    setns change which namespace this process's children get, never its own. What to go back
    to right after the fork (OwnPidNs.back).

    Not dumpable: until back(), this process is not (the flag is copied at fork), so that the
    child is not from its first instruction, as a stage 1 sealed first made it. Until it seals
    itself the child holds the runtime's fds and, joining a container's namespaces, shows in the
    container's /proc while still in the runtime's mount namespace: no process of the container
    may open its /proc/PID/fd, root or mem meanwhile (the CVE-2016-9962 class)."""
    from .kernel import CLONE_NEWPID, PR_GET_DUMPABLE, PR_SET_DUMPABLE  # (not on start's way)

    own = OwnPidNs(dumpable=kernel.prctl(PR_GET_DUMPABLE))
    kernel.prctl(PR_SET_DUMPABLE, 0)
    if not new and join is None:
        return own
    try:
        own.fd = kernel.open("/proc/self/ns/pid", posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError as e:
        own.back(kernel)
        raise OcirtError("open /proc/self/ns/pid", e.errno) from None
    try:
        if new:
            kernel.unshare(CLONE_NEWPID)
        else:
            kernel.setns(join, CLONE_NEWPID)
    except OSError as e:
        kernel.close(own.fd)
        own.fd = None
        own.back(kernel)
        what = "unshare pid namespace" if new else "join the container's pid namespace"
        raise OcirtError(what, e.errno) from None
    return own


@record
class OwnPidNs:
    """This process as it was before child_pid_ns: its own pid namespace for its children, and
    whether it was dumpable."""

    fd: int | None = None  # /proc/self/ns/pid, opened before the unshare or setns
    dumpable: int | None = None  # what PR_GET_DUMPABLE said first (None: nothing to restore)

    def back(self, kernel) -> None:
        """This process's next children in its own pid namespace again (hooks, say), and it
        as dumpable as before; the fd closed. Once: later calls do nothing, whether the first
        succeeded or not."""
        from .kernel import CLONE_NEWPID, PR_SET_DUMPABLE

        fd, self.fd = self.fd, None
        dumpable, self.dumpable = self.dumpable, None
        try:
            if fd is not None:
                kernel.setns(fd, CLONE_NEWPID)
        except OSError as e:
            raise OcirtError("go back to the runtime's own pid namespace", e.errno) from None
        finally:
            if fd is not None:
                kernel.close(fd)
            if dumpable == 1:  # (2, suid_dumpable's, cannot be set: left at 0, the safer)
                kernel.prctl(PR_SET_DUMPABLE, 1)


def kill_and_reap(pid: int) -> None:
    """SIGKILL `pid` and wait until it is gone (reaped if it is our child, else watched)."""
    try:
        posix.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        posix.waitpid(pid, 0)
    except ChildProcessError:  # the init, once stage 1 has exited: not our child
        wait_gone(pid, None)


def wait_gone(pid: int, start: int | None, timeout: float = 10.0) -> None:
    """Until `pid` is gone, or is another process than the one started at `start` (None: any)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = proc_start_time(pid)
        if now is None or (start is not None and now != start):
            return
        time.sleep(0.002)


def pass_seccomp_fd(ch, seccomp_filter, state, pid: int) -> None:
    """A child loaded a filter with SCMP_ACT_NOTIFY and sent its listener fd: it goes to
    linux.seccomp.listenerPath with the container's state (`state`: a ContainerState)."""
    if not ch.received_fds:
        raise OcirtError("protocol error: seccomp fd missing")
    fd = ch.received_fds[0]
    hook_state = state.oci(Status.CREATING)
    hook_state["pid"] = pid
    seccomp_filter.send_to_listener(fd, hook_state)  # closes fd
    from .protocol import Proceed  # only with a seccomp listener (the protocol: ~1 ms to import)

    ch.send(Proceed())


def check_pid_file(path: str) -> None:
    """--pid-file that names a device, a fifo or a socket is refused before anything starts
    (create, run, exec): the pid file is a temporary file renamed over it, and `--pid-file
    /dev/full` made the host's /dev/full a regular file holding the pid (exit 0; runc's too).
    A directory fails at the rename."""
    try:
        kind = posix.lstat(path).st_mode & S_IFMT
    except OSError:
        return  # nothing there (the usual case), or the write itself tells what is wrong
    if kind in FILE_KINDS and kind not in (S_IFREG, S_IFLNK, S_IFDIR):  # a device, fifo, socket
        raise OcirtError(f"write the pid file {path}: it is {FILE_KINDS[kind]}, not a regular file")


def write_pid_file(path: str, pid) -> None:
    """--pid-file, written whole or not at all (a temporary file renamed); an error names the
    file asked for, never the temporary one."""
    try:
        path = abspath(path)
    except OSError as e:  # getcwd: the current directory was removed
        raise OcirtError(
            f"write the pid file {path}: a relative path, and the current directory is gone", e.errno
        ) from None
    tmp = join(dirname(path), f".{basename(path)}.{posix.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        posix.rename(tmp, path)
    except OSError as e:
        try:
            posix.unlink(tmp)
        except OSError:
            pass
        raise OcirtError(f"write the pid file {path}", e.errno) from None
