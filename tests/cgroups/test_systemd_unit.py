"""The systemd driver without systemd: names, properties, and the order of calls (fake bus)."""

import os
import select
import shutil
import subprocess
import time

import pytest

from ocirt.cgroups import Resources, dbus, manager_for, manager_from_state, parse_mountinfo
from ocirt.cgroups.resources import DeviceRule
from ocirt.cgroups.systemd import (
    UINT64_MAX,
    SystemdCgroup,
    annotation_properties,
    device_properties,
    expand_slice,
    parse_cgroups_path,
    parse_gvariant,
    resource_properties,
)
from ocirt.errors import ConfigError, OcirtError

V = dbus.Variant
V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
HYBRID = (
    "30 23 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
    "31 23 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    "32 23 0:28 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer\n"
)


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    "path,expected",
    [
        ("system.slice:docker:abc", ("system.slice", "docker-abc.scope")),
        (":ocirt:c1", ("system.slice", "ocirt-c1.scope")),
        ("machine.slice::c1", ("machine.slice", "c1.scope")),
        ("-:p:n", ("-", "p-n.scope")),
        ("system.slice:ignored:pod-x.slice", ("system.slice", "pod-x.slice")),
        (None, ("system.slice", "ocirt-theid.scope")),
        ("", ("system.slice", "ocirt-theid.scope")),
    ],
)
def test_cgroups_path(path, expected):
    assert parse_cgroups_path(path, "theid") == expected


@pytest.mark.parametrize(
    "path",
    [
        "/a/b",
        "a:b",
        "a:b:c:d",
        "system.slice:p:",
        "x:p:n",
        "a/b.slice:p:n",
        "a--b.slice:p:n",
        "system.slice:p/q:n",
    ],
)
def test_cgroups_path_errors(path):
    with pytest.raises(ConfigError, match="/linux/cgroupsPath"):
        parse_cgroups_path(path, "id")


def test_runc_message_for_a_plain_path():
    with pytest.raises(
        ConfigError, match='expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups'
    ):
        parse_cgroups_path("/a/b", "id")


def test_expand_slice():
    assert expand_slice("system.slice") == "/system.slice"
    assert expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert expand_slice("-.slice") == "/"
    assert expand_slice("-") == "/"


def test_places():
    run_dir = os.path.dirname(__file__)  # any directory stands for /run/systemd/system
    cg = SystemdCgroup.for_systemd(parse_mountinfo(V2), "user-1000.slice:p:n", "id", run_dir=run_dir)
    assert cg.unified == "/sys/fs/cgroup/user.slice/user-1000.slice/p-n.scope"
    cg = SystemdCgroup.for_systemd(parse_mountinfo(HYBRID), None, "id", run_dir=run_dir)
    assert cg.paths == {
        "memory": "/sys/fs/cgroup/memory/system.slice/ocirt-id.scope",
        "freezer": "/sys/fs/cgroup/freezer/system.slice/ocirt-id.scope",
    }
    assert cg.unified == "/sys/fs/cgroup/unified/system.slice/ocirt-id.scope"


def test_systemd_not_running(tmp_path):
    with pytest.raises(OcirtError, match="systemd not running on this host"):
        SystemdCgroup.for_systemd(parse_mountinfo(V2), None, "id", run_dir=str(tmp_path / "no"))


# ---------------------------------------------------------------- properties


def props(resources, kind="v2", version=252):
    return dict(resource_properties(Resources.parse(resources), kind, version))


def test_v2_properties():
    p = props(
        {
            "memory": {"limit": 100 << 20, "reservation": 50 << 20, "swap": 200 << 20},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1,3"},
            "pids": {"limit": 32},
        }
    )
    assert p["MemoryMax"] == V("t", 100 << 20)
    assert p["MemoryLow"] == V("t", 50 << 20)
    assert p["MemorySwapMax"] == V("t", 100 << 20)
    assert p["CPUWeight"] == V("t", 100)
    assert p["CPUQuotaPerSecUSec"] == V("t", 500000)
    assert p["CPUQuotaPeriodUSec"] == V("t", 100000)
    assert p["AllowedCPUs"] == V("ay", bytes([0b1011]))
    assert p["TasksMax"] == V("t", 32)


def test_v1_properties_and_unlimited():
    p = props(
        {
            "memory": {"limit": -1},
            "cpu": {"shares": 512, "quota": -1},
            "blockIO": {"weight": 300},
            "pids": {"limit": -1},
        },
        kind="hybrid",
    )
    assert p["MemoryLimit"] == V("t", UINT64_MAX)
    assert p["CPUShares"] == V("t", 512)
    assert p["BlockIOWeight"] == V("t", 300)
    assert p["CPUQuotaPerSecUSec"] == V("t", UINT64_MAX)
    assert p["TasksMax"] == V("t", UINT64_MAX)
    assert "MemoryMax" not in p and "AllowedCPUs" not in p


def test_quota_rounds_up_to_10ms_and_old_systemd():
    p = props({"cpu": {"quota": 12345, "period": 100000, "cpus": "0"}}, version=240)
    assert p["CPUQuotaPerSecUSec"] == V("t", 130000)
    assert "CPUQuotaPeriodUSec" not in p and "AllowedCPUs" not in p


def test_unified_properties():
    p = props(
        {"unified": {"memory.high": "max", "pids.max": "7", "cpu.max": "20000 50000", "cpuset.mems": "0"}}
    )
    assert p["MemoryHigh"] == V("t", UINT64_MAX)
    assert p["TasksMax"] == V("t", 7)
    assert p["CPUQuotaPerSecUSec"] == V("t", 400000)
    assert p["CPUQuotaPeriodUSec"] == V("t", 50000)
    assert p["AllowedMemoryNodes"] == V("ay", b"\x01")
    with pytest.raises(ConfigError, match="/linux/resources/unified/memory.high"):
        props({"unified": {"memory.high": "lots"}})


def rule(allow, type_="a", major=None, minor=None, access="rwm"):
    return DeviceRule(allow=allow, type=type_, major=major, minor=minor, access=access)


def test_device_properties(tmp_path):
    devices = tmp_path / "devices"
    devices.write_text("Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  7 loop\n")
    p = dict(
        device_properties(
            [
                rule(False),
                rule(True, "c", 1, 3, "rwm"),
                rule(True, "c", 136, None, "rw"),
                rule(False, "c", 1, 5),
                rule(True, "b", 7, 0, "r"),
            ],
            str(devices),
        )
    )
    assert p["DevicePolicy"] == V("s", "strict")
    assert p["DeviceAllow"] == V(
        "a(ss)", [("/dev/char/1:3", "rwm"), ("char-pts", "rw"), ("/dev/block/7:0", "r")]
    )
    p = dict(device_properties([rule(False), rule(True, "c", None, None, "m")], str(devices)))
    assert p["DeviceAllow"] == V("a(ss)", [("char-*", "m")])
    # systemd cannot say "minor 3 of any major": it filters nothing, ocirt's own rules do it
    p = dict(device_properties([rule(False), rule(True, "c", None, 3, "m")], str(devices)))
    assert p == {"DevicePolicy": V("s", "auto"), "DeviceAllow": V("a(ss)", [])}
    p = dict(device_properties([rule(False), rule(True)], str(devices)))
    assert p["DevicePolicy"] == V("s", "auto")


def test_annotations():
    got = annotation_properties(
        {
            "org.systemd.property.TimeoutStopUSec": "uint64 123",
            "org.systemd.property.CollectMode": "'inactive-or-failed'",
            "org.systemd.property.SendSIGKILL": "false",
            "other": "x",
        }
    )
    assert got == [
        ("TimeoutStopUSec", V("t", 123)),
        ("CollectMode", V("s", "inactive-or-failed")),
        ("SendSIGKILL", V("b", False)),
    ]
    with pytest.raises(ConfigError, match="/annotations/org.systemd.property.X"):
        annotation_properties({"org.systemd.property.X": "[1, 2]"})
    with pytest.raises(ConfigError, match="cannot be set"):
        annotation_properties({"org.systemd.property.PIDs": "@au [1]"})
    assert parse_gvariant("@t 0x10", "/p") == V("t", 16)


# ---------------------------------------------------------------- the driver's calls


class FakeBus:
    def __init__(self, log):
        self.log = log

    def close(self):
        self.log.append(("close",))

    def version(self):
        return 252

    def start_unit(self, unit, properties):
        self.log.append(("start", unit, dict(properties)))

    def stop_unit(self, unit):
        self.log.append(("stop", unit))

    def set_properties(self, unit, properties):
        self.log.append(("set", unit, dict(properties)))


class FakeFS:
    def __init__(self, log):
        self.log = log
        self.dirs = {"/sys/fs/cgroup", "/sys/fs/cgroup/system.slice"}

    def read(self, path):
        if path.endswith("cgroup.controllers"):
            return "cpu memory pids hugetlb"
        return ""

    def write(self, path, value):
        self.log.append(("write", path, value))

    def exists(self, path):
        return path in self.dirs

    def isdir(self, path):
        return path in self.dirs

    def mkdir(self, path):
        if path in self.dirs:
            return False
        self.dirs.add(path)
        self.log.append(("mkdir", path))
        return True

    def rmdir(self, path):
        self.dirs.discard(path)
        self.log.append(("rmdir", path))

    def subdirs(self, path):
        return []

    def sleep(self, s):
        pass


def test_unit_starts_with_the_first_process_then_files_are_written():
    log = []
    cg = manager_for(
        parse_mountinfo(V2),
        "system.slice:t:c1",
        "c1",
        systemd=True,
        fs=FakeFS(log),
        bus=lambda: FakeBus(log),
        annotations={"org.systemd.property.CollectMode": "'inactive'"},
    )
    assert isinstance(cg, SystemdCgroup)
    cg.create()
    cg.apply({"memory": {"limit": 1 << 20}, "pids": {"limit": 9}})
    assert log == []  # nothing before the first process
    cg.add_pid(4242)
    start = log[0]
    assert start[:2] == ("start", "t-c1.scope")
    p = start[2]
    assert p["PIDs"] == V("au", [4242]) and p["Delegate"] == V("b", True)
    assert p["Slice"] == V("s", "system.slice") and p["MemoryMax"] == V("t", 1 << 20)
    assert p["TasksMax"] == V("t", 9) and p["CollectMode"] == V("s", "inactive")
    scope = "/sys/fs/cgroup/system.slice/t-c1.scope"
    writes = [e for e in log if e[0] == "write"]
    assert ("write", scope + "/cgroup.procs", "4242") in writes
    assert ("write", scope + "/memory.max", "1048576") in writes
    assert writes.index(("write", scope + "/cgroup.procs", "4242")) < writes.index(
        ("write", scope + "/memory.max", "1048576")
    )
    # saved and loaded again (exec, update, delete run in other processes)
    d = cg.to_dict()
    assert d["systemd"] == {"unit": "t-c1.scope", "slice": "system.slice", "started": True}
    log.clear()
    again = manager_from_state(parse_mountinfo(V2), d, fs=FakeFS(log))
    again._bus_factory = lambda: FakeBus(log)
    again.add_pid(5)  # exec: the unit exists, a plain move
    assert log == [("write", scope + "/cgroup.procs", "5")]
    log.clear()
    again.apply({"pids": {"limit": 20}})  # update: the unit first, then the file
    assert log[0] == ("set", "t-c1.scope", {"TasksMax": V("t", 20)})
    assert ("write", scope + "/pids.max", "20") in log
    log.clear()
    again.destroy()
    assert log[0] == ("stop", "t-c1.scope")


def test_a_bad_value_fails_before_the_unit():
    log = []
    cg = manager_for(parse_mountinfo(V2), None, "c1", systemd=True, fs=FakeFS(log), bus=lambda: FakeBus(log))
    with pytest.raises(ConfigError, match="/linux/resources/unified/pids.max"):
        cg.apply({"unified": {"pids.max": "many"}})
    assert log == []


# ---------------------------------------------------------------- the D-Bus wire format


def test_marshal_round_trip():
    sig = "sa(sv)a(sa(sv))a{sv}ybnqixtdgo"
    values = [
        "unit",
        [
            ("PIDs", V("au", [1, 2])),
            ("Delegate", V("b", True)),
            ("AllowedCPUs", V("ay", b"\x05")),
            ("X", V("a(ss)", [("a", "b")])),
        ],
        [],
        {"k": V("s", "v")},
        7,
        False,
        -3,
        65000,
        -70000,
        2**33,
        2**64 - 1,
        0.5,
        "a(sv)",
        "/org/x",
    ]
    got = dbus.unmarshal(sig, dbus.marshal(sig, values))
    assert got[1][2] == ("AllowedCPUs", V("ay", [5]))  # ay comes back as a list of ints
    assert list(got[:1]) + list(got[2:]) == values[:1] + values[2:]


def test_a_real_bus(tmp_path):
    """The client against dbus-daemon: authentication, Hello, calls, errors, signals."""
    daemon = shutil.which("dbus-daemon")
    if not daemon:
        pytest.skip("no dbus-daemon on this host")
    sock = f"/tmp/ocirt-dbus-{os.getpid()}-{time.monotonic_ns()}"
    proc = subprocess.Popen(
        [daemon, "--session", "--nofork", "--nopidfile", "--print-address", f"--address=unix:path={sock}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        # the address is printed once the daemon listens (the socket file exists before that)
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready and proc.stdout.readline(), "dbus-daemon did not start"
        with dbus.Connection(sock, hello=True) as c:
            (names,) = c.call(
                "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ListNames"
            )
            assert "org.freedesktop.DBus" in names
            with pytest.raises(dbus.DBusError) as e:
                c.call(
                    "org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus",
                    "GetNameOwner",
                    "s",
                    ["no.such.name"],
                )
            assert e.value.name == "org.freedesktop.DBus.Error.NameHasNoOwner"
            c.call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "RequestName",
                "su",
                ["org.ocirt.Test", 0],
            )
            (owner,) = c.call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "GetNameOwner",
                "s",
                ["org.ocirt.Test"],
            )
            assert owner.startswith(":")
            # NameAcquired is a signal the bus sent us along the way
            sig = c.wait_signal(
                lambda m: m.member == "NameAcquired" and m.body == ("org.ocirt.Test",), timeout=5
            )
            assert sig.type == dbus.SIGNAL
    finally:
        proc.terminate()
        proc.wait()
        if os.path.exists(sock):
            os.unlink(sock)
