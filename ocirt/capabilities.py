"""Capability names of capabilities(7) and their numbers."""
from __future__ import annotations

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


def to_mask(names: list[str], last: int) -> int:
    """Bit mask of capability names. Names that map to nothing, and capabilities this kernel
    lacks, are left out: config.md wants a warning for them (see `unknown`), not a failure."""
    mask = 0
    for name in names:
        num = NUMBERS.get(name)
        if num is not None and num <= last:
            mask |= 1 << num
    return mask


def unknown(caps: dict | None) -> list[str]:
    """A warning per capability name that cannot be mapped to the kernel (config.md)."""
    out = []
    last = last_cap()  # once, not once per name (a procfs read each)
    for s in SETS:
        for i, name in enumerate((caps or {}).get(s) or []):
            if name not in NUMBERS:
                out.append(f"/process/capabilities/{s}/{i}: unknown capability {name!r} ignored")
            elif NUMBERS[name] > last:
                out.append(f"/process/capabilities/{s}/{i}: {name} is not supported by this "
                           "kernel and is ignored")
    return out


def masks(caps: dict | None, last: int) -> dict[str, int]:
    caps = caps or {}
    return {s: to_mask(caps.get(s) or [], last) for s in SETS}
