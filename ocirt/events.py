"""A container's events, runc's: statistics in runc's JSON shape, and OOM kills.

    {"type":"stats","id":ID,"data":{...}}    the cgroup statistics (types.Stats of runc)
    {"type":"oom","id":ID}                    the cgroup hit its memory limit

The OOM counter of the memory cgroup (memory.oom_control on v1, memory.events on v2) is polled:
no eventfd/inotify. `ocirt events` (ocirt/commands/events.py) prints these as JSON lines; the API
(ocirt.api.Container.stats / .events) returns them.
"""

from __future__ import annotations

import os
import time

from .errors import OcirtError
from .state import Status

OOM_POLL = 0.2  # seconds between two reads of the OOM counter


def watched_cgroup(c):
    """The cgroup of a container whose events can be watched (OcirtError when it is stopped or
    has no cgroup)."""
    if c.status() is Status.STOPPED:
        raise OcirtError(f"container with id {c.state.id} is not running")
    cg = c.cgroup()
    if cg.kind == "none":
        raise OcirtError("the container has no cgroup")
    from .container import present

    return present(cg, c.state.id)


# -- runc's JSON shape of the statistics ------------------------------------------------------------

_CPUSET_V1 = (
    ("cpu_exclusive", "cpuset.cpu_exclusive"),
    ("mem_hardwall", "cpuset.mem_hardwall"),
    ("mem_exclusive", "cpuset.mem_exclusive"),
    ("memory_migrate", "cpuset.memory_migrate"),
    ("memory_spread_page", "cpuset.memory_spread_page"),
    ("memory_spread_slab", "cpuset.memory_spread_slab"),
    ("memory_pressure", "cpuset.memory_pressure"),
    ("sched_load_balance", "cpuset.sched_load_balance"),
    ("sched_relax_domain_level", "cpuset.sched_relax_domain_level"),
)
_BLKIO_KEYS = (
    "ioServiceBytesRecursive",
    "ioServicedRecursive",
    "ioQueueRecursive",
    "ioServiceTimeRecursive",
    "ioWaitTimeRecursive",
    "ioMergedRecursive",
    "ioTimeRecursive",
    "sectorsRecursive",
)


def _omitempty(d: dict) -> dict:
    return {k: v for k, v in d.items() if v not in (None, 0, "", [], {})}


def _read_int(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def _mem_entry(e: dict | None) -> dict:
    e = e or {}
    out = {"limit": e.get("limit", 0)}
    out.update(_omitempty({"usage": e.get("usage", 0), "max": e.get("max", 0)}))
    out["failcnt"] = e.get("failcnt", 0)
    return out


def runc_stats(data: dict, cpuset_dir: str | None = None) -> dict:
    """Cgroup.stats() -> the "data" of runc's stats event: same keys, order and omitempty rules
    as runc's types.Stats (Go zero values present unless the field is omitempty)."""
    cpu = data.get("cpu") or {}
    u = cpu.get("usage") or {}
    usage = _omitempty(
        {
            "total": u.get("total", 0),
            "percpu": u.get("percpu"),
            "percpu_kernel": u.get("percpu_kernel"),
            "percpu_user": u.get("percpu_user"),
        }
    )
    usage["kernel"] = u.get("kernel", 0)
    usage["user"] = u.get("user", 0)
    t = cpu.get("throttling") or {}
    throttling = _omitempty(
        {
            "periods": t.get("periods", 0),
            "throttledPeriods": t.get("throttledPeriods", 0),
            "throttledTime": t.get("throttledTime", 0),
        }
    )
    cs = data.get("cpuset") or {}
    cpuset = {}
    if cs.get("cpus"):
        cpuset["cpus"] = cs["cpus"]
    cpuset["cpu_exclusive"] = 0
    if cs.get("mems"):
        cpuset["mems"] = cs["mems"]
    for key, _ in _CPUSET_V1[1:]:
        cpuset[key] = 0
    if cpuset_dir:
        for key, name in _CPUSET_V1:
            cpuset[key] = _read_int(os.path.join(cpuset_dir, name))
    mem = data.get("memory") or {}
    memory = _omitempty({"cache": mem.get("cache", 0)})
    for key in ("usage", "swap", "kernel", "kernelTCP"):
        memory[key] = _mem_entry(mem.get(key))
    if mem.get("raw"):
        memory["raw"] = dict(sorted(mem["raw"].items()))
    p = data.get("pids") or {}
    pids = _omitempty({"current": p.get("current", 0), "limit": p.get("limit", 0)})
    b = data.get("blkio") or {}
    blkio = {}
    for key in _BLKIO_KEYS:
        entries = [
            _omitempty(
                {
                    "major": e.get("major", 0),
                    "minor": e.get("minor", 0),
                    "op": e.get("op", ""),
                    "value": e.get("value", 0),
                }
            )
            for e in b.get(key) or ()
        ]
        if entries:
            blkio[key] = entries
    hugetlb = {}
    for size, h in (data.get("hugetlb") or {}).items():
        entry = _omitempty({"usage": h.get("usage", 0), "max": h.get("max", 0)})
        entry["failcnt"] = h.get("failcnt", 0)
        hugetlb[size] = entry
    return {
        "cpu": {"usage": usage, "throttling": throttling},
        "cpuset": cpuset,
        "memory": memory,
        "pids": pids,
        "blkio": blkio,
        "hugetlb": hugetlb,
        "intel_rdt": {},
        "network_interfaces": None,
    }


# -- OOM ------------------------------------------------------------------------------------------


def oom_counter_file(cg) -> tuple[str, str] | None:
    """(file, key) whose value counts the cgroup's OOM events, or None without a memory cgroup."""
    if cg.kind == "v2":
        return os.path.join(cg.unified, "memory.events"), "oom"
    d = cg.path("memory")
    if not d:
        return None
    return os.path.join(d, "memory.oom_control"), "oom_kill"


def read_counter(where) -> int | None:
    if where is None:
        return None
    path, key = where
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[0] == key:
                    return int(parts[1])
    except (OSError, ValueError):
        return None
    return None


def stats_event(c, cg) -> dict:
    cpuset_dir = None if cg.kind == "v2" else cg.path("cpuset")
    return {"type": "stats", "id": c.state.id, "data": runc_stats(cg.stats(), cpuset_dir)}


def watch(c, cg, interval: float, on_error=None):
    """Yield a stats event every `interval` seconds (a failed one goes to on_error(OcirtError)
    instead, if given; else it is raised) and an oom event whenever the OOM counter grows,
    until the container stops or is deleted."""
    where = oom_counter_file(cg)
    last_oom = read_counter(where)
    next_stats = time.monotonic() + interval
    while True:
        now = time.monotonic()
        if now >= next_stats:
            try:
                event = stats_event(c, cg)
            except OcirtError as e:
                if on_error is None:
                    raise
                on_error(e)
            else:
                yield event
            while next_stats <= now:  # like Go's time.Tick: missed ticks are dropped
                next_stats += interval
        count = read_counter(where)
        if count is not None and last_oom is not None and count > last_oom:
            yield {"type": "oom", "id": c.state.id}
        if count is not None:
            last_oom = count
        if not os.path.exists(c.sd.state_file) or c.status() is Status.STOPPED:
            # an OOM kill that ended the container between the read above and this check
            # counts before the process dies: read once more, or its event would be lost
            count = read_counter(where)
            if count is not None and last_oom is not None and count > last_oom:
                yield {"type": "oom", "id": c.state.id}
            return
        time.sleep(max(0.0, min(next_stats - time.monotonic(), OOM_POLL)))
