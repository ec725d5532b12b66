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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .factory import current, manager_for, manager_from_state, no_cgroup
    from .layout import Layout, detect, parse_mountinfo, parse_proc_cgroup
    from .manager import Manager
    from .resources import DeviceRule, Resources

# name -> the module that has it, imported on first use: a command that only reads or signals a
# container (state, start, kill) asks cgroups/freezer.py about a saved cgroup and never needs the
# managers, the layout detection or the resources model.
_WHERE = {
    "current": "factory",
    "manager_for": "factory",
    "manager_from_state": "factory",
    "no_cgroup": "factory",
    "Layout": "layout",
    "detect": "layout",
    "parse_mountinfo": "layout",
    "parse_proc_cgroup": "layout",
    "Manager": "manager",
    "Resources": "resources",
    "DeviceRule": "resources",
}


def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(__import__(f"{__name__}.{where}", fromlist=["_"]), name)
    globals()[name] = value
    return value


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
