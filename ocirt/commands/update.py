"""`update [flags] <id>`: change the resource limits of a live container (runc's flags and JSON).

The new values come from --resources FILE ('-': stdin; Docker/containerd pass JSON on stdin,
podman a file) or from the individual flags; with --resources the flags are ignored, as in runc.
This file is the argv side: the flags become a partial linux.resources; checking, merging,
writing, recording and rolling back are ocirt/cgroups/update.py's.
"""

from __future__ import annotations

from ..cgroups.update import (
    apply_resources,
    check_rdt,
    from_json,
    memory_value,
    parse_int,
    parse_uint,
    read_resources,
    resources_delta,
)
from ..cli import Opt, go_int
from ..container import OpenContainer
from .pause import exact_id

USAGE = "update [command options] <container-id>"

_RESOURCES_HELP = """path to the file containing the resources to update or '-' to read from the standard input

The accepted format is as follow (unchanged values can be omitted):

{
  "memory": {
    "limit": 0,
    "reservation": 0,
    "swap": 0
  },
  "cpu": {
    "shares": 0,
    "quota": 0,
    "period": 0,
    "realtimeRuntime": 0,
    "realtimePeriod": 0,
    "cpus": "",
    "mems": ""
  },
  "blockIO": {
    "weight": 0
  }
}

Note: if data is to be read from a file or the standard input, all
other options are ignored."""

OPTIONS = (
    Opt("resources", "r", value=True, help=_RESOURCES_HELP),
    Opt(
        "blkio-weight",
        value=True,
        default=0,
        number=True,
        help="Specifies per cgroup weight, range is from 10 to 1000",
    ),
    Opt(
        "cpu-period",
        value=True,
        help="CPU CFS period to be used for hardcapping (in usecs). 0 to use system default",
    ),
    Opt("cpu-quota", value=True, help="CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period"),
    Opt("cpu-share", value=True, help="CPU shares (relative weight vs. other containers)"),
    Opt(
        "cpu-rt-period",
        value=True,
        help="CPU realtime period to be used for hardcapping (in usecs). 0 to use system default",
    ),
    Opt(
        "cpu-rt-runtime",
        value=True,
        help="CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period",
    ),
    Opt("cpuset-cpus", value=True, help="CPU(s) to use"),
    Opt("cpuset-mems", value=True, help="Memory node(s) to use"),
    Opt("kernel-memory", value=True, help="(obsoleted; do not use)"),
    Opt("kernel-memory-tcp", value=True, help="(obsoleted; do not use)"),
    Opt("memory", value=True, help="Memory limit (in bytes)"),
    Opt("memory-reservation", value=True, help="Memory reservation or soft_limit (in bytes)"),
    Opt(
        "memory-swap",
        value=True,
        help="Total memory usage (memory + swap); set '-1' to enable unlimited swap",
    ),
    Opt(
        "pids-limit",
        value=True,
        default=0,
        number=True,
        help="Maximum number of pids allowed in the container",
    ),
    Opt("l3-cache-schema", value=True, help="The string of Intel RDT/CAT L3 cache schema"),
    Opt("mem-bw-schema", value=True, help="The string of Intel RDT/MBA memory bandwidth schema"),
)


def int_flag(opt: str, value) -> int:
    """A Go `flag` int (cli.go_int); parse() has made the number flags ints already."""
    return value if isinstance(value, int) else go_int(opt, value)


# -- the flags as a partial linux.resources ----------------------------------------------------------


def from_flags(o: dict, log) -> dict:
    """The flags -> a partial linux.resources (runc's update.go, field by field)."""
    memory, cpu, blkio, pids = {}, {}, {}, {}
    weight = int_flag("blkio-weight", o["blkio_weight"])
    if weight != 0:
        blkio["weight"] = weight & 0xFFFF  # runc: uint16(val)
    if o["cpuset_cpus"]:
        cpu["cpus"] = o["cpuset_cpus"]
    if o["cpuset_mems"]:
        cpu["mems"] = o["cpuset_mems"]
    for opt, key in (("cpu-period", "period"), ("cpu-rt-period", "realtimePeriod"), ("cpu-share", "shares")):
        val = o[opt.replace("-", "_")]
        if val:
            cpu[key] = parse_uint(opt, val)
    for opt, key in (("cpu-quota", "quota"), ("cpu-rt-runtime", "realtimeRuntime")):
        val = o[opt.replace("-", "_")]
        if val:
            cpu[key] = parse_int(opt, val)
    for opt, key in (("memory", "limit"), ("memory-swap", "swap"), ("memory-reservation", "reservation")):
        val = o[opt.replace("-", "_")]
        if val:
            memory[key] = memory_value(opt, val)
    if o["kernel_memory"] or o["kernel_memory_tcp"]:
        log.warning(KERNEL_MEMORY_IGNORED)
    limit = int_flag("pids-limit", o["pids_limit"])
    if limit != 0:
        pids["limit"] = limit
    return resources_delta(memory, cpu, blkio, pids, {})


KERNEL_MEMORY_IGNORED = "Kernel memory settings are ignored and will be removed"


def kernel_memory_in(text: str) -> bool:
    """A --resources document (valid: from_json took it) sets memory.kernel or kernelTCP."""
    if '"kernel' not in text:  # (the document is parsed a second time only then)
        return False
    from .. import jsonio

    memory = (jsonio.loads(text) or {}).get("memory")
    return isinstance(memory, dict) and any(memory.get(k) is not None for k in ("kernel", "kernelTCP"))


# -- main ------------------------------------------------------------------------------------------


def main(g, o, args) -> int:
    container_id = exact_id(args, "update")
    c = OpenContainer.open(g.root, container_id)
    try:
        if o["resources"]:
            text = read_resources(o["resources"])
            delta = from_json(text)
            if kernel_memory_in(text):  # as the flags' (runc warns of either)
                g.log.warning(KERNEL_MEMORY_IGNORED)
        else:
            delta = from_flags(o, g.log)
        check_rdt(o["l3_cache_schema"], o["mem_bw_schema"])
        apply_resources(c, delta, g.log.warning)
    finally:
        c.close()
    return 0
