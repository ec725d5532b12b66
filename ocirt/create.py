"""`create`'s parent: from config.json to a created container, step by step.

`steps` is the whole orchestration, run against a `Kernel` and a `HostEffects` (what is not a
syscall: the state directory, the cgroup, the console socket, the channel to the children, hooks,
network devices). `create` runs it for real; `ocirt plan` (ocirt/plan.py) runs the same function
with a recording kernel and recording effects, whose `drive` plays the children's steps
(ocirt/stages.py) instead of waiting for their messages. A failed create undoes what it did, in
reverse order, and leaves nothing behind.
"""

from __future__ import annotations

import posix  # not os: see ocirt/paths.py
import time

from . import config as config_mod
from . import kernel as k
from . import namespaces, paths, stages
from .checks import CreateOptions, check_config
from .children import (
    OwnPidNs,
    check_pid_file,
    child_pid_ns,
    close_self_moves,
    fork_placed,
    kill_and_reap,
    pass_seccomp_fd,
    self_placed,
    write_pid_file,
)
from .errors import ConfigError, OcirtError, process_start_failed
from .mapping import cgroup_binds, init_spec, resources_with_default_devices
from .protocol import (
    Channel,
    ChildFailed,
    Failed,
    HooksReady,
    HungUp,
    InitPid,
    Proceed,
    Ready,
    SeccompFd,
    UserNsReady,
)
from .record import field, record
from .state import ContainerState, StateDir, Status, check_id, proc_start_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .attach_window import Window


def create(
    opts: CreateOptions, kernel: k.Kernel, fx: HostEffects | None = None
) -> tuple[StateDir, ContainerState]:
    """`ocirt create`: the container made, its init waiting on exec.fifo; the state dir locked.
    A caller that passes its own HostEffects finds the cgroup layout read in `fx.layout`."""
    return steps(opts, kernel, fx if fx is not None else HostEffects())


def steps(opts: CreateOptions, kernel: k.Kernel, fx: HostEffects) -> tuple[StateDir, ContainerState]:
    """create's parent, in order (shared with `ocirt plan`, which passes recording ones)."""
    check_id(opts.id)
    if opts.pid_file:
        check_pid_file(opts.pid_file)  # (a device in its place is refused before anything is made)
    bundle = absolute(opts.bundle, "bundle")
    config = config_mod.load(bundle)
    checked = check_config(config, bundle, opts)
    sd = fx.state_dir(opts.root, opts.id)
    undo = Undo()  # (its reserve and first step taken before there is anything to undo)
    undo.push(sd.remove)
    sd.make_and_lock()
    state = None
    try:
        state = new_state(opts.id, bundle, checked.rootfs, config, opts.systemd_cgroup)
        layout = fx.cgroup_layout()

        def cgroup(linux: dict = checked.linux):  # its manager, its limits (of `linux`) parsed,
            # its directories made; and their write
            cg = fx.cgroup(opts, checked.linux, config, layout)
            resources = fx.resources(linux)
            cg = make_cgroup(opts, checked.linux, sd, state, cg, fx, undo)
            if opts.debug:
                opts.debug(f"create: state in {sd.path}, cgroup {cg.dirs() or 'none'}")
            return cg, lambda: fx.apply(cg, resources, kernel)

        one_fork = opts.init_as_child and stages.one_fork(checked.ns)
        late, cg = None, None  # type: tuple[LateCgroup | None, Any]
        pids_late: Callable[[], None] | None = None
        if moves_init(opts, layout, fx.alone):  # all of it once stage 1 is forked: LateCgroup
            late = LateCgroup(cgroup, layout)
        else:
            linux, pids = late_pids(checked.linux, 1 if one_fork else 2)
            cg, configure = cgroup(linux)
            configure()  # before any process is in it (as LateCgroup's); but a pids limit
            # the init's fork would not fit, once it is forked
            if pids is not None:
                pids_late = lambda: fx.apply(cg, pids, kernel)
        fifo_fd = open_exec_fifo(kernel, sd.fifo, undo)
        spec = init_spec(config, bundle, opts, checked, layout, cg, fifo_fd)
        spec.moved_in = late is not None
        spec.one_fork = one_fork
        if checked.proc_cfg.get("terminal") and opts.console_socket:  # check_config wants both
            spec.console_fd = fx.connect_console(opts.console_socket)
            undo.push(kernel.close, spec.console_fd)
            spec.console_size = checked.proc_cfg.get("consoleSize")
        if checked.idmaps:  # detached idmapped trees, made here (ocirt/idmap.py says why)
            from . import idmap

            spec.rootfs.idmap_fds = idmap.prepare(
                kernel, checked.idmaps, spec.rootfs.mounts, spec.rootfs.propagation
            )
            for fd in spec.rootfs.idmap_fds.values():
                undo.push(kernel.close, fd)
        if spec.rootfs.in_userns:  # bind sources opened before the user namespace (rootfs.py)
            from .rootfs import open_bind_sources

            for fd in open_bind_sources(kernel, spec.rootfs):
                undo.push(kernel.close, fd)
        if opts.subreaper:
            kernel.prctl(k.PR_SET_CHILD_SUBREAPER, 1)
        parent = Parent(kernel, fx, checked, state, spec, late, pids_late)
        state.pid = run_children(kernel, fx, spec, cg, parent, undo)
        if late is not None:
            cg = late.cgroup
        if opts.debug:
            opts.debug(f"create: init {state.pid} ready, waiting on {sd.fifo}")
        state.pid_start = parent.init_start
        state.cgroup = cg.to_dict()  # again: with what apply() set
        sd.save(state, aside=True)
        if opts.pid_file:
            write_pid_file(opts.pid_file, state.pid)
        undo.steps.clear()
        for fd in (fifo_fd, spec.console_fd, *spec.rootfs.idmap_fds.values()):
            if fd is not None:
                kernel.close(fd)
        if checked.warnings:  # one line, as runc's, once nothing can fail any more
            opts.warn("; ".join(checked.warnings))
        return sd, state
    except BaseException:
        undo.run()
        sd.unlock()
        # runtime.md: a failed hook stops the container and the lifecycle goes on at step 12
        # (destroyed: the undo above) and 13, the poststop hooks (runc runs them on any failed
        # create, as here)
        if state is not None and state.hooks.get("poststop"):
            fx.poststop(state, opts.warn)
        raise


def absolute(path: str, what: str) -> str:
    """`path` made absolute; a relative one where the current directory was removed (getcwd:
    ENOENT) is an error naming it, not the bare errno."""
    try:
        return paths.abspath(path)
    except OSError as e:
        raise OcirtError(
            f"{what} {path}: a relative path, and the current directory is gone", e.errno
        ) from None


# Memory an Undo holds until it runs, and gives back then, for its own steps and the error's
# report: under a caller's RLIMIT_DATA or RLIMIT_AS that create just about fits in, a
# MemoryError (here, or in the init, which the parent hears) left the undo's own allocations
# failing (run goes on past them), and the state dir behind. An allocation this large is a
# mapping of its own (malloc's threshold: 128 KiB), unmapped when it is freed; bytes, not a
# bytearray: calloc'd, its pages are never touched, so it counts against the limits and not
# in the resident memory of create or of the init it forks (a bytearray's are zeroed: 256 KiB
# more of both, and ~0.1 ms).
UNDO_RESERVE = 256 << 10


@record
class Undo:
    steps: list = field(default_factory=list)
    reserve: bytes | None = field(default_factory=lambda: bytes(UNDO_RESERVE))

    def push(self, fn, *args) -> None:
        self.steps.append((fn, args))

    def run(self) -> None:
        self.reserve = None  # its memory back first: the steps' own, where create ran out of it
        while self.steps:
            fn, args = self.steps.pop()
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - undo what we can
                pass


def new_state(
    container_id: str, bundle: str, rootfs: str, config: dict, systemd_cgroup: bool
) -> ContainerState:
    """A new container's state.json record (create; restore, which makes its container anew)."""
    linux = config.get("linux") or {}
    return ContainerState(
        id=container_id,
        bundle=bundle,
        rootfs=rootfs,
        created=rfc3339(),
        annotations=config.get("annotations") or {},
        hooks={n: v for n, v in (config.get("hooks") or {}).items() if n in ("poststart", "poststop")},
        systemd_cgroup=systemd_cgroup,
        seccomp=linux.get("seccomp"),
        memory_policy=linux.get("memoryPolicy"),
    )


def make_cgroup(opts: CreateOptions, linux: dict, sd, state: ContainerState, cg, fx: HostEffects, undo: Undo):
    """The container's cgroup made, or for a rootless create that may not make one, the
    manager of no cgroup. Its limits are the caller's (HostEffects.apply), written before any
    process is in it: on cgroup v1 the device rules are written as a deny-all and the allowed
    ones after it, and a process in the cgroup meanwhile would be refused its devices."""
    # Saved before anything is made (status "creating", no pid), and again once the cgroup
    # exists: if this process is killed anywhere from here on, `delete --force` finds what
    # to remove (here: the container's own cgroup directories, which create() is about to make).
    state.cgroup = {**cg.to_dict(), "created": _to_make(cg.dirs())}
    sd.save(state)
    try:
        cg.create(warn=opts.warn)
    except OcirtError as e:
        cg = _rootless_without_cgroup(opts, linux, cg, e)  # or raises
    undo.push(cg.destroy)
    # before it (undo runs backwards): whatever is in the cgroup goes, the init among them where
    # a ^C came between its fork and the undo step that kills it by pid
    undo.push(_kill_members, cg)
    made = cg.to_dict()
    if made != state.cgroup:  # else state.json says it already (no parent directory was made)
        state.cgroup = made
        sd.save(state)
    return cg


def _kill_members(cg) -> None:
    from . import members  # (a failed create's only)

    members.kill_and_wait(cg, 0, 0)


@record
class LateCgroup:
    """The container's cgroup when the children go first (moves_init): its manager made (the
    cgroup modules loaded), its limits parsed and its directories made once stage 1 is forked
    (the init is told, where stages.told_when_made, with the directories its cgroup mount
    binds), its limits written, and the init moved in once its pid is known."""

    make: Callable[[], tuple[Any, Callable[[], None]]]  # () -> (the manager, its directories
    # made; the write of its limits)
    layout: Any  # the host's cgroup layout
    cgroup: Any = None  # the manager, once made


def late_pids(linux: dict, processes: int) -> tuple[dict, dict | None]:
    """The pids limit (linux.resources.pids.limit, `unified`'s pids.max) held back where it
    is below `processes`, the runtime's own processes in the cgroup when the init is forked
    (stage 1 and the init it forks there; with one fork the init alone, born there on cgroup
    v2): that fork would be refused (runc, which writes the limits once its init is set up,
    never meets it). `linux` without it and the resources that set it, written once the init
    is forked (Parent.init_started: before it goes on with its setup); else (linux, None).
    The kernel takes a limit below the current count (it refuses new forks only), so stage 1
    need not be gone by then. 0 is a limit (config-linux.md; runc 1.1.5 reads it as none)."""
    resources = linux.get("resources")
    if not isinstance(resources, dict):
        return linux, None
    pids, unified = resources.get("pids"), resources.get("unified")
    pids = pids if isinstance(pids, dict) else {}
    unified = unified if isinstance(unified, dict) else {}
    limit, value = pids.get("limit"), unified.get("pids.max")
    held: dict = {}
    if type(limit) is int and 0 <= limit < processes:  # (a bool is no limit: parse refuses it)
        held["pids"] = {"limit": limit}
        resources = {**resources, "pids": {n: v for n, v in pids.items() if n != "limit"}}
    if isinstance(value, str) and value.strip() in [str(n) for n in range(processes)]:
        held["unified"] = {"pids.max": value}
        resources = {**resources, "unified": {n: v for n, v in unified.items() if n != "pids.max"}}
    return ({**linux, "resources": resources}, held) if held else (linux, None)


def moves_init(opts: CreateOptions, layout, alone: Callable[[], bool]) -> bool:
    """Whether the children go first and the init is moved into the cgroup (stages.InitSpec.
    moved_in): on cgroup v1 and hybrid hosts, with the cgroupfs driver, as root, where this
    process has another thread (a program using the Python API). The cgroup is then made
    while stage 1 forks the init and the init sets up, and the kernel's wait at the first
    cgroup write (an RCU grace period, ocirt/attach_window.py) overlaps their work instead of
    coming before it. With one thread (the command line) the cgroup comes first and the child
    gets into it by itself, with no wait at all (Manager.self_placement: born in the cgroup2
    directory, then into each v1 hierarchy as its first act), as on cgroup v2 (born in it);
    systemd's unit starts with its first process; a rootless create learns only by trying
    whether it gets a cgroup at all, which the init's mounts depend on."""
    if opts.systemd_cgroup or opts.rootless or layout.kind == "v2" or not layout.mounts:
        return False
    return not alone()  # (asked last: it ends an attach window that is open)


def _to_make(dirs: list) -> list:
    """The directories that making `dirs` will make, missing parents first, in the order the
    cgroupfs managers make them (so that state.json written before need not change after)."""
    out = []
    for d in dirs:
        chain = []
        while d and d != "/" and not paths.is_dir(d) and d not in out:
            chain.append(d)
            d = paths.dirname(d)
        out += reversed(chain)
    return out


def open_exec_fifo(kernel: k.Kernel, path: str, undo: Undo) -> int:
    """exec.fifo, and an O_PATH fd of it for the init (which may not reach the state dir).
    A failure names the fifo (a full --root: ENOSPC of its inode), not the bare errno."""
    try:
        kernel.mkfifo(path, 0o622)
        kernel.chmod(path, 0o622)  # mkfifo's mode is masked by the umask; a non-root init writes it
        fifo_fd = kernel.open(path, posix.O_PATH | posix.O_CLOEXEC)
    except OSError as e:
        raise OcirtError(f"make the exec fifo {path}", e.errno) from None
    undo.push(kernel.close, fifo_fd)
    return fifo_fd


def run_children(
    kernel: k.Kernel, fx: HostEffects, spec: stages.InitSpec, cg, parent: Parent, undo: Undo
) -> int:
    """Fork stage 1, put it in the cgroup, drive the children until the init is Ready; its pid.
    With a LateCgroup (parent.late): fork stage 1, make the cgroup, and move the init into it
    once stage 1 has said its pid (Parent.init_started). With spec.one_fork the child forked
    here is the init itself (in the pid namespace made for it: init_pid_ns), and says when it
    has entered its namespaces (InitPid(0)); nothing else changes."""
    parent_ch, child_ch = fx.channel(spec)
    # where the cgroup was made before the fork, stage 1 gets in with no move by this process
    placement, spec.self_moves = self_placed(kernel, cg)  # (with a LateCgroup: none yet)
    own_pid_ns = init_pid_ns(kernel, spec)  # (one fork: the init's, made now)
    try:
        if parent.late is not None:
            stage1_pid, placed = kernel.fork(), True  # (the init will be moved)
        elif placement is not None:
            # born in the cgroup2 directory (if any), into the v1 hierarchies by itself
            stage1_pid, placed = fork_placed(kernel, placement[0], fx.alone, kernel.fork)
        else:  # a systemd unit, no cgroup: to be moved (or started with it)
            stage1_pid, placed = kernel.fork(), False
    except BaseException:
        own_pid_ns.back(kernel)
        close_self_moves(kernel, spec)
        # a ^C may come after the fork, before its pid is known here: the child, if there is
        # one, finds the channel closed at its first word and ends by itself
        parent_ch.close()
        child_ch.close()
        raise
    if stage1_pid == 0:
        try:  # a forked child never returns into the runtime's code
            parent_ch.close()
            stages.stage1(kernel, spec, child_ch)  # never returns
        finally:
            posix._exit(1)
    try:  # (from the fork on: a ^C anywhere here kills the child, below)
        child_ch.close()
        parent.stage1_pid = stage1_pid  # with spec.one_fork, the init
        own_pid_ns.back(kernel)  # (the child lives on in the one made for it)
        if parent.late is not None:
            parent.make_cgroup(parent_ch)
        else:
            try:
                if not placed:
                    cg.add_pid(stage1_pid)
            finally:
                fx.attached()
        init_pid = fx.drive(parent_ch, spec, parent)
        # Stage 1 exits once it has sent the init's pid; it is reaped only now, so that the
        # init's setup runs while it exits instead of after (nothing in the init depends on
        # its parent being gone).
        if not spec.one_fork:
            kernel.waitpid(stage1_pid)
    except BaseException as e:
        if isinstance(e, OcirtError):
            process_start_failed(e, during_init=not isinstance(e, ChildFailed) or e.setup)
        own_pid_ns.back(kernel)  # (if not yet)
        fx.attached()  # (with a LateCgroup, where the failure came before the init's move)
        parent.undo_moves()  # before the init dies with it, a virtual device would die too
        if parent.init_pid and parent.init_pid != stage1_pid:
            undo.push(fx.kill_and_reap, parent.init_pid)
        fx.kill_and_reap(stage1_pid)
        cgroup = parent.late.cgroup if parent.late is not None else cg
        if isinstance(e, HungUp) and cgroup is not None and fx.oom_kills(cgroup):
            raise OcirtError(
                "container init was OOM-killed (memory limit too low?)"
            ) from None  # runc's words
        raise
    finally:
        parent.close_moves()
        parent_ch.close()
        close_self_moves(kernel, spec)  # (the child's copies are its own)
    undo.push(fx.kill_and_reap, init_pid)
    return init_pid


def init_pid_ns(kernel: k.Kernel, spec: stages.InitSpec) -> OwnPidNs:
    """One fork (stages.one_fork): the init born non-dumpable, into a new pid namespace made
    here for it, where the config has one (children.child_pid_ns); what to go back to right
    after the fork. Where this process may not make it, stage 1 does after all (spec.one_fork
    turned off)."""
    if not spec.one_fork:
        return OwnPidNs()
    try:
        return child_pid_ns(kernel, new="pid" in spec.ns.new)
    except OcirtError:
        spec.one_fork = False
        return OwnPidNs()


class Parent:
    """What the parent does when the children ask (their messages; in `ocirt plan`, their calls):
    map the user namespace, take the init's pid (and move linux.netDevices into its network
    namespace), run the runtime hooks, hand over a seccomp listener fd."""

    def __init__(
        self,
        kernel: k.Kernel,
        fx: HostEffects,
        checked,
        state: ContainerState,
        spec: stages.InitSpec,
        late: LateCgroup | None = None,
        late_limits: Callable[[], None] | None = None,
    ):
        self.kernel, self.fx, self.linux, self.state = kernel, fx, checked.linux, state
        self.hooks, self.seccomp, self.net_devices = spec.hooks, checked.seccomp, checked.net_devices
        self.unprivileged = spec.unprivileged
        self.late = late  # spec.moved_in: the cgroup made here, the init moved into it
        self.late_limits = late_limits  # the write of what late_pids held back
        self.spec = spec
        self.tell_made = stages.told_when_made(spec)
        self.stage1_pid = self.init_pid = self.init_start = 0
        self.moves = None

    def make_cgroup(self, ch: Channel) -> None:
        """The LateCgroup made and configured while the children set up; the init told as
        soon as its directories exist (stages.told_when_made: it may bind them then). If that
        fails, the children are told that no answer comes, and heard out: the init's pid (for
        the undo to end it), and the init's own error if it failed first."""
        late = self.late
        if late is None:  # (run_children calls this with a LateCgroup only)
            raise OcirtError("internal error: no cgroup to make")
        try:
            late.cgroup, configure = late.make()
            # the directories the init's cgroup mount binds: in the words it gets (in_cgroup)
            self.spec.rootfs.cgroup_binds = cgroup_binds(late.layout, late.cgroup)
            if self.tell_made:
                ch.send(self.proceed())
            configure()
        except BaseException as e:
            self.init_pid, failure = self.fx.hear_out(ch)
            if failure is not None and isinstance(e, OSError):  # the init was gone: why
                raise failure from None
            raise

    def proceed(self) -> Proceed:
        """The word to the init (it goes on): with a LateCgroup, the directories of the
        cgroup its mount binds, which the init's spec could not hold."""
        return Proceed(binds=self.spec.rootfs.cgroup_binds) if self.late is not None else Proceed()

    def map_user_ns(self) -> None:
        namespaces.write_id_maps(self.kernel, self.stage1_pid, self.linux, self.unprivileged)

    def init_started(self, pid) -> None:
        self.init_pid = pid
        if self.late is not None:  # the init, not stage 1, is moved: before it needs the cgroup
            try:
                self.late.cgroup.add_pid(pid)
            finally:
                self.fx.attached()
        if self.late_limits is not None:  # forked: the limit its fork did not fit (late_pids)
            self.late_limits()
        if self.net_devices:  # in the init's network namespace, before it goes on with its setup
            self.moves = moves = self.fx.netdev_moves()
            moves.move(self.net_devices, pid)

    def init_going_on(self) -> None:
        """After the Proceed that answers InitPid: state.json's pid_start, read while the init
        sets itself up, not once it is ready."""
        self.init_start = proc_start_time(self.init_pid) or 0

    def runtime_hooks(self) -> dict:
        """prestart and createRuntime, in the runtime's namespaces; the state they got."""
        hook_state = self.state.oci(Status.CREATING)
        hook_state["pid"] = self.init_pid
        bundle = self.state.bundle  # their working directory, as runc's
        self.fx.run_hooks(self.hooks, "prestart", hook_state, cwd=bundle)
        self.fx.run_hooks(self.hooks, "createRuntime", hook_state, cwd=bundle)
        return hook_state

    def undo_moves(self) -> None:
        if self.moves is not None:
            self.moves.undo()

    def close_moves(self) -> None:
        if self.moves is not None:
            self.moves.close()


def drive(ch: Channel, spec: stages.InitSpec, parent: Parent) -> int:
    """The parent's side of the protocol (ocirt/protocol.py); the init's pid once it is Ready."""
    if parent.late is None:
        ch.send(Proceed())  # stage 1 is in the cgroup (else the init is moved: InitPid)
    while True:
        expected = (UserNsReady, InitPid) if not parent.init_pid else (HooksReady, SeccompFd, Ready)
        msg = ch.expect(expected, "the container was created")
        if isinstance(msg, UserNsReady):
            parent.map_user_ns()
            ch.send(Proceed())
        elif isinstance(msg, InitPid):
            try:
                parent.init_started(msg.pid or parent.stage1_pid)  # 0: the init forked here
                ch.send(parent.proceed())
            except (OSError, OcirtError):
                # the init may have gone on with its setup meanwhile (LateCgroup), and failed
                # and ended before its move: then its own message says what went wrong
                ch.raise_failure_queued()
                raise
            parent.init_going_on()
        elif isinstance(msg, HooksReady):
            ch.send(Proceed(state=parent.runtime_hooks()))
        elif isinstance(msg, SeccompFd):
            pass_seccomp_fd(ch, parent.seccomp, parent.state, parent.init_pid)
        elif isinstance(msg, Ready):
            return parent.init_pid


class HostEffects:
    """create's side effects that are not Kernel calls, done on the host. ocirt/plan.py lists them
    instead (PlanEffects)."""

    layout = None  # the host's cgroup layout, once cgroup() has read it
    window: Window | None = None

    def __init__(self, window: Window | None = None):
        self.window = window  # ocirt/attach_window.py: closed once stage 1 is in the cgroup

    def state_dir(self, root: str, container_id: str) -> StateDir:
        return StateDir(root, container_id)

    def cgroup_layout(self):
        """The host's cgroup layout (kept in `layout`)."""
        from . import cgroups

        self.layout = cgroups.detect()
        return self.layout

    def cgroup(self, opts: CreateOptions, linux: dict, config: dict, layout):
        """The container's cgroup, not made yet."""
        from . import cgroups

        return cgroups.manager_for(
            layout,
            linux.get("cgroupsPath"),
            opts.id,
            systemd=opts.systemd_cgroup,
            annotations=config.get("annotations"),
        )

    def resources(self, linux: dict):
        """linux.resources with the default device rules, parsed: before the cgroup is made.
        The first mkdir of it waits in the kernel until the attach window's first move is
        through its grace period (ocirt/attach_window.py: 4-16 ms here); when that is longer
        than create's work up to the mkdir, this parse and its module's import (~0.6 ms) are
        hidden in the wait, and otherwise they cost what they cost after it."""
        from .cgroups.resources import Resources

        return Resources.parse(resources_with_default_devices(linux))

    def apply(self, cg, resources, kernel: k.Kernel) -> None:
        cg.apply(resources, kernel)

    def attached(self) -> None:
        """Stage 1 was moved into the cgroup (or failed to be): the attach window may close."""
        if self.window is not None:
            self.window.close()

    def hear_out(self, ch: Channel) -> tuple[int, OcirtError | None]:
        """After a failure while stage 1 and the init go on on their own (LateCgroup): the
        children are told that no answer comes (so they end), and heard until they have closed
        the channel. The init's pid if stage 1 sent it (0 if not), and the error of the first
        Failed they sent, if any."""
        heard = ch.hear_out()
        pids = [m.pid for m in heard if isinstance(m, InitPid)]
        failed = [m.error() for m in heard if isinstance(m, Failed)]
        return (pids[0] if pids else 0), (failed[0] if failed else None)

    def alone(self) -> bool:
        """This process has no other thread (fork_into's condition); the attach window's, if
        open, is ended first (a process that makes its children in their cgroup needs none)."""
        from .attach_window import alone

        return alone(self.window)

    def connect_console(self, socket_path: str) -> int:
        from . import console

        return console.connect(socket_path)

    def channel(self, spec: stages.InitSpec) -> tuple[Channel, Channel]:
        return Channel.pair()

    def drive(self, ch: Channel, spec: stages.InitSpec, parent: Parent) -> int:
        # The child's copies of the tasks fds are its own: ours are closed before the children
        # set up, not held meanwhile (one fd per v1 hierarchy: with a caller's RLIMIT_NOFILE a
        # little above create's need, a prestart hook's pipes failed with EMFILE where a lower
        # limit, with no fd left for them to be opened at all, went through). (`ocirt plan`'s
        # drive plays the child, with them.)
        close_self_moves(parent.kernel, spec)
        return drive(ch, spec, parent)

    def netdev_moves(self):
        from . import netdev

        return netdev.Moves()

    def run_hooks(self, hooks: dict, name: str, hook_state: dict, cwd: str | None = None) -> None:
        from . import hooks as hooks_mod

        hooks_mod.run(hooks, name, hook_state, cwd=cwd)

    def poststop(self, state: ContainerState, warn) -> None:
        """A failed create's poststop hooks: each runs, a failure is a warning."""
        from . import hooks as hooks_mod

        hooks_mod.run_all(state.hooks, "poststop", state.oci(Status.STOPPED), warn)

    def kill_and_reap(self, pid: int) -> None:
        kill_and_reap(pid)

    def oom_kills(self, cg) -> int:
        """The OOM kills the memory controller counted in the container's cgroup (v1's
        memory.oom_control, v2's memory.events); 0 where it cannot tell. Asked when the init
        died before it was Ready."""
        where = [((getattr(cg, "paths", None) or {}).get("memory"), "memory.oom_control")]
        if getattr(cg, "kind", "") == "v2":
            where.append((cg.unified, "memory.events"))
        for directory, name in where:
            try:
                with open(f"{directory}/{name}", encoding="ascii") as f:
                    counts = dict(line.split(" ", 1) for line in f.read().splitlines() if " " in line)
                return int(counts.get("oom_kill", "0"))
            except (OSError, TypeError, ValueError):
                continue
        return 0


def _rootless_without_cgroup(opts: CreateOptions, linux: dict, cg, error: OcirtError):
    """A rootless create that may not make its cgroup goes on without one (runc does too), unless
    the config asks for limits, which need it."""
    import errno as _errno

    if not opts.rootless or error.errno not in (_errno.EACCES, _errno.EPERM, _errno.EROFS):
        raise error
    asked = sorted(
        k for k, v in (linux.get("resources") or {}).items() if k != "devices" and v not in (None, {}, [])
    )
    if asked:
        raise ConfigError(
            f"/linux/resources/{asked[0]}",
            f"a rootless container cannot get limits here: {error} (delegate a "
            "cgroup v2 subtree to this user, or run as root)",
        )
    try:
        cg.destroy()  # whatever part of the path it could make
    except OcirtError:
        pass
    from . import cgroups

    return cgroups.no_cgroup(cg.layout)  # state.json records no cgroup: `ps`, `pause` say so


def rfc3339() -> str:
    """Now, in UTC with nanoseconds (runc's `created`); integers only: no strftime, no float."""
    seconds, ns = divmod(time.time_ns(), 1_000_000_000)
    t = time.gmtime(seconds)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{ns:09d}Z"
