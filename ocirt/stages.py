"""What runs in the forked children of `create`: stage 1 (namespaces) and the container's init.

Both are entered right after fork() and never return: they end in _exit() or execve().
Everything they need was computed by the parent before fork (`InitSpec`); errors go back to the
parent as a `Failed` message.
"""

from __future__ import annotations

import _socket
import _stat as stat  # the C half of stat.py: one module less on the way
import errno
import fcntl
import posix  # not os: see ocirt/paths.py
import sys

from . import kernel as k
from . import lsm, namespaces, paths, process
from .errors import ConfigError, OcirtError, describe_oserror, oserror_line
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
from .signals import STOP_SIGNALS, catch_python_ignores
from .state import EXECUTING

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .rootfs_spec import RootfsSpec


@record
class InitSpec:
    """Everything the children do, decided by the parent from config.json."""

    ns: namespaces.Namespaces
    rootfs: RootfsSpec
    proc: process.ProcessSpec
    fifo_fd: int  # exec.fifo, O_PATH, opened by the parent (the init may not
    # be able to reach the state dir: user namespaces)
    hostname: str | None = None
    domainname: str | None = None
    sysctl: dict = field(default_factory=dict)
    time_offsets: str = ""
    hooks: dict = field(default_factory=dict)
    runtime_hooks: bool = False  # any hooks: the init stops before pivot_root for them
    keyring: str | None = None  # name of a new session keyring (None: --no-new-keyring)
    console_fd: int | None = None  # --console-socket, connected: the pty master goes there
    console_size: dict | None = None
    seccomp: object | None = None  # a compiled ocirt.seccomp.Filter
    last_cap: int = 40
    personality: int | None = None  # linux.personality, parsed (ocirt.procattr)
    mempolicy: tuple | None = None  # linux.memoryPolicy: (mode | flags, nodes)
    unprivileged: bool = False  # the runtime is not root (rootless): see enter_namespaces
    # the cgroup's v1 `tasks` files, opened by the parent: written first thing (Kernel.move_self)
    self_moves: list = field(default_factory=list)
    fd_dir: int | None = None  # no mount namespace: the runtime's /proc/self/fd, for the
    # exec.fifo (enter_rootfs_without_mount_ns)
    moved_in: bool = False  # stage 1 is forked before the cgroup is made, and the parent moves
    # the init into it once it knows the init's pid: stage 1 goes on at once, and the init
    # sets itself up meanwhile (cgroup_made, in_cgroup)
    one_fork: bool = False  # the parent forks the init itself, no stage 1 between (one_fork())


def _say(line: str) -> None:
    """A line on the process's own stderr (the container's), whatever state that is in."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _exec_failure(exc: OSError, path: str | None) -> str:
    # errno 0: execve "succeeded" without running anything (a seccomp rule with errnoRet 0)
    return oserror_line(exc) if exc.errno else f"exec {path}: execve returned without running it"


class ProcessSetupError(OcirtError):
    """The init's failure in the process's own setup (prepare_exec: its limits, cwd, identity,
    the program's lookup), after the container's: errors.process_start_failed's wording."""


def _fail(ch: Channel, exc: BaseException) -> None:
    if isinstance(exc, OcirtError):
        msg, err = exc.message, exc.errno or 0
    elif isinstance(exc, OSError):
        msg, err = describe_oserror(exc), exc.errno or 0
    else:
        msg, err = f"internal error: {exc!r}", 0
        if paths.environ_get("OCIRT_DEBUG"):
            import traceback

            traceback.print_exc()
    try:
        ch.send(Failed(msg, err, setup=not isinstance(exc, ProcessSetupError)))
    except OSError:
        pass


def one_fork(ns: namespaces.Namespaces) -> bool:
    """Whether create's parent forks the init itself, with no stage 1 between: where no user
    namespace is made or joined (the others must belong to it, and a process with threads, as
    the parent may be, cannot make one), no pid namespace is joined and no time namespace made
    or joined (those apply to the children of whoever enters them: the parent makes the new pid
    namespace for its next child only, create.init_pid_ns, and goes back to its own). The init
    then enters the other namespaces itself, first thing. One process less on create's way: its
    fork, its run under copy-on-write, its exit and the message of the init's pid (measured
    ~1.4 ms of latency for the second fork of a create-sized process)."""
    return not (ns.has("user") or ns.has("time") or any(j[0] == "pid" for j in ns.join))


def stage1(kernel: k.Kernel, spec: InitSpec, ch: Channel) -> None:
    """Join/unshare namespaces, then fork the init (pid 1 of a new pid namespace). With
    spec.one_fork this is the init's own start instead: the parent forked it, in the pid
    namespace made for it; it enters the other namespaces, says so (InitPid(0): the process the
    parent forked), and goes on as the init."""
    code = 1
    try:
        join_cgroup(kernel, spec.self_moves)
        load_init_code(spec)
        keep = {ch.fileno(), spec.fifo_fd, *spec.rootfs.idmap_fds.values()}
        if spec.console_fd is not None:
            keep.add(spec.console_fd)
        seal(kernel, keep=keep, preserve=spec.proc.preserve_fds)
        early = 0
        if not spec.moved_in:  # the parent moves us into the cgroup, then says Proceed
            early = namespaces_before_cgroup(kernel, spec)  # while the parent attaches us
            ch.expect(Proceed, "the cgroup was joined")
        enter_namespaces(kernel, spec, InitEffects(ch), done=early)
        if spec.one_fork:
            ch.send(InitPid(0))
            pid = 0
        else:
            try:
                pid = posix.fork()
            except BlockingIOError as e:  # EAGAIN: stage 1 is in the cgroup already
                raise OcirtError(
                    "/linux/resources/pids/limit: fork of the init: the container's cgroup "
                    "(or one above it) is at its pids limit",
                    e.errno,
                ) from None
        if pid == 0:
            if not spec.moved_in:  # (else in_cgroup waits for it)
                # the parent must hear InitPid (from us) before anything from the init
                ch.expect(Proceed, "the init's pid was known")
            init(kernel, spec, ch)  # never returns
        ch.send(InitPid(pid))
        code = 0
    except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
        _fail(ch, e)
    finally:
        posix._exit(code)


class InitEffects:
    """What the children do besides Kernel calls: the protocol with the parent, hooks, the
    loopback ioctl, the pty, seccomp, the exec lookup. `ocirt plan` (ocirt/plan.py) replaces it
    with a recording version and runs the same steps against a RecordingKernel."""

    stops_on_signals = True  # the init's stop handlers go in before a seccomp filter

    def __init__(self, ch: Channel | None):
        self.ch = ch
        self.made = self.moved = False  # cgroup_made, in_cgroup were passed

    def wait_made(self) -> list | None:
        """Until the parent has made the cgroup; the directories the cgroup mount binds."""
        return self._parent().expect(Proceed, "the cgroup was made").binds

    def wait_moved(self, what: str = "the init was in its cgroup") -> list | None:
        """Until the parent has moved this process into the cgroup; as wait_made."""
        return self._parent().expect(Proceed, what).binds

    def _parent(self) -> Channel:
        """The channel to the parent (`ocirt plan`'s version has none and uses none)."""
        if self.ch is None:
            raise OcirtError("no channel to the runtime's parent process")
        return self.ch

    def map_user_ns(self) -> None:
        self._parent().send(UserNsReady())
        self._parent().expect(Proceed, "the user namespace was mapped")

    def loopback_up(self) -> None:
        loopback_up()

    def runtime_hooks(self, spec: InitSpec) -> dict:
        hook_state: dict = {}
        if spec.runtime_hooks:
            self._parent().send(HooksReady())
            hook_state = self._parent().expect(Proceed, "the runtime hooks ran").state or {}
        if spec.hooks.get("createContainer"):
            # in the container's namespaces: its pid as the container sees it; from the rootfs
            # (not pivoted yet), as runc runs it
            from . import hooks as hooks_mod  # with hooks only (it loads select)

            hooks_mod.run(
                spec.hooks,
                "createContainer",
                {**hook_state, "pid": posix.getpid()},
                cwd=spec.rootfs.rootfs,
                environ=process.env_dict(spec.proc.env),  # one without `env`: the process's, as runc
            )
        return hook_state

    def console(self, spec: InitSpec, kernel: k.Kernel | None = None) -> None:
        """The terminal; with `kernel`, also bound onto the container's /dev/console."""
        if spec.console_fd is not None:
            from . import console  # loaded by setup_init, before the root was pivoted

            console.setup(spec.console_fd, spec.console_size, spec.proc.uid, kernel=kernel)

    def own_session(self) -> None:
        """Without a terminal, as runc's init: a session of its own, and stdio that is the
        host's /dev/null reopened as the container's (CRIU dumps neither a session led from
        outside the container nor files on the host's mounts)."""
        try:
            posix.setsid()
        except OSError:
            pass
        try:
            null = posix.stat("/dev/null").st_rdev
            for fd in (0, 1, 2):
                st = posix.fstat(fd)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == null:
                    new = posix.open("/dev/null", posix.O_RDWR | posix.O_CLOEXEC)
                    posix.dup2(new, fd)
                    posix.close(new)
        except OSError:
            pass

    def seccomp(self, seccomp) -> None:
        # No sigaction after the filter (a profile may deny rt_sigaction; runc's program
        # starts): Python's ignored SIGPIPE and SIGXFSZ caught instead, so that the execve
        # gives the program their default actions by itself, and the init's stop handlers now
        if self.stops_on_signals:
            stop_on_signals()
        catch_python_ignores()
        _install_seccomp(seccomp, self._parent)

    def lookup(self, executable: str, env: dict) -> str:
        path = process.lookup(executable, env)
        refuse_runtime_binary(path)
        return path

    def inherit(self, fd: int) -> None:
        try:
            posix.set_inheritable(fd, True)
        except OSError:
            pass


def namespaces_before_cgroup(kernel: k.Kernel, spec: InitSpec) -> int:
    """Stage 1, before it is in the container's cgroup: the new namespaces that may be made
    already (the parent's first cgroup.procs write can wait milliseconds in the kernel, and this
    work is done meanwhile); their flags. Not the cgroup namespace (its root is the cgroup of
    the moment), and nothing when a user namespace is made (the others must belong to it) or
    any namespace is joined (they are joined first). No process is forked before the attach."""
    if spec.ns.join or "user" in spec.ns.new:
        return 0
    flags = spec.ns.new_flags(exclude=("user", "cgroup", "pid") if spec.one_fork else ("user", "cgroup"))
    if flags:
        _unshare(kernel, flags)
    return flags


def _unshare(kernel: k.Kernel, flags: int) -> None:
    try:
        kernel.unshare(flags)
    except OSError as e:
        raise OcirtError(f"unshare namespaces {flags:#x}", e.errno) from None


def enter_namespaces(kernel: k.Kernel, spec: InitSpec, fx: InitEffects, done: int = 0) -> None:
    """Stage 1, once in the cgroup: join namespaces by path, a new user ns, the other new ones
    (but those in `done`, made by namespaces_before_cgroup)."""
    for nstype, path, index in spec.ns.join:
        where = f"/linux/namespaces/{index}/path"
        try:
            fd = kernel.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError as e:
            raise OcirtError(f"{where}: open {path}", e.errno) from None
        try:
            kernel.setns(fd, namespaces.FLAGS[nstype])
        except OSError as e:
            raise OcirtError(f"{where}: join {nstype} namespace {path}", e.errno) from None
        finally:
            kernel.close(fd)
    if "user" in spec.ns.new:
        kernel.unshare(k.CLONE_NEWUSER)
        # An unprivileged parent can open /proc/<us>/uid_map only while we are dumpable (the
        # file of a non-dumpable process belongs to root): dumpable just for the mapping, as
        # runc does, while no code of the container runs yet.
        unprivileged = spec.unprivileged
        if unprivileged:
            kernel.prctl(k.PR_SET_DUMPABLE, 1)
        fx.map_user_ns()
        if unprivileged:
            kernel.prctl(k.PR_SET_DUMPABLE, 0)
        # the setup needs the namespace's root: without it mapped, these fail with EINVAL
        for call, maps, what in (
            (kernel.setresgid, "gidMappings", "gid"),
            (kernel.setresuid, "uidMappings", "uid"),
        ):
            try:
                call(0)
            except OSError as e:
                raise OcirtError(f"/linux/{maps}: the container's {what} 0 is not mapped", e.errno) from None
    # moved_in: the init is moved into the cgroup later, and makes its cgroup namespace then;
    # one_fork: the parent made the pid namespace (for the init, before forking it)
    exclude = ("user", "cgroup") if spec.moved_in else ("user",)
    flags = spec.ns.new_flags(exclude=exclude + ("pid",) if spec.one_fork else exclude) & ~done
    if flags:
        _unshare(kernel, flags)
    if spec.time_offsets:
        try:
            kernel.write_file("/proc/self/timens_offsets", spec.time_offsets)
        except OSError as e:  # ERANGE: an offset beyond what the kernel keeps
            raise OcirtError("/linux/timeOffsets: write /proc/self/timens_offsets", e.errno) from None


def told_when_made(spec: InitSpec) -> bool:
    """moved_in: whether the parent tells the init that the cgroup's directories exist as soon
    as they do (before it writes the limits and moves the init), besides telling it when it is
    moved. Not when a user namespace is made: stage 1 then waits for the parent's word on its
    id maps, and would take that one for it."""
    return spec.moved_in and "user" not in spec.ns.new


def cgroup_made(kernel: k.Kernel, spec: InitSpec, fx: InitEffects) -> None:
    """The init, before it mounts a cgroup filesystem (moved_in): waits until the cgroup's
    directories exist (told_when_made), or else until it is moved (in_cgroup); the parent's
    word says which directories its mount binds (the parent made the cgroup's manager after
    the fork). Once."""
    if told_when_made(spec):
        _made(spec, fx)
    else:
        in_cgroup(kernel, spec, fx)


def in_cgroup(kernel: k.Kernel, spec: InitSpec, fx: InitEffects) -> None:
    """The init, where its setup needs to be in its cgroup (moved_in): waits until the parent
    has moved it there, then makes its cgroup namespace (whose root is the cgroup of the
    moment; before the identity switch, which drops the capability it needs). Until then it
    has made no process and run no hook, and it sends the parent nothing but a Failed (the
    parent hears stage 1's InitPid first, then the init's messages); its device nodes and the
    cgroup's bind mounts do not need it there (its devices are checked against the cgroup it
    is in, and the container's rules, written before the move, apply from the move on). Once;
    nothing to do without moved_in."""
    if not spec.moved_in or fx.moved:
        return
    if told_when_made(spec):
        _made(spec, fx)  # the parent's first word, if it is still to be read
    fx.moved = True
    _binds(spec, fx.wait_moved())
    if "cgroup" in spec.ns.new:
        _unshare(kernel, k.CLONE_NEWCGROUP)


def _made(spec: InitSpec, fx: InitEffects) -> None:
    if not fx.made:
        fx.made = True
        _binds(spec, fx.wait_made())


def _binds(spec: InitSpec, binds: list | None) -> None:
    if binds is not None:  # (`ocirt plan`'s children share the parent's spec: none)
        spec.rootfs.cgroup_binds = binds


def init(kernel: k.Kernel, spec: InitSpec, ch: Channel) -> None:
    try:
        _init(kernel, spec, ch)
    except BaseException as e:  # noqa: BLE001
        _fail(ch, e)
    posix._exit(1)


def load_init_code(spec: InitSpec) -> None:
    """The modules only the init runs, loaded in the child (exec's children and create's
    parent never need them), and before seal(): launched by bin/ocirt, their code then comes
    from the command's bundle, whose fd seal closes (after it, from their pyc: the path
    search's probes, the docstrings, the __future__ import, ~0.2 ms by -X importtime). Hooks
    and the console only where the config has them; all before the root is pivoted, when
    ocirt's files are out of reach; so are the process's own (process.preload)."""
    from . import rootfs, waiter  # noqa: F401

    process.preload(spec.proc)
    if spec.hooks.get("createContainer") or spec.hooks.get("startContainer"):
        from . import hooks  # noqa: F401
    if spec.console_fd is not None:
        from . import console  # noqa: F401


def setup_init(kernel: k.Kernel, spec: InitSpec, fx: InitEffects):
    """The init's whole setup, up to (not including) the wait on exec.fifo and the exec; shared
    with `ocirt plan`. Returns the resolved executable, its environment and the hook state."""
    load_init_code(spec)  # (stage1 did, before its seal; `ocirt plan` does here)
    from .rootfs import Rootfs, sysctl

    kernel.umask(0)  # devices and mount points get exactly the modes asked for
    if spec.keyring:
        try:  # the container must not share the caller's session keyring
            kernel.join_session_keyring(spec.keyring)
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EACCES, errno.EPERM):
                raise OcirtError("join a new session keyring", e.errno) from None
    if "network" in spec.ns.new:
        fx.loopback_up()
    if spec.hostname is not None:
        kernel.sethostname(spec.hostname)
    if spec.domainname is not None:
        kernel.setdomainname(spec.domainname)

    if spec.ns.has("mount"):
        # the config's mounts in order, the first of cgroup type once the cgroup exists
        rootfs = Rootfs(kernel, spec.rootfs, before_cgroup=lambda: cgroup_made(kernel, spec, fx))
        rootfs.prepare()
        kernel.close(rootfs.ensure(spec.proc.cwd, directory=True, pointer="/process/cwd"))

        if spec.runtime_hooks:
            in_cgroup(kernel, spec, fx)  # the hooks expect the init there
        hook_state = fx.runtime_hooks(spec)

        rootfs.pivot()
        sysctl(kernel, spec.sysctl)
        if spec.console_fd is not None:  # /dev/console is the pty (config-linux.md), bound
            in_cgroup(kernel, spec, fx)  # before the root is finished (read-only), as runc
            fx.console(spec, kernel)
        rootfs.finish()
    else:
        hook_state = enter_rootfs_without_mount_ns(kernel, spec, fx)
    in_cgroup(kernel, spec, fx)  # before the console, the identity, seccomp and the exec
    if spec.console_fd is None:
        fx.own_session()
    elif not spec.ns.has("mount"):
        fx.console(spec)  # the host's /dev/console is never bound over

    if not spec.proc.args:  # no `process` (config.md: required only at start): nothing to exec
        return None, {}, hook_state
    try:
        path, env = prepare_exec(
            kernel,
            spec.proc,
            spec.last_cap,
            "config.json",
            spec.seccomp,
            fx=fx,
            personality=spec.personality,
            mempolicy=spec.mempolicy,
        )
    except OcirtError as e:
        raise ProcessSetupError(e.message, e.errno) from None
    except OSError as e:
        raise ProcessSetupError(describe_oserror(e), e.errno) from None
    return path, env, hook_state


def enter_rootfs_without_mount_ns(kernel: k.Kernel, spec: InitSpec, fx: InitEffects) -> dict:
    """No mount namespace: the runtime's is inherited (config-linux.md) and nothing is mounted in
    it (checks.check_without_mount_ns refused what would be); the init chroots into the rootfs,
    as runc does then. The sysctls are written before, through the runtime's /proc (the rootfs
    has none mounted), and so is the exec.fifo reopened later: through a /proc/self/fd opened
    now, closed at exec."""
    from .rootfs import sysctl

    in_cgroup(kernel, spec, fx)
    hook_state = fx.runtime_hooks(spec)
    sysctl(kernel, spec.sysctl)
    spec.fd_dir = kernel.open("/proc/self/fd", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    kernel.chroot(spec.rootfs.rootfs)
    kernel.chdir("/")
    return hook_state


def stop_on_signals() -> None:
    """The waiting init is PID 1 of its pid namespace: a signal it has no handler for never
    reaches it (only SIGKILL does), so `kill` of a created container would do nothing and an
    engine's stop would wait out its timeout. With these handlers it ends, exit 128+signal, as
    a process the signal killed would be counted (runc's init ends too, with exit 2). The
    execve resets them: the program gets the defaults. Installed once: before the seccomp
    filter where there is one (a profile may deny rt_sigaction), else right before Ready."""
    import _signal

    for signum in STOP_SIGNALS:
        if _signal.getsignal(signum) is not _stop:
            _signal.signal(signum, _stop)


def _stop(signum, _frame):
    posix._exit(128 + signum)


def _init(kernel: k.Kernel, spec: InitSpec, ch: Channel) -> None:
    path, env, hook_state = setup_init(kernel, spec, InitEffects(ch))
    # The fifo is reopened for writing through the container's own /proc (the init holds
    # nothing of the host's: no host /proc, no host directory), or, chrooted without a mount
    # namespace, through the runtime's /proc/self/fd opened before (spec.fd_dir). Tried first
    # here (O_PATH, no wait), while a failure is still create's: no /proc among the mounts,
    # an RLIMIT_NOFILE that leaves no fd.
    fifo, fifo_dir = (
        (str(spec.fifo_fd), spec.fd_dir)
        if spec.fd_dir is not None
        else (f"/proc/self/fd/{spec.fifo_fd}", None)
    )
    try:
        posix.close(posix.open(fifo, posix.O_PATH | posix.O_CLOEXEC, dir_fd=fifo_dir))
    except OSError as e:
        raise OcirtError(f"reopen exec fifo {fifo}", e.errno) from None

    stop_on_signals()
    ch.send(Ready())
    ch.close()
    from . import waiter  # (loaded by load_init_code)

    wfd = None
    try:
        if waiter.usable(spec, path):  # the wait and the execve in a program of a few pages
            waiter.execute(spec, path, env)  # (returns only where it could not)
        # Blocks until `ocirt start` opens the fifo for reading.
        wfd = posix.open(fifo, posix.O_WRONLY | posix.O_CLOEXEC, dir_fd=fifo_dir)
        if fifo_dir is not None:
            posix.close(fifo_dir)
        posix.write(wfd, b"0")
        posix.close(spec.fifo_fd)
        # From here `start` reads the fifo: EXECUTING right before the execve, or a failure's
        # message (start reports it); wfd is close-on-exec, so its end comes when execve
        # succeeded (with poststart hooks, start waits for that) or this process is gone.
        if path is None:
            raise ConfigError("/process", "is required to start a container")
        if spec.hooks.get("startContainer"):
            # runtime.md step 7: before the program runs (status created), in the container
            from . import hooks as hooks_mod

            hooks_mod.run(
                spec.hooks,
                "startContainer",
                {**hook_state, "status": "created", "pid": posix.getpid()},
                environ=env,  # one without `env`: the program's, as runc
            )
        try:
            posix.write(wfd, EXECUTING)  # (start may return now: Container.start)
        except OSError:  # start is gone (killed after the "0"): the program runs all the same
            pass
        kernel.execve(path, spec.proc.args, env)
    except OcirtError as e:
        message = str(e)
    except OSError as e:
        message = _exec_failure(e, path)
    except BaseException as e:  # noqa: BLE001 - reported, never raised out of the init
        message = f"internal error: {e!r}"
    _say(f"ocirt init: {message}")
    if wfd is not None:
        try:
            posix.write(wfd, message.encode(errors="replace")[:4000])
        except OSError:
            pass
    posix._exit(127)


def prepare_exec(
    kernel: k.Kernel,
    proc: process.ProcessSpec,
    last_cap: int,
    origin: str,
    seccomp=None,
    ch: Channel | None = None,
    fx: InitEffects | None = None,
    personality: int | None = None,
    mempolicy: tuple | None = None,
):
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
        raise OcirtError(f'chdir to cwd ("{proc.cwd}") set in {origin} failed', e.errno) from None
    process.set_attributes(kernel, proc, personality, mempolicy)
    # before any filter (runc's order: one may deny umask); umask(2) keeps the permission bits
    # only, and a uint32 beyond them would overflow a C int here
    kernel.umask(proc.umask & 0o777 if proc.umask is not None else proc.caller_umask)
    if seccomp is not None and not proc.no_new_privileges:
        fx.seccomp(seccomp)
    process.switch_identity(kernel, proc, last_cap)
    env = process.exec_environment(proc)
    path = fx.lookup(proc.args[0], env)
    for fd in range(3, 3 + proc.preserve_fds):
        fx.inherit(fd)
    kernel.close_fds_from(3 + proc.preserve_fds)
    lsm.apply_on_exec(kernel, proc.apparmor_profile, proc.selinux_label)
    if seccomp is not None and proc.no_new_privileges:
        fx.seccomp(seccomp)
    return path, env


def join_cgroup(kernel: k.Kernel, self_moves: list) -> None:
    """First thing in a child (one thread): into the container's cgroup in each v1 hierarchy
    by itself, through the `tasks` fds the parent opened (Manager.self_placement; a thread
    moving itself alone waits for no grace period), each closed after."""
    for fd in self_moves:
        try:
            kernel.move_self(fd)
        except OSError as e:
            raise OcirtError("cannot join the container's cgroup", e.errno) from None
        kernel.close(fd)


def seal(kernel: k.Kernel, keep: set[int], preserve: int) -> None:
    """First thing in a child that will be visible from the container: make it non-dumpable (no
    container process may open its /proc/PID/exe, fd/ or mem: the CVE-2019-5736 class), and close
    every fd the container must not get (the caller's, the runtime's), but stdio, `keep` and the
    --preserve-fds range."""
    kernel.prctl(k.PR_SET_DUMPABLE, 0)
    keep = keep | {0, 1, 2} | set(range(3, 3 + preserve))
    for name in posix.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                posix.close(fd)
            except OSError:
                pass


def refuse_runtime_binary(path: str) -> None:
    """Never exec the runtime's own interpreter (a /bin/sh -> /proc/self/exe symlink would hand
    the container a process running it, which could then rewrite it: CVE-2019-5736)."""
    try:
        target, me = posix.stat(path), posix.stat("/proc/self/exe")
    except OSError:
        return
    if (target.st_dev, target.st_ino) == (me.st_dev, me.st_ino):
        raise OcirtError(f'exec: "{path}": refusing to execute the runtime\'s own binary')


def _install_seccomp(seccomp, parent: Callable[[], Channel]) -> None:
    notify_fd = seccomp.install()
    if notify_fd is not None:  # SCMP_ACT_NOTIFY: the parent hands the fd to the listener
        ch = parent()
        ch.send(SeccompFd(), fds=(notify_fd,))
        posix.close(notify_fd)
        ch.expect(Proceed, "the seccomp listener got its fd")


def loopback_up() -> None:
    # struct ifreq as far as these calls go: the name (16 bytes), then ifr_flags (a short). Built
    # without struct: the init would load it for this alone, and an import after the fork costs
    # it several times what it costs the parent (a dlopen, and copy-on-write faults).
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    name = b"lo".ljust(16, b"\0")
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        got = fcntl.ioctl(s, SIOCGIFFLAGS, name + bytes(2))
        flags = int.from_bytes(got[16:18], sys.byteorder)
        fcntl.ioctl(s, SIOCSIFFLAGS, name + (flags | IFF_UP).to_bytes(2, sys.byteorder))
    finally:
        s.close()


@record
class ExecSpec:
    """`exec`: join the init's namespaces (fds opened by the parent), then fork the process."""

    ns_fds: list[tuple[int, int]]  # (fd, CLONE_NEW*) in join order
    proc: process.ProcessSpec
    last_cap: int = 40
    seccomp: object | None = None
    console_fd: int | None = None  # --console-socket with --tty, connected
    console_size: dict | None = None
    personality: int | None = None  # the container's (its init's) personality
    mempolicy: tuple | None = None
    # the cgroup's v1 `tasks` files, opened by the parent: written first thing (Kernel.move_self)
    self_moves: list = field(default_factory=list)


def exec_one_fork(spec: ExecSpec) -> bool:
    """Whether exec's parent forks the process itself, in the container's pid namespace
    (children.child_pid_ns), with no stage 1 between: unless the container has a time namespace
    of its own (it applies to the children of whoever joins it, and only a process with one
    thread may: the parent may have two)."""
    return not any(nstype == k.CLONE_NEWTIME for _, nstype in spec.ns_fds)


def exec_stage1(kernel: k.Kernel, spec: ExecSpec, ch: Channel, one_fork: bool = False) -> None:
    """Join the init's namespaces, then fork the process. With `one_fork` (exec_one_fork) this is
    the process itself, forked by the parent in the container's pid namespace: it joins the
    others and goes on, and the parent knows its pid without a word."""
    code = 1
    try:
        join_cgroup(kernel, spec.self_moves)
        if spec.console_fd is not None:
            from . import console  # before the mount namespace is joined
        keep = {ch.fileno(), *(fd for fd, _ in spec.ns_fds)}
        if spec.console_fd is not None:
            keep.add(spec.console_fd)
        seal(kernel, keep=keep, preserve=spec.proc.preserve_fds)
        for fd, nstype in spec.ns_fds:
            if one_fork and nstype == k.CLONE_NEWPID:
                continue  # the parent's, for us
            try:
                kernel.setns(fd, nstype)
            except OSError as e:
                raise OcirtError(f"setns {nstype:#x}", e.errno) from None
        pid = 0 if one_fork else posix.fork()
        if pid == 0:
            try:
                # The parent hears InitPid (from stage 1; one fork: it forked us), puts us in
                # the cgroup and says Proceed.
                # We set ourselves up meanwhile, and wait for that before anything of the
                # container's runs (ExecEffects); with execCPUAffinity.final, first thing (joining
                # a cpuset resets the affinity).
                fx = ExecEffects(ch, set_up_first=not spec.proc.affinity_final)
                if not fx.set_up_first:
                    fx.until_moved()
                    set_final_affinity(kernel, spec.proc)
                for fd, _ in spec.ns_fds:
                    posix.close(fd)
                if spec.console_fd is not None:
                    console.setup(spec.console_fd, spec.console_size, spec.proc.uid)
                else:
                    posix.setsid()  # a session of its own, as runc's exec'd process (nsexec's setsid)
                path, env = prepare_exec(
                    kernel,
                    spec.proc,
                    spec.last_cap,
                    "process.json",
                    spec.seccomp,
                    ch,
                    fx=fx,
                    personality=spec.personality,
                    mempolicy=spec.mempolicy,
                )
                fx.until_moved()  # (at the latest: before the container's program runs)
                ch.send(Ready())
                ch.close()
                try:
                    kernel.execve(path, spec.proc.args, env)
                except OSError as e:  # the parent has gone on: the process's stderr says why
                    _say(f"ocirt exec: {_exec_failure(e, path)}")
                    posix._exit(127)
            except BaseException as e:  # noqa: BLE001
                _fail(ch, e)
            posix._exit(127)
        ch.send(InitPid(pid))
        code = 0
    except BaseException as e:  # noqa: BLE001
        _fail(ch, e)
    finally:
        posix._exit(code)


class ExecEffects(InitEffects):
    """exec's process. With `set_up_first` it sets itself up (limits, cwd, attributes, identity,
    capabilities) while the parent moves it into the container's cgroup, and waits for that
    before its seccomp filter goes in (a filter may refuse the wait's receive, and a listener
    fd's message must come after the parent's Proceed) or, without one, before its Ready and
    exec: nothing of the container's runs outside the cgroup."""

    stops_on_signals = False  # (the init's: the waiting container's end on kill)

    def __init__(self, ch: Channel, set_up_first: bool):
        super().__init__(ch)
        self.set_up_first = set_up_first

    def until_moved(self) -> None:
        if not self.moved:
            self.moved = True
            self.wait_moved("the process joined the cgroup")

    def seccomp(self, seccomp) -> None:
        self.until_moved()
        super().seccomp(seccomp)


def set_final_affinity(kernel: k.Kernel, proc: process.ProcessSpec) -> None:
    """execCPUAffinity.final, in exec's process as soon as the parent has moved it into the
    container's cgroup (joining a cpuset resets the affinity to the cpuset's CPUs). Nothing when
    absent or empty (config.md: the kernel decides then)."""
    if proc.affinity_final:
        try:
            kernel.sched_setaffinity(0, proc.affinity_final)
        except OSError as e:
            raise OcirtError(f"{proc.pointer}/execCPUAffinity/final: sched_setaffinity", e.errno) from None
