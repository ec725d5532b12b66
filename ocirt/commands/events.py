"""`events [--stats] [--interval 5s] <id>`: runc's event stream, one JSON object a line.

    {"type":"stats","id":ID,"data":{...}}    the cgroup statistics (types.Stats of runc)
    {"type":"oom","id":ID}                    the cgroup hit its memory limit

--stats prints one stats event and exits. Otherwise a stats event every --interval, and an oom
event whenever the OOM counter of the memory cgroup grows (memory.oom_control on v1,
memory.events on v2, polled: no eventfd/inotify), until the container stops or is deleted.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time

from ..cli import Opt, UsageError
from ..container import Container
from ..errors import OcirtError
from ..state import Status
from .pause import exact_id

USAGE = "events [command options] <container-id>"
OPTIONS = (
    Opt("interval", value=True, default="5s", help="set the stats collection interval"),
    Opt("stats", help="display the container's stats then exit"),
)

OOM_POLL = 0.2       # seconds between two reads of the OOM counter

# -- Go's time.ParseDuration ------------------------------------------------------------------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}
_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")


def parse_duration(text: str) -> float:
    """'1h2m3.5s', '100ms', '-5s', '0' -> seconds; ValueError otherwise (Go's grammar)."""
    s = text
    sign = 1.0
    if s[:1] in ("-", "+"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(text)
    total, pos = 0.0, 0
    while pos < len(s):
        m = _PART.match(s, pos)
        number, unit = m.group(1), m.group(2)
        if number in ("", ".") or not unit:
            raise ValueError(text)
        if unit not in _UNITS:
            raise ValueError(text)
        total += float(number) * _UNITS[unit]
        pos = m.end()
    return sign * total


# -- runc's JSON shape of the statistics ------------------------------------------------------------

_CPUSET_V1 = (("cpu_exclusive", "cpuset.cpu_exclusive"), ("mem_hardwall", "cpuset.mem_hardwall"),
              ("mem_exclusive", "cpuset.mem_exclusive"),
              ("memory_migrate", "cpuset.memory_migrate"),
              ("memory_spread_page", "cpuset.memory_spread_page"),
              ("memory_spread_slab", "cpuset.memory_spread_slab"),
              ("memory_pressure", "cpuset.memory_pressure"),
              ("sched_load_balance", "cpuset.sched_load_balance"),
              ("sched_relax_domain_level", "cpuset.sched_relax_domain_level"))
_BLKIO_KEYS = ("ioServiceBytesRecursive", "ioServicedRecursive", "ioQueueRecursive",
               "ioServiceTimeRecursive", "ioWaitTimeRecursive", "ioMergedRecursive",
               "ioTimeRecursive", "sectorsRecursive")


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
    """cg.stats() -> the "data" of runc's stats event: same keys, order and omitempty rules
    as runc's types.Stats (Go zero values present unless the field is omitempty)."""
    cpu = data.get("cpu") or {}
    u = cpu.get("usage") or {}
    usage = _omitempty({"total": u.get("total", 0), "percpu": u.get("percpu"),
                        "percpu_kernel": u.get("percpu_kernel"),
                        "percpu_user": u.get("percpu_user")})
    usage["kernel"] = u.get("kernel", 0)
    usage["user"] = u.get("user", 0)
    t = cpu.get("throttling") or {}
    throttling = _omitempty({"periods": t.get("periods", 0),
                             "throttledPeriods": t.get("throttledPeriods", 0),
                             "throttledTime": t.get("throttledTime", 0)})
    cs = data.get("cpuset") or {}
    cpuset = {}
    if cs.get("cpus"):
        cpuset["cpus"] = cs["cpus"]
    cpuset["cpu_exclusive"] = 0
    if cs.get("mems"):
        cpuset["mems"] = cs["mems"]
    for key, name in _CPUSET_V1[1:]:
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
        entries = [_omitempty({"major": e.get("major", 0), "minor": e.get("minor", 0),
                               "op": e.get("op", ""), "value": e.get("value", 0)})
                   for e in b.get(key) or ()]
        if entries:
            blkio[key] = entries
    hugetlb = {}
    for size, h in (data.get("hugetlb") or {}).items():
        entry = _omitempty({"usage": h.get("usage", 0), "max": h.get("max", 0)})
        entry["failcnt"] = h.get("failcnt", 0)
        hugetlb[size] = entry
    return {"cpu": {"usage": usage, "throttling": throttling}, "cpuset": cpuset, "memory": memory,
            "pids": pids, "blkio": blkio, "hugetlb": hugetlb, "intel_rdt": {},
            "network_interfaces": None}


def stats_event(c: Container, cg) -> dict:
    cpuset_dir = None if cg.kind == "v2" else cg.path("cpuset")
    return {"type": "stats", "id": c.state.id, "data": runc_stats(cg.stats(), cpuset_dir)}


def emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


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


# -- main ------------------------------------------------------------------------------------------

def main(g, o, args) -> int:
    try:
        interval = parse_duration(o["interval"])
    except ValueError:
        raise UsageError(f'invalid value "{o["interval"]}" for flag -interval: parse error') from None
    container_id = exact_id(args, "events")
    c = Container.open(g.root, container_id, lock=False)
    if interval <= 0:
        raise OcirtError("duration interval must be greater than 0")
    if c.status() is Status.STOPPED:
        raise OcirtError(f"container with id {container_id} is not running")
    cg = c.cgroup()
    try:
        if o["stats"]:
            emit(stats_event(c, cg))
            return 0
        stream(g, c, cg, interval)
    except BrokenPipeError:
        # The reader went away (`ocirt events ID | head -1`): stop quietly, and keep the
        # interpreter's final flush from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


def stream(g, c: Container, cg, interval: float) -> None:
    where = oom_counter_file(cg)
    last_oom = read_counter(where)
    next_stats = time.monotonic() + interval
    while True:
        now = time.monotonic()
        if now >= next_stats:
            try:
                emit(stats_event(c, cg))
            except OcirtError as e:
                g.log.error(str(e))
            while next_stats <= now:          # like Go's time.Tick: missed ticks are dropped
                next_stats += interval
        count = read_counter(where)
        if count is not None and last_oom is not None and count > last_oom:
            emit({"type": "oom", "id": c.state.id})
        if count is not None:
            last_oom = count
        if not os.path.exists(c.sd.state_file) or c.status() is Status.STOPPED:
            return
        time.sleep(max(0.0, min(next_stats - time.monotonic(), OOM_POLL)))
