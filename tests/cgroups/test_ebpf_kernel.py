"""The eBPF device filter against the real kernel (root; any host with a cgroup2 hierarchy: the
v2 VM or a v2 host, and the unified hierarchy of a hybrid host, where the filter applies too).

A shell joins the cgroup and then opens and makes device nodes: EPERM is the filter's answer.
"""

import errno
import os
import subprocess

import pytest

from ocirt.cgroups import ebpf
from ocirt.cgroups.resources import parse_device_rules
from ocirt.errors import ConfigError
from ocirt.kernel.linux import LinuxKernel

DENY_ALL = {"allow": False, "access": "rwm"}


@pytest.fixture
def kern():
    return LinuxKernel()


@pytest.fixture
def cg(make_cg):
    cg = make_cg()
    if not cg.unified:
        pytest.skip("no cgroup2 hierarchy on this host")
    return cg


def attached(kern, d) -> list:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return ebpf.query(kern, fd)
    finally:
        os.close(fd)


def set_rules(kern, d, *rules):
    ebpf.attach_device_filter(kern, d, parse_device_rules(list(rules)))


PROBES = {
    "r": "( exec 3<{p} ) 2>&1",
    "w": "( exec 3>>{p} ) 2>&1",
    "rw": "( exec 3<>{p} ) 2>&1",
    "m": "mknod {tmp}/node-$n c {majmin} 2>&1",
}


def probe(cg_dir, tmp, *cases) -> list:
    """Join the cgroup in a shell, try each (path, how); 'ok', 'EPERM' or the other error."""
    lines = [f"echo $$ > {cg_dir}/cgroup.procs || exit 99", "n=0"]
    for path, how in cases:
        st = os.stat(path)
        cmd = PROBES[how].format(p=path, tmp=tmp, majmin=f"{os.major(st.st_rdev)} {os.minor(st.st_rdev)}")
        lines.append(
            f"n=$((n+1)); out=$( {cmd} ) && echo ok || "
            f"{{ case $out in *'not permitted'*) echo EPERM;; *) echo \"$out\";; esac; }}"
        )
    out = subprocess.run(
        ["sh", "-c", "\n".join(lines)],
        stdin=subprocess.DEVNULL,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out
    return out.stdout.split("\n")[:-1]


def test_allow_list_enforced(kern, cg, tmp_path):
    set_rules(
        kern,
        cg.unified,
        DENY_ALL,
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
    )
    assert len(attached(kern, cg.unified)) == 1
    got = probe(
        cg.unified,
        tmp_path,
        ("/dev/null", "r"),
        ("/dev/null", "rw"),
        ("/dev/null", "m"),
        ("/dev/zero", "r"),
        ("/dev/zero", "w"),
        ("/dev/zero", "rw"),
        ("/dev/zero", "m"),
        ("/dev/full", "r"),
    )
    assert got == ["ok", "ok", "ok", "ok", "EPERM", "EPERM", "EPERM", "EPERM"]


def test_deny_list_enforced(kern, cg, tmp_path):
    """Allow all but writes to /dev/zero: open(O_RDWR) asks for r and w at once and is refused
    (v1's rule: a deny exception refuses an access that has any of its bits)."""
    set_rules(
        kern,
        cg.unified,
        {"allow": True, "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"},
    )
    got = probe(
        cg.unified,
        tmp_path,
        ("/dev/zero", "r"),
        ("/dev/zero", "w"),
        ("/dev/zero", "rw"),
        ("/dev/null", "rw"),
        ("/dev/zero", "m"),
    )
    assert got == ["ok", "EPERM", "EPERM", "ok", "ok"]


def test_update_replaces_the_program(kern, cg, tmp_path):
    set_rules(kern, cg.unified, DENY_ALL)
    first = attached(kern, cg.unified)
    assert probe(cg.unified, tmp_path, ("/dev/null", "r")) == ["EPERM"]
    set_rules(kern, cg.unified, DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"})
    second = attached(kern, cg.unified)
    assert len(second) == 1 and second != first
    assert probe(cg.unified, tmp_path, ("/dev/null", "r"), ("/dev/null", "w")) == ["ok", "EPERM"]


def test_extra_programs_are_removed(kern, cg, tmp_path):
    """Two device programs attached (by someone else): both replaced by ours, as runc does."""
    fd = os.open(cg.unified, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for verdict in (0, 1):
            a = ebpf.Asm()
            a.mov32(ebpf.R0, verdict)
            a.exit()
            prog = ebpf.load(kern, a.insns())
            try:
                ebpf.attach(kern, fd, prog, ebpf.BPF_F_ALLOW_MULTI)
            finally:
                os.close(prog)
        assert len(ebpf.query(kern, fd)) == 2
        assert probe(cg.unified, tmp_path, ("/dev/null", "r")) == ["EPERM"]  # one says no
        set_rules(kern, cg.unified, {"allow": True, "access": "rwm"})
        assert len(ebpf.query(kern, fd)) == 1
        assert probe(cg.unified, tmp_path, ("/dev/null", "r")) == ["ok"]
    finally:
        os.close(fd)


def test_cgroup_apply(kern, cg, tmp_path):
    """The v2 manager's apply attaches (on a hybrid host devices go to the v1 controller)."""
    if cg.kind != "v2":
        pytest.skip("the v2 manager needs a cgroup v2 host")
    cg.apply(
        {"devices": [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]},
        kernel=kern,
    )
    assert len(attached(kern, cg.unified)) == 1
    assert probe(cg.unified, tmp_path, ("/dev/null", "rw"), ("/dev/zero", "r")) == ["ok", "EPERM"]
    cg.apply({"devices": [DENY_ALL, {"allow": True, "type": "c", "access": "r"}]}, kernel=kern)
    assert len(attached(kern, cg.unified)) == 1
    assert probe(cg.unified, tmp_path, ("/dev/null", "w"), ("/dev/zero", "r")) == ["EPERM", "ok"]
    with pytest.raises(ConfigError):
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
    assert probe(cg.unified, tmp_path, ("/dev/zero", "r")) == ["ok"]  # unchanged


def test_verifier_log(kern):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    a = ebpf.Asm()
    a.ldxw(ebpf.R2, ebpf.R1, 12)  # past the end of struct bpf_cgroup_dev_ctx
    a.mov32(ebpf.R0, 1)
    a.exit()
    with pytest.raises(ebpf.BpfError) as e:
        ebpf.load(kern, a.insns())
    assert e.value.errno == errno.EACCES and e.value.cmd == "BPF_PROG_LOAD"
    assert "invalid bpf_context access" in e.value.log


def test_query_of_a_file_fails(kern):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        with pytest.raises(ebpf.BpfError) as e:
            ebpf.query(kern, fd)
        assert e.value.cmd == "BPF_PROG_QUERY"
    finally:
        os.close(fd)
