"""Making processes inside containers: `create` (a new container) and `exec` (a process in one).

Both fork a stage-1 child that enters the namespaces and forks the process proper (ocirt/stages.py
is what the children run); the parent drives them through the protocol of ocirt/protocol.py. A
failed create undoes what it did, in reverse order, and leaves nothing behind.
"""
from __future__ import annotations

import os
import time

from . import config as config_mod
from . import hooks as hooks_mod
from . import kernel as k
from . import lsm, namespaces, process
from .container import Container, _kill_and_reap, check_id
from .errors import ConfigError, OcirtError
from .protocol import (
    Channel,
    HooksReady,
    InitPid,
    Proceed,
    Ready,
    SeccompFd,
    UserNsReady,
)
from .record import field, record
from .rootfs import RootfsSpec, needs_idmap
from .stages import ExecPlan, InitPlan, exec_stage1, stage1
from .state import ContainerState, StateDir, Status, proc_start_time


@record
class CreateOptions:
    id: str
    bundle: str = "."
    root: str = "/run/ocirt"
    pid_file: str | None = None
    console_socket: str | None = None
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    systemd_cgroup: bool = False
    rootless: bool = False             # --rootless: cgroups are used only where permitted
    subreaper: bool = False            # `run`: the init is re-parented to us, so we can wait for it
    warn: object = print               # runtime.md warnings go to the log

@record
class _Undo:
    steps: list = field(default_factory=list)

    def push(self, fn, *args) -> None:
        self.steps.append((fn, args))

    def run(self) -> None:
        while self.steps:
            fn, args = self.steps.pop()
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - undo what we can
                pass

def create(opts: CreateOptions, kernel: k.Kernel) -> tuple[StateDir, ContainerState]:
    check_id(opts.id)
    bundle = os.path.abspath(opts.bundle)
    config = config_mod.load(bundle)
    checked = check_config(config, bundle, opts)
    linux, proc_cfg, rootfs = checked.linux, checked.proc_cfg, checked.rootfs
    seccomp_filter = checked.seccomp

    sd = StateDir(opts.root, opts.id)
    sd.make_and_lock()
    undo = _Undo()
    undo.push(sd.remove)
    try:
        from . import cgroups
        layout = cgroups.detect()
        cg = cgroups.Cgroup.for_container(layout, linux.get("cgroupsPath"), opts.id,
                                          systemd=opts.systemd_cgroup,
                                          annotations=config.get("annotations"))
        state = ContainerState(id=opts.id, bundle=bundle, rootfs=rootfs, created=_rfc3339(),
                               annotations=config.get("annotations") or {},
                               hooks={n: v for n, v in (config.get("hooks") or {}).items()
                                      if n in ("poststart", "poststop")},
                               systemd_cgroup=opts.systemd_cgroup, seccomp=linux.get("seccomp"),
                               memory_policy=linux.get("memoryPolicy"))
        # Saved before anything is made (status "creating", no pid), and again once the cgroup
        # exists: if this process is killed anywhere from here on, `delete --force` finds what
        # to remove (here: the container's own cgroup directories, which create() is about to make).
        state.cgroup = {**cg.to_dict(), "created": [d for d in cg.dirs() if not os.path.isdir(d)]}
        sd.save(state)
        try:
            cg.create()
        except OcirtError as e:
            cg = _rootless_without_cgroup(opts, linux, cg, e)     # or raises
        if cg is not None:
            undo.push(cg.destroy)
        state.cgroup = cg.to_dict() if cg is not None else {}
        sd.save(state)
        if cg is not None:
            cg.apply(resources_with_default_devices(linux), kernel)
        os.mkfifo(sd.fifo, 0o622)
        os.chmod(sd.fifo, 0o622)  # mkfifo's mode is masked by the umask; a non-root init writes it
        fifo_fd = os.open(sd.fifo, os.O_PATH | os.O_CLOEXEC)
        undo.push(os.close, fifo_fd)

        plan = make_plan(config, bundle, opts, checked, layout, cg, fifo_fd)
        cfg_hooks = plan.hooks
        if proc_cfg.get("terminal"):
            from . import console
            plan.console_fd = console.connect(opts.console_socket)
            undo.push(os.close, plan.console_fd)
            plan.console_size = proc_cfg.get("consoleSize")
        if checked.idmaps:  # detached idmapped trees, made here (ocirt/idmap.py says why)
            from . import idmap
            plan.rootfs.idmap_fds = idmap.prepare(kernel, checked.idmaps, plan.rootfs.mounts,
                                                  plan.rootfs.propagation)
            for fd in plan.rootfs.idmap_fds.values():
                undo.push(os.close, fd)

        parent_ch, child_ch = Channel.pair()
        if opts.subreaper:
            kernel.prctl(k.PR_SET_CHILD_SUBREAPER, 1)
        stage1_pid = os.fork()
        if stage1_pid == 0:
            try:        # a forked child never returns into the runtime's code
                parent_ch.close()
                stage1(kernel, plan, child_ch)  # never returns
            finally:
                os._exit(1)
        child_ch.close()
        init_pid = 0
        try:
            if cg is not None:
                cg.add_pid(stage1_pid)
            parent_ch.send(Proceed())
            init_pid = _drive_children(parent_ch, stage1_pid, linux, state, cfg_hooks,
                                       seccomp_filter, checked.net_devices)
        except BaseException:
            if init_pid:
                undo.push(_kill_and_reap, init_pid)
            _kill_and_reap(stage1_pid)
            raise
        finally:
            parent_ch.close()
        undo.push(_kill_and_reap, init_pid)
        state.pid = init_pid
        state.pid_start = proc_start_time(init_pid) or 0
        state.cgroup = cg.to_dict() if cg is not None else {}  # again: with what apply() set
        sd.save(state)
        if opts.pid_file:
            _write_pid_file(opts.pid_file, init_pid)
        undo.steps.clear()
        os.close(fifo_fd)
        if plan.console_fd is not None:
            os.close(plan.console_fd)
        for fd in plan.rootfs.idmap_fds.values():
            os.close(fd)
        return sd, state
    except BaseException:
        undo.run()
        sd.unlock()
        raise


@record
class Checked:
    """What validating config.json decided, before anything is made (check_config)."""
    linux: dict
    ns: namespaces.NamespacePlan
    proc_cfg: dict
    proc: process.ProcessSpec
    rootfs: str
    last_cap: int = 40
    seccomp: object | None = None    # a compiled ocirt.seccomp.Filter
    net_devices: dict | None = None  # linux.netDevices checked: {host name: name inside}
    personality: int | None = None   # linux.personality, parsed (ocirt.procattr)
    mempolicy: tuple | None = None   # linux.memoryPolicy: (mode | flags, nodes)
    idmaps: list = field(default_factory=list)  # idmapped mounts (ocirt.idmap.IdmapMount)


def check_config(config: dict, bundle: str, opts: CreateOptions) -> Checked:
    """The checks `create` makes before touching anything (shared with `ocirt plan`)."""
    linux = config.get("linux") or {}
    ns = namespaces.plan(config)
    proc_cfg = config.get("process")
    if not proc_cfg:
        raise ConfigError("/process", "is required to create a container")
    if proc_cfg.get("terminal") and not opts.console_socket:
        raise OcirtError("cannot allocate tty if runc will detach without setting console socket")
    if not ns.has("mount"):
        raise ConfigError("/linux/namespaces", "a mount namespace is required")
    if config.get("hostname") and not ns.has("uts"):
        raise ConfigError("/hostname", "unable to set hostname without a private UTS namespace")
    rootfs = config_mod.rootfs_path(bundle, config)
    if not os.path.isdir(rootfs):
        raise ConfigError("/root/path", f"rootfs {rootfs} is not a directory")
    proc = process.ProcessSpec.from_config(proc_cfg, opts.preserve_fds)
    proc.check()
    lsm.check(config)
    namespaces.check_sysctl(linux.get("sysctl") or {}, ns)
    from . import capabilities
    last_cap = capabilities.last_cap()
    for warning in capabilities.unknown(proc.capabilities):
        opts.warn(warning)
    seccomp_filter = None
    if linux.get("seccomp"):
        from . import seccomp
        seccomp_filter = seccomp.compile(linux["seccomp"])
    net_devices = None
    if linux.get("netDevices") is not None:
        from . import netdev
        net_devices = netdev.check(linux["netDevices"], ns.has("network"))
    if linux.get("intelRdt") is not None:
        check_intel_rdt()
    personality = mempolicy = None
    if linux.get("personality") is not None or linux.get("memoryPolicy") is not None:
        from . import procattr
        personality, mempolicy = procattr.parse_linux(linux)
    idmaps = []
    if any(isinstance(m, dict) and needs_idmap(m) for m in config.get("mounts") or ()):
        from . import idmap
        idmaps = idmap.check(config, ns)
    return Checked(linux=linux, ns=ns, proc_cfg=proc_cfg, proc=proc, rootfs=rootfs,
                   last_cap=last_cap, seccomp=seccomp_filter, net_devices=net_devices,
                   personality=personality, mempolicy=mempolicy, idmaps=idmaps)


def check_intel_rdt(mountinfo: str = "/proc/self/mountinfo") -> None:
    """linux.intelRdt: config-linux.md says the runtime MUST generate an error when no resctrl
    filesystem is mounted in the runtime namespace. ocirt does not write resctrl either, so a
    host that has one gets an error too, rather than an intelRdt silently ignored."""
    try:
        with open(mountinfo) as f:
            mounted = any(line.partition(" - ")[2].startswith("resctrl ") for line in f)
    except OSError:
        mounted = False
    if not mounted:
        raise ConfigError("/linux/intelRdt", "intelRdt is specified in config, but no resctrl "
                                             "filesystem is mounted (Intel RDT is not supported or enabled)")
    raise ConfigError("/linux/intelRdt", "intelRdt is specified in config, but ocirt does not "
                                         "support Intel RDT (resctrl)")


def make_plan(config: dict, bundle: str, opts: CreateOptions, checked: Checked, layout, cg,
              fifo_fd: int) -> InitPlan:
    """config.json -> what the children do (pure: shared with `ocirt plan`). The console fd is
    not in it: `create` connects to --console-socket itself."""
    linux, ns = checked.linux, checked.ns
    rspec = RootfsSpec(
        rootfs=checked.rootfs, mounts=_with_bundle_sources(bundle, config.get("mounts") or []),
        readonly=bool(config["root"].get("readonly")),
        propagation=linux.get("rootfsPropagation") or "",
        masked=linux.get("maskedPaths") or [], readonly_paths=linux.get("readonlyPaths") or [],
        devices=linux.get("devices") or [], in_userns=ns.has("user"), no_pivot=opts.no_pivot,
        cgroup_binds=_cgroup_binds(layout, cg), cgroup2=layout.kind == "v2",
        mount_label=linux.get("mountLabel") or "")
    cfg_hooks = config.get("hooks") or {}
    return InitPlan(
        ns=ns, rootfs=rspec, proc=checked.proc, fifo_fd=fifo_fd,
        hostname=config.get("hostname") if ns.has("uts") else None,
        domainname=config.get("domainname") if ns.has("uts") and "domainname" in config else None,
        sysctl=linux.get("sysctl") or {},
        time_offsets=namespaces.time_offsets(linux.get("timeOffsets") or {}),
        hooks=cfg_hooks,
        runtime_hooks=any(cfg_hooks.get(n) for n in ("prestart", "createRuntime",
                                                      "createContainer", "startContainer")),
        last_cap=checked.last_cap, seccomp=checked.seccomp,
        keyring=None if opts.no_new_keyring else f"_ses.{opts.id}",
        personality=checked.personality, mempolicy=checked.mempolicy,
        unprivileged=os.geteuid() != 0)


# Always allowed, after the config's own rules, as runc does: mknod of anything, the default devices
# of config-linux.md, /dev/pts/*, /dev/ptmx and /dev/net/tun.
DEFAULT_DEVICE_RULES = (
    ("c", None, None, "m"), ("b", None, None, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"),
    ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"), ("c", 136, None, "rwm"), ("c", 5, 2, "rwm"),
    ("c", 10, 200, "rwm"),
)


def resources_with_default_devices(linux: dict) -> dict:
    resources = dict(linux.get("resources") or {})
    rules = list(resources.get("devices") or [])  # linux.devices are NOT allowed implicitly
    for kind, major, minor, access in DEFAULT_DEVICE_RULES:
        rule = {"allow": True, "type": kind, "access": access}
        if major is not None:
            rule["major"] = major
        if minor is not None:
            rule["minor"] = minor
        rules.append(rule)
    resources["devices"] = rules
    return resources


def _drive_children(ch: Channel, stage1_pid: int, linux: dict, state: ContainerState,
                    cfg_hooks: dict, seccomp_filter, net_devices: dict | None = None) -> int:
    """The parent's side of the protocol; returns the init's pid once it is Ready.

    linux.netDevices are moved when the init exists (in its network namespace) and before it
    goes on with its setup."""
    moves = None
    if net_devices:
        from . import netdev
        moves = netdev.Moves()
    try:
        return _drive(ch, stage1_pid, linux, state, cfg_hooks, seccomp_filter, net_devices, moves)
    except BaseException:
        if moves is not None:
            moves.undo()        # before the init dies with it, a virtual device would die too
        raise
    finally:
        if moves is not None:
            moves.close()


def _drive(ch, stage1_pid, linux, state, cfg_hooks, seccomp_filter, net_devices, moves) -> int:
    init_pid = 0
    while True:
        expected = (UserNsReady, InitPid) if not init_pid else (HooksReady, SeccompFd, Ready)
        msg = ch.expect(expected, "the container was created")
        if isinstance(msg, UserNsReady):
            _write_id_maps(stage1_pid, linux)
            ch.send(Proceed())
        elif isinstance(msg, InitPid):
            init_pid = msg.pid
            os.waitpid(stage1_pid, 0)
            if moves is not None:
                moves.move(net_devices, init_pid)
            ch.send(Proceed())
        elif isinstance(msg, HooksReady):
            hook_state = state.oci(Status.CREATING)
            hook_state["pid"] = init_pid
            hooks_mod.run(cfg_hooks, "prestart", hook_state)
            hooks_mod.run(cfg_hooks, "createRuntime", hook_state)
            ch.send(Proceed(state=hook_state))
        elif isinstance(msg, SeccompFd):
            _pass_seccomp_fd(ch, seccomp_filter, state, init_pid)
        elif isinstance(msg, Ready):
            return init_pid


def _pass_seccomp_fd(ch: Channel, seccomp_filter, state: ContainerState, pid: int) -> None:
    if not ch.received_fds:
        raise OcirtError("protocol error: seccomp fd missing")
    fd = ch.received_fds[0]
    hook_state = state.oci(Status.CREATING)
    hook_state["pid"] = pid
    seccomp_filter.send_to_listener(fd, hook_state)  # closes fd
    ch.send(Proceed())


def _write_id_maps(pid: int, linux: dict) -> None:
    for name, key in (("uid_map", "uidMappings"), ("gid_map", "gidMappings")):
        data = namespaces.id_map(linux.get(key) or [])
        if not data:
            continue
        if name == "gid_map" and os.geteuid() != 0:
            # An unprivileged writer may map its own gid only once setgroups is denied
            # (user_namespaces(7)); the container then cannot change its groups.
            try:
                with open(f"/proc/{pid}/setgroups", "w") as f:
                    f.write("deny")
            except OSError as e:
                raise OcirtError(f"/linux/gidMappings: write /proc/{pid}/setgroups",
                                 e.errno) from None
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(data)
        except OSError as e:
            raise OcirtError(f"/linux/{key}: write /proc/{pid}/{name}", e.errno) from None


def _with_bundle_sources(bundle: str, mounts: list[dict]) -> list[dict]:
    """A relative bind source is relative to the bundle (as runc reads it)."""
    out = []
    for m in mounts:
        source = m.get("source")
        is_bind = m.get("type") == "bind" or any(o in ("bind", "rbind") for o in m.get("options") or [])
        if source and is_bind and not source.startswith("/"):
            m = {**m, "source": os.path.join(bundle, source)}
        out.append(m)
    return out


def _rootless_without_cgroup(opts: CreateOptions, linux: dict, cg, error: OcirtError):
    """A rootless create that may not make its cgroup goes on without one (runc does too), unless
    the config asks for limits, which need it."""
    import errno as _errno
    if not opts.rootless or error.errno not in (_errno.EACCES, _errno.EPERM, _errno.EROFS):
        raise error
    asked = sorted(k for k, v in (linux.get("resources") or {}).items()
                   if k != "devices" and v not in (None, {}, []))
    if asked:
        raise ConfigError(f"/linux/resources/{asked[0]}",
                          f"a rootless container cannot get limits here: {error} (delegate a "
                          "cgroup v2 subtree to this user, or run as root)")
    try:
        cg.destroy()        # whatever part of the path it could make
    except OcirtError:
        pass
    return None             # state.json records no cgroup: `ps`, `pause` say so


def _cgroup_binds(layout, cg) -> list[tuple[str, str]]:
    """(host dir of the container's cgroup, name under /sys/fs/cgroup) per v1/hybrid hierarchy
    (on v2: the directory, name ""); without a cgroup of its own (rootless), the one the runtime
    is in."""
    if cg is None:
        from . import cgroups
        cg = cgroups.Cgroup.current(layout)
    if layout.kind == "v2":
        # only if mounting cgroup2 is refused (a user namespace without its own cgroup
        # namespace: EPERM/EBUSY): the container's directory bound instead, as runc does
        return [(cg.unified, "")] if cg.unified else []
    binds, seen = [], set()
    for controller, mountpoint in layout.mounts.items():
        d = cg.paths.get(controller)
        if d and mountpoint not in seen:
            seen.add(mountpoint)
            binds.append((d, os.path.basename(mountpoint)))
    if layout.kind == "hybrid" and cg.unified:
        binds.append((cg.unified, os.path.basename(layout.unified)))
    return binds


def _write_pid_file(path: str, pid: int) -> None:
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def _rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


# -- exec ------------------------------------------------------------------------------------------

def exec_process(c: Container, proc: process.ProcessSpec, kernel: k.Kernel,
                 pid_file: str | None = None, subreaper: bool = False,
                 console_socket: str | None = None, console_size: dict | None = None) -> int:
    """Start `proc` inside the container; returns its pid once it is about to exec."""
    c.status().check("exec")
    from . import capabilities
    ns_fds = []
    console_fd = None
    try:
        for nstype in namespaces.JOIN_ORDER:
            name = namespaces.PROC_NAMES[nstype]
            theirs = f"/proc/{c.state.pid}/ns/{name}"
            try:
                if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                    continue
                ns_fds.append((os.open(theirs, os.O_RDONLY | os.O_CLOEXEC),
                               namespaces.FLAGS[nstype]))
            except FileNotFoundError:
                continue
        if proc_start_time(c.state.pid) != c.state.pid_start:
            raise OcirtError("cannot exec in a stopped container")
        seccomp_filter = _container_seccomp(c)
        mempolicy = None
        if c.state.memory_policy:           # recorded at create, as the seccomp filter is
            from . import procattr
            mempolicy = procattr.parse_linux({"memoryPolicy": c.state.memory_policy})[1]
        plan = ExecPlan(ns_fds=ns_fds, proc=proc, last_cap=capabilities.last_cap(),
                        seccomp=seccomp_filter, console_size=console_size,
                        personality=_init_personality(c.state.pid), mempolicy=mempolicy)
        if console_socket:
            from . import console
            console_fd = plan.console_fd = console.connect(console_socket)
        parent_ch, child_ch = Channel.pair()
        if subreaper:
            kernel.prctl(k.PR_SET_CHILD_SUBREAPER, 1)
        stage1_pid = fork_with_affinity(kernel, proc)
        if stage1_pid == 0:
            try:        # a forked child never returns into the runtime's code
                parent_ch.close()
                exec_stage1(kernel, plan, child_ch)
            finally:
                os._exit(1)
        child_ch.close()
        pid = 0
        try:
            if c.state.cgroup:
                c.cgroup().add_pid(stage1_pid)
            parent_ch.send(Proceed())
            pid = parent_ch.expect(InitPid, "the process was started").pid
            os.waitpid(stage1_pid, 0)
            parent_ch.send(Proceed())
            while isinstance(parent_ch.expect((SeccompFd, Ready), "the process was started"),
                             SeccompFd):
                _pass_seccomp_fd(parent_ch, seccomp_filter, c.state, pid)
        except BaseException:
            if pid:
                _kill_and_reap(pid)
            _kill_and_reap(stage1_pid)
            raise
        finally:
            parent_ch.close()
    finally:
        for fd, _ in ns_fds:
            os.close(fd)
        if console_fd is not None:
            os.close(console_fd)
    if pid_file:
        _write_pid_file(pid_file, pid)
    return pid


def _container_seccomp(c: Container):
    """The container's seccomp filter, as it was at create (state.json), for `exec`."""
    if not c.state.seccomp:
        return None
    from . import seccomp
    return seccomp.compile(c.state.seccomp)


def fork_with_affinity(kernel: k.Kernel, proc: process.ProcessSpec, fork=os.fork) -> int:
    """fork() exec's stage 1 on the CPUs of execCPUAffinity.initial (config.md: the runtime's
    process runs there "initially, before the transition to container's cgroup"): the parent
    moves itself there, forks (the child has the affinity from its first instruction), and
    moves back. Joining the container's cpuset later resets the child's affinity; `final` is
    set by stage 1 once it is in the cgroup (stages.set_final_affinity)."""
    if not proc.affinity_initial:
        return fork()
    saved = kernel.sched_getaffinity(0)
    try:
        kernel.sched_setaffinity(0, proc.affinity_initial)
    except OSError as e:
        raise OcirtError(f"{proc.pointer}/execCPUAffinity/initial: sched_setaffinity",
                         e.errno) from None
    try:
        pid = fork()
    except BaseException:
        kernel.sched_setaffinity(0, saved)
        raise
    if pid:
        kernel.sched_setaffinity(0, saved)
    return pid


def _init_personality(pid: int) -> int | None:
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
    return values[0] if values[0] != values[1] else None   # the same: nothing to change
