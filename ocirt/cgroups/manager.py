"""The one interface every cgroup manager of a container has.

A manager is picked once, by the factory (cgroups/factory.py), from the host's layout and the
container's settings; callers then use only these operations, whatever drives the cgroup:

    V1Cgroup       cgroupfs, v1 hierarchies (and on a hybrid host the cgroup2 one)  cgroup_v1.py
    V2Cgroup       cgroupfs, the unified hierarchy                                   cgroup_v2.py
    SystemdCgroup  a transient systemd unit, over a V1Cgroup or V2Cgroup             systemd.py
    NoCgroup       a rootless container that may not have a cgroup of its own       nocgroup.py

Operations a manager cannot do raise a one-line OcirtError (NoCgroup: "the container has no
cgroup"); none of them makes a Kernel: the one that needs it (apply, for the v2 device filter)
takes it as an argument.
"""

from __future__ import annotations

import _signal  # not signal: it imports enum


class Manager:
    """What callers may ask of a container's cgroup.

    kind       "v1", "v2", "hybrid" (the host's layout), or "none"
    paths      v1 controller (or name=...) -> directory; {} on v2 and without a cgroup
    unified    the cgroup2 directory (v2, hybrid), else None
    created    the directories create() made (destroy() removes these, and the container's
               own directories that existed before, where they are empty, as runc does)
    """

    kind = "none"
    paths: dict
    unified: str | None
    created: list

    # -- where -----------------------------------------------------------------------------

    def dirs(self) -> list:
        """Every directory of the cgroup (one per hierarchy), unified last."""
        raise NotImplementedError

    def path(self, controller: str | None = None) -> str | None:
        """The directory of a controller (v1), the v2 directory, or the primary one."""
        raise NotImplementedError

    def placement(self) -> Manager:
        """The cgroup the container's processes are in: this one, or the runtime's own (what
        the container may see as /sys/fs/cgroup) when it has none."""
        return self

    def to_dict(self) -> dict:
        """What state.json keeps (read back by factory.manager_from_state)."""
        raise NotImplementedError

    # -- life cycle ------------------------------------------------------------------------

    def create(self, warn=None) -> None:
        """Make the cgroup's directories. A cgroup that is frozen (itself or by an ancestor) is
        refused before any process goes there (it would never run); one that already has
        processes is joined with a warning (`warn(message)`, runc's)."""
        raise NotImplementedError

    def sub(self, paths: dict) -> Manager:
        """exec --cgroup: the manager of an existing sub-cgroup of this one, {controller or ""
        (every hierarchy): path below the container's cgroup}; a path that leaves it, or one
        that does not exist, is refused. Nothing is made, and destroy() of it removes nothing."""
        from ..errors import OcirtError

        raise OcirtError("the container's cgroup has no sub-cgroups (exec --cgroup)")

    def apply(self, resources, kernel=None) -> None:
        """Write linux.resources (the config.json dict or a parsed Resources). `kernel` (an
        ocirt.kernel.Kernel) is needed where device rules become an eBPF program (v2)."""
        raise NotImplementedError

    def device_rules(self) -> list | None:
        """The device rules last applied, in order (None if none were)."""
        raise NotImplementedError

    def add_pid(self, pid: int) -> None:
        """Move a process into the cgroup."""
        raise NotImplementedError

    def self_placement(self) -> tuple[str | None, list[str]] | None:
        """How a child gets into the cgroup with no process moving it (and so with no wait
        for the kernel's cgroup-attach grace period): the directory it is born in (clone3 with
        CLONE_INTO_CGROUP; None: an ordinary fork) and the v1 `tasks` files it writes 0 to
        first thing, while it has one thread (Kernel.move_self); None where a move by the
        parent (add_pid) is the way (exec's record has its own, saved.Joinable)."""
        raise NotImplementedError

    def destroy(self, timeout: float = 2.0) -> None:
        """Remove what create() made, and the container's directories that existed before it
        if they are empty (as runc's delete does; one still holding processes that are not the
        container's is left). Already gone is fine."""
        raise NotImplementedError

    # -- processes -------------------------------------------------------------------------

    def pids(self) -> list:
        """The container's processes (host pids), sorted."""
        raise NotImplementedError

    def wait_empty(self, timeout: float = 5.0) -> bool:
        """Wait until no process is left (after kill_all); True when empty."""
        raise NotImplementedError

    def kill_all(self, sig: int = _signal.SIGKILL) -> None:
        """Send sig to every process of the cgroup."""
        raise NotImplementedError

    def freeze(self, timeout: float = 10.0) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def frozen(self) -> bool:
        """True if this cgroup itself was frozen (not merely an ancestor)."""
        raise NotImplementedError

    def stats(self) -> dict:
        """Shaped like the "data" of `runc events --stats` (best effort)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, dirs={self.dirs()!r})"
