"""Scheduling and execution attributes: process.scheduler, process.ioPriority,
process.execCPUAffinity (config.md "Linux Process"), linux.personality, linux.memoryPolicy and
linux.intelRdt (config-linux.md). Read back from the host's /proc (and ioprio_get(2)) on the
container's processes."""

import ctypes
import json
import os
import platform

import pytest
from runtime import assert_failed_cleanly, ok, one_line, read_text, sh

SLEEP = ["sleep", "1000"]
PRE_12 = "runc 1.1.5 predates process.{} (added in runc 1.2): it ignores it"
RT_GROUP_SCHED = os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us")
SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE = 0, 1, 2, 3, 5


# ---- reading a process from the host ---------------------------------------------------------


def stat_fields(pid):
    """/proc/PID/stat as a list indexed like proc(5) (1-based: [18] priority, [19] nice,
    [41] policy)."""
    text = read_text(f"/proc/{pid}/stat")
    rest = text[text.rindex(")") + 2 :].split()
    return [None, str(pid), "comm"] + rest


def sched_of(pid):
    f = stat_fields(pid)
    return {"priority": int(f[18]), "nice": int(f[19]), "policy": int(f[41])}


_IOPRIO_GET = {"x86_64": 252, "aarch64": 31}


def ioprio_of(pid):
    """(class, level) from ioprio_get(IOPRIO_WHO_PROCESS, pid): /proc does not show it."""
    libc = ctypes.CDLL(None, use_errno=True)
    value = libc.syscall(_IOPRIO_GET[platform.machine()], 1, pid)
    if value < 0:
        raise OSError(ctypes.get_errno(), f"ioprio_get {pid}")
    return value >> 13, value & 0x1FFF


def status_field(pid, name):
    for line in read_text(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    raise AssertionError(f"{name} not in /proc/{pid}/status")


def personality_of(pid):
    return int(read_text(f"/proc/{pid}/personality").strip(), 16)


def mempolicies_of(pid):
    """The policy column of /proc/PID/numa_maps (a VMA without its own shows the task's)."""
    return {line.split()[1] for line in read_text(f"/proc/{pid}/numa_maps").splitlines() if line}


def children_of(pid):
    return [int(c) for c in read_text(f"/proc/{pid}/task/{pid}/children", "").split()]


def host_cpus():
    return sorted(os.sched_getaffinity(0))


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def running(rt, started):
    """running(args=SLEEP, **make_bundle_kw) -> (bundle, init pid) of a started container."""

    def start(args=SLEEP, **kw):
        b = started(args, **kw)
        rt.wait_status(b.id, "running")
        return b, rt.state_json(b.id)["pid"]

    return start


@pytest.fixture
def rt_bundle(make_bundle, new_id, env):
    """A bundle whose cgroup can run an RT policy: with RT group scheduling (cgroup v1
    CONFIG_RT_GROUP_SCHED) a new cpu cgroup has no RT runtime, and a nested one could only get
    what its parent has: so the cgroup is right under the root and gets realtimeRuntime."""

    def make(args=SLEEP, **kw):
        cid = new_id()
        linux = {}
        if RT_GROUP_SCHED:
            linux = {"cgroupsPath": f"/{cid}", "resources": {"cpu": {"realtimeRuntime": 20000}}}
            env.cgroup_paths.append(f"/{cid}")
        return make_bundle(args, cid=cid, cgroups=not RT_GROUP_SCHED, linux=linux, **kw)

    return make


def process(**fields):
    def mutate(c):
        c["process"].update(fields)

    return mutate


def linux(**fields):
    def mutate(c):
        c["linux"].update(fields)

    return mutate


# ---- process.scheduler -----------------------------------------------------------------------


@pytest.mark.runc_deviates(PRE_12.format("scheduler"))
def test_scheduler_batch_with_nice(running):
    _, pid = running(mutate=process(scheduler={"policy": "SCHED_BATCH", "nice": 7}))
    assert sched_of(pid) == {"policy": SCHED_BATCH, "nice": 7, "priority": 27}


@pytest.mark.runc_deviates(PRE_12.format("scheduler"))
def test_scheduler_idle(running):
    _, pid = running(mutate=process(scheduler={"policy": "SCHED_IDLE"}))
    assert sched_of(pid)["policy"] == SCHED_IDLE


@pytest.mark.runc_deviates(PRE_12.format("scheduler"))
def test_scheduler_negative_nice_needs_the_runtimes_privilege(running):
    """A nice below 0 needs CAP_SYS_NICE: set before the process drops to uid 1000."""
    _, pid = running(
        mutate=lambda c: (
            process(scheduler={"policy": "SCHED_OTHER", "nice": -5})(c),
            c["process"].__setitem__("user", {"uid": 1000, "gid": 1000}),
        )
    )
    assert sched_of(pid)["nice"] == -5
    assert status_field(pid, "Uid").split()[0] == "1000"


@pytest.mark.runc_deviates(PRE_12.format("scheduler"))
@pytest.mark.parametrize("policy,value", [("SCHED_FIFO", SCHED_FIFO), ("SCHED_RR", SCHED_RR)])
def test_scheduler_realtime(rt, rt_bundle, policy, value):
    b = rt_bundle(mutate=process(scheduler={"policy": policy, "priority": 12}))
    assert rt.create(b.id, b).returncode == 0
    assert rt.start(b.id).returncode == 0
    pid = rt.state_json(b.id)["pid"]
    # proc(5): for an RT policy, priority is -1 - the static priority
    assert sched_of(pid) == {"policy": value, "priority": -13, "nice": 0}


@pytest.mark.runc_deviates(PRE_12.format("scheduler"))
def test_scheduler_reset_on_fork(running):
    """SCHED_FLAG_RESET_ON_FORK: the init has a negative nice, what it forks gets 0 back
    (sched(7): an RT policy would be reset to SCHED_OTHER, a negative nice to 0)."""
    _, pid = running(
        sh("sleep 1000 & exec sleep 1001"),
        mutate=process(
            scheduler={"policy": "SCHED_OTHER", "nice": -4, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
        ),
    )
    # the shell forked the background sleep before exec'ing: it is the init's child
    kids = children_of(pid)
    assert len(kids) == 1
    assert sched_of(pid) == {"policy": SCHED_OTHER, "nice": -4, "priority": 16}
    assert sched_of(kids[0]) == {"policy": SCHED_OTHER, "nice": 0, "priority": 20}


@pytest.mark.skipif(not RT_GROUP_SCHED, reason="no RT group scheduling on this host")
@pytest.mark.runc_deviates(PRE_12.format("scheduler"))
def test_scheduler_refused_by_the_kernel_fails_cleanly(rt, make_bundle):
    """An RT policy in a cpu cgroup without RT runtime: sched_setattr fails in the init, and create
    fails with one line naming the field, leaving nothing."""
    b = make_bundle(["true"], mutate=process(scheduler={"policy": "SCHED_FIFO", "priority": 1}))
    p = rt.create(b.id, b)
    assert_failed_cleanly(rt, b, p, "/process/scheduler")
    assert "realtimeRuntime" in one_line(p.stderr) or rt.is_runc


# ---- process.ioPriority ----------------------------------------------------------------------


@pytest.mark.runc_deviates(PRE_12.format("ioPriority"))
@pytest.mark.parametrize(
    "cls,value,level", [("IOPRIO_CLASS_BE", 2, 5), ("IOPRIO_CLASS_IDLE", 3, 0), ("IOPRIO_CLASS_RT", 1, 3)]
)
def test_io_priority(running, cls, value, level):
    _, pid = running(mutate=process(ioPriority={"class": cls, "priority": level}))
    assert ioprio_of(pid) == (value, level)


@pytest.mark.runc_deviates(PRE_12.format("ioPriority"))
def test_io_priority_reaches_the_inits_children_and_not_the_caller(running):
    """config.md: applied to all the container's processes. Set on the init (IOPRIO_WHO_PROCESS)
    and inherited by what it forks; the runtime's caller (this test, same process group as a
    non-terminal init) keeps its own."""
    mine = ioprio_of(os.getpid())
    _, pid = running(
        sh("sleep 1000 & exec sleep 1001"),
        mutate=process(ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 6}),
    )
    kids = children_of(pid)
    assert len(kids) == 1
    assert ioprio_of(kids[0]) == (2, 6)
    assert ioprio_of(os.getpid()) == mine


# ---- linux.personality -----------------------------------------------------------------------


@pytest.mark.skipif(platform.machine() != "x86_64", reason="LINUX32 shows i686 on x86_64")
@pytest.mark.runc_deviates("runc 1.1.5 predates linux.personality (added in runc 1.2): it ignores it")
def test_personality_linux32(run_in):
    out = ok(
        run_in(sh("uname -m; cat /proc/self/personality"), mutate=linux(personality={"domain": "LINUX32"}))
    )
    assert out.split() == ["i686", "00000008"]


def test_personality_linux(running):
    _, pid = running(mutate=linux(personality={"domain": "LINUX"}))
    assert personality_of(pid) == 0


# ---- linux.memoryPolicy ----------------------------------------------------------------------

NODES = read_text("/sys/devices/system/node/online", "").strip()
needs_numa = pytest.mark.skipif(not NODES, reason="no NUMA support on this host")
MPOL = "runc 1.1.5 predates linux.memoryPolicy (runtime-spec 1.3): it ignores it"


@needs_numa
@pytest.mark.runc_deviates(MPOL)
@pytest.mark.parametrize(
    "policy,shown",
    [
        ({"mode": "MPOL_INTERLEAVE", "nodes": NODES}, f"interleave:{NODES}"),
        ({"mode": "MPOL_BIND", "nodes": NODES}, f"bind:{NODES}"),
        (
            {"mode": "MPOL_PREFERRED", "nodes": NODES.split(",")[0].split("-")[0]},
            f"prefer:{NODES.split(',')[0].split('-')[0]}",
        ),
        ({"mode": "MPOL_BIND", "nodes": NODES, "flags": ["MPOL_F_STATIC_NODES"]}, f"bind=static:{NODES}"),
        ({"mode": "MPOL_LOCAL"}, "local"),
    ],
)
def test_memory_policy(running, policy, shown):
    _, pid = running(mutate=linux(memoryPolicy=policy))
    assert mempolicies_of(pid) == {shown}


@needs_numa
@pytest.mark.runc_deviates(MPOL)
def test_memory_policy_of_exec(rt, running):
    """An exec'd process gets the container's memory policy too (recorded at create)."""
    b, _ = running(mutate=linux(memoryPolicy={"mode": "MPOL_INTERLEAVE", "nodes": NODES}))
    out = rt("exec", b.id, "sh", "-c", "grep -v '^$' /proc/self/numa_maps | head -1")
    assert out.returncode == 0, out.stderr
    assert f" interleave:{NODES} " in out.stdout


@needs_numa
def test_memory_policy_default(running):
    _, pid = running(mutate=linux(memoryPolicy={"mode": "MPOL_DEFAULT"}))
    assert mempolicies_of(pid) == {"default"}


# ---- process.execCPUAffinity -----------------------------------------------------------------


def test_exec_cpu_affinity_not_for_the_init(running):
    """config.md: "not applicable to the container's init process"."""
    cpus = host_cpus()
    _, pid = running(mutate=process(execCPUAffinity={"initial": str(cpus[0]), "final": str(cpus[-1])}))
    assert status_field(pid, "Cpus_allowed_list") == read_text("/sys/devices/system/cpu/online").strip()


def exec_detached(rt, cid, tmp_path, proc):
    """`exec --process` of `proc` (sleep 1000), detached; its pid."""
    pj, pid_file = tmp_path / "process.json", tmp_path / "exec.pid"
    pj.write_text(json.dumps(proc))
    p = rt("exec", "--process", str(pj), "--detach", "--pid-file", str(pid_file), cid)
    return p, (int(pid_file.read_text()) if p.returncode == 0 else None)


def exec_process(b, **fields):
    return {**b.config["process"], "args": SLEEP, **fields}


@pytest.mark.skipif(len(host_cpus()) < 2, reason="needs 2 CPUs")
@pytest.mark.runc_deviates(PRE_12.format("execCPUAffinity"))
def test_exec_cpu_affinity_final(rt, running, tmp_path):
    b, _ = running()
    cpus = host_cpus()
    p, pid = exec_detached(
        rt, b.id, tmp_path, exec_process(b, execCPUAffinity={"initial": str(cpus[0]), "final": str(cpus[-1])})
    )
    assert p.returncode == 0, p.stderr
    assert status_field(pid, "Cpus_allowed_list") == str(cpus[-1])


@pytest.mark.runc_deviates(PRE_12.format("scheduler"))
def test_exec_scheduler_and_io_priority(rt, running, tmp_path):
    """process.json of `exec` has its own scheduler and ioPriority; the init keeps its own."""
    b, init = running()
    p, pid = exec_detached(
        rt,
        b.id,
        tmp_path,
        exec_process(
            b,
            scheduler={"policy": "SCHED_BATCH", "nice": 4},
            ioPriority={"class": "IOPRIO_CLASS_IDLE", "priority": 0},
        ),
    )
    assert p.returncode == 0, p.stderr
    assert sched_of(pid) == {"policy": SCHED_BATCH, "nice": 4, "priority": 24}
    assert ioprio_of(pid) == (3, 0)
    assert sched_of(init)["policy"] == SCHED_OTHER


@pytest.mark.skipif(platform.machine() != "x86_64", reason="LINUX32 is an x86_64 domain here")
@pytest.mark.runc_deviates("runc 1.1.5 predates linux.personality (added in runc 1.2): it ignores it")
def test_exec_gets_the_containers_personality(rt, running, tmp_path):
    b, init = running(mutate=linux(personality={"domain": "LINUX32"}))
    p, pid = exec_detached(rt, b.id, tmp_path, exec_process(b))
    assert p.returncode == 0, p.stderr
    assert personality_of(init) == personality_of(pid) == 8


@pytest.mark.runc_deviates(
    "runc 1.1.5 predates process.scheduler, ioPriority and execCPUAffinity "
    "(added in runc 1.2): it ignores them, exec succeeds"
)
@pytest.mark.parametrize(
    "fields,pointer",
    [
        ({"scheduler": {"policy": "SCHED_BOGUS"}}, "/scheduler/policy"),
        ({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9}}, "/ioPriority/priority"),
        ({"execCPUAffinity": {"final": "1-0"}}, "/execCPUAffinity/final"),
    ],
)
def test_exec_invalid_process_json_fails(rt, running, tmp_path, fields, pointer):
    b, init = running()
    p, _ = exec_detached(rt, b.id, tmp_path, exec_process(b, **fields))
    assert p.returncode != 0, "exec ran with an invalid process.json"
    line = one_line(p.stderr)
    assert pointer in line or rt.is_runc, line
    assert children_of(init) == []


# ---- invalid configs: create fails, names the field, leaves nothing ---------------------------

INVALID = [
    ("policy-unknown", process(scheduler={"policy": "SCHED_BOGUS"}), "/process/scheduler/policy"),
    ("fifo-priority-0", process(scheduler={"policy": "SCHED_FIFO"}), "/process/scheduler/priority"),
    (
        "other-priority",
        process(scheduler={"policy": "SCHED_OTHER", "priority": 3}),
        "/process/scheduler/priority",
    ),
    ("nice-20", process(scheduler={"policy": "SCHED_OTHER", "nice": 20}), "/process/scheduler/nice"),
    (
        "deadline-runtime",
        process(scheduler={"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 1000000}),
        "/process/scheduler/runtime",
    ),
    (
        "flag-unknown",
        process(scheduler={"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_X"]}),
        "/process/scheduler/flags/0",
    ),
    (
        "ioprio-level-8",
        process(ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 8}),
        "/process/ioPriority/priority",
    ),
    (
        "ioprio-class",
        process(ioPriority={"class": "IOPRIO_CLASS_NONE", "priority": 0}),
        "/process/ioPriority/class",
    ),
    ("affinity-bad-list", process(execCPUAffinity={"initial": "0-"}), "/process/execCPUAffinity/initial"),
    ("affinity-cpu-absent", process(execCPUAffinity={"final": "4095"}), "/process/execCPUAffinity/final"),
    ("personality-domain", linux(personality={"domain": "LINUX64"}), "/linux/personality/domain"),
    (
        "personality-flag",
        linux(personality={"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}),
        "/linux/personality/flags/0",
    ),
    ("mpol-mode", linux(memoryPolicy={"mode": "MPOL_X"}), "/linux/memoryPolicy/mode"),
    ("mpol-bind-no-nodes", linux(memoryPolicy={"mode": "MPOL_BIND"}), "/linux/memoryPolicy/nodes"),
    (
        "mpol-node-absent",
        linux(memoryPolicy={"mode": "MPOL_BIND", "nodes": "1000"}),
        "/linux/memoryPolicy/nodes",
    ),
    (
        "mpol-default-with-nodes",
        linux(memoryPolicy={"mode": "MPOL_DEFAULT", "nodes": "0"}),
        "/linux/memoryPolicy/nodes",
    ),
]


@pytest.mark.parametrize(
    "mutate,pointer",
    [
        pytest.param(
            m,
            ptr,
            id=i,
            marks=[
                pytest.mark.runc_deviates(
                    "runc 1.1.5 predates these fields and ignores them: create succeeds"
                )
            ],
        )
        for i, m, ptr in INVALID
    ],
)
def test_invalid_value_fails_create(rt, make_bundle, mutate, pointer):
    b = make_bundle(["true"], tmp=False, mutate=mutate)
    assert_failed_cleanly(rt, b, rt.create(b.id, b), pointer)


@pytest.mark.skipif(os.path.isdir("/sys/fs/resctrl/info"), reason="this host has resctrl")
@pytest.mark.parametrize(
    "rdt",
    [
        pytest.param(
            {"closID": "conformance"},
            id="closid-only",
            marks=pytest.mark.runc_deviates(
                "runc 1.1.5 accepts an intelRdt with only closID on a host without resctrl "
                "(config-linux.md: MUST generate an error)"
            ),
        ),
        pytest.param({"closID": "conformance", "l3CacheSchema": "L3:0=f"}, id="l3-schema"),
    ],
)
def test_intel_rdt_without_resctrl_fails_create(rt, make_bundle, rdt):
    """config-linux.md: no resctrl mounted in the runtime namespace: the runtime MUST generate an
    error (runc: "... is specified in config, but Intel RDT/CAT is not enabled")."""
    b = make_bundle(["true"], tmp=False, mutate=linux(intelRdt=rdt))
    p = rt.create(b.id, b)
    assert_failed_cleanly(rt, b, p, "/linux/intelRdt")
    assert "intelRdt" in one_line(p.stderr)


@pytest.mark.runc_deviates("runc 1.1.5's features predates memoryPolicy (runtime-spec 1.3)")
def test_features_list_memory_policy(rt):
    f = json.loads(ok(rt("features", root=False)))
    mp = f["linux"]["memoryPolicy"]
    assert "MPOL_INTERLEAVE" in mp["modes"] and "MPOL_F_STATIC_NODES" in mp["flags"]
    assert not f["linux"].get("intelRdt", {}).get("enabled")
