"""`update`: a partial linux.resources merged into a live container's, written, recorded.

The new values (from a linux.resources JSON, or the command's flags, which build the same
partial dict) are checked here and reduced to the fields runc's update takes: memory
limit/reservation/swap(/checkBeforeUpdate), cpu shares/quota/period/realtime*/cpus/mems (plus
burst and idle), blockIO.weight, pids.limit, unified; the rest of linux.resources is ignored
(devices above all). Zero means "unchanged", as in runc (Go cannot tell 0 from absent),
pids.limit included.

The values are merged into the resources recorded for the container (state.json's cgroup
"resources"; config.json's linux.resources before the first update), the changed ones are
written to the cgroup, and the merged set is recorded for the next update. On a failure the
changed fields are set back to their recorded values (best effort) and nothing is recorded.

Used by `ocirt update` (ocirt/commands/update.py, the argv side) and ocirt.api's
Container.update. Numbers are parsed as Go parses them, with its error texts.
"""

from __future__ import annotations

import copy
import json
import os
import re

from ..errors import ConfigError, OcirtError

SECTIONS = ("memory", "cpu", "blockIO", "pids")
INT64 = (-(1 << 63), (1 << 63) - 1)
UINT64 = (0, (1 << 64) - 1)


# -- Go's number parsing, with its error texts ----------------------------------------------------


def go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def parse_uint(opt: str, text: str) -> int:
    """strconv.ParseUint(text, 10, 64)."""
    if not re.fullmatch(r"[0-9]+", text):
        raise OcirtError(
            f"invalid value for {opt}: strconv.ParseUint: parsing {go_quote(text)}: invalid syntax"
        )
    v = int(text)
    if v > UINT64[1]:
        raise OcirtError(
            f"invalid value for {opt}: strconv.ParseUint: parsing {go_quote(text)}: value out of range"
        )
    return v


def parse_int(opt: str, text: str) -> int:
    """strconv.ParseInt(text, 10, 64)."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise OcirtError(
            f"invalid value for {opt}: strconv.ParseInt: parsing {go_quote(text)}: invalid syntax"
        )
    v = int(text)
    if not INT64[0] <= v <= INT64[1]:
        raise OcirtError(
            f"invalid value for {opt}: strconv.ParseInt: parsing {go_quote(text)}: value out of range"
        )
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
        value = ram_in_bytes(text)
    except ValueError as e:
        raise OcirtError(f"invalid value for {opt}: {e}") from None
    if not INT64[0] <= value <= INT64[1]:  # (the kernel would take it modulo 2**64)
        raise OcirtError(f"invalid value for {opt}: {text}: value out of range")
    return value


# -- the update as a partial linux.resources -------------------------------------------------------


def resources_delta(memory: dict, cpu: dict, blkio: dict, pids: dict, unified: dict) -> dict:
    """The sections that change, as one partial linux.resources."""
    if memory.get("limit") == -1 and "swap" not in memory:
        memory["swap"] = -1  # unlimited memory: unlimited memory+swap too (runc)
    out = {}
    for name, part in (
        ("memory", memory),
        ("cpu", cpu),
        ("blockIO", blkio),
        ("pids", pids),
        ("unified", unified),
    ):
        if part:
            out[name] = part
    return out


def from_json(text: str) -> dict:
    """A linux.resources JSON (the whole object type-checked, as Go's decoder does) -> the part
    of it that update uses."""
    from .. import jsonio

    try:
        d = jsonio.loads(text)
    except ValueError as e:
        raise OcirtError(f"invalid resources JSON: {e}") from None
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise OcirtError(f"invalid resources JSON: expected an object, not {type(d).__name__}")
    from .resources import Resources

    try:
        Resources.parse(d)
    except ConfigError as e:
        raise OcirtError(input_error(e)) from None
    sec = {name: _object(d.get(name)) for name in SECTIONS}
    memory = {
        k: sec["memory"][k]
        for k in ("limit", "reservation", "swap", "checkBeforeUpdate")
        if sec["memory"].get(k) is not None
    }
    cpu = {
        k: sec["cpu"][k]
        for k in ("shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "idle")
        if sec["cpu"].get(k) is not None
    }
    cpu.update({k: sec["cpu"][k] for k in ("cpus", "mems") if sec["cpu"].get(k)})
    blkio = {"weight": sec["blockIO"]["weight"]} if sec["blockIO"].get("weight") is not None else {}
    pids = {"limit": sec["pids"]["limit"]} if sec["pids"].get("limit") else {}
    return resources_delta(memory, cpu, blkio, pids, d.get("unified") or {})


def _object(v) -> dict:
    """v when it is a JSON object, else an empty one."""
    return v if isinstance(v, dict) else {}


def read_resources(path: str, stdin=None) -> str:
    """--resources: a file, or '-' for `stdin` (sys.stdin when not given)."""
    from .. import jsonio

    try:
        if path == "-":
            if stdin is None:
                import sys

                stdin = sys.stdin
            data = jsonio.read_document(getattr(stdin, "buffer", stdin))
        else:
            with jsonio.open_document(path) as f:  # (a FIFO without a writer: at once)
                data = jsonio.read_document(f)
        return data if isinstance(data, str) else data.decode("utf-8")
    except OSError as e:
        raise OcirtError(f"open {path}", e.errno) from None
    except ValueError as e:
        where = "the standard input" if path == "-" else path
        if isinstance(e, UnicodeDecodeError):
            raise OcirtError(f"invalid resources JSON in {where}: not UTF-8 (byte {e.start})") from None
        raise OcirtError(f"invalid resources JSON in {where}: {e}") from None


def merge_update(delta: dict, base: dict, v2: bool) -> tuple[dict, dict, dict]:
    """(what to write now, what to record, what to write back on a failure)."""
    base = base if isinstance(base, dict) else {}
    record = copy.deepcopy(base)
    record.pop("devices", None)  # never re-applied by update (runc: SkipDevices)
    apply = copy.deepcopy(delta)
    rollback: dict = {}
    for name in SECTIONS + ("unified",):
        new = delta.get(name)
        if not new:
            continue
        old = _object(base.get(name))
        record[name] = {**old, **new}
        back = {k: old[k] for k in new if old.get(k) is not None}
        if back:
            rollback[name] = back
    if v2:
        # memory.swap.max is swap - limit: a new limit or swap needs the other half.
        for target, source in ((apply, record.get("memory") or {}), (rollback, base.get("memory") or {})):
            mem = target.get("memory")
            if not mem:
                continue
            for need, have in (("swap", "limit"), ("limit", "swap")):
                if have in mem and need not in mem and source.get(need):
                    mem[need] = source[need]
    return apply, record, rollback


# -- errors -----------------------------------------------------------------------------------------


def input_error(e: ConfigError) -> str:
    """A ConfigError about linux.resources, pointed within the update's own JSON."""
    pointer = e.pointer
    if pointer.startswith("/linux/resources"):
        pointer = pointer[len("/linux/resources") :] or "/"
    return f"resources: {pointer}: {e.rule}"


def apply_error(c, e: OcirtError) -> str:
    """The line a failed write is told with (runc's words for a memory limit below usage)."""
    if not isinstance(e, ConfigError):
        return str(e)
    if e.pointer.endswith("/memory/limit") and "busy" in e.rule:
        usage, peak = _memory_usage(c.cgroup())
        limit = ((c.recorded_resources() or {}).get("memory") or {}).get("limit")
        m = re.search(r"cannot write '(-?[0-9]+)'", e.rule)
        if m:
            limit = m.group(1)
        return f"unable to set memory limit to {limit} (current usage: {usage}, peak usage: {peak})"
    return input_error(e)


def _memory_usage(cg) -> tuple:
    if cg.kind == "v2":
        names = ("memory.current", "memory.peak")
    else:
        names = ("memory.usage_in_bytes", "memory.max_usage_in_bytes")
    d = cg.path("memory")
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
            mnt = next((line.split(" - ")[0].split()[4] for line in f if " - resctrl " in line), None)
    except OSError:
        return set()
    if not mnt:
        return set()
    try:
        with open(os.path.join(mnt, "schemata")) as f:
            return {line.split(":")[0].strip() for line in f if ":" in line}
    except OSError:
        return set()


def check_rdt(l3_cache_schema: str | None, mem_bw_schema: str | None) -> None:
    if not (l3_cache_schema or mem_bw_schema):
        return
    feats = _rdt_features()
    if l3_cache_schema and not any(f.startswith("L3") for f in feats):
        raise OcirtError("Intel RDT/CAT: l3 cache schema is not enabled")
    if mem_bw_schema and "MB" not in feats:
        raise OcirtError("Intel RDT/MBA: memory bandwidth schema is not enabled")
    raise OcirtError("Intel RDT is not supported by ocirt")


# -- the update ----------------------------------------------------------------------------------


def apply_resources(c, delta: dict, warn) -> None:
    """Write a partial linux.resources (already checked) to the cgroup of `c` (an
    ocirt.container.Container, locked) and record it; on failure the previous values are set
    back, and `warn` is told if that failed too."""
    apply, record, rollback = merge_update(delta, c.recorded_resources(), c.cgroup().kind == "v2")

    def set_back_failed(err):
        warn(
            f"Setting back cgroup configs failed due to error: {err}, your "
            "state.json and actual configs might be inconsistent."
        )

    try:
        c.update(apply, record, rollback, on_rollback_error=set_back_failed)
    except ConfigError as e:
        raise OcirtError(apply_error(c, e)) from None
