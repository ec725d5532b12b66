"""cgroup v2 device control: linux.resources.devices as a BPF_PROG_TYPE_CGROUP_DEVICE program.

cgroup v2 has no devices.allow/devices.deny; the kernel instead runs the BPF_CGROUP_DEVICE
programs attached to the task's cgroup (and its ancestors) on every open(2)/mknod(2) of a device
node, with a `struct bpf_cgroup_dev_ctx` as input, and refuses the access (EPERM) unless all of
them return 1.

From rules to a program (what runc does, so a config means the same on both runtimes):

1. `emulate()` replays the OCI list as cgroup v1 would, starting from "deny everything": an
   "a" rule resets to allow-all or deny-all; any other rule adds an exception to the current
   default or takes access bits away from the exception with exactly the same type:major:minor.
   Taking access from a narrower rule than an existing wildcard exception is silently ignored by
   v1; that is refused here (ConfigError), as runc refuses it, rather than left unenforced.
   The result is a default verdict plus a set of exceptions, all of the opposite verdict, so
   their order no longer matters.
2. `device_filter()` compiles that into straight-line bytecode: one block per exception, each
   testing type, access, major and minor (wildcards and "rwm" test nothing) and returning the
   exception's verdict; after the last block, the default.

The match rules are v1's (security/device_cgroup.c): an access is allowed by an allow
exception only if that one exception has every requested bit (open(O_RDWR) asks for r and w at
once), and refused by a deny exception if it has any of the requested bits. (runc's program
tests "every bit" for deny exceptions too, so "deny w" there does not stop an O_RDWR open.)

3. `attach_device_filter()` loads the program (bpf(BPF_PROG_LOAD), with the verifier log on a
   failure) and attaches it to the cgroup directory with BPF_F_ALLOW_MULTI, then removes the
   programs that were attached there before, as runc does: replaced in one step
   (BPF_F_REPLACE) when there was exactly one, else detached after the new one is in place, so
   the cgroup is never left without a filter. An attached program stays after its fd is closed;
   removing the cgroup detaches it.

The bytecode helpers below (`Asm`) cover the few instructions needed; `encode()` gives the bytes
of `struct bpf_insn[]`.
"""

from __future__ import annotations

import errno as _errno
import os
import struct
import sys

from ..errors import ConfigError, OcirtError
from ..namespaces import in_user_namespace
from .resources import ptr

# ---------------------------------------------------------------- bpf(2) ABI (linux/bpf.h)

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6  # enum bpf_attach_type

BPF_F_ALLOW_MULTI = 1 << 1
BPF_F_REPLACE = 1 << 2

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
# access_type: low 16 bits the device type, high 16 bits the requested access.
BPF_DEVCG_DEV_BLOCK = 1
BPF_DEVCG_DEV_CHAR = 2
BPF_DEVCG_ACC_MKNOD = 1
BPF_DEVCG_ACC_READ = 2
BPF_DEVCG_ACC_WRITE = 4
ACC_ALL = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE

DEV_TYPES = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}
ACCESS_BITS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}

LICENSE = "Apache"  # device programs call no GPL-only helper
PROG_NAME = "ocirt_devices"  # shown by `bpftool prog`; [A-Za-z0-9_.], at most 15 characters
LOG_SIZE = 1 << 16

# ---------------------------------------------------------------- instructions

# classes
BPF_LDX = 0x01
BPF_ALU = 0x04  # 32-bit ALU: the result is zero-extended into the 64-bit register
BPF_JMP = 0x05
# ldx size / mode
BPF_W = 0x00
BPF_MEM = 0x60
# source
BPF_K = 0x00
BPF_X = 0x08
# ALU ops
BPF_AND = 0x50
BPF_RSH = 0x70
BPF_MOV = 0xB0
# JMP ops
BPF_JA = 0x00
BPF_JEQ = 0x10
BPF_JSET = 0x40
BPF_JNE = 0x50
BPF_EXIT = 0x90

R0, R1, R2, R3, R4, R5 = range(6)


class Insn(tuple):
    """One struct bpf_insn: (code, dst, src, off, imm)."""

    __slots__ = ()

    def __new__(cls, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0):
        return tuple.__new__(cls, (code, dst, src, off, imm))

    code = property(lambda self: self[0])
    dst = property(lambda self: self[1])
    src = property(lambda self: self[2])
    off = property(lambda self: self[3])
    imm = property(lambda self: self[4])

    def __repr__(self) -> str:
        return f"Insn({self[0]:#04x}, dst={self[1]}, src={self[2]}, off={self[3]}, imm={self[4]})"


def _s32(v: int) -> int:
    """An unsigned 32-bit value as the signed imm field holds it."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def encode(insns) -> bytes:
    """struct bpf_insn[] in this machine's byte order (the register nibbles follow it too)."""
    big = sys.byteorder == "big"
    fmt = struct.Struct(">BBhi" if big else "<BBhi")
    out = bytearray()
    for code, dst, src, off, imm in insns:
        regs = (dst << 4 | src) if big else (src << 4 | dst)
        out += fmt.pack(code, regs, off, imm)
    return bytes(out)


class Asm:
    """A tiny assembler: append instructions, jump to labels, resolve offsets in `insns()`."""

    def __init__(self) -> None:
        self._code: list = []  # Insn, or (Insn, label) for a jump not yet resolved
        self._labels: dict = {}

    def __len__(self) -> int:
        return len(self._code)

    def label(self, name: str) -> None:
        if name in self._labels:
            raise ValueError(f"label {name!r} defined twice")
        self._labels[name] = len(self._code)

    def _emit(self, insn: Insn, target: str | None = None) -> None:
        self._code.append(insn if target is None else (insn, target))

    # dst = *(u32 *)(src + off)
    def ldxw(self, dst: int, src: int, off: int) -> None:
        self._emit(Insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off))

    # 32-bit ALU with an immediate / a register
    def alu32(self, op: int, dst: int, imm: int) -> None:
        self._emit(Insn(BPF_ALU | op | BPF_K, dst, 0, 0, _s32(imm)))

    def alu32_reg(self, op: int, dst: int, src: int) -> None:
        self._emit(Insn(BPF_ALU | op | BPF_X, dst, src))

    def mov32(self, dst: int, imm: int) -> None:
        self.alu32(BPF_MOV, dst, imm)

    # conditional jumps (64-bit compares; an imm is sign-extended, see jne_u32)
    def jmp(self, op: int, dst: int, imm: int, target: str) -> None:
        self._emit(Insn(BPF_JMP | op | BPF_K, dst, 0, 0, imm), target)

    def jmp_reg(self, op: int, dst: int, src: int, target: str) -> None:
        self._emit(Insn(BPF_JMP | op | BPF_X, dst, src), target)

    def ja(self, target: str) -> None:
        self._emit(Insn(BPF_JMP | BPF_JA), target)

    def exit(self) -> None:
        self._emit(Insn(BPF_JMP | BPF_EXIT))

    def jne_u32(self, reg: int, value: int, target: str, scratch: int = R1) -> None:
        """if reg (a zero-extended u32) != value goto target, for any u32 value.

        The imm of a 64-bit compare is sign-extended, so values from 2**31 up are moved into
        a scratch register with a 32-bit mov (zero-extending) and compared register to register.
        """
        if value < 1 << 31:
            self.jmp(BPF_JNE, reg, value, target)
        else:
            self.mov32(scratch, value)
            self.jmp_reg(BPF_JNE, reg, scratch, target)

    def insns(self) -> list:
        out = []
        for i, item in enumerate(self._code):
            if isinstance(item, Insn):
                out.append(item)
                continue
            insn, target = item
            if target not in self._labels:
                raise ValueError(f"jump to undefined label {target!r}")
            off = self._labels[target] - (i + 1)
            if not -(1 << 15) <= off < 1 << 15:
                raise ValueError(f"jump to {target!r} is too far ({off} instructions)")
            out.append(Insn(insn.code, insn.dst, insn.src, off, insn.imm))
        return out


# ---------------------------------------------------------------- rules -> exceptions


def access_bits(access: str) -> int:
    bits = 0
    for ch in access:
        bits |= ACCESS_BITS[ch]
    return bits


def _access_str(bits: int) -> str:
    return "".join(ch for ch in "rwm" if bits & ACCESS_BITS[ch])


def _key_str(key) -> str:
    typ, major, minor = key
    return f"{typ} {'*' if major is None else major}:{'*' if minor is None else minor}"


def emulate(rules) -> tuple:
    """Replay DeviceRules as cgroup v1 does; (default_allow, [(type, major, minor, bits), ...]).

    Every exception has the verdict `not default_allow`. They are sorted (type, then major and
    minor with wildcards first) so that a rule list always gives the same program.
    """
    default_allow = False
    exc: dict = {}
    for rule in rules:
        if rule.type == "a":
            default_allow, exc = bool(rule.allow), {}
            continue
        for name, v in (("major", rule.major), ("minor", rule.minor)):
            if v is not None and not 0 <= v <= 0xFFFFFFFF:
                raise ConfigError(
                    ptr("devices"), f"{rule.v1_line()}: {name} {v} is out of range (0 to 4294967295)"
                )
        key = (rule.type, rule.major, rule.minor)
        bits = access_bits(rule.access)
        if bool(rule.allow) != default_allow:
            exc[key] = exc.get(key, 0) | bits
            continue
        # Same verdict as the default: take these bits away from the exception with this key.
        # v1 ignores the request for the part a wider (wildcard) exception covers; refuse that.
        for wider in ((rule.type, None, rule.minor), (rule.type, rule.major, None), (rule.type, None, None)):
            if wider != key and exc.get(wider, 0) & bits:
                verdict = "allow" if rule.allow else "deny"
                raise ConfigError(
                    ptr("devices"),
                    f"cannot {verdict} {rule.v1_line()}: it "
                    f"would punch a hole in the rule {_key_str(wider)} "
                    f"{_access_str(exc[wider])}, which cgroup v1 ignores",
                )
        left = exc.get(key, 0) & ~bits
        if left:
            exc[key] = left
        else:
            exc.pop(key, None)

    def order(key):
        typ, major, minor = key
        return (typ, -1 if major is None else major, -1 if minor is None else minor)

    return default_allow, [k + (exc[k],) for k in sorted(exc, key=order)]


# ---------------------------------------------------------------- exceptions -> program


def device_filter(rules) -> list:
    """The instructions of the device program for a list of DeviceRules."""
    default_allow, exceptions = emulate(rules)
    verdict = 0 if default_allow else 1
    a = Asm()
    # r2 = type, r3 = requested access, r4 = major, r5 = minor
    a.ldxw(R2, R1, 0)
    a.alu32(BPF_AND, R2, 0xFFFF)
    a.ldxw(R3, R1, 0)
    a.alu32(BPF_RSH, R3, 16)
    a.ldxw(R4, R1, 4)
    a.ldxw(R5, R1, 8)
    for i, (typ, major, minor, bits) in enumerate(exceptions):
        nxt = f"next{i}"
        a.jmp(BPF_JNE, R2, DEV_TYPES[typ], nxt)
        if bits != ACC_ALL:
            if verdict:
                # allow: every requested bit must be in the exception (any bit a future
                # kernel might add too: fail closed)
                a.jmp(BPF_JSET, R3, 0xFFFF & ~bits, nxt)
            else:
                # deny: any requested bit in the exception
                a.alu32_reg(BPF_MOV, R1, R3)
                a.alu32(BPF_AND, R1, bits)
                a.jmp(BPF_JEQ, R1, 0, nxt)
        if major is not None:
            a.jne_u32(R4, major, nxt)
        if minor is not None:
            a.jne_u32(R5, minor, nxt)
        a.mov32(R0, verdict)
        a.exit()
        a.label(nxt)
    a.mov32(R0, 1 - verdict)
    a.exit()
    return a.insns()


def can_skip_errors(rules) -> bool:
    """runc's leniency when bpf(2) fails: inside a user namespace, or not root at all (a
    rootless runtime cannot load programs; its containers cannot make device nodes, and reach
    host devices only as the user could), or when every rule allows everything."""
    if os.geteuid() != 0 or in_user_namespace():
        return True
    return all(r.allow and access_bits(r.access) == ACC_ALL for r in rules)


# ---------------------------------------------------------------- bpf(2) calls

_CMD_NAMES = {
    BPF_PROG_LOAD: "BPF_PROG_LOAD",
    BPF_PROG_ATTACH: "BPF_PROG_ATTACH",
    BPF_PROG_DETACH: "BPF_PROG_DETACH",
    BPF_PROG_GET_FD_BY_ID: "BPF_PROG_GET_FD_BY_ID",
    BPF_PROG_QUERY: "BPF_PROG_QUERY",
}


class BpfError(OSError):
    """bpf(2) failed: errno, the command's name, and the verifier log for BPF_PROG_LOAD."""

    errno: int  # always given

    def __init__(self, err: int, cmd: int, log: str = ""):
        super().__init__(err, os.strerror(err))
        self.cmd = _CMD_NAMES.get(cmd, f"bpf command {cmd}")
        self.log = log


def _bpf(kernel, cmd: int, attr: bytearray, pointers: dict | None = None) -> int:
    try:
        return kernel.bpf(cmd, attr, pointers or {})
    except OSError as e:
        raise BpfError(e.errno or _errno.EIO, cmd) from None


def _u32s(*values) -> bytearray:
    return bytearray(struct.pack(f"={len(values)}I", *values))


def load(kernel, insns, license: str = LICENSE, name: str = PROG_NAME) -> int:
    """BPF_PROG_LOAD a BPF_PROG_TYPE_CGROUP_DEVICE program; its fd.

    Loaded without a log first; if the kernel refuses, loaded again with the verifier's log,
    which the BpfError carries.
    """
    code = encode(insns)
    lic = license.encode() + b"\0"

    def attempt(log: bytearray | None) -> int:
        # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf, kern_version,
        # prog_flags, prog_name[16]
        attr = bytearray(64)
        struct.pack_into("=II", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(insns))
        if log is not None:
            struct.pack_into("=II", attr, 24, 1, len(log))
        attr[48:64] = name.encode()[:15].ljust(16, b"\0")
        pointers: dict[int, bytes | bytearray] = {8: code, 16: lic}
        if log is not None:
            pointers[32] = log
        return _bpf(kernel, BPF_PROG_LOAD, attr, pointers)

    try:
        return attempt(None)
    except BpfError as e:
        first = e
    log = bytearray(LOG_SIZE)
    try:
        return attempt(log)
    except BpfError as e:
        e.log = bytes(log).split(b"\0", 1)[0].decode("utf-8", "replace").strip()
        if e.errno == _errno.ENOSPC and first.errno != _errno.ENOSPC:
            e.errno, e.strerror = first.errno, first.strerror  # the log did not fit: say why
        raise e from None


def query(kernel, cgroup_fd: int, max_progs: int = 64) -> list:
    """Ids of the BPF_CGROUP_DEVICE programs attached to this very cgroup (not its parents)."""
    for _ in range(10):
        ids = bytearray(4 * max_progs)
        # target_fd, attach_type, query_flags, attach_flags (out), prog_ids (u64 at 16),
        # prog_cnt (in/out, at 24)
        attr = bytearray(32)
        struct.pack_into("=II", attr, 0, cgroup_fd, BPF_CGROUP_DEVICE)
        struct.pack_into("=I", attr, 24, max_progs)
        try:
            _bpf(kernel, BPF_PROG_QUERY, attr, {16: ids})
        except BpfError as e:
            if e.errno == _errno.ENOSPC:  # more than max_progs: prog_cnt says how many
                max_progs = max(struct.unpack_from("=I", attr, 24)[0], max_progs * 2)
                continue
            raise
        count = min(struct.unpack_from("=I", attr, 24)[0], max_progs)
        return list(struct.unpack_from(f"={count}I", ids, 0))
    raise BpfError(_errno.ENOSPC, BPF_PROG_QUERY)


def get_fd_by_id(kernel, prog_id: int) -> int:
    return _bpf(kernel, BPF_PROG_GET_FD_BY_ID, _u32s(prog_id, 0, 0))


def attach(kernel, cgroup_fd: int, prog_fd: int, flags: int, replace_fd: int = 0) -> None:
    # target_fd, attach_bpf_fd, attach_type, attach_flags, replace_bpf_fd
    _bpf(kernel, BPF_PROG_ATTACH, _u32s(cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, flags, replace_fd))


def detach(kernel, cgroup_fd: int, prog_fd: int) -> None:
    _bpf(kernel, BPF_PROG_DETACH, _u32s(cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, 0))


def attach_device_filter(kernel, cgroup_dir: str, rules) -> None:
    """Enforce `rules` (DeviceRules) on the cgroup v2 directory, replacing ocirt's (or anyone's)
    device filter attached there before."""
    insns = device_filter(rules)  # a ConfigError before touching anything
    try:
        _attach_replacing(kernel, cgroup_dir, insns)
    except OSError as e:
        if can_skip_errors(rules):
            return
        if not isinstance(e, BpfError):
            raise OcirtError(
                f"cannot open cgroup {cgroup_dir} for its device filter", errno=e.errno
            ) from None
        msg = f"cannot set the device filter (eBPF) of cgroup {cgroup_dir}: {e.cmd}"
        if not e.log:
            raise OcirtError(msg, errno=e.errno) from None
        raise OcirtError(f"{msg}: {os.strerror(e.errno).lower()}; verifier log:\n{e.log}") from None


def _attach_replacing(kernel, cgroup_dir: str, insns) -> None:
    fds = []
    try:
        cg_fd = kernel.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fds.append(cg_fd)
        old = []
        for prog_id in query(kernel, cg_fd):
            try:
                fd = get_fd_by_id(kernel, prog_id)
            except BpfError as e:
                # Gone meanwhile, or an LSM keeps us from it (runc skips those too: another
                # device program can only refuse more).
                if e.errno in (_errno.ENOENT, _errno.EPERM, _errno.EACCES):
                    continue
                raise
            fds.append(fd)
            old.append(fd)
        prog_fd = load(kernel, insns)
        fds.append(prog_fd)
        if len(old) == 1:
            try:
                attach(kernel, cg_fd, prog_fd, BPF_F_ALLOW_MULTI | BPF_F_REPLACE, old[0])
                return
            except BpfError as e:
                if e.errno != _errno.EINVAL:  # EINVAL: a kernel before 5.6, no BPF_F_REPLACE
                    raise
        attach(kernel, cg_fd, prog_fd, BPF_F_ALLOW_MULTI)
        for fd in old:
            try:
                detach(kernel, cg_fd, fd)
            except BpfError as e:
                if e.errno != _errno.ENOENT:  # detached by someone else meanwhile
                    raise
    finally:
        for fd in reversed(fds):
            kernel.close(fd)
