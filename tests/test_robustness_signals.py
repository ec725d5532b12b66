"""Signals that reach a foreground `run` or `exec` at any moment end it cleanly: the runtime
passes them on (or keeps them until the process runs), never dies half way leaving a process
without its waiter or a container behind."""

import glob
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from cli_helpers import OCIRT, REPO, child_of, make_bundle, remove_cgroup_parent, run_err_to_file

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

PARENT = "ocirt-test-robsig"


@pytest.fixture(scope="module", autouse=True)
def remove_parent_cgroup():
    yield
    remove_cgroup_parent(PARENT)


def ocirt(root, *args, timeout=60):
    return run_err_to_file(OCIRT + ["--root", root, *args], root + "-stderr", timeout=timeout)


def cgroup_procs(cid):
    with open(f"/sys/fs/cgroup/pids/{PARENT}/{cid}/cgroup.procs") as f:
        return f.read().split()


@pytest.fixture
def running(tmp_path, busybox_rootfs):
    """(root, id) of a running container (sleep); removed after, with all it holds."""
    cid = f"rs-{uuid.uuid4().hex[:8]}"
    bundle = make_bundle(
        tmp_path / "bundle", busybox_rootfs, ["sleep", "1000"], f"/{PARENT}/{cid}", terminal=False
    )
    root = str(tmp_path / "root")
    p = ocirt(root, "run", "-d", "--bundle", bundle, cid)
    assert p.returncode == 0, p.stderr
    yield root, cid
    ocirt(root, "delete", "--force", cid)
    assert not os.path.exists(os.path.join(root, cid))


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed")
@pytest.mark.parametrize("sig", [15, 2, 10])
def test_exec_signal_after_the_process_started_goes_to_it(running, tmp_path, sig):
    """A signal that reaches `exec` once its process runs but before exec waits for it (here:
    while it writes --pid-file, held there by strace) is passed on, not the end of exec with
    the process left running without its waiter (SIGTERM killed exec, SIGINT ended it 130)."""
    root, cid = running
    piddir = tmp_path / "pid"
    piddir.mkdir()
    err = open(tmp_path / "exec-stderr", "w+")
    renames = "rename,renameat,renameat2"
    p = subprocess.Popen(
        ["strace", "-qq", "-o", "/dev/null", "-e", f"trace={renames}"]
        + ["-e", f"inject={renames}:delay_enter=1000000"]
        + OCIRT
        + ["--root", root, "exec", "--pid-file", str(piddir / "pid"), cid, "sleep", "1000"],
        stdin=subprocess.DEVNULL,
        stdout=err,
        stderr=err,
    )
    try:
        deadline = time.monotonic() + 60  # (a hang made a failure)
        while not glob.glob(str(piddir / ".pid.*")):  # exec's temporary pid file: the process runs
            assert p.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(child_of(p.pid), sig)
        assert p.wait(timeout=60) == 128 + sig
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err.seek(0)
    assert "Traceback" not in err.read()
    assert len(cgroup_procs(cid)) == 1  # the init only: the process ended with exec


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed")
def test_interrupt_in_the_launcher_is_exit_130_without_a_traceback(tmp_path):
    """A ^C that comes while the launcher loads the command (here: strace sends SIGINT as it
    opens the command's bundle of compiled modules) ends it as cli.main ends an interrupted
    command: exit 130, no word; it printed Python's KeyboardInterrupt traceback."""
    launcher = os.path.join(REPO, "bin", "ocirt")
    root = str(tmp_path / "root")
    ocirt_bin = [launcher, "--root", root, "state", "nope"]
    subprocess.run(ocirt_bin, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)  # (the bundle)
    # (the bundle of this interpreter, the one bin/ocirt starts: other Pythons leave their own)
    tag = sys.implementation.cache_tag
    bundles = glob.glob(os.path.join(REPO, "ocirt", "__pycache__", f"launch-state.{tag}.bundle"))
    if not bundles:
        pytest.skip("no bundle of compiled modules here (Python may not write its cache)")
    p = subprocess.run(
        ["strace", "-qq", "-o", "/dev/null", "-P", bundles[0], "-e", "inject=all:signal=SIGINT:when=1"]
        + ocirt_bin,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in p.stderr and "KeyboardInterrupt" not in p.stderr, p.stderr
    assert p.returncode == 130, p.stderr
