"""process.terminal with --console-socket, against runc: the SCM_RIGHTS message an engine
(conmon, containerd's shim) receives, the pty it carries, /dev/console in the container, and
the errors of a console socket that cannot be reached (runc's words, which engines show).
"""

import array
import fcntl
import json
import os
import select
import shutil
import socket
import struct
import tempfile
import termios

import pytest

TIOCGPTN = 0x80045430


@pytest.fixture
def sock_dir():
    """A short directory for sockets (sun_path has 108 bytes; tmp_path may be longer)."""
    d = tempfile.mkdtemp(prefix="cs-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Receiver:
    """An engine's end of --console-socket: a listening AF_UNIX stream socket."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.sock.settimeout(30)

    def receive(self):
        """(payload, [fds]) of the one message the runtime sent."""
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(30)
            payload, ancillary, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
        fds = array.array("i")
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        return payload, list(fds)

    def close(self):
        self.sock.close()


@pytest.fixture
def receiver(sock_dir):
    r = Receiver(os.path.join(sock_dir, "console.sock"))
    yield r
    r.close()


def read_until_closed(master):
    """Everything the container writes to its terminal, until every slave fd is closed."""
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every slave fd is closed
            break
        if not data:
            break
        out += data
    return out.decode(errors="replace").replace("\r", "")


def terminal(uid=0, size=None):
    def mutate(c):
        c["process"]["terminal"] = True
        c["process"]["user"] = {"uid": uid, "gid": uid}
        if size:
            c["process"]["consoleSize"] = size

    return mutate


def create_with_console(rt, make_bundle, receiver, script, **kw):
    """create a terminal container with --console-socket: (bundle, payload, master fd)."""
    b = make_bundle(["sh", "-c", script], mutate=terminal(**kw))
    p = rt.create(b.id, b, extra=("--console-socket", receiver.path))
    assert p.returncode == 0, p.stderr
    payload, fds = receiver.receive()  # sent while create ran: queued on the socket
    assert len(fds) == 1, fds
    return b, payload, fds[0]


def test_console_socket_message_is_the_pty_master(rt, make_bundle, receiver):
    """One message, named "/dev/ptmx" (what engines log), one fd: the master of a pty of the
    container's own devpts, whose slave is the process's stdio and controlling terminal, with
    consoleSize, and owned by process.user."""
    script = "tty; ls -ln $(tty); stty size; cat /proc/self/stat; true"
    b, payload, master = create_with_console(
        rt, make_bundle, receiver, script, uid=1000, size={"height": 33, "width": 77}
    )
    try:
        assert payload == b"/dev/ptmx"
        st = os.fstat(master)
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (5, 2), "not a ptmx"
        assert struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0] >= 0
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(master, termios.TIOCGWINSZ, b"\0" * 8))
        assert (rows, cols) == (33, 77)
        assert rt.start(b.id).returncode == 0
        out = read_until_closed(master)
    finally:
        os.close(master)
    lines = out.splitlines()
    name = lines[0]
    assert name.startswith("/dev/pts/"), out
    owner = lines[1].split()
    assert owner[2] == "1000" and owner[3] == "5", out  # the user's, devpts' tty group
    assert "33 77" in lines, out
    stat = next(ln for ln in lines if "(cat)" in ln).rsplit(")", 1)[1].split()
    # state ppid pgrp session tty_nr tpgid: cat is in sh's session, on a controlling terminal
    session, tty_nr = int(stat[3]), int(stat[4])
    assert tty_nr != 0 and os.major(tty_nr) == 136, out
    assert session == int(stat[1]), "sh (cat's parent) leads the session"
    rt.wait_status(b.id, "stopped")


def test_dev_console_is_the_pty(rt, make_bundle, receiver):
    """/dev/console in a terminal container is its pty (a bind of the slave), so that what
    writes to the console reaches the engine's end, as with runc."""
    script = "tty; stat -c '%t:%T %u' /dev/console $(tty); grep ' /dev/console ' /proc/self/mountinfo; echo hi >/dev/console"
    b, _, master = create_with_console(rt, make_bundle, receiver, script, uid=1000)
    try:
        assert rt.start(b.id).returncode == 0
        out = read_until_closed(master)
    finally:
        os.close(master)
    lines = out.splitlines()
    assert lines[0].startswith("/dev/pts/"), out
    assert lines[1] == lines[2] and lines[1].endswith(" 1000"), out  # same device, same owner
    assert "devpts" in lines[3], out
    assert lines[3].split()[3] == "/" + lines[0][len("/dev/pts/") :], out  # bound from the pts
    assert "hi" in lines[4:], out
    rt.wait_status(b.id, "stopped")


def test_no_dev_console_for_exec(rt, make_bundle, started, receiver, tmp_path):
    """exec -t -d --console-socket: the same message, consoleSize and user from process.json;
    the container's /dev/console is left alone (not a terminal container: none at all)."""
    b = started()
    proc = dict(b.config["process"])
    proc.update(
        terminal=True,
        consoleSize={"height": 21, "width": 55},
        user={"uid": 1000, "gid": 1000},
        args=["sh", "-c", "ls -ln $(tty); stty size; ls /dev/console 2>&1"],
    )
    pj = tmp_path / "process.json"
    pj.write_text(json.dumps(proc))
    p = rt("exec", "-d", "-p", str(pj), "--console-socket", receiver.path, b.id)
    assert p.returncode == 0, p.stderr
    payload, fds = receiver.receive()
    assert payload == b"/dev/ptmx" and len(fds) == 1
    try:
        out = read_until_closed(fds[0])
    finally:
        os.close(fds[0])
    lines = out.splitlines()
    assert lines[0].split()[2] == "1000", out
    assert "21 55" in lines, out
    assert "No such file" in lines[2], out


def connect_failures(sock_dir):
    missing = os.path.join(sock_dir, "missing.sock")
    not_a_socket = os.path.join(sock_dir, "file")
    with open(not_a_socket, "w"):
        pass
    refusing = os.path.join(sock_dir, "refusing.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(refusing)  # bound, not listening
    s.close()
    return {
        "missing": (missing, "no such file or directory"),
        "not-a-socket": (not_a_socket, "connection refused"),
        "not-listening": (refusing, "connection refused"),
        "directory": (sock_dir, "connection refused"),
    }


@pytest.mark.parametrize("case", ["missing", "not-a-socket", "not-listening", "directory"])
def test_create_console_socket_unreachable(rt, make_bundle, sock_dir, case):
    """runc's words (Go's dial): 'dial unix PATH: connect: ERRNO', exit 1, nothing left."""
    path, words = connect_failures(sock_dir)[case]
    b = make_bundle(["true"], mutate=terminal())
    p = rt.create(b.id, b, extra=("--console-socket", path))
    assert p.returncode == 1
    assert p.stderr.strip().count("\n") == 0, p.stderr
    assert f"create failed: dial unix {path}: connect: {words}" in p.stderr, p.stderr
    assert b.id not in rt.list(quiet=True).stdout.split()


def test_exec_console_socket_unreachable(rt, started, sock_dir):
    b = started()
    path, words = connect_failures(sock_dir)["missing"]
    p = rt("exec", "-t", "-d", "--console-socket", path, b.id, "true")
    assert p.returncode == 255
    assert p.stderr.strip().count("\n") == 0, p.stderr
    assert f"exec failed: dial unix {path}: connect: {words}" in p.stderr, p.stderr


def test_run_detached_tty_needs_a_console_socket(rt, make_bundle):
    b = make_bundle(["true"], mutate=terminal())
    p = rt.run(b.id, b, extra=("-d",))
    assert p.returncode == 1
    assert "run failed: cannot allocate tty if runc will detach without setting console socket" in p.stderr
    assert b.id not in rt.list(quiet=True).stdout.split()
