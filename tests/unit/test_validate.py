"""config.json validation: ocirt's schemas, the fast validator, and its agreement with jsonschema."""

from __future__ import annotations

import copy
import functools
import json
import os
import random
import re
import shutil
import subprocess
import sys

import pytest

from ocirt.errors import ConfigError
from ocirt.validate import (
    KEYWORDS,
    SCHEMA_FILES,
    WORDS,
    Schemas,
    first_error,
    jsonschema_error,
    jsonschema_validator,
    schema_dir,
    validate,
    validate_with_jsonschema,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_SPEC = os.path.join(REPO, "..", "shared", "oci-runtime-spec")
UPSTREAM_SCHEMAS = os.path.join(SHARED_SPEC, "schema")

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CAPS = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")


def runc_config() -> dict:
    """What `runc spec` writes, more or less."""
    nodev = ["nosuid", "noexec", "nodev"]
    return {
        "ociVersion": "1.2.0",
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [PATH_ENV, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": list(CAPS), "effective": list(CAPS), "permitted": list(CAPS)},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": nodev + ["mode=1777", "size=65536k"],
            },
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": nodev},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": nodev + ["ro"]},
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": nodev + ["relatime", "ro"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": [
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
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def full_config() -> dict:
    """Every field of config.md and config-linux.md (Linux), with valid values."""

    def hook():
        return {"path": "/usr/bin/hook", "args": ["hook", "arg1"], "env": ["key1=value1"], "timeout": 5}

    def mapping():
        return [{"containerID": 0, "hostID": 100000, "size": 65536}]

    return {
        "ociVersion": "1.3.0",
        "root": {"path": "/to/bundle/rootfs", "readonly": False},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/data",
                "type": "none",
                "source": "/volumes/testing",
                "options": ["rbind", "rw", "idmap"],
                "uidMappings": mapping(),
                "gidMappings": mapping(),
            },
            {"destination": "tmp", "type": "tmpfs", "source": "tmpfs"},
        ],
        "process": {
            "terminal": True,
            "consoleSize": {"height": 25, "width": 80},
            "cwd": "/root",
            "env": [PATH_ENV, "TERM=xterm"],
            "args": ["sh", "-c", "echo hi"],
            "commandLine": "sh -c 'echo hi'",
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 18446744073709551615},
            ],
            "apparmorProfile": "acme_secure_profile",
            "capabilities": {
                "effective": list(CAPS[:2]),
                "bounding": list(CAPS),
                "inheritable": list(CAPS),
                "permitted": list(CAPS),
                "ambient": ["CAP_NET_BIND_SERVICE"],
            },
            "noNewPrivileges": True,
            "oomScoreAdj": -500,
            "scheduler": {
                "policy": "SCHED_DEADLINE",
                "nice": -5,
                "priority": 0,
                "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM"],
                "runtime": 10000000,
                "deadline": 20000000,
                "period": 30000000,
            },
            "selinuxLabel": "system_u:system_r:svirt_lxc_net_t:s0:c124,c675",
            "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 4},
            "execCPUAffinity": {"initial": "7", "final": "0-3,7"},
            "user": {"uid": 1, "gid": 1, "umask": 63, "additionalGids": [5, 6]},
        },
        "hostname": "slartibartfast",
        "domainname": "foobarbaz.test",
        "hooks": {
            name: [hook(), {"path": "/usr/bin/other"}]
            for name in (
                "prestart",
                "createRuntime",
                "createContainer",
                "startContainer",
                "poststart",
                "poststop",
            )
        },
        "annotations": {"com.example.key1": "value1", "org.opencontainers.image.os": "linux", "x": ""},
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "network", "path": "/var/run/netns/neta"},
                {"type": "mount"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "user"},
                {"type": "cgroup"},
                {"type": "time"},
            ],
            "uidMappings": mapping(),
            "gidMappings": mapping(),
            "timeOffsets": {
                "monotonic": {"secs": 172800, "nanosecs": 0},
                "boottime": {"secs": -604800, "nanosecs": 999999999},
            },
            "devices": [
                {
                    "path": "/dev/fuse",
                    "type": "c",
                    "major": 10,
                    "minor": 229,
                    "fileMode": 438,
                    "uid": 0,
                    "gid": 0,
                },
                {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 432},
                {"path": "/dev/myfifo", "type": "p"},
            ],
            "netDevices": {"eth0": {"name": "container_eth0"}, "ens4": {}},
            "cgroupsPath": "/myRuntime/myContainer",
            "resources": {
                "devices": [
                    {"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                    {"allow": True, "type": "a"},
                ],
                "memory": {
                    "limit": 536870912,
                    "reservation": 536870912,
                    "swap": -1,
                    "kernel": -1,
                    "kernelTCP": -1,
                    "swappiness": 0,
                    "disableOOMKiller": False,
                    "useHierarchy": True,
                    "checkBeforeUpdate": True,
                },
                "cpu": {
                    "shares": 1024,
                    "quota": 1000000,
                    "burst": 1000000,
                    "period": 500000,
                    "realtimeRuntime": 950000,
                    "realtimePeriod": 1000000,
                    "cpus": "2-3",
                    "mems": "0-7",
                    "idle": 0,
                },
                "blockIO": {
                    "weight": 10,
                    "leafWeight": 10,
                    "weightDevice": [
                        {"major": 8, "minor": 0, "weight": 500, "leafWeight": 300},
                        {"major": 8, "minor": 16, "leafWeight": 500},
                    ],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                    "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                    "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}],
                },
                "hugepageLimits": [
                    {"pageSize": "2MB", "limit": 209715200},
                    {"pageSize": "64KB", "limit": 1000000},
                ],
                "network": {
                    "classID": 1048577,
                    "priorities": [{"name": "eth0", "priority": 500}, {"name": "eth1", "priority": 1000}],
                },
                "pids": {"limit": 32771},
                "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 1000}},
                "unified": {
                    "io.max": "259:0 rbps=2097152 wiops=120\n253:0 rbps=2097152 wiops=120",
                    "hugetlb.1GB.max": "1073741824",
                },
            },
            "intelRdt": {
                "closID": "guaranteed_group",
                "l3CacheSchema": "L3:0=7f0;1=1f",
                "memBwSchema": "MB:0=20;1=70",
                "schemata": ["L3:0=7f0;1=1f", "L2:0=f;1=f;2=f;3=f", "MB:0=20;1=70"],
                "enableMonitoring": True,
            },
            "memoryPolicy": {"mode": "MPOL_INTERLEAVE", "nodes": "2-3", "flags": ["MPOL_F_STATIC_NODES"]},
            "sysctl": {"net.ipv4.ip_forward": "1", "net.core.somaxconn": "256"},
            "seccomp": {
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "listenerPath": "/run/seccomp-agent.sock",
                "listenerMetadata": "MKNOD=/dev/null",
                "syscalls": [
                    {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
                    {
                        "names": ["personality"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [
                            {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                            {"index": 0, "value": 8, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"},
                        ],
                    },
                    {"names": ["mknod"], "action": "SCMP_ACT_NOTIFY"},
                    {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                ],
            },
            "rootfsPropagation": "slave",
            "maskedPaths": ["/proc/kcore", "/proc/latency_stats"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
            "mountLabel": "system_u:object_r:svirt_sandbox_file_t:s0:c715,c811",
            "personality": {"domain": "LINUX32", "flags": []},
        },
    }


def edit(config: dict, pointer: str, value=..., delete: bool = False) -> dict:
    """A copy of `config` with the member at `pointer` set to `value`, or deleted."""
    config = copy.deepcopy(config)
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    node = config
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    key = int(last) if isinstance(node, list) else last
    if delete:
        del node[key]
    elif isinstance(node, list) and key == len(node):
        node.append(value)
    else:
        node[key] = value
    return config


def without(config: dict, pointer: str) -> dict:
    return edit(config, pointer, delete=True)


MINIMAL = {"ociVersion": "1.0.0", "root": {"path": "rootfs"}}

# (name, config, also valid for the upstream schema?)
VALID = [
    ("runc spec", runc_config(), True),
    ("every field", full_config(), True),
    ("minimal, no process", MINIMAL, True),
    ("prerelease and build version", {**MINIMAL, "ociVersion": "1.3.0-rc.1+dev.2"}, True),
    (
        "unknown fields everywhere",
        edit(
            edit(edit(full_config(), "/x-vendor", {"a": [1]}), "/process/futureField", 7),
            "/linux/resources/cpu/newKnob",
            "max",
        ),
        True,
    ),
    (
        "other platforms as objects",
        {**MINIMAL, "solaris": {}, "vm": {"hypervisor": {}}, "freebsd": {}, "zos": {}},
        True,
    ),
    ("fifo device without numbers", edit(MINIMAL, "/linux/devices", [{"path": "/dev/f", "type": "p"}]), True),
    (
        "empty arrays and maps",
        {
            **MINIMAL,
            "mounts": [],
            "hooks": {},
            "annotations": {},
            "linux": {"namespaces": [], "devices": [], "sysctl": {}, "resources": {}},
        },
        True,
    ),
    (
        "int64 extremes",
        edit(
            edit(MINIMAL, "/linux/resources/memory/limit", 9223372036854775807),
            "/linux/resources/cpu/quota",
            -9223372036854775808,
        ),
        True,
    ),
    ("uint32 maximum", edit(runc_config(), "/process/user/uid", 4294967295), True),
    (
        "empty cpu affinity",
        edit(runc_config(), "/process/execCPUAffinity", {"initial": "", "final": ""}),
        True,
    ),
    ("relative mount destination", edit(MINIMAL, "/mounts", [{"destination": "data"}]), True),
    ("seccomp allow-all", edit(MINIMAL, "/linux/seccomp", {"defaultAction": "SCMP_ACT_ALLOW"}), True),
    ("pids without limit (optional since 1.3.0)", edit(MINIMAL, "/linux/resources/pids", {}), False),
    ("rslave propagation (Docker)", edit(runc_config(), "/linux/rootfsPropagation", "rslave"), False),
    (
        "device mode with setuid bits",
        edit(
            MINIMAL,
            "/linux/devices",
            [{"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "fileMode": 0o4755}],
        ),
        False,
    ),
]

F = full_config()
R = runc_config()

# (config, expected pointer, expected keyword or None for ocirt's own checks)
INVALID = [
    ([], "/", "type"),
    (without(R, "/ociVersion"), "/ociVersion", "required"),
    (edit(R, "/ociVersion", 1), "/ociVersion", "type"),
    (edit(R, "/ociVersion", "1.0"), "/ociVersion", "pattern"),
    (edit(R, "/ociVersion", "2.0.0"), "/ociVersion", None),
    (edit(R, "/ociVersion", "0.9.0"), "/ociVersion", None),
    (without(R, "/root"), "/root", "required"),
    (without(R, "/root/path"), "/root/path", "required"),
    (edit(R, "/root/readonly", "yes"), "/root/readonly", "type"),
    (edit(R, "/mounts", {}), "/mounts", "type"),
    (without(R, "/mounts/1/destination"), "/mounts/1/destination", "required"),
    (edit(R, "/mounts/0/options", "ro"), "/mounts/0/options", "type"),
    (without(F, "/mounts/1/gidMappings"), "/mounts/1/gidMappings", "dependentRequired"),
    (edit(F, "/mounts/1/uidMappings/0/size", -1), "/mounts/1/uidMappings/0/size", "minimum"),
    (without(R, "/process/args"), "/process/args", "required"),
    (edit(R, "/process/args", []), "/process/args", "minItems"),
    (edit(R, "/process/args", ["sh", 1]), "/process/args/1", "type"),
    (without(R, "/process/cwd"), "/process/cwd", "required"),
    (edit(R, "/process/cwd", "root"), "/process/cwd", "pattern"),
    (edit(R, "/process/env", PATH_ENV), "/process/env", "type"),
    (edit(R, "/process/terminal", 1), "/process/terminal", "type"),
    (without(F, "/process/consoleSize/width"), "/process/consoleSize/width", "required"),
    (edit(R, "/process/user/uid", -1), "/process/user/uid", "minimum"),
    (edit(R, "/process/user/uid", 4294967296), "/process/user/uid", "maximum"),
    (edit(R, "/process/user/uid", 0.0), "/process/user/uid", "type"),
    (edit(R, "/process/user/uid", True), "/process/user/uid", "type"),
    (edit(R, "/process/user/uid", "0"), "/process/user/uid", "type"),
    (without(R, "/process/user/gid"), "/process/user/gid", "required"),
    (edit(F, "/process/user/additionalGids/1", -6), "/process/user/additionalGids/1", "minimum"),
    (edit(R, "/process/capabilities/bounding/1", 7), "/process/capabilities/bounding/1", "type"),
    (edit(R, "/process/capabilities/ambient", "CAP_KILL"), "/process/capabilities/ambient", "type"),
    (edit(R, "/process/rlimits/0/type", "NOFILE"), "/process/rlimits/0/type", "pattern"),
    (without(R, "/process/rlimits/0/soft"), "/process/rlimits/0/soft", "required"),
    (edit(R, "/process/rlimits/0/hard", 18446744073709551616), "/process/rlimits/0/hard", "maximum"),
    (edit(F, "/process/rlimits/1/type", "RLIMIT_NOFILE"), "/process/rlimits/1", None),
    (edit(F, "/process/oomScoreAdj", "1"), "/process/oomScoreAdj", "type"),
    (edit(F, "/process/scheduler/policy", "SCHED_X"), "/process/scheduler/policy", "enum"),
    (without(F, "/process/scheduler/policy"), "/process/scheduler/policy", "required"),
    (edit(F, "/process/scheduler/flags/0", "RESET_ON_FORK"), "/process/scheduler/flags/0", "enum"),
    (edit(F, "/process/scheduler/nice", 2147483648), "/process/scheduler/nice", "maximum"),
    (edit(F, "/process/ioPriority/priority", 8), "/process/ioPriority/priority", "maximum"),
    (without(F, "/process/ioPriority/class"), "/process/ioPriority/class", "required"),
    (edit(F, "/process/execCPUAffinity/initial", "all"), "/process/execCPUAffinity/initial", "pattern"),
    (edit(R, "/hostname", 5), "/hostname", "type"),
    (edit(F, "/domainname", None), "/domainname", "type"),
    (edit(F, "/hooks/prestart/0/path", "usr/bin/hook"), "/hooks/prestart/0/path", "pattern"),
    (without(F, "/hooks/createRuntime/1/path"), "/hooks/createRuntime/1/path", "required"),
    (edit(F, "/hooks/poststart/0/timeout", 0), "/hooks/poststart/0/timeout", "minimum"),
    (edit(F, "/hooks/poststop", {"path": "/bin/true"}), "/hooks/poststop", "type"),
    (edit(F, "/annotations/com.example.key1", 1), "/annotations/com.example.key1", "type"),
    (edit(F, "/annotations/", "empty key"), "/annotations", "minLength"),
    (edit(R, "/linux", "linux"), "/linux", "type"),
    (edit(R, "/linux/namespaces/2/type", "pidx"), "/linux/namespaces/2/type", "enum"),
    (without(R, "/linux/namespaces/1/type"), "/linux/namespaces/1/type", "required"),
    (edit(R, "/linux/namespaces/6", {"type": "uts"}), "/linux/namespaces/6", None),
    (edit(F, "/linux/namespaces/1/path", "var/run/netns/neta"), "/linux/namespaces/1/path", "pattern"),
    (without(F, "/linux/uidMappings/0/hostID"), "/linux/uidMappings/0/hostID", "required"),
    (
        edit(F, "/linux/timeOffsets/monotonic/nanosecs", -1),
        "/linux/timeOffsets/monotonic/nanosecs",
        "minimum",
    ),
    (edit(F, "/linux/timeOffsets/boottime", 5), "/linux/timeOffsets/boottime", "type"),
    (without(F, "/linux/devices/0/major"), "/linux/devices/0/major", "required"),
    (without(F, "/linux/devices/1/path"), "/linux/devices/1/path", "required"),
    (edit(F, "/linux/devices/0/type", "x"), "/linux/devices/0/type", "enum"),
    (edit(F, "/linux/devices/0/fileMode", -1), "/linux/devices/0/fileMode", "minimum"),
    (edit(F, "/linux/netDevices/eth0/name", 1), "/linux/netDevices/eth0/name", "type"),
    (edit(F, "/linux/cgroupsPath", ["/a"]), "/linux/cgroupsPath", "type"),
    (without(R, "/linux/resources/devices/0/allow"), "/linux/resources/devices/0/allow", "required"),
    (edit(R, "/linux/resources/devices/0/access", "rwx"), "/linux/resources/devices/0/access", "pattern"),
    (edit(F, "/linux/resources/devices/1/type", "u"), "/linux/resources/devices/1/type", "enum"),
    (edit(F, "/linux/resources/memory/swappiness", 101), "/linux/resources/memory/swappiness", "maximum"),
    (edit(F, "/linux/resources/memory/limit", 2**63), "/linux/resources/memory/limit", "maximum"),
    (edit(F, "/linux/resources/cpu/quota", "100"), "/linux/resources/cpu/quota", "type"),
    (edit(F, "/linux/resources/cpu/shares", -2), "/linux/resources/cpu/shares", "minimum"),
    (edit(F, "/linux/resources/cpu/cpus", "a-b"), "/linux/resources/cpu/cpus", "pattern"),
    (edit(F, "/linux/resources/blockIO/weight", 70000), "/linux/resources/blockIO/weight", "maximum"),
    (
        edit(F, "/linux/resources/blockIO/weightDevice/1", {"major": 8, "minor": 1}),
        "/linux/resources/blockIO/weightDevice/1",
        "anyOf",
    ),
    (
        without(F, "/linux/resources/blockIO/throttleReadBpsDevice/0/rate"),
        "/linux/resources/blockIO/throttleReadBpsDevice/0/rate",
        "required",
    ),
    (
        without(F, "/linux/resources/blockIO/throttleWriteIOPSDevice/0/minor"),
        "/linux/resources/blockIO/throttleWriteIOPSDevice/0/minor",
        "required",
    ),
    (
        edit(F, "/linux/resources/hugepageLimits/0/pageSize", "2M"),
        "/linux/resources/hugepageLimits/0/pageSize",
        "pattern",
    ),
    (
        edit(F, "/linux/resources/network/priorities/1/priority", -1),
        "/linux/resources/network/priorities/1/priority",
        "minimum",
    ),
    (edit(F, "/linux/resources/rdma/mlx4_0", {}), "/linux/resources/rdma/mlx4_0", "anyOf"),
    (edit(F, "/linux/resources/pids/limit", "max"), "/linux/resources/pids/limit", "type"),
    (edit(F, "/linux/resources/unified/io.max", 5), "/linux/resources/unified/io.max", "type"),
    (edit(F, "/linux/intelRdt/memBwSchema", "L3:0=f"), "/linux/intelRdt/memBwSchema", "pattern"),
    (edit(F, "/linux/intelRdt/memBwSchema", "MB:0=20\nMB:1=70"), "/linux/intelRdt/memBwSchema", "not"),
    (edit(F, "/linux/intelRdt/schemata/2", "MB:0=20\n"), "/linux/intelRdt/schemata/2", "not"),
    (edit(F, "/linux/intelRdt/enableMonitoring", "true"), "/linux/intelRdt/enableMonitoring", "type"),
    (without(F, "/linux/memoryPolicy/mode"), "/linux/memoryPolicy/mode", "required"),
    (edit(F, "/linux/memoryPolicy/flags/0", "MPOL_F_X"), "/linux/memoryPolicy/flags/0", "enum"),
    (edit(F, "/linux/sysctl/net.core.somaxconn", 256), "/linux/sysctl/net.core.somaxconn", "type"),
    (without(F, "/linux/seccomp/defaultAction"), "/linux/seccomp/defaultAction", "required"),
    (edit(F, "/linux/seccomp/defaultAction", "SCMP_ACT_BOGUS"), "/linux/seccomp/defaultAction", "enum"),
    (edit(F, "/linux/seccomp/architectures/1", "x86"), "/linux/seccomp/architectures/1", "enum"),
    (edit(F, "/linux/seccomp/flags/0", "SECCOMP_FILTER_FLAG_X"), "/linux/seccomp/flags/0", "enum"),
    (without(F, "/linux/seccomp/listenerPath"), "/linux/seccomp/listenerPath", "dependentRequired"),
    (edit(F, "/linux/seccomp/syscalls/0/names", []), "/linux/seccomp/syscalls/0/names", "minItems"),
    (without(F, "/linux/seccomp/syscalls/2/action"), "/linux/seccomp/syscalls/2/action", "required"),
    (edit(F, "/linux/seccomp/syscalls/3/errnoRet", -1), "/linux/seccomp/syscalls/3/errnoRet", "minimum"),
    (edit(F, "/linux/seccomp/syscalls/1/args/1/op", "EQ"), "/linux/seccomp/syscalls/1/args/1/op", "enum"),
    (
        without(F, "/linux/seccomp/syscalls/1/args/0/value"),
        "/linux/seccomp/syscalls/1/args/0/value",
        "required",
    ),
    (edit(F, "/linux/rootfsPropagation", "bogus"), "/linux/rootfsPropagation", "enum"),
    (edit(R, "/linux/maskedPaths/2", "proc/kcore"), "/linux/maskedPaths/2", "pattern"),
    (edit(R, "/linux/readonlyPaths", "/proc/sys"), "/linux/readonlyPaths", "type"),
    (edit(F, "/linux/personality/domain", "LINUX64"), "/linux/personality/domain", "enum"),
    (edit(F, "/windows", "x"), "/windows", "type"),
]


def _id(case) -> str:
    return case[1] if isinstance(case[1], str) else case[0]


def outcome(check, config):
    try:
        check(config)
    except ConfigError as error:
        return error
    return None


@functools.cache
def reference():
    return jsonschema_validator()


def assert_agree(config) -> ConfigError | None:
    """validate() and validate_with_jsonschema() accept or reject alike, and point at the same place."""
    fast, ref = outcome(validate, config), outcome(validate_with_jsonschema, config)
    assert (fast is None) == (ref is None), f"fast: {fast}, jsonschema: {ref}"
    if fast is None:
        return None
    for error in (fast, ref):
        assert "\n" not in str(error) and len(str(error)) < 250, str(error)
    errors = list(reference().iter_errors(config)) if isinstance(config, dict) or config == [] else []
    found = first_error(config, Schemas())
    if len(errors) == 1 and found is not None:
        pointer, keyword, rule = jsonschema_error(errors[0])
        assert (fast.pointer, found[1]) == (pointer, keyword)
        if keyword in WORDS:  # (`ocirt check` says what create says)
            assert rule == fast.rule, (rule, fast.rule)
    elif len(errors) > 1:
        assert fast.pointer in {jsonschema_error(error)[0] for error in errors}
    else:
        assert fast.pointer == ref.pointer and fast.rule == ref.rule  # ocirt's own checks: same code
    return fast


# Valid and invalid configs.


@pytest.mark.parametrize("name,config,_upstream", VALID, ids=[case[0] for case in VALID])
def test_valid(name, config, _upstream):
    validate(config)
    validate_with_jsonschema(config)


@pytest.mark.parametrize("config,pointer,keyword", INVALID, ids=[case[1] for case in INVALID])
def test_invalid(config, pointer, keyword):
    with pytest.raises(ConfigError) as caught:
        validate(config)
    assert caught.value.pointer == pointer, str(caught.value)
    found = first_error(config, Schemas())
    assert (found[1] if found else None) == keyword
    assert str(caught.value).startswith(f"config.json: {pointer}: ")


@pytest.mark.parametrize("config,pointer,_keyword", INVALID, ids=[case[1] for case in INVALID])
def test_invalid_agrees_with_jsonschema(config, pointer, _keyword):
    assert assert_agree(config).pointer == pointer


def test_messages_name_the_problem():
    def rule(config):
        with pytest.raises(ConfigError) as caught:
            validate(config)
        return caught.value.rule

    assert rule(without(R, "/process/args")) == "'args' is required"
    assert rule(edit(R, "/process/user/uid", -1)) == "-1 is less than the minimum 0"
    assert rule(edit(R, "/linux/namespaces/2/type", "pidx")).startswith(
        '"pidx" is not one of ["pid", "network"'
    )
    assert rule(edit(R, "/process/cwd", "root")) == '"root" is not an absolute path'
    assert rule(edit(R, "/hostname", 5)) == "5 is not a string"
    assert rule(edit(R, "/ociVersion", "2.0.0")).startswith("unsupported major version 2")
    assert (
        rule(edit(R, "/linux/namespaces/6", {"type": "pid"}))
        == 'duplicate namespace type "pid" (first at /linux/namespaces/0)'
    )
    long_enum = rule(edit(F, "/linux/seccomp/architectures/0", "x" * 500))
    assert len(long_enum) < 150 and "(23 values)" in long_enum


# Random mutations: the fast validator and jsonschema must agree.

ODD_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**32,
    2**63,
    2**64,
    -(2**63) - 1,
    "",
    "bogus",
    "relative/path",
    "CAP_lower",
    "RLIMIT_X",
    "2.0.0",
    "MB:\n",
    [],
    [1],
    ["x"],
    {},
    {"k": 1},
]


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, path + (index,))


def _get(value, path):
    for part in path:
        value = value[part]
    return value


def mutate(config: dict, rng: random.Random) -> dict:
    config = copy.deepcopy(config)
    path = rng.choice([p for p in _paths(config) if p])
    parent, key, old = _get(config, path[:-1]), path[-1], _get(config, path)
    action = rng.choice(["retype", "delete", "range", "string", "unknown", "duplicate"])
    if action == "delete":
        del parent[key]
    elif action == "range" and type(old) is int:
        parent[key] = rng.choice([-1, old - 2**32, old + 2**32, 2**64, -(2**63) - 1, 8, 101, 70000])
    elif action == "string" and isinstance(old, str):
        parent[key] = rng.choice(
            ["", "bogus", old.lower(), old + "\n", "/" + old, old.lstrip("/"), "2" + old]
        )
    elif action == "unknown" and isinstance(old, dict):
        old["unknownField"] = rng.choice(ODD_VALUES)
    elif action == "duplicate" and isinstance(old, list) and old:
        old.append(copy.deepcopy(rng.choice(old)))
    else:
        parent[key] = rng.choice(ODD_VALUES)
    return config


def test_random_mutations_agree():
    rng = random.Random(20240611)
    rejected = 0
    for round_ in range(600):
        config = rng.choice([F, R])
        for _ in range(1 if round_ % 4 else rng.randint(2, 4)):
            config = mutate(config, rng)
        rejected += assert_agree(config) is not None
    assert rejected > 300  # the mutations mostly break things, so the comparison means something


@pytest.mark.parametrize("name,config,_upstream", VALID, ids=[case[0] for case in VALID])
def test_valid_agrees_with_jsonschema(name, config, _upstream):
    assert assert_agree(config) is None


# The schemas themselves.


def _schema_docs():
    directory = schema_dir()
    return {name: json.load(open(os.path.join(directory, name), encoding="utf-8")) for name in SCHEMA_FILES}


def _subschemas(node):
    yield node
    for key in ("properties", "$defs"):
        for sub in node.get(key, {}).values():
            yield from _subschemas(sub)
    for key in ("items", "additionalProperties", "propertyNames", "not", "if", "then", "else"):
        if isinstance(node.get(key), dict):
            yield from _subschemas(node[key])
    for key in ("allOf", "anyOf"):
        for sub in node.get(key, ()):
            yield from _subschemas(sub)


def test_schema_dir_is_the_source_tree_spec():
    assert os.path.samefile(schema_dir(), os.path.join(REPO, "spec"))


def test_schemas_are_valid_and_use_only_known_keywords():
    from jsonschema import Draft202012Validator

    schemas = Schemas()
    for name, doc in _schema_docs().items():
        Draft202012Validator.check_schema(doc)
        assert doc["$id"] == "https://ocirt.dev/schema/" + name
        nodes = list(_subschemas(doc))
        tests = {id(node[key]) for node in nodes for key in ("not", "if") if key in node}  # never reported
        for node in nodes:
            assert set(node) <= KEYWORDS, (name, set(node) - KEYWORDS)
            assert node.get("additionalProperties") is not False, "unknown properties must be ignored"
            if "$ref" in node:
                schemas.resolve(node["$ref"], name)  # raises if it leads nowhere
            if ("pattern" in node or "not" in node) and id(node) not in tests:  # the error message says it
                assert "description" in node, (name, node)
            if "anyOf" in node:  # validate() words anyOf as "needs at least one of"
                assert all(list(sub) == ["required"] for sub in node["anyOf"]), name


def test_every_spec_field_is_in_the_schemas():
    docs = [os.path.join(SHARED_SPEC, name) for name in ("config.md", "config-linux.md")]
    if not all(os.path.exists(doc) for doc in docs):
        pytest.skip("OCI runtime spec text not available")
    text = "".join(open(doc, encoding="utf-8").read() for doc in docs)
    # the names of the Container Process State (sent to seccomp agents), not config.json fields
    not_config = {"fds", "pid", "metadata", "state", "seccompFd"}
    windows_only = {"username"}
    spec_fields = set(re.findall(r"\*\*`(\w+)`\*\*", text)) - not_config - windows_only
    nodes = [node for doc in _schema_docs().values() for node in _subschemas(doc)]
    schema_fields = {key for node in nodes for key in node.get("properties", {})}
    enum_values = {value for node in nodes for value in node.get("enum", ())}  # namespace types, ...
    assert spec_fields - schema_fields - enum_values == set()


def test_spec_examples_match_state_and_features_schemas():
    state = {
        "ociVersion": "0.2.0",
        "id": "oci-container1",
        "status": "running",
        "pid": 4422,
        "bundle": "/containers/redis",
        "annotations": {"myKey": "myValue"},
    }
    schemas = Schemas()
    assert first_error(state, schemas, "state-schema.json") is None
    assert first_error({**state, "status": "paused"}, schemas, "state-schema.json") is None
    assert first_error({k: v for k, v in state.items() if k != "pid"}, schemas, "state-schema.json")[0] == [
        "pid"
    ]
    assert jsonschema_validator(name="state-schema.json").is_valid(state)

    features_md = os.path.join(SHARED_SPEC, "features.md")
    if not os.path.exists(features_md):
        pytest.skip("OCI runtime spec text not available")
    example = open(features_md, encoding="utf-8").read().split("\n# Example\n", 1)[1]
    features = json.loads(example.split("```json", 1)[1].split("```", 1)[0])
    assert first_error(features, schemas, "features-schema.json") is None
    assert jsonschema_validator(name="features-schema.json").is_valid(features)
    features["linux"]["seccomp"] = None
    assert first_error(features, schemas, "features-schema.json") is None
    assert first_error(without(features, "/ociVersionMax"), schemas, "features-schema.json")[0] == [
        "ociVersionMax"
    ]


def test_spec_full_config_example_is_valid():
    config_md = os.path.join(SHARED_SPEC, "config.md")
    if not os.path.exists(config_md):
        pytest.skip("OCI runtime spec text not available")
    section = open(config_md, encoding="utf-8").read().split("## Configuration Schema Example", 1)[1]
    config = json.loads(section.split("```json", 1)[1].split("```", 1)[0])
    validate(config)
    assert assert_agree(config) is None


# Cross-check with the upstream schemas: ours must not be stricter on valid configs.


@functools.cache
def upstream_validator():
    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    resources = []
    for name in os.listdir(UPSTREAM_SCHEMAS):
        with open(os.path.join(UPSTREAM_SCHEMAS, name), encoding="utf-8") as f:
            resources.append((name, Resource.from_contents(json.load(f), default_specification=DRAFT4)))
    for platform in ("solaris", "windows", "vm", "zos", "freebsd"):  # not in the shared copy: any object
        stub = {platform: {"type": "object"}}
        resources.append(
            (f"config-{platform}.json", Resource.from_contents(stub, default_specification=DRAFT4))
        )
    registry = Registry().with_resources(resources)
    return Draft4Validator(registry.contents("config-schema.json"), registry=registry)


UPSTREAM_VALID = [case for case in VALID if case[2]]


@pytest.mark.skipif(not os.path.isdir(UPSTREAM_SCHEMAS), reason="upstream schemas not available")
@pytest.mark.parametrize("name,config,_upstream", UPSTREAM_VALID, ids=[case[0] for case in UPSTREAM_VALID])
def test_upstream_schema_accepts_our_valid_configs(name, config, _upstream):
    assert [e.message for e in upstream_validator().iter_errors(config)] == []


# How the package finds its schemas, and what validate() imports.


def test_installed_layout_uses_package_schemas(tmp_path):
    """In a wheel the schemas sit in ocirt/_schemas (see the pyproject package-data)."""
    package = tmp_path / "ocirt"
    shutil.copytree(os.path.join(REPO, "spec"), package / "_schemas")
    for module in ("__init__.py", "errors.py", "gonum.py", "jsonio.py", "paths.py", "validate.py"):
        shutil.copy(os.path.join(REPO, "ocirt", module), package / module)
    script = f"import ocirt.validate as v; print(v.schema_dir());v.validate({runc_config()!r})"
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        check=True,
    ).stdout
    assert out.strip() == str(package / "_schemas")


def test_validate_does_not_import_jsonschema():
    script = (
        "import json, sys; from ocirt.validate import validate;"
        f"validate(json.loads({json.dumps(json.dumps(full_config()))}));"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jsonschema', 'referencing')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO},
        check=True,
    ).stdout
    assert out.strip() == "[]"


def test_pattern_predicates_agree_with_re():
    """validate's patterns without `re` (3 ms of imports on every create) say what re.search
    says, on strings built from each pattern's own alphabet and its near misses."""
    import random
    import re

    from ocirt.validate import _PATTERNS, pattern_matches

    rng = random.Random(1234)
    alphabet = "0123456789AZaz_-.+:/ ,\nrwmKMGTPEBCAPRLIMITéx\t"
    samples = [
        "",
        "\n",
        "1.0.0",
        "1.0.0\n",
        "01.0.0",
        "1.2.3-rc.1+build.5",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-a..b",
        "CAP_SYS_ADMIN",
        "CAP_",
        "CAP_X\n",
        "CAP_X\n\n",
        "RLIMIT_NOFILE",
        "RLIMIT_nofile",
        "2MB",
        "1GB\n",
        "0MB",
        "10B",
        "MB:0=1",
        "/x",
        "x/",
        "rw",
        "rwx",
        "0-3,5",
        "1:2 3/4",
        "a\nb",
        "\n\n",
        "1.0.0\n\n",
        "1.0.0-é",
    ]
    for _ in range(20000):
        n = rng.randint(0, 12)
        samples.append("".join(rng.choice(alphabet) for _ in range(n)))
        base = rng.choice(samples[:30])
        i = rng.randint(0, len(base))
        samples.append(base[:i] + rng.choice(alphabet) + base[i:])
    for pattern in _PATTERNS:
        for s in samples:
            assert pattern_matches(pattern, s) == (re.search(pattern, s) is not None), (pattern, s)


def test_version_major_without_re():
    import re

    from ocirt.validate import _leading_major

    for v in ["1.0.0", "2.0", "12.1", "1", ".1", "a.1", "１.0", "1x.0", "", "007.1"]:
        m = re.match(r"(\d+)\.", v)
        assert _leading_major(v) == (m.group(1) if m else None), v


def test_hot_path_imports_stay_light():
    """create/run/state import none of the costly modules (each ~2-100 ms here): validation of a
    full config included."""
    script = (
        "import sys; from ocirt import jsonio; from ocirt.validate import validate;"
        "import ocirt.cli, ocirt.create, ocirt.execute, ocirt.container, ocirt.cgroups, ocirt.kernel.linux;"
        "import ocirt.commands.create, ocirt.commands.run, ocirt.commands.state;"
        f"validate(jsonio.loads({json.dumps(json.dumps(full_config()))}));"
        "print(sorted(m for m in ('re', 'enum', 'json', 'dataclasses', 'typing', 'click',"
        " 'jsonschema', 'pyroute2', 'subprocess') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO},
        check=True,
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "where,value,pointer",
    [
        (("process", "env"), ["PATH=/bin\0"], "/process/env/0"),
        (("process", "args"), ["sh", "a\0"], "/process/args/1"),
        (("hostname",), "h\0", "/hostname"),
        (("root", "path"), "rootfs\0", "/root/path"),
        (("linux", "cgroupsPath"), "/a\0b", "/linux/cgroupsPath"),
        (("hooks",), {"prestart": [{"path": "/bin/true", "env": ["A=\0"]}]}, "/hooks/prestart/0/env/0"),
        (("hooks",), {"prestart": [{"path": "/bin/\0true"}]}, "/hooks/prestart/0/path"),
        (("process", "cwd"), "/\ud800", "/process/cwd"),
        (("annotations",), {"a": "\ud800"}, "/annotations/a"),
    ],
)
def test_nul_bytes_and_lone_surrogates_are_refused_by_pointer(where, value, pointer):
    """Strings the kernel takes as C strings cannot hold a NUL byte; no string may hold a lone
    surrogate (it is not UTF-8). Both validators agree."""
    config = full_config()
    node = config
    for key in where[:-1]:
        node = node.setdefault(key, {})
    node[where[-1]] = value
    for check in (validate, validate_with_jsonschema):
        with pytest.raises(ConfigError) as caught:
            check(config)
        assert caught.value.pointer == pointer, str(caught.value)
        assert "NUL" in caught.value.rule or "surrogate" in caught.value.rule


def test_nul_bytes_in_annotations_are_only_json():
    config = full_config()
    config["annotations"] = {"a\0": "b\0"}
    validate(config)
    validate_with_jsonschema(config)


@pytest.mark.parametrize(
    "proc,pointer",
    [
        ([], "/"),
        ({"args": ["sh"]}, "/cwd"),
        ({"args": "sh", "cwd": "/"}, "/args"),
        ({"args": ["sh\0"], "cwd": "/"}, "/args/0"),
        ({"args": ["sh"], "cwd": "/", "env": [1]}, "/env/0"),
    ],
)
def test_exec_process_json_is_validated_with_pointers_into_it(proc, pointer):
    from ocirt.validate import validate_process

    with pytest.raises(ConfigError) as caught:
        validate_process(proc)
    assert caught.value.pointer == pointer, str(caught.value)
    assert str(caught.value).startswith(f"process.json: {pointer}: ")


def test_exec_process_json_valid():
    from ocirt.validate import validate_process

    validate_process({"args": ["sh"], "cwd": "/", "env": ["A=b"], "user": {"uid": 0, "gid": 0}})
