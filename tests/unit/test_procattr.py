"""process.scheduler, process.ioPriority, process.execCPUAffinity, linux.personality,
linux.memoryPolicy, linux.intelRdt: parsing and config errors, and where the calls happen in the
setup (against RecordingKernel; no root needed)."""

import errno
import json
import os

import pytest

from ocirt import checks, execute, procattr, stages
from ocirt import kernel as k
from ocirt.cli import main
from ocirt.commands.features import features
from ocirt.errors import ConfigError, OcirtError
from ocirt.kernel.fake import Call, RecordingKernel
from ocirt.process import ProcessSpec


@pytest.fixture(autouse=True)
def host(tmp_path, monkeypatch):
    """A host with CPUs 0-3 and NUMA nodes 0-1, whatever this machine has."""
    (tmp_path / "node").mkdir()
    (tmp_path / "node" / "possible").write_text("0-1\n")
    (tmp_path / "cpu_possible").write_text("0-3\n")
    monkeypatch.setattr(procattr, "NODE_DIR", str(tmp_path / "node"))
    monkeypatch.setattr(procattr, "CPU_POSSIBLE", str(tmp_path / "cpu_possible"))


def spec(**proc) -> ProcessSpec:
    return ProcessSpec.from_config({"args": ["sh"], **proc})


def pointer_of(fn) -> str:
    with pytest.raises(ConfigError) as e:
        fn()
    assert "\n" not in str(e.value)
    return e.value.pointer


# ---- parsing -------------------------------------------------------------------------------


def test_scheduler_parsed_to_sched_setattr_arguments():
    s = spec(
        scheduler={
            "policy": "SCHED_DEADLINE",
            "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN"],
            "runtime": 10_000_000,
            "deadline": 30_000_000,
            "period": 100_000_000,
        }
    )
    assert s.scheduler == (6, 0x05, 0, 0, 10_000_000, 30_000_000, 100_000_000)
    assert spec(scheduler={"policy": "SCHED_FIFO", "priority": 42}).scheduler == (1, 0, 0, 42, 0, 0, 0)
    assert spec(scheduler={"policy": "SCHED_OTHER", "nice": -20}).scheduler == (0, 0, -20, 0, 0, 0, 0)


@pytest.mark.parametrize(
    "sched,ptr",
    [
        ({"policy": "SCHED_BOGUS"}, "/process/scheduler/policy"),
        ({"nice": 1}, "/process/scheduler/policy"),
        ({"policy": "SCHED_OTHER", "nice": 20}, "/process/scheduler/nice"),
        ({"policy": "SCHED_OTHER", "nice": -21}, "/process/scheduler/nice"),
        ({"policy": "SCHED_OTHER", "priority": 5}, "/process/scheduler/priority"),
        ({"policy": "SCHED_FIFO"}, "/process/scheduler/priority"),
        ({"policy": "SCHED_RR", "priority": 100}, "/process/scheduler/priority"),
        ({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_BOGUS"]}, "/process/scheduler/flags/0"),
        ({"policy": "SCHED_DEADLINE", "runtime": 2000}, "/process/scheduler/deadline"),
        ({"policy": "SCHED_DEADLINE", "runtime": 100, "deadline": 1000}, "/process/scheduler/runtime"),
        ({"policy": "SCHED_DEADLINE", "runtime": 5000, "deadline": 2000}, "/process/scheduler/runtime"),
        (
            {"policy": "SCHED_DEADLINE", "runtime": 2000, "deadline": 5000, "period": 3000},
            "/process/scheduler/period",
        ),
        ("SCHED_FIFO", "/process/scheduler"),
    ],
)
def test_bad_scheduler_names_its_pointer(sched, ptr):
    assert pointer_of(lambda: spec(scheduler=sched)) == ptr


def test_io_priority():
    assert spec(ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 4}).io_priority == (2 << 13) | 4
    assert spec(ioPriority={"class": "IOPRIO_CLASS_IDLE", "priority": 7}).io_priority == (3 << 13) | 7
    assert (
        pointer_of(lambda: spec(ioPriority={"class": "IOPRIO_CLASS_XX", "priority": 0}))
        == "/process/ioPriority/class"
    )
    assert (
        pointer_of(lambda: spec(ioPriority={"class": "IOPRIO_CLASS_RT", "priority": 8}))
        == "/process/ioPriority/priority"
    )
    assert pointer_of(lambda: spec(ioPriority={"class": "IOPRIO_CLASS_RT"})) == "/process/ioPriority/priority"


def test_exec_cpu_affinity():
    s = spec(execCPUAffinity={"initial": "0-1,3", "final": " 2 "})
    assert (s.affinity_initial, s.affinity_final) == ([0, 1, 3], [2])
    empty = spec(execCPUAffinity={"final": ""})
    assert (empty.affinity_initial, empty.affinity_final) == (None, None)  # SHOULD NOT change
    assert pointer_of(lambda: spec(execCPUAffinity={"initial": "3-1"})) == "/process/execCPUAffinity/initial"
    assert pointer_of(lambda: spec(execCPUAffinity={"final": "0,,1"})) == "/process/execCPUAffinity/final"
    assert (
        pointer_of(lambda: spec(execCPUAffinity={"final": "4"})) == "/process/execCPUAffinity/final"
    )  # not on this host


@pytest.mark.parametrize(
    "text,want",
    [
        ("0-3,7", [0, 1, 2, 3, 7]),
        ("5", [5]),
        ("", []),
        ("0-7:2/4", [0, 1, 4, 5]),
        ("1, 3 ,2", [1, 2, 3]),
    ],
)
def test_parse_list(text, want):
    assert procattr.parse_list(text, procattr._Where("", "config.json"), "", 64) == want


@pytest.mark.parametrize(
    "text",
    ["a", "1-", "-1", "1-2-3", "0-7:0/4", "0-7:5/4", "3:1/2", "1_0", "+1", "\u0661", "64", "0-100000000"],
)
def test_parse_list_refuses(text):
    with pytest.raises(ConfigError):
        procattr.parse_list(text, procattr._Where("", "config.json"), "", 64)


def test_process_json_pointers_have_no_process_prefix():
    """exec --process: the pointer is into process.json, and the error says so."""
    with pytest.raises(ConfigError) as e:
        ProcessSpec.from_config(
            {"args": ["sh"], "scheduler": {"policy": "SCHED_X"}}, pointer="", document="process.json"
        )
    assert e.value.pointer == "/scheduler/policy"
    assert str(e.value).startswith("process.json: /scheduler/policy: ")


def linux(**fields):
    return procattr.parse_linux(fields)


def test_personality_and_memory_policy():
    assert linux(personality={"domain": "LINUX32"}) == (0x0008, None)
    assert linux(personality={"domain": "LINUX", "flags": []}) == (0, None)
    assert linux(memoryPolicy={"mode": "MPOL_BIND", "nodes": "0-1", "flags": ["MPOL_F_STATIC_NODES"]}) == (
        None,
        (2 | 1 << 15, [0, 1]),
    )
    assert linux(memoryPolicy={"mode": "MPOL_DEFAULT"}) == (None, (0, []))
    assert linux(memoryPolicy={"mode": "MPOL_PREFERRED"}) == (None, (1, []))  # local allocation
    # relative nodes are remapped onto the allowed ones: any number is fine
    assert linux(
        memoryPolicy={"mode": "MPOL_INTERLEAVE", "nodes": "5", "flags": ["MPOL_F_RELATIVE_NODES"]}
    ) == (None, (3 | 1 << 14, [5]))


@pytest.mark.parametrize(
    "fields,ptr",
    [
        ({"personality": {"domain": "LINUX64"}}, "/linux/personality/domain"),
        ({"personality": {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}}, "/linux/personality/flags/0"),
        ({"memoryPolicy": {"mode": "MPOL_BOGUS"}}, "/linux/memoryPolicy/mode"),
        ({"memoryPolicy": {"mode": "MPOL_BIND"}}, "/linux/memoryPolicy/nodes"),
        ({"memoryPolicy": {"mode": "MPOL_DEFAULT", "nodes": "0"}}, "/linux/memoryPolicy/nodes"),
        (
            {"memoryPolicy": {"mode": "MPOL_LOCAL", "flags": ["MPOL_F_STATIC_NODES"]}},
            "/linux/memoryPolicy/flags",
        ),
        ({"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "2"}}, "/linux/memoryPolicy/nodes"),
        ({"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0-x"}}, "/linux/memoryPolicy/nodes"),
        (
            {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_BOGUS"]}},
            "/linux/memoryPolicy/flags/0",
        ),
        (
            {
                "memoryPolicy": {
                    "mode": "MPOL_BIND",
                    "nodes": "0",
                    "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"],
                }
            },
            "/linux/memoryPolicy/flags",
        ),
    ],
)
def test_bad_linux_fields_name_their_pointer(fields, ptr):
    assert pointer_of(lambda: linux(**fields)) == ptr


def test_memory_policy_needs_numa(monkeypatch, tmp_path):
    monkeypatch.setattr(procattr, "NODE_DIR", str(tmp_path / "absent"))
    assert pointer_of(lambda: linux(memoryPolicy={"mode": "MPOL_DEFAULT"})) == "/linux/memoryPolicy"


def test_intel_rdt_refused_without_and_with_resctrl(tmp_path):
    none = tmp_path / "mountinfo"
    none.write_text("22 1 0:21 / /proc rw - proc proc rw\n")
    with pytest.raises(ConfigError) as e:
        checks.check_intel_rdt(str(none))
    assert e.value.pointer == "/linux/intelRdt" and "no resctrl" in str(e.value)
    some = tmp_path / "mountinfo2"
    some.write_text("40 22 0:40 / /sys/fs/resctrl rw,relatime - resctrl resctrl rw\n")
    with pytest.raises(ConfigError) as e:
        checks.check_intel_rdt(str(some))
    assert e.value.pointer == "/linux/intelRdt" and "does not support" in str(e.value)


def test_features_report_memory_policy():
    f = features()["linux"]
    assert f["memoryPolicy"]["modes"] == list(procattr.MPOL_MODES)
    assert set(f["memoryPolicy"]["flags"]) == {
        "MPOL_F_NUMA_BALANCING",
        "MPOL_F_RELATIVE_NODES",
        "MPOL_F_STATIC_NODES",
    }
    assert f["intelRdt"] == {"enabled": False}


# ---- where the calls happen ----------------------------------------------------------------


class Effects(stages.InitEffects):
    def __init__(self, kern):
        super().__init__(None)
        self.k = kern

    def seccomp(self, seccomp):
        self.k.calls.append(Call("seccomp_load", ()))

    def lookup(self, executable, env):
        return "/bin/" + executable

    def inherit(self, fd):
        pass


def full_spec(**extra) -> ProcessSpec:
    return ProcessSpec.from_config(
        {
            "args": ["sh"],
            "user": {"uid": 1000, "gid": 1000},
            "cwd": "/",
            "scheduler": {"policy": "SCHED_RR", "priority": 10, "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
            "ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": 1},
            "execCPUAffinity": {"initial": "0", "final": "1-2"},
            **extra,
        }
    )


@pytest.mark.parametrize("nnp", [False, True])
def test_set_before_identity_switch_and_seccomp(nnp):
    kern = RecordingKernel()
    proc = full_spec(noNewPrivileges=nnp)
    stages.prepare_exec(
        kern,
        proc,
        40,
        "config.json",
        seccomp=object(),
        fx=Effects(kern),
        personality=0x0008,
        mempolicy=(3, [0, 1]),
    )
    names = kern.names()
    assert kern.find("sched_setattr")[0].args == (0, 2, 0x01, 0, 10, 0, 0, 0)
    assert kern.find("ioprio_set")[0].args == (k.IOPRIO_WHO_PROCESS, 0, (1 << 13) | 1)
    assert kern.find("set_mempolicy")[0].args == (3, [0, 1])
    assert kern.find("personality")[0].args == (0x0008,)
    order = [
        names.index(n)
        for n in ("chdir", "sched_setattr", "ioprio_set", "set_mempolicy", "personality", "setresuid")
    ]
    assert order == sorted(order)
    assert names.index("personality") < names.index("seccomp_load")
    assert "sched_setaffinity" not in names  # execCPUAffinity is not the process's own


def test_nothing_set_when_absent():
    kern = RecordingKernel()
    stages.prepare_exec(kern, ProcessSpec(args=["sh"]), 40, "config.json", fx=Effects(kern))
    assert not {"sched_setattr", "ioprio_set", "set_mempolicy", "personality"} & set(kern.names())


def test_kernel_refusal_names_the_field():
    kern = RecordingKernel(fail={"sched_setattr": PermissionError(errno.EPERM, "sched_setattr")})
    with pytest.raises(OcirtError) as e:
        stages.prepare_exec(kern, full_spec(), 40, "config.json", fx=Effects(kern))
    assert str(e.value).startswith("/process/scheduler: sched_setattr")
    assert "realtimeRuntime" in str(e.value) and str(e.value).endswith("operation not permitted")
    kern = RecordingKernel(fail={"set_mempolicy": OSError(errno.EINVAL, "set_mempolicy")})
    with pytest.raises(OcirtError, match="^/linux/memoryPolicy: set_mempolicy: invalid argument$"):
        stages.prepare_exec(
            kern, ProcessSpec(args=["sh"]), 40, "config.json", fx=Effects(kern), mempolicy=(2, [0])
        )


def test_exec_initial_affinity_around_the_fork():
    """initial: the parent moves itself, forks (the child inherits it), moves back."""
    kern = RecordingKernel(affinity={0, 1, 2, 3})
    forks = []

    def fork():
        forks.append(len(kern.calls))
        return 4242

    assert execute.fork_with_affinity(kern, full_spec(), fork=fork) == 4242
    assert [str(c) for c in kern.calls] == [
        "sched_getaffinity(0)",
        "sched_setaffinity(0, [0])",
        "sched_setaffinity(0, [0, 1, 2, 3])",
    ]
    assert forks == [2]  # between the two


def test_exec_initial_affinity_not_restored_in_the_child():
    kern = RecordingKernel()
    assert execute.fork_with_affinity(kern, full_spec(), fork=lambda: 0) == 0
    assert kern.names() == ["sched_getaffinity", "sched_setaffinity"]


def test_exec_without_initial_affinity_just_forks():
    kern = RecordingKernel()
    assert execute.fork_with_affinity(kern, ProcessSpec(args=["sh"]), fork=lambda: 7) == 7
    assert kern.calls == []


def test_exec_final_affinity_in_stage1():
    kern = RecordingKernel()
    stages.set_final_affinity(kern, full_spec())
    assert [str(c) for c in kern.calls] == ["sched_setaffinity(0, [1, 2])"]
    kern = RecordingKernel(fail={"sched_setaffinity": OSError(errno.EINVAL, "x")})
    with pytest.raises(OcirtError, match="^/process/execCPUAffinity/final: sched_setaffinity"):
        stages.set_final_affinity(kern, full_spec())


# ---- the init, through `ocirt plan` (create's own code path) --------------------------------


@pytest.fixture
def bundle(plan_bundle):
    tmp_path = plan_bundle
    config = json.loads((tmp_path / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    config["process"]["execCPUAffinity"] = {"initial": "0", "final": "1"}
    config["linux"]["personality"] = {"domain": "LINUX32"}
    config["linux"]["memoryPolicy"] = {
        "mode": "MPOL_INTERLEAVE",
        "nodes": "0-1",
        "flags": ["MPOL_F_STATIC_NODES"],
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_plan_lists_them_before_the_identity_switch(bundle, capsys):
    assert main(["--root", str(bundle / "state"), "plan", "--bundle", str(bundle)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith("## ")]
    want = [
        "sched_setattr(0, SCHED_BATCH, 0, 7, 0, 0, 0, 0)",
        "ioprio_set(IOPRIO_WHO_PROCESS, 0, IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, 6))",
        "set_mempolicy(MPOL_INTERLEAVE|MPOL_F_STATIC_NODES, [0, 1])",
        "personality(PER_LINUX32)",
    ]
    at = [lines.index(w) for w in want]
    assert at == list(range(at[0], at[0] + len(want)))  # consecutive, in this order
    assert lines[at[0] - 1] == "chdir('/')"  # right after the process's cwd
    assert at[-1] < next(i for i, ln in enumerate(lines) if ln.startswith("setresuid("))
    assert not any(ln.startswith("sched_setaffinity") for ln in lines)  # not for the init
    assert not (bundle / "state").exists()


def test_plan_refuses_intel_rdt_like_create(bundle, capsys):
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["intelRdt"] = {"closID": "guaranteed_group"}
    (bundle / "config.json").write_text(json.dumps(config))
    if os.path.exists("/sys/fs/resctrl/info"):
        pytest.skip("this host has resctrl")
    assert main(["--root", str(bundle / "state"), "plan", "--bundle", str(bundle)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/linux/intelRdt" in err[0]
    assert not (bundle / "state").exists()


class ExecFx(stages.ExecEffects):
    """exec's process effects with the wait for the parent's move recorded as a call."""

    def __init__(self, kern):
        super().__init__(None, set_up_first=True)
        self.k = kern

    def wait_moved(self, what=""):
        self.k.calls.append(Call("wait_moved", ()))

    def lookup(self, executable, env):
        return "/bin/" + executable

    def inherit(self, fd):
        pass

    def seccomp(self, seccomp):
        self.until_moved()
        self.k.calls.append(Call("seccomp_load", ()))


@pytest.mark.parametrize("nnp", [False, True])
def test_exec_sets_itself_up_before_its_move_and_waits_before_its_filter(nnp):
    """exec's process sets itself up while the parent moves it into the cgroup; it waits for
    the move before its seccomp filter goes in (which may refuse the receive, and after which
    only the container's rules apply) and runs nothing of the container's before it."""
    kern = RecordingKernel()
    fx = ExecFx(kern)
    stages.prepare_exec(kern, full_spec(noNewPrivileges=nnp), 40, "process.json", seccomp=object(), fx=fx)
    fx.until_moved()  # as exec_stage1 does before its Ready (once: already done here)
    names = kern.names()
    assert names.count("wait_moved") == 1
    assert names.index("wait_moved") == names.index("seccomp_load") - 1
    assert names.index("chdir") < names.index("wait_moved")
    if nnp:  # the filter comes last: the identity switch was done before the wait
        assert names.index("setresuid") < names.index("wait_moved")


def test_exec_without_a_filter_waits_after_its_setup():
    kern = RecordingKernel()
    fx = ExecFx(kern)
    stages.prepare_exec(kern, ProcessSpec(args=["sh"]), 40, "process.json", fx=fx)
    assert "wait_moved" not in kern.names()
    fx.until_moved()
    assert kern.names()[-1] == "wait_moved"
