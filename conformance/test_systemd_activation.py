"""A container run from a systemd unit: socket activation (LISTEN_FDS, LISTEN_PID) and readiness
notification (NOTIFY_SOCKET), as runc 1.1.5's create/run/start give them.

LISTEN_FDS: the runtime passes the fds systemd gave it (3 to 3+N-1) to the container's process,
before any --preserve-fds ones, and sets LISTEN_FDS=N, LISTEN_PID=1 in its env; only when
LISTEN_PID is the runtime's own pid. NOTIFY_SOCKET: the container gets a socket of its own at
/run/notify/notify.sock (a read-only bind); its first READY= goes on to the host's socket
followed by MAINPID, once `run -d` or `start` (which wait for it) or foreground `run` got it.

The notify tests send from inside with the host's systemd-notify: the bundle's rootfs is the
host's /usr (read-only) with /run and /tmp on tmpfs. The host's end is a datagram socket here.
"""

import os
import shutil
import socket
import tempfile
import time
import uuid

import pytest
from runtime import ok, one_line

SYSTEMD_NOTIFY = "/usr/bin/systemd-notify"
NOTIFY = "systemd-notify --no-block"  # (no BARRIER=1: nothing reads the socket after READY=)
IN_CONTAINER = "/run/notify/notify.sock"


# ---- socket activation ------------------------------------------------------------------------

FDS_SCRIPT = (
    'for fd in 3 4 5; do [ -e /proc/self/fd/$fd ] && head -c 2 /proc/self/fd/$fd; echo " $fd"; done; '
    "cat /proc/1/environ | tr '\\0' '\\n'"
)


def fds_and_env(out):
    """FDS_SCRIPT's report: the three fds' lines, then the LISTEN_ variables in env order."""
    lines = out.split("\n")
    return lines[:3] + [line for line in lines[3:] if line.startswith("LISTEN_")]


@pytest.fixture
def fd_files(tmp_path):
    """Three files to open as fds 3, 4, 5 (first two bytes: f1, f2, f3)."""
    names = []
    for i in (1, 2, 3):
        f = tmp_path / f"fd{i}"
        f.write_text(f"f{i}\n")
        names.append(str(f))
    return names


def activation(listen_fds, listen_pid="$$", fds=(3, 4, 5), files=()):
    """A prelude: the fds opened, the variables as systemd sets them (LISTEN_PID=$$: the shell
    execs the runtime, which keeps its pid)."""
    opens = " ".join(f"{fd}<{f}" for fd, f in zip(fds, files))
    return (
        f"exec {opens}\n" if opens else ""
    ) + f"export LISTEN_FDS='{listen_fds}' LISTEN_FDNAMES=a:b\nexport LISTEN_PID={listen_pid}"


def test_listen_fds_come_before_preserved_fds(run_in, fd_files):
    """fds 3 and 4 are systemd's, 5 the --preserve-fds one; LISTEN_FDNAMES is not passed."""
    p = run_in(
        ["sh", "-c", FDS_SCRIPT],
        extra=["--preserve-fds", "1"],
        run_kw={"prelude": activation(2, files=fd_files)},
    )
    assert fds_and_env(ok(p)) == ["f1 3", "f2 4", "f3 5", "LISTEN_FDS=2", "LISTEN_PID=1"]


def test_listen_fds_replace_the_configs_own(run_in, fd_files):
    """The variables go after the config's env; a later one wins, in the earlier one's place."""
    env = ["PATH=/usr/bin:/bin", "LISTEN_FDS=9", "A=1"]
    p = run_in(
        ["sh", "-c", "cat /proc/1/environ | tr '\\0' '\\n'"],
        process={"env": env},
        run_kw={"prelude": activation(1, files=fd_files)},
    )
    assert ok(p).split() == ["PATH=/usr/bin:/bin", "LISTEN_FDS=1", "A=1", "LISTEN_PID=1", "HOME=/root"]


@pytest.mark.parametrize("listen_pid", ["1", "", "x"])
def test_listen_fds_for_another_process_are_ignored(run_in, fd_files, listen_pid):
    """LISTEN_PID not ours: the fds are not passed, nor the variables; fd 3 is --preserve-fds'."""
    prelude = activation(2, listen_pid=listen_pid, files=fd_files)
    p = run_in(["sh", "-c", FDS_SCRIPT], extra=["--preserve-fds", "1"], run_kw={"prelude": prelude})
    assert fds_and_env(ok(p)) == ["f1 3", " 4", " 5"]


@pytest.mark.parametrize(
    "listen_fds",
    [
        "0",
        pytest.param("-1", marks=pytest.mark.runc_deviates("runc panics (makeslice: cap out of range)")),
        "x",
        " 2",
        "2 ",
        "1_0",
        "0x2",
        "99999999999999999999",
    ],
)
def test_listen_fds_that_are_no_count_are_ignored(run_in, fd_files, listen_fds):
    """As Go's strconv.Atoi reads it: no spaces, underscores or base prefixes; 0 or less is none."""
    p = run_in(["sh", "-c", FDS_SCRIPT], run_kw={"prelude": activation(listen_fds, files=fd_files)})
    assert fds_and_env(ok(p)) == [" 3", " 4", " 5"]


def test_listen_fds_reach_a_created_then_started_process(rt, make_bundle, fd_files, tmp_path):
    """create takes the fds (the init holds them); start runs the process with them."""
    out = tmp_path / "out"
    out.mkdir()
    b = make_bundle(
        ["sh", "-c", f"( {FDS_SCRIPT} ) >/tmp/out/report"],
        mutate=lambda c: c["mounts"].append(
            {"destination": "/tmp/out", "source": str(out), "options": ["bind"]}
        ),
    )
    ok(rt.create(b.id, b, prelude=activation(2, files=fd_files)))
    ok(rt.start(b.id))
    rt.wait_status(b.id, "stopped")
    assert fds_and_env((out / "report").read_text()) == [
        "f1 3",
        "f2 4",
        " 5",
        "LISTEN_FDS=2",
        "LISTEN_PID=1",
    ]


@pytest.mark.runc_deviates("runc passes whatever its own fd 4 is then (a host cgroup directory)")
@pytest.mark.parametrize("command", ["create", "run"])
def test_listen_fds_not_open_are_refused(rt, make_bundle, fd_files, command):
    """LISTEN_FDS=2 with fd 4 not open: a one-line error, nothing left behind."""
    b = make_bundle(["true"])
    extra = ["--detach"] if command == "run" else []
    p = getattr(rt, command)(b.id, b, extra=extra, prelude=activation(2, files=fd_files[:1]))
    assert p.returncode == 1, p.stderr
    assert "LISTEN_FDS=2" in one_line(p.stderr) and "fd 4" in p.stderr
    assert rt.state(b.id).returncode != 0
    assert os.listdir(rt.root) == []


# ---- the notify socket ------------------------------------------------------------------------


@pytest.fixture
def short_dir():
    """A directory with a short path (a unix socket's path is at most 107 bytes): the host's
    socket and the runtime's --root, whose <root>/<id>/notify/notify.sock the runtime binds.
    Requested before `rt`, so removed after the containers are."""
    d = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def nrt(short_dir, make_runtime):
    return make_runtime(root=os.path.join(short_dir, "r"))


class Host:
    """The host's NOTIFY_SOCKET: a bound datagram socket (systemd's end)."""

    def __init__(self, address):
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)

    def got(self, wait=0.3):
        """The datagrams sent so far (each read within `wait` s of the last)."""
        out = []
        self.sock.settimeout(wait)
        try:
            while True:
                out.append(self.sock.recv(4096))
        except TimeoutError:
            return out

    def close(self):
        self.sock.close()


@pytest.fixture
def host(short_dir):
    h = Host(os.path.join(short_dir, "host.sock"))
    yield h
    h.close()


@pytest.fixture
def usr_bundle(make_bundle, tmp_path):
    """make_bundle with the host's /usr as the rootfs (systemd-notify, sh), read-only."""
    if not os.access(SYSTEMD_NOTIFY, os.X_OK) or not os.path.islink("/bin"):
        pytest.skip(f"needs {SYSTEMD_NOTIFY} and a merged /usr (/bin -> usr/bin)")
    root = tempfile.mkdtemp(prefix="usr-root-", dir=str(tmp_path))
    for d in ("usr", "proc", "dev", "sys", "tmp", "run", "etc"):
        os.mkdir(os.path.join(root, d))
    for link in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink("/" + link):
            os.symlink(os.readlink("/" + link), os.path.join(root, link))

    def mutate(cfg):
        cfg["root"] = {"path": root, "readonly": True}
        cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/sys/fs/cgroup"] + [
            {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
        ]

    def make(script, **kw):
        return make_bundle(["sh", "-c", script], mutate=mutate, **kw)

    return make


def notify_env(address):
    return f"export NOTIFY_SOCKET='{address}'"


def pid_of(rt, cid):
    return rt.state_json(cid)["pid"]


def test_the_container_gets_a_socket_of_its_own(nrt, usr_bundle, host):
    """NOTIFY_SOCKET in the process's env; /run/notify a read-only, nosuid, nodev, noexec bind;
    the socket there bound (by `run`) before the process runs, writable by anyone."""
    script = (
        'echo "$NOTIFY_SOCKET"; '
        "grep ' /run/notify ' /proc/self/mountinfo | cut -d' ' -f6; "
        "stat -c '%A' /run/notify/notify.sock; "
        f"{NOTIFY} READY=1"  # (runc's foreground run waits for it, forever)
    )
    b = usr_bundle(script)
    out = ok(nrt.run(b.id, b, prelude=notify_env(host.address))).split()
    assert out[0] == IN_CONTAINER
    assert set(out[1].split(",")) >= {"ro", "nosuid", "nodev", "noexec"}
    assert out[2] == "srwxrwxrwx"


def test_run_detached_waits_for_ready(nrt, usr_bundle, host):
    """`run -d` returns once the container said READY=; the host gets that line alone (not the
    datagram's other assignments, nor the datagrams before), then MAINPID: the container's."""
    b = usr_bundle(f"sleep 0.5; {NOTIFY} --status=starting; {NOTIFY} READY=1 STATUS=up; sleep 1000")
    t = time.monotonic()
    ok(nrt.run(b.id, b, extra=["--detach"], prelude=notify_env(host.address)))
    assert time.monotonic() - t >= 0.5
    assert host.got(wait=0.05) == [b"READY=1\n", b"MAINPID=%d\n" % pid_of(nrt, b.id)]
    assert nrt.status(b.id) == "running"


def test_abstract_host_socket(nrt, usr_bundle):
    """'@name': the host's socket is in the abstract namespace."""
    h = Host(f"@ocirt-conformance-{uuid.uuid4().hex}")
    try:
        b = usr_bundle(f"{NOTIFY} READY=1; sleep 1000")
        ok(nrt.run(b.id, b, extra=["--detach"], prelude=notify_env(h.address)))
        assert h.got() == [b"READY=1\n", b"MAINPID=%d\n" % pid_of(nrt, b.id)]
    finally:
        h.close()


def test_start_waits_for_ready(nrt, usr_bundle, host):
    """create makes the container's end; `start` (with NOTIFY_SOCKET set) binds it, starts the
    process and returns once it said READY=."""
    b = usr_bundle(f"sleep 1; {NOTIFY} READY=1; sleep 1000")
    ok(nrt.create(b.id, b, prelude=notify_env(host.address)))
    assert host.got(wait=0.05) == []
    t = time.monotonic()
    ok(nrt.start(b.id, prelude=notify_env(host.address)))
    assert time.monotonic() - t >= 1
    assert host.got(wait=0.05) == [b"READY=1\n", b"MAINPID=%d\n" % pid_of(nrt, b.id)]


def test_start_without_the_variable_does_not_wait(nrt, usr_bundle, host):
    """The container's socket is then bound by no one: its READY= goes nowhere."""
    b = usr_bundle(f"sleep 5; {NOTIFY} READY=1; sleep 1000")
    ok(nrt.create(b.id, b, prelude=notify_env(host.address)))
    t = time.monotonic()
    ok(nrt.start(b.id))
    assert time.monotonic() - t < 4
    assert nrt.status(b.id) == "running"
    assert host.got(wait=0.1) == []


def test_start_with_the_variable_of_a_container_created_without(nrt, usr_bundle, host):
    """No socket dir to bind in: an error (runc's words), the container left created."""
    b = usr_bundle(f"{NOTIFY} READY=1; sleep 1000")
    ok(nrt.create(b.id, b))
    p = nrt.start(b.id, prelude=notify_env(host.address))
    assert p.returncode == 1
    sock = os.path.join(nrt.root, b.id, "notify", "notify.sock")
    assert one_line(p.stderr).endswith(f'listen unixgram {sock}: bind: no such file or directory"')
    assert nrt.status(b.id) == "created"


def test_foreground_run_gives_its_own_pid(nrt, usr_bundle, host):
    """Foreground `run` passes READY= on while it waits for the container: MAINPID is the
    runtime's own (it lives as long as the container)."""
    b = usr_bundle(f"{NOTIFY} READY=1; sleep 0.5")
    proc = nrt.popen("run", "--bundle", str(b), b.id, prelude=notify_env(host.address))
    nrt._remember(b.id)
    assert proc.wait(timeout=20) == 0
    assert host.got() == [b"READY=1\n", b"MAINPID=%d\n" % proc.pid]


@pytest.mark.runc_deviates(
    "runc's foreground run waits for READY= before it waits for the container: forever"
)
def test_foreground_run_of_a_container_that_never_notifies(nrt, usr_bundle, host):
    b = usr_bundle("exit 3")
    p = nrt.run(b.id, b, prelude=notify_env(host.address), timeout=10)
    assert p.returncode == 3
    assert host.got() == []


@pytest.mark.runc_deviates("runc passes on a datagram only when its first line is READY=")
def test_ready_on_any_line(nrt, usr_bundle, host):
    """sd_notify's datagram is assignments one a line: READY= may come after another."""
    b = usr_bundle(f"{NOTIFY} STATUS=x READY=2; {NOTIFY} READY=1; sleep 1000")
    ok(nrt.run(b.id, b, extra=["--detach"], prelude=notify_env(host.address)))
    assert host.got()[0] == b"READY=2\n"


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(
            "run",
            marks=pytest.mark.runc_deviates(
                "runc run -d waits until /proc/<init pid> is gone: its own unreaped child, never"
            ),
        ),
        "start",
    ],
)
def test_an_init_that_exits_without_ready_ends_the_wait(nrt, usr_bundle, host, command):
    """Nothing to pass on: the command returns (successfully: it did start the container)."""
    b = usr_bundle("sleep 0.3")
    env = notify_env(host.address)
    if command == "run":
        p = nrt.run(b.id, b, extra=["--detach"], prelude=env, timeout=10)
    else:
        ok(nrt.create(b.id, b, prelude=env))
        p = nrt.start(b.id, prelude=env, timeout=10)
    ok(p)
    assert host.got() == []


@pytest.mark.runc_deviates("runc run -d starts the container and drops the notification (exit 0)")
def test_run_with_an_unreachable_host_socket_fails_cleanly(nrt, usr_bundle, short_dir):
    b = usr_bundle(f"{NOTIFY} READY=1; sleep 1000")
    missing = os.path.join(short_dir, "missing.sock")
    p = nrt.run(b.id, b, extra=["--detach"], prelude=notify_env(missing))
    assert p.returncode == 1
    assert one_line(p.stderr).endswith(f'dial unixgram {missing}: connect: no such file or directory"')
    assert nrt.state(b.id).returncode != 0
    assert not os.path.exists(nrt.root) or os.listdir(nrt.root) == []


@pytest.mark.runc_deviates("runc starts the container, then fails on the host's socket (left running)")
def test_start_with_an_unreachable_host_socket_starts_nothing(nrt, usr_bundle, short_dir, host):
    b = usr_bundle(f"{NOTIFY} READY=1; sleep 1000")
    ok(nrt.create(b.id, b, prelude=notify_env(host.address)))
    missing = os.path.join(short_dir, "missing.sock")
    p = nrt.start(b.id, prelude=notify_env(missing))
    assert p.returncode == 1
    assert one_line(p.stderr).endswith(f'dial unixgram {missing}: connect: no such file or directory"')
    assert nrt.status(b.id) == "created"
