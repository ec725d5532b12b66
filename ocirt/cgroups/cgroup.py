"""What the cgroupfs managers (cgroup_v1.py, cgroup_v2.py) share: where the cgroup lives, its
directories made and removed, processes moved in, listed, signalled.

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

destroy() removes the directories create() made and, as runc does, the container's own
directories that existed before create (a cgroup it joined) where they are empty; parents that
existed before are left alone. Joining a frozen cgroup is refused (the container would never
run), a non-empty one is a warning (runc's).
"""

from __future__ import annotations

import _signal  # not signal: it imports enum, ~3 ms on every command
import errno
import time

from ..errors import ConfigError, OcirtError
from ..paths import dirname, join  # os.path's, on posix
from .fs import DEFAULT_FS, CgroupFS, read_pids
from .layout import Layout, clean_path, strip_root
from .manager import Manager
from .saved import cgroup_dirs, move, removal_order, self_placement

STATE_VERSION = 1


def _join(mountpoint: str, cg_path: str) -> str:
    """mount point + cgroup path ('/' or '/a/b')."""
    rel = cg_path.strip("/")
    base = mountpoint.rstrip("/")
    return base + "/" + rel if rel else (base or "/")


def _below(d: str, sub: str) -> str:
    """d/sub, where sub may not climb out of d (exec --cgroup)."""
    parts: list[str] = []
    for comp in sub.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise OcirtError(f"{sub} is not a sub cgroup path")
            parts.pop()
            continue
        parts.append(comp)
    return d.rstrip("/") + "".join("/" + p for p in parts)


def inner_path(cgroups_path: str | None, container_id: str) -> str:
    """linux.cgroupsPath cleaned ("/a/b" absolute, "a/b" relative), or the container id."""
    if cgroups_path is not None and not isinstance(cgroups_path, str):
        raise ConfigError("/linux/cgroupsPath", "must be a string")
    if cgroups_path:
        inner = clean_path(cgroups_path)
    else:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise OcirtError(f"invalid container id {container_id!r} for a cgroup name")
        inner = container_id
    if inner in ("", "/"):
        raise ConfigError("/linux/cgroupsPath", "must not be the root of the cgroup hierarchy")
    return inner


def place(layout: Layout, inner: str, own: dict, mountpoint: str, own_key: str, parent_of_own: bool) -> str:
    """The directory of `inner` in the hierarchy mounted at `mountpoint`: as is when absolute,
    else below this process's cgroup there (`own[own_key]`), or below its parent."""
    if inner.startswith("/"):
        return _join(mountpoint, inner)
    base = strip_root(own.get(own_key, "/") or "/", layout.roots.get(mountpoint, "/"))
    if parent_of_own:
        base = dirname(base.rstrip("/")) or "/"
    return _join(mountpoint, join(base, inner))


def current_dirs(layout: Layout, own: dict) -> tuple[dict, str | None]:
    """(paths, unified) of the cgroup this process is in."""
    paths, unified = {}, None
    for mnt, ctrls in layout.hierarchies().items():
        key = next((c for c in ctrls if c in own), None)
        if key is not None:
            d = _join(mnt, strip_root(own[key] or "/", layout.roots.get(mnt, "/")))
            for c in ctrls:
                paths[c] = d
    if layout.unified and "" in own:
        unified = _join(layout.unified, strip_root(own[""] or "/", layout.roots.get(layout.unified, "/")))
    return paths, unified


def in_hierarchy(layout: Layout):
    """Whether a directory of a saved record is one create could have made: strictly below one
    of this host's cgroup mounts. A hierarchy's root is not (create refuses a cgroupsPath of "/",
    and no mkdir makes a mount point), nor is a directory outside every hierarchy."""
    mounts = [m + "/" for m in (*layout.mounts.values(), layout.unified) if m]
    return lambda d: type(d) is str and any(d.startswith(m) for m in mounts)


class FsCgroup(Manager):
    """A cgroup written through cgroupfs; the v1 and v2 managers fill in what differs.

    paths    v1/hybrid: v1 controller (or name=...) -> directory; {} on v2
    unified  v2: the directory; hybrid: the directory in the cgroup2 hierarchy; v1: None
    created  directories create() made, in creation order (destroy removes only these)
    """

    def __init__(
        self,
        layout: Layout,
        paths: dict,
        unified: str | None,
        cgroups_path: str | None = None,
        created=None,
        devices=None,
        fs: CgroupFS | None = None,
    ):
        self.layout = layout
        self.kind = layout.kind
        self.paths = dict(paths)
        self.unified = unified
        self.cgroups_path = cgroups_path
        self.created = list(created or [])
        self._devices = devices  # list[DeviceRule] last applied, or None
        self.fs = fs or DEFAULT_FS

    # ------------------------------------------------------------ construction

    @classmethod
    def locate(cls, layout: Layout, inner: str, own: dict) -> tuple[dict, str | None]:
        """(paths, unified) for the cleaned cgroups path `inner` (see inner_path)."""
        raise NotImplementedError

    @classmethod
    def for_container(
        cls,
        layout: Layout,
        cgroups_path: str | None,
        container_id: str,
        own: dict | None = None,
        fs: CgroupFS | None = None,
    ) -> FsCgroup:
        """Where the container's cgroup is (nothing is touched yet). `own` is /proc/self/cgroup
        parsed (layout.parse_proc_cgroup); read when a relative path needs it."""
        inner = inner_path(cgroups_path, container_id)
        if own is None and not inner.startswith("/"):
            from .layout import own_cgroups

            own = own_cgroups()
        paths, unified = cls.locate(layout, inner, own or {})
        return cls(layout, paths, unified, cgroups_path=cgroups_path, fs=fs)

    def to_dict(self) -> dict:
        return {
            "version": STATE_VERSION,
            "kind": self.kind,
            "cgroupsPath": self.cgroups_path,
            "paths": dict(self.paths),
            "unified": self.unified,
            "created": list(self.created),
            "devices": None if self._devices is None else [r.to_dict() for r in self._device_list()],
        }

    @classmethod
    def from_dict(cls, layout: Layout, d: dict, fs: CgroupFS | None = None) -> FsCgroup:
        if d.get("kind") != layout.kind:
            raise OcirtError(
                f"the container's cgroup was made on a cgroup {d.get('kind')} host "
                f"but this host is cgroup {layout.kind}"
            )
        devices = d.get("devices")  # kept as saved; parsed when asked for (_device_list)
        # A damaged record that named a hierarchy's root had `kill --all` and `delete --force`
        # signal every process below it (on the root cgroup, every process of the host): a
        # directory create cannot have made is no directory of the container's.
        ours = in_hierarchy(layout)
        unified = d.get("unified")
        return cls(
            layout,
            {ctrl: p for ctrl, p in (d.get("paths") or {}).items() if ours(p)},
            unified if ours(unified) else None,
            cgroups_path=d.get("cgroupsPath"),
            created=[p for p in d.get("created") or [] if ours(p)],
            devices=devices,
            fs=fs,
        )

    # ------------------------------------------------------------ where

    def dirs(self) -> list:
        return cgroup_dirs(self.paths, self.unified)

    # ------------------------------------------------------------ create

    def create(self, warn=None) -> None:
        """(Manager.create.) A failure in any hierarchy removes what was made in all of them."""
        existed = [d for d in self.dirs() if self.fs.isdir(d)]
        try:
            self._create()
            if self._effectively_frozen():
                raise OcirtError("container's cgroup unexpectedly frozen")
        except BaseException:
            try:
                self._remove_created()
            except OcirtError:
                pass  # the create's own error is the one told; state.json names what is left
            raise
        if existed and warn is not None:
            count = len(self._pids_below(existed))
            if count:
                warn(f"container's cgroup is not empty: {count} process(es) found")

    def _create(self) -> None:
        """mkdir the directories (the v1 and v2 managers)."""
        raise NotImplementedError

    def _effectively_frozen(self) -> bool:
        raise NotImplementedError

    def sub(self, paths: dict) -> FsCgroup:
        for controller in paths:
            if controller and controller not in self.paths:
                raise OcirtError(f"--cgroup: unknown controller {controller}")
        new_paths = {c: _below(d, paths.get(c, paths.get("", ""))) for c, d in self.paths.items()}
        unified = self.unified
        if unified and "" in paths:
            unified = _below(unified, paths[""])
        for d in set(new_paths.values()) | ({unified} if unified else set()):
            if not self.fs.isdir(d):
                raise OcirtError(f"--cgroup: no sub-cgroup {d}", errno=errno.ENOENT)
        return type(self)(self.layout, new_paths, unified, fs=self.fs)

    def _make(self, mountpoint: str, target: str, made=None, descending=None) -> None:
        """mkdir target and its missing parents below mountpoint. made(parent, dir) follows
        each directory of the path; descending(dir) precedes each step down (the mount point
        included)."""
        rel = target[len(mountpoint.rstrip("/")) :].strip("/")
        comps = [c for c in rel.split("/") if c]
        for attempt in range(5):
            cur = mountpoint
            try:
                for i, comp in enumerate((None, *comps)):
                    if comp is not None:
                        parent, cur = cur, cur.rstrip("/") + "/" + comp
                        # listed before the mkdir: a ^C between the two must not leave a
                        # directory made that the cleanup does not know of
                        self.created.append(cur)
                        try:
                            new = self.fs.mkdir(cur)
                        except OSError:
                            self.created.pop()
                            raise
                        if not new:
                            self.created.pop()
                            if not self.fs.isdir(cur):
                                self._not_a_cgroup(parent, comp)
                        if made is not None:
                            made(parent, cur)
                    if descending is not None and i < len(comps):
                        descending(cur)
                return
            except FileNotFoundError:
                # A shared parent was removed under us by a concurrent destroy: start over.
                if attempt == 4:
                    raise OcirtError(f"cannot create cgroup {cur}", errno=errno.ENOENT) from None
                continue
            except OSError as e:  # a name the kernel refuses (too long, a newline): the config's
                where = "/linux/cgroupsPath: " if self.cgroups_path else ""
                raise OcirtError(f"{where}cannot create cgroup {cur}", errno=e.errno) from None

    def _not_a_cgroup(self, parent: str, name: str) -> None:
        """The path names a file of a cgroup (cgroup.procs, tasks, ...) where a directory goes."""
        rule = f"{name!r} is a file of the cgroup {parent}, not a cgroup"
        if self.cgroups_path:
            raise ConfigError("/linux/cgroupsPath", rule)
        raise OcirtError(f"cannot create cgroup: {rule}")

    def device_rules(self) -> list | None:
        """The device rules last applied, in order (None if none were).

        On v1 they are in devices.allow/deny; on v2 apply() attached them to self.unified as
        an eBPF device filter (ocirt/cgroups/ebpf.py).
        """
        return None if self._devices is None else list(self._device_list())

    def _device_list(self) -> list:
        """The rules as DeviceRules; from_dict keeps state.json's dicts until they are needed, so
        the commands that only read or signal a container do not load the resources model."""
        if self._devices and isinstance(self._devices[0], dict):
            from .resources import DeviceRule

            self._devices = [DeviceRule(**r) for r in self._devices]
        return self._devices or []

    # ------------------------------------------------------------ processes

    def self_placement(self) -> tuple[str | None, list[str]] | None:
        return self_placement(self.dirs(), self.unified)  # (V2Cgroup: none without a directory)

    def add_pid(self, pid: int) -> None:
        """Move a process into the cgroup in every hierarchy."""
        move(self.dirs(), pid, self.fs.write, self.fs.sleep)

    def pids(self) -> list:
        """Every pid in the cgroup and its descendant cgroups, sorted."""
        top = self.path()
        return sorted(self._pids_below([top])) if top else []

    def wait_empty(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            if not self.pids():
                return True
            if time.monotonic() >= deadline:
                return False
            self.fs.sleep(delay)
            delay = min(delay * 2, 0.05)

    def kill_all(self, sig: int = _signal.SIGKILL) -> None:
        """Send sig to every process of the cgroup (descendant cgroups included).

        Freeze, signal each pid, and thaw, so nothing forks past the list (runc does the same).
        A cgroup that was frozen stays frozen, except after SIGKILL (the processes could not
        die frozen).
        """
        was_frozen = self.frozen()
        froze = False
        if not was_frozen:
            try:
                self.freeze()
                froze = True
            except OcirtError:
                pass  # best effort: signal unfrozen
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
        """rmdir what create() made, deepest first, and the container's own directories that
        existed before, where nothing is left in them. Already gone is fine.

        A directory still busy (processes exiting) is retried for `timeout`; a created
        parent still holding other cgroups is left in place silently, and so is a directory
        that existed before and still holds processes (not the container's: they stay).
        """
        made = set(self.created)
        self._remove_created(timeout)
        for d in self.dirs():
            if d in made or not self.fs.isdir(d) or self._pids_below([d]):
                continue
            try:
                self.rmtree(d, timeout)
            except OSError:
                pass  # busy: someone else's cgroup below, or a process

    def _pids_below(self, dirs: list) -> set:
        """Every pid in the cgroups `dirs` and their descendants."""
        out, stack = set(), list(dirs)
        while stack:
            d = stack.pop()
            try:
                out.update(read_pids(self.fs, join(d, "cgroup.procs")))
            except OSError:
                pass
            stack.extend(self.fs.subdirs(d))
        return out

    def _remove_created(self, timeout: float = 2.0) -> None:
        """rmdir what create() made, deepest first (destroy's first part)."""
        leaves = set(self.dirs())
        order = removal_order(self.created)
        remaining, failure = [], None
        for d in order:
            try:
                if d in leaves:
                    self.rmtree(d, timeout)
                else:
                    self._rmdir(d, 0)
            except OSError as e:
                if d not in leaves and e.errno in (errno.EBUSY, errno.ENOTEMPTY):
                    continue  # shared parent, still in use
                remaining.append(d)
                if failure is None:
                    failure = OcirtError(f"cannot remove cgroup {d}", errno=e.errno)
        self.created = [d for d in self.created if d in remaining]
        if failure is not None:
            raise failure

    def rmtree(self, d: str, timeout: float) -> None:
        """rmdir d after the child cgroups the container made itself (cgroupfs has only rmdir).
        d is tried first: it has none, as a rule (`run`'s delete removes a directory per
        hierarchy), and a listing costs more than the rmdir; EBUSY says there may be some."""
        if self._rmdir_once(d):
            return
        for sub in self.fs.subdirs(d):
            self.rmtree(sub, timeout)
        self._rmdir(d, timeout)

    def _rmdir_once(self, d: str, busy_raises: bool = False) -> bool:
        """rmdir d: True when it is gone (or was already), False while it is busy (EBUSY)."""
        try:
            self.fs.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno != errno.EBUSY or busy_raises:
                raise
            return False
        return True

    def _rmdir(self, d: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.002
        while not self._rmdir_once(d, busy_raises=time.monotonic() >= deadline):
            self.fs.sleep(delay)
            delay = min(delay * 2, 0.1)
