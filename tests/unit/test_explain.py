"""`ocirt plan` names the cause of every operation: the config.json field(s) it comes from, or the
runtime's own (ocirt/explain.py); `--field` shows what one field causes, `--diff` what changes in
the kernel between two bundles."""

import inspect
import json
import re
import shutil

import pytest

from ocirt import explain
from ocirt import plan as plan_mod
from ocirt.cli import main
from ocirt.kernel import fake
from ocirt.kernel.fake import Call
from ocirt.plan import Step


def rich(config: dict) -> dict:
    """runc's default config with a field of (nearly) every kind create maps to the kernel."""
    p = config["process"]
    p["terminal"] = True
    p["consoleSize"] = {"height": 24, "width": 80}
    p["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10], "umask": 0o027}
    p["args"] = ["sh", "-c", "true"]
    p["env"] = ["PATH=/bin", "TERM=xterm"]
    p["cwd"] = "/work"
    p["capabilities"]["inheritable"] = ["CAP_KILL"]
    p["capabilities"]["ambient"] = ["CAP_KILL"]
    p["rlimits"].append({"type": "RLIMIT_NPROC", "hard": 512, "soft": 256})
    p["noNewPrivileges"] = True
    p["oomScoreAdj"] = 100
    p["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    p["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    config["hostname"] = "rich"
    config["domainname"] = "example.org"
    config["root"]["readonly"] = True
    config["mounts"] += [
        {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro"]},
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "mode=1777", "rnoexec"],
        },
    ]
    config["hooks"] = {
        kind: [{"path": "/bin/true", "args": ["true", kind]}]
        for kind in ("prestart", "createRuntime", "createContainer", "startContainer")
    }
    linux = config["linux"]
    linux["namespaces"] += [{"type": "user"}, {"type": "time"}]
    linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["timeOffsets"] = {"monotonic": {"secs": 10, "nanosecs": 0}}
    linux["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.msgmax": "8192"}
    linux["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0}
    ]
    linux["resources"] = {
        "devices": [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
        ],
        "memory": {"limit": 268435456},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "pids": {"limit": 64},
    }
    linux["rootfsPropagation"] = "private"
    linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
    }
    linux["personality"] = {"domain": "LINUX32"}
    linux["memoryPolicy"] = {"mode": "MPOL_PREFERRED"}
    return config


# each field the rich config sets -> the operations it must be named on (at least one of each)
EXPECTED = {
    "/hostname": ["sethostname"],
    "/domainname": ["setdomainname"],
    "/root/path": ["mount"],
    "/root/readonly": ["mount"],
    "/mounts/0": ["mount"],  # proc
    "/mounts/1": ["mount"],  # tmpfs on /dev
    "/mounts/6": ["mount"],  # cgroup: the tmpfs and each hierarchy
    "/mounts/7": ["open_in_root", "mkdir", "mount"],  # the bind of data/
    "/mounts/8": ["mount", "mount_setattr"],  # tmpfs with rnoexec
    "/linux/maskedPaths/0": ["mount"],
    "/linux/readonlyPaths/0": ["mount"],
    "/linux/rootfsPropagation": ["mount"],
    "/linux/devices/0": ["mount"],  # a user namespace: bound from the host
    "/linux/namespaces/5": ["unshare", "setresuid", "setresgid"],  # user
    "/linux/namespaces/6": ["unshare"],  # time
    "/linux/namespaces/1": ["unshare", "ioctl"],  # network: and its loopback
    "/linux/uidMappings": ["write_file"],
    "/linux/gidMappings": ["write_file"],
    "/linux/timeOffsets": ["write_file"],
    "/linux/sysctl/net.ipv4.ip_forward": ["write_file"],
    "/linux/sysctl/kernel.msgmax": ["write_file"],
    "/linux/resources/devices/1": ["write_file|bpf"],
    "/linux/resources/memory/limit": ["write_file"],
    "/linux/resources/cpu/shares": ["write_file"],
    "/linux/resources/cpu/quota": ["write_file"],
    "/linux/resources/cpu/period": ["write_file"],
    "/linux/resources/pids/limit": ["write_file"],
    "/linux/seccomp": ["seccomp_load"],
    "/linux/personality": ["personality"],
    "/linux/memoryPolicy": ["set_mempolicy"],
    "/process/rlimits/0": ["setrlimit"],
    "/process/rlimits/1": ["setrlimit"],
    "/process/capabilities/bounding": ["prctl"],
    "/process/capabilities/effective": ["capset"],
    "/process/capabilities/permitted": ["capset"],
    "/process/capabilities/inheritable": ["capset"],
    "/process/capabilities/ambient": ["prctl"],
    "/process/user/uid": ["setresuid"],
    "/process/user/gid": ["setresgid"],
    "/process/user/additionalGids": ["setgroups"],
    "/process/user/umask": ["umask"],
    "/process/noNewPrivileges": ["prctl"],
    "/process/oomScoreAdj": ["write_file"],
    "/process/scheduler": ["sched_setattr"],
    "/process/ioPriority": ["ioprio_set"],
    "/process/terminal": ["console_setup"],
    "/process/consoleSize": ["console_setup"],
    "/process/cwd": ["mkdir", "chdir"],
    "/process/args": ["execve"],
    "/process/env": ["execve"],
    "/hooks/prestart/0": ["hook"],
    "/hooks/createRuntime/0": ["hook"],
    "/hooks/createContainer/0": ["hook"],
    "/hooks/startContainer/0": ["hook"],
}


@pytest.fixture
def bundle(plan_bundle):
    path = plan_bundle / "config.json"
    path.write_text(json.dumps(rich(json.loads(path.read_text()))))
    (plan_bundle / "data").mkdir()
    return plan_bundle


def plan(bundle, capsys, *extra, fmt="json"):
    assert (
        main(
            [
                "--root",
                str(bundle / "state"),
                "plan",
                "--bundle",
                str(bundle),
                "--console-socket",
                str(bundle / "console.sock"),
                "--format",
                fmt,
                *extra,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    return json.loads(out) if fmt == "json" else out.splitlines()


def test_every_field_of_a_rich_config_is_named_on_what_it_causes(bundle, capsys):
    steps = plan(bundle, capsys)
    missing = []
    for pointer, ops in EXPECTED.items():
        named = {s["op"] for s in steps if pointer in s["causes"]}
        for op in ops:
            if not named & set(op.split("|")):
                missing.append(f"{pointer}: no {op} names it (it is on {sorted(named)})")
    assert missing == []
    assert all(s["causes"] for s in steps), [s["text"] for s in steps if not s["causes"]]
    assert not (bundle / "state").exists()


def test_the_runtime_s_own_operations(bundle, capsys):
    steps = plan(bundle, capsys)

    def causes_of(op, *args):
        return [s["causes"] for s in steps if s["op"] == op and s["args"][: len(args)] == list(args)]

    state = str(bundle / "state" / "plan")
    assert causes_of("mkdir", state, 0o711) == [["runtime"]]  # the state directory
    assert causes_of("mkfifo", state + "/exec.fifo") == [["runtime"]]
    assert causes_of("pivot_root") == [["runtime"]]
    dev_null = str(bundle / "rootfs" / "dev" / "null")
    assert causes_of("mount", "/dev/null", dev_null) == [["runtime"]]  # a default device
    assert all(c == ["runtime"] for c in causes_of("join_session_keyring"))
    fork_and_wait = [s["causes"] for s in steps if s["op"] in ("fork", "waitpid")]
    assert fork_and_wait and all(c == ["runtime"] for c in fork_and_wait)
    # the config's own device rules, then the ones the runtime always allows
    rules = [
        (s["args"][1], s["causes"])
        for s in steps
        if s["op"] == "write_file" and s["args"][0].endswith(("devices.allow", "devices.deny"))
    ]
    if rules:  # cgroup v1 (v2 filters devices with bpf)
        assert rules[:2] == [
            ("a", ["/linux/resources/devices/0"]),
            ("c 10:229 rwm", ["/linux/resources/devices/1"]),
        ]
        assert all(c == ["runtime"] for _, c in rules[2:])


def test_text_groups_each_stage_by_cause(bundle, capsys):
    lines = plan(bundle, capsys, fmt="text")
    at = lines.index("sethostname('rich')")
    assert lines[at - 1] == "## /hostname"
    mount = next(i for i, ln in enumerate(lines) if ln.startswith("mount('proc', "))
    header = max(i for i in range(mount) if lines[i].startswith("## "))
    assert lines[header] == "## /mounts/0 (proc on /proc)"
    assert "## /hooks/prestart/0 (/bin/true)" in lines
    assert "# init: setup" in lines and "## runtime" in lines
    assert "## (no rule)" not in lines


def test_field_shows_what_one_field_causes(bundle, capsys):
    steps = plan(bundle, capsys, "--field", "/mounts/7")
    assert steps and all(any(c.startswith("/mounts/7") for c in s["causes"]) for s in steps)
    assert {s["op"] for s in steps} >= {"mount", "open_in_root"}
    caps = plan(bundle, capsys, "--field", "/process/capabilities")
    assert {s["op"] for s in caps} == {"prctl", "capset"}
    lines = plan(bundle, capsys, "--field", "/linux/resources/memory", fmt="text")
    assert lines[0].startswith("# ") and "## /linux/resources/memory/limit" in lines
    assert plan(bundle, capsys, "--field", "/annotations") == []
    assert plan(bundle, capsys, "--field", "/annotations", fmt="text") == [
        "# no operation comes from /annotations"
    ]
    runtime = plan(bundle, capsys, "--field", "runtime")
    assert runtime and all(s["causes"] == ["runtime"] for s in runtime)


def test_field_matches_whole_parts_of_the_pointer():
    assert explain.matches(["/mounts/1"], "/mounts/1")
    assert explain.matches(["/mounts/1"], "/mounts")
    assert explain.matches(["/mounts/1"], "/mounts/")
    assert not explain.matches(["/mounts/10"], "/mounts/1")
    assert not explain.matches(["runtime"], "/")
    assert explain.matches(["runtime"], "runtime")


def test_field_must_be_a_pointer(bundle, capsys):
    assert main(["plan", "--bundle", str(bundle), "--field", "mounts"]) != 0


def copy_bundle(src, dst, edit):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("state"))
    path = dst / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))
    return dst


def test_diff_of_two_bundles_is_what_changes_in_the_kernel(bundle, tmp_path_factory, capsys):
    def change(c):
        c["hostname"] = "other"
        c["linux"]["sysctl"].pop("kernel.msgmax")
        c["mounts"].append({"destination": "/srv", "type": "tmpfs", "source": "tmpfs"})

    other = copy_bundle(bundle, tmp_path_factory.mktemp("other") / "b", change)
    lines = plan(bundle, capsys, "--diff", str(other), fmt="text")
    assert lines[:2] == [f"--- {bundle}", f"+++ {other}"]
    changed = [ln for ln in lines if ln[:1] in "-+" and not ln.startswith(("---", "+++"))]
    assert "-sethostname('rich')    # /hostname" in changed
    assert "+sethostname('other')    # /hostname" in changed
    assert "-write_file('/proc/sys/kernel/msgmax', '8192')    # /linux/sysctl/kernel.msgmax" in changed
    assert "+mount('tmpfs', '<rootfs>/srv', 'tmpfs', 0, None)    # /mounts/9 (tmpfs on /srv)" in changed
    # the bundles' own paths are not a difference; nothing else changed
    assert not any(str(bundle) in ln or str(other) in ln for ln in changed)
    assert all(re.search(r"# (/hostname|/linux/sysctl/kernel.msgmax|/mounts/9)", ln) for ln in changed), (
        changed
    )
    assert any(ln.startswith("@@ init: setup @@") for ln in lines)
    changes = plan(bundle, capsys, "--diff", str(other))
    assert {(c["change"], tuple(c["causes"])) for c in changes} >= {
        ("-", ("/hostname",)),
        ("+", ("/hostname",)),
        ("-", ("/linux/sysctl/kernel.msgmax",)),
    }


def test_diff_of_a_copy_is_empty(bundle, tmp_path_factory, capsys):
    other = copy_bundle(bundle, tmp_path_factory.mktemp("copy") / "b", lambda c: None)
    assert plan(bundle, capsys, "--diff", str(other)) == []
    lines = plan(bundle, capsys, "--diff", str(other), fmt="text")
    assert lines == [f"# the plans of {bundle} and {other} make the same operations"]


# ---- the rules ------------------------------------------------------------------------------


def recorded_names() -> set:
    """Every call name the plan can record: the RecordingKernel's, and what plan.py notes."""
    names = set(re.findall(r'_record\(\s*"(\w+)"', inspect.getsource(fake)))
    names |= set(re.findall(r'\.note\(\s*"(\w+)"', inspect.getsource(plan_mod)))
    return names


def test_every_call_the_plan_can_record_has_a_rule():
    names = recorded_names()
    assert {"mount", "write_file", "hook", "seccomp_load", "dbus_StartTransientUnit"} <= names
    assert sorted(names - set(explain.RULES)) == []


def why(steps, config, rootfs="/b/rootfs"):
    return explain.causes(
        [Step(stage, Call(name, tuple(args))) for stage, name, *args in steps], config, "/b", rootfs
    )


CG = "create (runtime): cgroup"


@pytest.mark.parametrize(
    "path, value, resources, want",
    [
        # cgroup v2 file names
        ("memory.max", "max", {"memory": {"limit": -1}}, ["/linux/resources/memory/limit"]),
        (
            "memory.swap.max",
            "0",
            {"memory": {"limit": 5, "swap": 5}},
            ["/linux/resources/memory/swap", "/linux/resources/memory/limit"],
        ),
        ("memory.low", "5", {"memory": {"reservation": 5}}, ["/linux/resources/memory/reservation"]),
        ("cpu.max", "500 1000", {"cpu": {"quota": 500}}, ["/linux/resources/cpu/quota"]),
        ("cpu.weight", "20", {"cpu": {"shares": 512}}, ["/linux/resources/cpu/shares"]),
        (
            "io.max",
            "8:0 rbps=10",
            {
                "blockIO": {
                    "throttleReadBpsDevice": [
                        {"major": 8, "minor": 16, "rate": 1},
                        {"major": 8, "minor": 0, "rate": 10},
                    ]
                }
            },
            ["/linux/resources/blockIO/throttleReadBpsDevice/1"],
        ),
        (
            "io.weight",
            "8:0 100",
            {"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 10}]}},
            ["/linux/resources/blockIO/weightDevice/0/weight"],
        ),
        (
            "hugetlb.2MB.max",
            "4096",
            {"hugepageLimits": [{"pageSize": "1GB", "limit": 0}, {"pageSize": "2MB", "limit": 4096}]},
            ["/linux/resources/hugepageLimits/1/limit"],
        ),
        (
            "rdma.max",
            "mlx5_0 hca_handle=3",
            {"rdma": {"mlx5_0": {"hcaHandles": 3}}},
            ["/linux/resources/rdma/mlx5_0"],
        ),
        (
            "memory.high",
            "1000",
            {"unified": {"memory.high": "1000"}},
            ["/linux/resources/unified/memory.high"],
        ),
        ("pids.max", "max", {"pids": {"limit": -1}}, ["/linux/resources/pids/limit"]),
        # cgroup v1 file names
        ("memory.limit_in_bytes", "5", {"memory": {"limit": 5}}, ["/linux/resources/memory/limit"]),
        (
            "memory.memsw.limit_in_bytes",
            "-1",
            {"memory": {"limit": -1}},
            ["/linux/resources/memory/limit"],
        ),  # limit -1: memory+swap unlimited too
        (
            "memory.oom_control",
            "1",
            {"memory": {"disableOOMKiller": True}},
            ["/linux/resources/memory/disableOOMKiller"],
        ),
        ("cpu.cfs_period_us", "1000", {"cpu": {"period": 1000}}, ["/linux/resources/cpu/period"]),
        (
            "cpu.rt_runtime_us",
            "10",
            {"cpu": {"realtimeRuntime": 10}},
            ["/linux/resources/cpu/realtimeRuntime"],
        ),
        (
            "blkio.throttle.write_iops_device",
            "8:0 7",
            {"blockIO": {"throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 7}]}},
            ["/linux/resources/blockIO/throttleWriteIOPSDevice/0"],
        ),
        ("blkio.weight", "10", {"blockIO": {"weight": 10}}, ["/linux/resources/blockIO/weight"]),
        ("net_cls.classid", "7", {"network": {"classID": 7}}, ["/linux/resources/network/classID"]),
        (
            "net_prio.ifpriomap",
            "eth0 3",
            {"network": {"priorities": [{"name": "lo", "priority": 1}, {"name": "eth0", "priority": 3}]}},
            ["/linux/resources/network/priorities/1"],
        ),
        (
            "hugetlb.2MB.limit_in_bytes",
            "4096",
            {"hugepageLimits": [{"pageSize": "2MB", "limit": 4096}]},
            ["/linux/resources/hugepageLimits/0/limit"],
        ),
        ("cgroup.procs", "<stage1-pid>", {}, ["runtime"]),
        ("cgroup.subtree_control", "+memory", {}, ["runtime"]),
    ],
)
def test_cgroup_files_name_their_resource(path, value, resources, want):
    config = {"linux": {"resources": resources}}
    assert why([(CG, "write_file", f"/sys/fs/cgroup/x/{path}", value)], config) == [want]


def test_cpuset_copied_from_the_parent_is_the_runtime_s():
    config = {"linux": {"resources": {"cpu": {"cpus": "0", "mems": "0"}}}}
    got = why(
        [
            (CG, "mkdir", "/sys/fs/cgroup/cpuset/c", 0o755),
            (CG, "write_file", "/sys/fs/cgroup/cpuset/c/cpuset.mems", "0"),  # the parent's
            (CG, "write_file", "/run/ocirt/c/state.json", "<state.json: pid 0>"),
            (CG, "write_file", "/sys/fs/cgroup/cpuset/c/cpuset.mems", "0"),  # the config's
            (CG, "write_file", "/sys/fs/cgroup/cpuset/c/cpuset.cpus", "0"),
        ],
        config,
    )
    assert got == [
        ["runtime"],
        ["runtime"],
        ["runtime"],
        ["/linux/resources/cpu/mems"],
        ["/linux/resources/cpu/cpus"],
    ]
    # the systemd driver: the unit first, then the directories systemd leaves alone, the limits
    got = why(
        [
            ("create (runtime): stage 1", "dbus_StartTransientUnit", "x.scope", "replace", {}),
            (CG, "mkdir", "/sys/fs/cgroup/cpuset/s/x.scope", 0o755),
            (CG, "write_file", "/sys/fs/cgroup/cpuset/s/x.scope/cpuset.cpus", "0"),
            (CG, "write_file", "/sys/fs/cgroup/cpuset/s/x.scope/cgroup.procs", "1"),
            (CG, "write_file", "/sys/fs/cgroup/cpuset/s/x.scope/cpuset.cpus", "0"),
        ],
        config,
    )
    assert got[2:] == [["runtime"], ["runtime"], ["/linux/resources/cpu/cpus"]]


def test_v2_device_filter_and_systemd_properties():
    config = {
        "annotations": {"org.systemd.property.TimeoutStopUSec": "uint64 5"},
        "linux": {
            "cgroupsPath": "system.slice:ocirt:x",
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}],
                "memory": {"limit": 5},
                "unified": {"pids.max": "7"},
            },
        },
    }
    props = {"Slice": "system.slice", "MemoryMax": 5, "TasksMax": 7, "TimeoutStopUSec": 5}
    got = why(
        [
            (CG, "bpf", 5, b""),
            ("create (runtime): stage 1", "dbus_StartTransientUnit", "ocirt-x.scope", "replace", props),
        ],
        config,
    )
    assert got[0] == ["/linux/resources/devices", "runtime"]
    assert got[1] == [
        "runtime",
        "/linux/cgroupsPath",
        "/linux/resources/memory/limit",
        "/linux/resources/unified/pids.max",
        "/annotations/org.systemd.property.TimeoutStopUSec",
    ]


def test_calls_without_a_config_of_their_own():
    init = "init: setup"
    config = {
        "process": {"apparmorProfile": "p", "execCPUAffinity": {"final": "1"}},
        "linux": {
            "netDevices": {"eth7": {"name": "eth0"}},
            "namespaces": [{"type": "network", "path": "/run/netns/x"}, {"type": "user"}],
        },
    }
    got = why(
        [
            ("stage 1: namespaces", "open", "/run/netns/x", 0),
            ("stage 1: namespaces", "setns", "/run/netns/x", 0x40000000),
            ("stage 1: namespaces", "write_file", "/proc/7/setgroups", "deny"),
            ("create (runtime): network devices", "netdev_move", "eth7", "/proc/9/ns/net", "eth0"),
            (init, "write_file", "/proc/self/attr/apparmor/exec", "exec p"),
            (init, "sched_setaffinity", 0, [1]),
            (init, "umask", 0),
            (init, "umask", 0o22),
            (init, "prctl", 4, 0, 0, 0, 0),  # PR_SET_DUMPABLE
            ("create (runtime): cgroup", "cgroup_apply", "/x", {}),
        ],
        config,
    )
    assert got == [
        ["/linux/namespaces/0"],
        ["/linux/namespaces/0"],
        ["/linux/namespaces/1"],
        ["/linux/netDevices/eth7"],
        ["/process/apparmorProfile"],
        ["/process/execCPUAffinity"],
        ["runtime"],
        ["runtime"],
        ["runtime"],
        ["/linux/resources"],
    ]


def test_idmapped_mounts_name_their_mount():
    config = {
        "linux": {
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        },
        "mounts": [{"destination": "/a", "type": "bind", "source": "/src", "options": ["rbind", "idmap"]}],
    }
    idmap = "create (runtime): idmapped mounts"
    got = why(
        [
            (idmap, "new_userns", "0 1000 1\n", "0 1000 1\n"),
            (idmap, "open_tree", "/src", 0),
            (idmap, "mount_setattr", "<tree /src>", 0, 0, 0, False, None),
            ("init: setup", "open_in_root", "/b/rootfs/a", 0),
            ("init: setup", "move_mount", "<tree /src>", "/b/rootfs/a"),
        ],
        config,
    )
    assert got == [
        ["/mounts/0", "/linux/uidMappings"],
        ["/mounts/0"],
        ["/mounts/0"],
        ["/mounts/0"],
        ["/mounts/0"],
    ]


def test_two_mounts_on_one_destination_are_told_apart_by_source():
    config = {
        "mounts": [
            {"destination": "/m", "type": "tmpfs", "source": "one"},
            {"destination": "/m", "type": "tmpfs", "source": "two"},
        ]
    }
    init = "init: setup"
    got = why(
        [
            (init, "open_in_root", "/b/rootfs/m", 0),
            (init, "mount", "one", "/b/rootfs/m", "tmpfs", 0, None),
            (init, "open_in_root", "/b/rootfs/m", 0),
            (init, "mount", "two", "/b/rootfs/m", "tmpfs", 0, None),
        ],
        config,
    )
    assert got == [["/mounts/0"], ["/mounts/0"], ["/mounts/1"], ["/mounts/1"]]


def test_the_python_api_gives_the_causes_too(plan_bundle):
    import ocirt.api

    path = plan_bundle / "config.json"
    config = json.loads(path.read_text())
    config["process"]["terminal"] = False
    path.write_text(json.dumps(config))
    steps = ocirt.api.plan(str(plan_bundle), root=str(plan_bundle / "state"))
    assert next(s for s in steps if s["op"] == "sethostname")["causes"] == ["/hostname"]
    assert all(s["causes"] for s in steps)
