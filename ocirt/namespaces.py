"""linux.namespaces: which to create, which to join by path, and in what order."""
from __future__ import annotations

from . import kernel as k
from .errors import ConfigError
from .record import field, record

FLAGS = {
    "pid": k.CLONE_NEWPID, "network": k.CLONE_NEWNET, "mount": k.CLONE_NEWNS,
    "ipc": k.CLONE_NEWIPC, "uts": k.CLONE_NEWUTS, "user": k.CLONE_NEWUSER,
    "cgroup": k.CLONE_NEWCGROUP, "time": k.CLONE_NEWTIME,
}

# setns order: the user namespace first (it owns the others), mount last but before pid/time,
# which only take effect for children.
JOIN_ORDER = ("user", "ipc", "uts", "network", "cgroup", "mount", "pid", "time")

# /proc/PID/ns file names
PROC_NAMES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
              "user": "user", "cgroup": "cgroup", "time": "time"}


@record
class NamespacePlan:
    new: list[str] = field(default_factory=list)          # types to unshare
    join: list[tuple[str, str]] = field(default_factory=list)  # (type, path) in JOIN_ORDER

    def has(self, nstype: str) -> bool:
        return nstype in self.new or any(t == nstype for t, _ in self.join)

    def new_flags(self, exclude=("user",)) -> int:
        flags = 0
        for t in self.new:
            if t not in exclude:
                flags |= FLAGS[t]
        return flags


def plan(config: dict) -> NamespacePlan:
    namespaces = config.get("linux", {}).get("namespaces") or []
    seen: set[str] = set()
    out = NamespacePlan()
    joins = {}
    for i, ns in enumerate(namespaces):
        nstype = ns.get("type")
        if nstype not in FLAGS:
            raise ConfigError(f"/linux/namespaces/{i}/type", f"unknown namespace type {nstype!r}")
        if nstype in seen:
            raise ConfigError(f"/linux/namespaces/{i}", f"duplicated namespace type {nstype!r}")
        seen.add(nstype)
        if ns.get("path"):
            joins[nstype] = ns["path"]
        else:
            out.new.append(nstype)
    out.join = [(t, joins[t]) for t in JOIN_ORDER if t in joins]
    if "user" not in seen and (config.get("linux", {}).get("uidMappings") or
                               config.get("linux", {}).get("gidMappings")):
        raise ConfigError("/linux/uidMappings", "user namespace mappings given without a user namespace")
    if "user" in out.new and not config.get("linux", {}).get("uidMappings"):
        raise ConfigError("/linux/uidMappings", "a new user namespace needs uidMappings")
    if config.get("linux", {}).get("timeOffsets") and "time" not in out.new:
        raise ConfigError("/linux/timeOffsets", "timeOffsets need a new time namespace")
    return out


def id_map(mappings: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def time_offsets(offsets: dict) -> str:
    clocks = {"monotonic": "monotonic", "boottime": "boottime"}
    lines = []
    for name, off in offsets.items():
        if name in clocks:
            lines.append(f"{clocks[name]} {off.get('secs', 0)} {off.get('nanosecs', 0)}\n")
    return "".join(lines)
