"""A pids limit the init's fork does not fit (create.late_pids): held back from the cgroup's
first write and written once the init is forked, as `ocirt plan` lists it; every other config's
order as before."""

import json

import pytest

from ocirt import create as create_mod
from ocirt import plan as plan_mod
from ocirt.checks import CreateOptions

USERNS_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


# ---- late_pids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limit, processes, held",
    [
        (1, 2, True),
        (0, 2, True),
        (0, 1, True),
        (1, 1, False),
        (2, 2, False),
        (-1, 2, False),
        (True, 2, False),
    ],
)
def test_a_limit_below_the_processes_is_held(limit, processes, held):
    linux = {"resources": {"pids": {"limit": limit}, "memory": {"limit": 1 << 30}}, "cgroupsPath": "/x"}
    before = json.dumps(linux)
    rest, late = create_mod.late_pids(linux, processes)
    assert json.dumps(linux) == before  # the config itself is not changed
    if not held:
        assert rest is linux and late is None
        return
    assert late == {"pids": {"limit": limit}}
    assert rest == {"resources": {"pids": {}, "memory": {"limit": 1 << 30}}, "cgroupsPath": "/x"}


def test_unified_pids_max_is_held_as_well():
    linux = {"resources": {"unified": {"pids.max": "1", "memory.high": "100"}}}
    rest, late = create_mod.late_pids(linux, 2)
    assert late == {"unified": {"pids.max": "1"}}
    assert rest == {"resources": {"unified": {"memory.high": "100"}}}
    both = {"resources": {"pids": {"limit": 0}, "unified": {"pids.max": "0\n"}}}
    assert create_mod.late_pids(both, 1)[1] == {"pids": {"limit": 0}, "unified": {"pids.max": "0\n"}}
    for value in ("max", "2", "-1", 1):
        linux = {"resources": {"unified": {"pids.max": value}}}
        assert create_mod.late_pids(linux, 2) == (linux, None)


@pytest.mark.parametrize("linux", [{}, {"resources": None}, {"resources": {}}, {"resources": {"pids": None}}])
def test_no_limit_leaves_linux_as_it_is(linux):
    assert create_mod.late_pids(linux, 2)[0] is linux


# ---- where `ocirt plan` (create's own steps) writes it ------------------------------------------


def build(bundle, edit, systemd=False):
    path = bundle / "config.json"
    config = json.loads(path.read_text())
    config["linux"]["cgroupsPath"] = "system.slice:t:late" if systemd else "/ocirt-unit-pids-late"
    edit(config)
    path.write_text(json.dumps(config))
    opts = CreateOptions(
        id="late", bundle=str(bundle), root=str(bundle / "state"), init_as_child=True, systemd_cgroup=systemd
    )
    return plan_mod.build(opts)


def pids_writes(plan):
    """(index, stage, value) of every pids.max write."""
    return [
        (i, s.stage, s.call.args[1])
        for i, s in enumerate(plan.steps)
        if s.call.name == "write_file" and s.call.args[0].endswith("/pids.max")
    ]


def first(plan, pred):
    return next(i for i, s in enumerate(plan.steps) if pred(s))


def forks(plan):
    """The runtime's (into the cgroup2 directory on v2 and hybrid hosts: fork_into), stage 1's."""
    return [i for i, s in enumerate(plan.steps) if s.call.name in ("fork", "fork_into")]


def with_pids(limit, *namespaces):
    def edit(c):
        c["linux"]["resources"]["pids"] = {"limit": limit}
        for ns in namespaces:
            c["linux"]["namespaces"].append({"type": ns})
        if "user" in namespaces:
            c["linux"]["uidMappings"] = c["linux"]["gidMappings"] = USERNS_MAP

    return edit


@pytest.mark.parametrize("namespace", ["user", "time"])
@pytest.mark.parametrize("limit", [1, 0])
def test_written_once_stage_1_has_forked_the_init(plan_bundle, namespace, limit):
    plan = build(plan_bundle, with_pids(limit, namespace))
    [(i, stage, value)] = pids_writes(plan)
    assert (stage, value) == ("create (runtime): the init's pid", str(limit))
    stage1_fork, init_fork = forks(plan)  # the runtime's, then stage 1's
    assert plan.steps[init_fork].stage == "stage 1: namespaces" and init_fork < i
    # before the init goes on with its setup, and after every other limit and device rule
    assert i < first(plan, lambda s: s.stage == "init: setup")
    devices = first(  # v1's devices.allow, v2's eBPF program
        plan,
        lambda s: s.call.name == "bpf" or s.call.name == "write_file" and "devices.allow" in s.call.args[0],
    )
    assert devices < stage1_fork


@pytest.mark.parametrize("limit, late", [(64, False), (2, False), (1, False), (0, True)])
def test_one_fork_holds_back_a_limit_of_0_only(plan_bundle, limit, late):
    """The init alone is in the cgroup (born there on cgroup v2): 1 fits it."""
    plan = build(plan_bundle, with_pids(limit))
    [(i, stage, value)] = pids_writes(plan)
    assert value == str(limit)
    [init_fork] = forks(plan)
    assert (i > init_fork) is late
    assert stage == ("create (runtime): the init's pid" if late else "create (runtime): cgroup")


def test_two_fits_stage_1_and_the_init(plan_bundle):
    plan = build(plan_bundle, with_pids(2, "user"))
    [(i, stage, value)] = pids_writes(plan)
    assert (stage, value) == ("create (runtime): cgroup", "2") and i < forks(plan)[0]


def test_systemd_unit_starts_without_tasks_max_and_gets_it_later(plan_bundle):
    plan = build(plan_bundle, with_pids(1, "user"), systemd=True)
    start = first(plan, lambda s: s.call.name == "dbus_StartTransientUnit")
    assert "TasksMax" not in plan.steps[start].call.args[2]
    props = first(plan, lambda s: s.call.name == "dbus_SetUnitProperties")
    assert plan.steps[props].call.args[2] == {"TasksMax": 1}
    [(i, stage, value)] = pids_writes(plan)
    assert start < forks(plan)[1] < props < i and value == "1"
    assert plan.steps[props].stage == stage == "create (runtime): the init's pid"


def test_systemd_unit_starts_with_a_limit_that_fits(plan_bundle):
    plan = build(plan_bundle, with_pids(5, "user"), systemd=True)
    start = first(plan, lambda s: s.call.name == "dbus_StartTransientUnit")
    assert plan.steps[start].call.args[2]["TasksMax"] == 5
    assert not [s for s in plan.steps if s.call.name == "dbus_SetUnitProperties"]
