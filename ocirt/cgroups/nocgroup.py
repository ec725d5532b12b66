"""The manager of a container without a cgroup of its own: a rootless create that was not
permitted to make one, and asked for no limits (runc goes on the same way).

Nothing is made, moved or removed. Its processes are those of its init's pid namespace (just
the init when it shares the runtime's). Operations that need a cgroup (pause, resume, update,
stats, kill --all) fail with one line: "the container has no cgroup". state.json records `{}`.
"""

from __future__ import annotations

import _signal
import os

from ..errors import OcirtError
from .manager import Manager

NO_CGROUP = "the container has no cgroup"


def _asks_limits(resources) -> bool:
    """True unless `resources` (a dict or a parsed Resources) holds device rules and nothing
    else."""
    if not isinstance(resources, dict):  # a Resources: what differs from none
        unset = type(resources)()
        resources = {
            f: getattr(resources, f)
            for f in resources._fields
            if f == "devices" or getattr(resources, f) != getattr(unset, f)
        }
    if resources.get("devices") is None:
        return True
    return any(v not in (None, {}, []) for k, v in resources.items() if k != "devices")


class NoCgroup(Manager):
    """layout: the host's; pid: the container's init (0: none yet); current: () -> the
    runtime's own cgroup as a manager (what the container sees as /sys/fs/cgroup)."""

    kind = "none"

    def __init__(self, layout=None, pid: int = 0, current=None):
        self.layout = layout
        self.pid = pid
        self._current = current
        self.paths: dict = {}
        self.unified: str | None = None
        self.created: list = []
        self.cgroups_path = None

    def dirs(self) -> list:
        return []

    def path(self, controller: str | None = None) -> str | None:
        raise OcirtError(NO_CGROUP)

    def placement(self) -> Manager:
        if self._current is None:
            return self
        return self._current()

    def to_dict(self) -> dict:
        return {}

    def create(self, warn=None) -> None:
        pass

    def sub(self, paths: dict) -> Manager:
        raise OcirtError(NO_CGROUP)

    def apply(self, resources, kernel=None) -> None:
        """Device rules are dropped (no cgroup to hold them: the container has the devices its
        rootfs has); anything else needs a cgroup."""
        if _asks_limits(resources):
            raise OcirtError(NO_CGROUP)

    def device_rules(self) -> list | None:
        return None

    def self_placement(self) -> tuple[str | None, list[str]] | None:
        return None

    def add_pid(self, pid: int) -> None:
        pass

    def destroy(self, timeout: float = 2.0) -> None:
        pass

    def pids(self) -> list:
        """The members of the init's pid namespace ([init] when it shares the runtime's)."""
        if not self.pid:
            return []
        try:
            target = os.stat(f"/proc/{self.pid}/ns/pid")
            if os.path.samestat(target, os.stat("/proc/self/ns/pid")):
                return [self.pid]
        except OSError:
            return []
        out = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.path.samestat(os.stat(f"/proc/{name}/ns/pid"), target):
                        out.append(int(name))
                except OSError:
                    continue
        return sorted(out)

    def wait_empty(self, timeout: float = 5.0) -> bool:
        return True  # no cgroup to empty: the init's death is waited for elsewhere

    def kill_all(self, sig: int = _signal.SIGKILL) -> None:
        raise OcirtError(NO_CGROUP)

    def freeze(self, timeout: float = 10.0) -> None:
        raise OcirtError(NO_CGROUP)

    def thaw(self) -> None:
        raise OcirtError(NO_CGROUP)

    def frozen(self) -> bool:
        return False

    def stats(self) -> dict:
        raise OcirtError(NO_CGROUP)

    def __repr__(self) -> str:
        return f"NoCgroup(pid={self.pid})"
