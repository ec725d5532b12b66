"""The command line's runc conventions, without containers: exec --cgroup parsing, a sub-cgroup
path that may not climb out, --log FILE made at once, --debug, exec's exit status 255, the
terminal size a foreground exec -t gives the pty."""

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from ocirt import console
from ocirt.cgroups.cgroup import _below
from ocirt.commands.exec import parse_cgroup_option
from ocirt.errors import OcirtError
from ocirt.log import Logger

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ocirt(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "ocirt", *args], capture_output=True, text=True, cwd=REPO, timeout=60, **kw
    )


@pytest.mark.parametrize(
    "values, want",
    [
        ([], {}),
        (["sub"], {"": "sub"}),
        (["memory:a/b"], {"memory": "a/b"}),
        (["cpu,cpuacct:x", "memory:y"], {"cpu": "x", "cpuacct": "x", "memory": "y"}),
    ],
)
def test_cgroup_option(values, want):
    assert parse_cgroup_option(values) == want


@pytest.mark.parametrize("values", [["memory:"], [":x"], ["memory:a", "memory:b"], ["a", "b"], ["cpu,:x"]])
def test_cgroup_option_refused(values):
    with pytest.raises(OcirtError):
        parse_cgroup_option(values)


def test_sub_path_stays_below():
    assert _below("/sys/fs/cgroup/x", "a/b") == "/sys/fs/cgroup/x/a/b"
    assert _below("/sys/fs/cgroup/x", "/a/./b/../c") == "/sys/fs/cgroup/x/a/c"
    for escape in ("..", "../y", "a/../../y"):
        with pytest.raises(OcirtError, match="is not a sub cgroup path"):
            _below("/sys/fs/cgroup/x", escape)


def test_logger_debug_only_with_debug(tmp_path):
    path = tmp_path / "log"
    quiet = Logger(str(path))
    quiet.debug("not written")
    assert quiet.debugger is None
    loud = Logger(str(path), "json", True)
    loud.debugger("written")
    entries = [json.loads(ln) for ln in path.read_text().splitlines()]
    assert [(e["level"], e["msg"]) for e in entries] == [("debug", "written")]


def test_log_file_made_at_once(tmp_path):
    log = tmp_path / "made.log"
    p = ocirt("--log", str(log), "--root", str(tmp_path / "root"), "list")
    assert p.returncode == 0, p.stderr
    assert log.exists()


def test_debug_lines_name_the_command(tmp_path):
    p = ocirt("--debug", "--root", str(tmp_path / "root"), "list")
    assert p.returncode == 0, p.stderr
    assert "level=debug" in p.stderr and "list" in p.stderr, p.stderr


def test_exec_failure_is_255_and_usage_is_1(tmp_path):
    root = str(tmp_path / "root")
    p = ocirt("--root", root, "exec", "no-such-container", "true")
    assert p.returncode == 255, p.stderr
    assert "exec failed: container does not exist" in p.stderr
    p = ocirt("--root", root, "exec")  # no id: a usage error, as runc's 1
    assert p.returncode == 1, p.stderr
    p = ocirt("--root", root, "exec", "--no-such-flag", "x", "true")
    assert p.returncode == 1, p.stderr


def test_terminal_size():
    master, slave = pty.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 27, 91, 0, 0))
        assert console.size_of(slave) == {"height": 27, "width": 91}
        assert console.size_of(None) is None
    finally:
        os.close(master)
        os.close(slave)


def test_own_console_socket_removed():
    sock, path = console.listener()
    assert os.path.exists(path)
    console.close(sock, path)
    assert not os.path.exists(os.path.dirname(path))
