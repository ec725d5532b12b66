"""ocirt.sdnotify: socket activation's variables, the notify socket's relay, and what create
does with them (through `ocirt plan`'s recording kernel)."""

import os
import posix
import socket
import threading

import pytest

from ocirt import kernel as k
from ocirt import plan as plan_mod
from ocirt import sdnotify
from ocirt.checks import CreateOptions
from ocirt.cli import main
from ocirt.errors import OcirtError
from ocirt.state import proc_start_time


@pytest.mark.parametrize(
    "text, want",
    [("2", 2), ("+2", 2), ("-1", -1), ("007", 7), (" 2", None), ("2 ", None), ("1_0", None)]
    + [("0x2", None), ("", None), ("+", None), ("٣", None), (str(2**63), None), (str(2**63 - 1), 2**63 - 1)],
)
def test_go_atoi(text, want):
    assert sdnotify.go_atoi(text) == want


def environ(monkeypatch, **values):
    for name in (b"LISTEN_FDS", b"LISTEN_PID", b"NOTIFY_SOCKET"):
        monkeypatch.delitem(posix.environ, name, raising=False)
    for name, value in values.items():
        monkeypatch.setitem(posix.environ, name.encode(), value.encode())


@pytest.mark.parametrize(
    "fds, pid, want",
    [("2", "self", 2), ("2", "1", 0), ("2", "", 0), ("0", "self", 0), ("-3", "self", 0), ("x", "self", 0)],
)
def test_listen_fds_only_for_our_pid(monkeypatch, fds, pid, want):
    environ(monkeypatch, LISTEN_FDS=fds, LISTEN_PID=str(os.getpid()) if pid == "self" else pid)
    assert sdnotify.listen_fds() == want


def test_create_options(monkeypatch):
    environ(monkeypatch, NOTIFY_SOCKET="@host")
    assert sdnotify.create_options() == {"listen_fds": 0, "notify_socket": "@host"}
    environ(monkeypatch)
    assert sdnotify.create_options() == {"listen_fds": 0, "notify_socket": None}


def test_check_listen_fds_names_the_first_missing(monkeypatch):
    monkeypatch.setattr(posix, "get_inheritable", lambda fd: fd < 5)
    sdnotify.check_listen_fds(2)
    with pytest.raises(
        OcirtError, match=r"^LISTEN_FDS=3: fd 5 is not open \(socket activation passes fds 3 to 5\)$"
    ):
        sdnotify.check_listen_fds(3)


def test_process_env_order():
    assert sdnotify.process_env(2, True) == [
        "NOTIFY_SOCKET=/run/notify/notify.sock",
        "LISTEN_FDS=2",
        "LISTEN_PID=1",
    ]
    assert sdnotify.process_env(0, False) == []


@pytest.mark.parametrize(
    "datagram, want",
    [
        (b"READY=1", b"READY=1"),
        (b"READY=1\nSTATUS=up", b"READY=1"),
        (b"STATUS=x\nREADY=2", b"READY=2"),
        (b"STATUS=x", None),
        (b"NOTREADY=1", None),
        (b"", None),
    ],
)
def test_ready_line(datagram, want):
    assert sdnotify.ready(datagram) == want


def test_address():
    assert sdnotify.address("@name") == "\0name"
    assert sdnotify.address("/run/x.sock") == "/run/x.sock"


# ---- the relay, with real sockets ------------------------------------------------------------


@pytest.fixture
def short(tmp_path_factory):
    """A short directory (a socket path is at most 107 bytes)."""
    import tempfile

    d = tempfile.mkdtemp(prefix="sdu-", dir="/tmp")
    yield d
    import shutil

    shutil.rmtree(d)


@pytest.fixture
def host(short):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = f"{short}/host.sock"
    s.bind(path)
    s.settimeout(5)
    yield path, s
    s.close()


def container_end(short):
    os.mkdir(f"{short}/c")
    os.mkdir(f"{short}/c/notify")
    return f"{short}/c"


def send(state_dir, *datagrams):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    c.connect(f"{state_dir}/notify/notify.sock")
    for d in datagrams:
        c.send(d)
    c.close()


def test_ready_then_mainpid_reach_the_host(host, short):
    path, s = host
    state_dir = container_end(short)
    n = sdnotify.Notify.connect(path)
    n.bind(state_dir)
    assert os.stat(f"{state_dir}/notify/notify.sock").st_mode & 0o777 == 0o777
    send(state_dir, b"STATUS=starting", b"READY=1\nSTATUS=up")
    me = os.getpid()
    n.wait_and_forward(me, proc_start_time(me), 1234)
    assert [s.recv(100), s.recv(100)] == [b"READY=1\n", b"MAINPID=1234\n"]
    n.close()


def test_the_wait_ends_with_the_init(host, short):
    path, s = host
    state_dir = container_end(short)
    n = sdnotify.Notify.connect(path)
    n.bind(state_dir)
    n.wait_and_forward(os.getpid(), -1, 1)  # another start time: the pid was reused
    s.settimeout(0.2)
    with pytest.raises(TimeoutError):
        s.recv(100)
    n.close()


def test_background_relay(host, short):
    path, s = host
    state_dir = container_end(short)
    n = sdnotify.Notify.connect(path)
    n.bind(state_dir)
    before = set(threading.enumerate())
    n.forward_in_background(99)
    send(state_dir, b"READY=1")
    assert [s.recv(100), s.recv(100)] == [b"READY=1\n", b"MAINPID=99\n"]
    for t in set(threading.enumerate()) - before:
        t.join(5)  # it ends after READY=
    n.close()


def test_unreachable_host_in_runcs_words(short):
    with pytest.raises(
        OcirtError, match=rf"^dial unixgram {short}/no.sock: connect: no such file or directory$"
    ):
        sdnotify.Notify.connect(f"{short}/no.sock")


def test_bind_without_the_notify_dir_in_runcs_words(host, short):
    n = sdnotify.Notify.connect(host[0])
    with pytest.raises(
        OcirtError, match=r"^listen unixgram .*/x/notify/notify.sock: bind: no such file or directory$"
    ):
        n.bind(f"{short}/x")
    n.close()


def test_notify_state_dir_makes_the_dir(short):
    sd = sdnotify.NotifyStateDir(f"{short}/root", "c1")
    sd.make_and_lock()
    assert oct(os.stat(f"{short}/root/c1/notify").st_mode & 0o777) == "0o755"
    sd.remove()
    sd.unlock()
    assert not os.path.exists(f"{short}/root/c1")


# ---- what create makes of them (the recording kernel) -----------------------------------------


def test_plan_mounts_the_notify_dir_and_sets_the_env(plan_bundle, monkeypatch):
    monkeypatch.setattr(posix, "get_inheritable", lambda fd: fd < 6)  # fds 3-5: 2 + 1 preserved
    root = str(plan_bundle / "state")
    opts = CreateOptions(
        id="c1",
        bundle=str(plan_bundle),
        root=root,
        listen_fds=2,
        preserve_fds=1,
        notify_socket="/run/systemd/notify",
    )
    p = plan_mod.build(opts)
    mounts = [s.call.args for s in p.steps if s.call.name == "mount"]
    binds = [m for m in mounts if m[0] == f"{root}/c1/notify"]
    assert binds and binds[0][1].endswith("/run/notify")
    remount = next(m for m in mounts if m[0] is None and m[1] == binds[0][1])
    flags = k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC | k.MS_REMOUNT | k.MS_BIND
    assert remount[3] == flags
    execve = next(s.call.args for s in p.steps if s.call.name == "execve")
    env = execve[2]
    env = env if isinstance(env, dict) else dict(e.split("=", 1) for e in env)
    assert env["NOTIFY_SOCKET"] == "/run/notify/notify.sock"
    assert (env["LISTEN_FDS"], env["LISTEN_PID"]) == ("2", "1")
    assert not os.path.exists(root)  # the notify dir is listed (NotifyStateDir's), not made
    assert ("mkdir", (f"{root}/c1/notify", 0o755)) in [(s.call.name, s.call.args) for s in p.steps]


def test_the_plan_command_reads_both_variables(plan_bundle, monkeypatch, capsys):
    """`ocirt plan` takes LISTEN_FDS and NOTIFY_SOCKET from its environment as create does."""
    environ(monkeypatch, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), NOTIFY_SOCKET="/run/systemd/notify")
    monkeypatch.setattr(posix, "get_inheritable", lambda fd: fd < 4)
    root = str(plan_bundle / "state")
    assert main(["--root", root, "plan", "--bundle", str(plan_bundle), "c1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"mount('{root}/c1/notify', '{plan_bundle}/rootfs/run/notify', None, MS_BIND, None)" in lines
    assert "set_inheritable(3)" in lines
    execve = next(line for line in lines if line.startswith("execve("))
    assert "'NOTIFY_SOCKET': '/run/notify/notify.sock'" in execve and "'LISTEN_FDS': '1'" in execve


def test_plan_keeps_listen_and_preserved_fds(plan_bundle, monkeypatch):
    monkeypatch.setattr(posix, "get_inheritable", lambda fd: fd < 6)
    opts = CreateOptions(
        id="c1", bundle=str(plan_bundle), root=str(plan_bundle / "state"), listen_fds=2, preserve_fds=1
    )
    p = plan_mod.build(opts)
    closes = [s.call.args for s in p.steps if s.call.name == "close_fds_from"]
    assert closes and closes[-1][0] == 6


def test_listen_fds_not_open_fail_create_before_anything(plan_bundle, monkeypatch):
    monkeypatch.setattr(posix, "get_inheritable", lambda fd: fd < 4)
    opts = CreateOptions(id="c1", bundle=str(plan_bundle), root=str(plan_bundle / "state"), listen_fds=2)
    with pytest.raises(OcirtError, match="LISTEN_FDS=2: fd 4 is not open"):
        plan_mod.build(opts)
    assert not os.path.exists(plan_bundle / "state" / "c1")


def test_preserved_fds_are_counted_after_listen_fds(plan_bundle, monkeypatch):
    monkeypatch.setattr(posix, "get_inheritable", lambda fd: fd < 5)
    opts = CreateOptions(
        id="c1", bundle=str(plan_bundle), root=str(plan_bundle / "state"), listen_fds=2, preserve_fds=1
    )
    with pytest.raises(OcirtError, match=r"unable to stat preserved-fd 0 \(of 1\): fd 5 is not open"):
        plan_mod.build(opts)
