"""The checks `create` makes before touching anything, shared with `ocirt plan`: config.json and
the command's options -> `Checked` (or a one-line ConfigError / OcirtError)."""

from __future__ import annotations

import posix  # not os: see ocirt/paths.py

from . import config as config_mod
from . import lsm, namespaces, paths, process
from .errors import ConfigError, OcirtError
from .record import field, record
from .rootfs_spec import needs_idmap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


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
    listen_fds: int = 0  # socket activation: fds systemd passed, before the --preserve-fds ones
    notify_socket: str | None = None  # the host's NOTIFY_SOCKET: the container gets its own
    systemd_cgroup: bool = False
    rootless: bool = False  # --rootless: cgroups are used only where permitted
    subreaper: bool = False  # `run`: the init is re-parented to us, so we can wait for it
    # The init may be this process's own child (one fork, stages.one_fork): the command line's
    # create, which ends right after (the init then goes to the host's reaper, as runc's does),
    # and run, which waits for it. Not an in-process caller (the Python API), which must get no
    # child: stage 1 forks the init there and is reaped.
    init_as_child: bool = False
    warn: Callable[[str], object] = print  # runtime.md warnings go to the log
    debug: Callable[[str], object] | None = None  # --debug: a callable taking one line


@record
class Checked:
    """What validating config.json decided, before anything is made (check_config)."""

    linux: dict
    ns: namespaces.Namespaces
    proc_cfg: dict
    proc: process.ProcessSpec
    rootfs: str
    last_cap: int = 40
    seccomp: object | None = None  # a compiled ocirt.seccomp.Filter
    net_devices: dict | None = None  # linux.netDevices checked: {host name: name inside}
    personality: int | None = None  # linux.personality, parsed (ocirt.procattr)
    mempolicy: tuple | None = None  # linux.memoryPolicy: (mode | flags, nodes)
    idmaps: list = field(default_factory=list)  # idmapped mounts (ocirt.idmap.IdmapMount)
    # what is ignored with a warning (unknown capabilities, deprecated fields): one line, said
    # once the container is made (create.steps), not before an error that ends create
    warnings: list = field(default_factory=list)


# runc's words (its checkTerminal): a console socket is for a detached process with a terminal
CONSOLE_UNUSED = "cannot use console socket if runc will not detach or allocate tty"


def check_preserved_fds(n: int, first: int = 3) -> None:
    """--preserve-fds N hands fds 3 to 3+N-1 to the container: each must be one the caller
    passed (runc stats them all first). One of ocirt's own (the launcher's bundle file, a lock,
    the log) is close-on-exec: it cannot be the caller's, and is refused as not open. Stops at
    the first, so a huge N costs nothing. (create, run and the API through check_config.) They
    start at `first`: after socket activation's fds."""
    if n < 0:
        raise OcirtError(f"--preserve-fds {n}: a count of fds, not negative")
    for i in range(n):
        try:
            passed = posix.get_inheritable(first + i)
        except OSError:
            passed = False
        if not passed:
            raise OcirtError(
                f"unable to stat preserved-fd {i} (of {n}): fd {first + i} is not open (--preserve-fds {n})"
            )


def check_config(config: dict, bundle: str, opts: CreateOptions) -> Checked:
    """The checks `create` makes before touching anything (shared with `ocirt plan`)."""
    linux = config.get("linux") or {}
    ns = namespaces.parse(config)
    proc_cfg = config.get("process")
    if proc_cfg is None:
        # config.md: REQUIRED only when start is called. The init waits without one; `start`
        # then fails with an error and the container can be deleted.
        proc_cfg = {}
    if proc_cfg.get("terminal") and not opts.console_socket:
        raise OcirtError("cannot allocate tty if runc will detach without setting console socket")
    if opts.console_socket and not proc_cfg.get("terminal"):
        raise OcirtError(CONSOLE_UNUSED)
    if opts.listen_fds:
        from . import sdnotify

        sdnotify.check_listen_fds(opts.listen_fds)
    check_preserved_fds(opts.preserve_fds, 3 + opts.listen_fds)
    check_static(config, ns, opts.systemd_cgroup)
    rootfs = config_mod.rootfs_path(bundle, config)
    if not paths.is_dir(rootfs):
        raise ConfigError("/root/path", f"rootfs {rootfs} is not a directory")
    proc = process.ProcessSpec.from_config(proc_cfg, opts.listen_fds + opts.preserve_fds)
    if opts.listen_fds or opts.notify_socket:
        from . import sdnotify

        proc.env += sdnotify.process_env(opts.listen_fds, bool(opts.notify_socket))
    proc.check()
    lsm.check(config)
    namespaces.check_sysctl(linux.get("sysctl") or {}, ns)
    from . import capabilities

    last_cap = capabilities.last_cap()
    warnings = capabilities.unknown(proc.capabilities, proc.cap_allowed, last_cap) + deprecated(linux)
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
    return Checked(
        linux=linux,
        ns=ns,
        proc_cfg=proc_cfg,
        proc=proc,
        rootfs=rootfs,
        last_cap=last_cap,
        seccomp=seccomp_filter,
        net_devices=net_devices,
        personality=personality,
        mempolicy=mempolicy,
        idmaps=idmaps,
        warnings=warnings,
    )


def check_static(config: dict, ns: namespaces.Namespaces, systemd: bool = False) -> None:
    """The checks of check_config that read config.json alone, past its validation (shared with
    `ocirt check`): what needs a namespace the config does not list, a cgroupsPath that names
    the root of the hierarchy."""
    linux = config.get("linux") or {}
    if not ns.has("mount"):
        check_without_mount_ns(config, linux)
    if config.get("hostname") and not ns.has("uts"):
        raise ConfigError("/hostname", "unable to set hostname without a private UTS namespace")
    cgroups_path = linux.get("cgroupsPath")
    if cgroups_path and isinstance(cgroups_path, str) and not systemd:  # (systemd's: slice:prefix:name)
        from .cgroups.layout import clean_path  # (create reads the layout: no import of its own)

        if clean_path(cgroups_path) in ("", "/"):
            raise ConfigError("/linux/cgroupsPath", "must not be the root of the cgroup hierarchy")


def check_without_mount_ns(config: dict, linux: dict) -> None:
    """No mount namespace listed: the container inherits the runtime's (config-linux.md), and its
    init only chroots into the rootfs. Whatever would mount something there would mount it on
    the host, so it is refused rather than done."""
    why = "needs a mount namespace (without one it would change the host's mounts)"
    if config.get("mounts"):
        raise ConfigError("/mounts/0", why)
    for key in ("maskedPaths", "readonlyPaths", "devices"):
        if linux.get(key):
            raise ConfigError(f"/linux/{key}", why)
    if linux.get("rootfsPropagation"):
        raise ConfigError("/linux/rootfsPropagation", why)
    if (config.get("root") or {}).get("readonly"):
        raise ConfigError("/root/readonly", why)


def deprecated(linux: dict) -> list[str]:
    """Deprecated fields of linux.resources.memory: a warning each, as runc 1.1 gives ("Kernel
    memory settings are ignored and will be removed"), rather than silence."""
    memory = (linux.get("resources") or {}).get("memory")
    if not isinstance(memory, dict):
        return []
    out = []
    if "kernel" in memory:
        out.append("/linux/resources/memory/kernel is deprecated: kernel memory limits are ignored")
    if "kernelTCP" in memory:
        out.append(
            "/linux/resources/memory/kernelTCP is deprecated: ignored except on cgroup v1 "
            "hosts that still have memory.kmem.tcp.limit_in_bytes"
        )
    return out


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
        raise ConfigError(
            "/linux/intelRdt",
            "intelRdt is specified in config, but no resctrl "
            "filesystem is mounted (Intel RDT is not supported or enabled)",
        )
    raise ConfigError(
        "/linux/intelRdt", "intelRdt is specified in config, but ocirt does not support Intel RDT (resctrl)"
    )
