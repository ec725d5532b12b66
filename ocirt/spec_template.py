"""The starter config.json that `ocirt spec` writes: the same content as `runc spec`, built here.

A root container gets new pid, network, ipc, uts and mount namespaces (and a cgroup namespace on a
cgroup v2 host, as runc does), three capabilities, a read-only rootfs, masked and read-only /proc
paths and a device cgroup that denies everything. The rootless variant (`--rootless`) is what runc's
ToRootless makes of it: the network namespace goes (an unprivileged user can't set one up), a user
namespace maps the caller's euid/egid to root, /sys becomes a recursive bind mount (sysfs can't be
mounted without owning a network namespace), the devpts gid= option goes (gid 5 isn't mapped), and
the cgroup resources go (no permission to write them).

Unlike runc 1.1.5 there are no ambient capabilities: without inheritable ones they can't be raised
(current runc dropped them too), and /sys/devices/virtual/tpm is masked as in current runc.
"""

from __future__ import annotations

import os

OCI_VERSION = "1.3.0"
HOSTNAME = "ocirt"
DEFAULT_ARGS = ("sh",)
DEFAULT_CAPABILITIES = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
    "/sys/devices/virtual/tpm",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def cgroup2_unified(mountpoint: str = "/sys/fs/cgroup") -> bool:
    """True on a pure cgroup v2 host (runc adds the cgroup namespace to its example only then)."""
    return os.path.exists(os.path.join(mountpoint, "cgroup.controllers"))


def _mount(destination: str, kind: str, source: str, *options: str) -> dict:
    m: dict = {"destination": destination, "type": kind, "source": source}
    if options:
        m["options"] = list(options)
    return m


def default_spec(rootless: bool = False, args=None, *, cgroupns: bool | None = None) -> dict:
    """A fresh starter config as a dict. `args` replaces process.args (default ["sh"]);
    `cgroupns` forces the cgroup namespace in or out (default: in on a cgroup v2 host, like runc)."""
    if cgroupns is None:
        cgroupns = cgroup2_unified()
    caps = list(DEFAULT_CAPABILITIES)
    devpts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if not rootless:
        devpts.append("gid=5")
    if rootless:
        sys_mount = _mount("/sys", "none", "/sys", "rbind", "nosuid", "noexec", "nodev", "ro")
    else:
        sys_mount = _mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro")

    namespaces = ["pid"] + ([] if rootless else ["network"]) + ["ipc", "uts", "mount"]
    if cgroupns:
        namespaces.append("cgroup")
    if rootless:
        namespaces.append("user")

    linux: dict = {}
    if rootless:
        linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    else:
        linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    linux["namespaces"] = [{"type": t} for t in namespaces]
    linux["maskedPaths"] = list(MASKED_PATHS)
    linux["readonlyPaths"] = list(READONLY_PATHS)

    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": list(DEFAULT_ARGS if args is None else args),
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": list(caps), "permitted": list(caps)},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": HOSTNAME,
        "mounts": [
            _mount("/proc", "proc", "proc"),
            _mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
            _mount("/dev/pts", "devpts", "devpts", *devpts),
            _mount("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
            _mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
            sys_mount,
            _mount("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid", "noexec", "nodev", "relatime", "ro"),
        ],
        "linux": linux,
    }
