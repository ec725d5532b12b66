"""`exec`: a new process in an existing container. Stage 1 joins the init's namespaces (their
/proc/PID/ns files, opened here) and forks the process (stages.exec_stage1), or, for the
command line's exec (one fork, stages.exec_one_fork), the parent forks the process into the
container's pid namespace and it joins the others itself. The process gets into the
container's cgroup by itself where it can (born in the cgroup2 directory, then into each v1
hierarchy as its first act: no wait for the kernel's grace period, Manager.self_placement),
else the parent moves it; the parent drives it through the protocol of ocirt/protocol.py."""

from __future__ import annotations

import posix  # not os: see ocirt/paths.py

from . import children, namespaces, process
from . import kernel as k
from .attach_window import alone
from .children import OwnPidNs, child_pid_ns, kill_and_reap, pass_seccomp_fd, write_pid_file
from .errors import OcirtError, process_start_failed
from .protocol import Channel, InitPid, Proceed, Ready, SeccompFd
from .stages import ExecSpec, exec_one_fork, exec_stage1
from .state import Status, proc_start_time


def exec_process(
    c,
    proc: process.ProcessSpec,
    kernel: k.Kernel,
    pid_file: str | None = None,
    subreaper: bool = False,
    console_socket: str | None = None,
    console_size: dict | None = None,
    cgroup=None,
    ignore_paused: bool = False,
    window=None,
    as_child: bool = False,
) -> int:
    """Start `proc` inside the container; returns its pid once it is about to exec. `cgroup`:
    a sub-cgroup of the container's (exec --cgroup) to put it in; `ignore_paused`: a paused
    container is entered too (the process waits frozen for `resume`); `window`: an
    ocirt/attach_window.py warm-up, closed once the process is in the cgroup; `as_child`: the
    process may be this one's own child (the command line's exec, which ends or waits for it:
    one fork, stages.exec_one_fork); else (the Python API) a stage 1 forks it, and the caller
    gets no child."""
    status = c.status()
    if not (ignore_paused and status is Status.PAUSED):
        status.check("exec")
    from . import capabilities

    ns_fds = []
    console_fd = None
    try:
        for nstype in namespaces.JOIN_ORDER:
            name = namespaces.PROC_NAMES[nstype]
            theirs = f"/proc/{c.state.pid}/ns/{name}"
            try:
                if posix.stat(theirs).st_ino == posix.stat(f"/proc/self/ns/{name}").st_ino:
                    continue
                ns_fds.append(
                    (posix.open(theirs, posix.O_RDONLY | posix.O_CLOEXEC), namespaces.FLAGS[nstype])
                )
            except FileNotFoundError:
                continue
        if proc_start_time(c.state.pid) != c.state.pid_start:  # it stopped meanwhile
            Status.STOPPED.check("exec")
        seccomp_filter = container_seccomp(c)
        mempolicy = None
        if c.state.memory_policy:  # recorded at create, as the seccomp filter is
            from . import procattr

            mempolicy = procattr.parse_linux({"memoryPolicy": c.state.memory_policy})[1]
        spec = ExecSpec(
            ns_fds=ns_fds,
            proc=proc,
            last_cap=capabilities.last_cap(),
            seccomp=seccomp_filter,
            console_size=console_size,
            personality=init_personality(c.state.pid),
            mempolicy=mempolicy,
        )
        if console_socket:
            from . import console

            console_fd = spec.console_fd = console.connect(console_socket)
        process.preload(proc)  # what its setup needs in the container's mount namespace
        target = cgroup if cgroup is not None else c.joinable_cgroup()  # before the fork
        parent_ch, child_ch = Channel.pair()
        if subreaper:
            kernel.prctl(k.PR_SET_CHILD_SUBREAPER, 1)
        one_fork = as_child and exec_one_fork(spec)
        own_pid_ns = OwnPidNs()
        if one_fork:
            try:
                own_pid_ns = child_pid_ns(kernel, join=_pid_ns_fd(ns_fds))
            except OcirtError:  # an unprivileged runtime, outside the container's user namespace:
                one_fork = False  # stage 1 joins that one first, then the pid namespace
        # With one fork the process gets into the cgroup with no move by this process where it
        # can: born in the cgroup2 directory, then into each v1 hierarchy by itself, as its
        # first act (a thread moving itself alone waits for no grace period:
        # Manager.self_placement). Not with an initial affinity, which applies before the
        # cgroup is joined. A stage 1 stays out of it and this process moves the process it
        # forks (as runc's exec): a fork in the cgroup counts against its pids limit, a move
        # does not, so a container at its limit still takes an exec.
        try:
            placement, spec.self_moves = children.self_placed(
                kernel, None if proc.affinity_initial or not one_fork else target
            )
            if placement is not None:
                stage1_pid, placed = children.fork_placed(
                    kernel, placement[0], lambda: alone(window), kernel.fork
                )
            else:  # a stage 1, an initial affinity, a systemd unit, no cgroup: moved by this process
                stage1_pid, placed = fork_with_affinity(kernel, proc, kernel.fork), False
        except BaseException:
            own_pid_ns.back(kernel)
            children.close_self_moves(kernel, spec)
            raise
        if stage1_pid == 0:
            try:  # a forked child never returns into the runtime's code
                parent_ch.close()
                exec_stage1(kernel, spec, child_ch, one_fork)
            finally:
                posix._exit(1)
        child_ch.close()
        children.close_self_moves(kernel, spec)  # (the child's are its own)
        pid = 0
        try:
            own_pid_ns.back(kernel)
            # Stage 1 joins the namespaces and forks meanwhile (one fork: the process joins
            # them); the process waits to be moved (as runc's exec moves its process, not
            # nsexec's stages): on cgroup v1 the move's wait for the kernel's grace period then
            # overlaps that work.
            try:
                pid = stage1_pid if one_fork else parent_ch.expect(InitPid, "the process was started").pid
                if not placed:
                    target.add_pid(pid)
                parent_ch.send(Proceed())
            except (OSError, OcirtError):
                # the process sets itself up meanwhile (stages.ExecEffects), and it may have
                # failed and gone before its move: then its own message says what went wrong
                parent_ch.raise_failure_queued()
                raise
            finally:
                if window is not None:
                    window.close()  # the moves are done, or stage 1 failed before them
            while isinstance(parent_ch.expect((SeccompFd, Ready), "the process was started"), SeccompFd):
                pass_seccomp_fd(parent_ch, seccomp_filter, c.state, pid)
            # Stage 1 exits once it has sent the pid; reaped only now, so that its exit overlaps
            # the process's setup (as create's). Reaped, it has handed the process to us (the
            # subreaper) before we return and wait for it.
            if not one_fork:
                kernel.waitpid(stage1_pid)
        except BaseException as e:
            if isinstance(e, OcirtError):  # (runc's exec: never "error during container init")
                process_start_failed(e, during_init=False)
            own_pid_ns.back(kernel)  # (if not yet)
            if pid and pid != stage1_pid:
                kill_and_reap(pid)
            kill_and_reap(stage1_pid)
            raise
        finally:
            parent_ch.close()
    finally:
        for fd, _ in ns_fds:
            posix.close(fd)
        if console_fd is not None:
            posix.close(console_fd)
    if pid_file:
        try:
            write_pid_file(pid_file, pid)
        except OcirtError:
            kill_and_reap(pid)  # as runc: an exec that failed leaves no process behind
            raise
    return pid


def _pid_ns_fd(ns_fds: list) -> int | None:
    """The container's pid namespace among the ones to join (None: it shares ours)."""
    return next((fd for fd, nstype in ns_fds if nstype == k.CLONE_NEWPID), None)


def container_seccomp(c):
    """The container's seccomp filter, as it was at create (state.json), for `exec`."""
    if not c.state.seccomp:
        return None
    from . import seccomp

    return seccomp.compile(c.state.seccomp)


def fork_with_affinity(kernel: k.Kernel, proc: process.ProcessSpec, fork=posix.fork) -> int:
    """fork() exec's stage 1 on the CPUs of execCPUAffinity.initial (config.md: the runtime's
    process runs there "initially, before the transition to container's cgroup"): the parent
    moves itself there, forks (the child has the affinity from its first instruction), and
    moves back. The process stage 1 forks inherits it; joining the container's cpuset later
    resets it, and `final` is set by the process once it is in the cgroup
    (stages.set_final_affinity)."""
    if not proc.affinity_initial:
        return fork()
    saved = kernel.sched_getaffinity(0)
    try:
        kernel.sched_setaffinity(0, proc.affinity_initial)
    except OSError as e:
        raise OcirtError(f"{proc.pointer}/execCPUAffinity/initial: sched_setaffinity", e.errno) from None
    try:
        pid = fork()
    except BaseException:
        kernel.sched_setaffinity(0, saved)
        raise
    if pid:
        kernel.sched_setaffinity(0, saved)
    return pid


def init_personality(pid: int) -> int | None:
    """The container's personality, for `exec`: its init's (what linux.personality set, unless
    the container changed its own), where it differs from ours. state.json does not keep the
    config, and config.json may have changed since create (runtime.md: that MUST NOT affect the
    container)."""
    values = []
    for who in (pid, "self"):
        try:
            with open(f"/proc/{who}/personality") as f:
                values.append(int(f.read().strip(), 16))
        except (OSError, ValueError):
            return None
    return values[0] if values[0] != values[1] else None  # the same: nothing to change
