"""Why each operation of `ocirt plan` happens: the config.json field(s) it comes from.

`causes(steps, config, bundle)` gives, for every step of a plan (ocirt/plan.py), the JSON pointers
of the fields that caused it (`/mounts/3`, `/linux/resources/memory/limit`,
`/process/capabilities/bounding`), or `["runtime"]` for what the runtime does of its own accord
(the state directory, exec.fifo, pivot_root, a default device). Nothing is threaded through
create's steps: each recorded call (its name, its arguments, its stage) is matched against the
config itself, by the table `RULES` (call name -> rule). A call with no rule gets no cause (`[]`);
tests/unit/test_explain.py checks that every call the plan can record has a rule.

The calls that only prepare a path inside the rootfs (open_in_root, a mkdir or an O_CREAT open of a
missing mount point, a readlink) are not matched on their own: they get the cause of the next
operation of their stage on that path or below it (the mount, the device node), and, when there
is none, that of /process/cwd (the init makes sure its cwd exists) or the runtime's.
"""

from __future__ import annotations

import os
import posixpath

from . import kernel as k
from .errors import pointer_part

RUNTIME = "runtime"
_ALL = [RUNTIME]
_PREP = ("open_in_root", "mkdir", "readlink", "open")


class Context:
    """The config, read once into what the rules match against, and the little state the rules
    keep while walking the plan in order (the mount being made, hooks seen, pivot_root done)."""

    def __init__(self, config: dict, bundle: str, rootfs: str):
        from .mapping import with_bundle_sources

        self.config = config
        self.rootfs = rootfs.rstrip("/")
        self.process = config.get("process") or {}
        self.linux = config.get("linux") or {}
        self.resources = self.linux.get("resources") or {}
        self.mounts = with_bundle_sources(bundle, config.get("mounts") or [])
        self.dests = [_norm(m.get("destination", "")) for m in self.mounts]
        self.by_dest: dict = {}  # destination -> the indexes of the mounts there, in order
        for i, dest in enumerate(self.dests):
            self.by_dest.setdefault(dest, []).append(i)
        self.devices: dict = {}  # path -> the index of its first entry in linux.devices
        for i, d in enumerate(self.linux.get("devices") or []):
            self.devices.setdefault(_norm(d.get("path", "")), i)
        self.namespaces = self.linux.get("namespaces") or []
        self.cwd = _norm(self.process.get("cwd") or "/")
        self.mount_at = -1  # the mount entry being made (its index)
        self.hooks_seen: dict = {}
        self.pivoted = False
        self.inherit_dir = None  # a cgroup directory just made (v1 cpuset: the parent's copied)
        self.umasks = 0
        self.prev = ""  # the name of the call before
        self.rules_used: set = set()  # linux.resources.devices entries already matched

    # -- helpers the rules share ----------------------------------------------------------------
    def rel(self, path) -> str | None:
        """`path` as the container sees it, if it is under the rootfs (else None)."""
        if not isinstance(path, str):
            return None
        if path == self.rootfs:
            return "/"
        if path.startswith(self.rootfs + "/"):
            return _norm(path[len(self.rootfs) :])
        return None

    def has(self, *keys) -> bool:
        d = self.config
        for key in keys:
            if not isinstance(d, dict) or key not in d:
                return False
            d = d[key]
        return True

    def ns(self, nstype: str) -> list:
        return [f"/linux/namespaces/{i}" for i, n in enumerate(self.namespaces) if n.get("type") == nstype]

    def ns_flags(self, flags: int, joined: bool = False) -> list:
        from .namespaces import FLAGS

        return [
            f"/linux/namespaces/{i}"
            for i, n in enumerate(self.namespaces)
            if FLAGS.get(n.get("type"), 0) & flags and bool(n.get("path")) == joined
        ]

    def field(self, pointer: str, *keys) -> list:
        """[pointer] if the config has it, else the runtime's."""
        return [pointer] if self.has(*keys) else _ALL

    def mount_for(self, rel: str, source=None) -> list:
        """The mount entry that makes `rel` (with `source`, if it is a mount's first call)."""
        same = self.by_dest.get(rel, [])
        if not same:  # a cgroup hierarchy under a cgroup mount, say
            same = [
                i
                for i, d in enumerate(self.dests)
                if rel.startswith(d.rstrip("/") + "/")
                and (self.mounts[i].get("type") == "cgroup" or i == self.mount_at)
            ]
            same = same[-1:]
        if not same:
            return []
        if source is not None:
            by_source = [i for i in same if _source(self.mounts[i]) == source and i > self.mount_at] or [
                i for i in same if _source(self.mounts[i]) == source
            ]
            if by_source:
                same = by_source[:1]
        pick = self.mount_at if self.mount_at in same else same[0]
        self.mount_at = pick
        return [f"/mounts/{pick}"]

    def device_for(self, rel: str) -> list:
        i = self.devices.get(rel)
        return [] if i is None else [f"/linux/devices/{i}"]


def _norm(path: str) -> str:
    return posixpath.normpath("/" + (path or "").lstrip("/"))


def _source(m: dict) -> str:
    return m.get("source") or m.get("type") or "none"


# -- the rules: call name -> (ctx, step) -> causes -------------------------------------------


def _mount(ctx: Context, step) -> list:
    source, target, _fstype, flags, data = step.call.args
    if step.stage.startswith("create (runtime)"):
        return _idmap_tree(ctx, target)
    if flags & k.MS_MOVE:
        return _ALL  # --no-pivot's move of the rootfs
    if ctx.pivoted:
        return _after_pivot(ctx, source, target, flags)
    if target == "/":  # rslave/rprivate until pivot_root
        return ctx.field("/linux/rootfsPropagation", "linux", "rootfsPropagation")
    if target == ctx.rootfs and source == ctx.rootfs:
        return ["/root/path"]
    rel = ctx.rel(target)
    if rel is None:
        return _ALL
    if source == rel and flags == k.MS_BIND:  # a device bound from the host (user namespace)
        dev = ctx.device_for(rel)
        if dev or rel in _default_devices():
            return dev or _ALL
    out = ctx.mount_for(rel, source)
    if out and data and "context=" in str(data) and ctx.linux.get("mountLabel"):
        out = out + ["/linux/mountLabel"]
    return out or _ALL


def _after_pivot(ctx: Context, source, target, flags) -> list:
    if target == ".":
        return _ALL  # pivot_root's old root
    if target == "/":
        if flags & k.MS_REMOUNT:
            return ["/root/readonly"]
        return ["/linux/rootfsPropagation"]
    masked = ctx.linux.get("maskedPaths") or []
    readonly = ctx.linux.get("readonlyPaths") or []
    if source in ("tmpfs", "/dev/null") and target in masked:
        return [f"/linux/maskedPaths/{masked.index(target)}"]
    if target in readonly:
        return [f"/linux/readonlyPaths/{readonly.index(target)}"]
    if target in masked:
        return [f"/linux/maskedPaths/{masked.index(target)}"]
    return _ALL


def _idmap_tree(ctx: Context, tree) -> list:
    """'<tree SRC>' (or SRC): the idmapped mounts with that source."""
    src = tree[len("<tree ") : -1] if isinstance(tree, str) and tree.startswith("<tree ") else tree
    from .rootfs_spec import needs_idmap

    out = [f"/mounts/{i}" for i, m in enumerate(ctx.mounts) if needs_idmap(m) and m.get("source") == src]
    return out or ["/mounts"]


def _new_userns(ctx: Context, step) -> list:
    from .namespaces import id_map
    from .rootfs_spec import needs_idmap

    uid_map = step.call.args[0]
    out = []
    for i, m in enumerate(ctx.mounts):
        if not needs_idmap(m):
            continue
        own = m.get("uidMappings")
        if id_map(own if own is not None else ctx.linux.get("uidMappings") or []) == uid_map:
            out.append(f"/mounts/{i}")
            if own is None and "/linux/uidMappings" not in out:
                out.append("/linux/uidMappings")
    return out or ["/mounts"]


def _at_path(index: int):
    """A call whose argument `index` is a path: the mount or device that makes it."""

    def rule(ctx: Context, step) -> list:
        if step.stage.startswith("create (runtime)"):
            return _idmap_tree(ctx, step.call.args[index])
        rel = ctx.rel(step.call.args[index])
        if rel is None:
            return _ALL
        return ctx.mount_for(rel) or _ALL

    return rule


def _node(index: int):
    """mknod, chown, symlink in the rootfs: a device of linux.devices, or a default one."""

    def rule(ctx: Context, step) -> list:
        rel = ctx.rel(step.call.args[index])
        return (ctx.device_for(rel) if rel else []) or _ALL

    return rule


def _default_devices() -> set:
    from .rootfs import DEFAULT_DEVICES

    return {f"/dev/{name}" for name, _, _ in DEFAULT_DEVICES}


def _open(ctx: Context, step) -> list:
    path, flags = step.call.args[0], step.call.args[1]
    if path == ctx.rootfs and flags & os.O_PATH:
        return ["/root/path"]  # the rootfs every mount is made under
    for i, n in enumerate(ctx.namespaces):
        if n.get("path") and n.get("path") == path:
            return [f"/linux/namespaces/{i}"]
    return _ALL


def _setns(ctx: Context, step) -> list:
    path = step.call.args[0]
    return [f"/linux/namespaces/{i}" for i, n in enumerate(ctx.namespaces) if n.get("path") == path] or _ALL


def _unshare(ctx: Context, step) -> list:
    return ctx.ns_flags(step.call.args[0]) or _ALL


def _ids(user_key: str):
    """setresuid/setresgid: stage 1's switch to root in a new user namespace; the init's to
    process.user."""

    def rule(ctx: Context, step) -> list:
        if step.stage.startswith("stage 1"):
            return ctx.ns("user") or _ALL
        return ctx.field(f"/process/user/{user_key}", "process", "user", user_key)

    return rule


def _setgroups(ctx: Context, step) -> list:
    return ctx.field("/process/user/additionalGids", "process", "user", "additionalGids")


def _umask(ctx: Context, step) -> list:
    if step.stage.startswith("init") and ctx.umasks == 0:
        ctx.umasks += 1
        return _ALL  # the init's umask(0): modes exactly as asked
    ctx.umasks += 1
    return ctx.field("/process/user/umask", "process", "user", "umask")


def _prctl(ctx: Context, step) -> list:
    option, arg2 = step.call.args[0], step.call.args[1]
    if option == k.PR_CAPBSET_DROP:
        return ["/process/capabilities/bounding"]
    if option == k.PR_SET_KEEPCAPS:
        return ["/process/capabilities"]
    if option == k.PR_CAP_AMBIENT:
        return (
            ["/process/capabilities/ambient"]
            if arg2 == k.PR_CAP_AMBIENT_RAISE or ctx.has("process", "capabilities", "ambient")
            else ["/process/capabilities"]
        )
    if option == k.PR_SET_NO_NEW_PRIVS:
        return ["/process/noNewPrivileges"]
    return _ALL  # PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER: the runtime's safety


def _capset(ctx: Context, step) -> list:
    caps = ctx.process.get("capabilities") or {}
    return [f"/process/capabilities/{s}" for s in ("effective", "permitted", "inheritable") if s in caps] or [
        "/process/capabilities"
    ]


def _setrlimit(ctx: Context, step) -> list:
    from .process import rlimit_number

    num = step.call.args[0]
    for i, rl in enumerate(ctx.process.get("rlimits") or []):
        try:
            if rlimit_number(rl.get("type", ""), i) == num:
                return [f"/process/rlimits/{i}"]
        except Exception:  # noqa: BLE001 - an unknown type was refused by create's checks
            continue
    return ["/process/rlimits"]


def _chdir(ctx: Context, step) -> list:
    path = step.call.args[0]
    if path == ctx.rootfs or not ctx.pivoted or ctx.prev in ("umount", "chroot"):
        return _ALL  # pivot_root's (or --no-pivot's) change of directory
    return ["/process/cwd"]


def _pivot(ctx: Context, step) -> list:
    ctx.pivoted = True
    return _ALL


def _hook(ctx: Context, step) -> list:
    kind = step.call.args[0]
    n = ctx.hooks_seen.get(kind, 0)
    ctx.hooks_seen[kind] = n + 1
    return [f"/hooks/{kind}/{n}"]


def _execve(ctx: Context, step) -> list:
    return ["/process/args"] + (["/process/env"] if ctx.has("process", "env") else [])


def _netdev(ctx: Context, step) -> list:
    return [f"/linux/netDevices/{pointer_part(step.call.args[0])}"]


def _write_file(ctx: Context, step) -> list:
    path, value = step.call.args[0], step.call.args[1]
    if path.endswith("/state.json") or "<exec.fifo>" in path:
        return _ALL
    for suffix, rule in _PROC_FILES:
        if path.endswith(suffix):
            return rule(ctx, path, value)
    if path.startswith("/proc/sys/"):
        for key in ctx.linux.get("sysctl") or {}:
            if path == "/proc/sys/" + key.replace(".", "/"):
                return [f"/linux/sysctl/{pointer_part(key)}"]
        return ["/linux/sysctl"]
    if path.startswith("/proc/self/attr/"):
        if str(value).startswith("exec ") and ctx.has("process", "apparmorProfile"):
            return ["/process/apparmorProfile"]
        return ["/process/selinuxLabel"]
    return cgroup_file(ctx, path, value)


_PROC_FILES = (
    ("/uid_map", lambda ctx, p, v: ["/linux/uidMappings"]),
    ("/gid_map", lambda ctx, p, v: ["/linux/gidMappings"]),
    ("/setgroups", lambda ctx, p, v: ctx.ns("user") or _ALL),
    ("/timens_offsets", lambda ctx, p, v: ["/linux/timeOffsets"]),
    ("/oom_score_adj", lambda ctx, p, v: ["/process/oomScoreAdj"]),
)


# -- cgroup files -> linux.resources --------------------------------------------------------

R = "/linux/resources"

# file name (v1 and v2) -> the resources field(s) whose values it holds
CGROUP_FILES = {
    # memory
    "memory.limit_in_bytes": ["memory/limit"],
    "memory.max": ["memory/limit"],
    "memory.memsw.limit_in_bytes": ["memory/swap"],
    "memory.swap.max": ["memory/swap", "memory/limit"],  # v2: swap - limit
    "memory.soft_limit_in_bytes": ["memory/reservation"],
    "memory.low": ["memory/reservation"],
    "memory.kmem.tcp.limit_in_bytes": ["memory/kernelTCP"],
    "memory.swappiness": ["memory/swappiness"],
    "memory.oom_control": ["memory/disableOOMKiller"],
    "memory.use_hierarchy": ["memory/useHierarchy"],
    # cpu
    "cpu.shares": ["cpu/shares"],
    "cpu.weight": ["cpu/shares"],
    "cpu.cfs_quota_us": ["cpu/quota"],
    "cpu.cfs_period_us": ["cpu/period"],
    "cpu.max": ["cpu/quota", "cpu/period"],
    "cpu.cfs_burst_us": ["cpu/burst"],
    "cpu.max.burst": ["cpu/burst"],
    "cpu.rt_period_us": ["cpu/realtimePeriod"],
    "cpu.rt_runtime_us": ["cpu/realtimeRuntime"],
    "cpu.idle": ["cpu/idle"],
    "cpuset.cpus": ["cpu/cpus"],
    "cpuset.mems": ["cpu/mems"],
    # pids, network, rdma
    "pids.max": ["pids/limit"],
    "net_cls.classid": ["network/classID"],
    # block I/O (the per-device files are matched by major:minor below)
    "blkio.weight": ["blockIO/weight"],
    "blkio.bfq.weight": ["blockIO/weight"],
    "io.weight": ["blockIO/weight"],
    "io.bfq.weight": ["blockIO/weight"],
    "blkio.leaf_weight": ["blockIO/leafWeight"],
}
# per-device block I/O files: file -> (config list, what of an entry)
_BLKIO_DEVICE_FILES = {
    "blkio.weight_device": (("weightDevice",), "/weight"),
    "blkio.bfq.weight_device": (("weightDevice",), "/weight"),
    "blkio.leaf_weight_device": (("weightDevice",), "/leafWeight"),
    "blkio.throttle.read_bps_device": (("throttleReadBpsDevice",), ""),
    "blkio.throttle.write_bps_device": (("throttleWriteBpsDevice",), ""),
    "blkio.throttle.read_iops_device": (("throttleReadIOPSDevice",), ""),
    "blkio.throttle.write_iops_device": (("throttleWriteIOPSDevice",), ""),
    "io.max": (
        (
            "throttleReadBpsDevice",
            "throttleWriteBpsDevice",
            "throttleReadIOPSDevice",
            "throttleWriteIOPSDevice",
        ),
        "",
    ),
}
# the cgroup's own bookkeeping: the runtime's
_CGROUP_RUNTIME = (
    "cgroup.procs",
    "cgroup.subtree_control",
    "cgroup.freeze",
    "cgroup.kill",
    "tasks",
    "freezer.state",
    "notify_on_release",
    "cgroup.clone_children",
)


def cgroup_file(ctx: Context, path: str, value) -> list:
    """A write to a cgroup file: the linux.resources field(s) it comes from."""
    name = os.path.basename(path)
    res = ctx.resources
    if name in (res.get("unified") or {}):
        return [f"{R}/unified/{pointer_part(name)}"]
    if name in _CGROUP_RUNTIME:
        return _ALL
    if name in ("devices.allow", "devices.deny"):
        return _device_rule(ctx, name == "devices.allow", str(value))
    if name in ("cpuset.cpus", "cpuset.mems"):
        key = "cpus" if name == "cpuset.cpus" else "mems"
        want = (res.get("cpu") or {}).get(key)
        if not want or str(value) != str(want) or os.path.dirname(path) == ctx.inherit_dir:
            return _ALL  # v1: a new cpuset gets its parent's CPUs and nodes when made
        return [f"{R}/cpu/{key}"]
    if name in _BLKIO_DEVICE_FILES:
        lists, what = _BLKIO_DEVICE_FILES[name]
        majmin = str(value).split(" ", 1)[0]
        blkio = res.get("blockIO") or {}
        for key in lists:
            for i, d in enumerate(blkio.get(key) or []):
                if f"{d.get('major')}:{d.get('minor')}" == majmin:
                    return [f"{R}/blockIO/{key}/{i}{what}"]
        return [f"{R}/blockIO"]
    if name in ("io.weight", "io.bfq.weight") and " " in str(value):  # v2: "MAJ:MIN W"
        majmin = str(value).split(" ", 1)[0]
        for i, d in enumerate((res.get("blockIO") or {}).get("weightDevice") or []):
            if f"{d.get('major')}:{d.get('minor')}" == majmin:
                return [f"{R}/blockIO/weightDevice/{i}/weight"]
        return [f"{R}/blockIO/weightDevice"]
    if name.startswith("hugetlb."):
        size = name.split(".")[1]
        for i, h in enumerate(res.get("hugepageLimits") or []):
            if h.get("pageSize") == size:
                return [f"{R}/hugepageLimits/{i}/limit"]
        return [f"{R}/hugepageLimits"]
    if name == "net_prio.ifpriomap":
        iface = str(value).split(" ", 1)[0]
        for i, p in enumerate((res.get("network") or {}).get("priorities") or []):
            if p.get("name") == iface:
                return [f"{R}/network/priorities/{i}"]
        return [f"{R}/network/priorities"]
    if name == "rdma.max":
        return [f"{R}/rdma/{pointer_part(str(value).split(' ', 1)[0])}"]
    if name in CGROUP_FILES:
        out = [f"{R}/{f}" for f in CGROUP_FILES[name] if _res_has(res, f)]
        if name in ("memory.memsw.limit_in_bytes", "memory.swap.max") and not out:
            out = [f"{R}/memory/limit"]  # limit -1 means memory+swap unlimited too
        return out or [f"{R}/{CGROUP_FILES[name][0]}"]
    return [R]


def _res_has(res: dict, rel: str) -> bool:
    a, b = rel.split("/")
    return isinstance(res.get(a), dict) and res[a].get(b) is not None


def _device_rule(ctx: Context, allow: bool, line: str) -> list:
    """devices.allow/deny "c 1:3 rwm": the rule of linux.resources.devices that wrote it (the
    first unmatched one, in order), else one of the runtime's default rules."""
    seen = ctx.rules_used
    for i, rule in enumerate(ctx.resources.get("devices") or []):
        if i in seen or bool(rule.get("allow")) != allow or _v1_line(rule) != line:
            continue
        seen.add(i)
        return [f"{R}/devices/{i}"]
    if line == "a" and not allow:  # the reset to deny-all: the config's leading rule, if any
        rules = ctx.resources.get("devices") or []
        if rules and not rules[0].get("allow") and _v1_line(rules[0]) == "a":
            seen.add(0)
            return [f"{R}/devices/0"]
    return _ALL


def _v1_line(rule: dict) -> str:
    kind = rule.get("type") or "a"
    if kind == "a":
        return "a"
    major = "*" if rule.get("major") in (None, -1) else str(rule["major"])
    minor = "*" if rule.get("minor") in (None, -1) else str(rule["minor"])
    return f"{kind} {major}:{minor} {rule.get('access') or 'rwm'}"


def _bpf(ctx: Context, step) -> list:
    """cgroup v2's device filter: linux.resources.devices and the runtime's default rules."""
    return ([f"{R}/devices"] if ctx.resources.get("devices") else []) + _ALL


def _cgroup_mkdir(ctx: Context, step) -> list:
    path = step.call.args[0]
    if ctx.rel(path) is not None:
        return []  # a mount point: see _PREP
    if path.startswith("/sys/fs/cgroup"):
        ctx.inherit_dir = path
        return ctx.field("/linux/cgroupsPath", "linux", "cgroupsPath")
    return _ALL  # the state directory


# systemd unit properties -> resources fields
_SYSTEMD_PROPS = {
    "MemoryMax": "memory/limit",
    "MemoryLimit": "memory/limit",
    "MemoryLow": "memory/reservation",
    "MemorySwapMax": "memory/swap",
    "CPUWeight": "cpu/shares",
    "CPUShares": "cpu/shares",
    "BlockIOWeight": "blockIO/weight",
    "CPUQuotaPerSecUSec": "cpu/quota",
    "CPUQuotaPeriodUSec": "cpu/period",
    "AllowedCPUs": "cpu/cpus",
    "AllowedMemoryNodes": "cpu/mems",
    "TasksMax": "pids/limit",
    "DevicePolicy": "devices",
    "DeviceAllow": "devices",
}
_UNIFIED_PROPS = {
    "MemoryHigh": "memory.high",
    "MemoryLow": "memory.low",
    "MemoryMin": "memory.min",
    "MemoryMax": "memory.max",
    "MemorySwapMax": "memory.swap.max",
    "TasksMax": "pids.max",
    "CPUWeight": "cpu.weight",
    "CPUQuotaPerSecUSec": "cpu.max",
    "CPUQuotaPeriodUSec": "cpu.max",
    "AllowedCPUs": "cpuset.cpus",
    "AllowedMemoryNodes": "cpuset.mems",
}


def _dbus(ctx: Context, step) -> list:
    props = step.call.args[-1] if isinstance(step.call.args[-1], dict) else {}
    out = [RUNTIME] if step.call.name == "dbus_StartTransientUnit" else []
    if ctx.has("linux", "cgroupsPath") and step.call.name == "dbus_StartTransientUnit":
        out.append("/linux/cgroupsPath")
    notes = ctx.config.get("annotations") or {}
    unified = ctx.resources.get("unified") or {}
    for name in props:
        if f"org.systemd.property.{name}" in notes:
            p = f"/annotations/{pointer_part('org.systemd.property.' + name)}"
        elif _UNIFIED_PROPS.get(name) in unified:
            p = f"{R}/unified/{_UNIFIED_PROPS[name]}"
        elif name in _SYSTEMD_PROPS:
            p = f"{R}/{_SYSTEMD_PROPS[name]}"
        else:
            continue
        if p not in out:
            out.append(p)
    return out or [R]


def _fixed(*causes: str):
    return lambda ctx, step: list(causes)


def _config_field(pointer: str, *keys: str):
    return lambda ctx, step: ctx.field(pointer, *keys)


RULES = {
    # the runtime's own: state dir, exec.fifo, forks and waits, pivot_root, fd hygiene
    "flock": _fixed(RUNTIME),
    "mkfifo": _fixed(RUNTIME),
    "chmod": _fixed(RUNTIME),
    "fork": _fixed(RUNTIME),
    "fork_into": _fixed(RUNTIME),  # stage 1 made in its cgroup (cgroup v2), as a cgroup.procs write
    "move_self": _fixed(RUNTIME),  # exec's process into a v1 hierarchy by itself, the same
    "waitpid": _fixed(RUNTIME),
    "wait": _fixed(RUNTIME),  # the init, until the runtime has moved it into its cgroup
    "setsid": _fixed(RUNTIME),  # no terminal: the init leads its own session (as runc's)
    "kill": _fixed(RUNTIME),
    "kill_and_reap": _fixed(RUNTIME),
    "rmdir": _fixed(RUNTIME),
    "close_fds_from": _fixed(RUNTIME),
    "set_inheritable": _fixed(RUNTIME),
    "join_session_keyring": _fixed(RUNTIME),
    "pivot_root": _pivot,
    "chroot": _pivot,
    "fchdir": _fixed(RUNTIME),
    "umount": _fixed(RUNTIME),
    "chdir": _chdir,
    # namespaces, ids
    "unshare": _unshare,
    "setns": _setns,
    "open": _open,
    "ioctl": lambda ctx, step: ctx.ns("network") or _ALL,  # loopback up
    "sethostname": _fixed("/hostname"),
    "setdomainname": _fixed("/domainname"),
    "setresuid": _ids("uid"),
    "setresgid": _ids("gid"),
    "setgroups": _setgroups,
    "umask": _umask,
    # the root filesystem
    "mount": _mount,
    "mount_setattr": _at_path(0),
    "move_mount": _at_path(1),
    "copy_tree": _at_path(1),
    "open_tree": lambda ctx, step: _idmap_tree(ctx, step.call.args[0]),
    "new_userns": _new_userns,
    "mknod": _node(0),
    "chown": _node(0),
    "symlink": _node(1),
    "open_in_root": _fixed(RUNTIME),
    "readlink": _fixed(RUNTIME),
    "mkdir": _cgroup_mkdir,
    # the process
    "setrlimit": _setrlimit,
    "prctl": _prctl,
    "capset": _capset,
    "sched_setattr": _fixed("/process/scheduler"),
    "ioprio_set": _fixed("/process/ioPriority"),
    "sched_getaffinity": _fixed("/process/execCPUAffinity"),
    "sched_setaffinity": _fixed("/process/execCPUAffinity"),
    "personality": _fixed("/linux/personality"),
    "set_mempolicy": _fixed("/linux/memoryPolicy"),
    "seccomp_load": _fixed("/linux/seccomp"),
    "console_setup": lambda ctx, step: (
        ["/process/terminal"] + (["/process/consoleSize"] if ctx.has("process", "consoleSize") else [])
    ),
    "execve": _execve,
    # files: cgroups, /proc
    "write_file": _write_file,
    "bpf": _bpf,
    "cgroup_apply": _fixed(R),
    "dbus_StartTransientUnit": _dbus,
    "dbus_SetUnitProperties": _dbus,
    "dbus_StopUnit": _fixed(RUNTIME),
    # hooks, network devices
    "hook": _hook,
    "netdev_move": _netdev,
}


def _is_prep(ctx: Context, step) -> bool:
    """Does this call only find or make a path in the rootfs for the operation after it?"""
    c = step.call
    if c.name not in _PREP or not c.args or not step.stage.startswith("init"):
        return False
    rel = ctx.rel(c.args[0])
    if rel is None:
        return False
    if c.name == "open":
        return bool(c.args[1] & os.O_CREAT)
    return True


def _target(ctx: Context, step) -> str | None:
    """The path in the rootfs an operation acts on, if any."""
    c = step.call
    index = {"mount": 1, "symlink": 1, "move_mount": 1, "copy_tree": 1}.get(c.name, 0)
    if (
        c.name not in ("mount", "symlink", "move_mount", "copy_tree", "mknod", "chown", "mount_setattr")
        or len(c.args) <= index
    ):
        return None
    return ctx.rel(c.args[index])


def causes(steps: list, config: dict, bundle: str, rootfs: str) -> list[list[str]]:
    """For each plan step (plan.Step), the config fields it comes from (see the module doc)."""
    ctx = Context(config, bundle, rootfs)
    out: list = [None] * len(steps)
    prep = [_is_prep(ctx, s) for s in steps]
    for i, s in enumerate(steps):
        if not prep[i]:
            out[i] = _apply(RULES.get(s.call.name), ctx, s)
            ctx.prev = s.call.name
            if s.call.name != "mkdir" and not _is_cpuset_write(s.call):
                ctx.inherit_dir = None
    for i in range(len(steps)):
        if prep[i]:
            out[i] = list(_prep_cause(ctx, steps, out, prep, i))
    return out


def _is_cpuset_write(call) -> bool:
    return call.name == "write_file" and os.path.basename(str(call.args[0])) in ("cpuset.cpus", "cpuset.mems")


def _apply(rule, ctx: Context, step) -> list:
    """A rule's causes; none (shown as "(no rule)") where there is no rule or it does not fit
    the call's arguments: a plan is still worth printing without them."""
    if rule is None:
        return []
    try:
        return list(rule(ctx, step))
    except (LookupError, TypeError, ValueError, AttributeError):
        return []


def _prep_cause(ctx: Context, steps: list, out: list, prep: list, i: int) -> list:
    rel = ctx.rel(steps[i].call.args[0])
    if rel is None:  # not reached: _is_prep wants a path in the rootfs
        return _ALL
    for j in range(i + 1, len(steps)):
        if steps[j].stage != steps[i].stage:
            break
        if prep[j]:
            continue
        target = _target(ctx, steps[j])
        if target is not None and (target == rel or target.startswith(rel.rstrip("/") + "/")):
            return out[j]
        break
    if ctx.cwd == rel or ctx.cwd.startswith(rel.rstrip("/") + "/"):
        return ["/process/cwd"]
    return _ALL


def matches(cause_list: list, field: str) -> bool:
    """Does an operation with these causes come from `field` (a JSON pointer prefix, whole
    parts: /mounts/1 is /mounts/1 and /mounts/1/..., not /mounts/10; "runtime": the runtime's)?"""
    field = field.rstrip("/") if field != "/" else field
    for c in cause_list:
        if c == field or field == "/" and c != RUNTIME or c.startswith(field + "/"):
            return True
    return False


def describe(config: dict, pointer: str) -> str:
    """A few words on what a cause is, for people: '/mounts/1' -> 'tmpfs on /dev'."""
    if pointer == RUNTIME:
        return "the runtime's own"
    parts = pointer.split("/")
    try:
        if parts[1] == "mounts" and len(parts) == 3:
            m = (config.get("mounts") or [])[int(parts[2])]
            kind, source = m.get("type") or "bind", m.get("source")
            return (
                f"{kind} on {m.get('destination')}"
                if source in (None, kind)
                else f"{kind} {source} on {m.get('destination')}"
            )
        linux = config.get("linux") or {}
        if parts[1:3] == ["linux", "namespaces"] and len(parts) == 4:
            n = linux["namespaces"][int(parts[3])]
            return n.get("type", "") + (f" {n['path']}" if n.get("path") else "")
        if parts[1:3] == ["linux", "devices"] and len(parts) == 4:
            return linux["devices"][int(parts[3])].get("path", "")
        if parts[1] == "hooks" and len(parts) == 4:
            return config["hooks"][parts[2]][int(parts[3])].get("path", "")
        if parts[1:3] in (["linux", "maskedPaths"], ["linux", "readonlyPaths"]) and len(parts) == 4:
            return linux[parts[2]][int(parts[3])]
        if parts[1:3] == ["process", "rlimits"] and len(parts) == 4:
            return (config.get("process") or {})["rlimits"][int(parts[3])].get("type", "")
    except (LookupError, ValueError, TypeError, AttributeError):
        pass
    return ""


class Explained:
    """A bundle's plan with its causes: what `ocirt plan` prints."""

    def __init__(self, plan, bundle: str, state_dir: str = ""):
        from . import config as config_mod

        self.plan = plan
        self.state_dir = state_dir  # <root>/<id>: the same for both sides of a diff
        self.bundle = os.path.abspath(bundle)
        self.config = config_mod.load(self.bundle)
        self.rootfs = config_mod.rootfs_path(self.bundle, self.config)
        self.causes = causes(plan.steps, self.config, self.bundle, self.rootfs)

    def describe(self, pointer: str) -> str:
        return describe(self.config, pointer)

    def placeholders(self) -> list:
        """What differs between two bundles of the same config: their paths."""
        state = [(self.state_dir, "<state>")] if self.state_dir else []
        return state + [(self.rootfs, "<rootfs>"), (self.bundle, "<bundle>")]
