"""The short commands and exec under a hostile environment (a caller's rlimits, a stdout that
cannot be written, a --root that cannot be written): a one-line error naming what is wrong, a
non-zero exit (never a signal's death), and nothing left behind: no process of exec's, no cgroup
changed by a command that failed."""

import glob
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest
from cli_helpers import OCIRT, REPO, child_of, make_bundle, remove_cgroup_parent, run_err_to_file

LAUNCHER = os.path.join(REPO, "bin", "ocirt")
PARENT = "ocirt-test-adversity"


def _limits(**limits):
    """A preexec_fn lowering the soft limits given (RLIMIT_<NAME>=value); the hard ones stay."""

    def apply():
        for name, value in limits.items():
            which = getattr(resource, f"RLIMIT_{name}")
            resource.setrlimit(which, (value, resource.getrlimit(which)[1]))

    return apply


def _ocirt(root, *args, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("capture_output", "stdout" not in kw and "stderr" not in kw)
    kw.setdefault("timeout", 60)
    return subprocess.run([*OCIRT, "--root", root, *args], cwd=REPO, text=True, **kw)


@pytest.fixture
def running(tmp_path, busybox_rootfs):
    """A running container (sleep), its root and id; deleted at the end."""
    cid = f"adv-{uuid.uuid4().hex[:12]}"  # (not tmp_path's name: the same on two xdist workers)
    bundle = make_bundle(
        tmp_path / "bundle", busybox_rootfs, ["sleep", "300"], cgroups_path=f"/{PARENT}/{cid}"
    )
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    config["linux"].setdefault("resources", {})["cpu"] = {"shares": 512}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    root = str(tmp_path / "root")
    try:
        p = run_err_to_file(
            [*OCIRT, "--root", root, "run", "-d", "--bundle", bundle, cid], tmp_path / "run.err"
        )
        assert p.returncode == 0, p.stderr
        yield root, cid
    finally:
        _ocirt(root, "delete", "--force", cid)
        remove_cgroup_parent(PARENT)


def _pids(root, cid) -> list:
    p = _ocirt(root, "ps", "--format", "json", cid)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _init_pid(root, cid) -> int:
    return json.loads(_ocirt(root, "state", cid).stdout)["pid"]


def _one_line(p) -> str:
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


# -- output that cannot be written ------------------------------------------------------------------

PRINTING = [
    ["state", "{id}"],
    ["list"],
    ["list", "--quiet"],
    ["list", "--format", "json"],
    ["ps", "{id}"],
    ["ps", "--format", "json", "{id}"],
    ["features"],
    ["events", "--stats", "{id}"],
]


@pytest.mark.parametrize("args", PRINTING, ids=lambda a: "-".join(a).replace("{id}", "ID"))
def test_output_to_a_full_device_is_its_error(running, args):
    """stdout at /dev/full: the error names stdout, and the exit is not 0 (it was 120 with no
    word at all: the interpreter's last flush failed in silence)."""
    root, cid = running
    with open("/dev/full", "w") as full:
        p = _ocirt(root, *[a.format(id=cid) for a in args], stdout=full, stderr=subprocess.PIPE)
    assert p.returncode == 1, p.stderr
    assert _one_line(p).endswith('msg="write /dev/stdout: no space left on device"'), p.stderr


@pytest.mark.parametrize("args", PRINTING, ids=lambda a: "-".join(a).replace("{id}", "ID"))
def test_output_to_a_pipe_without_reader_is_its_error(running, args):
    """`ocirt list | true`: the reader gone before it read anything is told (EPIPE), not 120
    in silence."""
    root, cid = running
    r, w = os.pipe()
    os.close(r)
    try:
        p = _ocirt(root, *[a.format(id=cid) for a in args], stdout=w, stderr=subprocess.PIPE)
    finally:
        os.close(w)
    assert p.returncode == 1, p.stderr
    assert _one_line(p).endswith('msg="write /dev/stdout: broken pipe"'), p.stderr


def test_exec_tty_output_that_cannot_be_written_leaves_no_process(running, tmp_path):
    """exec -t in the foreground whose stdout takes nothing (/dev/full): exec fails, and its
    process goes with it (one that ignores SIGHUP was left running in the container, with no
    one to wait for it)."""
    root, cid = running
    with open("/dev/full", "w") as full:
        p = run_err_to_file(
            [*OCIRT, "--root", root, "exec", "-t", cid, "sh", "-c", 'trap "" HUP; echo hi; exec sleep 301'],
            tmp_path / "exec.err",
            stdout=full,
        )
    assert p.returncode == 255, p.stderr
    assert _one_line(p).startswith("time=") and "exec failed: " in p.stderr
    assert _pids(root, cid) == [_init_pid(root, cid)]


# -- a caller's rlimits ---------------------------------------------------------------------------------


def test_exec_pid_file_beyond_rlimit_fsize_is_not_a_signal_death(running, tmp_path):
    """RLIMIT_FSIZE 0 (the pid file, and the stderr file too, cannot take a byte): exec fails
    with a status, not killed by SIGXFSZ (its foreground relay caught the signal its own writes
    raise, and Python set it back to the default action at its exit), and leaves no process."""
    root, cid = running
    p = run_err_to_file(
        [*OCIRT, "--root", root, "exec", "--pid-file", str(tmp_path / "pid"), cid, "true"], tmp_path / "err"
    )  # (a dry run without the limit: the command itself works)
    assert p.returncode == 0, p.stderr
    with open(tmp_path / "exec.err", "w") as err:
        p = subprocess.run(
            [
                sys.executable,
                "-I",
                "-S",
                LAUNCHER,
                "--root",
                root,
                "exec",
                "--pid-file",
                str(tmp_path / "pid2"),
            ]
            + [cid, "true"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=60,
            preexec_fn=_limits(FSIZE=0),
        )
    assert p.returncode > 0, p.returncode  # (-25: SIGXFSZ)
    assert not os.path.exists(tmp_path / "pid2")
    assert _pids(root, cid) == [_init_pid(root, cid)]


def _cpu_shares(group: str) -> list:
    return [int(open(f).read()) for f in glob.glob(f"/sys/fs/cgroup/*/{group}/cpu.shares")]


def test_update_that_cannot_be_recorded_leaves_the_cgroup_as_it_was(running, tmp_path):
    """An update whose record cannot be saved (RLIMIT_FSIZE 0: state.json.tmp takes nothing; a
    full or read-only --root alike) fails, and the cgroup keeps the values state.json tells (the
    new ones were left written, and the next update rolled back to what was never there)."""
    root, cid = running
    group = f"{PARENT}/{cid}"
    if not _cpu_shares(group):
        pytest.skip("no cgroup v1 cpu controller")
    assert set(_cpu_shares(group)) == {512}
    p = _ocirt(root, "update", "--cpu-share", "700", cid, preexec_fn=_limits(FSIZE=0))
    assert p.returncode == 1
    assert "state.json.tmp: file too large" in _one_line(p)
    assert set(_cpu_shares(group)) == {512}
    p = _ocirt(root, "update", "--cpu-share", "600", cid)  # and an update that can: as before
    assert p.returncode == 0, p.stderr
    assert set(_cpu_shares(group)) == {600}


def test_ps_without_fds_for_ps_names_what_failed(running):
    """RLIMIT_NOFILE too low for the pipe of `ps` (the table): the error says it was running ps,
    not a bare "Too many open files"."""
    root, cid = running
    seen = set()
    for fds in range(4, 12):
        p = subprocess.run(
            [sys.executable, "-I", "-S", LAUNCHER, "--root", root, "ps", cid],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=_limits(NOFILE=fds),
        )
        if p.returncode == 0:
            continue
        line = _one_line(p)
        seen.add(line.split("msg=", 1)[-1])
        assert 'msg="Too many open files"' not in line, (fds, line)
    assert '"exec: \\"ps\\": too many open files"' in seen, seen


# -- a damaged state dir ------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["directory", "regular file", "symbolic link"])
def test_start_refuses_an_exec_fifo_that_is_no_fifo(tmp_path, busybox_rootfs, damage):
    """exec.fifo made something else between create and start: start refuses it, in one line,
    and leaves it and the container as they were (created, deletable). A symlink's target was
    chmod'ed 01622 (/dev/null, say) and then waited on for ever; a regular file's bytes were
    taken for the init's failure, and the container killed; a directory left it 'running'."""
    cid = f"adv-{uuid.uuid4().hex[:12]}"  # (not tmp_path's name: the same on two xdist workers)
    bundle = make_bundle(
        tmp_path / "bundle", busybox_rootfs, ["sleep", "300"], cgroups_path=f"/{PARENT}/{cid}"
    )
    root = str(tmp_path / "root")
    target = str(tmp_path / "null")
    try:
        p = run_err_to_file([*OCIRT, "--root", root, "create", "--bundle", bundle, cid], tmp_path / "c.err")
        assert p.returncode == 0, p.stderr
        fifo = os.path.join(root, cid, "exec.fifo")
        os.unlink(fifo)
        if damage == "directory":
            os.mkdir(fifo)
        elif damage == "regular file":
            with open(fifo, "w") as f:
                f.write("hi\n")
        else:
            os.mknod(target, 0o20666, os.makedev(1, 3))  # a /dev/null of the test's own
            os.chmod(target, 0o666)
            os.symlink(target, fifo)
        p = _ocirt(root, "start", cid, timeout=20)
        assert p.returncode == 1
        assert _one_line(p).endswith(f'is a {damage}, not a fifo: the state directory was damaged"'), p.stderr
        assert json.loads(_ocirt(root, "state", cid).stdout)["status"] == "created"
        if damage == "symbolic link":
            assert os.stat(target).st_mode & 0o7777 == 0o666
    finally:
        _ocirt(root, "delete", "--force", cid)
        remove_cgroup_parent(PARENT)
    assert not os.path.exists(os.path.join(root, cid))


# -- signals ----------------------------------------------------------------------------------------


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_exec_detach_stopped_by_a_signal_leaves_no_process(running, tmp_path, sig):
    """A SIGTERM or ^C to `exec -d` once its process was started (here: while it writes
    --pid-file, held there by strace) cancels the exec: one line, 255, no process and no pid
    file left (it died of SIGTERM, or ended 130, and the process ran on)."""
    root, cid = running
    piddir = tmp_path / "pid"
    piddir.mkdir()
    renames = "rename,renameat,renameat2"
    with open(tmp_path / "exec.err", "w+") as err:
        p = subprocess.Popen(
            ["strace", "-qq", "-o", "/dev/null", "-e", f"trace={renames}"]
            + ["-e", f"inject={renames}:delay_enter=1000000"]
            + [*OCIRT, "--root", root, "exec", "-d", "--pid-file", str(piddir / "pid"), cid, "sleep", "302"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            deadline = time.monotonic() + 60  # (a hang made a failure)
            while not glob.glob(str(piddir / ".pid.*")):  # the temporary pid file: the process runs
                assert p.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
            os.kill(child_of(p.pid), sig)
            assert p.wait(timeout=60) == 255
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        err.seek(0)
        p.stderr = err.read()
    assert _one_line(p).endswith(
        f'msg="exec failed: interrupted by signal {int(sig)}: the process was killed"'
    )
    assert _pids(root, cid) == [_init_pid(root, cid)]
    assert os.listdir(piddir) == []


# -- a cgroup taken away --------------------------------------------------------------------------------


def _move_out_and_remove_cgroup(group: str, pid: int) -> None:
    """The init moved to the top of each hierarchy (cgroup v2: the one), and the container's
    cgroup removed."""
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    pattern = f"/sys/fs/cgroup/{group}" if v2 else f"/sys/fs/cgroup/*/{group}"
    found = glob.glob(pattern)
    assert found, pattern
    for d in found:
        top = "/sys/fs/cgroup" if v2 else os.path.dirname(os.path.dirname(d))  # (v1: <hierarchy>)
        with open(os.path.join(top, "cgroup.procs"), "w") as f:
            f.write(str(pid))
        os.rmdir(d)
    assert not glob.glob(pattern)


def test_kill_all_reaches_an_init_outside_its_cgroup(running, tmp_path):
    """The container's cgroup removed under it (its init moved out first): `ps` still lists
    the init and `kill --all KILL` ends it (ps said `null`, and kill --all signalled nothing,
    exit 0, the container running on)."""
    root, cid = running
    init = _init_pid(root, cid)
    _move_out_and_remove_cgroup(f"{PARENT}/{cid}", init)
    assert _pids(root, cid) == [init]
    p = _ocirt(root, "kill", "--all", cid, "KILL")
    assert p.returncode == 0, p.stderr
    deadline = time.monotonic() + 30  # (a wait, not a measure: kill --all waits a moment itself)
    while json.loads(_ocirt(root, "state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline, "the init outlived kill --all KILL"
        time.sleep(0.05)
    p = _ocirt(root, "delete", cid)
    assert p.returncode == 0, p.stderr


def test_delete_force_of_a_damaged_state_reaches_an_init_outside_its_cgroup(running, tmp_path):
    """delete --force of a container whose state.json is damaged (its pid, start time and
    cgroup salvaged) and whose init is out of its cgroup: the init goes too (it ran on: the
    cgroup, found empty, was all that was killed)."""
    root, cid = running
    init = _init_pid(root, cid)
    start = int(open(f"/proc/{init}/stat").read().rsplit(")", 1)[1].split()[19])
    _move_out_and_remove_cgroup(f"{PARENT}/{cid}", init)
    state_file = os.path.join(root, cid, "state.json")
    with open(state_file) as f:
        state = json.load(f)
    state["bundle"] = 5  # damaged: pid, start time and cgroup are what is left to go by
    with open(state_file, "w") as f:
        json.dump(state, f)
    assert "damaged state.json" in _ocirt(root, "state", cid).stderr
    p = _ocirt(root, "delete", "--force", cid)
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(os.path.join(root, cid))
    try:
        with open(f"/proc/{init}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        assert fields[0] in ("Z", "X") or int(fields[19]) != start, "the init outlived delete --force"
    except FileNotFoundError:
        pass


def test_update_and_stats_of_a_removed_cgroup_name_it(running, tmp_path):
    """update and events --stats of a container whose cgroup was removed under it: the error
    says so (update blamed the kernel: "this kernel has no cpu.shares"; events --stats printed
    zeros as the container's statistics, exit 0)."""
    root, cid = running
    _move_out_and_remove_cgroup(f"{PARENT}/{cid}", _init_pid(root, cid))
    for args in (["update", "--cpu-share", "300", cid], ["events", "--stats", cid]):
        p = _ocirt(root, *args)
        assert p.returncode == 1, (args, p.stdout)
        assert _one_line(p).endswith(f'/{PARENT}/{cid} is gone"'), p.stderr


def test_delete_force_of_a_state_dir_that_is_a_symlink_removes_the_link_only(tmp_path):
    """A state dir's place taken by a symlink (to a directory of something else): delete
    --force removes the link and nothing it points at (it emptied the directory named, every
    file and subdirectory it could remove: a link to /tmp emptied /tmp); the other commands
    find no container there, in one line."""
    root = tmp_path / "root"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "sub").mkdir(parents=True)
    (elsewhere / "keep").write_text("data")
    (elsewhere / "sub" / "keep2").write_text("data")
    (root / "adv-link").symlink_to(elsewhere)
    for args in (["state", "adv-link"], ["delete", "adv-link"], ["kill", "adv-link"]):
        p = _ocirt(str(root), *args)
        assert p.returncode == 1
        assert _one_line(p).endswith('msg="container does not exist: adv-link"')
    p = _ocirt(str(root), "delete", "--force", "adv-link")
    assert p.returncode == 0, p.stderr
    assert not os.path.lexists(root / "adv-link")
    assert (elsewhere / "keep").read_text() == "data" and (elsewhere / "sub" / "keep2").exists()


@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detach"])
def test_exec_pid_file_that_is_a_device_is_refused(running, tmp_path, detach):
    """--pid-file naming a device node: refused before the process starts, the node left as it
    is (the pid file, a temporary file renamed over it, made it a regular file: `--pid-file
    /dev/full` did so to the host's /dev/full, exit 0)."""
    root, cid = running
    node = str(tmp_path / "full")
    os.mknod(node, 0o20666, os.makedev(1, 7))  # a /dev/full of the test's own
    p = _ocirt(root, "exec", *(["-d"] if detach else []), "--pid-file", node, cid, "true")
    assert p.returncode == 255
    assert _one_line(p).endswith(
        f'msg="exec failed: write the pid file {node}: it is a character device, not a regular file"'
    )
    assert os.stat(node).st_mode & 0o170000 == 0o020000
    assert _pids(root, cid) == [_init_pid(root, cid)]


@pytest.mark.parametrize("sig", ["TERM", "HUP", "QUIT", "TERM TERM"])
@pytest.mark.parametrize("command", ["create", "run-d"])
def test_a_stop_signal_during_create_undoes_it(tmp_path, busybox_rootfs, sig, command):
    """SIGTERM, SIGHUP or SIGQUIT to create (or run -d) while it works (here: from its prestart
    hook) ends it as a ^C does: 128+N, and nothing of the container is left (state dir, cgroup,
    init). Their default action killed it and left all that (a state dir "creating", its
    cgroups, the init); runc's create catches them and goes on (not asserted on runc). A second
    one does not break off the undoing."""
    cid = f"adv-{uuid.uuid4().hex[:12]}"
    group = f"/{PARENT}/{cid}"
    bundle = make_bundle(tmp_path / "bundle", busybox_rootfs, ["sleep", "300"], cgroups_path=group)
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    kills = "; ".join(f"kill -{s} $PPID" for s in sig.split())
    config["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"{kills}; sleep 5"]}]}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    root = str(tmp_path / "root")
    argv = ["create"] if command == "create" else ["run", "-d"]
    try:
        p = run_err_to_file([*OCIRT, "--root", root, *argv, "--bundle", bundle, cid], tmp_path / "c.err")
        assert p.returncode == 128 + getattr(signal, f"SIG{sig.split()[0]}"), p.stderr
        assert not os.path.exists(os.path.join(root, cid))
        assert not glob.glob(f"/sys/fs/cgroup/*{group}")
    finally:
        _ocirt(root, "delete", "--force", cid)
        remove_cgroup_parent(PARENT)
