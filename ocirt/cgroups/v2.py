"""Writing linux.resources into one cgroup v2 directory.

The OCI fields were designed for v1; they are converted as runc does:

    memory.limit        -> memory.max            (-1 -> "max")
    memory.reservation  -> memory.low
    memory.swap         -> memory.swap.max = swap - limit   (memory+swap on v1, swap alone here)
    cpu.shares          -> cpu.weight  (runc's log-quadratic curve, 1024 -> 100)
    cpu.quota/period    -> cpu.max "QUOTA PERIOD" (an absent half keeps its current value)
    cpu.burst/idle      -> cpu.max.burst / cpu.idle
    cpu.cpus/mems       -> cpuset.cpus / cpuset.mems
    blockIO.weight      -> io.bfq.weight as is when BFQ is there, else io.weight (10..1000
                           mapped linearly onto 1..10000); weightDevice likewise per device
    blockIO.throttle*   -> io.max "MAJ:MIN rbps=|wbps=|riops=|wiops=N"
    hugepageLimits      -> hugetlb.<size>.max (and .rsvd.max when the kernel has it)
    pids.limit          -> pids.max
    rdma                -> rdma.max
    unified             -> written as given, after checking the controller is enabled

Ignored as runc does: memory.kernel, memory.kernelTCP, memory.swappiness,
memory.disableOOMKiller (no v2 file). Refused (ConfigError, no v2 equivalent): cpu realtime
limits, blockIO leaf weights, network classID/priorities, memory.useHierarchy=false.
Devices are not written here: a v2 cgroup filters devices with an eBPF program, which
Cgroup.apply attaches (ocirt/cgroups/ebpf.py).
"""

from __future__ import annotations

import errno

from .. import paths
from ..errors import ConfigError
from .fs import CgroupFS, read_int, strerror
from .resources import (
    THROTTLE_KEYS,
    Resources,
    blkio_weight_to_io_weight,
    max_str,
    ptr,
    shares_to_weight,
    swap_to_v2,
)

_IO_MAX_KEYS = {
    "throttleReadBpsDevice": "rbps",
    "throttleWriteBpsDevice": "wbps",
    "throttleReadIOPSDevice": "riops",
    "throttleWriteIOPSDevice": "wiops",
}


class V2Writer:
    def __init__(self, path: str, fs: CgroupFS, hybrid: bool = False):
        self.path = path
        self.fs = fs
        self.hybrid = hybrid
        self._controllers: set | None = None

    # ------------------------------------------------------------ helpers

    def controllers(self) -> set:
        if self._controllers is None:
            try:
                found = set(self.fs.read(paths.join(self.path, "cgroup.controllers")).split())
            except OSError:
                found = set()
            self._controllers = found
        return self._controllers

    def _need(self, ctrl: str, pointer: str) -> None:
        if ctrl not in self.controllers():
            raise ConfigError(pointer, self._missing(ctrl))

    def _missing(self, ctrl: str) -> str:
        if self.hybrid:
            return (
                f'controller "{ctrl}" is not available in the cgroup v2 hierarchy of this '
                "hybrid host (bound to cgroup v1, or not in this kernel: use the v1 fields)"
            )
        return (
            f'controller "{ctrl}" is not available in {self.path} (not in '
            "cgroup.controllers: not enabled by the parent or not in this kernel)"
        )

    def _write(self, name: str, value) -> OSError | None:
        try:
            self.fs.write(paths.join(self.path, name), str(value))
            return None
        except OSError as e:
            return e

    def _set(self, pointer: str, name: str, value) -> None:
        e = self._write(name, value)
        if e is not None:
            raise self._error(pointer, name, value, e)

    @staticmethod
    def _error(pointer: str, name: str, value, e: OSError) -> ConfigError:
        if e.errno == errno.ENOENT:
            return ConfigError(pointer, f"this kernel has no {name} (cgroup v2): {strerror(e)}")
        return ConfigError(pointer, f"cannot write {str(value)!r} to {name}: {strerror(e)}")

    def _exists(self, name: str) -> bool:
        return self.fs.exists(paths.join(self.path, name))

    # ------------------------------------------------------------ apply

    def apply(self, r: Resources) -> None:
        if r.pids_limit is not None:
            self._need("pids", ptr("pids", "limit"))
            self._set(ptr("pids", "limit"), "pids.max", max_str(r.pids_limit))
        self._memory(r)
        self._io(r)
        self._cpu(r)
        self._cpuset(r)
        self._hugetlb(r)
        for e in r.rdma:
            self._need("rdma", e.ptr)
            self._set(e.ptr, "rdma.max", e.line())
        if r.network.is_set():
            raise ConfigError(
                ptr("network"), "net_cls/net_prio (classID, priorities) do not exist on cgroup v2"
            )
        self.apply_unified(r.unified)

    def _memory(self, r: Resources) -> None:
        m = r.memory
        if m.use_hierarchy is False:
            raise ConfigError(
                ptr("memory", "useHierarchy"), "cgroup v2 memory accounting is always hierarchical"
            )
        if m.limit is None and m.reservation is None and m.swap is None:
            return
        self._need("memory", ptr("memory"))
        if m.check_before_update:
            usage = read_int(self.fs, paths.join(self.path, "memory.current"))
            if usage is not None:
                if m.swap is not None and 0 < m.swap <= usage:
                    raise ConfigError(
                        ptr("memory", "swap"),
                        f"rejecting memory+swap limit {m.swap}: not above the current usage {usage}",
                    )
                if m.limit is not None and 0 < m.limit <= usage:
                    raise ConfigError(
                        ptr("memory", "limit"),
                        f"rejecting memory limit {m.limit}: not above the current usage {usage}",
                    )
        swap = swap_to_v2(m.swap, m.limit, ptr("memory", "swap"))
        if swap is not None:
            value = max_str(swap)
            e = self._write("memory.swap.max", value)
            if e is not None:
                # No swap accounting in this kernel: "unlimited" and "none" are moot.
                if not (e.errno == errno.ENOENT and value in ("max", "0")):
                    raise self._error(ptr("memory", "swap"), "memory.swap.max", value, e)
        if m.limit is not None:
            self._set(ptr("memory", "limit"), "memory.max", max_str(m.limit))
        if m.reservation is not None:
            self._set(ptr("memory", "reservation"), "memory.low", max_str(m.reservation))

    def _io(self, r: Resources) -> None:
        b = r.block_io
        if not b.is_set():
            return
        self._need("io", ptr("blockIO"))
        if b.leaf_weight is not None:
            raise ConfigError(ptr("blockIO", "leafWeight"), "leaf weights do not exist on cgroup v2")
        bfq = self._exists("io.bfq.weight")
        if b.weight is not None:
            if bfq:
                self._set(ptr("blockIO", "weight"), "io.bfq.weight", b.weight)
            else:
                self._set(ptr("blockIO", "weight"), "io.weight", blkio_weight_to_io_weight(b.weight))
        for wd in b.weight_device:
            if wd.leaf_weight is not None:
                raise ConfigError(wd.ptr + "/leafWeight", "leaf weights do not exist on cgroup v2")
            if wd.weight is None:
                continue  # not reached: parse() wants weight or leafWeight
            if bfq:
                self._set(wd.ptr + "/weight", "io.bfq.weight", f"{wd.major}:{wd.minor} {wd.weight}")
            else:
                self._set(
                    wd.ptr + "/weight",
                    "io.weight",
                    f"{wd.major}:{wd.minor} {blkio_weight_to_io_weight(wd.weight)}",
                )
        for key in THROTTLE_KEYS:
            for td in b.throttle.get(key, ()):
                self._set(td.ptr, "io.max", f"{td.major}:{td.minor} {_IO_MAX_KEYS[key]}={td.rate}")

    def _cpu(self, r: Resources) -> None:
        c = r.cpu
        if c.realtime_runtime is not None:
            raise ConfigError(ptr("cpu", "realtimeRuntime"), "realtime cpu limits do not exist on cgroup v2")
        if c.realtime_period is not None:
            raise ConfigError(ptr("cpu", "realtimePeriod"), "realtime cpu limits do not exist on cgroup v2")
        if not c.is_set():
            return
        self._need("cpu", ptr("cpu"))
        if c.idle is not None:
            self._set(ptr("cpu", "idle"), "cpu.idle", c.idle)
        if c.shares is not None:
            self._set(ptr("cpu", "shares"), "cpu.weight", shares_to_weight(c.shares))
        burst_pending = None
        if c.burst is not None:
            e = self._write("cpu.max.burst", c.burst)
            if e is not None:
                # A burst larger than the current quota is refused until the quota grows.
                if e.errno != errno.EINVAL or c.quota is None:
                    raise self._error(ptr("cpu", "burst"), "cpu.max.burst", c.burst, e)
                burst_pending = c.burst
        if c.quota is not None or c.period is not None:
            cur_quota, cur_period = "max", "100000"
            try:
                parts = self.fs.read(paths.join(self.path, "cpu.max")).split()
                if len(parts) == 2:
                    cur_quota, cur_period = parts
            except OSError:
                pass
            quota = cur_quota if c.quota is None else max_str(c.quota)
            period = cur_period if c.period is None else str(c.period)
            p = ptr("cpu", "quota" if c.quota is not None else "period")
            self._set(p, "cpu.max", f"{quota} {period}")
        if burst_pending is not None:
            self._set(ptr("cpu", "burst"), "cpu.max.burst", burst_pending)

    def _cpuset(self, r: Resources) -> None:
        c = r.cpu
        if c.cpus:
            self._need("cpuset", ptr("cpu", "cpus"))
            self._set(ptr("cpu", "cpus"), "cpuset.cpus", c.cpus)
        if c.mems:
            self._need("cpuset", ptr("cpu", "mems"))
            self._set(ptr("cpu", "mems"), "cpuset.mems", c.mems)

    def _hugetlb(self, r: Resources) -> None:
        for h in r.hugepage_limits:
            self._need("hugetlb", h.ptr)
            name = f"hugetlb.{h.page_size}.max"
            if not self._exists(name):
                raise ConfigError(h.ptr + "/pageSize", f"huge page size {h.page_size} is not supported here")
            self._set(h.ptr + "/limit", name, h.limit)
            rsvd = f"hugetlb.{h.page_size}.rsvd.max"
            if self._exists(rsvd):
                self._set(h.ptr + "/limit", rsvd, h.limit)

    def apply_unified(self, unified: dict) -> None:
        for key, value in unified.items():
            p = ptr("unified", key)
            ctrl = key.split(".", 1)[0]
            if ctrl != "cgroup" and ctrl not in self.controllers():
                raise ConfigError(p, self._missing(ctrl))
            # Multi-line values (io.max for several devices) go one line per write(2).
            lines = [ln for ln in value.split("\n") if ln] if "\n" in value else [value]
            for line in lines:
                e = self._write(key, line)
                if e is not None:
                    if e.errno == errno.ENOENT:
                        raise ConfigError(p, f"the cgroup has no file {key}")
                    raise ConfigError(p, f"cannot write {line!r} to {key}: {strerror(e)}")
