"""A create killed with SIGKILL half-way leaves a state that `delete --force` cleans up completely:
no state directory, no cgroup, no process. (The state is saved, status "creating", as soon as the
cgroup exists, before any process of the container does.) Killed while a hook runs, after a delay,
and just before each system call of create's parent that changes something (strace injection)."""

import json
import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest
from cli_helpers import OCIRT, REPO, make_bundle, remove_cgroup_parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture(scope="module", autouse=True)
def remove_parent_cgroup():
    """The tests' cgroups share a parent; the last worker out removes it (while another still
    uses it, rmdir fails and is ignored)."""
    yield
    remove_cgroup_parent("ocirt-test-killed")


def cgroup_dirs(name: str) -> list[str]:
    out = []
    for top in os.listdir("/sys/fs/cgroup"):
        d = os.path.join("/sys/fs/cgroup", top, "ocirt-test-killed", name)
        if os.path.isdir(d):
            out.append(d)
    return out


def test_delete_force_cleans_a_killed_create(tmp_path, busybox_rootfs):
    cid = f"killed-{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "hook-ran"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\nexec sleep 3\n")
    hook.chmod(0o755)
    bundle = make_bundle(tmp_path / "bundle", busybox_rootfs, ["true"])
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    config["linux"]["cgroupsPath"] = f"/ocirt-test-killed/{cid}"
    config["hooks"] = {"createRuntime": [{"path": str(hook)}]}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    root = str(tmp_path / "root")
    create = subprocess.Popen(
        OCIRT + ["--root", root, "create", "--bundle", bundle, cid],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not marker.exists():  # the create is now waiting for its hook
            assert time.monotonic() < deadline and create.poll() is None
            time.sleep(0.01)
        assert cgroup_dirs(cid), "the container's cgroup should exist mid-create"
        create.send_signal(signal.SIGKILL)
        create.wait()
        state = subprocess.run(
            OCIRT + ["--root", root, "state", cid], cwd=REPO, capture_output=True, text=True
        )
        assert json.loads(state.stdout)["status"] == "creating"
        plain = subprocess.run(
            OCIRT + ["--root", root, "delete", cid], cwd=REPO, capture_output=True, text=True
        )
        assert plain.returncode == 1 and plain.stderr.count("\n") == 1  # says how to remove it
        assert "its create did not finish (delete --force removes it)" in plain.stderr, plain.stderr
        subprocess.run(
            OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO, check=True, capture_output=True
        )
        assert not os.path.exists(os.path.join(root, cid))
        assert cgroup_dirs(cid) == []
    finally:
        if create.poll() is None:
            create.kill()
            create.wait()
        subprocess.run(OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO, capture_output=True)
        for d in cgroup_dirs(cid):
            os.rmdir(d)


def _processes_mentioning(text: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
                with open(f"/proc/{pid}/stat", "rb") as f:
                    zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
            except OSError:
                continue
            if text.encode() in cmdline and not zombie:
                out.append(int(pid))
    return out


def _bundle(tmp_path, rootfs, cid, cgroups_path=None):
    bundle = make_bundle(tmp_path / "bundle", rootfs, ["sleep", "60"])
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    config["linux"]["cgroupsPath"] = cgroups_path or f"/ocirt-test-killed/{cid}"
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return bundle


def _top_cgroup_dirs(cid: str) -> list[str]:
    return [
        d
        for d in (os.path.join("/sys/fs/cgroup", top, cid) for top in os.listdir("/sys/fs/cgroup"))
        if os.path.isdir(d)
    ]


def _delete_force_leaves_nothing(root: str, cid: str) -> None:
    subprocess.run(
        OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO, check=True, capture_output=True
    )
    assert not os.path.exists(os.path.join(root, cid)), "state left"
    assert cgroup_dirs(cid) == [] and _top_cgroup_dirs(cid) == [], "cgroup left"
    deadline = time.monotonic() + 10  # an orphaned stage 1 or init exits once its parent is gone
    while _processes_mentioning(cid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_mentioning(cid) == [], "process left"


def _clean(root: str, cid: str) -> None:
    for pid in _processes_mentioning(cid):
        os.kill(pid, signal.SIGKILL)
    subprocess.run(OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO, capture_output=True)
    for d in cgroup_dirs(cid) + _top_cgroup_dirs(cid):
        os.rmdir(d)


@pytest.mark.parametrize("delay_ms", [0, 3, 6, 10, 15, 20, 30, 45, 60, 90])
def test_kill_create_at_any_moment_then_delete_force(tmp_path, busybox_rootfs, delay_ms):
    """SIGKILL `ocirt create` after `delay_ms` (before, during and after each step, depending on
    the machine's speed); `delete --force` must then leave no state, cgroup or process."""
    cid = f"kill9-{delay_ms}-{uuid.uuid4().hex[:6]}"
    bundle, root = _bundle(tmp_path, busybox_rootfs, cid), str(tmp_path / "root")
    create = subprocess.Popen(
        OCIRT + ["--root", root, "create", "--bundle", bundle, cid],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(delay_ms / 1000)
        create.send_signal(signal.SIGKILL)
        create.wait()
        _delete_force_leaves_nothing(root, cid)
    finally:
        _clean(root, cid)


# ---- SIGKILL just before each step of create ---------------------------------------------------
#
# strace's fault injection kills `ocirt create` on entering the i-th call of one system call, for
# every system call of the parent that changes something (a directory, a file, a process, a
# message): so every step of create, not a moment that depends on the machine's speed, gets its
# SIGKILL. The calls a create makes are counted once (BASELINE); steps beyond the count skip.

STEP_CALLS = {
    "mkdir": 40,
    "write": 50,
    "clone": 3,
    "clone3": 3,
    "rename": 5,
    "sendto": 5,
    "mknodat": 2,
    "flock": 2,
}
STEPS = [(call, i) for call, most in STEP_CALLS.items() for i in range(1, most + 1)]
TRACED = ",".join(c for c in STEP_CALLS)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, busybox_rootfs):
    """How many times an uninterrupted create enters each of the traced calls."""
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    tmp = tmp_path_factory.mktemp("baseline")
    cid = f"kill9-base-{uuid.uuid4().hex[:6]}"
    bundle, root, log = (_bundle(tmp, busybox_rootfs, cid, f"/{cid}"), str(tmp / "root"), str(tmp / "trace"))
    try:
        subprocess.run(
            ["strace", "-qq", "-o", log, "-e", f"trace={TRACED}"]
            + OCIRT
            + ["--root", root, "create", "--bundle", bundle, cid],
            cwd=REPO,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        subprocess.run(OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO, capture_output=True)
    counts = {}
    with open(log) as f:
        for line in f:
            name = line.split("(", 1)[0].strip()
            if name in STEP_CALLS:
                counts[name] = counts.get(name, 0) + 1
    return counts


@pytest.mark.parametrize("call,nth", STEPS, ids=[f"{c}-{i}" for c, i in STEPS])
def test_sigkill_before_each_step_then_delete_force(tmp_path, busybox_rootfs, baseline, call, nth):
    if nth > baseline.get(call, 0):
        pytest.skip(f"create enters {call} {baseline.get(call, 0)} times")
    cid = f"kill9-{call}-{nth}-{uuid.uuid4().hex[:6]}"
    # its own cgroup right under the root: every create then makes the same directories and
    # writes the same files as the baseline's (a shared parent made or not would shift them)
    bundle, root = _bundle(tmp_path, busybox_rootfs, cid, f"/{cid}"), str(tmp_path / "root")
    try:
        killed = subprocess.run(
            [
                "strace",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                f"trace={call}",
                "-e",
                f"inject={call}:signal=KILL:when={nth}",
            ]
            + OCIRT
            + ["--root", root, "create", "--bundle", bundle, cid],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert killed.returncode != 0, "create was not killed"
        _delete_force_leaves_nothing(root, cid)
    finally:
        _clean(root, cid)


def test_a_cgroup_that_cannot_be_configured_leaves_nothing(tmp_path, busybox_rootfs):
    """A limit the kernel refuses (a CPU this machine does not have) is create's one-line error,
    naming it, and no process, cgroup or state is left: the command line's create configures
    the cgroup before the fork; with create.LateCgroup (cgroup v1 and hybrid hosts, a creating
    process with another thread) stage 1 and the init are at work by then, and the init, told
    that no answer comes, ends at its wait."""
    cid = f"unconf-{uuid.uuid4().hex[:8]}"
    bundle = _bundle(tmp_path, busybox_rootfs, cid)
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    config["linux"]["resources"] = {"cpu": {"cpus": str((os.cpu_count() or 1) + 1000)}}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    root = str(tmp_path / "root")
    try:
        p = subprocess.run(
            OCIRT + ["--root", root, "create", "--bundle", bundle, cid],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode != 0
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "/linux/resources/cpu/cpus" in lines[0], p.stderr
        assert not os.path.exists(os.path.join(root, cid))
        assert cgroup_dirs(cid) == []
        deadline = time.monotonic() + 5
        while _processes_mentioning(cid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _processes_mentioning(cid) == [], "process left"
    finally:
        _clean(root, cid)


INTERRUPTED_AFTER_FORK = """
import posix, sys
from ocirt import create
from ocirt.cli import main

me, real = posix.getpid(), create.HostEffects.channel


def channel(self, spec):  # a ^C in create's parent right after the child is forked
    parent_end, child_end = real(self, spec)
    close = child_end.close

    def close_then_interrupted():
        close()
        if posix.getpid() == me:
            raise KeyboardInterrupt

    child_end.close = close_then_interrupted
    return parent_end, child_end


create.HostEffects.channel = channel
sys.exit(main(sys.argv[1:]))
"""


def test_a_create_interrupted_right_after_its_fork_leaves_nothing(tmp_path, busybox_rootfs):
    """A ^C between the child's fork and the undo step that kills it by pid: the undo kills
    what is in the cgroup it made before removing it (it once left the child there, failed to
    remove the busy cgroup and removed the state directory, so delete --force found nothing)."""
    cid = f"intr-{uuid.uuid4().hex[:8]}"
    bundle = make_bundle(
        tmp_path / "bundle", busybox_rootfs, ["true"], f"/ocirt-test-killed/{cid}", terminal=False
    )
    root = str(tmp_path / "root")
    p = subprocess.run(
        [OCIRT[0], "-c", INTERRUPTED_AFTER_FORK, "--root", root, "create", "--bundle", bundle, cid],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    left = cgroup_dirs(cid)
    state = os.path.exists(os.path.join(root, cid))
    subprocess.run(OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO, capture_output=True)
    for d in cgroup_dirs(cid):
        os.rmdir(d)
    assert p.returncode == 130
    assert (left, state) == ([], False)
