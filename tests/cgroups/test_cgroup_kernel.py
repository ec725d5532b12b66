"""ocirt.cgroups against the real kernel: create, apply, read back, freeze, kill, destroy.

Runs as root on whatever this host is (v1/hybrid here; v2 in the v2 VM or on a v2 host);
expectations switch on cg.kind where the two differ.
"""

import errno
import json
import os
import signal
import subprocess
import time

import pytest

from ocirt import cgroups
from ocirt.cgroups.resources import blkio_weight_to_io_weight, shares_to_weight
from ocirt.errors import ConfigError

MiB = 1024 * 1024


def read(cg, controller, name) -> str:
    with open(os.path.join(cg.path(controller), name)) as f:
        return f.read().strip()


def has(cg, controller, name) -> bool:
    d = cg.path(controller)
    return d is not None and os.path.exists(os.path.join(d, name))


def need_controller(cg, ctrl):
    if cg.kind == "v2":
        with open(os.path.join(cg.unified, "cgroup.controllers")) as f:
            if ctrl not in f.read().split():
                pytest.skip(f"{ctrl} controller not enabled here")
    elif ctrl not in cg.paths:
        pytest.skip(f"{ctrl} controller not mounted here")


def cpu_ticks(pid) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


# ------------------------------------------------------------------ create / destroy


def test_create_destroy_leaves_nothing(make_cg):
    cg = make_cg(create=False)
    assert not any(os.path.exists(d) for d in cg.dirs())
    cg.create()
    assert cg.dirs() and all(os.path.isdir(d) for d in cg.dirs())
    if cg.kind == "hybrid":
        assert cg.unified.startswith(cg.layout.unified + "/")
        assert "name=systemd" in cg.paths
    cg.destroy()
    assert not any(os.path.exists(d) for d in cg.dirs())
    assert cg.created == []
    cg.destroy()  # twice is fine


def test_nested_path_and_preexisting_parent(make_cg):
    parent = make_cg()
    top = parent.cgroups_path
    child = make_cg(top + "/mid/leaf")
    for d in child.dirs():
        assert os.path.isdir(d)
    # The child made mid and leaf only; the parent existed already.
    assert all("/mid" in d for d in child.created)
    child.destroy()
    assert all(not os.path.exists(os.path.dirname(d)) for d in child.dirs())  # mid gone
    assert all(os.path.isdir(d) for d in parent.dirs())  # parent stays


def test_v1_cpuset_inherits_parent(make_cg):
    cg = make_cg()
    need_controller(cg, "cpuset")
    if cg.kind == "v2":
        pytest.skip("v1 only: v2 cpusets inherit by themselves")
    nested = make_cg(cg.cgroups_path + "/a/b")
    with open(os.path.join(os.path.dirname(cg.paths["cpuset"]), "cpuset.cpus")) as f:
        assert read(nested, "cpuset", "cpuset.cpus") == f.read().strip()
    assert read(nested, "cpuset", "cpuset.mems") != ""


def test_v2_controllers_enabled_on_the_way(make_cg):
    cg = make_cg()
    if cg.kind != "v2":
        pytest.skip("v2 only")
    nested = make_cg(cg.cgroups_path + "/a/b")
    with open(os.path.join(nested.unified, "cgroup.controllers")) as f:
        ctrls = f.read().split()
    with open(os.path.join(cg.layout.unified, "cgroup.controllers")) as f:
        root_ctrls = f.read().split()
    assert "memory" in ctrls and "pids" in ctrls and set(ctrls) <= set(root_ctrls)


def test_to_dict_from_dict_roundtrip(make_cg, layout, procs):
    cg = make_cg()
    p = procs()
    cg.add_pid(p.pid)
    d = json.loads(json.dumps(cg.to_dict()))
    again = cgroups.manager_from_state(layout, d)
    assert again.dirs() == cg.dirs() and again.created == cg.created
    assert again.pids() == [p.pid]
    again.kill_all(signal.SIGKILL)
    p.wait(timeout=10)
    assert again.wait_empty(5)
    again.destroy()
    assert not any(os.path.exists(d) for d in cg.dirs())


# ------------------------------------------------------------------ resources


def test_memory_limit(cg):
    need_controller(cg, "memory")
    cg.apply({"memory": {"limit": 64 * MiB, "reservation": 32 * MiB}})
    if cg.kind == "v2":
        assert read(cg, "memory", "memory.max") == str(64 * MiB)
        assert read(cg, "memory", "memory.low") == str(32 * MiB)
    else:
        assert read(cg, "memory", "memory.limit_in_bytes") == str(64 * MiB)
        assert read(cg, "memory", "memory.soft_limit_in_bytes") == str(32 * MiB)
    cg.apply({"memory": {"limit": -1}})
    if cg.kind == "v2":
        assert read(cg, "memory", "memory.max") == "max"
    else:
        assert int(read(cg, "memory", "memory.limit_in_bytes")) > 2**60


def test_memory_swap(cg):
    need_controller(cg, "memory")
    swap_file = "memory.swap.max" if cg.kind == "v2" else "memory.memsw.limit_in_bytes"
    if not has(cg, "memory", swap_file):
        pytest.skip("no swap accounting")
    cg.apply({"memory": {"limit": 64 * MiB, "swap": 96 * MiB}})
    if cg.kind == "v2":
        assert read(cg, "memory", "memory.swap.max") == str(32 * MiB)  # swap alone
    else:
        assert read(cg, "memory", swap_file) == str(96 * MiB)  # memory+swap
    # Growing both: the write order must keep memsw >= limit on v1.
    cg.apply({"memory": {"limit": 128 * MiB, "swap": 256 * MiB}})
    assert read(cg, "memory", "memory.max" if cg.kind == "v2" else "memory.limit_in_bytes") == str(128 * MiB)
    with pytest.raises(ConfigError) as ei:
        cg.apply({"memory": {"limit": 128 * MiB, "swap": 64 * MiB}})
    assert ei.value.pointer == "/linux/resources/memory/swap"


def test_memory_v1_extras(cg):
    need_controller(cg, "memory")
    if cg.kind == "v2":
        # No v2 file for these: ignored like runc does; useHierarchy=false is refused.
        cg.apply({"memory": {"swappiness": 10, "disableOOMKiller": True, "kernel": -1, "kernelTCP": -1}})
        with pytest.raises(ConfigError, match="hierarchical"):
            cg.apply({"memory": {"useHierarchy": False}})
        return
    cg.apply({"memory": {"swappiness": 10, "disableOOMKiller": True}})
    assert read(cg, "memory", "memory.swappiness") == "10"
    assert "oom_kill_disable 1" in read(cg, "memory", "memory.oom_control")


def test_cpu_shares(cg):
    need_controller(cg, "cpu")
    cg.apply({"cpu": {"shares": 512}})
    if cg.kind == "v2":
        assert read(cg, "cpu", "cpu.weight") == str(shares_to_weight(512))
    else:
        assert read(cg, "cpu", "cpu.shares") == "512"
        # The kernel clamps out-of-range shares: reported, not silently kept.
        with pytest.raises(ConfigError) as ei:
            cg.apply({"cpu": {"shares": 1}})
        assert ei.value.pointer == "/linux/resources/cpu/shares"


def test_cpu_quota_period_burst_idle(cg):
    need_controller(cg, "cpu")
    cg.apply({"cpu": {"quota": 50000, "period": 100000}})
    if cg.kind == "v2":
        assert read(cg, "cpu", "cpu.max") == "50000 100000"
        cg.apply({"cpu": {"period": 200000}})  # keeps the quota
        assert read(cg, "cpu", "cpu.max") == "50000 200000"
        cg.apply({"cpu": {"quota": -1}})
        assert read(cg, "cpu", "cpu.max") == "max 200000"
    else:
        assert read(cg, "cpu", "cpu.cfs_quota_us") == "50000"
        assert read(cg, "cpu", "cpu.cfs_period_us") == "100000"
        cg.apply({"cpu": {"quota": -1}})
        assert read(cg, "cpu", "cpu.cfs_quota_us") == "-1"
    burst_file = "cpu.max.burst" if cg.kind == "v2" else "cpu.cfs_burst_us"
    if has(cg, "cpu", burst_file):
        cg.apply({"cpu": {"quota": 50000, "burst": 10000}})
        assert read(cg, "cpu", burst_file) == "10000"
    if has(cg, "cpu", "cpu.idle"):
        cg.apply({"cpu": {"idle": 1}})
        assert read(cg, "cpu", "cpu.idle") == "1"
        cg.apply({"cpu": {"idle": 0}})
        assert read(cg, "cpu", "cpu.idle") == "0"


def test_cpuset(cg):
    need_controller(cg, "cpuset")
    cg.apply({"cpu": {"cpus": "0", "mems": "0"}})
    assert read(cg, "cpuset", "cpuset.cpus") == "0"
    assert read(cg, "cpuset", "cpuset.mems") == "0"


def test_value_the_kernel_refuses(cg):
    need_controller(cg, "cpuset")
    with pytest.raises(ConfigError) as ei:
        cg.apply({"cpu": {"cpus": "100000"}})
    assert ei.value.pointer == "/linux/resources/cpu/cpus"
    assert "cpuset.cpus" in str(ei.value)
    # The kernel's errno text ends the message (EINVAL or ERANGE depending on the kernel).
    texts = [os.strerror(e).lower() for e in (errno.EINVAL, errno.ERANGE, errno.ENOSPC)]
    assert any(str(ei.value).endswith(t) for t in texts), str(ei.value)


def test_pids_limit(cg):
    need_controller(cg, "pids")
    cg.apply({"pids": {"limit": 10}})
    assert read(cg, "pids", "pids.max") == "10"
    cg.apply({"pids": {"limit": 0}})  # 0 is a real limit
    assert read(cg, "pids", "pids.max") == "0"
    cg.apply({"pids": {"limit": -1}})
    assert read(cg, "pids", "pids.max") == "max"


def test_pids_limit_enforced(cg, procs):
    need_controller(cg, "pids")
    sh = procs(
        "sh",
        "-c",
        "sleep 1; if /bin/true; then echo forked; else echo refused; fi",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    cg.add_pid(sh.pid)
    cg.apply({"pids": {"limit": 1}})
    out, err = sh.communicate(timeout=30)
    # The shell cannot fork /bin/true any more (dash gives up with "Cannot fork").
    assert b"forked" not in out
    assert b"fork" in err.lower() or out.strip() == b"refused", (out, err)


def test_blkio_weight(cg):
    need_controller(cg, "io" if cg.kind == "v2" else "blkio")
    if cg.kind == "v2":
        files = [f for f in ("io.bfq.weight", "io.weight") if has(cg, None, f)]
    else:
        files = [f for f in ("blkio.weight", "blkio.bfq.weight") if has(cg, "blkio", f)]
    if not files:
        pytest.skip("no weight file (no CFQ/BFQ/iocost) on this kernel")
    cg.apply({"blockIO": {"weight": 500}})
    expect = "500" if files[0] != "io.weight" else str(blkio_weight_to_io_weight(500))
    got = read(cg, "io" if cg.kind == "v2" else "blkio", files[0])
    assert expect in got.split(), (files[0], got)


def test_blkio_throttle(cg):
    need_controller(cg, "io" if cg.kind == "v2" else "blkio")
    dev = os.stat("/dev/vda" if os.path.exists("/dev/vda") else "/proc/self/exe").st_dev
    # Only a whole block device takes a limit; find one via /sys/block.
    majmin = None
    for name in sorted(os.listdir("/sys/block")):
        try:
            with open(f"/sys/block/{name}/dev") as f:
                majmin = f.read().strip()
            break
        except OSError:
            continue
    if majmin is None:
        pytest.skip("no block device")
    del dev
    major, minor = (int(x) for x in majmin.split(":"))
    cg.apply({"blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]}})
    if cg.kind == "v2":
        assert f"{majmin} rbps=1048576" in read(cg, None, "io.max")
    else:
        assert f"{majmin} 1048576" in read(cg, "blkio", "blkio.throttle.read_bps_device")


def test_devices(cg):
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
        {"allow": True, "type": "c", "major": 136, "access": "rw"},
    ]
    from ocirt.kernel.linux import LinuxKernel

    cg.apply({"devices": rules}, LinuxKernel())  # v2: the eBPF filter, through the kernel
    got = cg.device_rules()
    assert [r.v1_line() for r in got] == ["a", "c 1:3 rwm", "c 1:5 r", "c 136:* rw"]
    if "devices" in cg.paths:
        lines = read(cg, "devices", "devices.list").splitlines()
        assert sorted(lines) == sorted(["c 1:3 rwm", "c 1:5 r", "c 136:* rw"])
    # The rules survive a state round trip (v2 needs them later for the eBPF filter).
    again = cgroups.manager_from_state(cg.layout, json.loads(json.dumps(cg.to_dict())))
    assert again.device_rules() == got


def test_unified_on_this_host(cg):
    if cg.kind == "v2":
        need_controller(cg, "pids")
        cg.apply({"unified": {"pids.max": "7"}})
        assert read(cg, None, "pids.max") == "7"
        with pytest.raises(ConfigError) as ei:
            cg.apply({"unified": {"nosuchctl.max": "1"}})
        assert ei.value.pointer == "/linux/resources/unified/nosuchctl.max"
        assert "nosuchctl" in str(ei.value)
    elif cg.kind == "hybrid":
        with pytest.raises(ConfigError) as ei:
            cg.apply({"unified": {"memory.max": "1000000"}})
        assert ei.value.pointer == "/linux/resources/unified/memory.max"
        assert "hybrid" in str(ei.value)
        # Core cgroup.* files of the unified hierarchy are fine even here.
        cg.apply({"unified": {"cgroup.max.descendants": "5"}})
        with open(os.path.join(cg.unified, "cgroup.max.descendants")) as f:
            assert f.read().strip() == "5"
    else:
        with pytest.raises(ConfigError) as ei:
            cg.apply({"unified": {"memory.max": "1000000"}})
        assert ei.value.pointer == "/linux/resources/unified"


def test_v1_only_fields_on_v2(cg):
    if cg.kind != "v2":
        pytest.skip("v2 only")
    for res, pointer in (
        ({"cpu": {"realtimeRuntime": 1000}}, "/linux/resources/cpu/realtimeRuntime"),
        ({"network": {"classID": 1}}, "/linux/resources/network"),
        ({"blockIO": {"leafWeight": 100}}, "/linux/resources/blockIO/leafWeight"),
    ):
        with pytest.raises(ConfigError) as ei:
            cg.apply(res)
        assert ei.value.pointer == pointer


def test_missing_controller_is_config_error(cg):
    """hugetlb/net_cls are not on every host: the error names the resource."""
    missing = None
    if cg.kind == "v2":
        with open(os.path.join(cg.unified, "cgroup.controllers")) as f:
            if "hugetlb" not in f.read().split():
                missing = "hugetlb"
    elif "hugetlb" not in cg.paths:
        missing = "hugetlb"
    if missing is None:
        with pytest.raises(ConfigError) as ei:
            cg.apply({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]})
        assert ei.value.pointer == "/linux/resources/hugepageLimits/0/pageSize"
        return
    with pytest.raises(ConfigError) as ei:
        cg.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * MiB}]})
    assert ei.value.pointer == "/linux/resources/hugepageLimits/0"
    assert "hugetlb" in str(ei.value)


# ------------------------------------------------------------------ processes


def test_add_pid_every_hierarchy(cg, procs):
    p = procs()
    cg.add_pid(p.pid)
    assert cg.pids() == [p.pid]
    with open(f"/proc/{p.pid}/cgroup") as f:
        lines = f.read().splitlines()
    name = os.path.basename(cg.dirs()[0])
    assert lines and all(line.endswith("/" + name) for line in lines), lines


def test_pids_include_descendant_cgroups(cg, procs):
    a, b = procs(), procs()
    cg.add_pid(a.pid)
    sub = os.path.join(cg.path(), "inner")
    os.mkdir(sub)
    with open(os.path.join(sub, "cgroup.procs"), "w") as f:
        f.write(str(b.pid))
    assert cg.pids() == sorted([a.pid, b.pid])
    cg.kill_all(signal.SIGKILL)
    a.wait(timeout=10)
    b.wait(timeout=10)
    assert cg.wait_empty(5)
    cg.destroy()  # removes "inner" too
    assert not os.path.exists(sub)


def test_freeze_thaw(cg, procs):
    p = procs("sh", "-c", "while :; do :; done")  # burns CPU, so frozen is measurable
    cg.add_pid(p.pid)
    assert not cg.frozen()
    cg.freeze()
    assert cg.frozen()
    if cg.kind == "v2" or "freezer" not in cg.paths:
        with open(os.path.join(cg.unified, "cgroup.events")) as f:
            assert "frozen 1" in f.read().splitlines()
    else:
        assert read(cg, "freezer", "freezer.state") == "FROZEN"
    before = cpu_ticks(p.pid)
    time.sleep(0.3)
    assert cpu_ticks(p.pid) == before, "a frozen process kept running"
    cg.thaw()
    assert not cg.frozen()
    deadline = time.monotonic() + 10
    while cpu_ticks(p.pid) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cpu_ticks(p.pid) > before, "the thawed process did not run again"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_all(cg, procs, sig):
    ps = [procs(), procs()]
    for p in ps:
        cg.add_pid(p.pid)
    cg.kill_all(sig)
    for p in ps:
        assert p.wait(timeout=10) == -sig
    assert cg.wait_empty(5)
    assert not cg.frozen()


def test_kill_all_frozen_sigkill(cg, procs):
    p = procs()
    cg.add_pid(p.pid)
    cg.freeze()
    cg.kill_all(signal.SIGKILL)
    assert p.wait(timeout=10) == -signal.SIGKILL


def test_stats(cg, procs):
    p = procs()
    cg.add_pid(p.pid)
    cg.apply({"pids": {"limit": 50}} if ("pids" in cg.paths or cg.kind == "v2") else {})
    st = cg.stats()
    json.dumps(st)
    assert set(st) >= {"cpu", "memory", "pids", "blkio"}
    if "pids" in cg.paths or cg.kind == "v2":
        assert st["pids"] == {"current": 1, "limit": 50}
    assert "total" in st["cpu"].get("usage", {})
    assert "usage" in st["memory"].get("usage", {})


def test_v2_a_child_is_born_in_the_cgroup(make_cg, layout):
    """Kernel.fork_into (clone3 with CLONE_INTO_CGROUP): the child's /proc/self/cgroup names the
    container's cgroup from its first instruction; from a process with one thread (a child
    python, as pytest's workers have threads)."""
    import sys

    if layout.kind != "v2":
        pytest.skip("cgroup v2 only (the VM's list runs it)")
    cg = make_cg()
    where, moves = cg.self_placement()
    assert (where, moves) == (cg.unified, [])
    code = (
        "import os, sys\n"
        "from ocirt.kernel.linux import LinuxKernel\n"
        "pid = LinuxKernel().fork_into(sys.argv[1])\n"
        "if pid == 0:\n"
        "    with open('/proc/self/cgroup') as f:\n"
        "        sys.stdout.write(f.read())\n"
        "    sys.stdout.flush()\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, where], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"0::/{os.path.relpath(where, layout.cgroup2())}\n"
