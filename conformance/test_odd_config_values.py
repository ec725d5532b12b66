"""Configs the schema takes whose values are odd: numbers at the top of their type, names in a
second spelling, mappings the setup cannot use. Each either runs as the spec says or fails with
one line (ocirt: naming the field) and leaves nothing behind; found by a fuzzer."""

import json
import os
import shutil
import socket
import tempfile

import pytest
from runtime import assert_failed_cleanly, cgroup_dirs, ok, one_line, remove_cgroup_trees, sh

RLIM_INFINITY = 2**64 - 1  # rlim_t's largest value, the kernel's "unlimited"


@pytest.mark.parametrize(
    "soft,hard,want",
    [
        (RLIM_INFINITY, RLIM_INFINITY, ["unlimited", "unlimited"]),
        (2**63, RLIM_INFINITY, [str(2**63), "unlimited"]),
    ],
)
def test_rlimit_in_the_upper_half_of_uint64(run_in, soft, hard, want):
    rlimits = [{"type": "RLIMIT_CORE", "soft": soft, "hard": hard}]
    out = ok(
        run_in(sh("grep '^Max core file size' /proc/self/limits"), tmp=False, process={"rlimits": rlimits})
    )
    assert out[26:].split()[:2] == want, out


def test_exec_rlimit_unlimited(rt, started, tmp_path):
    b = started()
    path = tmp_path / "process.json"
    rlimits = [{"type": "RLIMIT_CORE", "soft": RLIM_INFINITY, "hard": RLIM_INFINITY}]
    doc = {
        "args": ["/bin/sh", "-c", "ulimit -c"],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0},
        "rlimits": rlimits,
    }
    path.write_text(json.dumps(doc))
    assert ok(rt("exec", "--process", str(path), b.id)).strip() == "unlimited"


def test_umask_beyond_a_c_int(run_in):
    """umask(2) keeps the permission bits of the uint32 and drops the rest."""
    user = {"uid": 0, "gid": 0, "umask": 4294967295}
    assert ok(run_in(["sh", "-c", "umask"], tmp=False, process={"user": user})).strip() == "0777"


@pytest.mark.parametrize(
    "key,path,namespace",
    [
        ("net/ipv4/ip_forward", "net/ipv4/ip_forward", "network"),
        ("kernel/shmmni", "kernel/shmmni", "ipc"),
    ],
)
def test_sysctl_named_with_slashes(run_in, key, path, namespace):
    """sysctl(8)'s other spelling of a name, as runc takes it."""
    value = "1" if namespace == "network" else "1000"
    out = ok(run_in(["cat", f"/proc/sys/{path}"], tmp=False, linux={"sysctl": {key: value}}))
    assert out.strip() == value


@pytest.mark.parametrize("key", ["net/../kernel/hostname", "net/ipv4/../../kernel/domainname"])
def test_sysctl_slashes_stepping_out_refused(rt, make_bundle, key):
    b = make_bundle(["true"], tmp=False, linux={"sysctl": {key: "x"}})
    p = rt.run(b.id, b)
    assert_failed_cleanly(rt, b, p, "/linux/sysctl/" + key.replace("/", "~1"))


USERNS = {"type": "user"}


@pytest.mark.parametrize(
    "uids,gids,pointer",
    [
        (
            [{"containerID": 1, "hostID": 100000, "size": 10}],
            [{"containerID": 0, "hostID": 100000, "size": 10}],
            "/linux/uidMappings",
        ),
        (
            [{"containerID": 0, "hostID": 100000, "size": 10}],
            [{"containerID": 1, "hostID": 100000, "size": 10}],
            "/linux/gidMappings",
        ),
    ],
    ids=["uid-0", "gid-0"],
)
def test_user_namespace_without_its_root_mapped(rt, make_bundle, uids, gids, pointer):
    def mutate(c):
        c["linux"]["namespaces"].append(USERNS)
        c["linux"]["uidMappings"], c["linux"]["gidMappings"] = uids, gids

    b = make_bundle(["true"], tmp=False, mutate=mutate)
    p = rt.run(b.id, b)
    assert_failed_cleanly(rt, b, p, pointer)


@pytest.mark.parametrize("secs", [2**62, -(2**62)])
def test_time_offset_beyond_the_kernel(rt, make_bundle, secs):
    def mutate(c):
        c["linux"]["namespaces"].append({"type": "time"})
        c["linux"]["timeOffsets"] = {"monotonic": {"secs": secs, "nanosecs": 0}}

    b = make_bundle(["true"], tmp=False, mutate=mutate)
    p = rt.run(b.id, b)
    assert_failed_cleanly(rt, b, p, "/linux/timeOffsets")


def test_unknown_effective_capability_is_left_out(run_in):
    """config.md: a capability that cannot be mapped is a warning, not a failure; the check
    that effective is within permitted is for the ones that can."""
    caps = {
        "effective": ["CAP_NO_SUCH_THING", "CAP_KILL"],
        "permitted": ["CAP_KILL"],
        "bounding": ["CAP_KILL"],
    }
    out = ok(run_in(sh("grep ^CapEff /proc/self/status"), tmp=False, process={"capabilities": caps}))
    assert int(out.split()[1], 16) == 1 << 5  # CAP_KILL


def exec_process(rt, b, tmp_path, **fields):
    path = tmp_path / "process.json"
    doc = {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, **fields}
    path.write_text(json.dumps(doc))
    return rt("exec", "--process", str(path), b.id)


@pytest.mark.runc_deviates("runc 1.1.5 sets both rlimits of an exec's process, the last one winning")
def test_exec_duplicate_rlimit_refused(rt, started, tmp_path):
    b = started()
    rlimits = [{"type": "RLIMIT_CORE", "soft": 2, "hard": 2}, {"type": "RLIMIT_CORE", "soft": 1, "hard": 1}]
    p = exec_process(rt, b, tmp_path, rlimits=rlimits)
    assert p.returncode != 0
    error = one_line(p.stderr)
    if rt.is_ocirt:
        assert "process.json: /rlimits/1: " in error, error


@pytest.mark.runc_deviates("runc 1.1.5 leaves an exec's oom_score_adj as it is, whatever oomScoreAdj says")
def test_exec_oom_score_adj_the_kernel_refuses(rt, started, tmp_path):
    b = started()
    p = exec_process(rt, b, tmp_path, oomScoreAdj=1001)
    assert p.returncode != 0
    error = one_line(p.stderr)
    if rt.is_ocirt:
        assert "/oomScoreAdj: " in error and "/process/" not in error, error


IDS = [{"containerID": 0, "hostID": 100000, "size": 65536}]


@pytest.mark.parametrize(
    "user,pointer",
    [
        ({"uid": 70000, "gid": 0}, "/process/user/uid"),
        ({"uid": 0, "gid": 70000}, "/process/user/gid"),
        ({"uid": 0, "gid": 0, "additionalGids": [70000]}, "/process/user/additionalGids"),
    ],
    ids=["uid", "gid", "additional-gid"],
)
def test_user_not_mapped_in_the_user_namespace(rt, make_bundle, user, pointer):
    def mutate(c):
        c["linux"]["namespaces"].append(USERNS)
        c["linux"]["uidMappings"] = c["linux"]["gidMappings"] = IDS
        c["process"]["user"] = user

    b = make_bundle(["true"], tmp=False, mutate=mutate)
    p = rt.run(b.id, b)
    assert_failed_cleanly(rt, b, p, pointer)


def test_device_access_with_a_letter_twice(run_in):
    """access is a composition of r, w and m: "rrrw" allows writing (the kernel reads three
    letters of a rule, so a runtime that passed it on as given would allow reading only)."""
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rrrw"},
    ]
    linux = {
        "devices": [{"path": "/dev/k", "type": "c", "major": 1, "minor": 11}],
        "resources": {"devices": rules},
    }
    out = ok(run_in(sh("echo conformance-test > /dev/k && echo written"), linux=linux))
    assert out.strip() == "written"


def test_mount_over_a_default_device(rt, make_bundle):
    """A file the config mounts on /dev/zero stays there: the default device does not replace it.
    (Not /dev/null: runc 1.1.5 takes any stdio file for /dev/null then, and reopens it.)"""

    def mutate(c):
        c["mounts"].append(
            {"destination": "/dev/zero", "type": "bind", "source": "file", "options": ["bind"]}
        )

    b = make_bundle(["cat", "/dev/zero"], tmp=False, mutate=mutate)
    with open(os.path.join(b.path, "file"), "w") as f:
        f.write("from the mount\n")
    assert ok(rt.run(b.id, b)) == "from the mount\n"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            "a\nb", id="newline", marks=pytest.mark.runc_deviates("runc 1.1.5 prints a warning line first")
        ),
        pytest.param("/".join(["b" * 200] * 25), id="path-too-long"),
    ],
)
def test_cgroups_path_the_kernel_refuses(rt, make_bundle, name):
    b = make_bundle(["true"], tmp=False, cgroups=False)
    b.config["linux"]["cgroupsPath"] = f"/ocirt-conformance/{b.id}/{name}"
    b.save()
    p = rt.run(b.id, b)
    try:
        assert_failed_cleanly(rt, b, p, "/linux/cgroupsPath")
        assert cgroup_dirs(f"/ocirt-conformance/{b.id}") == []
    finally:  # (runc, xfail here, leaves its cpuset directory for the path)
        remove_cgroup_trees(cgroup_dirs(f"/ocirt-conformance/{b.id}"))


@pytest.mark.parametrize("key", ["uid", "gid"])
@pytest.mark.runc_deviates("runc 1.1.5 passes (uid_t)-1 to chown, which leaves the device root's")
def test_device_owner_minus_one_refused(rt, make_bundle, key):
    dev = {"path": "/dev/x", "type": "c", "major": 1, "minor": 3, key: 4294967295}
    b = make_bundle(["true"], tmp=False, linux={"devices": [dev]})
    p = rt.run(b.id, b)
    assert_failed_cleanly(rt, b, p, f"/linux/devices/0/{key}")


@pytest.mark.parametrize("key", ["height", "width"])
@pytest.mark.runc_deviates("runc 1.1.5 casts the size to 16 bits: the terminal gets another size")
def test_console_size_beyond_a_terminal(rt, make_bundle, key):
    d = tempfile.mkdtemp(prefix="cs-", dir="/tmp")  # sun_path is short: not under tmp_path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listening:
            listening.bind(os.path.join(d, "s"))
            listening.listen(1)
            size = {"height": 24, "width": 80, key: 65536}
            b = make_bundle(["true"], tmp=False, process={"terminal": True, "consoleSize": size})
            p = rt.create(b.id, b, extra=("--console-socket", os.path.join(d, "s")))
            assert_failed_cleanly(rt, b, p, f"/process/consoleSize/{key}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_seccomp_denying_umask_without_no_new_privileges(run_in):
    """The filter goes in before the identity switch then; the umask is set before it."""
    rule = {"names": ["umask"], "action": "SCMP_ACT_ERRNO"}
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
    user = {"uid": 0, "gid": 0, "umask": 0o27}
    proc = {"noNewPrivileges": False, "user": user}
    assert ok(
        run_in(
            ["sh", "-c", "grep ^Umask /proc/self/status"], tmp=False, process=proc, linux={"seccomp": seccomp}
        )
    ).split() == ["Umask:", "0027"]


@pytest.mark.parametrize("name", ["cap_kill", "KILL", "", "CAP_kill"])
def test_capability_in_another_spelling_is_left_out(run_in, name):
    """config.md: a value that cannot be mapped to the kernel is a warning, not a failure,
    whatever its spelling (ocirt's schema once refused names not of the form CAP_[A-Z0-9_]+)."""
    caps = {"effective": [name, "CAP_KILL"], "permitted": [name, "CAP_KILL"], "bounding": ["CAP_KILL"]}
    out = ok(run_in(sh("grep ^CapEff /proc/self/status"), tmp=False, process={"capabilities": caps}))
    assert int(out.split()[1], 16) == 1 << 5  # CAP_KILL


def test_hook_timeout_of_months(run_in):
    """A timeout longer than poll(2) can wait in one call (~24.8 days in milliseconds) is a
    timeout all the same: the hook runs and the container with it."""
    hooks = {"createRuntime": [{"path": "/bin/true", "timeout": 10_000_000}]}
    assert ok(run_in(["true"], tmp=False, hooks=hooks)) == ""


@pytest.mark.parametrize("names", [["sendto"], ["sendmsg"], ["socket", "connect", "sendto", "sendmsg"]])
def test_seccomp_denying_network_sends(run_in, names):
    """A profile without networking: the runtime's own last words before the program runs
    must not need the calls it denies."""
    rule = {"names": names, "action": "SCMP_ACT_ERRNO"}
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
    assert ok(run_in(["echo", "up"], tmp=False, linux={"seccomp": seccomp})).strip() == "up"


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_seccomp_denying_rt_sigaction(run_in, no_new_privileges):
    """A profile that denies changing signal actions: the runtime changes none after the filter
    (the program still starts with SIGPIPE at its default action)."""
    rule = {"names": ["rt_sigaction"], "action": "SCMP_ACT_ERRNO"}
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
    proc = {"noNewPrivileges": no_new_privileges}
    out = run_in(
        ["grep", "^SigIgn", "/proc/self/status"], tmp=False, process=proc, linux={"seccomp": seccomp}
    )
    assert ok(out).split() == ["SigIgn:", "0000000000000000"]
