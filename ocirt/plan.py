"""`ocirt plan`: every kernel operation a bundle maps to, without performing any.

The code path is create's own: `create.steps` runs against a `PlanKernel` (a RecordingKernel) and
`PlanEffects` (create.HostEffects, listed instead of done): the state directory, the cgroup through
cgroups.Cgroup with a recording CgroupFS (and D-Bus), exec.fifo, the fork of stage 1. Where create
would wait for its children's messages, `PlanEffects.drive` plays their steps (stages.
enter_namespaces and stages.setup_init, with `PlanChildEffects` for the protocol, the loopback
ioctl, the pty, seccomp, the exec lookup), and what they would ask of the parent is asked of
create's own `Parent` (the id maps, the init's pid and the network devices, the runtime hooks).
Nothing on the host is changed; the config, the rootfs and the host's cgroup layout are only read.

What is not replayed: `seal` (PR_SET_DUMPABLE and closing inherited fds, listed as one prctl),
the stage-1 skeleton around the calls (its fork of the init is listed), and the wait on exec.fifo
(listed as the init's write to it).
"""

from __future__ import annotations

import os
import posixpath
import stat

from . import config as config_mod
from . import create as create_mod
from . import kernel as k
from . import stages
from .checks import CreateOptions
from .errors import OcirtError
from .kernel.fake import Call, RecordingKernel
from .record import field, record

STAGE1_PID = "<stage1-pid>"
INIT_PID = "<init-pid>"


@record
class Step:
    stage: str
    call: Call


@record
class Plan:
    steps: list = field(default_factory=list)
    notes: list = field(default_factory=list)


class PlanKernel(RecordingKernel):
    """RecordingKernel that knows which paths exist under the rootfs (read on the host, plus what
    the plan made), so `Rootfs.ensure` records the mkdirs the real init would do."""

    def __init__(self, rootfs: str):
        super().__init__()
        self.rootfs = rootfs.rstrip("/")
        self.made: set[str] = set()
        self.made_dirs: set[str] = set()  # of them, the directories
        self.stages: list[tuple[int, str]] = []  # (index of the first call, stage name)
        self.fork_pid = self.parent_fork = STAGE1_PID  # the runtime's own fork makes this one

    def stage(self, name: str) -> None:
        """The calls from here on belong to stage `name` (unless it is the current one)."""
        if not self.stages or self.stages[-1][1] != name:
            self.stages.append((len(self.calls), name))

    def fork(self):
        pid = super().fork()
        if pid == self.parent_fork:  # its child moved into the cgroup, or (moved_in) the cgroup made now
            self.stage("create (runtime): cgroup")
        return pid

    def mkfifo(self, path, mode):
        self.stage("create (runtime): exec.fifo")
        super().mkfifo(path, mode)

    def new_userns(self, uid_map, gid_map):
        self.stage("create (runtime): idmapped mounts")
        return super().new_userns(uid_map, gid_map)

    def open_tree(self, path, flags):
        self.stage("create (runtime): idmapped mounts")
        return super().open_tree(path, flags)

    def stat_mode(self, path):
        if path in self.made_dirs:
            return stat.S_IFDIR | 0o755
        return super().stat_mode(path)

    def _exists(self, full: str) -> bool:
        return full in self.made or not full.startswith(self.rootfs + "/") or os.path.lexists(full)

    def open_in_root(self, root_fd, path, flags, mode=0):
        fd = super().open_in_root(root_fd, path, flags, mode)
        if not self._exists(self.fd_path(fd)):
            self.calls.pop()
            self.close(fd)
            raise FileNotFoundError(2, "No such file or directory", path)
        return fd

    def open(self, path, flags, mode=0o777, dir_fd=None):
        fd = super().open(path, flags, mode, dir_fd)
        if flags & os.O_CREAT:
            self.made.add(self.fd_path(fd))
        return fd

    def mkdir(self, path, mode=0o755, dir_fd=None):
        super().mkdir(path, mode, dir_fd)
        self.made.add(self._resolve(path, dir_fd))
        self.made_dirs.add(self._resolve(path, dir_fd))

    def mount(self, source, target, fstype, flags, data):
        """A bind of a missing source fails as the real one does (ENOENT: make_readonly skips a
        path the container's /proc or /sys lacks). After pivot_root, a path of the container's
        kernel filesystems is looked up on the host's: the same kernel."""
        if (
            flags & k.MS_BIND
            and not flags & k.MS_REMOUNT
            and source
            and source.startswith("/")
            and source not in self.made
            and not os.path.lexists(source)
        ):
            raise FileNotFoundError(2, "No such file or directory", source)
        super().mount(source, target, fstype, flags, data)

    def mknod(self, path, mode, device, dir_fd=None):
        super().mknod(path, mode, device, dir_fd)
        self.made.add(self._resolve(path, dir_fd))

    def symlink(self, target, path, dir_fd=None):
        super().symlink(target, path, dir_fd)
        self.made.add(self._resolve(path, dir_fd))

    def note(self, name: str, *args) -> None:
        """A step that is not a Kernel call (an ioctl, a hook, a message), listed in order."""
        self.calls.append(Call(name, args))


class RecordingSystemdBus:
    """The systemd driver's D-Bus seam (cgroups/systemd.py SystemdBus), recording the manager
    calls; properties are listed as name=value."""

    def __init__(self, kernel: PlanKernel):
        self.k = kernel

    @staticmethod
    def _props(properties) -> dict:
        return {name: v.value for name, v in properties}

    def close(self) -> None:
        pass

    def version(self) -> int:
        return 0

    def start_unit(self, unit: str, properties) -> None:
        self.k.note("dbus_StartTransientUnit", unit, "replace", self._props(properties))

    def stop_unit(self, unit: str) -> None:
        self.k.note("dbus_StopUnit", unit, "replace")

    def set_properties(self, unit: str, properties) -> None:
        self.k.note("dbus_SetUnitProperties", unit, True, self._props(properties))


class RecordingCgroupFS:
    """The cgroups package's file seam (cgroups/fs.py), recording mkdir and writes into the plan
    kernel's list. A file read is what the plan wrote to it, else what a new cgroup has (empty
    cpuset.cpus/mems and cgroup.subtree_control), else the host's (the nearest existing parent's,
    for a directory not made yet)."""

    NEW_EMPTY = ("cpuset.cpus", "cpuset.mems", "cgroup.subtree_control")

    def __init__(self, kernel: PlanKernel):
        self.k = kernel
        self.made: set[str] = set()
        self.written: dict[str, str] = {}

    def read(self, path: str) -> str:
        d, name = os.path.split(path)
        if path in self.written:
            return self.written[path]
        if d in self.made and name in self.NEW_EMPTY:
            return ""
        while d and d != "/":
            try:
                with open(os.path.join(d, name)) as f:
                    return f.read()
            except OSError:
                d = os.path.dirname(d)
        return ""

    def write(self, path: str, value: str) -> None:
        self.k.note("write_file", path, value)
        if os.path.basename(path) == "cgroup.subtree_control":  # "+cpu -io": a set changed
            have = set(self.read(path).split())
            for word in value.split():
                (have.add if word[0] == "+" else have.discard)(word[1:])
            value = " ".join(sorted(have))
        self.written[path] = value

    def exists(self, path: str) -> bool:
        return True

    def isdir(self, path: str) -> bool:
        """A directory the plan made, or the host has (create's "already there, with processes"
        warning counts only those)."""
        return path in self.made or os.path.isdir(path)

    def mkdir(self, path: str) -> bool:
        if os.path.isdir(path):
            return False
        self.k.note("mkdir", path, 0o755)
        self.made.add(path)
        self.k.made.add(path)  # a bind source of the init's cgroup mount (v1)
        return True

    def rmdir(self, path: str) -> None:
        self.k.note("rmdir", path)

    def subdirs(self, path: str) -> list:
        return []

    def sleep(self, seconds: float) -> None:
        pass

    def kill(self, pid: int, sig: int) -> None:
        self.k.note("kill", pid, sig)


class PlanChildEffects(stages.InitEffects):
    """stages.InitEffects, listed instead of done. What the children would ask the parent for
    (the user namespace's maps, the runtime hooks) is asked of create's own `Parent` directly."""

    def __init__(self, kernel: PlanKernel, parent, host: PlanEffects, rootfs: str, notes: list):
        super().__init__(None)
        self.k, self.parent, self.host, self.rootfs, self.notes = kernel, parent, host, rootfs, notes

    def map_user_ns(self) -> None:  # the parent writes the maps (namespaces.write_id_maps)
        self.parent.map_user_ns()

    def wait_moved(self, what: str = "") -> None:  # played in order: the parent moved it already
        self.k.note("wait", "until the runtime has moved the init into its cgroup")

    def wait_made(self) -> None:  # (the binds are in the spec the parent shares)
        self.k.note("wait", "until the runtime has made the cgroup")

    def loopback_up(self) -> None:
        self.k.note("ioctl", "lo", "SIOCSIFFLAGS", "IFF_UP")

    def runtime_hooks(self, spec) -> dict:
        hook_state = self.parent.runtime_hooks() if spec.runtime_hooks else {}
        self.host.run_hooks(spec.hooks, "createContainer", hook_state)
        return hook_state

    def console(self, spec, kernel=None) -> None:
        where = "/dev/console" if kernel is not None else None  # (bound onto it, then)
        self.k.note("console_setup", "/dev/pts/ptmx", "--console-socket", spec.console_size, where)

    def own_session(self) -> None:
        self.k.note("setsid")  # and stdio that is the host's /dev/null reopened inside

    def seccomp(self, seccomp) -> None:
        self.k.note(
            "seccomp_load", f"default_action={seccomp.default_action:#x}", "notify" if seccomp.notify else ""
        )

    def lookup(self, executable: str, env: dict) -> str:
        found = lookup_in_rootfs(self.rootfs, executable, env)
        if found is None:
            self.notes.append(
                f"process.args[0] {executable!r} was not found in the rootfs: the init would fail there"
            )
            return executable
        return found

    def inherit(self, fd: int) -> None:
        self.k.note("set_inheritable", fd)


class PlanStateDir:
    """state.StateDir, listed: nothing is made under --root. With `notify` (NOTIFY_SOCKET),
    sdnotify.NotifyStateDir's: the notify dir the container's mount binds is made too."""

    def __init__(self, kernel: PlanKernel, root: str, container_id: str, notify: bool = False):
        self.k = kernel
        self.path = os.path.join(root, container_id)
        self.state_file = os.path.join(self.path, "state.json")
        self.fifo = os.path.join(self.path, "exec.fifo")
        self.notify = notify

    def make_and_lock(self) -> None:
        self.k.note("mkdir", self.path, 0o711)
        self.k.note("flock", self.path, "LOCK_EX")
        if self.notify:
            from .sdnotify import notify_dir

            path = notify_dir(self.path)
            self.k.note("mkdir", path, 0o755)
            self.k.made.add(path)
            self.k.made_dirs.add(path)

    def save(self, state, aside: bool = False) -> None:
        self.k.note("write_file", self.state_file, f"<state.json: pid {state.pid or 0}>")

    def remove(self) -> None:
        pass

    def unlock(self) -> None:
        pass


class PlanMoves:
    """netdev.Moves, listed."""

    def __init__(self, kernel: PlanKernel):
        self.k = kernel

    def move(self, devices: dict, pid) -> None:
        self.k.stage("create (runtime): network devices")
        for host_name, name in devices.items():
            self.k.note("netdev_move", host_name, f"/proc/{pid}/ns/net", name)

    def undo(self) -> None:
        pass

    def close(self) -> None:
        pass


class PlanChannel:
    """No channel: the children's steps are played in `PlanEffects.drive`."""

    def send(self, msg, fds=()) -> None:
        pass  # (the parent's word to the init that its cgroup exists: played in order)

    def close(self) -> None:
        pass


class PlanEffects(create_mod.HostEffects):
    """create.HostEffects, listed instead of done; `drive` plays the children's steps."""

    def __init__(self, kernel: PlanKernel, notes: list, notify: bool = False):
        self.k, self.notes = kernel, notes
        self.notify = notify  # NOTIFY_SOCKET: the state dir holds the notify dir
        self.exec_path = ""
        self.env: dict = {}
        self.hook_state: dict = {}

    def state_dir(self, root: str, container_id: str) -> PlanStateDir:  # type: ignore[override]
        self.k.stage("create (runtime): state")
        return PlanStateDir(self.k, root, container_id, self.notify)

    def cgroup_layout(self):
        from . import cgroups

        try:
            self.layout = cgroups.detect()
        except OcirtError as e:
            self.layout = cgroups.Layout("v2", unified="/sys/fs/cgroup")
            self.notes.append(f"no cgroup layout on this host ({e}); assumed cgroup v2 at /sys/fs/cgroup")
        return self.layout

    def cgroup(self, opts, linux: dict, config: dict, layout):
        from . import cgroups

        self.k.stage("create (runtime): cgroup")
        kern = self.k
        return cgroups.manager_for(
            layout,
            linux.get("cgroupsPath"),
            opts.id,
            systemd=opts.systemd_cgroup,
            fs=RecordingCgroupFS(kern),
            annotations=config.get("annotations"),
            bus=(lambda: RecordingSystemdBus(kern)) if opts.systemd_cgroup else None,
        )

    def resources(self, linux: dict) -> dict:
        """Left a dict: the manager parses it in apply(), and a cgroup_apply note lists it."""
        from .mapping import resources_with_default_devices

        return resources_with_default_devices(linux)

    def apply(self, cg, resources: dict, kernel) -> None:
        try:
            cg.apply(resources, kernel)
        except OSError as e:
            self.k.note("cgroup_apply", cg.unified or cg.paths, resources)
            self.notes.append(
                f"the cgroup writes could not be listed ({e}): the resources to "
                "apply are listed as one cgroup_apply"
            )

    def connect_console(self, socket_path: str) -> int:
        return -1  # create connects to --console-socket here; nothing to connect to

    def alone(self) -> bool:
        return True  # as `ocirt create` is, once its attach window is ended

    def channel(self, spec):
        if spec.one_fork:  # the runtime's fork makes the init itself (stages.one_fork)
            self.k.stage("create (runtime): the init")
            self.k.fork_pid = self.k.parent_fork = INIT_PID
        else:
            self.k.stage("create (runtime): stage 1")
        return PlanChannel(), PlanChannel()

    def drive(self, ch, spec, parent):
        kern = self.k
        fx = PlanChildEffects(kern, parent, self, spec.rootfs.rootfs, self.notes)
        kern.stage("init: namespaces" if spec.one_fork else "stage 1: namespaces")
        stages.join_cgroup(kern, spec.self_moves)  # into the v1 hierarchies by itself, first
        kern.prctl(k.PR_SET_DUMPABLE, 0)  # stages.seal (its fd closing is not replayed)
        # (namespaces_before_cgroup runs while the parent attaches stage 1 to the cgroup; with
        # spec.moved_in stage 1 goes on at once, and the init makes the cgroup namespace)
        early = 0 if spec.moved_in else stages.namespaces_before_cgroup(kern, spec)
        stages.enter_namespaces(kern, spec, fx, done=early)
        if not spec.one_fork:
            kern.fork_pid = INIT_PID
            kern.fork()
        # stage 1 reports it, then exits; or the init says it has entered its namespaces
        kern.stage("create (runtime): the init's pid")
        parent.init_started(INIT_PID)
        parent.init_going_on()
        kern.stage("init: setup")
        self.exec_path, self.env, self.hook_state = stages.setup_init(kern, spec, fx)
        kern.stage("create (runtime): state")
        return INIT_PID

    def hear_out(self, ch) -> tuple[int, None]:
        return 0, None  # no children: a plan that fails raises where create would

    def netdev_moves(self) -> PlanMoves:
        return PlanMoves(self.k)

    def run_hooks(self, hooks: dict, name: str, hook_state: dict, cwd: str | None = None) -> None:
        for h in hooks.get(name) or []:
            self.k.note("hook", name, h.get("path"), list(h.get("args") or []))

    def poststop(self, state, warn) -> None:
        pass  # only a create that fails runs them: a plan that fails raises instead

    def kill_and_reap(self, pid) -> None:
        self.k.note("kill_and_reap", pid)


def lookup_in_rootfs(rootfs: str, executable: str, env: dict) -> str | None:
    """process.lookup, resolved under `rootfs` on the host (symlinks kept inside it)."""
    if "/" in executable:
        candidates = [executable]
    else:
        candidates = [posixpath.join(d or ".", executable) for d in env.get("PATH", "").split(":")]
    for path in candidates:
        host = _in_root(rootfs, path)
        if host is None:
            continue
        try:
            st = os.stat(host)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) and st.st_mode & 0o111:
            return path
    return None


def _in_root(rootfs: str, path: str, hops: int = 0) -> str | None:
    """The host path of `path` inside rootfs, following symlinks as RESOLVE_IN_ROOT does."""
    parts = [p for p in posixpath.normpath("/" + path).split("/") if p]
    cur = "/"
    for i, part in enumerate(parts):
        nxt = posixpath.normpath(posixpath.join(cur, part))
        host = os.path.join(rootfs, nxt.lstrip("/"))
        if os.path.islink(host):
            if hops > 40:
                return None
            target = os.readlink(host)
            base = "/" if target.startswith("/") else cur
            rest = "/".join(parts[i + 1 :])
            return _in_root(rootfs, posixpath.join(base, target, rest), hops + 1)
        cur = nxt
    return os.path.join(rootfs, cur.lstrip("/"))


def build(opts: CreateOptions) -> Plan:
    """What `ocirt create` with `opts` would do, step by step: create's own steps
    (create.steps), against a PlanKernel and PlanEffects."""
    out = Plan()
    bundle = os.path.abspath(opts.bundle)
    config = config_mod.load(bundle)
    kern = PlanKernel(config_mod.rootfs_path(bundle, config))
    fx = PlanEffects(kern, out.notes, notify=bool(opts.notify_socket))
    _, state = create_mod.steps(opts, kern, fx)
    # `ocirt start`: the init's open of exec.fifo returns, then it execs
    kern.stage("init: start")
    kern.note("write_file", "/proc/self/fd/<exec.fifo>", "0")  # blocks until `ocirt start`
    fx.run_hooks(config.get("hooks") or {}, "startContainer", fx.hook_state)
    args = (config.get("process") or {}).get("args") or []
    if fx.exec_path is not None:  # None: no `process`, start fails
        kern.execve(fx.exec_path, args, fx.env)

    bounds = kern.stages + [(len(kern.calls), "")]
    for (start, name), (end, _) in zip(bounds, bounds[1:]):
        out.steps.extend(Step(name, c) for c in kern.calls[start:end])
    return out


# -- rendering ---------------------------------------------------------------------------------


def _table(prefix: str, module=k) -> list[tuple[str, int]]:
    return [(n, v) for n, v in vars(module).items() if n.startswith(prefix) and isinstance(v, int)]


MS_FLAGS = [(n, v) for n, v in _table("MS_")]
CLONE_FLAGS = _table("CLONE_NEW")
MOUNT_ATTRS = [(n, v) for n, v in _table("MOUNT_ATTR_") if v and n != "MOUNT_ATTR__ATIME"]
OPEN_TREE_FLAGS = [(n, getattr(k, n)) for n in ("OPEN_TREE_CLONE", "OPEN_TREE_CLOEXEC", "AT_RECURSIVE")]
O_FLAGS = [
    (n, getattr(os, n))
    for n in (
        "O_WRONLY",
        "O_RDWR",
        "O_CREAT",
        "O_EXCL",
        "O_NOCTTY",
        "O_TRUNC",
        "O_APPEND",
        "O_NONBLOCK",
        "O_DIRECTORY",
        "O_NOFOLLOW",
        "O_CLOEXEC",
        "O_PATH",
    )
    if hasattr(os, n)
]
PRCTL = {
    v: n
    for n, v in _table("PR_")
    if n
    in (
        "PR_SET_PDEATHSIG",
        "PR_GET_DUMPABLE",
        "PR_SET_DUMPABLE",
        "PR_SET_KEEPCAPS",
        "PR_CAPBSET_READ",
        "PR_CAPBSET_DROP",
        "PR_SET_NO_NEW_PRIVS",
        "PR_SET_CHILD_SUBREAPER",
        "PR_CAP_AMBIENT",
    )
}
AMBIENT = {
    k.PR_CAP_AMBIENT_RAISE: "PR_CAP_AMBIENT_RAISE",
    k.PR_CAP_AMBIENT_CLEAR_ALL: "PR_CAP_AMBIENT_CLEAR_ALL",
}


def decode(value: int, table) -> str:
    """Flag names joined with |, what is left in hex; "0" for none."""
    names, left = [], value
    for name, bit in table:
        if bit and value & bit == bit and left & bit:
            names.append(name)
            left &= ~bit
    if left:
        names.append(hex(left))
    return "|".join(names) or "0"


def _rlimit_name(num: int) -> str:
    from .process import RLIMIT_NAMES, rlimit_number

    return next((n for n in sorted(RLIMIT_NAMES) if rlimit_number(n, 0) == num), str(num))


def _cap_name(num: int) -> str:
    from . import capabilities

    names = {v: n for n, v in getattr(capabilities, "NUMBERS", {}).items()}
    return names.get(num, str(num))


class _Raw(str):
    """An argument already rendered (a flag expression): printed without quotes."""

    def __repr__(self) -> str:
        return str(self)


def decoded_args(call: Call) -> tuple:
    a = list(call.args)
    n = call.name
    if n == "mount":
        a[3] = _Raw(decode(a[3], MS_FLAGS))
    elif n == "umount":
        a[1] = _Raw("MNT_DETACH" if a[1] == k.MNT_DETACH else str(a[1]))
    elif n == "unshare":
        a[0] = _Raw(decode(a[0], CLONE_FLAGS))
    elif n == "setns":
        a[1] = _Raw(decode(a[1], CLONE_FLAGS))
    elif n in ("open", "open_in_root"):
        a[1] = _Raw(decode(a[1], O_FLAGS) if a[1] else "O_RDONLY")
    elif n in ("mkdir", "chmod", "mkfifo") and len(a) > 1:
        a[1] = _Raw(f"0o{a[1]:03o}")
    elif n == "umask":
        a[0] = _Raw(f"0o{a[0]:03o}")
    elif n == "mknod":
        kind = {stat.S_IFCHR: "S_IFCHR", stat.S_IFBLK: "S_IFBLK", stat.S_IFIFO: "S_IFIFO"}
        a[1] = _Raw(f"{kind.get(stat.S_IFMT(a[1]), hex(stat.S_IFMT(a[1])))}|{oct(a[1] & 0o7777)}")
    elif n == "open_tree":
        a[1] = _Raw(decode(a[1], OPEN_TREE_FLAGS))
    elif n == "mount_setattr":
        a[1] = _Raw(decode(a[1], MOUNT_ATTRS))
        a[2] = _Raw("MOUNT_ATTR__ATIME" if a[2] == k.MOUNT_ATTR__ATIME else decode(a[2], MOUNT_ATTRS))
        a[3] = _Raw(decode(a[3], MS_FLAGS))
    elif n == "prctl":
        opt = a[0]
        a[0] = _Raw(PRCTL.get(opt, str(opt)))
        if opt == k.PR_CAP_AMBIENT:
            a[1] = _Raw(AMBIENT.get(a[1], str(a[1])))
            if a[1] == "PR_CAP_AMBIENT_RAISE":
                a[2] = _Raw(_cap_name(a[2]))
        elif opt == k.PR_CAPBSET_DROP:
            a[1] = _Raw(_cap_name(a[1]))
        while len(a) > 2 and a[-1] == 0:  # the unused trailing arguments
            a.pop()
    elif n == "capset":
        a = [_Raw(f"{x:#x}") for x in a]
    elif n == "setrlimit":
        a[0] = _Raw(_rlimit_name(a[0]))
    elif n == "bpf":
        a = [a[0], _Raw(f"<attr {len(a[1])} bytes>")]
    elif n in ("sched_setattr", "ioprio_set", "personality", "set_mempolicy"):
        a = _decode_procattr(n, a)
    return tuple(a)


def _decode_procattr(n: str, a: list) -> list:
    from . import procattr as pa

    def name(table: dict, value: int) -> str:
        return next((key for key, v in table.items() if v == value), str(value))

    if n == "sched_setattr":
        a[1] = _Raw(name(pa.SCHED_POLICIES, a[1]))
        a[2] = _Raw(decode(a[2], list(pa.SCHED_FLAGS.items())))
    elif n == "ioprio_set":
        a[0] = _Raw("IOPRIO_WHO_PROCESS" if a[0] == k.IOPRIO_WHO_PROCESS else str(a[0]))
        cls, level = a[2] >> pa.IOPRIO_CLASS_SHIFT, a[2] & ((1 << pa.IOPRIO_CLASS_SHIFT) - 1)
        a[2] = _Raw(f"IOPRIO_PRIO_VALUE({name(pa.IOPRIO_CLASSES, cls)}, {level})")
    elif n == "personality":
        a[0] = _Raw(f"PER_{name(pa.PERSONALITY_DOMAINS, a[0])}")
    elif n == "set_mempolicy":
        flags = a[0] & sum(pa.MPOL_FLAGS.values())
        mode = name(pa.MPOL_MODES, a[0] & ~flags)
        a[0] = _Raw(f"{mode}|{decode(flags, list(pa.MPOL_FLAGS.items()))}" if flags else mode)
    return a


def op_text(call: Call) -> str:
    return f"{call.name}({', '.join(repr(x) for x in decoded_args(call))})"


def cause_text(causes: list, describe=None) -> str:
    """'/mounts/1 (tmpfs on /dev)', 'runtime', ...: an operation's causes, for people."""
    if not causes:
        return "(no rule)"
    out = []
    for c in causes:
        what = describe(c) if describe and c != "runtime" else ""
        out.append(f"{c} ({what})" if what else c)
    return ", ".join(out)


def render_text(p: Plan, causes: list | None = None, describe=None) -> str:
    """The operations, grouped by stage (`# stage`); with `causes` (ocirt/explain.py, one list
    per step), each run of operations with the same causes under a `## cause` line."""
    lines, cur, cur_causes = [], None, None
    for i, step in enumerate(p.steps):
        if step.stage != cur:
            cur, cur_causes = step.stage, None
            lines.append(f"# {cur}")
        if causes is not None and causes[i] != cur_causes:
            cur_causes = causes[i]
            lines.append(f"## {cause_text(cur_causes, describe)}")
        lines.append(op_text(step.call))
    lines += [f"# note: {n}" for n in p.notes]
    return "\n".join(lines) + "\n"


def _jsonable(v):
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(key): _jsonable(x) for key, x in v.items()}
    return v


def render_json(p: Plan, causes: list | None = None) -> list:
    """[{"stage", "op", "args", "text"}] per operation; with `causes`, also "causes": the JSON
    pointers of the config fields it comes from, or ["runtime"]."""
    out = [
        {"stage": s.stage, "op": s.call.name, "args": _jsonable(list(s.call.args)), "text": op_text(s.call)}
        for s in p.steps
    ]
    if causes is not None:
        for item, c in zip(out, causes):
            item["causes"] = list(c)
    return out


def select(p: Plan, causes: list, field: str) -> tuple[Plan, list]:
    """Only the operations that come from `field` (explain.matches)."""
    from .explain import matches

    keep = [i for i, c in enumerate(causes) if matches(c, field)]
    return Plan(steps=[p.steps[i] for i in keep], notes=list(p.notes)), [causes[i] for i in keep]


def _normalize(text: str, subst: list) -> str:
    for old, new in subst:
        text = text.replace(old, new)
    return text


def diff(
    a: Plan, a_causes: list, a_subst: list, b: Plan, b_causes: list, b_subst: list, context: int = 2
) -> list:
    """The two plans' operations compared by stage and text, with what is specific to each bundle
    (`*_subst`: (text, placeholder), e.g. its rootfs path -> '<rootfs>') replaced. Hunks of
    [(change, stage, text, causes)], change one of ' ', '-', '+'."""
    import difflib

    ka = [(s.stage, _normalize(op_text(s.call), a_subst)) for s in a.steps]
    kb = [(s.stage, _normalize(op_text(s.call), b_subst)) for s in b.steps]
    hunks = []
    matcher = difflib.SequenceMatcher(None, ka, kb, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        hunk = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                hunk += [(" ", *ka[i], a_causes[i]) for i in range(i1, i2)]
                continue
            hunk += [("-", *ka[i], a_causes[i]) for i in range(i1, i2)]
            hunk += [("+", *kb[j], b_causes[j]) for j in range(j1, j2)]
        hunks.append(hunk)
    return hunks


def render_diff_text(hunks: list, a_name: str, b_name: str, describe_a=None, describe_b=None) -> str:
    """A unified-style diff: `@@ stage @@` at each hunk (`# stage` where it changes within one),
    each changed operation with its causes in its own bundle."""
    if not hunks:
        return f"# the plans of {a_name} and {b_name} make the same operations\n"
    lines = [f"--- {a_name}", f"+++ {b_name}"]
    for hunk in hunks:
        stage = None
        for change, st, text, causes in hunk:
            if st != stage:
                lines.append(f"# {st}" if stage else f"@@ {st} @@")
                stage = st
            if change == " ":
                lines.append(f" {text}")
            else:
                describe = describe_a if change == "-" else describe_b
                lines.append(f"{change}{text}    # {cause_text(causes, describe)}")
    return "\n".join(lines) + "\n"


def render_diff_json(hunks: list) -> list:
    """The changed operations: [{"change": "-"|"+", "stage", "text", "causes"}], in order."""
    return [
        {"change": change, "stage": st, "text": text, "causes": list(causes)}
        for hunk in hunks
        for change, st, text, causes in hunk
        if change != " "
    ]
