"""Cgroups for ocirt: layout detection, the resources model, the managers and their writers.

    layout = cgroups.detect()
    cg = cgroups.manager_for(layout, cgroups_path, container_id, systemd=False)
    cg.create(warn=None); cg.add_pid(pid); cg.apply(resources_dict, kernel); cg.sub(paths)
    cg.pids(); cg.freeze(); cg.thaw(); cg.frozen(); cg.kill_all(sig); cg.destroy()
    cg.stats(); cg.device_rules()
    cg.to_dict() / cgroups.manager_from_state(layout, d, pid=init_pid)

Every manager has the interface of cgroups/manager.py. Stdlib only, no subprocess: this is on
the hot path of create. `update`'s merging and parsing live in cgroups/update.py (imported on
use).
"""

from .factory import current, manager_for, manager_from_state, no_cgroup
from .layout import Layout, detect, parse_mountinfo, parse_proc_cgroup
from .manager import Manager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .resources import DeviceRule, Resources


def __getattr__(name: str):
    """Resources and DeviceRule, imported on first use: the commands that only read or signal
    a container never need them."""
    if name in ("Resources", "DeviceRule"):
        from . import resources

        return getattr(resources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Manager",
    "manager_for",
    "manager_from_state",
    "no_cgroup",
    "current",
    "Layout",
    "detect",
    "parse_mountinfo",
    "parse_proc_cgroup",
    "Resources",
    "DeviceRule",
]
