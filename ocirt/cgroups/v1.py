"""Writing linux.resources into cgroup v1 hierarchies (also used on hybrid hosts).

`paths` maps every mounted v1 controller (and name=... hierarchy) to the container's
directory in it. Order of controllers and of files inside one controller follows runc, where
the kernel cares (memory vs memsw, cfs period vs quota, rt period vs runtime).
"""

from __future__ import annotations

import errno

from ..errors import ConfigError
from ..paths import join  # os.path's, on posix
from .fs import CgroupFS, read_int, strerror
from .resources import THROTTLE_KEYS, Resources, ptr

_V1_THROTTLE_FILES = {
    "throttleReadBpsDevice": "blkio.throttle.read_bps_device",
    "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
    "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
    "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device",
}


class V1Writer:
    def __init__(self, paths: dict, fs: CgroupFS):
        self.paths = paths
        self.fs = fs

    # ------------------------------------------------------------ helpers

    def _dir(self, ctrl: str, pointer: str) -> str:
        d = self.paths.get(ctrl)
        if d is None:
            raise ConfigError(pointer, f"the {ctrl} cgroup controller is not mounted on this host")
        return d

    def _has(self, ctrl: str, name: str) -> bool:
        d = self.paths.get(ctrl)
        return d is not None and self.fs.exists(join(d, name))

    def _write(self, pointer: str, ctrl: str, name: str, value) -> OSError | None:
        """Write; return the OSError instead of raising (for the retry dances)."""
        path = join(self._dir(ctrl, pointer), name)
        try:
            self.fs.write(path, str(value))
            return None
        except OSError as e:
            return e

    def _set(self, pointer: str, ctrl: str, name: str, value) -> None:
        e = self._write(pointer, ctrl, name, value)
        if e is not None:
            raise self._error(pointer, name, value, e)

    @staticmethod
    def _error(pointer: str, name: str, value, e: OSError) -> ConfigError:
        if e.errno == errno.ENOENT:
            return ConfigError(pointer, f"this kernel has no {name} (cgroup v1): {strerror(e)}")
        return ConfigError(pointer, f"cannot write {str(value)!r} to {name}: {strerror(e)}")

    # ------------------------------------------------------------ apply

    def apply(self, r: Resources) -> None:
        self._cpuset(r)
        self._devices(r)
        self._memory(r)
        self._cpu(r)
        if r.pids_limit is not None:
            self._set(ptr("pids", "limit"), "pids", "pids.max", "max" if r.pids_limit < 0 else r.pids_limit)
        self._blkio(r)
        self._hugetlb(r)
        self._network(r)
        for e in r.rdma:
            self._set(e.ptr, "rdma", "rdma.max", e.line())

    def _cpuset(self, r: Resources) -> None:
        if r.cpu.cpus:
            self._set(ptr("cpu", "cpus"), "cpuset", "cpuset.cpus", r.cpu.cpus)
        if r.cpu.mems:
            self._set(ptr("cpu", "mems"), "cpuset", "cpuset.mems", r.cpu.mems)

    def _devices(self, r: Resources) -> None:
        if r.devices is None:
            return
        p = ptr("devices")
        # Start from "deny everything", then replay the rules in order, as runc does on a
        # fresh cgroup. The kernel refuses the reset while the cgroup has children.
        e = self._write(p, "devices", "devices.deny", "a")
        if e is not None:
            if e.errno == errno.EINVAL and self.fs.subdirs(self.paths["devices"]):
                raise ConfigError(
                    p, "cannot reset the device rules of a cgroup that has child cgroups (cgroup v1 devices)"
                )
            raise self._error(p, "devices.deny", "a", e)
        for i, rule in enumerate(r.devices):
            if i == 0 and not rule.allow and rule.v1_line() == "a":
                continue  # the usual leading deny-all: what the reset above just did
            name = "devices.allow" if rule.allow else "devices.deny"
            self._set(ptr("devices", i), "devices", name, rule.v1_line())

    def _memory(self, r: Resources) -> None:
        m = r.memory
        if not m.is_set():
            return
        self._dir("memory", ptr("memory"))
        limit, swap = m.limit, m.swap
        if limit == -1 and swap is None:
            swap = -1  # unlimited memory means unlimited memory+swap too (runc)
        lp, sp = ptr("memory", "limit"), ptr("memory", "swap")

        def set_limit():
            self._set(lp, "memory", "memory.limit_in_bytes", limit)

        def set_swap():
            if not self._has("memory", "memory.memsw.limit_in_bytes"):
                if swap == -1:
                    return
                raise ConfigError(
                    sp, "swap accounting is not enabled in this kernel (no memory.memsw.limit_in_bytes)"
                )
            self._set(sp, "memory", "memory.memsw.limit_in_bytes", swap)

        if limit is not None and swap is not None:
            # memsw must stay >= limit at every step: raise memsw first when growing.
            current = read_int(self.fs, join(self.paths["memory"], "memory.limit_in_bytes"))
            if swap == -1 or (current is not None and current < swap):
                set_swap()
                set_limit()
            else:
                set_limit()
                set_swap()
        elif limit is not None:
            set_limit()
        elif swap is not None:
            set_swap()
        if m.reservation is not None:
            self._set(ptr("memory", "reservation"), "memory", "memory.soft_limit_in_bytes", m.reservation)
        # memory.kernel: ignored, as runc does (kmem limits are deprecated, gone in 6.x).
        if m.kernel_tcp is not None and self._has("memory", "memory.kmem.tcp.limit_in_bytes"):
            self._set(ptr("memory", "kernelTCP"), "memory", "memory.kmem.tcp.limit_in_bytes", m.kernel_tcp)
        if m.swappiness is not None and m.swappiness != -1:
            self._set(ptr("memory", "swappiness"), "memory", "memory.swappiness", m.swappiness)
        if m.disable_oom_killer is not None:
            self._set(
                ptr("memory", "disableOOMKiller"),
                "memory",
                "memory.oom_control",
                1 if m.disable_oom_killer else 0,
            )
        if m.use_hierarchy is not None:
            self._set(
                ptr("memory", "useHierarchy"), "memory", "memory.use_hierarchy", 1 if m.use_hierarchy else 0
            )

    def _cpu(self, r: Resources) -> None:
        c = r.cpu
        if not c.is_set():
            return
        self._dir("cpu", ptr("cpu"))
        if c.shares is not None:
            p = ptr("cpu", "shares")
            self._set(p, "cpu", "cpu.shares", c.shares)
            got = read_int(self.fs, join(self.paths["cpu"], "cpu.shares"))
            if got is not None and got != c.shares:
                raise ConfigError(
                    p, f"the kernel took {c.shares} as {got}: cpu.shares must be between 2 and 262144"
                )
        # cfs: the kernel checks a period (a burst) against the quota already there at each
        # write, so a new one that fits only the new quota may be refused until that is set;
        # realtime: the same between rt_period and rt_runtime.
        self._pair(
            ("quota", "cpu.cfs_quota_us", c.quota),
            ("period", "cpu.cfs_period_us", c.period),
            ("burst", "cpu.cfs_burst_us", c.burst),
        )
        self._pair(
            ("realtimeRuntime", "cpu.rt_runtime_us", c.realtime_runtime),
            ("realtimePeriod", "cpu.rt_period_us", c.realtime_period),
        )
        if c.idle is not None:
            self._set(ptr("cpu", "idle"), "cpu", "cpu.idle", c.idle)

    def _pair(self, first: tuple, *others: tuple) -> None:
        """cpu values the kernel checks against each other, each (field, file, value or None):
        `others` written first; one the kernel refuses (EINVAL) written again after `first`,
        where `first` is given (anything else is the error)."""
        key, name, value = first
        pending = []
        for other in others:
            o_key, o_name, o_value = other
            if o_value is None:
                continue
            e = self._write(ptr("cpu", o_key), "cpu", o_name, o_value)
            if e is not None:
                if e.errno != errno.EINVAL or value is None:
                    raise self._error(ptr("cpu", o_key), o_name, o_value, e)
                pending.append(other)
        if value is not None:
            self._set(ptr("cpu", key), "cpu", name, value)
            for o_key, o_name, o_value in pending:
                self._set(ptr("cpu", o_key), "cpu", o_name, o_value)

    def _blkio(self, r: Resources) -> None:
        b = r.block_io
        if not b.is_set():
            return
        self._dir("blkio", ptr("blockIO"))
        # CFQ's blkio.weight is gone from current kernels; BFQ offers blkio.bfq.weight.
        if self._has("blkio", "blkio.weight"):
            wfile, wdfile = "blkio.weight", "blkio.weight_device"
        else:
            wfile, wdfile = "blkio.bfq.weight", "blkio.bfq.weight_device"
        if b.weight is not None:
            self._set(ptr("blockIO", "weight"), "blkio", wfile, b.weight)
        if b.leaf_weight is not None:
            self._set(ptr("blockIO", "leafWeight"), "blkio", "blkio.leaf_weight", b.leaf_weight)
        for wd in b.weight_device:
            if wd.weight is not None:
                self._set(wd.ptr + "/weight", "blkio", wdfile, f"{wd.major}:{wd.minor} {wd.weight}")
            if wd.leaf_weight is not None:
                self._set(
                    wd.ptr + "/leafWeight",
                    "blkio",
                    "blkio.leaf_weight_device",
                    f"{wd.major}:{wd.minor} {wd.leaf_weight}",
                )
        for key in THROTTLE_KEYS:
            for td in b.throttle.get(key, ()):
                self._set(td.ptr, "blkio", _V1_THROTTLE_FILES[key], f"{td.major}:{td.minor} {td.rate}")

    def _hugetlb(self, r: Resources) -> None:
        for h in r.hugepage_limits:
            self._dir("hugetlb", h.ptr)
            name = f"hugetlb.{h.page_size}.limit_in_bytes"
            if not self._has("hugetlb", name):
                raise ConfigError(h.ptr + "/pageSize", f"huge page size {h.page_size} is not supported here")
            self._set(h.ptr + "/limit", "hugetlb", name, h.limit)
            rsvd = f"hugetlb.{h.page_size}.rsvd.limit_in_bytes"
            if self._has("hugetlb", rsvd):
                self._set(h.ptr + "/limit", "hugetlb", rsvd, h.limit)

    def _network(self, r: Resources) -> None:
        n = r.network
        if n.class_id is not None:
            self._set(ptr("network", "classID"), "net_cls", "net_cls.classid", n.class_id)
        for i, (name, prio) in enumerate(n.priorities):
            self._set(ptr("network", "priorities", i), "net_prio", "net_prio.ifpriomap", f"{name} {prio}")
