"""`podman container checkpoint` / `podman container restore` of a container run by ocirt, and the
same with runc as podman's runtime (parametrized: a failure tells whose it is).

podman 4.3 asks the runtime whether it can (`runc checkpoint --help` must exit 0), then calls
`runc checkpoint --image-path USERDATA/checkpoint --work-path USERDATA ID` itself (with --export it
then packs USERDATA/checkpoint, the container's changes and its log into an archive that `restore
--import` unpacks into a container made again with the same id); the restore goes
through conmon (`conmon --restore USERDATA/checkpoint`), which calls `runc restore --detach
--work-path USERDATA --image-path USERDATA/checkpoint --bundle USERDATA --pid-file F ID` with the
container's stdout and stderr being conmon's pipes (CRIU gets them back through descriptors.json).

Needs what CRIU needs (`criu check` passes: the v2 VM of scripts/v2vm-tests.sh; not this host's
kernel) and podman + conmon. The session is podman_helpers.py's (private storage and config, all
undone at the end); every test removes its container.
"""

import os
import shutil
import subprocess
import time

import pytest
from podman_helpers import IMAGE, podman_session, podman_usable


def _criu_problem() -> str:
    """'' if CRIU can checkpoint here, else why not."""
    if shutil.which("criu") is None:
        return "criu not installed"
    p = subprocess.run(["criu", "check"], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return f"`criu check` fails on this kernel ({last})"
    return ""


_WHY_NOT = podman_usable() or _criu_problem()
pytestmark = pytest.mark.skipif(bool(_WHY_NOT), reason=_WHY_NOT or "-")

RUNC = shutil.which("runc")
# counts in the shell's memory and prints each value: podman's log of the container is the record
COUNTER = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done"
# where each runtime keeps its state (podman passes no --root)
STATE_ROOTS = {"ocirt": "/run/ocirt", "runc": "/run/runc"}


@pytest.fixture(scope="module")
def podman(busybox_rootfs):
    with podman_session(busybox_rootfs, {"runc": RUNC} if RUNC else {}) as p:
        yield p


def _counts(p, cid) -> list:
    return [int(x) for x in p("logs", cid).stdout.split() if x.isdigit()]


def _wait_counts(p, cid, above: int, timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    values: list = []
    while time.monotonic() < deadline:
        values = _counts(p, cid)
        if values and values[-1] > above:
            return values
        time.sleep(0.3)
    raise AssertionError(f"the counter did not pass {above}: {values[-5:]}")


def _status(p, cid) -> str:
    return p("inspect", "-f", "{{.State.Status}}", cid).stdout.strip()


@pytest.mark.parametrize("runtime", ["ocirt", "runc"])
def test_checkpoint_and_restore_goes_on_counting(podman, runtime):
    if runtime not in STATE_ROOTS or (runtime == "runc" and not RUNC):
        pytest.skip("runc not installed")
    p = podman.with_runtime(runtime)
    state_dir = os.path.join(STATE_ROOTS[runtime], "{}")
    cid = p("run", "-d", "--name", f"ocirt-cr-{runtime}-{os.getpid()}", IMAGE, "sh", "-c", COUNTER).stdout
    cid = cid.strip()
    try:
        assert os.path.isdir(state_dir.format(cid))  # the runtime under test runs it
        _wait_counts(p, cid, 3)

        p("container", "checkpoint", cid)
        assert _status(p, cid) == "exited"
        assert p("inspect", "-f", "{{.State.Checkpointed}}", cid).stdout.strip() == "true"
        assert not os.path.exists(state_dir.format(cid))  # the runtime deleted it
        before = _counts(p, cid)
        assert before == list(range(1, len(before) + 1)), before[-5:]

        p("container", "restore", cid)
        assert _status(p, cid) == "running"
        assert p("inspect", "-f", "{{.State.Restored}}", cid).stdout.strip() == "true"
        assert os.path.isdir(state_dir.format(cid))  # restored by the same runtime
        after = _wait_counts(p, cid, before[-1] + 3)
        # the same shell goes on from where it was (a restart would print 1 again)
        assert after == list(range(1, len(after) + 1)), after[len(before) - 3 : len(before) + 3]

        # exec joins the restored container: its pid 1 is the restored shell
        res = p("exec", cid, "sh", "-c", "echo in-exec; cat /proc/1/cmdline")
        assert res.stdout == f"in-exec\nsh\0-c\0{COUNTER}\0", repr(res.stdout)

        # as engines move a container to another host: the checkpoint exported to an archive, the
        # container removed, then made again from the archive (same id) and restored
        archive = os.path.join(podman.d, f"{runtime}-checkpoint.tar.gz")
        p("container", "checkpoint", "--export", archive, cid)
        before = _counts(p, cid)
        p("rm", "-f", "-t", "0", cid)
        assert not os.path.exists(state_dir.format(cid))
        assert p("container", "restore", "--import", archive).stdout.strip() == cid
        assert _status(p, cid) == "running"
        assert os.path.isdir(state_dir.format(cid))
        after = _wait_counts(p, cid, before[-1] + 3)
        # the archive keeps the log: the same shell goes on after it
        assert after[: len(before)] == before and after == list(range(1, len(after) + 1)), after[-5:]
    finally:
        p("rm", "-f", "-t", "0", cid, check=False)
    assert not os.path.exists(state_dir.format(cid))
