"""process.terminal with --console-socket: the pty master reaches the socket, the container's
process has the slave as its controlling terminal (as engines use it: conmon, containerd-shim)."""

import os
import subprocess
import uuid

import pytest
from cli_helpers import OCIRT, REPO, ConsoleSocket, make_bundle, read_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def console_socket(tmp_path):
    sock = ConsoleSocket(str(tmp_path / "console.sock"))
    yield sock
    sock.close()


def test_console_socket_gets_the_pty_master(tmp_path, busybox_rootfs, console_socket):
    cid = f"console-{uuid.uuid4().hex[:8]}"
    bundle = make_bundle(
        tmp_path / "bundle",
        busybox_rootfs,
        ["sh", "-c", "tty; stty size; echo hello-from-the-pty"],
        terminal=True,
        consoleSize={"height": 33, "width": 99},
    )
    root = str(tmp_path / "root")
    try:
        create = subprocess.run(
            OCIRT
            + ["--root", root, "create", "--bundle", bundle, "--console-socket", console_socket.path, cid],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
        assert create.returncode == 0, create.stderr
        name, master = console_socket.receive()
        assert name == b"/dev/ptmx"
        subprocess.run(
            OCIRT + ["--root", root, "start", cid], cwd=REPO, check=True, capture_output=True, timeout=60
        )
        out = read_until(master, b"hello-from-the-pty")
        text = out.decode(errors="replace")
        assert "/dev/pts/0" in text and "33 99" in text and "hello-from-the-pty" in text, text
    finally:
        subprocess.run(OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO, capture_output=True)


def test_exec_tty_gets_its_own_pty(tmp_path, busybox_rootfs, console_socket):
    cid = f"console-x-{uuid.uuid4().hex[:8]}"
    bundle = make_bundle(tmp_path / "bundle", busybox_rootfs, ["sleep", "60"])
    root = str(tmp_path / "root")
    try:
        for step in (["create", "--bundle", bundle, cid], ["start", cid]):
            # not a pipe: the container's init inherits the runtime's stdio
            with open(tmp_path / "err", "w+") as err:
                p = subprocess.run(
                    OCIRT + ["--root", root, *step],
                    cwd=REPO,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    timeout=60,
                )
                err.seek(0)
                assert p.returncode == 0, err.read()
        p = subprocess.run(
            OCIRT
            + [
                "--root",
                root,
                "exec",
                "--tty",
                "--detach",
                "--console-socket",
                console_socket.path,
                cid,
                "sh",
                "-c",
                "tty; echo exec-on-a-pty",
            ],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
        assert p.returncode == 0, p.stderr
        _, master = console_socket.receive()
        out = read_until(master, b"exec-on-a-pty")
        assert b"/dev/pts/" in out and b"exec-on-a-pty" in out, out
    finally:
        subprocess.run(OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO, capture_output=True)


def test_run_with_a_terminal_relays_the_pty(tmp_path, busybox_rootfs):
    """`run` of a terminal container without --console-socket holds the pty itself (runc run -t)."""
    cid = f"console-r-{uuid.uuid4().hex[:8]}"
    bundle = make_bundle(
        tmp_path / "bundle", busybox_rootfs, ["sh", "-c", "tty; echo on-the-pty; exit 3"], terminal=True
    )
    root = str(tmp_path / "root")
    try:
        p = subprocess.run(
            OCIRT + ["--root", root, "run", "--bundle", bundle, cid],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
        assert p.returncode == 3, p.stderr
        assert b"/dev/pts/0\r\non-the-pty\r\n" in p.stdout, p.stdout
        assert not os.path.exists(os.path.join(root, cid))
    finally:
        subprocess.run(OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO, capture_output=True)
