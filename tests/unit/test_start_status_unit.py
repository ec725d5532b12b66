"""The status while `start` runs: exec.fifo, marked started (STARTED_MODE) before start's open,
stays until the init wrote EXECUTING; created meanwhile, running after. Whatever became of the
start (killed during the startContainer hooks), a marked fifo is created while the init holds it
and running once its execve closed it; the status never opens the fifo (a reader would let a
waiting init go). This process stands for the init (alive, its start time recorded; its fds are
the init's), threads for its waits."""

import os
import stat
import threading
import time

import pytest
from cli_helpers import waits_in_fifo_open

from ocirt import state as state_mod
from ocirt.container import OpenContainer
from ocirt.errors import OcirtError
from ocirt.state import EXECUTING, STARTED_MODE, ContainerState, StateDir, Status, proc_start_time


def _container(tmp_path, name="c"):
    sd = StateDir(str(tmp_path), name)
    os.mkdir(sd.path)
    os.mkfifo(sd.fifo, 0o622)
    os.chmod(sd.fifo, 0o622)
    me = os.getpid()
    return sd, ContainerState(id=name, bundle=str(tmp_path), pid=me, pid_start=proc_start_time(me))


def _status(sd, state):
    return StateDir(sd.root, sd.id).status(state)  # another command's, as `state` would


def _mark(sd):
    os.chmod(sd.fifo, STARTED_MODE)


def _writer_after_a_reader(sd):
    """The init's end, opened once a reader (here, a start killed later) let it go."""
    rfd = os.open(sd.fifo, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(sd.fifo, os.O_WRONLY)
    return rfd, wfd


def _waits_for_a_reader(thread, timeout=5.0):
    return waits_in_fifo_open(f"/proc/self/task/{thread.native_id}/wchan", timeout)


def test_an_unmarked_fifo_is_created_and_never_opened(tmp_path, monkeypatch):
    """Created before any start: one stat, and no open that would let the waiting init go."""
    sd, state = _container(tmp_path)
    opened = []
    real_open = state_mod.posix.open
    monkeypatch.setattr(state_mod.posix, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    assert _status(sd, state) is Status.CREATED
    assert sd.fifo not in opened


def test_the_status_does_not_let_a_waiting_init_go(tmp_path):
    sd, state = _container(tmp_path)
    got = []
    thread = threading.Thread(target=lambda: got.append(os.open(sd.fifo, os.O_WRONLY)))
    thread.start()
    try:
        if not _waits_for_a_reader(thread):
            pytest.skip("/proc/PID/wchan does not say where the thread waits")
        for _ in range(3):
            assert _status(sd, state) is Status.CREATED
        assert _waits_for_a_reader(thread, timeout=0.1) and not got
    finally:
        os.close(os.open(sd.fifo, os.O_RDONLY | os.O_NONBLOCK))
        thread.join()
        for fd in got:
            os.close(fd)


def test_no_fifo_is_running(tmp_path):
    sd, state = _container(tmp_path)
    os.unlink(sd.fifo)
    assert _status(sd, state) is Status.RUNNING


def test_marked_while_a_start_reads_it_is_created(tmp_path):
    """A start waits for EXECUTING (it unlinks the fifo then): the hooks run."""
    sd, state = _container(tmp_path)
    rfd, wfd = _writer_after_a_reader(sd)
    try:
        _mark(sd)
        assert _status(sd, state) is Status.CREATED
        os.write(wfd, EXECUTING)
        assert _status(sd, state) is Status.CREATED  # until that start unlinks it
        assert os.read(rfd, 1) == EXECUTING  # the status took nothing of it
    finally:
        os.close(wfd)
        os.close(rfd)


def test_marked_and_the_init_waiting_for_a_reader_is_created_and_left_waiting(tmp_path):
    """The start was killed between its mark and its open."""
    sd, state = _container(tmp_path)
    _mark(sd)
    got = []
    thread = threading.Thread(target=lambda: got.append(os.open(sd.fifo, os.O_WRONLY)))
    thread.start()
    path_fd = os.open(sd.fifo, os.O_PATH)  # the init's own, from create
    try:
        if not _waits_for_a_reader(thread):
            pytest.skip("/proc/PID/wchan does not say where the thread waits")
        assert _status(sd, state) is Status.CREATED
        assert _waits_for_a_reader(thread, timeout=0.1) and not got
    finally:
        os.close(path_fd)
        os.close(os.open(sd.fifo, os.O_RDONLY | os.O_NONBLOCK))
        thread.join()
        for fd in got:
            os.close(fd)


def test_marked_without_a_start_and_the_init_holding_its_end_is_created(tmp_path):
    """The start was killed during the hooks; they still run."""
    sd, state = _container(tmp_path)
    rfd, wfd = _writer_after_a_reader(sd)
    os.close(rfd)  # the start is killed
    try:
        _mark(sd)
        assert _status(sd, state) is Status.CREATED
    finally:
        os.close(wfd)


def test_marked_without_a_start_is_running_once_the_execve_closed_the_inits_end(tmp_path):
    """Killed after the init wrote EXECUTING, or before: the init's execve tells."""
    sd, state = _container(tmp_path)
    rfd, wfd = _writer_after_a_reader(sd)
    _mark(sd)
    os.write(wfd, EXECUTING)
    os.close(rfd)
    assert _status(sd, state) is Status.CREATED  # the execve is under way
    os.close(wfd)  # its end is close-on-exec
    assert _status(sd, state) is Status.RUNNING


def test_a_marked_fifo_of_a_dead_init_is_stopped(tmp_path):
    sd, state = _container(tmp_path)
    _mark(sd)
    state.pid_start += 1  # another process now
    assert _status(sd, state) is Status.STOPPED


def _init(sd, seen, hooks_done):
    """The init's side after the "0": runs its (stand-in) hooks until hooks_done, and records
    what another command sees meanwhile."""

    held = os.open(sd.fifo, os.O_PATH)  # as the init's spec.fifo_fd: held from before start

    def run():
        wfd = os.open(sd.fifo, os.O_WRONLY)
        os.write(wfd, b"0")
        os.close(held)
        hooks_done.wait(10)
        seen.append(stat.S_IMODE(os.stat(sd.fifo).st_mode))
        os.write(wfd, EXECUTING)
        time.sleep(0.05)  # the execve
        os.close(wfd)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_start_marks_the_fifo_and_keeps_it_until_executing(tmp_path):
    sd, state = _container(tmp_path)
    seen, hooks_done = [], threading.Event()
    thread = _init(sd, seen, hooks_done)
    starter = threading.Thread(target=lambda: OpenContainer(sd, state).start())
    starter.start()
    try:
        deadline = time.monotonic() + 5
        while os.stat(sd.fifo).st_mode & 0o7777 != STARTED_MODE and time.monotonic() < deadline:
            time.sleep(0.001)
        assert _status(sd, state) is Status.CREATED  # the hooks run
        hooks_done.set()
        starter.join(10)
        assert not starter.is_alive()
        assert not os.path.exists(sd.fifo)
        assert _status(sd, state) is Status.RUNNING
        assert seen == [STARTED_MODE]
    finally:
        hooks_done.set()
        thread.join()
        starter.join()


def test_a_start_after_a_killed_one_waits_for_executing(tmp_path):
    """The fifo marked, the init in its hooks, no start: the next start takes the wait over,
    without waiting for a "0" that came already."""
    sd, state = _container(tmp_path)
    rfd, wfd = _writer_after_a_reader(sd)
    os.write(wfd, b"0")
    assert os.read(rfd, 1) == b"0"
    _mark(sd)
    os.close(rfd)  # that start is killed

    def init():
        time.sleep(0.1)
        os.write(wfd, EXECUTING)
        os.close(wfd)

    thread = threading.Thread(target=init)
    thread.start()
    try:
        c = OpenContainer(sd, state)
        c.start()
        assert sd.fifo_started and not os.path.exists(sd.fifo)
    finally:
        thread.join()


def test_a_start_after_one_killed_before_its_open_starts_it(tmp_path):
    """Marked, the init still waiting for a reader: the next start lets it go, as its own."""
    sd, state = _container(tmp_path)
    _mark(sd)

    def init():
        wfd = os.open(sd.fifo, os.O_WRONLY)
        os.write(wfd, b"0")
        time.sleep(0.05)
        os.write(wfd, EXECUTING)
        os.close(wfd)

    path_fd = os.open(sd.fifo, os.O_PATH)  # the init's own, from create, held while it waits
    thread = threading.Thread(target=init)
    thread.start()
    try:
        if not _waits_for_a_reader(thread):
            pytest.skip("/proc/PID/wchan does not say where the thread waits")
        OpenContainer(sd, state).start()
        assert not os.path.exists(sd.fifo)
    finally:
        os.close(path_fd)
        if thread.is_alive() and os.path.exists(sd.fifo):
            os.close(os.open(sd.fifo, os.O_RDONLY | os.O_NONBLOCK))
        thread.join()


def test_a_start_after_the_program_was_executed_is_refused(tmp_path):
    sd, state = _container(tmp_path)
    rfd, wfd = _writer_after_a_reader(sd)
    os.close(rfd)
    _mark(sd)
    os.close(wfd)
    with pytest.raises(OcirtError, match="already running"):
        OpenContainer(sd, state).start()


def test_start_fails_on_an_init_that_exited_in_its_hooks_after_a_killed_start(tmp_path):
    """Marked, and the init's end closed between the status and the next start's read."""
    sd, state = _container(tmp_path)
    _mark(sd)
    sd2 = StateDir(sd.root, sd.id)
    sd2.fifo_started = True  # as status() left it
    c = OpenContainer(sd2, state)
    c.status = lambda: Status.CREATED  # type: ignore[method-assign]
    with pytest.raises(OcirtError, match="already running|stopped"):
        c.start()


def test_an_end_handed_over_between_listing_and_looking_is_not_an_execve(tmp_path, monkeypatch):
    """The init opens its end of the fifo, then closes its O_PATH fd: a listing of its fds taken
    before the open and read after the close finds neither, and is asked again (it was taken for
    the execve: "running" while the startContainer hooks ran; seen once in a loaded CI run)."""
    sd, state = _container(tmp_path)
    _mark(sd)
    fifo = os.lstat(sd.fifo)
    fds = f"/proc/{state.pid}/fd"
    listings = iter([["7"], ["8"]])  # the O_PATH fd, then the end opened before its close
    real_listdir, real_stat = state_mod.posix.listdir, state_mod.posix.stat

    def listdir(path):
        return next(listings) if path == fds else real_listdir(path)

    def stat_(path, *args, **kw):
        if path == f"{fds}/7":
            raise FileNotFoundError(path)  # closed meanwhile
        return fifo if path == f"{fds}/8" else real_stat(path, *args, **kw)

    monkeypatch.setattr(state_mod.posix, "listdir", listdir)
    monkeypatch.setattr(state_mod.posix, "stat", stat_)
    assert _status(sd, state) is Status.CREATED
