"""The cgroupfs manager of a cgroup v1 host, and of a hybrid one (v1 hierarchies plus the
cgroup2 one, where `unified` resources and, without a v1 freezer, freezing go).

Relative cgroup paths go below this process's cgroup in each hierarchy. A new v1 cpuset
directory gets its parent's cpus and mems (empty ones would refuse every task).
"""

from __future__ import annotations

from ..errors import ConfigError, OcirtError
from ..paths import join  # os.path's, on posix
from ..state import cgroup_frozen, freezer_dir
from . import freezer
from .cgroup import FsCgroup, place
from .layout import Layout

# Which v1 hierarchy holds "the container's processes" for pids()/kill: runc uses devices;
# freezer first here since freeze/kill go together.
_PRIMARY = ("freezer", "pids", "devices", "memory", "cpu", "cpuacct", "name=systemd")


class V1Cgroup(FsCgroup):
    @classmethod
    def locate(cls, layout: Layout, inner: str, own: dict) -> tuple[dict, str | None]:
        paths: dict = {}
        for mnt, ctrls in layout.hierarchies().items():
            key = next((c for c in ctrls if c in own), ctrls[0])
            d = place(layout, inner, own, mnt, key, parent_of_own=False)
            for c in ctrls:
                paths[c] = d
        unified = None
        if layout.kind == "hybrid":
            unified = place(layout, inner, own, layout.cgroup2(), "", parent_of_own=False)
        return paths, unified

    def path(self, controller: str | None = None) -> str | None:
        """The directory of a controller ("": the cgroup2 one), or the primary one."""
        if controller is None:
            for c in _PRIMARY:
                if c in self.paths:
                    return self.paths[c]
            if self.paths:
                return next(iter(self.paths.values()))
            return self.unified
        if controller == "":
            return self.unified
        return self.paths.get(controller)

    def _effectively_frozen(self) -> bool:
        d, v2 = self._freezer()
        return freezer.effectively_frozen(self.fs, d, v2)

    def _create(self) -> None:
        for mnt, ctrls in self.layout.hierarchies().items():
            d = self.paths.get(ctrls[0])
            if d:
                self._make(mnt, d, made=self._cpuset_inherit if "cpuset" in ctrls else None)
        if self.unified:
            self._make(self.layout.cgroup2(), self.unified)

    def _cpuset_inherit(self, parent: str, d: str) -> None:
        for name in ("cpuset.cpus", "cpuset.mems"):
            if self.fs.read(join(d, name)).strip():
                continue
            value = self.fs.read(join(parent, name)).strip()
            if value:
                self.fs.write(join(d, name), value)

    def apply(self, resources, kernel=None) -> None:
        """The v1 files (device rules: devices.allow/deny), then `unified` (hybrid only)."""
        from .resources import Resources  # on apply only (state, start, kill, delete need none)

        r = resources if isinstance(resources, Resources) else Resources.parse(resources)
        from .v1 import V1Writer  # on use: only a process that applies needs it

        V1Writer(self.paths, self.fs).apply(r)
        if r.unified:
            if not self.unified:
                raise ConfigError(
                    "/linux/resources/unified", "needs cgroup v2, which is not mounted on this host"
                )
            from .v2 import V2Writer

            self._enable_on_path({k.split(".", 1)[0] for k in r.unified} - {"cgroup"})
            V2Writer(self.unified, self.fs, hybrid=True).apply_unified(r.unified)
        if r.devices is not None:
            self._devices = list(r.devices)

    def _enable_on_path(self, controllers: set) -> None:
        """Enable just the controllers `unified` asks for, from the cgroup2 root down to the
        container's cgroup (only those the root has: the others are bound to v1)."""
        root, unified = self.layout.unified, self.unified
        if root is None or unified is None:
            return
        try:
            have = set(self.fs.read(join(root, "cgroup.controllers")).split())
        except OSError:
            return
        wanted = sorted(controllers & have)
        rel = unified[len(root.rstrip("/")) :].strip("/").split("/")
        d = root
        for part in rel:
            for c in wanted:
                try:
                    self.fs.write(join(d, "cgroup.subtree_control"), "+" + c)
                except OSError:
                    pass
            d = join(d, part)

    # A hybrid host without a v1 freezer freezes through cgroup2.

    def _freezer(self) -> tuple[str | None, bool]:
        return freezer_dir(self.paths, self.unified)

    def freeze(self, timeout: float = 10.0) -> None:
        d, v2 = self._freezer()
        if d is None:
            raise OcirtError("cannot freeze: the freezer cgroup controller is not mounted")
        (freezer.freeze_v2 if v2 else freezer.freeze_v1)(self.fs, d, timeout)

    def thaw(self) -> None:
        d, v2 = self._freezer()
        if d is None:
            raise OcirtError("cannot thaw: the freezer cgroup controller is not mounted")
        freezer.thaw(self.fs, d, v2)

    def frozen(self) -> bool:
        d, v2 = self._freezer()
        return cgroup_frozen(self.fs.read, d, v2)

    def stats(self) -> dict:
        from .stats import stats_v1

        return stats_v1(self.fs, self.paths)
