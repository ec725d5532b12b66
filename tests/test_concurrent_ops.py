"""Commands that race on one container, and commands cut off by a signal half way, end cleanly:
no hang, no traceback, one line of error at the most, and `delete --force` afterwards removes
all there is (the state entry, the cgroup in every hierarchy, every process).

Random but bounded (a count and a deadline each), the seed in every failure's message: rerun
with OCIRT_RACE_SEED=<seed> to replay the same choices."""

import glob
import os
import random
import signal
import subprocess
import time
import uuid

import pytest
from cli_helpers import OCIRT, REPO, make_bundle, remove_cgroup_dirs, remove_cgroup_parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

PARENT = "ocirt-test-races"
ROUNDS, DEADLINE = 12, 25.0  # per test: whichever comes first

# what may run at the same time on a created container (`ID` stands for its id)
RACING = (
    ["start", "ID"],
    ["kill", "ID", "KILL"],
    ["kill", "ID", "TERM"],
    ["kill", "--all", "ID", "KILL"],
    ["delete", "ID"],
    ["delete", "--force", "ID"],
    ["state", "ID"],
    ["pause", "ID"],
    ["resume", "ID"],
    ["exec", "ID", "true"],
    ["ps", "ID"],
    ["list"],
    ["update", "--pids-limit", "50", "ID"],
)


@pytest.fixture(scope="module", autouse=True)
def remove_parent_cgroup():
    yield
    remove_cgroup_parent(PARENT)


@pytest.fixture
def rng():
    seed = int(os.environ.get("OCIRT_RACE_SEED") or random.SystemRandom().randrange(1 << 32))
    return seed, random.Random(seed)


@pytest.fixture
def lab(tmp_path, busybox_rootfs):
    """(root, bundle, cgroup name of the bundle's containers): everything left is removed after."""
    name = f"r-{uuid.uuid4().hex[:8]}"
    bundle = make_bundle(
        tmp_path / "bundle", busybox_rootfs, ["sleep", "1000"], f"/{PARENT}/{name}", terminal=False
    )
    root = str(tmp_path / "root")
    yield root, bundle, name
    for cid in os.listdir(root) if os.path.isdir(root) else ():
        subprocess.run(OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO, capture_output=True)
    remove_cgroup_dirs(f"{PARENT}/{name}")  # a round that failed may have left its cgroup


def start(root, args, err_path):
    """A command of ocirt, its stderr to a file (an init made by it would hold a pipe open)."""
    argv = OCIRT + ["--root", root, *args]
    err = open(err_path, "w+")
    return subprocess.Popen(
        argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
    ), err


def check_ended(p, err, args, seed, timeout=30.0) -> str:
    """The command ended within `timeout` (else killed and failed), its stderr one line at most
    and no traceback; that line."""
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        pytest.fail(f"seed {seed}: {args} hung")
    err.seek(0)
    text = err.read()
    err.close()
    lines = [line for line in text.splitlines() if line.strip()]
    if python_start_interrupted(lines):
        return text
    assert "Traceback" not in text and len(lines) <= 1, f"seed {seed}: {args}: {text}"
    return text


def python_start_interrupted(lines) -> bool:
    """^C inside the interpreter's own start (site, runpy), before a line of ocirt ran: Python's
    traceback, which no code of ocirt can catch (README, "Exit statuses in detail")."""
    frames = [line for line in lines if line.lstrip().startswith('File "')]
    return bool(lines) and lines[-1] == "KeyboardInterrupt" and not any("/ocirt/" in f for f in frames)


def run_ok(root, args, tmp_path, seed, check=True):
    p, err = start(root, args, tmp_path / "err-sync")
    text = check_ended(p, err, args, seed)
    if check:
        assert p.returncode == 0, f"seed {seed}: {args} exited {p.returncode}: {text}"
    return p.returncode


def assert_nothing_left(root, cid, name, seed, what):
    assert not os.path.exists(os.path.join(root, cid)), f"seed {seed}: {what}: state entry left"
    left = glob.glob(f"/sys/fs/cgroup/*/{PARENT}/{name}")
    assert not left, f"seed {seed}: {what}: cgroups left: {left}"
    mine = subprocess.run(["pgrep", "-f", root], capture_output=True, text=True).stdout.split()
    assert not mine, f"seed {seed}: {what}: processes left: {mine}"


def test_commands_racing_on_one_container(lab, tmp_path, rng):
    """Up to five commands at once on a created container, in random order and spacing."""
    root, bundle, name = lab
    seed, r = rng
    deadline = time.monotonic() + DEADLINE
    for i in range(ROUNDS):
        if time.monotonic() > deadline:
            break
        cid = f"c{i}"
        run_ok(root, ["create", "--bundle", bundle, cid], tmp_path, seed)
        racing = []
        for j in range(r.randint(2, 5)):
            args = [cid if a == "ID" else a for a in r.choice(RACING)]
            racing.append((args, *start(root, args, tmp_path / f"err-{j}")))
            time.sleep(r.random() * 0.01)
        # A foreground exec waits for its process, and a pause that came after the process was
        # started (the exec's lock let go) freezes it: the exec ends once the container is
        # resumed or killed, as runc's (its exec waits as well). The others first, then a
        # resume if a pause raced (its error, when there is nothing to resume, is fine).
        execs = [c for c in racing if c[0][0] == "exec"]
        for args, p, err in racing:
            if args[0] != "exec":
                check_ended(p, err, args, seed)
        if execs and any(args[0] == "pause" for args, _, _ in racing):
            run_ok(root, ["resume", cid], tmp_path, seed, check=False)
        for args, p, err in execs:
            check_ended(p, err, args, seed)
        run_ok(root, ["delete", "--force", cid], tmp_path, seed)
        assert_nothing_left(root, cid, name, seed, [a for a, _, _ in racing])


@pytest.mark.parametrize("stage", ["create", "run", "start", "exec", "delete"])
def test_a_command_cut_off_leaves_what_delete_force_removes(lab, tmp_path, rng, stage):
    """A command killed or interrupted at a random moment: `state` and `list` still answer in
    one line, and `delete --force` removes what it left."""
    root, bundle, name = lab
    seed, r = rng
    deadline = time.monotonic() + DEADLINE / 5
    for i in range(ROUNDS // 2):
        if time.monotonic() > deadline:
            break
        cid = f"k{i}"
        if stage in ("start", "exec", "delete"):
            run_ok(root, ["create", "--bundle", bundle, cid], tmp_path, seed)
        if stage in ("exec", "delete"):
            run_ok(root, ["start", cid], tmp_path, seed)
        if stage == "delete":
            run_ok(root, ["kill", cid, "KILL"], tmp_path, seed)
        args = {
            "create": ["create", "--bundle", bundle, cid],
            "run": ["run", "--detach", "--bundle", bundle, cid],
            "start": ["start", cid],
            "exec": ["exec", cid, "sleep", "5"],
            "delete": ["delete", cid],
        }[stage]
        p, err = start(root, args, tmp_path / "err-cut")
        time.sleep(r.random() * 0.05)
        sig = r.choice([signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
        p.send_signal(sig)
        check_ended(p, err, [*args, f"(signal {sig.name})"], seed)
        run_ok(root, ["state", cid], tmp_path, seed, check=False)
        run_ok(root, ["list"], tmp_path, seed)
        run_ok(root, ["delete", "--force", cid], tmp_path, seed)
        assert_nothing_left(root, cid, name, seed, [*args, sig.name])
