"""The cgroupfs manager of a cgroup v2 host: one directory in the unified hierarchy.

Relative cgroup paths go below the parent of this process's cgroup (it usually holds
processes, so controllers could not be enabled below it); create() enables on the way down
every controller a directory has, as runc does.
"""

from __future__ import annotations

import _signal
import errno

from .. import paths
from ..errors import OcirtError
from ..state import cgroup_frozen
from . import freezer
from .cgroup import FsCgroup, place
from .layout import Layout


class V2Cgroup(FsCgroup):
    unified: str  # the container's directory: a v2 manager always has one

    @classmethod
    def locate(cls, layout: Layout, inner: str, own: dict) -> tuple[dict, str | None]:
        return {}, place(layout, inner, own, layout.cgroup2(), "", parent_of_own=True)

    def path(self, controller: str | None = None) -> str | None:
        return self.unified

    def self_placement(self) -> tuple[str | None, list[str]] | None:
        return (self.unified, []) if self.unified else None

    def _effectively_frozen(self) -> bool:
        return freezer.effectively_frozen(self.fs, self.unified, v2=True)

    def _create(self) -> None:
        self._make(self.layout.cgroup2(), self.unified, descending=self._enable_controllers)

    def _enable_controllers(self, d: str) -> None:
        """Enable in d/cgroup.subtree_control every controller d has."""
        try:
            avail = self.fs.read(paths.join(d, "cgroup.controllers")).split()
            have = set(self.fs.read(paths.join(d, "cgroup.subtree_control")).split())
        except FileNotFoundError:
            raise
        except OSError:
            return
        need = [c for c in avail if c not in have]
        if not need:
            return
        path = paths.join(d, "cgroup.subtree_control")
        try:
            self.fs.write(path, " ".join("+" + c for c in need))
        except OSError:
            # One refused controller fails the whole write: take the others one by one.
            # What stays off is reported by apply() when a resource needs it.
            for c in need:
                try:
                    self.fs.write(path, "+" + c)
                except OSError:
                    pass

    def apply(self, resources, kernel=None) -> None:
        """The files, then the device rules as an eBPF program attached with `kernel`."""
        from .resources import Resources  # on apply only (state, start, kill, delete need none)

        r = resources if isinstance(resources, Resources) else Resources.parse(resources)
        if r.devices is not None and kernel is None:
            raise OcirtError("cannot set the device rules of a cgroup v2: no kernel given")
        from .v2 import V2Writer  # on use: only a process that applies needs it

        V2Writer(self.unified, self.fs).apply(r)
        if r.devices is not None:
            from .ebpf import attach_device_filter

            attach_device_filter(kernel, self.unified, r.devices)
            self._devices = list(r.devices)

    def freeze(self, timeout: float = 10.0) -> None:
        freezer.freeze_v2(self.fs, self.unified, timeout)

    def thaw(self) -> None:
        freezer.thaw(self.fs, self.unified, v2=True)

    def frozen(self) -> bool:
        return cgroup_frozen(self.fs.read, self.unified, v2=True)

    def kill_all(self, sig: int = _signal.SIGKILL) -> None:
        """SIGKILL: cgroup.kill, which the kernel makes race-free (where it has it)."""
        if sig == _signal.SIGKILL:
            path = paths.join(self.unified, "cgroup.kill")
            if self.fs.exists(path):
                try:
                    self.fs.write(path, "1")
                    return
                except OSError as e:
                    if e.errno == errno.ENOENT:
                        return  # the cgroup is gone: nothing left to kill
                    raise OcirtError(f"cannot kill cgroup {self.unified}", errno=e.errno) from None
        super().kill_all(sig)

    def stats(self) -> dict:
        from .stats import stats_v2

        return stats_v2(self.fs, self.unified)
