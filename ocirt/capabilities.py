"""Capability names of capabilities(7) and their numbers."""
from __future__ import annotations

from .errors import ConfigError

NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
NUMBERS = {"CAP_" + name: i for i, name in enumerate(NAMES)}
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def to_mask(names: list[str], pointer: str, last: int) -> int:
    """Bit mask of capability names; unknown names are an error, ones the kernel lacks are skipped."""
    mask = 0
    for i, name in enumerate(names):
        num = NUMBERS.get(name)
        if num is None:
            raise ConfigError(f"{pointer}/{i}", f"unknown capability {name!r}")
        if num <= last:
            mask |= 1 << num
    return mask


def masks(caps: dict | None, last: int) -> dict[str, int]:
    caps = caps or {}
    return {s: to_mask(caps.get(s) or [], f"/process/capabilities/{s}", last) for s in SETS}
