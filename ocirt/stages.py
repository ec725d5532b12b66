"""What runs in the forked children of `create`: stage 1 (namespaces) and the container's init.

Both are entered right after fork() and never return: they end in os._exit() or execve().
Everything they need was computed by the parent before fork (`InitPlan`); errors go back to the
parent as a `Failed` message.
"""
from __future__ import annotations

import _socket
import errno
import fcntl
import os
import stat
import struct
import sys

from . import console, lsm, namespaces, process
from . import hooks as hooks_mod
from . import kernel as k
from .errors import OcirtError
from .protocol import (
    Channel,
    Failed,
    HooksReady,
    InitPid,
    Proceed,
    Ready,
    SeccompFd,
    UserNsReady,
)
from .record import field, record
from .rootfs import Rootfs, RootfsSpec, sysctl


@record
class InitPlan:
    """Everything the children do, decided by the parent from config.json."""
    ns: namespaces.NamespacePlan
    rootfs: RootfsSpec
    proc: process.ProcessSpec
    fifo_fd: int                     # exec.fifo, O_PATH, opened by the parent (the init may not
                                     # be able to reach the state dir: user namespaces)
    hostname: str | None = None
    domainname: str | None = None
    sysctl: dict = field(default_factory=dict)
    time_offsets: str = ""
    hooks: dict = field(default_factory=dict)
    runtime_hooks: bool = False      # any hooks: the init stops before pivot_root for them
    keyring: str | None = None       # name of a new session keyring (None: --no-new-keyring)
    console_fd: int | None = None    # --console-socket, connected: the pty master goes there
    console_size: dict | None = None
    seccomp: object | None = None    # a compiled ocirt.seccomp.Filter
    last_cap: int = 40
    personality: int | None = None   # linux.personality, parsed (ocirt.procattr)
    mempolicy: tuple | None = None   # linux.memoryPolicy: (mode | flags, nodes)
    unprivileged: bool = False       # the runtime is not root (rootless): see enter_namespaces


def _fail(ch: Channel, exc: BaseException) -> None:
    if isinstance(exc, OcirtError):
        msg, err = exc.message, exc.errno or 0
    elif isinstance(exc, OSError):
        msg, err = describe_oserror(exc), exc.errno or 0
    else:
        msg, err = f"internal error: {exc!r}", 0
        if os.environ.get("OCIRT_DEBUG"):
            import traceback
            traceback.print_exc()
    try:
        ch.send(Failed(msg, err))
    except OSError:
        pass


def describe_oserror(exc: OSError) -> str:
    """The operation an OSError came from; the errno text is added by OcirtError."""
    what = exc.strerror if exc.strerror and exc.strerror != os.strerror(exc.errno or 0) else ""
    if exc.filename:
        what = f"{what} {exc.filename}".strip()
    return what or "system call failed"


def stage1(kernel: k.Kernel, plan: InitPlan, ch: Channel) -> None:
    """Join/unshare namespaces, then fork the init (pid 1 of a new pid namespace)."""
    code = 1
    try:
        keep = {ch.fileno(), plan.fifo_fd, *plan.rootfs.idmap_fds.values()}
        if plan.console_fd is not None:
            keep.add(plan.console_fd)
        seal(kernel, keep=keep, preserve=plan.proc.preserve_fds)
        ch.expect(Proceed, "the cgroup was joined")
        enter_namespaces(kernel, plan, InitEffects(ch))
        pid = os.fork()
        if pid == 0:
            # the parent must hear InitPid (from us) before anything from the init
            ch.expect(Proceed, "the init's pid was known")
            init(kernel, plan, ch)  # never returns
        ch.send(InitPid(pid))
        code = 0
    except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
        _fail(ch, e)
    finally:
        os._exit(code)


class InitEffects:
    """What the children do besides Kernel calls: the protocol with the parent, hooks, the
    loopback ioctl, the pty, seccomp, the exec lookup. `ocirt plan` (ocirt/plan.py) replaces it
    with a recording version and runs the same steps against a RecordingKernel."""

    def __init__(self, ch: Channel | None):
        self.ch = ch

    def map_user_ns(self) -> None:
        self.ch.send(UserNsReady())
        self.ch.expect(Proceed, "the user namespace was mapped")

    def loopback_up(self) -> None:
        loopback_up()

    def runtime_hooks(self, plan: InitPlan) -> dict:
        hook_state = {}
        if plan.runtime_hooks:
            self.ch.send(HooksReady())
            hook_state = self.ch.expect(Proceed, "the runtime hooks ran").state or {}
        hooks_mod.run(plan.hooks, "createContainer", hook_state)
        return hook_state

    def console(self, plan: InitPlan) -> None:
        console.setup(plan.console_fd, plan.console_size)

    def own_session(self) -> None:
        """Without a terminal, as runc's init: a session of its own, and stdio that is the
        host's /dev/null reopened as the container's (CRIU dumps neither a session led from
        outside the container nor files on the host's mounts)."""
        if self.ch is None:     # ocirt plan's effects (no channel): nothing is done for real
            return
        try:
            os.setsid()
        except OSError:
            pass
        try:
            null = os.stat("/dev/null").st_rdev
            for fd in (0, 1, 2):
                st = os.fstat(fd)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == null:
                    new = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
                    os.dup2(new, fd)
                    os.close(new)
        except OSError:
            pass

    def seccomp(self, seccomp) -> None:
        _install_seccomp(seccomp, self.ch)

    def lookup(self, executable: str, env: dict) -> str:
        path = process.lookup(executable, env)
        refuse_runtime_binary(path)
        return path

    def inherit(self, fd: int) -> None:
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass


def enter_namespaces(kernel: k.Kernel, plan: InitPlan, fx: InitEffects) -> None:
    """Stage 1, once in the cgroup: join namespaces by path, a new user ns, the other new ones."""
    for nstype, path, index in plan.ns.join:
        where = f"/linux/namespaces/{index}/path"
        try:
            fd = kernel.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise OcirtError(f"{where}: open {path}", e.errno) from None
        try:
            kernel.setns(fd, namespaces.FLAGS[nstype])
        except OSError as e:
            raise OcirtError(f"{where}: join {nstype} namespace {path}", e.errno) from None
        finally:
            kernel.close(fd)
    if "user" in plan.ns.new:
        kernel.unshare(k.CLONE_NEWUSER)
        # An unprivileged parent can open /proc/<us>/uid_map only while we are dumpable (the
        # file of a non-dumpable process belongs to root): dumpable just for the mapping, as
        # runc does, while no code of the container runs yet.
        unprivileged = plan.unprivileged
        if unprivileged:
            kernel.prctl(k.PR_SET_DUMPABLE, 1)
        fx.map_user_ns()
        if unprivileged:
            kernel.prctl(k.PR_SET_DUMPABLE, 0)
        kernel.setresgid(0)
        kernel.setresuid(0)
    flags = plan.ns.new_flags(exclude=("user",))
    if flags:
        try:
            kernel.unshare(flags)
        except OSError as e:
            raise OcirtError(f"unshare namespaces {flags:#x}", e.errno) from None
    if plan.time_offsets:
        kernel.write_file("/proc/self/timens_offsets", plan.time_offsets)


def init(kernel: k.Kernel, plan: InitPlan, ch: Channel) -> None:
    try:
        _init(kernel, plan, ch)
    except BaseException as e:  # noqa: BLE001
        _fail(ch, e)
    os._exit(1)


def setup_init(kernel: k.Kernel, plan: InitPlan, fx: InitEffects):
    """The init's whole setup, up to (not including) the wait on exec.fifo and the exec; shared
    with `ocirt plan`. Returns the resolved executable, its environment and the hook state."""
    kernel.umask(0)  # devices and mount points get exactly the modes asked for
    if plan.keyring:
        try:  # the container must not share the caller's session keyring
            kernel.join_session_keyring(plan.keyring)
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EACCES, errno.EPERM):
                raise OcirtError("join a new session keyring", e.errno) from None
    if "network" in plan.ns.new:
        fx.loopback_up()
    if plan.hostname is not None:
        kernel.sethostname(plan.hostname)
    if plan.domainname is not None:
        kernel.setdomainname(plan.domainname)

    rootfs = Rootfs(kernel, plan.rootfs)
    rootfs.prepare()
    kernel.close(rootfs.ensure(plan.proc.cwd, directory=True, pointer="/process/cwd"))

    hook_state = fx.runtime_hooks(plan)

    rootfs.pivot()
    sysctl(kernel, plan.sysctl)
    rootfs.finish()
    if plan.console_fd is not None:
        fx.console(plan)
    else:
        fx.own_session()

    path, env = prepare_exec(kernel, plan.proc, plan.last_cap, "config.json", plan.seccomp,
                             fx=fx, personality=plan.personality, mempolicy=plan.mempolicy)
    return path, env, hook_state


def _init(kernel: k.Kernel, plan: InitPlan, ch: Channel) -> None:
    path, env, hook_state = setup_init(kernel, plan, InitEffects(ch))

    ch.send(Ready())
    ch.close()
    try:
        # Blocks until `ocirt start` opens the fifo for reading. Reopened through the container's
        # own /proc: the init holds nothing of the host's (no host /proc, no host directory).
        wfd = os.open(f"/proc/self/fd/{plan.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(wfd, b"0")
        os.close(wfd)
        os.close(plan.fifo_fd)
        if plan.hooks.get("startContainer"):
            hooks_mod.run(plan.hooks, "startContainer", {**hook_state, "status": "running"})
        kernel.execve(path, plan.proc.args, env)
    except OcirtError as e:
        sys.stderr.write(f"ocirt init: {e}\n")
    except OSError as e:
        sys.stderr.write(f"ocirt init: {describe_oserror(e)}: {os.strerror(e.errno).lower()}\n")
    sys.stderr.flush()
    os._exit(127)


def prepare_exec(kernel: k.Kernel, proc: process.ProcessSpec, last_cap: int, origin: str,
                 seccomp=None, ch: Channel | None = None, fx: InitEffects | None = None,
                 personality: int | None = None, mempolicy: tuple | None = None):
    """The process's own setup, shared by the init and `exec`: limits, cwd, scheduling and
    execution attributes, identity, seccomp, fds.

    Returns the resolved executable and its environment; the caller execs it. The seccomp filter
    goes in as late as it can (runc's order): after the identity switch with no_new_privs; before
    it without, since loading a filter then needs CAP_SYS_ADMIN. The scheduler, I/O priority,
    memory policy and personality go in before both (process.set_attributes says why).
    """
    fx = fx or InitEffects(ch)
    process.set_limits(kernel, proc)
    try:
        kernel.chdir(proc.cwd)
    except OSError as e:
        raise OcirtError(f"chdir to cwd (\"{proc.cwd}\") set in {origin} failed", e.errno) from None
    process.set_attributes(kernel, proc, personality, mempolicy)
    if seccomp is not None and not proc.no_new_privileges:
        fx.seccomp(seccomp)
    process.switch_identity(kernel, proc, last_cap)
    kernel.umask(proc.umask if proc.umask is not None else proc.caller_umask)
    env = process.exec_environment(proc)
    path = fx.lookup(proc.args[0], env)
    for fd in range(3, 3 + proc.preserve_fds):
        fx.inherit(fd)
    kernel.close_fds_from(3 + proc.preserve_fds)
    lsm.apply_on_exec(kernel, proc.apparmor_profile, proc.selinux_label)
    if seccomp is not None and proc.no_new_privileges:
        fx.seccomp(seccomp)
    return path, env


def seal(kernel: k.Kernel, keep: set[int], preserve: int) -> None:
    """First thing in a child that will be visible from the container: make it non-dumpable (no
    container process may open its /proc/PID/exe, fd/ or mem: the CVE-2019-5736 class), and close
    every fd the container must not get (the caller's, the runtime's), but stdio, `keep` and the
    --preserve-fds range."""
    kernel.prctl(k.PR_SET_DUMPABLE, 0)
    keep = keep | {0, 1, 2} | set(range(3, 3 + preserve))
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def refuse_runtime_binary(path: str) -> None:
    """Never exec the runtime's own interpreter (a /bin/sh -> /proc/self/exe symlink would hand
    the container a process running it, which could then rewrite it: CVE-2019-5736)."""
    try:
        target, me = os.stat(path), os.stat("/proc/self/exe")
    except OSError:
        return
    if (target.st_dev, target.st_ino) == (me.st_dev, me.st_ino):
        raise OcirtError(f'exec: "{path}": refusing to execute the runtime\'s own binary')


def _install_seccomp(seccomp, ch: Channel | None) -> None:
    notify_fd = seccomp.install()
    if notify_fd is not None:  # SCMP_ACT_NOTIFY: the parent hands the fd to the listener
        ch.send(SeccompFd(), fds=(notify_fd,))
        os.close(notify_fd)
        ch.expect(Proceed, "the seccomp listener got its fd")


def loopback_up() -> None:
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        req = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, req)[:18])[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
    finally:
        s.close()


@record
class ExecPlan:
    """`exec`: join the init's namespaces (fds opened by the parent), then fork the process."""
    ns_fds: list[tuple[int, int]]          # (fd, CLONE_NEW*) in join order
    proc: process.ProcessSpec
    last_cap: int = 40
    seccomp: object | None = None
    console_fd: int | None = None    # --console-socket with --tty, connected
    console_size: dict | None = None
    personality: int | None = None   # the container's (its init's) personality
    mempolicy: tuple | None = None


def exec_stage1(kernel: k.Kernel, plan: ExecPlan, ch: Channel) -> None:
    code = 1
    try:
        keep = {ch.fileno(), *(fd for fd, _ in plan.ns_fds)}
        if plan.console_fd is not None:
            keep.add(plan.console_fd)
        seal(kernel, keep=keep, preserve=plan.proc.preserve_fds)
        ch.expect(Proceed, "the cgroup was joined")
        set_final_affinity(kernel, plan.proc)
        for fd, nstype in plan.ns_fds:
            try:
                kernel.setns(fd, nstype)
            except OSError as e:
                raise OcirtError(f"setns {nstype:#x}", e.errno) from None
        pid = os.fork()
        if pid == 0:
            try:
                ch.expect(Proceed, "the process's pid was known")
                for fd, _ in plan.ns_fds:
                    os.close(fd)
                if plan.console_fd is not None:
                    console.setup(plan.console_fd, plan.console_size)
                path, env = prepare_exec(kernel, plan.proc, plan.last_cap, "process.json",
                                         plan.seccomp, ch, personality=plan.personality,
                                         mempolicy=plan.mempolicy)
                ch.send(Ready())
                ch.close()
                kernel.execve(path, plan.proc.args, env)
            except BaseException as e:  # noqa: BLE001
                _fail(ch, e)
            os._exit(127)
        ch.send(InitPid(pid))
        code = 0
    except BaseException as e:  # noqa: BLE001
        _fail(ch, e)
    finally:
        os._exit(code)


def set_final_affinity(kernel: k.Kernel, proc: process.ProcessSpec) -> None:
    """execCPUAffinity.final, in exec's stage 1 as soon as the parent has moved it into the
    container's cgroup (joining a cpuset resets the affinity to the cpuset's CPUs): the process
    it forks inherits it. Nothing when absent or empty (config.md: the kernel decides then)."""
    if proc.affinity_final:
        try:
            kernel.sched_setaffinity(0, proc.affinity_final)
        except OSError as e:
            raise OcirtError(f"{proc.pointer}/execCPUAffinity/final: sched_setaffinity",
                             e.errno) from None
