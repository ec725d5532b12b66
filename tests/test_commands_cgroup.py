"""pause, resume, ps, events, update (and kill --all / delete cleanup) through the CLI, as root.

Every test drives `python -m ocirt` (the source tree) as a subprocess with its own --root, a
unique container id and a unique absolute cgroupsPath, and checks at teardown that the container
is gone and that no directory of its cgroup is left in any hierarchy. The busybox rootfs is built
once per session (per xdist worker) with bundles/mkrootfs.sh.

`create` runs with stdout/stderr on DEVNULL/a file: the container inherits them, so a pipe
would never reach EOF.
"""

from __future__ import annotations

import glob
import json
import os
import select
import subprocess
import sys
import time
import uuid

import pytest

from ocirt import cgroups
from ocirt.cgroups.update import from_json, merge_update, ram_in_bytes
from ocirt.commands.events import parse_duration, runc_stats

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MKROOTFS = os.path.join(REPO, "bundles", "mkrootfs.sh")
OCIRT = [sys.executable, "-m", "ocirt"]
BUSY = ["sh", "-c", "while :; do :; done"]

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (containers, cgroupfs)")


# -- pure functions (no root) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("5s", 5.0),
        ("100ms", 0.1),
        ("1m", 60.0),
        ("1h2m3.5s", 3723.5),
        ("0", 0.0),
        ("1.5s", 1.5),
        ("-2s", -2.0),
        ("250us", 0.00025),
        ("10ns", 1e-8),
        (".5s", 0.5),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "", "1x", "s", "1.s.", "-", "1 s", "5S"])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    "text,size",
    [
        ("1024", 1024),
        ("100m", 100 << 20),
        ("1g", 1 << 30),
        ("1.5g", 3 << 29),
        ("100kb", 102400),
        ("512KiB", 512 << 10),
        ("2 M", 2 << 20),
        ("7b", 7),
        ("1T", 1 << 40),
    ],
)
def test_ram_in_bytes(text, size):
    assert ram_in_bytes(text) == size


@pytest.mark.parametrize("text", ["100x", "-5", "m", "", "1.2.3m", "1e3"])
def test_ram_in_bytes_refuses(text):
    with pytest.raises(ValueError):
        ram_in_bytes(text)


def test_update_json_takes_runc_fields_only():
    delta = from_json(
        json.dumps(
            {
                "memory": {"limit": 0, "swap": 200, "swappiness": 10},
                "pids": {"limit": 0},
                "cpu": {"shares": 512, "cpus": ""},
                "blockIO": {"weight": 300, "leafWeight": 20},
                "devices": [{"allow": False, "access": "rwm"}],
                "hugepageLimits": [],
            }
        )
    )
    assert delta == {"memory": {"limit": 0, "swap": 200}, "cpu": {"shares": 512}, "blockIO": {"weight": 300}}


def test_update_unlimited_memory_means_unlimited_swap():
    assert from_json('{"memory": {"limit": -1}}') == {"memory": {"limit": -1, "swap": -1}}


def test_update_merges_and_rolls_back():
    base = {"memory": {"limit": 100, "swap": 300}, "pids": {"limit": 5}, "devices": [{"allow": False}]}
    apply, record, back = merge_update({"memory": {"limit": 200}, "cpu": {"shares": 2}}, base, v2=False)
    assert apply == {"memory": {"limit": 200}, "cpu": {"shares": 2}}
    assert record == {"memory": {"limit": 200, "swap": 300}, "pids": {"limit": 5}, "cpu": {"shares": 2}}
    assert back == {"memory": {"limit": 100}}
    # v2: memory.swap.max = swap - limit, so a new limit is written with the recorded swap
    apply, _, back = merge_update({"memory": {"limit": 200}}, base, v2=True)
    assert apply == {"memory": {"limit": 200, "swap": 300}}
    assert back == {"memory": {"limit": 100, "swap": 300}}


def test_runc_stats_shape():
    data = runc_stats(
        {
            "cpu": {"usage": {"total": 5}},
            "memory": {"usage": {"limit": 9, "usage": 3}},
            "pids": {"current": 1, "limit": 0},
            "blkio": {},
            "hugetlb": {},
        }
    )
    assert list(data) == [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    ]
    assert data["cpu"] == {"usage": {"total": 5, "kernel": 0, "user": 0}, "throttling": {}}
    assert data["pids"] == {"current": 1}
    assert data["memory"]["usage"] == {"limit": 9, "usage": 3, "failcnt": 0}
    assert data["network_interfaces"] is None


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    dest = tmp_path_factory.mktemp("cgroup-bundle") / "rootfs"
    subprocess.run(["sh", MKROOTFS, str(dest)], check=True)
    return str(dest)


@pytest.fixture(scope="session")
def layout():
    return cgroups.detect()


def ocirt(*args, root, input=None, timeout=60):
    return subprocess.run(
        [*OCIRT, "--root", root, *args],
        cwd=REPO,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Ctr:
    """One container: id, --root, bundle, cgroupsPath; helpers that run ocirt on it."""

    def __init__(self, tmp_path, rootfs, layout, args, resources=None):
        tag = uuid.uuid4().hex[:10]
        self.id = f"cgt-{os.environ.get('PYTEST_XDIST_WORKER', 'gw')}-{tag}"
        self.root = str(tmp_path / "state")
        self.bundle = tmp_path / "bundle"
        self.bundle.mkdir()
        self.cgroups_path = f"/ocirt-cgtest-{os.getpid()}-{tag}"
        self.layout = layout
        spec = subprocess.run(
            [*OCIRT, "spec", "--bundle", str(self.bundle)], cwd=REPO, capture_output=True, text=True
        )
        assert spec.returncode == 0, spec.stderr
        cfg = json.loads((self.bundle / "config.json").read_text())
        cfg["root"] = {"path": rootfs, "readonly": True}
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = list(args)
        cfg.setdefault("linux", {})["cgroupsPath"] = self.cgroups_path
        if resources is not None:
            cfg["linux"]["resources"] = resources
        (self.bundle / "config.json").write_text(json.dumps(cfg))
        self.cg = cgroups.manager_for(layout, self.cgroups_path, self.id)
        self.created = False

    def run(self, *args, input=None, ok=True):
        r = ocirt(*args, root=self.root, input=input)
        if ok:
            assert r.returncode == 0, f"ocirt {' '.join(args)}: {r.stderr}"
        return r

    def create(self, start=True):
        err = self.bundle / "create.err"
        with open(err, "w") as f:
            rc = subprocess.run(
                [*OCIRT, "--root", self.root, "create", "--bundle", str(self.bundle), self.id],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=f,
                timeout=60,
            ).returncode
        assert rc == 0, err.read_text()
        self.created = True
        if start:
            self.run("start", self.id)
        return self

    def state(self) -> dict:
        return json.loads(self.run("state", self.id).stdout)

    @property
    def pid(self) -> int:
        return self.state()["pid"]

    def file(self, controller: str, v1: str, v2: str) -> str:
        if self.layout.kind == "v2":
            return os.path.join(self.cg.unified, v2)
        return os.path.join(self.cg.path(controller), v1)

    def read(self, controller: str, v1: str, v2: str) -> str:
        with open(self.file(controller, v1, v2)) as f:
            return f.read().strip()

    def leftover_cgroups(self) -> list:
        name = self.cgroups_path.lstrip("/")
        return glob.glob(f"/sys/fs/cgroup/*/{name}") + glob.glob(f"/sys/fs/cgroup/{name}")

    def cleanup(self):
        if self.created:
            ocirt("delete", "--force", self.id, root=self.root)
        assert not os.path.exists(os.path.join(self.root, self.id)), "state left behind"
        left = self.leftover_cgroups()
        for d in left:  # do not leak into other tests, but fail this one
            for sub, _dirs, _files in sorted(os.walk(d), key=lambda t: -t[0].count("/")):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
        assert left == [], "cgroup directories left behind"


@pytest.fixture
def make(tmp_path, rootfs, layout):
    made = []
    n = iter(range(100))

    def factory(args=("sleep", "1000"), resources=None):
        d = tmp_path / f"c{next(n)}"
        d.mkdir()
        c = Ctr(d, rootfs, layout, args, resources)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.cleanup()


def message(r) -> str:
    """The error message of a failed ocirt run (its log line is time=.. level=error msg="...")."""
    line = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    _, sep, quoted = line.partition(" msg=")
    return json.loads(quoted) if sep else line


def utime(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return int(data[data.rindex(")") + 2 :].split()[11])


def wait_for(fn, timeout=5.0, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


# -- pause / resume ----------------------------------------------------------------------------------


@root_only
def test_pause_freezes_and_resume_thaws_a_busy_loop(make):
    c = make(BUSY).create()
    pid = c.pid
    assert wait_for(lambda: utime(pid) > 0)
    c.run("pause", c.id)
    assert c.state()["status"] == "paused"
    if c.layout.kind != "v2" and "freezer" in c.cg.paths:
        assert c.read("freezer", "freezer.state", "") == "FROZEN"
    else:
        assert c.read("", "", "cgroup.freeze") == "1"
    before = utime(pid)
    time.sleep(0.3)
    assert utime(pid) == before, "a frozen busy loop kept running"
    c.run("resume", c.id)
    assert c.state()["status"] == "running"
    assert wait_for(lambda: utime(pid) > before), "the busy loop did not run again"


@root_only
def test_pause_and_resume_refusals(make):
    c = make().create()
    c.run("pause", c.id)
    r = c.run("pause", c.id, ok=False)
    assert r.returncode == 1
    c.run("resume", c.id)
    r = c.run("resume", c.id, ok=False)
    assert r.returncode == 1 and "container not paused" in message(r)
    r = c.run("pause", ok=False)
    assert r.returncode == 1 and '"pause" requires exactly 1 argument(s)' in message(r)
    r = c.run("resume", "no-such-container", ok=False)
    assert r.returncode == 1 and "container does not exist" in message(r)
    c.run("kill", c.id, "KILL")
    assert wait_for(lambda: c.state()["status"] == "stopped")
    r = c.run("pause", c.id, ok=False)
    assert r.returncode == 1 and "container not running" in message(r)


@root_only
def test_pause_and_resume_a_created_container(make):
    c = make(["sh", "-c", "echo started > /dev/null; sleep 1000"]).create(start=False)
    c.run("pause", c.id)
    c.run("resume", c.id)
    assert c.state()["status"] == "created"
    c.run("start", c.id)
    assert c.state()["status"] == "running"


@root_only
def test_state_of_a_paused_created_container(make):
    c = make().create(start=False)
    c.run("pause", c.id)
    assert c.state()["status"] == "paused"


@root_only
def test_delete_force_of_a_paused_container(make):
    c = make(["sh", "-c", "sleep 1000 & sleep 1000 & wait"]).create()
    assert wait_for(lambda: len(c.cg.pids()) == 3)
    pids = c.cg.pids()
    c.run("pause", c.id)
    r = c.run("delete", c.id, ok=False)
    assert r.returncode == 1 and "not stopped" in message(r)
    c.run("delete", "--force", c.id)
    c.created = False
    assert not any(alive(p) for p in pids)


# -- ps ---------------------------------------------------------------------------------------------


@root_only
def test_ps_json_lists_the_init_pid(make):
    c = make(["sh", "-c", "sleep 1000 & wait"]).create()
    pid = c.pid
    assert wait_for(lambda: len(c.cg.pids()) == 2)
    pids = json.loads(c.run("ps", "--format", "json", c.id).stdout)
    assert pid in pids and len(pids) == 2
    assert json.loads(c.run("ps", "-f", "json", c.id).stdout) == pids


@root_only
def test_ps_table_filters_host_ps(make):
    c = make().create()
    pid = c.pid
    out = c.run("ps", c.id).stdout.splitlines()
    assert out[0].split()[:3] == ["UID", "PID", "PPID"]
    assert [int(line.split()[1]) for line in out[1:]] == [pid]
    out = c.run("ps", c.id, "-o", "pid,comm").stdout.splitlines()
    assert out[0].split() == ["PID", "COMMAND"]
    assert [line.split() for line in out[1:]] == [[str(pid), "sleep"]]


@root_only
def test_ps_errors(make):
    c = make().create()
    r = c.run("ps", "--format", "xml", c.id, ok=False)
    assert r.returncode == 1 and "invalid format option" in message(r)
    r = c.run("ps", ok=False)
    assert r.returncode == 1 and "requires a minimum of 1 argument(s)" in message(r)
    r = c.run("ps", c.id, "--no-such-ps-option", ok=False)
    assert r.returncode == 1 and "exit status" in message(r)
    c.run("kill", c.id, "KILL")
    assert wait_for(lambda: c.state()["status"] == "stopped")
    assert c.run("ps", "-f", "json", c.id).stdout == "null\n"


# -- events -----------------------------------------------------------------------------------------


@root_only
def test_events_stats(make):
    c = make(resources={"pids": {"limit": 64}}).create()
    lines = c.run("events", "--stats", c.id).stdout.splitlines()
    assert len(lines) == 1
    ev = json.loads(lines[0])
    assert ev["type"] == "stats" and ev["id"] == c.id
    data = ev["data"]
    assert data["pids"] == {"current": 1, "limit": 64}
    assert data["memory"]["usage"]["usage"] > 0
    assert "limit" in data["memory"]["usage"]
    assert data["cpu"]["usage"]["total"] > 0


@root_only
def test_events_stream_until_the_container_stops(make):
    c = make().create()
    p = subprocess.Popen(
        [*OCIRT, "--root", c.root, "events", "--interval", "100ms", c.id],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first, second = json.loads(p.stdout.readline()), json.loads(p.stdout.readline())
        assert first["type"] == second["type"] == "stats"
        assert second["data"]["pids"]["current"] == 1
        c.run("kill", c.id, "KILL")
        rest, _ = p.communicate(timeout=20)  # keeps reading: a full pipe would block events
        assert p.returncode == 0
        assert all(json.loads(line)["type"] == "stats" for line in rest.splitlines())
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@root_only
def test_events_oom(make):
    # tail keeps everything it reads from /dev/zero: OOM-killed again and again (so the event
    # comes even if events starts slowly, after the first kill)
    c = make(
        ["sh", "-c", "while :; do tail /dev/zero; sleep 0.1; done"], resources={"memory": {"limit": 32 << 20}}
    ).create()
    p = subprocess.Popen(
        [*OCIRT, "--root", c.root, "events", "--interval", "1h", c.id],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([p.stdout], [], [], 60)
        assert ready, "no oom event within 60s"
        ev = json.loads(p.stdout.readline())
        assert ev == {"type": "oom", "id": c.id}
    finally:
        p.kill()
        p.wait()


@root_only
def test_events_errors(make):
    c = make().create()
    for interval, msg in (
        ("5", 'invalid value "5" for flag -interval: parse error'),
        ("0", "duration interval must be greater than 0"),
    ):
        r = c.run("events", "--interval", interval, c.id, ok=False)
        assert r.returncode == 1 and msg in message(r)
    c.run("kill", c.id, "KILL")
    assert wait_for(lambda: c.state()["status"] == "stopped")
    r = c.run("events", "--stats", c.id, ok=False)
    assert r.returncode == 1 and f"container with id {c.id} is not running" in message(r)


# -- update -----------------------------------------------------------------------------------------


def memory_limit(c) -> int:
    v = c.read("memory", "memory.limit_in_bytes", "memory.max")
    return -1 if v == "max" else int(v)


@root_only
def test_update_memory_and_pids_flags(make):
    c = make().create()
    c.run("update", "--memory", "100m", "--pids-limit", "50", c.id)
    assert memory_limit(c) == 100 << 20
    assert c.read("pids", "pids.max", "pids.max") == "50"
    c.run("update", "--memory", "1g", c.id)  # pids unchanged
    assert memory_limit(c) == 1 << 30
    assert c.read("pids", "pids.max", "pids.max") == "50"
    c.run("update", "--pids-limit", "-1", c.id)
    assert c.read("pids", "pids.max", "pids.max") == "max"
    with open(os.path.join(c.root, c.id, "state.json")) as f:
        recorded = json.load(f)["cgroup"]["resources"]
    assert recorded["memory"]["limit"] == 1 << 30 and recorded["pids"]["limit"] == -1


@root_only
def test_update_resources_from_stdin(make):
    c = make().create()
    doc = {
        "memory": {"limit": 64 << 20},
        "pids": {"limit": 33},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    }
    c.run("update", "--resources", "-", c.id, input=json.dumps(doc))
    assert memory_limit(c) == 64 << 20
    assert c.read("pids", "pids.max", "pids.max") == "33"
    if c.layout.kind == "v2":
        assert c.read("cpu", "", "cpu.max") == "50000 100000"
    else:
        assert c.read("cpu", "cpu.cfs_quota_us", "") == "50000"
        assert c.read("cpu", "cpu.shares", "") == "512"


@root_only
def test_update_resources_from_a_file_ignores_the_flags(make, tmp_path):
    c = make().create()
    f = tmp_path / "res.json"
    f.write_text(json.dumps({"pids": {"limit": 21}}))
    c.run("update", f"--resources={f}", "--pids-limit", "99", c.id)
    assert c.read("pids", "pids.max", "pids.max") == "21"


@root_only
def test_update_a_paused_container(make):
    c = make().create()
    c.run("pause", c.id)
    c.run("update", "--pids-limit", "12", c.id)
    assert c.read("pids", "pids.max", "pids.max") == "12"
    assert c.state()["status"] == "paused"


@root_only
def test_update_errors(make):
    c = make().create()
    cases = [
        (("--memory", "100x"), "invalid value for memory: invalid size: '100x'"),
        (
            ("--cpu-share", "abc"),
            'invalid value for cpu-share: strconv.ParseUint: parsing "abc": invalid syntax',
        ),
        (("--blkio-weight", "x"), 'invalid value "x" for flag -blkio-weight: parse error'),
        (("--resources", "/nonexistent/res.json"), "open /nonexistent/res.json"),
    ]
    for flags, msg in cases:
        r = c.run("update", *flags, c.id, ok=False)
        assert r.returncode == 1 and msg in message(r), (flags, r.stderr)
    r = c.run("update", "-r", "-", c.id, input="garbage", ok=False)
    assert r.returncode == 1
    r = c.run("update", ok=False)
    assert r.returncode == 1 and '"update" requires exactly 1 argument(s)' in message(r)
    if c.layout.kind != "v2":
        # v1: a limit below the usage is refused (EBUSY); the old limit is kept. (v2 takes any
        # limit and reclaims or OOM-kills instead.)
        c.run("update", "--memory", "256m", c.id)
        r = c.run("update", "--memory", "4096", c.id, ok=False)
        assert r.returncode == 1 and "unable to set memory limit to 4096" in message(r)
        assert memory_limit(c) == 256 << 20
        with open(os.path.join(c.root, c.id, "state.json")) as f:
            assert json.load(f)["cgroup"]["resources"]["memory"]["limit"] == 256 << 20
    c.run("kill", c.id, "KILL")
    assert wait_for(lambda: c.state()["status"] == "stopped")
    r = c.run("update", "--pids-limit", "5", c.id, ok=False)
    assert r.returncode == 1


# -- kill --all / delete -----------------------------------------------------------------------------


@root_only
def test_kill_all_then_delete_leaves_nothing(make):
    c = make(["sh", "-c", "sleep 1000 & sleep 1000 & wait"]).create()
    assert wait_for(lambda: len(c.cg.pids()) == 3)
    pids = c.cg.pids()
    c.run("kill", "--all", c.id, "KILL")
    assert c.cg.pids() == []
    c.run("delete", c.id)
    c.created = False
    assert not any(alive(p) for p in pids)


@root_only
def test_kill_sigkill_of_a_paused_container(make):
    c = make().create()
    c.run("pause", c.id)
    c.run("kill", c.id, "KILL")
    assert wait_for(lambda: c.state()["status"] == "stopped")
    c.run("delete", c.id)
    c.created = False
