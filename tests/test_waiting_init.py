"""The created container's init, waiting for `start`: as the program of ocirt/waiter.S where it
may be (x86_64, ocirt.waiter.usable), else as the interpreter that set the container up, which
also goes on waiting where its way to the program fails (WAYS has one of each). Each way must
behave the same: the program starts with the same argv, environment and signal dispositions, a
stop signal ends the waiting init, and a program gone by the time of `start` is the same
one-line failure.

Root; every container has its own --root and cgroup (under a parent removed at the end), and
is deleted with --force whatever happens.
"""

import json
import os
import platform
import shutil
import uuid

import pytest
from cli_helpers import OCIRT, make_bundle, remove_cgroup_parent, run_err_to_file, waits_for_start

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

CGROUP_PARENT = "ocirt-waiting-init"
WAITER = platform.machine() == "x86_64"

# the ways the init waits: the program (where the machine runs it), or the interpreter


def _seccomp(name, action):
    def change(config):
        config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": [name], "action": action}],
        }

    return change


def _not_root(config):
    caps = ["CAP_KILL", "CAP_NET_RAW"]
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}


def _rlimit_fsize(config):
    config["process"]["rlimits"] = [{"type": "RLIMIT_FSIZE", "hard": 2048, "soft": 2048}]


def _no_pid_namespace(config):
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "pid"]


WAYS = {
    "program": lambda config: None,
    # tried: the filter fails the execveat with an errno, and the interpreter goes on
    "interpreter, execveat refused": _seccomp("execveat", "SCMP_ACT_ERRNO"),
    # tried: the memfd cannot be written whole (the program is larger than 2 KiB)
    "interpreter, no memfd": _rlimit_fsize,
    # not tried: the filter would kill the init on its way to the program
    "interpreter, memfd_create killed": _seccomp("memfd_create", "SCMP_ACT_KILL_PROCESS"),
    # not tried: an execve would leave a process that is not root its ambient capabilities only
    "interpreter, not root": _not_root,
    # not tried: no pid namespace of its own
    "interpreter, no pid namespace": _no_pid_namespace,
}


@pytest.fixture(scope="module", autouse=True)
def remove_parent_cgroup():
    yield
    remove_cgroup_parent(CGROUP_PARENT)


class Box:
    """A container of a bundle in tmp_path, with the program at /home/sh (busybox, copied: a
    test may remove it) and a file /home/out the program writes to."""

    def __init__(self, tmp_path, rootfs, args, way):
        self.id = f"wait-{uuid.uuid4().hex[:10]}"
        self.root, self.err = str(tmp_path / "root"), str(tmp_path / "stderr")
        self.opt = tmp_path / "opt"
        self.opt.mkdir(parents=True)
        self.opt.chmod(0o777)  # (a user that is not root writes there too)
        shutil.copy(os.path.join(rootfs, "bin", "busybox"), self.opt / "sh")
        bundle = make_bundle(tmp_path / "bundle", rootfs, args, cgroups_path=f"/{CGROUP_PARENT}/{self.id}")
        path = os.path.join(bundle, "config.json")
        with open(path) as f:
            config = json.load(f)
        config["mounts"].append(
            {"destination": "/home", "type": "bind", "source": str(self.opt), "options": ["rbind"]}
        )
        WAYS[way](config)
        with open(path, "w") as f:
            json.dump(config, f)
        self.bundle = bundle

    def ocirt(self, *args, err=None):
        p = run_err_to_file(OCIRT + ["--root", self.root, *args], err or self.err)
        return p.returncode, p.stderr.strip()

    def create(self) -> int:
        """The init's pid; its stderr (create's) is the file self.init_err."""
        pid_file = self.root + ".pid"
        self.init_err = self.root + ".stderr"
        rc, err = self.ocirt(
            "create", "--bundle", self.bundle, "--pid-file", pid_file, self.id, err=self.init_err
        )
        assert rc == 0, err
        with open(pid_file) as f:
            return int(f.read())

    def status(self) -> str:
        p = run_err_to_file(OCIRT + ["--root", self.root, "state", self.id], self.err, stdout=-1)
        return json.loads(p.stdout)["status"] if p.returncode == 0 else "gone"

    def delete(self):
        self.ocirt("delete", "--force", self.id)


@pytest.fixture
def box(tmp_path, busybox_rootfs):
    made = []

    def make(args, way):
        b = Box(tmp_path / str(len(made)), busybox_rootfs, args, way)
        made.append(b)
        return b

    yield make
    for b in made:
        b.delete()


def _wait_gone(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    import select

    try:
        select.select([fd], [], [], 20)
    finally:
        os.close(fd)


def _uses_program(pid: int) -> bool:
    """Whether the waiting init `pid` is the program (asked once it waits: `create` returns
    before its execve)."""
    assert waits_for_start(pid), f"init {pid} does not wait on exec.fifo"
    return os.readlink(f"/proc/{pid}/exe").startswith("/memfd:ocirt")


@pytest.mark.parametrize("way", WAYS)
def test_the_program_starts_as_from_the_interpreter(box, way):
    """The same argv and environment, no signal blocked or ignored, the waiting init itself the
    small program exactly where it may be."""
    script = 'grep -E "^Sig(Blk|Ign)" /proc/self/status > /home/out; echo "$0 $1 $FOO" >> /home/out'
    b = box(["/home/sh", "-c", script, "first"], way)
    with open(b.bundle + "/config.json") as f:
        config = json.load(f)
    config["process"]["env"].append("FOO=bar")
    with open(b.bundle + "/config.json", "w") as f:
        json.dump(config, f)
    pid = b.create()
    assert _uses_program(pid) == (WAITER and way == "program")
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = f.read().split(b"\0")[:-1]
    if _uses_program(pid):
        assert cmdline == [b"/home/sh", b"-c", script.encode(), b"first"]
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        assert rss < 1024, f"the waiting program holds {rss} KiB"
    assert b.status() == "created"
    rc, err = b.ocirt("start", b.id)
    assert rc == 0, err
    _wait_gone(pid)
    assert (b.opt / "out").read_text().split("\n") == [
        "SigBlk:\t0000000000000000",
        "SigIgn:\t0000000000000000",
        "first  bar",
        "",
    ]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("sig", ["TERM", "INT", "HUP", "QUIT"])
def test_a_stop_signal_ends_the_waiting_init(box, way, sig):
    b = box(["/home/sh", "-c", "echo ran > /home/out"], way)
    pid = b.create()
    rc, err = b.ocirt("kill", b.id, sig)
    assert rc == 0, err
    _wait_gone(pid)
    assert b.status() == "stopped"
    assert not (b.opt / "out").exists(), "the program ran"


@pytest.mark.parametrize("way", WAYS)
def test_a_program_gone_at_start_is_one_line(box, way):
    """The program removed between create and start: the container's stderr has the line that
    names it, the container is stopped; `start` itself succeeded (the execve is the program's
    own, as with runc)."""
    b = box(["/home/sh", "-c", "true"], way)
    pid = b.create()
    os.unlink(b.opt / "sh")
    rc, err = b.ocirt("start", b.id)
    _wait_gone(pid)
    assert rc == 0, err
    with open(b.init_err) as f:
        assert f.read() == "ocirt init: /home/sh: no such file or directory\n"
    assert b.status() == "stopped"
