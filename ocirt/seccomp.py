"""linux.seccomp: compiled by the runtime parent, loaded by the container's init.

    flt = seccomp.compile(config["linux"]["seccomp"])   # parent, before fork: every check is here
    ... fork ...
    fd = flt.install()                                  # init: where exactly, see Filter.install
    ... the init hands fd to the parent (SCM_RIGHTS) and closes its copy ...
    flt.send_to_listener(fd, state)                     # parent, only when flt.notify

libseccomp (libseccomp.so.2, dlopen()ed through cffi in ABI mode) turns the profile into a BPF
program. Its declarations are pre-parsed in ocirt/kernel/_libseccomp.py, generated at install
time by ocirt/kernel/_seccomp_build.py; a source tree that was never built parses
ocirt/kernel/_seccomp_cdefs.py at run time instead. Importing this module loads neither cffi nor
libseccomp: compile() and features() do.

Where the spec leaves room, runc's behaviour is followed:
- syscall names libseccomp does not know (newer or foreign syscalls) are skipped, not errors; they
  are listed in Filter.unknown_syscalls;
- a rule whose action (errno included) equals the default action is skipped;
- conditions of a rule are ANDed in one libseccomp rule, but when two of them test the same
  argument index each condition becomes a rule of its own (ORed), as runc does;
- SCMP_ACT_NOTIFY is refused as the default action and for `write`; ocirt refuses it for `sendmsg`
  too, the call that carries the notify fd from the init to the parent (a deadlock otherwise);
- the no_new_privs bit is left to process.noNewPrivileges (libseccomp would set it on load);
- a syscall newer than every syscall the profile names (per architecture) fails with ENOSYS, not
  with the default action, unless that is to allow: a profile written for an older kernel then
  tells glibc "not implemented" (it falls back from clone3, faccessat2, ... only on ENOSYS), while
  every syscall the profile knows keeps its rule. A short BPF prefix does it (enosys_prefix),
  loaded with the libseccomp program by seccomp(2) (Filter.install).
Spec-listed architectures this libseccomp does not know (e.g. SCMP_ARCH_LOONGARCH64 before 2.6)
are skipped (Filter.skipped_architectures): a host libseccomp cannot build for cannot run them.
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV only means something for a listener: without
SCMP_ACT_NOTIFY rules it is ignored (the kernel would refuse it); libseccomp < 2.6 cannot set it,
so the BPF program is then exported here and loaded with seccomp(2) by Filter.install.
"""

from __future__ import annotations

import errno as _errno
import posix  # not os: see ocirt/paths.py

from .errors import ConfigError, OcirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeGuard

# action name -> libseccomp action value (seccomp.h SCMP_ACT_*)
ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,  # = SCMP_ACT_KILL_THREAD
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,  # | errno
    "SCMP_ACT_TRACE": 0x7FF00000,  # | msg
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
# the actions that take errnoRet, with the largest value libseccomp accepts (it refuses
# ERRNO(x) for x >= MAX_ERRNO 4095; TRACE carries 16 bits)
ERRNO_ACTIONS = {"SCMP_ACT_ERRNO": 4094, "SCMP_ACT_TRACE": 0xFFFF}

# spec architecture -> libseccomp architecture name (seccomp_arch_resolve_name)
ARCHITECTURES = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc",
    "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
    "SCMP_ARCH_LOONGARCH64": "loongarch64",
    "SCMP_ARCH_M68K": "m68k",
    "SCMP_ARCH_SH": "sh",
    "SCMP_ARCH_SHEB": "sheb",
}

# enum scmp_compare
OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,  # (arg & value) == valueTwo
}

FLAGS = (
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
)

# syscalls that SCMP_ACT_NOTIFY may not intercept (see the module docstring)
NOTIFY_FORBIDDEN = frozenset({"write", "sendmsg"})

# enum scmp_filter_attr
_ATTR_CTL_NNP = 3
_ATTR_CTL_TSYNC = 4
_ATTR_CTL_LOG = 6
_ATTR_CTL_SSB = 7
_ATTR_CTL_OPTIMIZE = 8
_ATTR_API_SYSRAWRC = 9
_ATTR_CTL_WAITKILL = 10  # libseccomp >= 2.6.0
_FLAG_ATTRS = {
    "SECCOMP_FILTER_FLAG_TSYNC": _ATTR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": _ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _ATTR_CTL_SSB,
}
# seccomp_api_get() levels: 3 CTL_LOG, 4 CTL_SSB, 5 notify, 6 TSYNC together with notify
_FLAG_API = {"SECCOMP_FILTER_FLAG_LOG": 3, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}

# seccomp(2)
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1 << 0
SECCOMP_FILTER_FLAG_LOG = 1 << 1
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5

_NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name(): unknown name
_X32_SYSCALL_BIT = 0x40000000
_AUDIT_ARCH_X86_64 = 0xC000003E
_SCMP_ARCH_X32 = 0x4000003E  # its syscalls arrive as x86_64's, with _X32_SYSCALL_BIT set
_MAX_ARGS = 6
_U64_MAX = (1 << 64) - 1
_OPTIMIZE_ABOVE = 32  # runc: binary-tree optimization for rule sets longer than this


# --- the profile, checked (pure Python, no libseccomp) ---------------------------------------


class _Rule:
    __slots__ = ("pointer", "names", "action", "conditions")

    def __init__(
        self, pointer: str, names: list[str], action: int, conditions: list[tuple[int, int, int, int]]
    ):  # (index, op, datum_a, datum_b)
        self.pointer, self.names, self.action, self.conditions = pointer, names, action, conditions


class _Profile:
    """linux.seccomp, checked. (No dataclasses: importing them costs more than this module.)"""

    __slots__ = (
        "default",
        "architectures",
        "flags",
        "listener_path",
        "listener_metadata",
        "rules",
        "notify_at",
    )

    def __init__(
        self,
        default: int,
        architectures: list[tuple[str, str]],
        flags: list[str],
        listener_path: str | None,
        listener_metadata: str | None,
    ):
        self.default = default
        self.architectures = architectures  # (pointer, spec name)
        self.flags = flags
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata
        self.rules: list[_Rule] = []
        self.notify_at: str | None = None  # pointer of the first SCMP_ACT_NOTIFY rule


def _is_int(value) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not 1


def _action(name, errno_ret, where: str, errno_where: str) -> int:
    if not isinstance(name, str) or name not in ACTIONS:
        raise ConfigError(where, f"unknown seccomp action {name!r}")
    value = ACTIONS[name]
    limit = ERRNO_ACTIONS.get(name)
    if errno_ret is None:
        return value | _errno.EPERM if limit is not None else value
    if limit is None:
        raise ConfigError(
            errno_where, f"{name} does not take an errno return code (only {' and '.join(ERRNO_ACTIONS)} do)"
        )
    if not _is_int(errno_ret) or not 0 <= errno_ret <= limit:
        raise ConfigError(errno_where, f"must be an integer from 0 to {limit} for {name}")
    return value | errno_ret


def _uint64(value, where: str) -> int:
    if not _is_int(value) or not 0 <= value <= _U64_MAX:
        raise ConfigError(where, "must be an unsigned 64-bit integer")
    return int(value)


def _list(cfg: dict, key: str, pointer: str) -> list:
    value = cfg.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{pointer}/{key}", "must be an array")
    return value


def _parse(cfg, pointer: str) -> _Profile:
    if not isinstance(cfg, dict):
        raise ConfigError(pointer, "must be an object")
    if "defaultAction" not in cfg:
        raise ConfigError(f"{pointer}/defaultAction", "required")
    if cfg["defaultAction"] == "SCMP_ACT_NOTIFY":
        raise ConfigError(f"{pointer}/defaultAction", "SCMP_ACT_NOTIFY cannot be used as the default action")
    default = _action(
        cfg["defaultAction"],
        cfg.get("defaultErrnoRet"),
        f"{pointer}/defaultAction",
        f"{pointer}/defaultErrnoRet",
    )

    arches = []
    for i, name in enumerate(_list(cfg, "architectures", pointer)):
        if not isinstance(name, str) or name not in ARCHITECTURES:
            raise ConfigError(f"{pointer}/architectures/{i}", f"unknown seccomp architecture {name!r}")
        arches.append((f"{pointer}/architectures/{i}", name))

    flags = []
    for i, name in enumerate(_list(cfg, "flags", pointer)):
        if not isinstance(name, str) or name not in FLAGS:
            raise ConfigError(f"{pointer}/flags/{i}", f"unknown seccomp flag {name!r}")
        if name not in flags:
            flags.append(name)

    listener_path = cfg.get("listenerPath")
    if listener_path is not None and (not isinstance(listener_path, str) or not listener_path):
        raise ConfigError(f"{pointer}/listenerPath", "must be a non-empty string")
    metadata = cfg.get("listenerMetadata")
    if metadata is not None:
        if not isinstance(metadata, str):
            raise ConfigError(f"{pointer}/listenerMetadata", "must be a string")
        if listener_path is None:
            raise ConfigError(f"{pointer}/listenerMetadata", "must not be set without listenerPath")

    profile = _Profile(default, arches, flags, listener_path, metadata)
    for i, rule in enumerate(_list(cfg, "syscalls", pointer)):
        rp = f"{pointer}/syscalls/{i}"
        if not isinstance(rule, dict):
            raise ConfigError(rp, "must be an object")
        names = rule.get("names")
        if not isinstance(names, list) or not names:
            raise ConfigError(f"{rp}/names", "must be a non-empty array of syscall names")
        for j, name in enumerate(names):
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{rp}/names/{j}", "must be a non-empty string")
        if "action" not in rule:
            raise ConfigError(f"{rp}/action", "required")
        action = _action(rule["action"], rule.get("errnoRet"), f"{rp}/action", f"{rp}/errnoRet")
        if rule["action"] == "SCMP_ACT_NOTIFY":
            for j, name in enumerate(names):
                if name in NOTIFY_FORBIDDEN:
                    raise ConfigError(
                        f"{rp}/names/{j}", f"SCMP_ACT_NOTIFY cannot be used for the {name} syscall"
                    )
            profile.notify_at = profile.notify_at or f"{rp}/action"
        conditions = []
        for k, arg in enumerate(_list(rule, "args", rp)):
            ap = f"{rp}/args/{k}"
            if not isinstance(arg, dict):
                raise ConfigError(ap, "must be an object")
            index = arg.get("index")
            if not _is_int(index) or not 0 <= index < _MAX_ARGS:
                raise ConfigError(
                    f"{ap}/index", f"must be a syscall argument index from 0 to {_MAX_ARGS - 1}"
                )
            op = arg.get("op")
            if not isinstance(op, str) or op not in OPERATORS:
                raise ConfigError(f"{ap}/op", f"unknown seccomp operator {op!r}")
            if "value" not in arg:
                raise ConfigError(f"{ap}/value", "required")
            value = _uint64(arg["value"], f"{ap}/value")
            value_two = _uint64(arg.get("valueTwo") or 0, f"{ap}/valueTwo")
            # MASKED_EQ: libseccomp's datum_a is the mask (value), datum_b the datum (valueTwo)
            conditions.append((index, OPERATORS[op], value, value_two))
        profile.rules.append(_Rule(rp, names, action, conditions))

    if profile.notify_at and listener_path is None:
        raise ConfigError(
            f"{pointer}/listenerPath", f"required when SCMP_ACT_NOTIFY is used ({profile.notify_at})"
        )
    return profile


def _split(conditions: list) -> list[list]:
    """runc: conditions on distinct arguments form one rule; a repeated index splits them all."""
    indexes = [c[0] for c in conditions]
    if len(set(indexes)) < len(indexes):
        return [[c] for c in conditions]
    return [conditions]


# --- libseccomp --------------------------------------------------------------------------------


def _load():
    """(ffi, libseccomp): the pre-parsed module when built, the cdefs parsed now otherwise."""
    try:
        from .kernel._libseccomp import ffi
    except ImportError:
        from cffi import FFI

        from .kernel._seccomp_cdefs import CDEF

        ffi = FFI()
        ffi.cdef(CDEF)
    try:
        lib = ffi.dlopen("libseccomp.so.2")
    except OSError as e:
        raise OcirtError(f"seccomp: cannot load libseccomp.so.2 (is libseccomp2 installed?): {e}") from None
    return ffi, lib


def _version(lib) -> tuple[int, int, int]:
    v = lib.seccomp_version()
    return (v.major, v.minor, v.micro)


def _export(export_fn, ctx) -> bytes:
    fd = posix.memfd_create("ocirt-seccomp", posix.MFD_CLOEXEC)
    try:
        rc = export_fn(ctx, fd)
        if rc < 0:
            raise OcirtError("export the seccomp filter", -rc)
        posix.lseek(fd, 0, 0)  # SEEK_SET
        chunks = []
        while chunk := posix.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        posix.close(fd)


def compile(cfg: dict, pointer: str = "/linux/seccomp") -> Filter:  # noqa: A001 - the API name
    """Check linux.seccomp and build the libseccomp filter. Runs in the runtime parent before fork.

    Config mistakes raise ConfigError(pointer into config.json, rule); what this libseccomp or
    kernel cannot do (a flag, notify) raises OcirtError.
    """
    profile = _parse(cfg, pointer)
    ffi, lib = _load()
    version, api = _version(lib), lib.seccomp_api_get()
    where = f"libseccomp {'.'.join(map(str, version))}, API level {api}"
    notify = profile.notify_at is not None
    if notify and api < 5:
        raise OcirtError(
            f"seccomp notify unsupported ({where}): it needs libseccomp >= 2.5.0 and Linux >= 5.0"
        )
    if notify and "SECCOMP_FILTER_FLAG_TSYNC" in profile.flags and api < 6:
        raise OcirtError(
            f"seccomp notify together with SECCOMP_FILTER_FLAG_TSYNC unsupported ({where}): "
            "it needs Linux >= 5.7"
        )

    raw = lib.seccomp_init(profile.default)
    if raw == ffi.NULL:
        bad = f"{pointer}/defaultErrnoRet" if "defaultErrnoRet" in cfg else f"{pointer}/defaultAction"
        raise ConfigError(bad, f"libseccomp refused the default action ({where})")
    # the destructor holds `lib`, so libseccomp cannot be dlclose()d before the context is released
    ctx = ffi.gc(raw, lambda c, lib=lib: lib.seccomp_release(c))

    def attr(name: int, value: int) -> int:
        return lib.seccomp_attr_set(ctx, name, value)

    rc = attr(_ATTR_CTL_NNP, 0)
    if rc < 0:
        raise OcirtError("seccomp: leave no_new_privs to process.noNewPrivileges", -rc)
    attr(_ATTR_API_SYSRAWRC, 1)  # the kernel's errno from seccomp_load (not -ECANCELED); >= 2.5.0

    ignored_flags: list[str] = []
    direct = False
    for _i, name in enumerate(profile.flags):
        if name == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV":
            if not notify:
                ignored_flags.append(name)
            elif version >= (2, 6, 0):
                rc = attr(_ATTR_CTL_WAITKILL, 1)
                if rc < 0:
                    raise OcirtError(f"seccomp flag {name} is not supported ({where})", -rc)
            else:
                direct = True
            continue
        rc = attr(_FLAG_ATTRS[name], 1) if api >= _FLAG_API.get(name, 0) else -_errno.EOPNOTSUPP
        if rc < 0:
            raise OcirtError(f"seccomp flag {name} is not supported ({where})", -rc)

    skipped_arches = []
    for arch_pointer, name in profile.architectures:
        token = lib.seccomp_arch_resolve_name(ARCHITECTURES[name].encode())
        if not token:
            skipped_arches.append(name)
            continue
        rc = lib.seccomp_arch_add(ctx, token)
        if rc < 0 and rc != -_errno.EEXIST:
            raise ConfigError(
                arch_pointer, f"libseccomp cannot add architecture {name}: {posix.strerror(-rc)}"
            )

    if sum(len(r.names) for r in profile.rules) > _OPTIMIZE_ABOVE:
        attr(_ATTR_CTL_OPTIMIZE, 2)  # not fatal: older libseccomp

    unknown: list[str] = []
    for rule in profile.rules:
        if rule.action == profile.default:
            continue
        groups = _split(rule.conditions)
        arrays = [(len(g), ffi.new("struct scmp_arg_cmp[]", g) if g else ffi.NULL) for g in groups]
        for j, name in enumerate(rule.names):
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == _NR_SCMP_ERROR:
                if name not in unknown:
                    unknown.append(name)
                continue
            for count, array in arrays:
                rc = lib.seccomp_rule_add_array(ctx, rule.action, nr, count, array)
                if rc < 0:
                    raise ConfigError(
                        f"{rule.pointer}/names/{j}",
                        f"libseccomp refused the rule for {name}: {posix.strerror(-rc)}",
                    )

    newest = {}
    if profile.default not in (ACTIONS["SCMP_ACT_ALLOW"], ACTIONS["SCMP_ACT_LOG"]):
        newest = _newest_syscalls(lib, profile, skipped_arches)
        direct = direct or bool(newest)

    flt = Filter(
        ffi,
        lib,
        ctx,
        default_action=profile.default,
        notify=notify,
        listener_path=profile.listener_path,
        listener_metadata=profile.listener_metadata,
        unknown_syscalls=unknown,
        skipped_architectures=skipped_arches,
        ignored_flags=ignored_flags,
    )
    flt.rules = profile.rules
    if direct:
        flt._prepare_direct_load(profile.flags, enosys_prefix(newest))
    return flt


def _newest_syscalls(lib, profile: _Profile, skipped_arches: list[str]) -> dict[int, int]:
    """{audit arch: the highest syscall number the profile names for it}, for the filter's
    architectures (the native one included); an architecture none of the names resolve on is
    left out (it keeps the default action everywhere)."""
    tokens = {lib.seccomp_arch_native()}
    for _, name in profile.architectures:
        if name not in skipped_arches:
            tokens.add(lib.seccomp_arch_resolve_name(ARCHITECTURES[name].encode()))
    tokens.discard(_SCMP_ARCH_X32)  # checked as x86_64 (see enosys_prefix)
    tokens.discard(0)
    names = {n.encode() for rule in profile.rules for n in rule.names}
    newest = {}
    for token in tokens:
        numbers = [lib.seccomp_syscall_resolve_name_arch(token, n) for n in names]
        numbers = [nr for nr in numbers if nr >= 0]  # < 0: unknown there, or a multiplexed pseudo-call
        if numbers:
            newest[token] = max(numbers)
    return newest


def enosys_prefix(newest: dict[int, int]) -> bytes:
    """BPF (struct sock_filter[]) to run before libseccomp's program: for an architecture of
    `newest`, a syscall number above its highest known one returns ENOSYS; everything else falls
    through to libseccomp's program (which loads the architecture again itself)."""
    import struct

    def op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
        return struct.pack("=HBBI", code, jt, jf, k)

    ld_abs, jeq, jgt, jset, ja, ret = 0x20, 0x15, 0x25, 0x45, 0x05, 0x06
    if not newest:
        return b""
    blocks = []
    for arch, top in sorted(newest.items()):
        blocks.append((arch, top, arch == _AUDIT_ARCH_X86_64))
    # instruction counts: ld arch; per block: jeq, ld nr, [jset], jgt; then ja over the ret; ret
    sizes = [4 if x32 else 3 for _, _, x32 in blocks]
    enosys_at = 1 + sum(sizes) + 1
    rest = enosys_at + 1
    out = [op(ld_abs, 4)]
    pos = 1
    for (arch, top, x32), size in zip(blocks, sizes):
        out.append(op(jeq, arch, 0, size - 1))
        out.append(op(ld_abs, 0))
        if x32:
            out.append(op(jset, _X32_SYSCALL_BIT, rest - (pos + 3), 0))
        here = pos + size - 1
        out.append(op(jgt, top, enosys_at - (here + 1), rest - (here + 1)))
        pos += size
    out.append(op(ja, 1))
    out.append(op(ret, ACTIONS["SCMP_ACT_ERRNO"] | _errno.ENOSYS))
    return b"".join(out)


class Filter:
    """A compiled seccomp profile, ready to be loaded by the container's init."""

    def __init__(
        self,
        ffi,
        lib,
        ctx,
        *,
        default_action: int,
        notify: bool,
        listener_path: str | None,
        listener_metadata: str | None,
        unknown_syscalls: list[str],
        skipped_architectures: list[str],
        ignored_flags: list[str],
    ):
        self._ffi, self._lib, self._ctx = ffi, lib, ctx
        self.default_action = default_action
        self.notify = notify  # SCMP_ACT_NOTIFY is used: install() returns an fd
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata
        self.unknown_syscalls = unknown_syscalls  # names skipped as runc does; worth a debug log
        self.skipped_architectures = skipped_architectures
        self.ignored_flags = ignored_flags
        self._bpf: bytes | None = None  # set when install() calls seccomp(2) itself
        self._load_flags = 0
        self._libc: Any = None  # libc through cffi, when install() calls seccomp(2) itself
        self._nr_seccomp = -1
        self.rules: list = []  # the profile's rules (_Rule), for lets_through

    def lets_through(self, names, may_fail=()) -> bool:
        """Whether the filter allows each of `names` (system calls) whatever its arguments: the
        default action allows (or logs) and no rule names one with another action, or each is
        named by a rule that allows it without conditions and by none that does anything else;
        and whether each of `may_fail` is allowed or fails with an errno at worst (never kills,
        traps, or goes to a tracer or listener)."""
        allow = (ACTIONS["SCMP_ACT_ALLOW"], ACTIONS["SCMP_ACT_LOG"])

        def harmless(action: int) -> bool:
            return action in allow or action & 0xFFFF0000 == ACTIONS["SCMP_ACT_ERRNO"]

        wanted, plain = set(names), set()
        others, covered = set(may_fail) - wanted, set()
        for rule in self.rules:
            named = wanted.intersection(rule.names)
            if named:
                if rule.action not in allow:
                    return False
                if not rule.conditions:
                    plain |= named
            named = others.intersection(rule.names)
            if named:
                if not harmless(rule.action):
                    return False
                if not rule.conditions:
                    covered |= named
        if not harmless(self.default_action) and covered != others:
            return False
        return self.default_action in allow or plain == wanted

    def _prepare_direct_load(self, flags: list[str], prefix: bytes = b"") -> None:
        """For what libseccomp cannot set (a flag, the ENOSYS prefix): export the program now
        (parent), prefixed; seccomp(2) loads it in install()."""
        bits = {
            "SECCOMP_FILTER_FLAG_TSYNC": SECCOMP_FILTER_FLAG_TSYNC,
            "SECCOMP_FILTER_FLAG_LOG": SECCOMP_FILTER_FLAG_LOG,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW": SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        }
        load = 0
        for name in flags:
            load |= bits[name]
        if self.notify:
            load |= SECCOMP_FILTER_FLAG_NEW_LISTENER
            if load & SECCOMP_FILTER_FLAG_TSYNC:
                load |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH
        self._load_flags = load
        self._bpf = prefix + self.export_bpf()
        self._nr_seccomp = self._lib.seccomp_syscall_resolve_name(b"seccomp")
        self._libc = self._ffi.dlopen(None)

    def install(self) -> int | None:
        """Load the filter into the calling process: runs in the container's init, after fork.

        Returns the notify fd (close-on-exec) when the profile uses SCMP_ACT_NOTIFY, else None.

        Where the init (ocirt/stages.py `_init`) calls it, as runc does:
        - process.noNewPrivileges false: before `process.switch_identity(...)`. Without
          no_new_privs, loading a filter needs CAP_SYS_ADMIN, which switch_identity drops.
        - process.noNewPrivileges true: after `switch_identity` (which sets no_new_privs), as late
          as possible, just before `ch.send(Ready())`, so the profile has to allow as few of the
          runtime's own syscalls as possible.
        Either way it runs before Ready and the fifo wait, because with SCMP_ACT_NOTIFY the
        parent (`ocirt create`) must still be there to forward the fd: the init sends the fd to
        the parent over the channel with sendmsg/SCM_RIGHTS (socket.send_fds; NOTIFY_FORBIDDEN
        keeps that call un-notified), closes its copy, then sends Ready. The parent calls
        send_to_listener(). Everything the init does after install() (sendto, close, openat and
        write of exec.fifo, startContainer hooks, execve) runs under the filter, as in runc.
        """
        if self._bpf is not None:
            return self._install_direct(self._bpf)
        rc = self._lib.seccomp_load(self._ctx)
        if rc < 0:
            raise OcirtError("load the seccomp filter", -rc)
        if not self.notify:
            return None
        fd = self._lib.seccomp_notify_fd(self._ctx)
        if fd < 0:
            raise OcirtError("get the seccomp notify fd", -fd)
        return fd

    def _install_direct(self, bpf: bytes) -> int | None:
        ffi = self._ffi
        prog = ffi.new("struct sock_fprog *")
        program = ffi.from_buffer("struct sock_filter[]", bpf)
        prog.len = len(bpf) // ffi.sizeof("struct sock_filter")
        prog.filter = program
        ret = self._libc.syscall(
            ffi.cast("long", self._nr_seccomp),
            ffi.cast("long", SECCOMP_SET_MODE_FILTER),
            ffi.cast("long", self._load_flags),
            prog,
        )
        if ret < 0:
            raise OcirtError("load the seccomp filter", ffi.errno)
        if self.notify:
            return ret
        if ret > 0:  # TSYNC: the id of a thread that could not be synchronized
            raise OcirtError(f"load the seccomp filter: thread {ret} could not be synchronized")
        return None

    def send_to_listener(self, notify_fd: int, state: dict) -> None:
        """Send the Container Process State with notify_fd to listenerPath, then close notify_fd.

        Runs in the runtime parent (the host's mount namespace, where listenerPath is), after the
        init handed over the fd returned by install(). `state` is the container's state
        (runtime.md: ociVersion, id, status "creating", pid as the runtime sees it, bundle,
        annotations). One connection, one message, the fd in the first sendmsg, then closed.
        """
        import json
        import socket

        message = {
            "ociVersion": state.get("ociVersion"),
            "fds": ["seccompFd"],
            "pid": state.get("pid"),
            "state": state,
        }
        if self.listener_metadata:
            message["metadata"] = self.listener_metadata
        data = json.dumps(message).encode()
        try:
            if self.listener_path is None:  # parse() wants listenerPath with SCMP_ACT_NOTIFY
                raise OcirtError("seccomp: no listenerPath to send the notify fd to")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.listener_path)
                sent = socket.send_fds(sock, [data], [notify_fd])
                if sent < len(data):
                    sock.sendall(data[sent:])
        except OSError as e:
            raise OcirtError(
                f"send the seccomp notify fd to the seccomp agent at {self.listener_path}", e.errno
            ) from None
        finally:
            posix.close(notify_fd)

    def export_pfc(self) -> str:
        """libseccomp's pseudo filter code: what the filter does, human readable (ocirt plan)."""
        return _export(self._lib.seccomp_export_pfc, self._ctx).decode()

    def export_bpf(self) -> bytes:
        """The raw BPF program (struct sock_filter[]) that install() loads."""
        return _export(self._lib.seccomp_export_bpf, self._ctx)


def libseccomp_version() -> str:
    """The libseccomp in use, e.g. "2.5.4" (runc reports it as an annotation of `features`)."""
    _, lib = _load()
    return ".".join(map(str, _version(lib)))


def features() -> dict:
    """linux.seccomp of `ocirt features` (features-linux.md), from this libseccomp and kernel."""
    try:
        _, lib = _load()
    except OcirtError:
        return {"enabled": False}
    api = lib.seccomp_api_get()
    supported = ["SECCOMP_FILTER_FLAG_TSYNC"]
    supported += [f for f, level in _FLAG_API.items() if api >= level]
    release = tuple(int(x) for x in posix.uname().release.split("-")[0].split(".")[:2] if x.isdigit())
    if api >= 5 and release >= (5, 19):
        supported.append("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
    return {
        "enabled": True,
        "actions": sorted(ACTIONS),
        "operators": sorted(OPERATORS),
        "archs": sorted(a for a, n in ARCHITECTURES.items() if lib.seccomp_arch_resolve_name(n.encode())),
        "knownFlags": list(FLAGS),
        "supportedFlags": supported,
    }
