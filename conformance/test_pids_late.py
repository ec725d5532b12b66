"""A pids limit of 1 (or 0) where the runtime makes the init from a process already in the
container's cgroup: a new user or time namespace, or a pid namespace joined (config-linux.md
"PIDs", "Namespaces"). A container whose only process is its init fits a limit of 1: the
runtime's own processes must not count against it (runc 1.1.5 writes the limits once its init
is set up), and the limit holds from the container's first instruction on.

A limit counts forks only: a process moved into the cgroup (exec's) gets in past it. 0 is a
limit too ("SHOULD be treated as such"); runc 1.1.5 reads it as none.
"""

import os

import pytest
import test_systemd
from runtime import CgroupLayout, ok, read_text, sh

USERNS_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]
# a builtin, then a fork: the shell ends at the refused one ("can't fork")
FORKS = sh("echo started; if /bin/true; then echo forked; fi")


def userns(c):
    c["linux"]["namespaces"].append({"type": "user"})
    c["linux"]["uidMappings"] = USERNS_MAP
    c["linux"]["gidMappings"] = USERNS_MAP


def timens(c):
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("no time namespaces on this kernel")
    c["linux"]["namespaces"].append({"type": "time"})


NO_TIMENS = 'runc 1.1.5 has no time namespace: \'namespace {"time" ""} does not exist\''
HOW = [
    pytest.param("user", id="user"),
    pytest.param("time", id="time", marks=pytest.mark.runc_deviates(NO_TIMENS)),
    pytest.param("pid", id="joined-pid"),
]


@pytest.fixture(scope="module")
def layout():
    lay = CgroupLayout()
    if not lay.has("pids"):
        pytest.skip("no pids controller")
    return lay


@pytest.fixture
def with_stage1(rt, make_bundle):
    """with_stage1(how) -> a mutate() giving the container what makes its runtime fork the init
    from the cgroup: a user namespace, a time namespace, or another container's pid namespace."""

    def make(how):
        if how == "user":
            return userns
        if how == "time":
            return timens
        other = make_bundle(["sleep", "1000"])
        ok(rt.create(other.id, other))
        ok(rt.start(other.id))
        path = f"/proc/{rt.state_json(other.id)['pid']}/ns/pid"

        def join(c):
            c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
            c["linux"]["namespaces"].append({"type": "pid", "path": path})

        return join

    return make


def pids_file(layout, pid, name):
    return read_text(os.path.join(layout.host_dir(pid, "pids"), name)).strip()


@pytest.mark.parametrize("how", HOW)
def test_limit_one_runs_the_init_alone(layout, run_in, with_stage1, how):
    p = run_in(FORKS, mutate=with_stage1(how), linux={"resources": {"pids": {"limit": 1}}})
    assert p.stdout.split() == ["started"], (p.returncode, p.stdout, p.stderr)
    assert p.returncode != 0 and "can't fork" in p.stderr, (p.returncode, p.stderr)


@pytest.mark.parametrize("how", HOW)
def test_limit_one_is_set_once_created(layout, rt, make_bundle, with_stage1, how):
    b = make_bundle(["sleep", "1000"], mutate=with_stage1(how), linux={"resources": {"pids": {"limit": 1}}})
    ok(rt.create(b.id, b))
    pid = rt.state_json(b.id)["pid"]
    assert pids_file(layout, pid, "pids.max") == "1"
    ok(rt.start(b.id))
    assert pids_file(layout, pid, "pids.max") == "1"
    assert pids_file(layout, pid, "pids.current") == "1"  # the init alone (its program now)


def test_unified_pids_max_one_with_a_user_namespace(layout, run_in):
    if not layout.is_v2:
        pytest.skip("`unified` pids.max needs pids on cgroup v2 (this host binds it to v1)")
    p = run_in(FORKS, mutate=userns, linux={"resources": {"unified": {"pids.max": "1"}}})
    assert p.stdout.split() == ["started"] and "can't fork" in p.stderr, (p.returncode, p.stdout, p.stderr)


@pytest.mark.runc_deviates(
    "runc 1.1.5's exec process (runc init, a Go program) is in the cgroup before it has made "
    "all its threads, and now and then one it cannot make aborts it (pthread_create failed)",
    strict=False,
)
@pytest.mark.parametrize("how", HOW)
def test_exec_into_a_full_container_gets_in_and_cannot_fork(layout, rt, make_bundle, with_stage1, how):
    # (a time namespace: ocirt's exec forks its process from a stage 1 that joined it, and the
    # process is moved in, not forked in the cgroup)
    b = make_bundle(["sleep", "1000"], mutate=with_stage1(how), linux={"resources": {"pids": {"limit": 1}}})
    ok(rt.create(b.id, b))
    ok(rt.start(b.id))
    pid = rt.state_json(b.id)["pid"]
    assert ok(rt("exec", b.id, "sh", "-c", "echo in")) == "in\n"  # (a builtin: no fork)
    p = rt("exec", b.id, *FORKS)
    assert p.stdout.split() == ["started"] and "can't fork" in p.stderr, (p.returncode, p.stdout, p.stderr)
    assert pids_file(layout, pid, "pids.max") == "1"


@pytest.mark.runc_deviates(
    "runc 1.1.5 reads pids.limit 0 as no limit (pids.max stays max); config-linux.md: 0 is a "
    "valid limit and SHOULD be treated as such"
)
@pytest.mark.parametrize("mutate", [userns, None], ids=["user", "no-userns"])
def test_limit_zero_is_a_limit(layout, rt, make_bundle, run_in, mutate):
    b = make_bundle(["sleep", "1000"], mutate=mutate, linux={"resources": {"pids": {"limit": 0}}})
    ok(rt.create(b.id, b))
    assert pids_file(layout, rt.state_json(b.id)["pid"], "pids.max") == "0"
    p = run_in(FORKS, mutate=mutate, linux={"resources": {"pids": {"limit": 0}}})
    assert p.stdout.split() == ["started"] and "can't fork" in p.stderr, (p.returncode, p.stdout, p.stderr)


# ---- --systemd-cgroup: the unit starts with stage 1 in it, its TasksMax set once the init is forked


host = test_systemd.host
srt = test_systemd.srt


def test_systemd_unit_with_limit_one_and_a_user_namespace(host, srt, make_bundle):
    def mutate(c):
        userns(c)
        # A new proc in a user namespace is refused in the private systemd's namespaces (its
        # /proc has read-only mounts over parts of it): its /proc bound instead.
        c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/proc"]
        c["mounts"].insert(
            0, {"destination": "/proc", "type": "bind", "source": "/proc", "options": ["rbind"]}
        )
        c["linux"]["maskedPaths"] = c["linux"]["readonlyPaths"] = []

    b = test_systemd.sd_bundle(
        make_bundle, ["sleep", "300"], mutate=mutate, linux={"resources": {"pids": {"limit": 1}}}
    )
    test_systemd.made(srt, srt.create(b.id, b))
    unit = test_systemd.unit_of(b)
    assert test_systemd.show(host, unit, "TasksMax")["TasksMax"] == "1"
    assert test_systemd.cg_file(host, unit, "pids", "pids.max") == "1"
    ok(srt.start(b.id))
    assert test_systemd.cg_file(host, unit, "pids", "pids.current") == "1"
    ok(srt.delete(b.id, force=True))
    test_systemd.assert_gone(host, unit)
