"""ocirt.cgroups.ebpf without root: the instructions built for some rule lists, an interpreter of
that bytecode checked against a model of the cgroup v1 device controller over random rule lists,
and the bpf(2) call sequence (against RecordingKernel)."""

import errno
import random
import struct

import pytest

from ocirt.cgroups import Layout, ebpf
from ocirt.cgroups.cgroup_v2 import V2Cgroup
from ocirt.cgroups.ebpf import Insn
from ocirt.cgroups.resources import parse_device_rules
from ocirt.errors import ConfigError, OcirtError
from ocirt.kernel.fake import RecordingKernel

LOAD_CTX = [
    Insn(0x61, 2, 1, 0, 0),
    Insn(0x54, 2, 0, 0, 0xFFFF),
    Insn(0x61, 3, 1, 0, 0),
    Insn(0x74, 3, 0, 0, 16),
    Insn(0x61, 4, 1, 4, 0),
    Insn(0x61, 5, 1, 8, 0),
]
RET0 = [Insn(0xB4, 0, 0, 0, 0), Insn(0x95)]
RET1 = [Insn(0xB4, 0, 0, 0, 1), Insn(0x95)]

DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}


def rules(*dicts):
    return parse_device_rules(list(dicts))


# ---------------------------------------------------------------- the interpreter

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def decode(code: bytes) -> list:
    out = []
    for i in range(0, len(code), 8):
        op, regs, off, imm = struct.unpack_from("<BBhi", code, i)
        out.append(Insn(op, regs & 0xF, regs >> 4, off, imm))
    return out


def run(code: bytes, dev_type: int, major: int, minor: int, access: int, limit: int = 10000) -> int:
    """Execute the instruction subset the device filter uses; R0 at exit.

    Registers are 64-bit; ALU32 results are zero-extended, a K operand of a 64-bit jump is the
    sign-extended imm, as in the kernel. Anything else (or a read outside the context, or a jump
    out of the program) fails the test.
    """
    insns = decode(code)
    ctx = struct.pack("=III", (access << 16) | dev_type, major, minor)
    reg = [0] * 11
    reg[1] = "ctx"
    init = [False] * 11
    init[1] = init[10] = True
    pc = 0
    for _ in range(limit):
        assert 0 <= pc < len(insns), f"pc {pc} outside the program"
        op, dst, src, off, imm = insns[pc]
        cls, mode = op & 0x07, op & 0xF8
        pc += 1
        if op == 0x61:  # ldxw dst, [src + off]
            assert reg[src] == "ctx" and off in (0, 4, 8), "ctx load only"
            reg[dst], init[dst] = struct.unpack_from("=I", ctx, off)[0], True
        elif cls == 0x04:  # ALU32
            x = src_val = None
            if op & 0x08:
                assert init[src] and reg[src] != "ctx"
                src_val = reg[src] & M32
            else:
                src_val = imm & M32
            aop = op & 0xF0
            if aop != 0xB0:
                assert init[dst] and reg[dst] != "ctx"
            a = reg[dst] & M32 if aop != 0xB0 else 0
            if aop == 0xB0:
                x = src_val
            elif aop == 0x50:
                x = a & src_val
            elif aop == 0x70:
                x = a >> (src_val & 31)
            else:
                raise AssertionError(f"ALU op {op:#x}")
            reg[dst], init[dst] = x & M32, True
        elif cls == 0x05:  # JMP (64-bit)
            if mode == 0x90:  # exit
                assert init[0] and reg[0] != "ctx", "R0 not set at exit"
                return reg[0]
            if mode == 0x00:  # ja
                pc += off
                continue
            assert init[dst] and reg[dst] != "ctx"
            b = reg[src] if op & 0x08 else imm & M64  # sign-extended imm
            if op & 0x08:
                assert init[src]
            a = reg[dst]
            taken = {0x10: a == b, 0x50: a != b, 0x40: bool(a & b)}.get(mode & 0xF0)
            assert taken is not None, f"jump op {op:#x}"
            if taken:
                pc += off
        else:
            raise AssertionError(f"instruction {op:#x} outside the subset")
    raise AssertionError("no exit")


# ---------------------------------------------------------------- the cgroup v1 model

TYPE_BITS = {"b": 1, "c": 2}
ACC = {"m": 1, "r": 2, "w": 4}


def v1_verdict(rule_list, dev_type: str, major: int, minor: int, access: int) -> bool:
    """security/device_cgroup.c replayed: behaviour + exceptions, written one rule at a time
    (a cgroup starting from deny-all, as the v1 writer leaves it), then checked."""
    allow_by_default = False
    exceptions = []  # [type, major, minor, access]
    for r in rule_list:
        bits = sum(ACC[c] for c in r.access)
        if r.type == "a":
            allow_by_default, exceptions = r.allow, []
        elif r.allow != allow_by_default:  # dev_exception_add: merge same key
            for ex in exceptions:
                if ex[:3] == [r.type, r.major, r.minor]:
                    ex[3] |= bits
                    break
            else:
                exceptions.append([r.type, r.major, r.minor, bits])
        else:  # dev_exception_rm: same key only
            for ex in list(exceptions):
                if ex[:3] == [r.type, r.major, r.minor]:
                    ex[3] &= ~bits
                    if not ex[3]:
                        exceptions.remove(ex)

    def covers(ex):
        return ex[0] == dev_type and ex[1] in (None, major) and ex[2] in (None, minor)

    if allow_by_default:  # refused if an exception has any of the requested bits
        return not any(covers(ex) and ex[3] & access for ex in exceptions)
    return any(covers(ex) and not access & ~ex[3] for ex in exceptions)


def v1_ignores_a_rule(rule_list) -> bool:
    """Would v1 silently ignore part of a rule (taking access from inside a wildcard)?"""
    try:
        ebpf.emulate(rule_list)
        return False
    except ConfigError:
        return True


MAJORS = [None, 1, 5, 254, 2**31 + 7]
MINORS = [None, 0, 3, 5]


def random_rules(rng: random.Random) -> list:
    out = []
    for _ in range(rng.randint(0, 7)):
        d = {"allow": rng.random() < 0.5}
        t = rng.choice("abccbc")
        d["type"] = t
        if rng.random() < 0.7:
            d["major"] = rng.choice(MAJORS[1:])
        if rng.random() < 0.6:
            d["minor"] = rng.choice(MINORS[1:])
        d["access"] = "".join(c for c in "rwm" if rng.random() < 0.6) or rng.choice("rwm")
        out.append(d)
    return parse_device_rules(out)


QUERIES = [
    (t, major, minor, acc)
    for t in "bc"
    for major in (0, 1, 5, 254, 2**31 + 7, M32)
    for minor in (0, 3, 5, 7)
    for acc in range(1, 8)
]


@pytest.mark.parametrize("seed", range(20))
def test_program_agrees_with_v1_on_random_rule_lists(seed):
    rng = random.Random(seed)
    checked = refused = 0
    for _ in range(60):
        rl = random_rules(rng)
        if v1_ignores_a_rule(rl):
            refused += 1
            continue
        code = ebpf.encode(ebpf.device_filter(rl))
        for t, major, minor, acc in QUERIES:
            want = v1_verdict(rl, t, major, minor, acc)
            got = run(code, TYPE_BITS[t], major, minor, acc)
            listed = [("allow " if r.allow else "deny ") + r.v1_line() for r in rl]
            assert got == int(want), f"{listed} on {t} {major}:{minor} access {acc}: program {got}, v1 {want}"
        checked += 1
    assert checked > 40


def test_refused_rules_are_those_v1_ignores():
    """A list is refused at a rule R only where v1 leaves some access R names with the verdict R
    does not give it (a "deny" punched into an allowed wildcard, or the other way round)."""
    rng = random.Random(99)
    refused = 0
    for _ in range(1500):
        rl = random_rules(rng)
        if not v1_ignores_a_rule(rl):
            continue
        refused += 1
        i = next(n for n in range(1, len(rl) + 1) if v1_ignores_a_rule(rl[:n])) - 1
        r = rl[i]
        devices = [
            (r.type, major, minor)
            for major in ([r.major] if r.major is not None else [0, 1, 5, 254, 2**31 + 7])
            for minor in ([r.minor] if r.minor is not None else [0, 3, 5])
        ]
        assert any(v1_verdict(rl[: i + 1], *dev, ACC[a]) != r.allow for dev in devices for a in r.access), [
            x.v1_line() for x in rl[: i + 1]
        ]
    assert refused > 20


def test_refusal_message():
    # allow every char device, then "deny" /dev/zero: v1 keeps c *:* and so /dev/zero allowed
    rl = rules(
        DENY_ALL,
        {"allow": True, "type": "c", "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    )
    assert v1_verdict(rl, "c", 1, 5, ACC["r"])
    with pytest.raises(ConfigError, match="punch a hole in the rule c \\*:\\* rwm") as e:
        ebpf.device_filter(rl)
    assert e.value.pointer == "/linux/resources/devices"
    # the same in allow-all mode: deny b 8:*, then allow b 8:0
    with pytest.raises(ConfigError, match="cannot allow b 8:0 r"):
        ebpf.device_filter(
            rules(
                ALLOW_ALL,
                {"allow": False, "type": "b", "major": 8, "access": "r"},
                {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"},
            )
        )
    # no overlap in access: fine, and nothing changes
    rl = rules(
        DENY_ALL,
        {"allow": True, "type": "c", "access": "m"},
        {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "rw"},
    )
    assert ebpf.emulate(rl) == (False, [("c", None, None, 1)])


# ---------------------------------------------------------------- exact programs


def test_deny_all_is_one_block():
    assert ebpf.device_filter(rules(DENY_ALL)) == LOAD_CTX + RET0
    assert ebpf.device_filter([]) == LOAD_CTX + RET0  # an empty list denies too (runc)


def test_allow_all():
    assert ebpf.device_filter(rules(ALLOW_ALL)) == LOAD_CTX + RET1
    assert ebpf.device_filter(rules(DENY_ALL, ALLOW_ALL)) == LOAD_CTX + RET1


def test_allow_list_blocks():
    prog = ebpf.device_filter(
        rules(
            DENY_ALL,
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": True, "type": "c", "major": 136, "access": "rw"},
            {"allow": True, "type": "b", "access": "m"},
        )
    )
    assert prog == LOAD_CTX + [
        # b *:* m: type, then "no bit but m": jset r3, 0xffff & ~m
        Insn(0x55, 2, 0, 3, 1),
        Insn(0x45, 3, 0, 2, 0xFFFE),
        *RET1,
        # c 1:3 rwm: type, major, minor
        Insn(0x55, 2, 0, 4, 2),
        Insn(0x55, 4, 0, 3, 1),
        Insn(0x55, 5, 0, 2, 3),
        *RET1,
        # c 136:* rw: type, access (no m), major
        Insn(0x55, 2, 0, 4, 2),
        Insn(0x45, 3, 0, 3, 0xFFF9),
        Insn(0x55, 4, 0, 2, 136),
        *RET1,
        *RET0,
    ]
    code = ebpf.encode(prog)
    assert run(code, 1, 8, 0, ACC["m"]) == 1 and run(code, 1, 8, 0, ACC["m"] | 8) == 0
    assert run(code, 2, 136, 4, ACC["r"] | ACC["w"]) == 1 and run(code, 2, 136, 4, 8) == 0


def test_deny_list_blocks_match_any_requested_bit():
    prog = ebpf.device_filter(
        rules(ALLOW_ALL, {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"})
    )
    assert prog == LOAD_CTX + [
        Insn(0x55, 2, 0, 7, 2),
        Insn(0xBC, 1, 3, 0, 0),
        Insn(0x54, 1, 0, 0, 4),
        Insn(0x15, 1, 0, 4, 0),  # r1 = r3 & w
        Insn(0x55, 4, 0, 3, 1),
        Insn(0x55, 5, 0, 2, 5),
        *RET0,
        *RET1,
    ]
    code = ebpf.encode(prog)
    assert run(code, 2, 1, 5, ACC["r"] | ACC["w"]) == 0  # open(O_RDWR) asks for both
    assert run(code, 2, 1, 5, ACC["r"]) == 1


def test_large_numbers_compare_as_u32():
    prog = ebpf.device_filter(
        rules(DENY_ALL, {"allow": True, "type": "c", "major": 2**32 - 1, "minor": 2**31, "access": "rwm"})
    )
    assert Insn(0xB4, 1, 0, 0, -1) in prog and Insn(0x5D, 4, 1, 4, 0) in prog
    code = ebpf.encode(prog)
    assert run(code, 2, 2**32 - 1, 2**31, 2) == 1
    assert run(code, 2, 2**32 - 1, 2**31 - 1, 2) == 0
    assert run(code, 2, 2**31 - 1, 2**31, 2) == 0
    with pytest.raises(ConfigError, match="out of range"):
        ebpf.device_filter(rules({"allow": True, "type": "c", "major": 2**32, "access": "r"}))


def test_same_key_rules_merge_and_subtract():
    rl = rules(
        DENY_ALL,
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "w"},
        {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "r"},
        {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "r"},
        {"allow": False, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    )
    assert ebpf.emulate(rl) == (False, [("c", 1, 5, ACC["w"])])
    # rules before an "a" are forgotten
    assert ebpf.emulate(rules(*[{"allow": True, "type": "c", "major": 1, "access": "r"}], DENY_ALL)) == (
        False,
        [],
    )


def test_encode_layout():
    # code, dst in the low nibble / src in the high one (little-endian), off, imm
    assert ebpf.encode([Insn(0x61, 2, 1, 4, 0)]) == bytes([0x61, 0x12, 4, 0, 0, 0, 0, 0])
    assert ebpf.encode([Insn(0xB4, 1, 0, 0, -1)]) == bytes([0xB4, 1, 0, 0, 255, 255, 255, 255])


def test_asm_labels():
    a = ebpf.Asm()
    a.jmp(ebpf.BPF_JEQ, 2, 1, "end")
    a.ja("end")
    a.label("end")
    a.exit()
    assert a.insns() == [Insn(0x15, 2, 0, 1, 1), Insn(0x05, 0, 0, 0, 0), Insn(0x95)]
    a.jmp(ebpf.BPF_JNE, 2, 1, "nowhere")
    with pytest.raises(ValueError, match="undefined label"):
        a.insns()


# ---------------------------------------------------------------- bpf(2) calls


class FakeBpf(RecordingKernel):
    """RecordingKernel with programs already attached (ids) and errors by command."""

    def __init__(self, attached=(), errors=None):
        super().__init__()
        self.attached = list(attached)
        self.errors = dict(errors or {})

    def bpf(self, cmd, attr, pointers):
        self._record("bpf", cmd, bytes(attr), {off: bytes(b) for off, b in pointers.items()})
        err = self.errors.get(cmd)
        if err is not None:
            if isinstance(err, list):
                err = err.pop(0) if err else None
            if err is not None:
                if cmd == ebpf.BPF_PROG_LOAD and 32 in pointers:
                    pointers[32][:7] = b"R0 !ok\0"
                raise OSError(err, "bpf")
        if cmd == ebpf.BPF_PROG_QUERY:
            struct.pack_into("=I", attr, 24, len(self.attached))
            struct.pack_into(f"={len(self.attached)}I", pointers[16], 0, *self.attached)
        return self._new_fd(f"<bpf {cmd}>") if cmd in (5, 13) else 0


def bpf_calls(kern):
    out = []
    for c in kern.find("bpf"):
        cmd, attr = c.args[0], c.args[1]
        if cmd in (ebpf.BPF_PROG_ATTACH, ebpf.BPF_PROG_DETACH):
            out.append((ebpf._CMD_NAMES[cmd],) + struct.unpack_from("=4I", attr)[1:])
        else:
            out.append(ebpf._CMD_NAMES[cmd])
    return out


def test_first_attach():
    kern = FakeBpf()
    ebpf.attach_device_filter(kern, "/sys/fs/cgroup/c1", rules(DENY_ALL))
    assert kern.find("open")[0].args[0] == "/sys/fs/cgroup/c1"
    # prog fd 101 (the directory is 100), attach type 6, BPF_F_ALLOW_MULTI
    assert bpf_calls(kern) == ["BPF_PROG_QUERY", "BPF_PROG_LOAD", ("BPF_PROG_ATTACH", 101, 6, 2)]
    load = kern.find("bpf")[1]
    attr, ptrs = load.args[1], load.args[2]
    assert struct.unpack_from("=II", attr) == (15, len(LOAD_CTX + RET0))
    assert ptrs[8] == ebpf.encode(LOAD_CTX + RET0) and ptrs[16] == b"Apache\0"
    assert attr[48:62] == b"ocirt_devices\0"
    assert kern._fds == {}  # every fd closed


def test_update_replaces_the_one_program():
    kern = FakeBpf(attached=[42])
    ebpf.attach_device_filter(kern, "/cg", rules(DENY_ALL))
    # old fd 101 (by id), new 102, BPF_F_ALLOW_MULTI | BPF_F_REPLACE, replace_bpf_fd 101
    assert bpf_calls(kern) == [
        "BPF_PROG_QUERY",
        "BPF_PROG_GET_FD_BY_ID",
        "BPF_PROG_LOAD",
        ("BPF_PROG_ATTACH", 102, 6, 6),
    ]
    assert struct.unpack_from("=5I", kern.find("bpf")[3].args[1])[4] == 101
    assert kern._fds == {}


def test_without_replace_attach_then_detach_the_old_ones():
    kern = FakeBpf(attached=[42], errors={ebpf.BPF_PROG_ATTACH: [errno.EINVAL]})
    ebpf.attach_device_filter(kern, "/cg", rules(DENY_ALL))
    assert bpf_calls(kern)[-3:] == [
        ("BPF_PROG_ATTACH", 102, 6, 6),
        ("BPF_PROG_ATTACH", 102, 6, 2),
        ("BPF_PROG_DETACH", 101, 6, 0),
    ]
    kern = FakeBpf(attached=[1, 2])
    ebpf.attach_device_filter(kern, "/cg", rules(DENY_ALL))
    assert bpf_calls(kern)[-3:] == [
        ("BPF_PROG_ATTACH", 103, 6, 2),
        ("BPF_PROG_DETACH", 101, 6, 0),
        ("BPF_PROG_DETACH", 102, 6, 0),
    ]


def test_unreachable_old_programs_are_skipped():
    kern = FakeBpf(attached=[7], errors={ebpf.BPF_PROG_GET_FD_BY_ID: [errno.EPERM]})
    ebpf.attach_device_filter(kern, "/cg", rules(DENY_ALL))
    assert bpf_calls(kern)[-1] == ("BPF_PROG_ATTACH", 101, 6, 2)


def test_load_failure_carries_the_verifier_log(monkeypatch):
    monkeypatch.setattr(ebpf, "in_user_namespace", lambda: False)
    kern = FakeBpf(errors={ebpf.BPF_PROG_LOAD: [errno.EACCES, errno.EACCES]})
    with pytest.raises(OcirtError) as e:
        ebpf.attach_device_filter(kern, "/cg", rules(DENY_ALL))
    assert str(e.value) == (
        "cannot set the device filter (eBPF) of cgroup /cg: BPF_PROG_LOAD: "
        "permission denied; verifier log:\nR0 !ok"
    )
    loads = [c for c in kern.find("bpf") if c.args[0] == ebpf.BPF_PROG_LOAD]
    assert 32 not in loads[0].args[2] and len(loads[1].args[2][32]) == ebpf.LOG_SIZE
    assert struct.unpack_from("=II", loads[1].args[1], 24) == (1, ebpf.LOG_SIZE)
    assert kern._fds == {}


def test_attach_failure(monkeypatch):
    monkeypatch.setattr(ebpf, "in_user_namespace", lambda: False)
    kern = FakeBpf(errors={ebpf.BPF_PROG_ATTACH: [errno.EPERM]})
    with pytest.raises(
        OcirtError,
        match="^cannot set the device filter \\(eBPF\\) of cgroup /cg: "
        "BPF_PROG_ATTACH: operation not permitted$",
    ):
        ebpf.attach_device_filter(kern, "/cg", rules(DENY_ALL))


def test_failures_skipped_like_runc(monkeypatch):
    monkeypatch.setattr(ebpf, "in_user_namespace", lambda: False)

    def failing():
        return FakeBpf(errors={ebpf.BPF_PROG_QUERY: [errno.EPERM]})

    ebpf.attach_device_filter(failing(), "/cg", rules(ALLOW_ALL))  # nothing to enforce
    with pytest.raises(OcirtError):
        ebpf.attach_device_filter(
            failing(), "/cg", rules(ALLOW_ALL, {"allow": True, "type": "c", "access": "m"})
        )
    monkeypatch.setattr(ebpf, "in_user_namespace", lambda: True)
    ebpf.attach_device_filter(failing(), "/cg", rules(DENY_ALL))


def test_cgroup_apply_on_v2_attaches(tmp_path):
    cg = V2Cgroup(Layout("v2", unified=str(tmp_path)), {}, str(tmp_path / "c"))
    kern = FakeBpf()
    cg.apply({"devices": [DENY_ALL]}, kernel=kern)
    assert bpf_calls(kern)[-1] == ("BPF_PROG_ATTACH", 101, 6, 2)
    assert cg.device_rules() == rules(DENY_ALL)
    kern = FakeBpf()
    cg.apply({}, kernel=kern)  # no devices key: the filter stays
    assert kern.calls == []
    with pytest.raises(ConfigError):  # refused before any bpf(2)
        cg.apply(
            {
                "devices": [
                    DENY_ALL,
                    {"allow": True, "type": "c", "access": "r"},
                    {"allow": False, "type": "c", "major": 1, "access": "r"},
                ]
            },
            kernel=kern,
        )
    assert kern.calls == []
