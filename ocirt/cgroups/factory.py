"""Which manager a container's cgroup gets (cgroups/manager.py), decided once: here.

    manager_for(layout, cgroups_path, id, systemd=..)   a new container (create, `ocirt plan`)
    manager_from_state(layout, state_dict, pid=..)      an existing one (state.json's "cgroup")
    no_cgroup(layout, pid)                              a rootless container without one
    current(layout)                                     the runtime's own cgroup (nothing made)

state.json keeps what to_dict() gave: the cgroupfs fields (kind, paths, unified, created,
devices), plus "systemd" for the systemd driver; `{}` means no cgroup.
"""

from __future__ import annotations

from ..errors import ConfigError
from .cgroup import FsCgroup, current_dirs
from .layout import Layout
from .manager import Manager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .nocgroup import NoCgroup


def fs_class(kind: str) -> type[FsCgroup]:
    """The cgroupfs manager of a layout kind ("v1" and "hybrid" share one); only the host's
    kind is imported."""
    if kind == "v2":
        from .cgroup_v2 import V2Cgroup

        return V2Cgroup
    from .cgroup_v1 import V1Cgroup

    return V1Cgroup


def manager_for(
    layout: Layout,
    cgroups_path: str | None,
    container_id: str,
    *,
    systemd: bool = False,
    own: dict | None = None,
    fs=None,
    bus=None,
    annotations: dict | None = None,
) -> Manager:
    """The manager of a new container's cgroup (nothing is touched yet).

    `own` is /proc/self/cgroup parsed (read when a relative path needs it). With `systemd` the
    container becomes a systemd unit: `annotations` may carry org.systemd.property.*, and `bus`
    (a callable returning a connection) replaces D-Bus (a recording one for `ocirt plan`).
    """
    if cgroups_path is not None and not isinstance(cgroups_path, str):
        raise ConfigError("/linux/cgroupsPath", "must be a string")
    if systemd:
        from .systemd import SystemdCgroup

        return SystemdCgroup.for_systemd(
            layout, cgroups_path, container_id, annotations=annotations, fs=fs, bus=bus
        )
    return fs_class(layout.kind).for_container(layout, cgroups_path, container_id, own=own, fs=fs)


def manager_from_state(layout: Layout, d: dict | None, *, pid: int = 0, fs=None, bus=None) -> Manager:
    """The manager of an existing container, from what to_dict() saved. `pid` is its init
    (what a container without a cgroup knows its processes by)."""
    if not d or not d.get("kind"):
        return no_cgroup(layout, pid)
    if d.get("systemd"):
        from .systemd import SystemdCgroup

        cg: Manager = SystemdCgroup.from_saved(layout, d, fs=fs, bus=bus)
    else:
        cg = fs_class(layout.kind).from_dict(layout, d, fs=fs)
    # none of the directories it names is one create could have made (a damaged record:
    # cgroup.in_hierarchy): as a container without a cgroup, its processes those of its pid
    # namespace
    return cg if cg.dirs() else no_cgroup(layout, pid)


def no_cgroup(layout: Layout | None = None, pid: int = 0) -> NoCgroup:
    from .nocgroup import NoCgroup

    return NoCgroup(layout, pid, current=None if layout is None else lambda: current(layout))


def current(layout: Layout, own: dict | None = None) -> FsCgroup:
    """Where this process is (nothing made, nothing to remove): the cgroup a rootless
    container stays in when it may not have one of its own."""
    if own is None:
        from .layout import own_cgroups

        own = own_cgroups()
    paths, unified = current_dirs(layout, own)
    return fs_class(layout.kind)(layout, paths, unified)
