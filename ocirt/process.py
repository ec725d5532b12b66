"""The container process: identity, limits and the final exec. Runs in the init after pivot_root."""

from __future__ import annotations

import errno
import posix  # not os: see ocirt/paths.py

from . import capabilities, paths
from . import kernel as k
from .errors import ConfigError, OcirtError, errno_text
from .record import field, record

ID_MAX = 4294967294  # uid_t/gid_t: 4294967295 is (uid_t)-1, "unchanged" to setresuid/setresgid
NGROUPS_MAX = 65536  # the kernel's limit on supplementary groups (setgroups(2))


@record
class ProcessSpec:
    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    umask: int | None = None
    rlimits: list[dict] = field(default_factory=list)
    oom_score_adj: int | None = None
    no_new_privileges: bool = False
    capabilities: dict | None = None
    cap_allowed: int = -1  # the runtime's bounding set: capabilities outside it are left out
    preserve_fds: int = 0
    caller_umask: int = 0o022  # kept when the config gives no umask (config.md)
    apparmor_profile: str | None = None
    selinux_label: str | None = None
    # ocirt.procattr's parse of process.scheduler / ioPriority / execCPUAffinity
    scheduler: tuple | None = None  # sched_setattr(2): (policy, flags, nice, priority,
    # runtime, deadline, period)
    io_priority: int | None = None  # ioprio_set(2): class << 13 | level
    affinity_initial: list | None = None  # execCPUAffinity (exec only): CPUs before the cgroup
    affinity_final: list | None = None  # ... and after it
    pointer: str = "/process"  # where these fields are: "" in exec's process.json
    document: str = "config.json"  # ... and in which file

    @classmethod
    def from_config(
        cls, proc: dict, preserve_fds: int = 0, pointer: str = "/process", document: str = "config.json"
    ) -> ProcessSpec:
        """Raises ConfigError (at `pointer` in `document`) for a bad scheduler, ioPriority or
        execCPUAffinity."""
        user = proc.get("user") or {}
        spec = cls(
            args=list(proc.get("args") or []),
            env=list(proc.get("env") or []),
            cwd=proc.get("cwd") or "/",
            uid=user.get("uid", 0),
            gid=user.get("gid", 0),
            additional_gids=list(user.get("additionalGids") or []),
            umask=user.get("umask"),
            rlimits=list(proc.get("rlimits") or []),
            oom_score_adj=proc.get("oomScoreAdj"),
            no_new_privileges=bool(proc.get("noNewPrivileges")),
            capabilities=proc.get("capabilities"),
            preserve_fds=preserve_fds,
            caller_umask=_current_umask(),
            apparmor_profile=proc.get("apparmorProfile"),
            selinux_label=proc.get("selinuxLabel"),
            pointer=pointer,
            document=document,
        )
        if spec.capabilities:
            spec.cap_allowed = capabilities.bounding()
        if any(proc.get(key) is not None for key in ("scheduler", "ioPriority", "execCPUAffinity")):
            from . import procattr

            procattr.parse_process(spec, proc, pointer, document)
        return spec

    def check(self) -> None:
        """What the schema cannot say: env entries are KEY=VALUE, soft <= hard, known rlimits,
        ids the kernel takes as ids, at most NGROUPS_MAX additional gids, effective capabilities
        among the permitted ones."""
        at, doc = self.pointer, self.document
        for i, item in enumerate(self.env):
            if "=" not in item or item.startswith("="):
                raise ConfigError(f"{at}/env/{i}", f"{item!r} is not of the form KEY=VALUE", doc)
        for i, rl in enumerate(self.rlimits):
            check_rlimit(rl.get("type", ""), i, at, doc)
            if rl.get("soft", 0) > rl.get("hard", 0):
                raise ConfigError(f"{at}/rlimits/{i}", "soft limit is above the hard limit", doc)
        check_id(self.uid, f"{at}/user/uid", doc)
        check_id(self.gid, f"{at}/user/gid", doc)
        if len(self.additional_gids) > NGROUPS_MAX:
            raise ConfigError(
                f"{at}/user/additionalGids",
                f"{len(self.additional_gids)} groups: the kernel takes at most {NGROUPS_MAX}",
                doc,
            )
        for i, gid in enumerate(self.additional_gids):
            check_id(gid, f"{at}/user/additionalGids/{i}", doc)
        caps = self.capabilities or {}
        permitted = set(caps.get("permitted") or ())
        for i, name in enumerate(caps.get("effective") or ()):
            # capset(2) takes no effective capability outside them; a name no kernel knows is
            # left out with a warning (capabilities.unknown), as config.md asks, not refused
            if name not in permitted and name in capabilities.NUMBERS:
                raise ConfigError(f"{at}/capabilities/effective/{i}", f"{name} is not in permitted", doc)


def check_id(value, pointer: str, document: str = "config.json") -> None:
    """A uid or gid the kernel takes: 0 to 4294967294 ((uid_t)-1 means "unchanged" to
    setresuid, which would leave the process root)."""
    if type(value) is not int or not 0 <= value <= ID_MAX:
        raise ConfigError(pointer, f"{value!r} is not an id: 0 to {ID_MAX}", document)


def _current_umask() -> int:
    mask = posix.umask(0o022)
    posix.umask(mask)
    return mask


# The rlimits config.md's Linux list names (getrlimit(2)'s), which runc takes: create's parent
# checks the names with it; their numbers (which differ between architectures: alpha, mips,
# sparc) come from the resource module where they are used, in the init, not in the parent,
# whose peak memory would carry the module (~44 KiB) for a name check.
RLIMIT_NAMES = frozenset(
    "RLIMIT_" + n
    for n in (
        "AS CORE CPU DATA FSIZE LOCKS MEMLOCK MSGQUEUE NICE NOFILE NPROC RSS RTPRIO RTTIME SIGPENDING STACK"
    ).split()
)


# in getrlimit(2) and the spec's list, not in Python's resource module; the same number on every
# Linux architecture (asm-generic's; alpha, mips and sparc renumber others, not this one)
_NOT_IN_RESOURCE = {"RLIMIT_LOCKS": 10}


def check_rlimit(name, index: int, pointer: str = "/process", document: str = "config.json") -> None:
    if type(name) is not str or name not in RLIMIT_NAMES:
        raise ConfigError(f"{pointer}/rlimits/{index}/type", f"unknown rlimit {name!r}", document)


def preload(spec: ProcessSpec) -> None:
    """The modules this process's own setup needs (the resource module for the rlimits'
    numbers), loaded by a child before it enters the container's mount namespace, where they
    are out of reach: the init (stages.load_init_code) and exec's parent."""
    if spec.rlimits:
        import resource  # noqa: F401


def rlimit_number(name: str, index: int, pointer: str = "/process", document: str = "config.json") -> int:
    import resource

    check_rlimit(name, index, pointer, document)
    num = getattr(resource, name, _NOT_IN_RESOURCE.get(name))
    if num is None:  # (a kernel header without it: not Linux's)
        raise ConfigError(f"{pointer}/rlimits/{index}/type", f"unknown rlimit {name!r}", document)
    return num


def env_dict(env: list[str]) -> dict[str, str]:
    out = {}
    for item in env:
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
    return out


DEFAULT_PATH = "/bin:/usr/bin"  # confstr(_CS_PATH) of glibc


def lookup(executable: str, env: dict[str, str]) -> str:
    """PATH lookup as exec.LookPath does it; raises runc's error when nothing is found: a path
    that cannot be stat'ed is the stat's error, one that is a directory or not executable is
    "permission denied" (engines tell the two apart: podman's exit 127 and 126)."""
    if "/" in executable:
        try:
            st = posix.stat(executable)
        except OSError as e:
            raise OcirtError(f'exec: "{executable}": stat {executable}: {errno_text(e)}') from None
        if not _executable_file(st.st_mode):
            raise OcirtError(f'exec: "{executable}": permission denied')
        return executable
    # config.md: execvp(3)'s `file`; without PATH execvp searches glibc's default path
    for d in env.get("PATH", DEFAULT_PATH).split(":"):
        path = paths.join(d or ".", executable)
        try:
            st = posix.stat(path)
        except OSError:
            continue
        if _executable_file(st.st_mode):
            return path
    raise OcirtError(f'exec: "{executable}": executable file not found in $PATH')


def _executable_file(mode: int) -> bool:
    return mode & 0o170000 != 0o040000 and bool(mode & 0o111)


def set_limits(kernel: k.Kernel, spec: ProcessSpec) -> None:
    """Limits that need privileges: before the uid switch."""
    for i, rl in enumerate(spec.rlimits):
        num = rlimit_number(rl.get("type", ""), i, spec.pointer, spec.document)
        try:
            kernel.setrlimit(num, _rlim(rl["soft"]), _rlim(rl["hard"]))
        except (OSError, ValueError) as e:
            raise OcirtError(
                f"{spec.pointer}/rlimits/{i}: error setting rlimit type {num}", getattr(e, "errno", None)
            ) from None
    if spec.oom_score_adj is not None:
        try:
            kernel.write_file("/proc/self/oom_score_adj", str(spec.oom_score_adj))
        except OSError as e:
            raise OcirtError(f"{spec.pointer}/oomScoreAdj: write /proc/self/oom_score_adj", e.errno) from None


def _rlim(value: int) -> int:
    """An rlim_t (uint64, 2**64-1 is RLIM_INFINITY) as the resource module takes it: a signed
    long long, so the upper half is given as the same bits, negative."""
    return value - 2**64 if value >= 2**63 else value


def set_attributes(
    kernel: k.Kernel, spec: ProcessSpec, personality: int | None = None, mempolicy: tuple | None = None
) -> None:
    """process.scheduler, process.ioPriority, linux.memoryPolicy, linux.personality, on the
    process itself (pid 0), just before exec. Before the identity switch and the seccomp filter:
    an RT policy or a negative nice needs CAP_SYS_NICE, IOPRIO_CLASS_RT CAP_SYS_ADMIN or
    CAP_SYS_NICE, which the process may not keep; a filter may deny the calls (Docker's denies
    set_mempolicy without CAP_SYS_NICE). All four are kept across setresuid and execve."""
    if spec.scheduler is not None:
        try:
            kernel.sched_setattr(0, *spec.scheduler)
        except OSError as e:
            raise OcirtError(
                f"{spec.pointer}/scheduler: sched_setattr{_sched_hint(spec, e)}", e.errno
            ) from None
    if spec.io_priority is not None:
        # IOPRIO_WHO_PROCESS on the process itself: its children inherit it, so every process
        # the init starts has it, and no process outside the container is touched (the init's
        # process group may be the caller's: IOPRIO_WHO_PGRP would reach the caller's job).
        try:
            kernel.ioprio_set(k.IOPRIO_WHO_PROCESS, 0, spec.io_priority)
        except OSError as e:
            raise OcirtError(f"{spec.pointer}/ioPriority: ioprio_set", e.errno) from None
    if mempolicy is not None:
        try:
            kernel.set_mempolicy(*mempolicy)
        except OSError as e:
            raise OcirtError("/linux/memoryPolicy: set_mempolicy", e.errno) from None
    if personality is not None:
        try:
            kernel.personality(personality)
        except OSError as e:
            raise OcirtError("/linux/personality: personality", e.errno) from None


def _sched_hint(spec: ProcessSpec, e: OSError) -> str:
    import errno

    if e.errno != errno.EPERM or spec.scheduler is None:
        return ""
    policy = spec.scheduler[0]
    if policy in (1, 2):
        return (
            " (an RT policy needs CAP_SYS_NICE and, with RT group scheduling, realtime "
            "runtime in the container's cpu cgroup: linux.resources.cpu.realtimeRuntime)"
        )
    if policy == 6:
        return " (SCHED_DEADLINE needs CAP_SYS_NICE and an affinity spanning its root domain)"
    return ""


def switch_identity(kernel: k.Kernel, spec: ProcessSpec, last_cap: int) -> None:
    """Bounding set, uid/gid and groups, then the capability sets, in the order that keeps them.
    Without `capabilities` every set is empty, as runc makes them (not the runtime's own, which
    a process of any uid kept)."""
    caps = capabilities.masks(spec.capabilities, last_cap, spec.cap_allowed)
    for cap in range(last_cap + 1):
        if not caps["bounding"] & (1 << cap):
            kernel.prctl(k.PR_CAPBSET_DROP, cap)
    kernel.prctl(k.PR_SET_KEEPCAPS, 1)
    user = f"{spec.pointer}/user"
    try:
        kernel.setgroups(list(dict.fromkeys(spec.additional_gids)))  # each once, as runc
    except OSError as e:
        # denied in a user ns with "deny": fine when empty
        if spec.additional_gids or not isinstance(e, PermissionError):
            raise _identity_error(f"{user}/additionalGids", "setgroups", e) from None
    for call, value, name in ((kernel.setresgid, spec.gid, "gid"), (kernel.setresuid, spec.uid, "uid")):
        try:
            call(value)
        except OSError as e:
            raise _identity_error(f"{user}/{name}", f"setres{name} {value}", e) from None
    kernel.prctl(k.PR_SET_KEEPCAPS, 0)
    kernel.capset(caps["effective"], caps["permitted"], caps["inheritable"])
    kernel.prctl(k.PR_CAP_AMBIENT, k.PR_CAP_AMBIENT_CLEAR_ALL)
    # the kernel only allows ambient caps that are permitted and inheritable; runc skips others
    raisable = caps["ambient"] & caps["permitted"] & caps["inheritable"]
    for cap in range(last_cap + 1):
        if raisable & (1 << cap):
            kernel.prctl(k.PR_CAP_AMBIENT, k.PR_CAP_AMBIENT_RAISE, cap)
    if spec.no_new_privileges:
        kernel.prctl(k.PR_SET_NO_NEW_PRIVS, 1)


def _identity_error(pointer: str, call: str, e: OSError) -> OcirtError:
    # EINVAL: an id the container's user namespace does not map
    hint = " (an id not mapped in the user namespace)" if e.errno == errno.EINVAL else ""
    return OcirtError(f"{pointer}: {call}{hint}", e.errno)


def exec_environment(spec: ProcessSpec) -> dict[str, str]:
    env = env_dict(spec.env)
    if not env.get("HOME"):  # unset or empty, as runc (Go's Getenv cannot tell the two apart)
        env["HOME"] = home_of(spec.uid)
    return env


def home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"
