"""One Cgroup object per container: where it lives, create/apply/freeze/kill/destroy.

Where the cgroup lives (`linux.cgroupsPath`), matching runc with its cgroupfs driver:

    absolute "/a/b"   <mount point of each hierarchy>/a/b
    relative "a/b"    below the runtime's own cgroup, read from /proc/self/cgroup:
                      v1 (and hybrid): <own cgroup in that hierarchy>/a/b
                      v2: <parent of own cgroup>/a/b -- the own cgroup usually holds
                      processes, so controllers could not be enabled below it
    absent            as the relative path "<container id>"

Paths are cleaned lexically first ("..": can never climb above the base). The spec lets the
runtime choose for relative paths ("MAY interpret the path relative to a runtime-determined
location"); the choice above is runc's, so both runtimes put a given config in the same place.

Only the directories that create() made are removed by destroy(); a cgroup the container
joined (it existed before) is left alone.
"""
from __future__ import annotations

import _signal  # not signal: it imports enum, ~3 ms on every command
import errno
import os
import posixpath
import time

from ..errors import ConfigError, OcirtError
from .fs import DEFAULT_FS, CgroupFS, read_pids
from .layout import Layout, clean_path, own_cgroups, strip_root
from .resources import DeviceRule, Resources

STATE_VERSION = 1

# Which v1 hierarchy holds "the container's processes" for pids()/kill: runc uses devices;
# freezer first here since freeze/kill go together.
_PRIMARY_V1 = ("freezer", "pids", "devices", "memory", "cpu", "cpuacct", "name=systemd")


def _join(mountpoint: str, cg_path: str) -> str:
    """mount point + cgroup path ('/' or '/a/b')."""
    rel = cg_path.strip("/")
    base = mountpoint.rstrip("/")
    return base + "/" + rel if rel else (base or "/")


class Cgroup:
    """The container's cgroup(s).

    paths    v1/hybrid: v1 controller (or name=...) -> directory; {} on v2
    unified  v2: the directory; hybrid: the directory in the cgroup2 hierarchy; v1: None
    created  directories create() made, in creation order (destroy removes only these)
    """

    def __init__(self, layout: Layout, paths: dict, unified: str | None,
                 cgroups_path: str | None = None, created=None, devices=None,
                 fs: CgroupFS | None = None):
        self.layout = layout
        self.kind = layout.kind
        self.paths = dict(paths)
        self.unified = unified
        self.cgroups_path = cgroups_path
        self.created = list(created or [])
        self._devices = devices          # list[DeviceRule] last applied, or None
        self.fs = fs or DEFAULT_FS

    # ------------------------------------------------------------ construction

    @classmethod
    def for_container(cls, layout: Layout, cgroups_path: str | None, container_id: str,
                      systemd: bool = False, own: dict | None = None,
                      fs: CgroupFS | None = None, annotations: dict | None = None,
                      bus=None) -> "Cgroup":
        """Where the container's cgroup is (nothing is touched yet).

        `own` is /proc/self/cgroup parsed (layout.parse_proc_cgroup); read when needed.
        With `systemd`, a SystemdCgroup (cgroups/systemd.py): the container becomes a systemd
        unit; `annotations` may carry org.systemd.property.* and `bus` replaces the D-Bus
        connection (a recording one for `ocirt plan`).
        """
        if cgroups_path is not None and not isinstance(cgroups_path, str):
            raise ConfigError("/linux/cgroupsPath", "must be a string")
        if systemd:
            from .systemd import SystemdCgroup
            return SystemdCgroup.for_systemd(layout, cgroups_path, container_id,
                                             annotations=annotations, fs=fs, bus=bus)
        if cgroups_path:
            inner = clean_path(cgroups_path)
        else:
            if not container_id or "/" in container_id or container_id in (".", ".."):
                raise OcirtError(f"invalid container id {container_id!r} for a cgroup name")
            inner = container_id
        if inner in ("", "/"):
            raise ConfigError("/linux/cgroupsPath", "must not be the root of the cgroup "
                                                    "hierarchy")
        absolute = inner.startswith("/")
        if not absolute and own is None:
            own = own_cgroups()

        def place(mountpoint: str, own_key: str, parent_of_own: bool) -> str:
            if absolute:
                return _join(mountpoint, inner)
            base = strip_root((own or {}).get(own_key, "/") or "/",
                              layout.roots.get(mountpoint, "/"))
            if parent_of_own:
                base = posixpath.dirname(base.rstrip("/")) or "/"
            return _join(mountpoint, posixpath.join(base, inner))

        paths: dict = {}
        unified = None
        if layout.kind == "v2":
            unified = place(layout.unified, "", parent_of_own=True)
        else:
            for mnt, ctrls in layout.hierarchies().items():
                key = next((c for c in ctrls if c in (own or {})), ctrls[0])
                d = place(mnt, key, parent_of_own=False)
                for c in ctrls:
                    paths[c] = d
            if layout.kind == "hybrid":
                unified = place(layout.unified, "", parent_of_own=False)
        return cls(layout, paths, unified, cgroups_path=cgroups_path, fs=fs)

    @classmethod
    def current(cls, layout: Layout, own: dict | None = None) -> "Cgroup":
        """Where this process is (nothing made, nothing to remove): the cgroup a rootless
        container stays in when it may not have one of its own."""
        own = own_cgroups() if own is None else own
        paths, unified = {}, None
        for mnt, ctrls in layout.hierarchies().items():
            key = next((c for c in ctrls if c in own), None)
            if key is not None:
                d = _join(mnt, strip_root(own[key] or "/", layout.roots.get(mnt, "/")))
                for c in ctrls:
                    paths[c] = d
        if layout.unified and "" in own:
            unified = _join(layout.unified, strip_root(own[""] or "/",
                                                       layout.roots.get(layout.unified, "/")))
        return cls(layout, paths, unified)

    def to_dict(self) -> dict:
        return {
            "version": STATE_VERSION,
            "kind": self.kind,
            "cgroupsPath": self.cgroups_path,
            "paths": dict(self.paths),
            "unified": self.unified,
            "created": list(self.created),
            "devices": None if self._devices is None else [r.to_dict() for r in self._devices],
        }

    @classmethod
    def from_dict(cls, layout: Layout, d: dict, fs: CgroupFS | None = None) -> "Cgroup":
        if d.get("systemd"):
            from .systemd import SystemdCgroup
            return SystemdCgroup.from_saved(layout, d, fs=fs)
        if d.get("kind") != layout.kind:
            raise OcirtError(f"the container's cgroup was made on a cgroup {d.get('kind')} host "
                             f"but this host is cgroup {layout.kind}")
        devices = d.get("devices")
        if devices is not None:
            devices = [DeviceRule(**r) for r in devices]
        return cls(layout, d.get("paths") or {}, d.get("unified"),
                   cgroups_path=d.get("cgroupsPath"), created=d.get("created"),
                   devices=devices, fs=fs)

    # ------------------------------------------------------------ where

    def dirs(self) -> list:
        """Every directory of this cgroup (one per hierarchy), unified last."""
        out = []
        for d in self.paths.values():
            if d not in out:
                out.append(d)
        if self.unified and self.unified not in out:
            out.append(self.unified)
        return out

    def path(self, controller: str | None = None) -> str | None:
        """The directory for a controller (v1), the v2 directory, or the primary one."""
        if self.kind == "v2":
            return self.unified
        if controller is None:
            return self._primary()
        if controller == "":
            return self.unified
        return self.paths.get(controller)

    def _primary(self) -> str | None:
        if self.kind == "v2":
            return self.unified
        for c in _PRIMARY_V1:
            if c in self.paths:
                return self.paths[c]
        if self.paths:
            return next(iter(self.paths.values()))
        return self.unified

    # ------------------------------------------------------------ create

    def create(self) -> None:
        """Make the directories in every hierarchy (v2: enabling controllers on the way)."""
        if self.kind == "v2":
            self._make(self.layout.unified, self.unified, v2_enable=True)
            return
        for mnt, ctrls in self.layout.hierarchies().items():
            d = self.paths.get(ctrls[0])
            if d:
                self._make(mnt, d, cpuset="cpuset" in ctrls)
        if self.unified:
            self._make(self.layout.unified, self.unified)

    def _make(self, mountpoint: str, target: str, cpuset: bool = False,
              v2_enable: bool = False) -> None:
        rel = target[len(mountpoint.rstrip("/")):].strip("/")
        comps = [c for c in rel.split("/") if c]
        for attempt in range(5):
            cur = mountpoint
            try:
                for i, comp in enumerate([None] + comps):
                    if comp is not None:
                        parent, cur = cur, cur.rstrip("/") + "/" + comp
                        if self.fs.mkdir(cur):
                            self.created.append(cur)
                        if cpuset:
                            self._cpuset_inherit(parent, cur)
                    if v2_enable and i < len(comps):
                        self._enable_controllers(cur)
                return
            except FileNotFoundError:
                # A shared parent was removed under us by a concurrent destroy: start over.
                if attempt == 4:
                    raise OcirtError(f"cannot create cgroup {cur}", errno=errno.ENOENT) from None
                continue
            except OSError as e:
                raise OcirtError(f"cannot create cgroup {cur}", errno=e.errno) from None

    def _cpuset_inherit(self, parent: str, d: str) -> None:
        """v1 cpuset: an empty cpus/mems refuses every task; copy the parent's."""
        for name in ("cpuset.cpus", "cpuset.mems"):
            if self.fs.read(os.path.join(d, name)).strip():
                continue
            value = self.fs.read(os.path.join(parent, name)).strip()
            if value:
                self.fs.write(os.path.join(d, name), value)

    def _enable_controllers(self, d: str) -> None:
        """Enable in d/cgroup.subtree_control every controller d has (as runc does)."""
        try:
            avail = self.fs.read(os.path.join(d, "cgroup.controllers")).split()
            have = set(self.fs.read(os.path.join(d, "cgroup.subtree_control")).split())
        except FileNotFoundError:
            raise
        except OSError:
            return
        need = [c for c in avail if c not in have]
        if not need:
            return
        path = os.path.join(d, "cgroup.subtree_control")
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

    # ------------------------------------------------------------ apply

    def apply(self, resources, kernel=None) -> None:
        """Write linux.resources (the dict from config.json, or a parsed Resources).

        On v2, devices become an eBPF program attached with `kernel` (an ocirt.kernel.Kernel;
        a LinuxKernel when not given).
        """
        r = resources if isinstance(resources, Resources) else Resources.parse(resources)
        # Writers are imported on use: a process needs one of them, and only when applying.
        if self.kind == "v2":
            from .v2 import V2Writer
            V2Writer(self.unified, self.fs).apply(r)
            if r.devices is not None:
                from .ebpf import attach_device_filter
                if kernel is None:
                    from ..kernel.linux import LinuxKernel
                    kernel = LinuxKernel()
                attach_device_filter(kernel, self.unified, r.devices)
        else:
            from .v1 import V1Writer
            V1Writer(self.paths, self.fs).apply(r)
            if r.unified:
                from .v2 import V2Writer
                if self.kind == "v1" or not self.unified:
                    raise ConfigError("/linux/resources/unified",
                                      "needs cgroup v2, which is not mounted on this host")
                self._enable_on_path({k.split(".", 1)[0] for k in r.unified} - {"cgroup"})
                V2Writer(self.unified, self.fs, hybrid=True).apply_unified(r.unified)
        if r.devices is not None:
            self._devices = list(r.devices)

    def _enable_on_path(self, controllers: set) -> None:
        """Hybrid: enable just the controllers `unified` asks for, from the cgroup2 root down to
        the container's cgroup (only those the root has: the others are bound to v1)."""
        root = self.layout.unified
        try:
            have = set(self.fs.read(os.path.join(root, "cgroup.controllers")).split())
        except OSError:
            return
        wanted = sorted(controllers & have)
        rel = self.unified[len(root.rstrip("/")):].strip("/").split("/")
        d = root
        for part in rel:
            for c in wanted:
                try:
                    self.fs.write(os.path.join(d, "cgroup.subtree_control"), "+" + c)
                except OSError:
                    pass
            d = os.path.join(d, part)

    def device_rules(self) -> list | None:
        """The device rules last applied, in order (None if none were).

        On v1 they are in devices.allow/deny; on v2 apply() attached them to self.unified as
        an eBPF device filter (ocirt/cgroups/ebpf.py).
        """
        return None if self._devices is None else list(self._devices)

    # ------------------------------------------------------------ processes

    def add_pid(self, pid: int) -> None:
        """Move a process into the cgroup in every hierarchy."""
        for d in self.dirs():
            path = os.path.join(d, "cgroup.procs")
            for attempt in range(10):
                try:
                    self.fs.write(path, str(pid))
                    break
                except OSError as e:
                    # EINVAL: the task may still be in TASK_NEW just after clone.
                    if e.errno == errno.EINVAL and attempt < 9:
                        self.fs.sleep(0.01)
                        continue
                    raise OcirtError(f"cannot move process {pid} into cgroup {d}",
                                     errno=e.errno) from None

    def pids(self) -> list:
        """Every pid in the cgroup and its descendant cgroups, sorted."""
        top = self._primary()
        if not top:
            return []
        out = set()
        stack = [top]
        while stack:
            d = stack.pop()
            try:
                out.update(read_pids(self.fs, os.path.join(d, "cgroup.procs")))
            except OSError:
                pass
            stack.extend(self.fs.subdirs(d))
        return sorted(out)

    def wait_empty(self, timeout: float = 5.0) -> bool:
        """Wait until no process is left (after kill_all); True when empty."""
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            if not self.pids():
                return True
            if time.monotonic() >= deadline:
                return False
            self.fs.sleep(delay)
            delay = min(delay * 2, 0.05)

    # ------------------------------------------------------------ freezer

    def _uses_v2_freezer(self) -> bool:
        return self.kind == "v2" or ("freezer" not in self.paths and bool(self.unified))

    def freeze(self, timeout: float = 10.0) -> None:
        """Freeze every process, returning once the kernel reports them frozen."""
        if self._uses_v2_freezer():
            self._freeze_v2(timeout)
        else:
            self._freeze_v1(timeout)

    def thaw(self) -> None:
        if self._uses_v2_freezer():
            path, value = os.path.join(self.unified, "cgroup.freeze"), "0"
        else:
            path, value = os.path.join(self.paths["freezer"], "freezer.state"), "THAWED"
        try:
            self.fs.write(path, value)
        except OSError as e:
            raise OcirtError(f"cannot thaw cgroup {os.path.dirname(path)}", errno=e.errno) from None

    def frozen(self) -> bool:
        """True if this cgroup itself was frozen (not merely an ancestor)."""
        try:
            if self._uses_v2_freezer():
                return self.fs.read(os.path.join(self.unified, "cgroup.freeze")).strip() == "1"
            d = self.paths["freezer"]
            try:
                return self.fs.read(os.path.join(d, "freezer.self_freezing")).strip() == "1"
            except FileNotFoundError:
                return self.fs.read(os.path.join(d, "freezer.state")).strip() == "FROZEN"
        except (OSError, KeyError, TypeError):
            return False

    def _freeze_v1(self, timeout: float) -> None:
        if "freezer" not in self.paths:
            raise OcirtError("cannot freeze: the freezer cgroup controller is not mounted")
        path = os.path.join(self.paths["freezer"], "freezer.state")
        deadline = time.monotonic() + timeout
        i = 0
        try:
            while True:
                # v1 can stay FREEZING while tasks keep appearing; re-writing FROZEN and now
                # and then thawing briefly gets it unstuck (what runc does, too).
                if i % 50 == 49:
                    self.fs.write(path, "THAWED")
                    self.fs.sleep(0.01)
                self.fs.write(path, "FROZEN")
                state = self.fs.read(path).strip()
                if state == "FROZEN":
                    return
                if state != "FREEZING":
                    raise OcirtError(f"cannot freeze cgroup {self.paths['freezer']}: state is "
                                     f"{state} after writing FROZEN")
                if time.monotonic() >= deadline:
                    self.fs.write(path, "THAWED")
                    raise OcirtError(f"cannot freeze cgroup {self.paths['freezer']}: still "
                                     f"FREEZING after {timeout:g}s")
                i += 1
                if i > 3:
                    self.fs.sleep(0.001)
        except OSError as e:
            raise OcirtError(f"cannot freeze cgroup {self.paths['freezer']}",
                             errno=e.errno) from None

    def _freeze_v2(self, timeout: float) -> None:
        d = self.unified
        try:
            self.fs.write(os.path.join(d, "cgroup.freeze"), "1")
        except OSError as e:
            raise OcirtError(f"cannot freeze cgroup {d}", errno=e.errno) from None
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                events = self.fs.read(os.path.join(d, "cgroup.events"))
            except OSError as e:
                raise OcirtError(f"cannot freeze cgroup {d}", errno=e.errno) from None
            if "frozen 1" in events.splitlines():
                return
            if time.monotonic() >= deadline:
                try:
                    self.fs.write(os.path.join(d, "cgroup.freeze"), "0")
                except OSError:
                    pass
                raise OcirtError(f"cannot freeze cgroup {d}: not frozen after {timeout:g}s")
            self.fs.sleep(delay)
            delay = min(delay * 2, 0.02)

    # ------------------------------------------------------------ kill

    def kill_all(self, sig: int = _signal.SIGKILL) -> None:
        """Send sig to every process of the cgroup (descendant cgroups included).

        v2 with SIGKILL: cgroup.kill, which the kernel makes race-free. Otherwise freeze,
        signal each pid, and thaw, so nothing forks past the list (runc does the same).
        A cgroup that was frozen stays frozen, except after SIGKILL (the processes could
        not die frozen).
        """
        if sig == _signal.SIGKILL and self.kind == "v2":
            path = os.path.join(self.unified, "cgroup.kill")
            if self.fs.exists(path):
                try:
                    self.fs.write(path, "1")
                    return
                except OSError as e:
                    if e.errno == errno.ENOENT:
                        return      # the cgroup is gone: nothing left to kill
                    raise OcirtError(f"cannot kill cgroup {self.unified}", errno=e.errno) from None
        was_frozen = self.frozen()
        froze = False
        if not was_frozen:
            try:
                self.freeze()
                froze = True
            except OcirtError:
                pass        # best effort: signal unfrozen
        try:
            for pid in self.pids():
                try:
                    self.fs.kill(pid, sig)
                except ProcessLookupError:
                    pass
                except OSError as e:
                    raise OcirtError(f"cannot send signal {sig} to {pid}", errno=e.errno) from None
        finally:
            if froze or (was_frozen and sig == _signal.SIGKILL):
                try:
                    self.thaw()
                except OcirtError:
                    pass

    # ------------------------------------------------------------ destroy

    def destroy(self, timeout: float = 2.0) -> None:
        """rmdir what create() made, deepest first. Already gone is fine.

        A directory still busy (processes exiting) is retried for `timeout`; a created
        parent still holding other cgroups is left in place silently.
        """
        leaves = set(self.dirs())
        # Deepest first; within a depth, reverse creation order.
        order = sorted(reversed(self.created), key=lambda p: p.count("/"), reverse=True)
        remaining, failure = [], None
        for d in order:
            try:
                if d in leaves:
                    self._rmtree(d, timeout)
                else:
                    self._rmdir(d, 0)
            except OSError as e:
                if d not in leaves and e.errno in (errno.EBUSY, errno.ENOTEMPTY):
                    continue                # shared parent, still in use
                remaining.append(d)
                if failure is None:
                    failure = OcirtError(f"cannot remove cgroup {d}", errno=e.errno)
        self.created = [d for d in self.created if d in remaining]
        if failure is not None:
            raise failure

    def _rmtree(self, d: str, timeout: float) -> None:
        # Child cgroups the container made itself go first (cgroupfs has only rmdir).
        for sub in self.fs.subdirs(d):
            self._rmtree(sub, timeout)
        self._rmdir(d, timeout)

    def _rmdir(self, d: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            try:
                self.fs.rmdir(d)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                    raise
            self.fs.sleep(delay)
            delay = min(delay * 2, 0.1)

    # ------------------------------------------------------------ stats

    def stats(self) -> dict:
        """Shaped like the "data" of `runc events --stats` (best effort)."""
        from .stats import stats_v1, stats_v2
        if self.kind == "v2":
            return stats_v2(self.fs, self.unified)
        return stats_v1(self.fs, self.paths)

    def __repr__(self) -> str:
        return f"Cgroup(kind={self.kind!r}, dirs={self.dirs()!r})"
