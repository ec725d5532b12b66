"""process.terminal with --console-socket: the pty master reaches the socket, the container's
process has the slave as its controlling terminal (as engines use it: conmon, containerd-shim)."""
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OCIRT = [sys.executable, "-m", "ocirt"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    path = tmp_path_factory.mktemp("rootfs") / "rootfs"
    subprocess.run(["sh", os.path.join(REPO, "bundles", "mkrootfs.sh"), str(path)], check=True)
    return str(path)


def test_console_socket_gets_the_pty_master(tmp_path, rootfs):
    cid = f"console-{uuid.uuid4().hex[:8]}"
    with open(os.path.join(REPO, "bundles", "runc-spec.json")) as f:
        config = json.load(f)
    config["root"]["path"] = rootfs
    config["process"]["terminal"] = True
    config["process"]["consoleSize"] = {"height": 33, "width": 99}
    config["process"]["args"] = ["sh", "-c", "tty; stty size; echo hello-from-the-pty"]
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(config))
    root = str(tmp_path / "root")
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    master = None
    try:
        create = subprocess.run(OCIRT + ["--root", root, "create", "--bundle", str(bundle),
                                         "--console-socket", path, cid], cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, timeout=60)
        assert create.returncode == 0, create.stderr
        conn, _ = server.accept()
        with conn:
            name, fds, _, _ = socket.recv_fds(conn, 64, 1)
        assert name == b"/dev/ptmx" and len(fds) == 1
        master = fds[0]
        subprocess.run(OCIRT + ["--root", root, "start", cid], cwd=REPO, check=True,
                       capture_output=True, timeout=60)
        out = b""
        deadline = time.monotonic() + 20
        while b"hello-from-the-pty" not in out and time.monotonic() < deadline:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the slave side is closed, the process is done
                break
            if not chunk:
                break
            out += chunk
        text = out.decode(errors="replace")
        assert "/dev/pts/0" in text and "33 99" in text and "hello-from-the-pty" in text, text
    finally:
        if master is not None:
            os.close(master)
        server.close()
        subprocess.run(OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO,
                       capture_output=True)


def test_exec_tty_gets_its_own_pty(tmp_path, rootfs):
    cid = f"console-x-{uuid.uuid4().hex[:8]}"
    with open(os.path.join(REPO, "bundles", "runc-spec.json")) as f:
        config = json.load(f)
    config["root"]["path"] = rootfs
    config["process"]["args"] = ["sleep", "60"]
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(config))
    root = str(tmp_path / "root")
    path = str(tmp_path / "exec.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    master = None
    try:
        for step in (["create", "--bundle", str(bundle), cid], ["start", cid]):
            # not a pipe: the container's init inherits the runtime's stdio
            with open(tmp_path / "err", "w+") as err:
                p = subprocess.run(OCIRT + ["--root", root, *step], cwd=REPO,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=err, timeout=60)
                err.seek(0)
                assert p.returncode == 0, err.read()
        p = subprocess.run(OCIRT + ["--root", root, "exec", "--tty", "--detach", "--console-socket",
                                    path, cid, "sh", "-c", "tty; echo exec-on-a-pty"],
                           cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        conn, _ = server.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 64, 1)
        master = fds[0]
        out = b""
        deadline = time.monotonic() + 20
        while b"exec-on-a-pty" not in out and time.monotonic() < deadline:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        assert b"/dev/pts/" in out and b"exec-on-a-pty" in out, out
    finally:
        if master is not None:
            os.close(master)
        server.close()
        subprocess.run(OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO,
                       capture_output=True)


def test_run_with_a_terminal_relays_the_pty(tmp_path, rootfs):
    """`run` of a terminal container without --console-socket holds the pty itself (runc run -t)."""
    cid = f"console-r-{uuid.uuid4().hex[:8]}"
    with open(os.path.join(REPO, "bundles", "runc-spec.json")) as f:
        config = json.load(f)
    config["root"]["path"] = rootfs
    config["process"]["terminal"] = True
    config["process"]["args"] = ["sh", "-c", "tty; echo on-the-pty; exit 3"]
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(config))
    root = str(tmp_path / "root")
    try:
        p = subprocess.run(OCIRT + ["--root", root, "run", "--bundle", str(bundle), cid], cwd=REPO,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        assert p.returncode == 3, p.stderr
        assert b"/dev/pts/0\r\non-the-pty\r\n" in p.stdout, p.stdout
        assert not os.path.exists(os.path.join(root, cid))
    finally:
        subprocess.run(OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO,
                       capture_output=True)
