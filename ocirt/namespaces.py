"""linux.namespaces: which to create, which to join by path, and in what order."""

from __future__ import annotations

from . import kernel as k
from .errors import ConfigError, OcirtError, json_pointer
from .record import field, record

FLAGS = {
    "pid": k.CLONE_NEWPID,
    "network": k.CLONE_NEWNET,
    "mount": k.CLONE_NEWNS,
    "ipc": k.CLONE_NEWIPC,
    "uts": k.CLONE_NEWUTS,
    "user": k.CLONE_NEWUSER,
    "cgroup": k.CLONE_NEWCGROUP,
    "time": k.CLONE_NEWTIME,
}

# setns order: the user namespace first (it owns the others), mount last but before pid/time,
# which only take effect for children.
JOIN_ORDER = ("user", "ipc", "uts", "network", "cgroup", "mount", "pid", "time")

# /proc/PID/ns file names
PROC_NAMES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}


@record
class Namespaces:
    """linux.namespaces, checked: what to unshare and what to join."""

    new: list[str] = field(default_factory=list)  # types to unshare
    join: list[tuple[str, str, int]] = field(default_factory=list)  # (type, path, index), JOIN_ORDER

    def has(self, nstype: str) -> bool:
        return nstype in self.new or any(j[0] == nstype for j in self.join)

    def new_flags(self, exclude=("user",)) -> int:
        flags = 0
        for t in self.new:
            if t not in exclude:
                flags |= FLAGS[t]
        return flags


def in_user_namespace() -> bool:
    """Does this process run in a user namespace other than the initial one (its uid map is not
    the whole range)?"""
    try:
        with open("/proc/self/uid_map", "rb") as f:
            fields = f.read().split()
    except OSError:
        return False
    return fields != [b"0", b"0", b"4294967295"]


def parse(config: dict) -> Namespaces:
    namespaces = config.get("linux", {}).get("namespaces") or []
    seen: set[str] = set()
    out = Namespaces()
    joins = {}
    for i, ns in enumerate(namespaces):
        nstype = ns.get("type")
        if nstype not in FLAGS:
            raise ConfigError(f"/linux/namespaces/{i}/type", f"unknown namespace type {nstype!r}")
        if nstype in seen:
            raise ConfigError(f"/linux/namespaces/{i}", f"duplicated namespace type {nstype!r}")
        seen.add(nstype)
        if ns.get("path"):
            joins[nstype] = (ns["path"], i)
        else:
            out.new.append(nstype)
    out.join = [(t, *joins[t]) for t in JOIN_ORDER if t in joins]
    if "user" not in seen and (
        config.get("linux", {}).get("uidMappings") or config.get("linux", {}).get("gidMappings")
    ):
        raise ConfigError("/linux/uidMappings", "user namespace mappings given without a user namespace")
    if "user" in out.new:
        linux = config.get("linux", {})
        if not linux.get("uidMappings") or not linux.get("gidMappings"):
            raise ConfigError(
                "/linux/uidMappings" if not linux.get("uidMappings") else "/linux/gidMappings",
                "a new user namespace needs both uidMappings and gidMappings",
            )
    if config.get("linux", {}).get("timeOffsets") and "time" not in out.new:
        raise ConfigError("/linux/timeOffsets", "timeOffsets need a new time namespace")
    return out


def id_map(mappings: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def write_id_maps(kernel: k.Kernel, pid, linux: dict, unprivileged: bool) -> None:
    """create's parent, once stage 1 (`pid`) has its new user namespace: uid_map and gid_map."""
    for name, key in (("uid_map", "uidMappings"), ("gid_map", "gidMappings")):
        data = id_map(linux.get(key) or [])
        if not data:
            continue
        if name == "gid_map" and unprivileged:
            # An unprivileged writer may map its own gid only once setgroups is denied
            # (user_namespaces(7)); the container then cannot change its groups.
            try:
                kernel.write_file(f"/proc/{pid}/setgroups", "deny")
            except OSError as e:
                raise OcirtError(f"/linux/gidMappings: write /proc/{pid}/setgroups", e.errno) from None
        try:
            kernel.write_file(f"/proc/{pid}/{name}", data)
        except OSError as e:
            raise OcirtError(f"/linux/{key}: write /proc/{pid}/{name}", e.errno) from None


def time_offsets(offsets: dict) -> str:
    clocks = {"monotonic": "monotonic", "boottime": "boottime"}
    lines = []
    for name, off in offsets.items():
        if name in clocks:
            lines.append(f"{clocks[name]} {off.get('secs', 0)} {off.get('nanosecs', 0)}\n")
    return "".join(lines)


# sysctls that belong to a namespace (runc's rules); any other one would change the host
_IPC_SYSCTLS = {
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
}


def sysctl_path(key: str) -> str:
    """The file under /proc/sys of a sysctl, named in either of sysctl(8)'s forms: with dots, or
    with slashes when the first separator is one; a dot is then part of a name (a network
    interface's: net/ipv4/conf/eth0.100/forwarding)."""
    slash, dot = key.find("/"), key.find(".")
    if slash != -1 and (dot == -1 or slash < dot):
        return key
    return key.replace(".", "/")


def check_sysctl(sysctl: dict, ns: Namespaces) -> None:
    for key in sysctl:
        where = json_pointer(("linux", "sysctl", key))
        path = sysctl_path(key)
        if path != key.replace(".", "/") and {"", ".", ".."} & set(path.split("/")):
            # a dot in the dotted form is a separator, so only here could a name step out
            raise ConfigError(where, f"sysctl {key!r} is not a sysctl name")
        key = path.replace("/", ".")  # the rules below name sysctls in the dotted form
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            need = "ipc"
        elif key.startswith("net."):
            need = "network"
        elif key in ("kernel.hostname", "kernel.domainname"):
            need = "uts"
        else:
            raise ConfigError(where, f"sysctl {key!r} is not in a separate kernel namespace")
        if not ns.has(need):
            raise ConfigError(where, f"sysctl {key!r} is not allowed in the host's {need} namespace")
