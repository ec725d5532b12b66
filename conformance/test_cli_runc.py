"""The command line as people and scripts use runc's: exec -t in the foreground, exec's exit
status, --debug and --log, and a container joining a cgroup that already exists (frozen, with
processes, left behind).
"""

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time

import pytest
from runtime import CGROUP_FS, cgroup_dirs, ok, output, remove_cgroup_trees, wait_for

ROWS, COLS = 27, 91


def user(uid, gid):
    def mutate(c):
        c["process"]["user"] = {"uid": uid, "gid": gid}

    return mutate


def on_a_terminal(argv, stdin_tty=True, timeout=30):
    """Run argv with a new pty (ROWS x COLS) as its controlling terminal and stdout/stderr (and
    stdin unless stdin_tty is False: /dev/null then), in the foreground of its session. Returns
    (exit status, everything written to the terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))

    def controlling():
        fcntl.ioctl(0 if stdin_tty else 1, termios.TIOCSCTTY, 0)

    stdin = slave if stdin_tty else subprocess.DEVNULL
    p = subprocess.Popen(
        argv, stdin=stdin, stdout=slave, stderr=slave, start_new_session=True, preexec_fn=controlling
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed
                    break
                if not data:
                    break
                out += data
            elif p.poll() is not None:
                break
        code = p.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    return code, out.decode(errors="replace").replace("\r", "")


TTY_SCRIPT = (
    "tty; ls -ln $(tty); for fd in 0 1 2; do readlink /proc/self/fd/$fd; done; stty size; id -u; exit 3"
)


def check_tty_output(out, uid, size=False):
    lines = out.splitlines()
    name = next((ln for ln in lines if ln.startswith("/dev/pts/")), None)
    assert name, f"tty printed no /dev/pts name: {out!r}"
    owner = next((ln.split() for ln in lines if ln.startswith("c") and name in ln), None)
    assert owner, out
    assert owner[2] == str(uid), f"the tty is not the process's: {owner}"
    assert lines.count(name) >= 4, f"stdin/stdout/stderr are not the tty: {out!r}"
    if size:
        assert f"{ROWS} {COLS}" in lines, f"the pty does not have our terminal's size: {out!r}"


@pytest.mark.parametrize("uid", [0, 1000])
def test_exec_tty_in_the_foreground_relays_a_pty(rt, started, uid):
    """runc exec -t without --console-socket: the runtime makes the pty and relays it; the tty
    belongs to the process's user (its group stays devpts' own)."""
    b = started(mutate=user(uid, uid))
    code, out = on_a_terminal(rt.argv("exec", "-t", b.id, "sh", "-c", TTY_SCRIPT))
    assert code == 3, out
    check_tty_output(out, uid)


@pytest.mark.runc_deviates("runc 1.1.5 sizes the pty after the process has started (a race)", strict=False)
@pytest.mark.parametrize("stdin_tty", [True, False])
def test_exec_tty_has_the_terminal_size_from_the_start(rt, started, stdin_tty):
    b = started()
    code, out = on_a_terminal(rt.argv("exec", "-t", b.id, "sh", "-c", TTY_SCRIPT), stdin_tty=stdin_tty)
    assert code == 3, out
    check_tty_output(out, 0, size=True)


def test_exec_tty_with_stdin_not_a_terminal(rt, started):
    """stdin redirected, stdout and stderr on a terminal: still a pty in the container, with
    the terminal's size, and the output relayed."""
    b = started(mutate=user(1000, 1000))
    code, out = on_a_terminal(rt.argv("exec", "-t", b.id, "sh", "-c", TTY_SCRIPT), stdin_tty=False)
    assert code == 3, out
    check_tty_output(out, 1000)


@pytest.mark.runc_deviates("runc exec -t needs a terminal on its own side (open /dev/tty)")
def test_exec_tty_without_any_terminal(rt, started):
    """Scripts: no terminal at all, exec -t still gives the process one and relays its output
    (as ocirt's run of a terminal container does)."""
    b = started()
    p = rt("exec", "-t", b.id, "sh", "-c", "tty; echo on-a-pty")
    assert p.returncode == 0, p.stderr
    assert "/dev/pts/" in p.stdout and "on-a-pty" in p.stdout, p.stdout


def run_on_a_terminal(rt, make_bundle, uid: int) -> str:
    """`run` of a terminal container (runc run -t) from a terminal: TTY_SCRIPT's output."""

    def terminal(c):
        c["process"]["terminal"] = True
        c["process"]["user"] = {"uid": uid, "gid": uid}

    b = make_bundle(["sh", "-c", TTY_SCRIPT], mutate=terminal)
    rt._remember(b.id)
    code, out = on_a_terminal(rt.argv("run", "--bundle", b.path, b.id))
    assert code == 3, out
    return out


def test_run_tty_belongs_to_the_process_user(rt, make_bundle):
    """run of a terminal container: the same pty rules for the init."""
    check_tty_output(run_on_a_terminal(rt, make_bundle, 1000), 1000)


@pytest.mark.runc_deviates("runc 1.1.5 sizes the pty after the process has started (a race)", strict=False)
def test_run_tty_has_the_terminal_size_from_the_start(rt, make_bundle):
    check_tty_output(run_on_a_terminal(rt, make_bundle, 1000), 1000, size=True)


def test_exec_tty_detached_needs_a_console_socket(rt, started):
    b = started()
    p = rt("exec", "-t", "-d", b.id, "true")
    assert p.returncode != 0
    assert "cannot allocate tty if runc will detach without setting console socket" in p.stderr


# ---- exit status ------------------------------------------------------------------------------


def test_exec_status_is_the_process_status(rt, started):
    b = started()
    assert rt("exec", b.id, "sh", "-c", "exit 1").returncode == 1
    assert rt("exec", b.id, "sh", "-c", "exit 42").returncode == 42
    assert rt("exec", b.id, "true").returncode == 0


def test_exec_process_leads_its_own_session(rt, started):
    """Without a terminal too, the exec'd process is the leader of a session of its own (runc's
    nsexec calls setsid for every process it starts): a checkpoint of the container then finds
    no session led from outside it."""
    b = started()
    p = rt("exec", b.id, "cat", "/proc/self/stat")
    assert p.returncode == 0, p.stderr
    pid, rest = p.stdout.split(" ", 1)
    session = int(rest.rsplit(")", 1)[1].split()[3])  # after comm: state ppid pgrp session
    assert session == int(pid)


@pytest.mark.parametrize("case", ["no-container", "no-executable", "no-command", "bad-process"])
def test_exec_own_failure_is_255(rt, started, new_id, tmp_path, case):
    """runc's convention: exec's own failures exit 255, so that a caller can tell them from the
    process exiting 1."""
    if case == "no-container":
        p = rt("exec", new_id(), "true")
    else:
        b = started()
        if case == "no-executable":
            p = rt("exec", b.id, "/no/such/program")
        elif case == "no-command":
            p = rt("exec", b.id)
        else:
            p = rt("exec", "-p", str(tmp_path / "missing.json"), b.id)
    assert p.returncode == 255, (p.returncode, p.stderr)
    assert "exec failed" in p.stderr, p.stderr


def test_exec_pid_file_error_names_no_temporary_file(rt, started, tmp_path):
    """A --pid-file that cannot be written: exec fails (255), its message names the file and
    not a temporary one (".directory.<pid>"), and the process it started is gone."""
    b = started()
    p = rt("exec", "--pid-file", str(tmp_path / "missing" / "directory"), b.id, "sleep", "77")
    assert p.returncode == 255, (p.returncode, p.stderr)
    assert "missing" in p.stderr and not re.search(r"\.directory\.\d", p.stderr), p.stderr
    wait_for(lambda: "sleep 77" not in rt("ps", b.id).stdout, what="the exec'd process gone")


def test_exec_paused_container_is_refused(rt, started):
    b = started()
    ok(rt("pause", b.id))
    try:
        p = rt("exec", b.id, "true")
        assert p.returncode == 255, p.stderr
        assert "paused" in p.stderr and "--ignore-paused" in p.stderr, p.stderr
    finally:
        ok(rt("resume", b.id))


# ---- --debug, --log ---------------------------------------------------------------------------


def test_debug_lines_on_stderr(rt, started):
    b = started()
    p = rt("exec", b.id, "true", global_args=["--debug"])
    assert p.returncode == 0, p.stderr
    assert "level=debug" in p.stderr, p.stderr


def test_no_debug_lines_without_debug(rt, started):
    b = started()
    p = rt("exec", b.id, "true")
    assert p.returncode == 0 and "level=debug" not in p.stderr, p.stderr


def test_debug_lines_in_the_json_log(rt, started, tmp_path):
    b = started()
    log = tmp_path / "debug.json"
    p = rt("exec", b.id, "true", global_args=["--debug", "--log", str(log), "--log-format", "json"])
    assert p.returncode == 0, p.stderr
    entries = [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()]
    debug = [e for e in entries if e.get("level") == "debug"]
    assert debug and all(e.get("msg") for e in debug), entries


def test_log_file_is_created(rt, started, tmp_path):
    """--log FILE is made at once, even when nothing goes wrong."""
    b = started()
    log = tmp_path / "made.log"
    ok(rt("state", b.id, global_args=["--debug", "--log", str(log)]))
    assert log.exists()


# ---- a cgroup that exists before create -------------------------------------------------------


def hierarchy_dirs(cgroups_path):
    """The directory of cgroups_path in every mounted hierarchy (v1 and v2)."""
    rel = cgroups_path.lstrip("/")
    if os.path.exists(os.path.join(CGROUP_FS, "cgroup.controllers")):
        return [os.path.join(CGROUP_FS, rel)]
    return [
        os.path.join(CGROUP_FS, h, rel)
        for h in sorted(os.listdir(CGROUP_FS))
        if os.path.ismount(os.path.join(CGROUP_FS, h))
    ]


@pytest.fixture
def existing_cgroup():
    """make(cgroups_path) -> its directories, made beforehand in every hierarchy (as an engine
    or an administrator would); whatever is left is removed at teardown."""
    made = []

    def make(cgroups_path):
        dirs = hierarchy_dirs(cgroups_path)
        for d in dirs:
            os.makedirs(d, exist_ok=True)
            if os.path.exists(os.path.join(d, "cpuset.cpus")):
                _fill_cpuset(d)
        made.extend(dirs)
        return dirs

    yield make
    assert not remove_cgroup_trees(made), "a cgroup could not be removed"


def _fill_cpuset(d):
    """v1: a cpuset with no cpus or mems takes no task; give each level down to d its parent's."""
    levels = []
    while os.path.exists(os.path.join(d, "cpuset.cpus")):
        levels.append(d)
        d = os.path.dirname(d)
    for d in reversed(levels):
        for name in ("cpuset.cpus", "cpuset.mems"):
            with open(os.path.join(d, name)) as f:
                if f.read().strip():
                    continue
            with open(os.path.join(os.path.dirname(d), name)) as f:
                value = f.read().strip()
            with open(os.path.join(d, name), "w") as f:
                f.write(value)


def freezer_file(dirs):
    for d in dirs:
        for name, value in (("freezer.state", "FROZEN"), ("cgroup.freeze", "1")):
            if os.path.exists(os.path.join(d, name)):
                return os.path.join(d, name), value
    pytest.skip("no freezer")


def test_frozen_cgroup_is_refused_at_once(rt, make_bundle, existing_cgroup):
    """A cgroup frozen before create: the container could never run; runc refuses at once
    rather than waiting forever for a frozen child."""
    b = make_bundle(["sleep", "1000"])
    dirs = existing_cgroup(b.cgroups_path)
    path, value = freezer_file(dirs)
    with open(path, "w") as f:
        f.write(value)
    p = rt.run(b.id, b, extra=["-d"], timeout=20)
    assert p.returncode != 0
    assert "container's cgroup unexpectedly frozen" in p.stderr, p.stderr
    assert rt.state(b.id).returncode != 0, "a refused create left a container"


def test_non_empty_cgroup_is_joined_with_a_warning(rt, make_bundle, existing_cgroup, host_process):
    b = make_bundle(["sleep", "1000"])
    dirs = existing_cgroup(b.cgroups_path)
    other = host_process(["sleep", "1000"])
    placed = []
    for d in dirs:
        try:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(other.pid))
            placed.append(d)
        except OSError:
            pass
    # where runc 1.1.5 looks on v1 (it warns from the devices hierarchy alone), or the v2 one
    devices = os.path.join(CGROUP_FS, "devices", b.cgroups_path.lstrip("/"))
    assert devices in placed or placed == dirs == dirs[:1], placed
    p = rt.run(b.id, b, extra=["-d"])
    assert p.returncode == 0, p.stderr
    assert "container's cgroup is not empty: 1 process(es) found" in p.stderr, p.stderr
    other.kill()
    other.wait()
    ok(rt.delete(b.id, force=True))


def test_delete_removes_a_cgroup_that_existed_before(rt, make_bundle, existing_cgroup):
    """runc removes the container's cgroup on delete, whoever made it."""
    b = make_bundle(["sleep", "1000"])
    existing_cgroup(b.cgroups_path)
    ok(rt.run(b.id, b, extra=["-d"]))
    ok(rt.kill(b.id, "KILL"))
    rt.wait_status(b.id, "stopped")
    ok(rt.delete(b.id))
    wait_for(lambda: cgroup_dirs(b.cgroups_path) == [], timeout=5, what="the cgroup to be removed")


def test_delete_leaves_an_existing_cgroup_that_others_use(rt, make_bundle, existing_cgroup, host_process):
    """A cgroup that existed before and still holds a process that is not the container's
    stays (the process with it); delete succeeds."""
    b = make_bundle(["sleep", "1000"])
    dirs = existing_cgroup(b.cgroups_path)
    ok(rt.run(b.id, b, extra=["-d"]))
    ok(rt.kill(b.id, "KILL"))
    rt.wait_status(b.id, "stopped")
    other = host_process(["sleep", "1000"])
    pids_dir = next((d for d in dirs if os.path.basename(d) == "pids"), dirs[0])
    with open(os.path.join(pids_dir, "cgroup.procs"), "w") as f:
        f.write(str(other.pid))
    ok(rt.delete(b.id))
    assert other.poll() is None, "delete killed a process that is not the container's"
    assert os.path.isdir(pids_dir)
    other.kill()
    other.wait()


# ---- exec --cgroup, --ignore-paused --------------------------------------------------------------


def test_exec_cgroup_may_not_leave_the_container(rt, started):
    b = started()
    p = rt("exec", "--cgroup", "../escape", b.id, "true")
    assert p.returncode == 255, p.stderr
    assert "is not a sub cgroup path" in p.stderr, p.stderr


def test_exec_into_a_sub_cgroup(rt, started, request):
    b = started()
    dirs = hierarchy_dirs(b.cgroups_path)
    made = []
    try:
        for d in dirs:
            os.mkdir(os.path.join(d, "sub"))
            made.append(os.path.join(d, "sub"))
            if os.path.exists(os.path.join(d, "cpuset.cpus")):
                _fill_cpuset(os.path.join(d, "sub"))
        p = rt("exec", "--cgroup", "sub", b.id, "cat", "/proc/self/cgroup")
        assert p.returncode == 0, p.stderr
        lines = [ln.split(":", 2) for ln in p.stdout.splitlines()]
        wanted = [ln for ln in lines if ln[1] in ("memory", "")]  # v1 memory, or v2
        assert wanted and all(ln[2].endswith("/sub") for ln in wanted), p.stdout
    finally:
        remove_cgroup_trees(made)


def test_exec_ignore_paused(rt, started, request):
    """--ignore-paused: the process is made in the frozen container and runs once it is
    resumed."""
    b = started(tmp=True)
    ok(rt("pause", b.id))
    proc = rt.popen("exec", "--ignore-paused", b.id, "sh", "-c", "echo ran")
    try:
        time.sleep(0.5)
        assert proc.poll() is None, "the exec'd process ran in a paused container"
    finally:
        ok(rt("resume", b.id))
    assert proc.wait(timeout=20) == 0
    assert output(proc)[0] == "ran\n"
