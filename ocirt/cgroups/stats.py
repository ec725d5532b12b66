"""Best-effort statistics shaped like the "data" object of `runc events --stats`.

Missing files leave their fields out (or zero) instead of failing: stats are advisory.
"""

from __future__ import annotations

import os

from .fs import CgroupFS, read_int, read_keyed

_UNLIMITED_V2 = 2**64 - 1


def _ints(fs: CgroupFS, path: str) -> list:
    try:
        return [int(x) for x in fs.read(path).split()]
    except (OSError, ValueError):
        return []


def _cpulist(text: str) -> list:
    out: list = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            pass
    return out


def _mem_v1(fs: CgroupFS, d: str, prefix: str) -> dict:
    out = {}
    for key, suffix in (
        ("limit", "limit_in_bytes"),
        ("usage", "usage_in_bytes"),
        ("max", "max_usage_in_bytes"),
        ("failcnt", "failcnt"),
    ):
        v = read_int(fs, os.path.join(d, f"{prefix}.{suffix}"))
        if v is not None:
            out[key] = v
    return out


def _blkio_v1(fs: CgroupFS, d: str) -> dict:
    out = {}
    for key, name in (
        ("ioServiceBytesRecursive", "blkio.throttle.io_service_bytes_recursive"),
        ("ioServicedRecursive", "blkio.throttle.io_serviced_recursive"),
    ):
        entries = []
        try:
            text = fs.read(os.path.join(d, name))
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 3 or ":" not in parts[0]:
                continue
            maj, _, mnr = parts[0].partition(":")
            try:
                entries.append({"major": int(maj), "minor": int(mnr), "op": parts[1], "value": int(parts[2])})
            except ValueError:
                pass
        if entries:
            out[key] = entries
    return out


def stats_v1(fs: CgroupFS, paths: dict) -> dict:
    data: dict = {"cpu": {}, "memory": {}, "pids": {}, "blkio": {}, "hugetlb": {}}
    acct = paths.get("cpuacct")
    if acct:
        usage: dict = {}
        total = read_int(fs, os.path.join(acct, "cpuacct.usage"))
        if total is not None:
            usage["total"] = total
        for key, name in (
            ("percpu", "cpuacct.usage_percpu"),
            ("percpu_kernel", "cpuacct.usage_percpu_sys"),
            ("percpu_user", "cpuacct.usage_percpu_user"),
        ):
            vals = _ints(fs, os.path.join(acct, name))
            if vals:
                usage[key] = vals
        st = read_keyed(fs, os.path.join(acct, "cpuacct.stat"))
        hz = os.sysconf("SC_CLK_TCK") or 100
        if "system" in st:
            usage["kernel"] = st["system"] * 1_000_000_000 // hz
        if "user" in st:
            usage["user"] = st["user"] * 1_000_000_000 // hz
        data["cpu"]["usage"] = usage
    cpu = paths.get("cpu")
    if cpu:
        st = read_keyed(fs, os.path.join(cpu, "cpu.stat"))
        thr = {}
        if st.get("nr_periods"):
            thr["periods"] = st["nr_periods"]
        if st.get("nr_throttled"):
            thr["throttledPeriods"] = st["nr_throttled"]
        if st.get("throttled_time"):
            thr["throttledTime"] = st["throttled_time"]
        data["cpu"]["throttling"] = thr
    cs = paths.get("cpuset")
    if cs:
        try:
            data["cpuset"] = {
                "cpus": _cpulist(fs.read(os.path.join(cs, "cpuset.cpus"))),
                "mems": _cpulist(fs.read(os.path.join(cs, "cpuset.mems"))),
            }
        except OSError:
            pass
    mem = paths.get("memory")
    if mem:
        raw = read_keyed(fs, os.path.join(mem, "memory.stat"))
        data["memory"] = {
            "cache": raw.get("total_cache", raw.get("cache", 0)),
            "usage": _mem_v1(fs, mem, "memory"),
            "swap": _mem_v1(fs, mem, "memory.memsw"),
            "kernel": _mem_v1(fs, mem, "memory.kmem"),
            "kernelTCP": _mem_v1(fs, mem, "memory.kmem.tcp"),
            "raw": raw,
        }
    pids = paths.get("pids")
    if pids:
        data["pids"] = {
            "current": read_int(fs, os.path.join(pids, "pids.current")) or 0,
            "limit": read_int(fs, os.path.join(pids, "pids.max")) or 0,
        }
    blk = paths.get("blkio")
    if blk:
        data["blkio"] = _blkio_v1(fs, blk)
    hug = paths.get("hugetlb")
    if hug:
        try:
            names = os.listdir(hug)
        except OSError:
            names = []
        for n in names:
            if n.startswith("hugetlb.") and n.endswith(".usage_in_bytes") and ".rsvd." not in n:
                size = n[len("hugetlb.") : -len(".usage_in_bytes")]
                data["hugetlb"][size] = _mem_v1(fs, hug, f"hugetlb.{size}")
                data["hugetlb"][size].pop("limit", None)
    return data


def stats_v2(fs: CgroupFS, d: str) -> dict:
    data: dict = {"cpu": {}, "memory": {}, "pids": {}, "blkio": {}, "hugetlb": {}}
    st = read_keyed(fs, os.path.join(d, "cpu.stat"))
    if st:
        data["cpu"]["usage"] = {
            "total": st.get("usage_usec", 0) * 1000,
            "kernel": st.get("system_usec", 0) * 1000,
            "user": st.get("user_usec", 0) * 1000,
        }
        thr = {}
        if st.get("nr_periods"):
            thr["periods"] = st["nr_periods"]
        if st.get("nr_throttled"):
            thr["throttledPeriods"] = st["nr_throttled"]
        if st.get("throttled_usec"):
            thr["throttledTime"] = st["throttled_usec"] * 1000
        data["cpu"]["throttling"] = thr
    try:
        data["cpuset"] = {
            "cpus": _cpulist(fs.read(os.path.join(d, "cpuset.cpus.effective"))),
            "mems": _cpulist(fs.read(os.path.join(d, "cpuset.mems.effective"))),
        }
    except OSError:
        pass
    if fs.exists(os.path.join(d, "memory.current")):
        raw = read_keyed(fs, os.path.join(d, "memory.stat"))

        def mem(prefix):
            out: dict = {}
            usage = read_int(fs, os.path.join(d, f"{prefix}.current"))
            if usage is None:
                return out
            out["usage"] = usage
            lim = read_int(fs, os.path.join(d, f"{prefix}.max"))
            out["limit"] = _UNLIMITED_V2 if lim is None else lim
            peak = read_int(fs, os.path.join(d, f"{prefix}.peak"))
            if peak is not None:
                out["max"] = peak
            return out

        usage, swap = mem("memory"), mem("memory.swap")
        if swap:
            # v1 reports memory+swap: do the same for compatibility.
            swap["usage"] += usage.get("usage", 0)
            if swap["limit"] != _UNLIMITED_V2 and usage.get("limit", _UNLIMITED_V2) != _UNLIMITED_V2:
                swap["limit"] += usage["limit"]
            swap.pop("max", None)
        data["memory"] = {"cache": raw.get("file", 0), "usage": usage, "swap": swap, "raw": raw}
    if fs.exists(os.path.join(d, "pids.current")):
        data["pids"] = {
            "current": read_int(fs, os.path.join(d, "pids.current")) or 0,
            "limit": read_int(fs, os.path.join(d, "pids.max")) or 0,
        }
    try:
        text = fs.read(os.path.join(d, "io.stat"))
    except OSError:
        text = ""
    by_bytes: list = []
    by_ios: list = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        maj, _, mnr = parts[0].partition(":")
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        try:
            maj_i, mnr_i = int(maj), int(mnr)
            for key, op, dest in (
                ("rbytes", "Read", by_bytes),
                ("wbytes", "Write", by_bytes),
                ("rios", "Read", by_ios),
                ("wios", "Write", by_ios),
            ):
                if key in kv:
                    dest.append({"major": maj_i, "minor": mnr_i, "op": op, "value": int(kv[key])})
        except ValueError:
            continue
    if by_bytes:
        data["blkio"]["ioServiceBytesRecursive"] = by_bytes
    if by_ios:
        data["blkio"]["ioServicedRecursive"] = by_ios
    try:
        names = os.listdir(d)
    except OSError:
        names = []
    for n in names:
        if n.startswith("hugetlb.") and n.endswith(".current") and ".rsvd." not in n:
            size = n[len("hugetlb.") : -len(".current")]
            ev = read_keyed(fs, os.path.join(d, f"hugetlb.{size}.events"))
            data["hugetlb"][size] = {
                "usage": read_int(fs, os.path.join(d, n)) or 0,
                "failcnt": ev.get("max", 0),
            }
    return data
