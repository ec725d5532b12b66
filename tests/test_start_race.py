"""A create that succeeded must start, however `start` and the init interleave.

`start` reads exec.fifo without blocking and, when nothing is there yet, checks whether the init is
still alive. An init that runs `true` can write its byte, exec and exit between that read and the
check; the read made after the check then gets the byte, and that read decides that the container
started (it once threw the byte away and reported "cannot start a container that has stopped",
about one lifecycle in 300 on a loaded machine). The first test replays that interleaving
exactly; the second runs lifecycles of `true` next to two busy loops, bounded in time and count.
"""

import json
import os
import select
import subprocess
import threading
import time
import uuid

import pytest
from cli_helpers import OCIRT, make_bundle, remove_cgroup_parent, run_err_to_file, waits_in_fifo_open

from ocirt import container as container_mod
from ocirt.container import Container
from ocirt.errors import OcirtError
from ocirt.state import EXECUTING, ContainerState, StateDir, proc_start_time


def test_start_keeps_the_byte_read_after_the_init_exited(tmp_path, monkeypatch):
    """The init writes its byte and exits just after start's first (empty) read."""
    sd = StateDir(str(tmp_path), "race")
    os.mkdir(sd.path)
    os.mkfifo(sd.fifo, 0o622)
    me = os.getpid()  # stands for the init: alive, with its start time, while status() checks
    state = ContainerState(id="race", bundle=str(tmp_path), pid=me, pid_start=proc_start_time(me))
    calls = []

    def init_writes_and_exits(pid):
        if not calls:  # between start's first read and its liveness check
            wfd = os.open(sd.fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.write(wfd, b"0")
            os.close(wfd)
        calls.append(pid)
        return None  # gone: exec'd `true`, which has exited

    monkeypatch.setattr(container_mod, "proc_start_time", init_writes_and_exits)
    Container(sd, state).start()
    assert calls, "the interleaving was not replayed"
    assert not os.path.exists(sd.fifo), "a started container has no exec.fifo"


def test_start_of_an_init_that_exits_at_once_never_fails(tmp_path, monkeypatch):
    """The init exits (with the byte written) before start even looks: still a start."""
    sd = StateDir(str(tmp_path), "gone")
    os.mkdir(sd.path)
    os.mkfifo(sd.fifo, 0o622)
    me = os.getpid()
    state = ContainerState(id="gone", bundle=str(tmp_path), pid=me, pid_start=proc_start_time(me))
    real_open = os.open  # posix.open: os.open is the same function

    def open_then_init_runs(path, flags, *args):
        fd = real_open(path, flags, *args)
        if path == sd.fifo:
            wfd = real_open(sd.fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.write(wfd, b"0")
            os.close(wfd)
        return fd

    monkeypatch.setattr(container_mod.posix, "open", open_then_init_runs)
    monkeypatch.setattr(container_mod, "proc_start_time", lambda pid: None)
    Container(sd, state).start()
    assert not os.path.exists(sd.fifo)


def _init_holding_its_end(sd, write: bool):
    """A thread standing for the init: it opens its end of exec.fifo (blocked until start opens
    the other), waits a little, writes its byte (or not: it died), and closes."""

    def init():
        wfd = os.open(sd.fifo, os.O_WRONLY)
        time.sleep(0.05)
        if write:
            os.write(wfd, b"0")
        os.close(wfd)

    thread = threading.Thread(target=init)
    thread.start()
    return thread


def _join(sd, thread) -> None:
    """The stand-in init ended: let go of its open if nothing opened the other end."""
    if thread.is_alive() and os.path.exists(sd.fifo):
        os.close(os.open(sd.fifo, os.O_RDONLY | os.O_NONBLOCK))
    thread.join()


def _waits_for_a_reader(thread, timeout: float = 5.0) -> bool:
    """Whether `thread` got into its open of the fifo, waiting for a reader, within `timeout`."""
    return waits_in_fifo_open(f"/proc/self/task/{thread.native_id}/wchan", timeout)


def _fifo_container(tmp_path, name):
    sd = StateDir(str(tmp_path), name)
    os.mkdir(sd.path)
    os.mkfifo(sd.fifo, 0o622)
    me = os.getpid()
    return sd, ContainerState(id=name, bundle=str(tmp_path), pid=me, pid_start=proc_start_time(me))


def test_start_waits_for_the_byte_of_an_init_that_has_its_end_open(tmp_path, monkeypatch):
    """The init opened its end before start's open (its usual place: waiting for a reader), and
    writes only later: start waits for the byte in a read, without polling the init."""
    sd, state = _fifo_container(tmp_path, "waiting")
    polls = []
    monkeypatch.setattr(container_mod, "proc_start_time", lambda pid: polls.append(pid) or state.pid_start)
    thread = _init_holding_its_end(sd, write=True)
    try:
        if not _waits_for_a_reader(thread):
            pytest.skip("/proc/PID/wchan does not say where the thread waits")
        Container(sd, state).start()
    finally:
        _join(sd, thread)
    assert not os.path.exists(sd.fifo)
    assert polls == []


def test_start_of_an_init_that_dies_with_its_end_open_fails(tmp_path):
    sd, state = _fifo_container(tmp_path, "dies")
    thread = _init_holding_its_end(sd, write=False)
    try:
        if not _waits_for_a_reader(thread):
            pytest.skip("/proc/PID/wchan does not say where the thread waits")
        with pytest.raises(OcirtError, match="cannot start a container that has stopped"):
            Container(sd, state).start()
    finally:
        _join(sd, thread)


CGROUP_PARENT = "ocirt-test-start-race"
LIFECYCLES = 60  # at most this many lifecycles ...
SECONDS = 40  # ... and no more than this long (a bound on the cost, not a timing check)


@pytest.fixture
def busy_loops():
    """Two shell loops that keep both CPUs busy; ended by their pids."""
    procs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(2)]
    yield
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture(scope="module", autouse=True)
def remove_parent_cgroup():
    yield
    remove_cgroup_parent(CGROUP_PARENT)


def _run(args, err_path):
    p = run_err_to_file(OCIRT + args, err_path, timeout=120)
    return p.returncode, p.stderr.strip()


def _containers(config: dict, config_path: str, prefix: str, seconds: float):
    """Ids of containers to make one after another, each with a cgroupsPath of its own written
    into the bundle's config: at most LIFECYCLES of them, and none once `seconds` have passed."""
    deadline = time.monotonic() + seconds
    for n in range(LIFECYCLES):
        if time.monotonic() >= deadline:
            return
        cid = f"{prefix}-{n}"
        config["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{cid}"
        with open(config_path, "w") as f:
            json.dump(config, f)
        yield cid


def _wait_exit(pid: int, timeout: float = 20) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_lifecycles_of_true_under_load_all_start(tmp_path, busybox_rootfs, busy_loops):
    tag = uuid.uuid4().hex[:8]
    bundle = make_bundle(tmp_path / "bundle", busybox_rootfs, ["true"])
    config_path = os.path.join(bundle, "config.json")
    with open(config_path) as f:
        config = json.load(f)
    root = str(tmp_path / "root")
    err = str(tmp_path / "stderr")
    pid_file = str(tmp_path / "pid")
    failures, done = [], 0
    for cid in _containers(config, config_path, f"race-{tag}", SECONDS):
        try:
            rc, msg = _run(["--root", root, "create", "--bundle", bundle, "--pid-file", pid_file, cid], err)
            assert rc == 0, f"create {cid}: {msg}"
            with open(pid_file) as f:
                pid = int(f.read())
            rc, msg = _run(["--root", root, "start", cid], err)
            if rc != 0:
                failures.append(f"start {cid}: {msg}")
            _wait_exit(pid)
        finally:
            _run(["--root", root, "delete", "--force", cid], err)
        done += 1
    assert done > 0
    assert failures == [], f"{len(failures)} of {done} starts failed after a successful create"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_an_init_failing_before_its_move_is_reported_under_load(tmp_path, busybox_rootfs, busy_loops):
    """An init that fails in its setup: the error is the init's own (here: /proc in the image is
    a symlink), every time, under load. Where the init sets itself up while the parent makes
    the cgroup (create.LateCgroup: on cgroup v1 and hybrid hosts, for a creating process with
    another thread; tests/unit/test_moved_in.py plays it over a real socket pair) it can fail
    and end before the parent has moved it and told it to go on; the parent's message is then
    left unread and the kernel reports a connection reset before the init's Failed message,
    which was create's error about once in seven under load before the protocol read on past
    the reset. The command line's create makes the cgroup first (the init gets in by itself)."""
    rootfs = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", busybox_rootfs, str(rootfs)], check=True)
    os.rmdir(rootfs / "proc")
    os.makedirs(rootfs / "elsewhere" / "proc")
    os.symlink("/elsewhere/proc", rootfs / "proc")
    bundle = make_bundle(tmp_path / "bundle", str(rootfs), ["true"])
    config_path = os.path.join(bundle, "config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["root"]["readonly"] = False
    index = next(i for i, m in enumerate(config["mounts"]) if m["destination"] == "/proc")
    root, err, tag = str(tmp_path / "root"), str(tmp_path / "stderr"), uuid.uuid4().hex[:8]
    wrong, done = [], 0
    for cid in _containers(config, config_path, f"early-{tag}", SECONDS / 2):
        try:
            rc, msg = _run(["--root", root, "run", "--bundle", bundle, cid], err)
            if rc == 0 or f"/mounts/{index}/destination" not in msg:
                wrong.append(f"run {cid}: exit {rc}: {msg}")
        finally:
            _run(["--root", root, "delete", "--force", cid], err)
        done += 1
    assert done > 0
    assert wrong == [], f"{len(wrong)} of {done}: {wrong[:3]}"


# --- what start reads after the "0" (Container._read_failure) ---


def _fifo_with(*writes: bytes, keep_open: bool = False):
    """A pipe standing for exec.fifo after the init's "0": its read end, and the write end if
    kept open (the init still holds it: its execve not done)."""
    r, w = os.pipe()
    for data in writes:
        os.write(w, data)
    if not keep_open:
        os.close(w)
        w = None
    return r, w


def test_start_returns_once_the_init_is_executing_without_waiting_for_the_execve():
    r, w = _fifo_with(EXECUTING, keep_open=True)  # the init's end is still open
    try:
        assert Container._read_failure(r, to_end=False) == ""
    finally:
        os.close(r)
        os.close(w)


def test_with_poststart_hooks_start_waits_for_the_execve_and_reports_its_failure():
    r, _ = _fifo_with(EXECUTING, b"exec /bin/nosuch: no such file or directory")
    assert Container._read_failure(r, to_end=True) == "exec /bin/nosuch: no such file or directory"
    os.close(r)
    r, _ = _fifo_with(EXECUTING)  # executed: the end, nothing after EXECUTING
    assert Container._read_failure(r, to_end=True) == ""
    os.close(r)


@pytest.mark.parametrize("to_end", [False, True])
def test_a_failure_before_the_execve_is_the_error_of_start(to_end):
    r, _ = _fifo_with(b"startContainer hook /hooks/startContainer/0 failed: exit status 1")
    assert Container._read_failure(r, to_end=to_end).startswith("startContainer hook")
    os.close(r)
    r, _ = _fifo_with()  # the end and nothing: as before EXECUTING was written, a start
    assert Container._read_failure(r, to_end=to_end) == ""
    os.close(r)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_an_execve_that_fails_is_runs_error_and_after_start_the_containers_exit(tmp_path, busybox_rootfs):
    """start returns once the init is executing (EXECUTING): an execve that then fails (here: a
    file that is no program) ends the container with 127 and the message on its stderr, as
    with runc; run waits for the exec, so there it is run's error."""
    rootfs = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", busybox_rootfs, str(rootfs)], check=True)
    (rootfs / "notaprogram").write_text("nothing to run\n")
    os.chmod(rootfs / "notaprogram", 0o755)
    tag = uuid.uuid4().hex[:8]
    bundle = make_bundle(tmp_path / "bundle", str(rootfs), ["/notaprogram"])
    config_path = os.path.join(bundle, "config.json")
    with open(config_path) as f:
        config = json.load(f)
    root, err, pid_file = str(tmp_path / "root"), str(tmp_path / "stderr"), str(tmp_path / "pid")
    run_id, started_id = f"exec-fails-{tag}-run", f"exec-fails-{tag}-start"
    try:
        config["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{run_id}"
        with open(config_path, "w") as f:
            json.dump(config, f)
        rc, msg = _run(["--root", root, "run", "--bundle", bundle, run_id], err)
        assert rc != 0 and "exec format error" in msg, msg
        config["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{started_id}"
        with open(config_path, "w") as f:
            json.dump(config, f)
        rc, msg = _run(
            ["--root", root, "create", "--bundle", bundle, "--pid-file", pid_file, started_id], err
        )
        assert rc == 0, msg
        with open(pid_file) as f:
            pid = int(f.read())
        rc, msg = _run(["--root", root, "start", started_id], err)
        assert rc == 0, msg
        _wait_exit(pid)
        assert "exec format error" in open(err).read() or "exec format error" in msg
    finally:
        for cid in (run_id, started_id):
            _run(["--root", root, "delete", "--force", cid], err)
