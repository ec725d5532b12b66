"""Capability names of capabilities(7) and their numbers."""

from __future__ import annotations

from .gonum import decimal

NAMES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)
NUMBERS = {"CAP_" + name: i for i, name in enumerate(NAMES)}
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return decimal(f.read())
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


def bounding(status: str = "/proc/self/status") -> int:
    """The runtime's own bounding set: what any process it starts can hold at most (-1: all,
    where it cannot be read)."""
    try:
        with open(status) as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return -1


def unknown(caps: dict | None, allowed: int | None = None, last: int | None = None) -> list[str]:
    """A warning per capability name that cannot be mapped to the kernel, and per capability
    outside `allowed` (the runtime's bounding set), which the container cannot get: config.md
    says a runtime SHOULD NOT fail for either; both are left out of the sets. `allowed` and
    `last` (cap_last_cap) are read here when the caller has not read them already."""
    if not caps:
        return []
    if allowed is None:
        allowed = bounding()
    out = []
    if last is None:
        last = last_cap()
    withheld: dict[str, list[str]] = {}
    for s in SETS:
        for i, name in enumerate((caps or {}).get(s) or []):
            if name not in NUMBERS:
                out.append(f"/process/capabilities/{s}/{i}: unknown capability {name!r} ignored")
            elif NUMBERS[name] > last:
                out.append(
                    f"/process/capabilities/{s}/{i}: {name} is not supported by this kernel and is ignored"
                )
            elif not allowed & (1 << NUMBERS[name]):
                withheld.setdefault(name, []).append(s)
    for name, sets in withheld.items():
        out.append(
            f"/process/capabilities: {name} is not in the runtime's bounding set, so it "
            f"cannot be granted: left out of {', '.join(sets)}"
        )
    return out


def masks(caps: dict | None, last: int, allowed: int = -1) -> dict[str, int]:
    caps = caps or {}
    return {s: to_mask(caps.get(s) or [], last) & allowed for s in SETS}
