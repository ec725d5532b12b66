"""ocirt under containerd 1.6: `ctr` drives containerd-shim-runc-v2, which drives ocirt
(`ctr run --runc-binary`). Needs root and containerd, ctr and containerd-shim-runc-v2 on PATH.

Everything is private to the session: a containerd started here with root, state and sockets under a
tmp dir D, a namespace unique to the session, ocirt's state under D/runc-root. The fixture removes all
of it again, also when a test fails: containers and tasks, the containerd process (by PID), the shims
of the namespace (by PID), D, the namespace's cgroups and the shim sockets this run left in
/run/containerd/s. See /work/shared/ENGINES.md for what the shim calls.
"""
import hashlib
import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest
from engine_helpers import rmdir_tree

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OCIRT = os.path.join(REPO, ".venv", "bin", "ocirt")
SHIM_SOCKETS = "/run/containerd/s"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not all(shutil.which(b) for b in ("containerd", "ctr", "containerd-shim-runc-v2")),
                       reason="containerd, ctr or containerd-shim-runc-v2 not installed"),
    pytest.mark.skipif(not os.access(OCIRT, os.X_OK), reason=f"{OCIRT} missing"),
]

CONFIG = """version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = "{d}/debug.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"""


def _pids_matching(needle):
    """PIDs (other than this one) whose command line contains every string of needle."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if cmdline and all(n.encode() in cmdline for n in needle):
            found.append(int(entry))
    return found




class Containerd:
    def __init__(self, d, ns):
        self.d = d
        self.ns = ns
        self.address = f"{d}/containerd.sock"
        self.proc = None
        self.ids = set()  # every container id this session used

    def ctr(self, *args, timeout=60, check=True, **kw):
        res = subprocess.run(["ctr", "-a", self.address, "-n", self.ns, *args], check=False,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=timeout, **kw)
        if check:
            assert res.returncode == 0, f"ctr {' '.join(args)}: rc={res.returncode}\n{res.stdout}{res.stderr}"
        return res

    def run(self, flags, rootfs, cid, *cmd, **kw):
        self.ids.add(cid)
        # urfave/cli stops at the first positional argument: every flag goes before the rootfs.
        return self.ctr("run", "--runtime", "io.containerd.runc.v2", "--runc-binary", OCIRT,
                        "--runc-root", f"{self.d}/runc-root", "--fifo-dir", f"{self.d}/fifo",
                        *flags, "--rootfs", rootfs, cid, *cmd, **kw)

    def task_status(self, cid):
        for line in self.ctr("tasks", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return fields[-1]
        return None


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("containerd"))
    ns = f"ocirt-test-{uuid.uuid4().hex[:8]}"
    sockets_before = set(os.listdir(SHIM_SOCKETS)) if os.path.isdir(SHIM_SOCKETS) else set()
    with open(f"{d}/config.toml", "w") as f:
        f.write(CONFIG.format(d=d))
    os.makedirs(f"{d}/fifo")
    c = Containerd(d, ns)
    with open(f"{d}/containerd.log", "w") as log:
        c.proc = subprocess.Popen(["setsid", "containerd", "--config", f"{d}/config.toml"],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while c.ctr("version", check=False, timeout=10).returncode != 0:
            if c.proc.poll() is not None:
                with open(f"{d}/containerd.log") as f:
                    pytest.fail(f"containerd exited:\n{f.read()}")
            assert time.monotonic() < deadline, "containerd did not come up"
            time.sleep(0.2)
        yield c
    finally:
        _teardown(c, sockets_before)


def _teardown(c, sockets_before):
    if c.proc.poll() is None:
        for line in c.ctr("tasks", "ls", check=False, timeout=20).stdout.splitlines()[1:]:
            if line.split():
                c.ctr("tasks", "kill", "-s", "SIGKILL", line.split()[0], check=False, timeout=20)
        time.sleep(0.3)
        for line in c.ctr("tasks", "ls", check=False, timeout=20).stdout.splitlines()[1:]:
            if line.split():
                c.ctr("tasks", "rm", "-f", line.split()[0], check=False, timeout=20)
        for cid in c.ctr("containers", "ls", "-q", check=False, timeout=20).stdout.split():
            c.ctr("containers", "rm", cid, check=False, timeout=20)
        c.proc.terminate()  # setsid execs containerd: this PID is containerd itself
        try:
            c.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()
    # Shims of this namespace outlive containerd when a task was not deleted: end them by PID.
    for pid in _pids_matching(["-namespace", c.ns]):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in _pids_matching([c.d + "/"]):  # anything else still running from D (container processes)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.2)
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if c.d in line.split()[4]]
    for m in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False)
    shutil.rmtree(c.d, ignore_errors=True)
    for controller in os.listdir("/sys/fs/cgroup"):
        rmdir_tree(os.path.join("/sys/fs/cgroup", controller, c.ns))
    # containerd 1.6 names a shim socket sha256(<containerd address>/<namespace>/<id>): remove only
    # those of this run's containers (other containerds may share /run/containerd/s).
    ours = {hashlib.sha256(os.path.join(c.address, c.ns, cid).encode()).hexdigest() for cid in c.ids}
    if os.path.isdir(SHIM_SOCKETS):
        for name in (set(os.listdir(SHIM_SOCKETS)) - sockets_before) & ours:
            try:
                os.unlink(os.path.join(SHIM_SOCKETS, name))
            except OSError:
                pass


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    path = tmp_path_factory.mktemp("ctr-rootfs") / "rootfs"
    subprocess.run(["sh", os.path.join(REPO, "bundles", "mkrootfs.sh"), str(path)], check=True)
    yield str(path)
    shutil.rmtree(path.parent, ignore_errors=True)


def test_run_rm_echo(containerd, rootfs):
    cid = "echo"
    res = containerd.run(["--rm"], rootfs, cid, "/bin/echo", "hello-ctr")
    assert res.stdout == "hello-ctr\n"
    assert cid not in containerd.ctr("containers", "ls", "-q").stdout.split()


def test_exit_code_propagates(containerd, rootfs):
    cid = "exit7"
    res = containerd.run(["--rm"], rootfs, cid, "/bin/sh", "-c", "exit 7", check=False)
    assert res.returncode == 7, res.stdout + res.stderr


def test_detached_exec_ps_pause_resume_kill_rm(containerd, rootfs):
    cid = "detached"
    containerd.run(["-d"], rootfs, cid, "/bin/sleep", "300")
    assert containerd.task_status(cid) == "RUNNING"

    res = containerd.ctr("tasks", "exec", "--exec-id", "e1", "--fifo-dir", f"{containerd.d}/fifo",
                         cid, "/bin/sh", "-c", "echo in-exec; tr '\\0' ' ' < /proc/1/cmdline")
    assert res.stdout == "in-exec\n/bin/sleep 300 ", res.stdout

    res = containerd.ctr("tasks", "exec", "--exec-id", "e2", "--fifo-dir", f"{containerd.d}/fifo",
                         cid, "/bin/sh", "-c", "exit 3", check=False)
    assert res.returncode == 3, res.stdout + res.stderr

    ps = containerd.ctr("tasks", "ps", cid).stdout.splitlines()
    assert ps[0].split()[0] == "PID"
    pids = [int(line.split()[0]) for line in ps[1:]]
    assert len(pids) == 1
    with open(f"/proc/{pids[0]}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"/bin/sleep", b"300"]

    containerd.ctr("tasks", "pause", cid)
    assert containerd.task_status(cid) == "PAUSED"
    containerd.ctr("tasks", "resume", cid)
    assert containerd.task_status(cid) == "RUNNING"

    containerd.ctr("tasks", "kill", "-s", "SIGKILL", cid)
    deadline = time.monotonic() + 20
    while containerd.task_status(cid) != "STOPPED":
        assert time.monotonic() < deadline, containerd.ctr("tasks", "ls").stdout
        time.sleep(0.1)
    containerd.ctr("tasks", "rm", cid)
    containerd.ctr("containers", "rm", cid)
    assert containerd.ctr("containers", "ls", "-q").stdout.split() == []
    assert not os.path.exists(f"{containerd.d}/runc-root/{cid}")
