"""linux.resources (config-linux.md "Control groups"): each resource is set, the container is run, and
the value is read back from cgroupfs twice: from the HOST (the container's cgroup directory, found
through /proc/<init pid>/cgroup of the created container) and from INSIDE the container (which has a
cgroup namespace and a `cgroup` mount at /sys/fs/cgroup, so its own cgroup is the root there).

The layout is detected at run time (v1, hybrid or pure v2) and the file names and expected values
adapt: on v2 the v1-shaped OCI fields are converted (cpu.weight from shares, memory.swap.max =
swap - limit, cpu.max "QUOTA PERIOD", io.weight/io.bfq.weight, hugetlb.<size>.max, ...).

Then behaviour: a memory limit OOM-kills a hog, a pids limit stops a fork bomb, a cpu quota caps a
busy loop, a denied device cannot be opened, `pause` freezes a counter and `update` changes live
limits.
"""

import math
import os
import shlex
import time

import pytest
from runtime import (
    CgroupLayout,
    assert_failed_cleanly,
    ok,
    pid_alive,
    read_text,
    sh,
    wait_for,
)

MiB = 1024 * 1024
SLEEP = ["sleep", "1000"]


@pytest.fixture(scope="module")
def layout():
    lay = CgroupLayout()
    if lay.kind == "none":
        pytest.skip("no cgroup hierarchy is mounted under /sys/fs/cgroup")
    return lay


def with_cgroupns(c):
    c["linux"]["namespaces"].append({"type": "cgroup"})


def need(cond, why):
    if not cond:
        pytest.skip(why)


# ---- v1 -> v2 conversions --------------------------------------------------------------------------


def weight_linear(shares):
    """cpu.shares -> cpu.weight as runc <= 1.2 converts it (linear: 1024 -> 39)."""
    return 1 + ((shares - 2) * 9999) // 262142


def weight_log(shares):
    """cpu.shares -> cpu.weight as newer runtimes convert it (a quadratic in log2(shares) through
    (2, 1), (1024, 100) and (262144, 10000): the default 1024 shares is the default weight 100)."""
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    x = math.log2(shares)
    return int(math.ceil(10 ** ((x * x + 125 * x) / 612.0 - 7.0 / 34.0)))


def io_weight(blkio_weight):
    """blkio.weight [10, 1000] -> io.weight [1, 10000] (no BFQ on v2)."""
    return 1 + (blkio_weight - 10) * 9999 // 990


def block_device():
    """(major, minor) of a real whole disk, or None."""
    try:
        names = sorted(os.listdir("/sys/block"))
    except OSError:
        return None
    for name in names:
        if name.startswith(("loop", "ram", "zram", "nbd", "sr")):
            continue
        dev = read_text(f"/sys/block/{name}/dev", "").strip()
        size = read_text(f"/sys/block/{name}/size", "0").strip() or "0"
        if dev and int(size) > 0:
            major, minor = dev.split(":")
            return int(major), int(minor)
    return None


def v1_block_weight() -> bool:
    """Whether a cgroup v1 blkio cgroup has a weight file here: only with the BFQ I/O scheduler
    (CFQ, whose blkio.weight it was, left Linux in 5.0); a kernel built without BFQ has none,
    and a weight is then refused by runc and ocirt alike."""
    try:
        names = os.listdir("/sys/block")
    except OSError:
        return False
    return any("bfq" in read_text(f"/sys/block/{n}/queue/scheduler", "").split() for n in names)


def online_cpu():
    """A cpu this process may run on (the highest, so it differs from the default '0-N')."""
    return str(max(os.sched_getaffinity(0)))


def online_mem():
    first = read_text("/sys/devices/system/node/online", "0").strip().split(",")[0]
    return first.split("-")[0] or "0"


# ---- set, run, read back -----------------------------------------------------------------------------


def parse_sections(text):
    """'@@name' lines followed by that file's content -> {name: content}."""
    out, cur = {}, None
    for line in text.splitlines():
        if line.startswith("@@"):
            cur = line[2:]
            out[cur] = ""
        elif cur is not None:
            out[cur] += line + "\n"
    return out


def read_back(rt, make_bundle, tmp_path, layout, resources, files, mutate=None):
    """Create a container with linux.resources = resources (merged into the default, which denies
    all devices), read each (controller, file) of `files` from the host while it is created, start
    it, and let it print the same files from inside. Returns (host, inside, host_dirs):
    {file: content}, {file: content}, {controller: host directory}."""
    script = "".join(f'echo "@@{name}"; cat {layout.inside_dir(ctrl)}/{name} 2>&1; ' for ctrl, name in files)

    def mut(c):
        with_cgroupns(c)
        if mutate:
            mutate(c)

    b = make_bundle(sh(script + "true"), linux={"resources": resources}, mutate=mut)
    out = os.path.join(str(tmp_path), f"{b.id}.out")
    pid_file = os.path.join(str(tmp_path), f"{b.id}.pid")
    # The container's stdout is the runtime's: a file the test can read once the container exits.
    p = rt.create(b.id, b, pid_file=pid_file, prelude=f"exec >{shlex.quote(out)}")
    assert p.returncode == 0, f"create failed: rc={p.returncode} stderr={p.stderr!r}"
    pid = int(read_text(pid_file))
    dirs = {ctrl: layout.host_dir(pid, ctrl) for ctrl, _ in files}
    for ctrl, d in dirs.items():
        assert d.endswith(b.cgroups_path), f"{ctrl}: the init's cgroup {d} is not {b.cgroups_path}"
    host = {name: read_text(os.path.join(dirs[ctrl], name), "<missing>") for ctrl, name in files}
    ok(rt.start(b.id))
    wait_for(lambda: not pid_alive(pid), what="the container's process to exit")
    inside = parse_sections(read_text(out))
    return host, inside, dirs


def first_line(text):
    return (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""


def check(host, inside, expected):
    """expected: {file: str (the whole content, stripped) or f(content) -> bool}."""
    bad = []
    for name, want in expected.items():
        for where, got in (("host", host.get(name)), ("inside", inside.get(name))):
            good = want(got or "") if callable(want) else (got or "").strip() == str(want)
            if not good:
                wanted = want.__doc__ if callable(want) else repr(str(want))
                bad.append(f"{where} {name}: got {got!r}, want {wanted}")
    assert not bad, "; ".join(bad)


def weight_is(n):
    def f(text):
        line = first_line(text)
        return line in (str(n), f"default {n}")

    f.__doc__ = f"'{n}' or 'default {n}'"
    return f


def has_line(want):
    def f(text):
        return want in [ln.strip() for ln in text.splitlines()]

    f.__doc__ = f"a line {want!r}"
    return f


# ---- memory -----------------------------------------------------------------------------------------------


def test_memory(rt, make_bundle, tmp_path, layout):
    need(layout.has("memory"), "no memory controller")
    limit, reservation, swap = 64 * MiB, 32 * MiB, 128 * MiB
    mem = {"limit": limit, "reservation": reservation}
    if layout.is_v2:
        files = {"memory.max": limit, "memory.low": reservation, "memory.swap.max": swap - limit}
        mem["swap"] = swap
    else:
        # swappiness and disableOOMKiller exist on v1 only.
        mem.update(swappiness=42, disableOOMKiller=True)
        files = {
            "memory.limit_in_bytes": limit,
            "memory.soft_limit_in_bytes": reservation,
            "memory.swappiness": 42,
            "memory.oom_control": has_line("oom_kill_disable 1"),
        }
        if os.path.exists(os.path.join(layout.v1["memory"], "memory.memsw.limit_in_bytes")):
            mem["swap"] = swap
            files["memory.memsw.limit_in_bytes"] = swap
    host, inside, dirs = read_back(
        rt, make_bundle, tmp_path, layout, {"memory": mem}, [("memory", f) for f in files]
    )
    if layout.is_v2 and not os.path.exists(os.path.join(dirs["memory"], "memory.swap.max")):
        del files["memory.swap.max"]  # no swap accounting in this kernel
    check(host, inside, files)


# ---- cpu ----------------------------------------------------------------------------------------------------


def test_cpu_shares_quota_period_cpuset(rt, make_bundle, tmp_path, layout):
    need(layout.has("cpu") and layout.has("cpuset"), "no cpu or cpuset controller")
    shares, quota, period = 512, 30000, 150000
    cpus, mems = online_cpu(), online_mem()
    cpu = {"shares": shares, "quota": quota, "period": period, "cpus": cpus, "mems": mems}
    if layout.is_v2:
        # runc 1.1.5 converts shares with the old linear formula, newer runtimes with the log one.
        weight = weight_linear(shares) if rt.is_runc else weight_log(shares)
        files = [
            ("cpu", "cpu.weight", weight),
            ("cpu", "cpu.max", f"{quota} {period}"),
            ("cpuset", "cpuset.cpus", cpus),
            ("cpuset", "cpuset.mems", mems),
        ]
    else:
        files = [
            ("cpu", "cpu.shares", shares),
            ("cpu", "cpu.cfs_quota_us", quota),
            ("cpu", "cpu.cfs_period_us", period),
            ("cpuset", "cpuset.cpus", cpus),
            ("cpuset", "cpuset.mems", mems),
        ]
    host, inside, _ = read_back(
        rt, make_bundle, tmp_path, layout, {"cpu": cpu}, [(c, f) for c, f, _ in files]
    )
    check(host, inside, {f: v for _, f, v in files})


@pytest.mark.runc_deviates("runc 1.1.5 ignores linux.resources.cpu.burst and cpu.idle (added in runc 1.2)")
def test_cpu_burst_idle(rt, make_bundle, tmp_path, layout):
    need(layout.has("cpu"), "no cpu controller")
    quota, period, burst = 50000, 100000, 20000
    if layout.is_v2:
        files = {"cpu.max": f"{quota} {period}", "cpu.max.burst": burst, "cpu.idle": 1}
    else:
        files = {
            "cpu.cfs_quota_us": quota,
            "cpu.cfs_period_us": period,
            "cpu.cfs_burst_us": burst,
            "cpu.idle": 1,
        }
    if not layout.is_v2:  # v1 has the files at the root too; v2 only below it (checked below)
        need(
            all(os.path.exists(os.path.join(layout.v1["cpu"], f)) for f in files),
            "no cpu burst/idle in this kernel",
        )
    host, inside, _ = read_back(
        rt,
        make_bundle,
        tmp_path,
        layout,
        {"cpu": {"quota": quota, "period": period, "burst": burst, "idle": 1}},
        [("cpu", f) for f in files],
    )
    need("<missing>" not in host.values(), "no cpu burst/idle in this kernel")
    check(host, inside, files)


# ---- block IO -------------------------------------------------------------------------------------------------


def test_block_io(rt, make_bundle, tmp_path, layout):
    ctrl = "io" if layout.is_v2 else "blkio"
    need(layout.has(ctrl), f"no {ctrl} controller")
    dev = block_device()
    need(dev, "no block device for a throttle entry")
    major, minor = dev
    weight, rbps, wiops = 500, 1048576, 120
    with_weight = layout.is_v2 or v1_block_weight()  # else the throttle entries alone
    resources = {
        "blockIO": {
            **({"weight": weight} if with_weight else {}),
            "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": rbps}],
            "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": wiops}],
        }
    }
    # Which weight file the kernel offers is known once the cgroup exists: read all candidates.
    if layout.is_v2:
        names = ["io.bfq.weight", "io.weight", "io.max"]
    else:
        names = [
            "blkio.bfq.weight",
            "blkio.weight",
            "blkio.throttle.read_bps_device",
            "blkio.throttle.write_iops_device",
        ]
    host, inside, _ = read_back(rt, make_bundle, tmp_path, layout, resources, [(ctrl, n) for n in names])
    if layout.is_v2:
        if host["io.bfq.weight"] != "<missing>":
            want = {"io.bfq.weight": weight_is(weight)}
        else:
            want = {"io.weight": weight_is(io_weight(weight))}
        want["io.max"] = has_line(f"{major}:{minor} rbps={rbps} wbps=max riops=max wiops={wiops}")
    else:
        want = {
            "blkio.throttle.read_bps_device": has_line(f"{major}:{minor} {rbps}"),
            "blkio.throttle.write_iops_device": has_line(f"{major}:{minor} {wiops}"),
        }
        if with_weight:
            wfile = "blkio.bfq.weight" if host["blkio.bfq.weight"] != "<missing>" else "blkio.weight"
            want[wfile] = weight_is(weight)
    check(host, inside, want)


# ---- pids, hugetlb, network ---------------------------------------------------------------------------------


def test_pids_limit(rt, make_bundle, tmp_path, layout):
    need(layout.has("pids"), "no pids controller")
    host, inside, _ = read_back(
        rt, make_bundle, tmp_path, layout, {"pids": {"limit": 77}}, [("pids", "pids.max")]
    )
    check(host, inside, {"pids.max": 77})


def test_hugepage_limits(rt, make_bundle, tmp_path, layout):
    need(
        layout.has("hugetlb"),
        "the hugetlb controller is not usable with this layout "
        "(hybrid hosts: only mounted as v1 it takes hugepageLimits)",
    )
    need(os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB"), "no 2MB huge pages")
    limit = 2 * 2 * MiB
    name = "hugetlb.2MB.max" if layout.is_v2 else "hugetlb.2MB.limit_in_bytes"
    host, inside, _ = read_back(
        rt,
        make_bundle,
        tmp_path,
        layout,
        {"hugepageLimits": [{"pageSize": "2MB", "limit": limit}]},
        [("hugetlb", name)],
    )
    check(host, inside, {name: limit})


def test_network_classid_priorities(rt, make_bundle, tmp_path, layout):
    need(not layout.is_v2, "net_cls/net_prio are cgroup v1 controllers")
    need(layout.has("net_cls") and layout.has("net_prio"), "net_cls/net_prio are not mounted")
    host, inside, _ = read_back(
        rt,
        make_bundle,
        tmp_path,
        layout,
        {"network": {"classID": 1048577, "priorities": [{"name": "lo", "priority": 5}]}},
        [("net_cls", "net_cls.classid"), ("net_prio", "net_prio.ifpriomap")],
    )
    check(host, inside, {"net_cls.classid": 1048577, "net_prio.ifpriomap": has_line("lo 5")})


# ---- unified ---------------------------------------------------------------------------------------------------


def test_unified_v2(rt, make_bundle, tmp_path, layout):
    need(layout.is_v2 and "memory" in layout.v2_controllers(), "needs pure cgroup v2 with memory")
    host, inside, _ = read_back(
        rt,
        make_bundle,
        tmp_path,
        layout,
        {"unified": {"memory.high": str(48 * MiB), "pids.max": "33"}},
        [("memory", "memory.high"), ("pids", "pids.max")],
    )
    check(host, inside, {"memory.high": 48 * MiB, "pids.max": 33})


@pytest.mark.runc_deviates(
    "runc 1.1.5 refuses every unified key unless the host is pure cgroup v2 "
    "('cannot use unified on cgroup v1'), even for a controller that the "
    "hybrid host's cgroup2 hierarchy has"
)
def test_unified_hybrid_v2_controller(rt, make_bundle, tmp_path, layout):
    """On a hybrid host, a controller that is not bound to v1 is in the cgroup2 hierarchy: a unified
    key for it is written there (the runtime enables the controller on the way)."""
    need(layout.kind == "hybrid", "needs a hybrid host")
    avail = layout.v2_controllers()
    if "hugetlb" in avail and os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB"):
        key, value = "hugetlb.2MB.max", str(4 * MiB)
    elif "pids" in avail:
        key, value = "pids.max", "33"
    else:
        pytest.skip(f"no usable controller in the hybrid cgroup2 hierarchy ({sorted(avail)})")
    host, inside, _ = read_back(rt, make_bundle, tmp_path, layout, {"unified": {key: value}}, [("", key)])
    check(host, inside, {key: value})


def test_unified_key_of_missing_controller_fails(rt, make_bundle, layout):
    """A unified key whose controller the cgroup2 hierarchy does not have (hybrid: bound to v1;
    v2: no such controller) fails create; nothing is left behind."""
    avail = layout.v2_controllers()
    key = next(k for k in ("memory.high", "pids.max", "net_cls.classid") if k.split(".")[0] not in avail)
    b = make_bundle(SLEEP, linux={"resources": {"unified": {key: "1000000"}}})
    p = rt.create(b.id, b)
    assert_failed_cleanly(rt, b, p, pointer="/linux/resources/unified")


# ---- behaviour -----------------------------------------------------------------------------------------------


def test_memory_limit_oom_kills_hog(rt, run_in, layout):
    """dd with a 64 MiB buffer in a 32 MiB cgroup (no swap) is OOM-killed: run exits 128+SIGKILL."""
    need(layout.has("memory"), "no memory controller")
    mem = {"limit": 32 * MiB}
    if layout.is_v2 or os.path.exists(os.path.join(layout.v1["memory"], "memory.memsw.limit_in_bytes")):
        mem["swap"] = 32 * MiB  # memory+swap = memory: no swapping out of the limit
    p = run_in(
        ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"], linux={"resources": {"memory": mem}}
    )
    assert p.returncode == 137, f"rc={p.returncode} stdout={p.stdout!r} stderr={p.stderr!r}"


def test_pids_limit_stops_fork_bomb(run_in, layout):
    """pids.limit 10: a loop forking sleeps hits it (fork fails), the container's init survives and
    sees the limit hit in pids.events."""
    need(layout.has("pids"), "no pids controller")
    d = layout.inside_dir("pids")
    script = (
        "sh -c 'i=0; while [ $i -lt 40 ]; do sleep 1000 & i=$((i+1)); done; echo bomb-done' 2>/dev/null; "
        f"echo bomb-rc=$?; read cur < {d}/pids.current; echo current=$cur; "
        f"while read k v; do [ $k = max ] && echo events-max=$v; done < {d}/pids.events; "
        "kill -9 -1; echo survived"
    )
    out = ok(run_in(sh(script), linux={"resources": {"pids": {"limit": 10}}}, mutate=with_cgroupns))
    vals = dict(ln.split("=", 1) for ln in out.split() if "=" in ln)
    assert "bomb-done" not in out and vals.get("bomb-rc") not in (None, "0"), out
    assert 0 < int(vals["current"]) <= 10, out
    assert int(vals.get("events-max", 0)) >= 1, out
    assert out.split()[-1] == "survived", out


def cpu_usage_seconds(layout, pid):
    if layout.is_v2:
        stat = read_text(os.path.join(layout.host_dir(pid), "cpu.stat"))
        usec = next(int(ln.split()[1]) for ln in stat.splitlines() if ln.startswith("usage_usec "))
        return usec / 1e6
    return int(read_text(os.path.join(layout.host_dir(pid, "cpuacct"), "cpuacct.usage"))) / 1e9


def test_cpu_quota_caps_busy_loop(rt, make_bundle, tmp_path, layout):
    """quota 20000/period 100000: a busy loop gets about 20% of one cpu (asserted: < 40%)."""
    need(layout.has("cpu") and (layout.is_v2 or layout.has("cpuacct")), "no cpu/cpuacct controller")
    b = make_bundle(
        sh("while :; do :; done"), linux={"resources": {"cpu": {"quota": 20000, "period": 100000}}}
    )
    pid_file = os.path.join(str(tmp_path), "pid")
    ok(rt.create(b.id, b, pid_file=pid_file))
    pid = int(read_text(pid_file))
    ok(rt.start(b.id))
    time.sleep(0.2)
    u0, t0 = cpu_usage_seconds(layout, pid), time.monotonic()
    time.sleep(1.0)
    u1, t1 = cpu_usage_seconds(layout, pid), time.monotonic()
    share = (u1 - u0) / (t1 - t0)
    assert 0 < share < 0.4, f"the busy loop used {share:.0%} of a cpu with a 20% quota"


OPEN_W = (
    "r=$( ( exec 3>>{0} ) 2>&1 ) && echo {1}=opened || "
    '{{ case "$r" in *"Operation not permitted"*) echo {1}=eperm;; *) echo {1}=other;; esac; }}; '
)


def test_denied_device_cannot_be_opened(run_in):
    """linux.devices makes two nodes under new names: c 1:5 (zero; always allowed as a default
    device) and c 1:11 (kmsg; a write-only open needs no privilege), which linux.resources.devices
    denies (after the default deny-all): opening it fails with EPERM. The zero node reads zeros. A
    node the container makes itself (CAP_MKNOD) for c 1:6 (no driver: ENXIO if the open got past
    the device cgroup) fails with EPERM too: that tells "no filter at all" from a wrong one.
    On v2 this is the runtime's eBPF device program.

    (A deny of c 1:5 itself cannot be tested: runtimes append the default devices' allow rules,
    c 1:5 rwm among them, after the config's rules.)"""
    caps = ["CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

    def mutate(c):
        c["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        c["linux"]["devices"] = [
            {"path": "/dev/cg-zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666},
            {"path": "/dev/cg-kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o222},
        ]
        c["linux"]["resources"]["devices"].append(
            {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rwm"}
        )

    script = (
        "echo zero=$(head -c 4 /dev/cg-zero | od -An -tx1 | tr -d ' '); "
        + OPEN_W.format("/dev/cg-kmsg", "config-node")
        + "mknod /dev/cg-unlisted c 1 6 && "
        + OPEN_W.format("/dev/cg-unlisted", "unlisted-node")
        + "true"
    )
    out = ok(run_in(sh(script), mutate=mutate))
    got = dict(ln.split("=", 1) for ln in out.split() if "=" in ln)
    assert got.get("zero") == "00000000", out
    assert got.get("unlisted-node") == "eperm", f"no device filter at all (c 1:6 got past it): {out!r}"
    assert got.get("config-node") == "eperm", (
        f"the linux.devices node c 1:11 opens although linux.resources.devices denies it: {out!r}"
    )


def test_pause_freezes_counter(rt, make_bundle, tmp_path, layout):
    """A shell loop counting into a file on a tmpfs: unchanged for 0.5 s while paused (the cgroup
    is frozen in cgroupfs), counting again after resume."""
    b = make_bundle(sh("i=0; while :; do i=$((i+1)); echo $i > /tmp/counter; done"))
    pid_file = os.path.join(str(tmp_path), "pid")
    ok(rt.create(b.id, b, pid_file=pid_file))
    pid = int(read_text(pid_file))
    counter = f"/proc/{pid}/root/tmp/counter"
    ok(rt.start(b.id))
    wait_for(lambda: read_text(counter, "").strip() not in ("", "0"), what="the counter to count")
    ok(rt("pause", b.id))
    assert rt.status(b.id) == "paused"
    if layout.is_v2 or "freezer" not in layout.v1:
        assert read_text(os.path.join(layout.host_dir(pid), "cgroup.freeze")).strip() == "1"
    else:
        assert read_text(os.path.join(layout.host_dir(pid, "freezer"), "freezer.state")).strip() == "FROZEN"
    before = read_text(counter, "")
    time.sleep(0.5)
    assert read_text(counter, "") == before, "the counter moved while the container was paused"
    ok(rt("resume", b.id))
    wait_for(lambda: read_text(counter, "") not in ("", before), what="the counter to move after resume")


def test_update_memory_and_pids_limit(rt, make_bundle, tmp_path, layout):
    """`update --memory/--pids-limit` on a running container changes the limits in cgroupfs."""
    need(layout.has("memory") and layout.has("pids"), "no memory or pids controller")
    b = make_bundle(SLEEP, linux={"resources": {"memory": {"limit": 64 * MiB}, "pids": {"limit": 50}}})
    pid_file = os.path.join(str(tmp_path), "pid")
    ok(rt.create(b.id, b, pid_file=pid_file))
    pid = int(read_text(pid_file))
    ok(rt.start(b.id))
    mem_file = "memory.max" if layout.is_v2 else "memory.limit_in_bytes"

    def limits():
        return (
            read_text(os.path.join(layout.host_dir(pid, "memory"), mem_file)).strip(),
            read_text(os.path.join(layout.host_dir(pid, "pids"), "pids.max")).strip(),
        )

    assert limits() == (str(64 * MiB), "50")
    ok(rt("update", "--memory", str(96 * MiB), "--pids-limit", "42", b.id))
    assert limits() == (str(96 * MiB), "42")


def test_memory_limit_too_low_for_the_init_fails_create_saying_so(rt, make_bundle):
    """A memory limit the init cannot live in: create fails and leaves nothing behind; ocirt, whose
    init is in its cgroup with its limits from the start, says it was OOM-killed (runc's words for
    it; runc 1.1.5 here fails to set the limit under the usage its init already has)."""
    b = make_bundle(["true"], linux={"resources": {"memory": {"limit": 1 << 20}}})
    p = rt.create(b.id, b)
    assert_failed_cleanly(rt, b, p)
    if rt.is_ocirt:
        assert "container init was OOM-killed (memory limit too low?)" in p.stderr, p.stderr
