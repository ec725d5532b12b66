"""`update [flags] <id>`: change the resource limits of a live container (runc's flags and JSON).

The new values come from --resources FILE ('-': stdin; Docker/containerd pass JSON on stdin,
podman a file) or from the individual flags; with --resources the flags are ignored, as in runc.
Only the fields runc's update takes are used: memory limit/reservation/swap(/checkBeforeUpdate),
cpu shares/quota/period/realtime*/cpus/mems (plus burst and idle), blockIO.weight, pids.limit,
unified; the rest of linux.resources is ignored (devices above all). Zero means "unchanged", as in
runc (Go cannot tell 0 from absent), pids.limit included.

The values are merged into the resources recorded for the container (state.json's cgroup
"resources"; config.json's linux.resources before the first update), the changed ones are
written to the cgroup, and the merged set is recorded for the next update. On a failure the
changed fields are set back to their recorded values (best effort) and nothing is recorded.
"""
from __future__ import annotations

import copy
import json
import os
import re
import sys

from ..cli import Opt, UsageError
from ..container import Container
from ..errors import ConfigError, OcirtError
from .pause import exact_id

USAGE = "update [command options] <container-id>"

_RESOURCES_HELP = """path to the file containing the resources to update or '-' to read from the standard input

The accepted format is as follow (unchanged values can be omitted):

{
  "memory": {
    "limit": 0,
    "reservation": 0,
    "swap": 0
  },
  "cpu": {
    "shares": 0,
    "quota": 0,
    "period": 0,
    "realtimeRuntime": 0,
    "realtimePeriod": 0,
    "cpus": "",
    "mems": ""
  },
  "blockIO": {
    "weight": 0
  }
}

Note: if data is to be read from a file or the standard input, all
other options are ignored."""

OPTIONS = (
    Opt("resources", "r", value=True, help=_RESOURCES_HELP),
    Opt("blkio-weight", value=True, default=0,
        help="Specifies per cgroup weight, range is from 10 to 1000"),
    Opt("cpu-period", value=True,
        help="CPU CFS period to be used for hardcapping (in usecs). 0 to use system default"),
    Opt("cpu-quota", value=True,
        help="CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period"),
    Opt("cpu-share", value=True, help="CPU shares (relative weight vs. other containers)"),
    Opt("cpu-rt-period", value=True,
        help="CPU realtime period to be used for hardcapping (in usecs). 0 to use system default"),
    Opt("cpu-rt-runtime", value=True,
        help="CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period"),
    Opt("cpuset-cpus", value=True, help="CPU(s) to use"),
    Opt("cpuset-mems", value=True, help="Memory node(s) to use"),
    Opt("kernel-memory", value=True, help="(obsoleted; do not use)"),
    Opt("kernel-memory-tcp", value=True, help="(obsoleted; do not use)"),
    Opt("memory", value=True, help="Memory limit (in bytes)"),
    Opt("memory-reservation", value=True, help="Memory reservation or soft_limit (in bytes)"),
    Opt("memory-swap", value=True,
        help="Total memory usage (memory + swap); set '-1' to enable unlimited swap"),
    Opt("pids-limit", value=True, default=0,
        help="Maximum number of pids allowed in the container"),
    Opt("l3-cache-schema", value=True, help="The string of Intel RDT/CAT L3 cache schema"),
    Opt("mem-bw-schema", value=True, help="The string of Intel RDT/MBA memory bandwidth schema"),
)

SECTIONS = ("memory", "cpu", "blockIO", "pids")
_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT64 = (0, (1 << 64) - 1)

# -- Go's number parsing, with its error texts -----------------------------------------------------


def _go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def parse_uint(opt: str, text: str) -> int:
    """strconv.ParseUint(text, 10, 64)."""
    if not re.fullmatch(r"[0-9]+", text):
        raise OcirtError(f"invalid value for {opt}: strconv.ParseUint: parsing {_go_quote(text)}: "
                         "invalid syntax")
    v = int(text)
    if v > _UINT64[1]:
        raise OcirtError(f"invalid value for {opt}: strconv.ParseUint: parsing {_go_quote(text)}: "
                         "value out of range")
    return v


def parse_int(opt: str, text: str) -> int:
    """strconv.ParseInt(text, 10, 64)."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise OcirtError(f"invalid value for {opt}: strconv.ParseInt: parsing {_go_quote(text)}: "
                         "invalid syntax")
    v = int(text)
    if not _INT64[0] <= v <= _INT64[1]:
        raise OcirtError(f"invalid value for {opt}: strconv.ParseInt: parsing {_go_quote(text)}: "
                         "value out of range")
    return v


def int_flag(opt: str, value) -> int:
    """A Go `flag` int: strconv.ParseInt(s, 0, 64) (0x.., 0o.., 0b.., 0NNN octal, _ separators)."""
    if isinstance(value, int):
        return value
    s = value
    sign, body = (s[0], s[1:]) if s[:1] in ("+", "-") else ("", s)
    try:
        if not body or body != body.strip():
            raise ValueError(s)
        if re.fullmatch(r"0[0-9_]+", body):      # Go: a leading 0 means octal
            v = int(body, 8)
        else:
            v = int(body, 0)
            if not body[:1].isdigit():
                raise ValueError(s)
    except ValueError:
        raise UsageError(f'invalid value "{s}" for flag -{opt}: parse error') from None
    v = -v if sign == "-" else v
    if not _INT64[0] <= v <= _INT64[1]:
        raise UsageError(f'invalid value "{s}" for flag -{opt}: parse error')
    return v


_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)*) ?([kKmMgGtTpP])?[iI]?[bB]?")
_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """docker/go-units RAMInBytes: '100m', '1.5g', '512KiB', '1024' (binary multiples)."""
    m = _SIZE.fullmatch(text)
    try:
        if not m:
            raise ValueError
        size = float(m.group(1))
    except ValueError:
        raise ValueError(f"invalid size: '{text}'") from None
    if m.group(2):
        size *= _BINARY[m.group(2).lower()]
    return int(size)


def memory_value(opt: str, text: str) -> int:
    if text == "-1":
        return -1
    try:
        return ram_in_bytes(text)
    except ValueError as e:
        raise OcirtError(f"invalid value for {opt}: {e}") from None


# -- the update as a linux.resources dict ----------------------------------------------------------

def from_flags(o: dict, log) -> dict:
    """The flags -> a partial linux.resources (runc's update.go, field by field)."""
    memory, cpu, blkio, pids = {}, {}, {}, {}
    weight = int_flag("blkio-weight", o["blkio_weight"])
    if weight != 0:
        blkio["weight"] = weight & 0xFFFF           # runc: uint16(val)
    if o["cpuset_cpus"]:
        cpu["cpus"] = o["cpuset_cpus"]
    if o["cpuset_mems"]:
        cpu["mems"] = o["cpuset_mems"]
    for opt, key in (("cpu-period", "period"), ("cpu-rt-period", "realtimePeriod"),
                     ("cpu-share", "shares")):
        val = o[opt.replace("-", "_")]
        if val:
            cpu[key] = parse_uint(opt, val)
    for opt, key in (("cpu-quota", "quota"), ("cpu-rt-runtime", "realtimeRuntime")):
        val = o[opt.replace("-", "_")]
        if val:
            cpu[key] = parse_int(opt, val)
    for opt, key in (("memory", "limit"), ("memory-swap", "swap"),
                     ("memory-reservation", "reservation")):
        val = o[opt.replace("-", "_")]
        if val:
            memory[key] = memory_value(opt, val)
    if o["kernel_memory"] or o["kernel_memory_tcp"]:
        log.warning("Kernel memory settings are ignored and will be removed")
    limit = int_flag("pids-limit", o["pids_limit"])
    if limit != 0:
        pids["limit"] = limit
    return _delta(memory, cpu, blkio, pids, {})


def from_json(text: str) -> dict:
    """A linux.resources JSON (the whole object type-checked, as Go's decoder does) -> the part
    of it that update uses."""
    try:
        d = json.loads(text)
    except ValueError as e:
        raise OcirtError(f"invalid resources JSON: {e}") from None
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise OcirtError(f"invalid resources JSON: expected an object, not {type(d).__name__}")
    from ..cgroups import Resources
    try:
        Resources.parse(d)
    except ConfigError as e:
        raise OcirtError(input_error(e)) from None
    sec = {name: (d.get(name) if isinstance(d.get(name), dict) else {}) for name in SECTIONS}
    memory = {k: sec["memory"][k] for k in ("limit", "reservation", "swap", "checkBeforeUpdate")
              if sec["memory"].get(k) is not None}
    cpu = {k: sec["cpu"][k] for k in ("shares", "quota", "burst", "period", "realtimeRuntime",
                                      "realtimePeriod", "idle")
           if sec["cpu"].get(k) is not None}
    cpu.update({k: sec["cpu"][k] for k in ("cpus", "mems") if sec["cpu"].get(k)})
    blkio = {"weight": sec["blockIO"]["weight"]} if sec["blockIO"].get("weight") is not None else {}
    pids = {"limit": sec["pids"]["limit"]} if sec["pids"].get("limit") else {}
    return _delta(memory, cpu, blkio, pids, d.get("unified") or {})


def _delta(memory, cpu, blkio, pids, unified) -> dict:
    if memory.get("limit") == -1 and "swap" not in memory:
        memory["swap"] = -1    # unlimited memory: unlimited memory+swap too (runc)
    out = {}
    for name, part in (("memory", memory), ("cpu", cpu), ("blockIO", blkio), ("pids", pids),
                       ("unified", unified)):
        if part:
            out[name] = part
    return out


def plan(delta: dict, base: dict, v2: bool) -> tuple[dict, dict, dict]:
    """(what to write now, what to record, what to write back on a failure)."""
    base = base if isinstance(base, dict) else {}
    record = copy.deepcopy(base)
    record.pop("devices", None)            # never re-applied by update (runc: SkipDevices)
    apply = copy.deepcopy(delta)
    rollback: dict = {}
    for name in SECTIONS + ("unified",):
        new = delta.get(name)
        if not new:
            continue
        old = base.get(name) if isinstance(base.get(name), dict) else {}
        record[name] = {**old, **new}
        back = {k: old[k] for k in new if old.get(k) is not None}
        if back:
            rollback[name] = back
    if v2:
        # memory.swap.max is swap - limit: a new limit or swap needs the other half.
        for target, source in ((apply, record.get("memory") or {}),
                               (rollback, base.get("memory") or {})):
            mem = target.get("memory")
            if not mem:
                continue
            for need, have in (("swap", "limit"), ("limit", "swap")):
                if have in mem and need not in mem and source.get(need):
                    mem[need] = source[need]
    return apply, record, rollback


def input_error(e: ConfigError) -> str:
    pointer = e.pointer
    if pointer.startswith("/linux/resources"):
        pointer = pointer[len("/linux/resources"):] or "/"
    return f"resources: {pointer}: {e.rule}"


def apply_error(c: Container, e: OcirtError) -> str:
    if not isinstance(e, ConfigError):
        return str(e)
    if e.pointer.endswith("/memory/limit") and "busy" in e.rule:
        usage, peak = _memory_usage(c)
        limit = ((c.recorded_resources() or {}).get("memory") or {}).get("limit")
        m = re.search(r"cannot write '(-?[0-9]+)'", e.rule)
        if m:
            limit = m.group(1)
        return f"unable to set memory limit to {limit} (current usage: {usage}, peak usage: {peak})"
    return input_error(e)


def _memory_usage(c: Container) -> tuple:
    cg = c.cgroup()
    if cg.kind == "v2":
        d, names = cg.unified, ("memory.current", "memory.peak")
    else:
        d, names = cg.path("memory"), ("memory.usage_in_bytes", "memory.max_usage_in_bytes")
    out = []
    for n in names:
        try:
            with open(os.path.join(d or "", n)) as f:
                out.append(int(f.read().strip()))
        except (OSError, ValueError):
            out.append(0)
    return tuple(out)


# -- Intel RDT (not implemented: refused the way runc refuses it on a host without it) -------------

def _rdt_features() -> set:
    try:
        with open("/proc/self/mountinfo") as f:
            mnt = next((line.split(" - ")[0].split()[4] for line in f
                        if " - resctrl " in line), None)
    except OSError:
        return set()
    if not mnt:
        return set()
    try:
        with open(os.path.join(mnt, "schemata")) as f:
            return {line.split(":")[0].strip() for line in f if ":" in line}
    except OSError:
        return set()


def check_rdt(o: dict) -> None:
    if not (o["l3_cache_schema"] or o["mem_bw_schema"]):
        return
    feats = _rdt_features()
    if o["l3_cache_schema"] and not any(f.startswith("L3") for f in feats):
        raise OcirtError("Intel RDT/CAT: l3 cache schema is not enabled")
    if o["mem_bw_schema"] and "MB" not in feats:
        raise OcirtError("Intel RDT/MBA: memory bandwidth schema is not enabled")
    raise OcirtError("Intel RDT is not supported by ocirt")


# -- main ------------------------------------------------------------------------------------------

def read_resources(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise OcirtError(f"open {path}", e.errno) from None


def main(g, o, args) -> int:
    int_flag("blkio-weight", o["blkio_weight"])       # urfave parses int flags up front
    int_flag("pids-limit", o["pids_limit"])
    container_id = exact_id(args, "update")
    c = Container.open(g.root, container_id)
    try:
        if o["resources"]:
            delta = from_json(read_resources(o["resources"]))
        else:
            delta = from_flags(o, g.log)
        check_rdt(o)
        apply_resources(c, delta, g.log.warning)
    finally:
        c.close()
    return 0


def apply_resources(c: Container, delta: dict, warn) -> None:
    """Write a partial linux.resources (already checked) to the container's cgroup and record
    it; on failure the previous values are set back (shared with ocirt.api)."""
    v2 = bool(c.state.cgroup) and c.state.cgroup.get("kind") == "v2"
    apply, record, rollback = plan(delta, c.recorded_resources(), v2)

    def set_back_failed(err):
        warn(f"Setting back cgroup configs failed due to error: {err}, your "
             "state.json and actual configs might be inconsistent.")
    try:
        c.update(apply, record, rollback, on_rollback_error=set_back_failed)
    except ConfigError as e:
        raise OcirtError(apply_error(c, e)) from None
