"""Scheduling and execution attributes of a container process, parsed and checked up front.

process.scheduler, process.ioPriority, process.execCPUAffinity (config.md "Linux Process") and
linux.personality, linux.memoryPolicy (config-linux.md). The parent turns them into the numbers
the syscalls take, before anything is made: a bad value fails create (or exec) with a ConfigError
naming the field. The calls themselves are made by the process (process.set_attributes) and, for
execCPUAffinity, by exec (execute.exec_process, stages.exec_stage1).

Only imported when a config has one of these fields (kept off create's usual path).
"""

from __future__ import annotations

from .errors import ConfigError

# sched_setattr(2): include/uapi/linux/sched.h
SCHED_POLICIES = {
    "SCHED_OTHER": 0,
    "SCHED_FIFO": 1,
    "SCHED_RR": 2,
    "SCHED_BATCH": 3,
    "SCHED_ISO": 4,
    "SCHED_IDLE": 5,
    "SCHED_DEADLINE": 6,
}
SCHED_FLAGS = {
    "SCHED_FLAG_RESET_ON_FORK": 0x01,
    "SCHED_FLAG_RECLAIM": 0x02,
    "SCHED_FLAG_DL_OVERRUN": 0x04,
    "SCHED_FLAG_KEEP_POLICY": 0x08,
    "SCHED_FLAG_KEEP_PARAMS": 0x10,
    "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
    "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
}
RT_POLICIES = (1, 2)
DL_SCALE_MIN_RUNTIME = 1 << 10  # the kernel refuses a deadline runtime under 1024 ns

# ioprio_set(2): include/uapi/linux/ioprio.h
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_CLASS_SHIFT = 13
IOPRIO_LEVELS = 8

# personality(2): include/uapi/linux/personality.h
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}

# set_mempolicy(2): include/uapi/linux/mempolicy.h
MPOL_MODES = {
    "MPOL_DEFAULT": 0,
    "MPOL_PREFERRED": 1,
    "MPOL_BIND": 2,
    "MPOL_INTERLEAVE": 3,
    "MPOL_LOCAL": 4,
    "MPOL_PREFERRED_MANY": 5,
    "MPOL_WEIGHTED_INTERLEAVE": 6,
}
MPOL_FLAGS = {
    "MPOL_F_NUMA_BALANCING": 1 << 13,
    "MPOL_F_RELATIVE_NODES": 1 << 14,
    "MPOL_F_STATIC_NODES": 1 << 15,
}
MPOL_NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")  # set_mempolicy(2): nodemask must be empty
MPOL_SOME_NODES = (
    "MPOL_BIND",
    "MPOL_INTERLEAVE",
    "MPOL_WEIGHTED_INTERLEAVE",
    "MPOL_PREFERRED_MANY",
)  # ... must not be empty

MAX_CPUS = 8192  # NR_CPUS's largest configuration
MAX_NODES = 1024  # MAX_NUMNODES's largest (NODES_SHIFT 10)

CPU_POSSIBLE = "/sys/devices/system/cpu/possible"
NODE_DIR = "/sys/devices/system/node"


class _Where:
    """Builds ConfigErrors for one document (config.json, or exec's process.json)."""

    def __init__(self, base: str, document: str):
        self.base, self.document = base, document

    def error(self, rel: str, rule: str) -> ConfigError:
        return ConfigError(self.base + rel, rule, self.document)


def _obj(value, where: _Where, rel: str) -> dict:
    if not isinstance(value, dict):
        raise where.error(rel, "must be an object")
    return value


def _int(obj: dict, key: str, where: _Where, rel: str, lo: int, hi: int, default: int = 0) -> int:
    value = obj.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"{rel}/{key}", "must be an integer")
    if not lo <= value <= hi:
        raise where.error(f"{rel}/{key}", f"{value} is out of range [{lo}, {hi}]")
    return value


def _names(obj: dict, key: str, table: dict, where: _Where, rel: str) -> tuple[list[str], int]:
    """A list of names from `table`: (the names, their values or'ed)."""
    names = obj.get(key) or []
    if not isinstance(names, list):
        raise where.error(f"{rel}/{key}", "must be an array")
    bits = 0
    for i, name in enumerate(names):
        if name not in table:
            raise where.error(f"{rel}/{key}/{i}", f"unknown flag {name!r}")
        bits |= table[name]
    return names, bits


def _enum(obj: dict, key: str, table: dict, where: _Where, rel: str) -> str:
    value = obj.get(key)
    if value is None:
        raise where.error(f"{rel}/{key}", "is required")
    if value not in table:
        raise where.error(f"{rel}/{key}", f"unknown value {value!r} (one of {', '.join(table)})")
    return value


# -- lists of CPUs / nodes ---------------------------------------------------------------------


def parse_list(text, where: _Where, rel: str, limit: int, what: str = "CPU") -> list[int]:
    """A kernel cpu/node list ("0-3,7", also the "0-7:2/4" stride form of bitmap_parselist)."""
    if not isinstance(text, str):
        raise where.error(rel, "must be a string")
    out: set[int] = set()
    text = text.strip()
    if not text:
        return []

    def number(s: str) -> int:
        s = s.strip()
        if not (s.isascii() and s.isdigit()):
            raise where.error(rel, f"invalid {what} list {text!r}: {s!r} is not a number")
        n = int(s)
        if n >= limit:
            raise where.error(rel, f"invalid {what} list {text!r}: {n} is too large")
        return n

    for part in text.split(","):
        span, colon, stride = part.partition(":")
        lo_s, dash, hi_s = span.partition("-")
        lo = number(lo_s)
        hi = number(hi_s) if dash else lo
        if hi < lo:
            raise where.error(rel, f"invalid {what} list {text!r}: range {lo}-{hi} is reversed")
        used, group = 1, 1
        if colon:
            used_s, slash, group_s = stride.partition("/")
            if not dash or not slash:
                raise where.error(rel, f"invalid {what} list {text!r}: {part.strip()!r}")
            used, group = number(used_s), number(group_s)
            if not 0 < used <= group:
                raise where.error(rel, f"invalid {what} list {text!r}: {part.strip()!r}")
        for start in range(lo, hi + 1, group):
            out.update(range(start, min(start + used, hi + 1)))
    return sorted(out)


def _read_list(path: str) -> set[int] | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return set(parse_list(text, _Where(path, "host"), "", 1 << 20)) if text else set()


def _on_host(items: list[int], host: set[int] | None, where: _Where, rel: str, what: str) -> None:
    if host is None:
        return
    missing = [n for n in items if n not in host]
    if missing:
        raise where.error(
            rel, f"{what} {missing[0]} is not on this host (it has {what}s {_fmt_list(sorted(host))})"
        )


def _fmt_list(items: list[int]) -> str:
    runs, start = [], None
    for i, n in enumerate(items):
        if start is None:
            start = n
        if i + 1 == len(items) or items[i + 1] != n + 1:
            runs.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ",".join(runs) or "none"


# -- process.* ---------------------------------------------------------------------------------


def parse_scheduler(value, where: _Where) -> tuple:
    """process.scheduler -> (policy, flags, nice, priority, runtime, deadline, period), the
    arguments of sched_setattr(2). Checks what the kernel would refuse with EINVAL."""
    rel = "/scheduler"
    s = _obj(value, where, rel)
    name = _enum(s, "policy", SCHED_POLICIES, where, rel)
    policy = SCHED_POLICIES[name]
    _, flags = _names(s, "flags", SCHED_FLAGS, where, rel)
    nice = _int(s, "nice", where, rel, -20, 19)
    if policy in RT_POLICIES:
        priority = _int(s, "priority", where, rel, 0, 99)
        if priority == 0:
            raise where.error(f"{rel}/priority", f"{name} needs a static priority in [1, 99]")
    else:
        priority = _int(s, "priority", where, rel, -(1 << 31), (1 << 31) - 1)
        if priority != 0:
            raise where.error(
                f"{rel}/priority",
                f"must be 0 for {name} (a static priority 1-99 is for SCHED_FIFO and SCHED_RR)",
            )
    u63 = (1 << 63) - 1
    runtime = _int(s, "runtime", where, rel, 0, u63)
    deadline = _int(s, "deadline", where, rel, 0, u63)
    period = _int(s, "period", where, rel, 0, u63)
    if name == "SCHED_DEADLINE":
        if deadline == 0:
            raise where.error(f"{rel}/deadline", "SCHED_DEADLINE needs a deadline")
        if runtime < DL_SCALE_MIN_RUNTIME:
            raise where.error(
                f"{rel}/runtime", f"SCHED_DEADLINE needs a runtime of at least {DL_SCALE_MIN_RUNTIME} ns"
            )
        if runtime > deadline:
            raise where.error(f"{rel}/runtime", "must not exceed the deadline")
        if period and period < deadline:
            raise where.error(f"{rel}/period", "must not be shorter than the deadline")
    return (policy, flags, nice, priority, runtime, deadline, period)


def parse_io_priority(value, where: _Where) -> int:
    """process.ioPriority -> the ioprio value of ioprio_set(2): class << 13 | level."""
    rel = "/ioPriority"
    p = _obj(value, where, rel)
    cls = IOPRIO_CLASSES[_enum(p, "class", IOPRIO_CLASSES, where, rel)]
    if p.get("priority") is None:
        raise where.error(f"{rel}/priority", "is required")
    level = _int(p, "priority", where, rel, 0, IOPRIO_LEVELS - 1)
    return (cls << IOPRIO_CLASS_SHIFT) | level


def parse_affinity(value, where: _Where) -> tuple[list[int] | None, list[int] | None]:
    """process.execCPUAffinity -> (initial, final) CPU lists; None where absent or empty (the
    runtime SHOULD NOT change the affinity then)."""
    rel = "/execCPUAffinity"
    a = _obj(value, where, rel)
    possible = _read_list(CPU_POSSIBLE)
    out: list = []
    for key in ("initial", "final"):
        if a.get(key) is None:
            out.append(None)
            continue
        cpus = parse_list(a[key], where, f"{rel}/{key}", MAX_CPUS)
        _on_host(cpus, possible, where, f"{rel}/{key}", "CPU")
        out.append(cpus or None)
    return out[0], out[1]


def parse_process(spec, proc: dict, base: str, document: str) -> None:
    """Fill `spec` (a process.ProcessSpec) from the fields of `proc` (config.json's process at
    base "/process", or exec's process.json at base "")."""
    where = _Where(base, document)
    if proc.get("scheduler") is not None:
        spec.scheduler = parse_scheduler(proc["scheduler"], where)
    if proc.get("ioPriority") is not None:
        spec.io_priority = parse_io_priority(proc["ioPriority"], where)
    if proc.get("execCPUAffinity") is not None:
        spec.affinity_initial, spec.affinity_final = parse_affinity(proc["execCPUAffinity"], where)


# -- linux.* -----------------------------------------------------------------------------------


def parse_personality(value, where: _Where) -> int:
    rel = "/personality"
    p = _obj(value, where, rel)
    domain = PERSONALITY_DOMAINS[_enum(p, "domain", PERSONALITY_DOMAINS, where, rel)]
    flags = p.get("flags") or []
    if not isinstance(flags, list):
        raise where.error(f"{rel}/flags", "must be an array")
    if flags:
        raise where.error(
            f"{rel}/flags/0",
            f"unsupported personality flag {flags[0]!r} (config-linux.md: no flag values are supported)",
        )
    return domain


def parse_memory_policy(value, where: _Where) -> tuple[int, list[int]]:
    """linux.memoryPolicy -> (mode | flags, nodes), the arguments of set_mempolicy(2)."""
    rel = "/memoryPolicy"
    m = _obj(value, where, rel)
    mode_name = _enum(m, "mode", MPOL_MODES, where, rel)
    flag_names, flags = _names(m, "flags", MPOL_FLAGS, where, rel)
    if "MPOL_F_STATIC_NODES" in flag_names and "MPOL_F_RELATIVE_NODES" in flag_names:
        raise where.error(
            f"{rel}/flags", "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES are mutually exclusive"
        )
    if m.get("nodes") is None:
        nodes = []
    else:
        nodes = parse_list(m["nodes"], where, f"{rel}/nodes", MAX_NODES, what="node")
    if mode_name in MPOL_NO_NODES:
        if nodes:
            raise where.error(f"{rel}/nodes", f"{mode_name} takes no nodes")
        if mode_name == "MPOL_LOCAL" and flags & (
            MPOL_FLAGS["MPOL_F_STATIC_NODES"] | MPOL_FLAGS["MPOL_F_RELATIVE_NODES"]
        ):
            raise where.error(f"{rel}/flags", "MPOL_LOCAL takes no node flags")
    elif mode_name in MPOL_SOME_NODES and not nodes:
        raise where.error(f"{rel}/nodes", f"{mode_name} needs at least one node")
    if "MPOL_F_RELATIVE_NODES" not in flag_names:  # relative nodes are remapped: any number
        _on_host(nodes, _read_list(f"{NODE_DIR}/possible"), where, f"{rel}/nodes", "node")
    return MPOL_MODES[mode_name] | flags, nodes


def parse_linux(linux: dict) -> tuple[int | None, tuple | None]:
    """(personality, memory policy) of config.json's linux object; None where absent."""
    import os

    where = _Where("/linux", "config.json")
    personality = mempolicy = None
    if linux.get("personality") is not None:
        personality = parse_personality(linux["personality"], where)
    if linux.get("memoryPolicy") is not None:
        if not os.path.isdir(NODE_DIR):
            raise where.error(
                "/memoryPolicy", f"the host kernel has no NUMA support ({NODE_DIR} does not exist)"
            )
        mempolicy = parse_memory_policy(linux["memoryPolicy"], where)
    return personality, mempolicy


def features() -> dict:
    """features-linux.md memoryPolicy: the modes and flags ocirt recognizes."""
    return {"modes": list(MPOL_MODES), "flags": list(MPOL_FLAGS)}
