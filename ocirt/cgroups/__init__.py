"""Cgroups for ocirt: layout detection, the resources model, v1 and v2 writers, the facade.

    layout = cgroups.detect()
    cg = cgroups.Cgroup.for_container(layout, cgroups_path, container_id, systemd=False)
    cg.create(); cg.add_pid(pid); cg.apply(resources_dict)
    cg.pids(); cg.freeze(); cg.thaw(); cg.frozen(); cg.kill_all(sig); cg.destroy()
    cg.stats(); cg.device_rules()
    cg.to_dict() / Cgroup.from_dict(layout, d)

Stdlib only, no subprocess: this is on the hot path of create.
"""
from .cgroup import Cgroup
from .layout import Layout, detect, parse_mountinfo, parse_proc_cgroup
from .resources import DeviceRule, Resources

__all__ = ["Cgroup", "Layout", "detect", "parse_mountinfo", "parse_proc_cgroup", "Resources",
           "DeviceRule"]
