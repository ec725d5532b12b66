"""create, run and start in a hostile environment (the caller's limits, a full --root, odd stdio,
a removed current directory): a one-line error that names what is wrong, a non-zero exit, and
nothing left behind (no state dir, no cgroup, no process), never a traceback or a hang."""

import json
import os
import resource
import socket
import subprocess
import sys
import tempfile

import pytest
from cli_helpers import OCIRT, REPO, make_bundle, remove_cgroup_dirs, run_err_to_file

PREFIX = "ocirt-test-adversity-create"
LAUNCHER = os.path.join(REPO, "bin", "ocirt")


@pytest.fixture
def lab(tmp_path, busybox_rootfs):
    """A container id, its cgroupsPath and a --root of the test's own; whatever a failed test
    left is removed after it. The cgroup is a top-level one of the test's own (worker's pid and
    test's dir), not under a parent shared with other workers: one's removal of the parent,
    empty for a moment, raced another's create between its mkdirs of the parent and of its
    own directory."""
    top = f"{PREFIX}-{os.getpid()}-{tmp_path.name}"
    root = str(tmp_path / "root")
    yield {"id": "c1", "cg": f"/{top}", "root": root, "tmp": tmp_path, "rootfs": busybox_rootfs}
    subprocess.run(
        [*OCIRT, "--root", root, "delete", "--force", "c1"],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    remove_cgroup_dirs(top)


def left_behind(lab, root=None) -> list:
    """What a failed command left: its state dir, its cgroup directories."""
    root = root or lab["root"]
    left = [f"state {e}" for e in (os.listdir(root) if os.path.isdir(root) else [])]
    rel = lab["cg"].lstrip("/")
    left += [
        f"cgroup {top}"
        for top in os.listdir("/sys/fs/cgroup")
        if os.path.exists(f"/sys/fs/cgroup/{top}/{rel}")
    ]
    return left


def one_line(p) -> str:
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


@pytest.fixture
def small_tmpfs():
    """A tmpfs of the test's own, with as many inodes as asked (mount(8): nr_inodes counts its
    root); unmounted after."""
    made = []

    def mount(inodes: int) -> str:
        path = tempfile.mkdtemp(prefix="ocirt-adv-")
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size=256k,nr_inodes={inodes}", "tmpfs", path], check=True
        )
        made.append(path)
        return path

    yield mount
    for path in made:
        subprocess.run(["umount", path], check=False)
        os.rmdir(path)


def test_full_root_names_what_could_not_be_made(lab, small_tmpfs):
    """A --root with too few inodes for the state dir, state.json and exec.fifo: each way it
    fails is one line naming the file (the exec fifo's mkfifo was the bare 'No space left on
    device'), and nothing is left there or in the cgroups."""
    bundle = make_bundle(lab["tmp"] / "b", lab["rootfs"], ["true"], cgroups_path=lab["cg"])
    errors = []
    for inodes in range(2, 6):
        root = small_tmpfs(inodes)
        for command in (["create"], ["run", "-d"]):
            p = run_err_to_file(
                [*OCIRT, "--root", root, *command, "--bundle", bundle, "c1"], lab["tmp"] / "err"
            )
            if p.returncode == 0:  # room enough: its container goes
                subprocess.run([*OCIRT, "--root", root, "delete", "--force", "c1"], cwd=REPO, check=True)
                continue
            line = one_line(p)
            assert line.endswith('no space left on device"') and f"{root}/c1" in line, line
            errors.append(line)
            assert left_behind(lab, root) == []
    assert any("exec.fifo" in line for line in errors), errors


def test_run_with_rlimit_fsize_0_is_not_killed_by_sigxfsz(lab):
    """A caller's RLIMIT_FSIZE of 0 with stderr a file: run's state.json cannot be written, nor
    its error. run must end by itself, non-zero, and leave nothing: foreground run caught
    SIGXFSZ to pass it on to the container, Python set it back to its default at exit, and the
    last flush of stderr killed run with it."""
    bundle = make_bundle(lab["tmp"] / "b", lab["rootfs"], ["true"], cgroups_path=lab["cg"])

    def fsize_0():
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))

    if not os.access(LAUNCHER, os.X_OK):
        pytest.skip("bin/ocirt is not executable in this checkout")
    with open(lab["tmp"] / "err", "w") as err:
        p = subprocess.run(  # (bin/ocirt: `python -m ocirt` ends otherwise)
            [LAUNCHER, "--root", lab["root"], "run", "--bundle", bundle, "c1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=fsize_0,
            timeout=60,
        )
    assert p.returncode > 0, p.returncode
    assert left_behind(lab) == []


def _terminal_bundle(lab, args):
    return make_bundle(lab["tmp"] / "b", lab["rootfs"], args, cgroups_path=lab["cg"], terminal=True)


def test_terminal_run_whose_output_reader_is_gone(lab):
    """run with a terminal copies the container's output to its stdout: once the reader of that
    pipe is gone (`ocirt run ... | head -1`), one line naming it, and the container is stopped
    and deleted (run said 'Broken pipe' and left it running, without its waiter)."""
    bundle = _terminal_bundle(lab, ["sh", "-c", "while true; do echo hello; done"])
    r, w = os.pipe()
    with open(lab["tmp"] / "err", "w+") as err:
        p = subprocess.Popen(
            [*OCIRT, "--root", lab["root"], "run", "--bundle", bundle, "c1"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=w,
            stderr=err,
        )
        os.close(w)
        try:
            assert os.read(r, 5)  # it runs
        finally:
            os.close(r)
        code = p.wait(timeout=60)
        err.seek(0)
        p.stderr = err.read()
    assert code != 0
    line = one_line(p)
    assert "stdout" in line and "broken pipe" in line, line
    assert left_behind(lab) == []


def test_terminal_run_with_input_the_container_never_reads(lab):
    """run with a terminal and more input on its stdin than the pty takes, for a container that
    reads none of it: its output is copied and run ends with the container (a blocking write
    to the pty stopped the copy of the output, and run waited forever, even once the container
    had exited). The timeout only stands for that hang."""
    bundle = _terminal_bundle(lab, ["sh", "-c", "echo done; exit 3"])
    data = lab["tmp"] / "input"
    data.write_bytes(b"x" * 100 + b"\n" * 1 + b"y" * (1 << 20))
    with open(data, "rb") as stdin, open(lab["tmp"] / "out", "w+") as out:
        p = subprocess.run(
            [*OCIRT, "--root", lab["root"], "run", "--bundle", bundle, "c1"],
            cwd=REPO,
            stdin=stdin,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=120,
        )
        out.seek(0)
        output = out.read()
    assert p.returncode == 3, output[-500:]
    assert "done" in output
    assert left_behind(lab) == []


@pytest.mark.parametrize("command", [["create"], ["run"], ["run", "-d"]])
@pytest.mark.parametrize("relative", ["bundle", "pid-file"])
def test_relative_path_in_a_removed_current_directory(lab, command, relative):
    """A relative --bundle or --pid-file where the current directory was removed: one line
    saying so (it was the bare 'No such file or directory'), nothing left."""
    if not os.access(LAUNCHER, os.X_OK):
        pytest.skip("bin/ocirt is not executable in this checkout")
    bundle = make_bundle(lab["tmp"] / "b", lab["rootfs"], ["true"], cgroups_path=lab["cg"])
    gone = lab["tmp"] / "gone"
    gone.mkdir()

    def into_removed_dir():
        os.chdir(gone)
        os.rmdir(gone)

    args = ["--bundle", "."] if relative == "bundle" else ["--bundle", bundle, "--pid-file", "pid"]
    p = run_err_to_file(
        [sys.executable, "-I", "-S", LAUNCHER, "--root", lab["root"], *command, *args, "c1"],
        lab["tmp"] / "err",
        cwd=None,
        preexec_fn=into_removed_dir,
    )
    assert p.returncode == 1
    line = one_line(p)
    assert "current directory" in line and ("bundle ." in line or "pid file pid" in line), line
    assert left_behind(lab) == []


def test_tmpcopyup_onto_a_tmpfs_too_small(lab):
    """tmpcopyup of /etc onto a tmpfs with too few inodes for what /etc holds: one line naming
    the copy (it read 'mount tmpfs to /etc (tmpfs): no space left on device', of a mount that
    went well), nothing left."""
    bundle = make_bundle(lab["tmp"] / "b", lab["rootfs"], ["true"], cgroups_path=lab["cg"])
    config = json.loads(open(f"{bundle}/config.json").read())
    config["mounts"].append(
        {"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "nr_inodes=2"]}
    )
    with open(f"{bundle}/config.json", "w") as f:
        json.dump(config, f)
    for command in (["create"], ["run"]):
        p = run_err_to_file(
            [*OCIRT, "--root", lab["root"], *command, "--bundle", bundle, "c1"], lab["tmp"] / "err"
        )
        assert p.returncode == 1
        line = one_line(p)
        assert "tmpcopyup" in line and "/etc" in line and line.endswith('no space left on device"'), line
        assert left_behind(lab) == []


def test_undo_gives_its_reserve_back_before_its_steps():
    """An undo runs where create ran out of memory (a caller's RLIMIT_DATA or RLIMIT_AS it just
    about fits in, a MemoryError in the init that the parent hears): the memory it held from
    the start is given back before its first step, which then has room to remove the state dir
    (it failed, and `run` left the dir behind with 'ocirt: cannot start: ')."""
    from ocirt.create import UNDO_RESERVE, Undo

    undo = Undo()
    assert len(undo.reserve) == UNDO_RESERVE
    seen = []
    undo.push(lambda: seen.append(undo.reserve))
    undo.run()
    assert seen == [None]


def test_create_out_of_memory_before_its_undo_leaves_no_state_dir(lab, monkeypatch):
    """The undo (and its reserve) is made before the state dir: a MemoryError there left the dir
    made, with nothing to remove it."""
    from ocirt import create
    from ocirt.checks import CreateOptions
    from ocirt.kernel.linux import LinuxKernel

    bundle = make_bundle(lab["tmp"] / "b", lab["rootfs"], ["true"], cgroups_path=lab["cg"])

    def no_memory():
        raise MemoryError

    monkeypatch.setattr(create, "Undo", no_memory)
    with pytest.raises(MemoryError):
        create.create(CreateOptions(id="c1", bundle=bundle, root=lab["root"]), LinuxKernel())
    assert left_behind(lab) == []


def _console_listener(path: str) -> tuple:
    """A console socket that accepts nothing, its backlog filled: (listener, connections)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(0)
    queued = []
    while True:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.setblocking(False)
        try:
            client.connect(path)
        except BlockingIOError:
            client.close()
            return server, queued
        queued.append(client)


def test_console_socket_that_accepts_no_more(lab):
    """--console-socket whose listener accepts no connection and has its backlog full: one
    line (Go's EAGAIN, as runc's dial gives), nothing left (the connect waited for good)."""
    bundle = make_bundle(lab["tmp"] / "b", lab["rootfs"], ["true"], cgroups_path=lab["cg"], terminal=True)
    server, queued = _console_listener(str(lab["tmp"] / "console.sock"))
    try:
        for command in (["create"], ["run", "-d"]):
            p = run_err_to_file(
                [*OCIRT, "--root", lab["root"], *command, "--console-socket", server.getsockname()]
                + ["--bundle", bundle, "c1"],
                lab["tmp"] / "err",
            )
            assert p.returncode == 1
            line = one_line(p)
            assert "connect: resource temporarily unavailable" in line, line
            assert left_behind(lab) == []
    finally:
        for s in (server, *queued):
            s.close()


def test_console_socket_closed_by_its_listener(lab):
    """A console socket whose listener closes the connection: the pty master cannot be sent,
    and the error says so (it was 'system call failed: broken pipe'); nothing left. (The init
    sends it after the runtime hooks: a createRuntime hook holds it until the connection was
    closed here.)"""
    marker = lab["tmp"] / "closed"
    bundle = make_bundle(lab["tmp"] / "b", lab["rootfs"], ["true"], cgroups_path=lab["cg"], terminal=True)
    config = json.loads(open(f"{bundle}/config.json").read())
    wait = f"while [ ! -e {marker} ]; do sleep 0.01; done"
    config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", wait]}]}
    with open(f"{bundle}/config.json", "w") as f:
        json.dump(config, f)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(lab["tmp"] / "console.sock"))
    server.listen(4)
    server.settimeout(60)
    try:
        for command in (["create"], ["run", "-d"]):
            with open(lab["tmp"] / "err", "w+") as err:
                p = subprocess.Popen(
                    [*OCIRT, "--root", lab["root"], *command, "--console-socket", server.getsockname()]
                    + ["--bundle", bundle, "c1"],
                    cwd=REPO,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
                try:
                    conn, _ = server.accept()
                    conn.close()
                finally:
                    marker.touch()
                p.wait(timeout=60)
                err.seek(0)
                p.stderr = err.read()
            marker.unlink()
            assert p.returncode == 1
            line = one_line(p)
            assert "console socket" in line and "broken pipe" in line, line
            assert left_behind(lab) == []
    finally:
        server.close()


def test_prestart_hook_under_rlimit_nofile_is_monotonic(lab):
    """A prestart hook (4 pipes) under a caller's RLIMIT_NOFILE: once a limit is enough for run,
    every higher one is too, and each failure below is one line that leaves nothing. (A limit a
    little above create's need failed where a lower one went through: the parent held the
    children's cgroup `tasks` fds, one per v1 hierarchy, while the hooks ran, where a lower
    limit had not let it open them at all.)"""
    bundle = make_bundle(lab["tmp"] / "b", lab["rootfs"], ["true"], cgroups_path=lab["cg"])
    config = json.loads(open(f"{bundle}/config.json").read())
    config["hooks"] = {"prestart": [{"path": "/bin/true"}]}
    with open(f"{bundle}/config.json", "w") as f:
        json.dump(config, f)
    went = []
    for n in range(8, 41):

        def nofile(n=n):
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

        p = run_err_to_file(
            [*OCIRT, "--root", lab["root"], "run", "--bundle", bundle, "c1"],
            lab["tmp"] / "err",
            preexec_fn=nofile,
        )
        if p.returncode == 0:
            went.append(n)
        else:
            assert "too many open files" in one_line(p).lower(), p.stderr
            assert not went, (n, went, p.stderr)
        assert left_behind(lab) == []
    assert went and went[-1] == 40


@pytest.mark.parametrize("detach", [False, True])
def test_failed_run_reaps_its_init(lab, detach):
    """run whose start fails (a startContainer hook) stops the init, its own child: it is reaped
    before run ends, not left a zombie to the host's reaper, which counted against a pids limit
    above the container until that reaped it (here, PID 1 never does: every such run took one
    more pid of /ocirt-advB for good)."""
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    above = f"/sys/fs/cgroup{lab['cg']}" if v2 else f"/sys/fs/cgroup/pids{lab['cg']}"
    os.makedirs(above)  # (made here, not by ocirt: it stays, with its count, after the run)
    if not os.path.exists(f"{above}/pids.current"):
        pytest.skip("no pids controller for a cgroup of ours here")
    bundle = make_bundle(lab["tmp"] / "b", lab["rootfs"], ["true"], cgroups_path=f"{lab['cg']}/c")
    config = json.loads(open(f"{bundle}/config.json").read())
    config["hooks"] = {"startContainer": [{"path": "/bin/false"}]}
    with open(f"{bundle}/config.json", "w") as f:
        json.dump(config, f)
    command = ["run", "-d"] if detach else ["run"]
    p = run_err_to_file(
        [*OCIRT, "--root", lab["root"], *command, "--bundle", bundle, "c1"], lab["tmp"] / "err"
    )
    assert p.returncode == 1 and "startContainer" in p.stderr, p.stderr
    assert os.listdir(lab["root"]) == []
    with open(f"{above}/pids.current") as f:
        assert f.read().strip() == "0"


@pytest.mark.parametrize("command", [["create"], ["run", "-d"]])
def test_pid_file_that_is_a_device_is_refused_before_anything(lab, command):
    """--pid-file naming a device (a fifo, a socket) is refused before anything is made: the
    pid file is a temporary file renamed over it, and `--pid-file /dev/full` made the host's
    /dev/full a regular file (runc's does too). A node of our own stands for it here."""
    bundle = make_bundle(lab["tmp"] / "b", lab["rootfs"], ["sleep", "60"], cgroups_path=lab["cg"])
    node = lab["tmp"] / "null"
    os.mknod(node, 0o666 | 0o020000, os.makedev(1, 3))
    p = run_err_to_file(
        [*OCIRT, "--root", lab["root"], *command, "--bundle", bundle, "--pid-file", str(node), "c1"],
        lab["tmp"] / "err",
    )
    assert p.returncode == 1
    assert f"write the pid file {node}: it is a character device, not a regular file" in one_line(p)
    assert os.stat(node).st_mode & 0o170000 == 0o020000
    assert left_behind(lab) == []


def test_start_of_a_stopped_init_says_so(lab):
    """A created container whose init was stopped (SIGSTOP) cannot take the start: one line
    saying so, the container still created, and a start after SIGCONT runs it (start waited
    for ever, as runc's does)."""
    bundle = make_bundle(lab["tmp"] / "b", lab["rootfs"], ["sleep", "60"], cgroups_path=lab["cg"])
    base = [*OCIRT, "--root", lab["root"]]
    assert run_err_to_file([*base, "create", "--bundle", bundle, "c1"], lab["tmp"] / "err").returncode == 0
    state = json.loads(
        subprocess.run([*base, "state", "c1"], cwd=REPO, capture_output=True, text=True).stdout
    )
    os.kill(state["pid"], 19)  # SIGSTOP
    try:
        p = run_err_to_file([*base, "start", "c1"], lab["tmp"] / "err", timeout=60)
        assert p.returncode == 1
        assert "is stopped (SIGSTOP?)" in one_line(p)
    finally:
        os.kill(state["pid"], 18)  # SIGCONT
    assert run_err_to_file([*base, "start", "c1"], lab["tmp"] / "err").returncode == 0
    state = json.loads(
        subprocess.run([*base, "state", "c1"], cwd=REPO, capture_output=True, text=True).stdout
    )
    assert state["status"] == "running"
