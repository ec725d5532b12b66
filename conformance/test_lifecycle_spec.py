"""The lifecycle of runtime.md, steps 1-13, in its edge cases: the order of startContainer, the
program and poststart; what a failing (or timed-out) hook of each kind does; the state each hook
reads on stdin and the working directory it runs in; `process` absent at create; namespaces not
listed in the config; deprecated fields."""

import json
import os
import shutil
import subprocess
import time

import pytest
from runtime import assert_failed_cleanly, one_line, sh, wait_for

SLEEP = ["sleep", "1000"]
HOST_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def hook(script, timeout=None):
    """A hook running a shell script (a host path: /bin/sh resolves in either namespace)."""
    h = {"path": "/bin/sh", "args": ["sh", "-c", script], "env": [HOST_PATH]}
    if timeout is not None:
        h["timeout"] = timeout
    return h


def failing(name):
    return hook(f"echo {name} failing >&2; exit 3")


def out_mount(host_dir):
    """A host directory, read-write at /tmp/out in the container (for hooks that run there)."""
    return {"destination": "/tmp/out", "type": "bind", "source": str(host_dir), "options": ["rbind", "rw"]}


def with_hooks(hooks, *mounts):
    def mutate(cfg):
        cfg["hooks"] = hooks
        cfg["mounts"].extend(mounts)

    return mutate


def lines(path):
    return path.read_text().split() if path.exists() else []


# ---- 1: startContainer, the program, then poststart, all before `start` returns ----------------


@pytest.mark.runc_deviates("runc 1.1.5 runs poststart while the startContainer hooks still run")
def test_poststart_runs_after_the_program_was_executed(rt, make_bundle, out):
    """Steps 7, 8, 9: a 1 s startContainer hook, then the program (the init has executed it:
    its command line is the program's when poststart reads it), then poststart; `start` returns
    only after all three."""
    hooks = {
        "startContainer": [hook("sleep 1; echo startContainer >> /tmp/out/order")],
        "poststart": [
            hook(
                f"echo poststart >> {out}/order; "
                "pid=$(sed 's/.*\"pid\": *\\([0-9]*\\).*/\\1/'); "
                f"tr '\\0' ' ' < /proc/$pid/cmdline > {out}/cmdline"
            )
        ],
    }
    b = make_bundle(SLEEP, mutate=with_hooks(hooks, out_mount(out)))
    assert rt.create(b.id, b).returncode == 0
    t0 = time.monotonic()
    p = rt.start(b.id)
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    assert took >= 1.0, f"start returned after {took:.2f}s, before its startContainer hook ended"
    assert lines(out / "order") == ["startContainer", "poststart"]
    assert (out / "cmdline").read_text().split() == SLEEP, "poststart ran before the exec"
    assert rt.status(b.id) == "running"


# ---- 2: hook failures ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create_and_runs_poststop(rt, make_bundle, out, name):
    """Steps 3-5: an error naming the hook, the container stopped and destroyed (step 12), and
    the poststop hooks run (step 13)."""
    hooks = {name: [failing(name)], "poststop": [hook(f"echo poststop >> {out}/poststop")]}
    b = make_bundle(SLEEP, mutate=with_hooks(hooks))
    p = rt.create(b.id, b)
    assert p.returncode != 0
    assert name in p.stderr or "hook" in p.stderr, p.stderr
    assert rt.status(b.id) is None, "the failed container is still there"
    assert lines(out / "poststop") == ["poststop"]


@pytest.mark.parametrize("name", ["prestart", "createRuntime", "createContainer"])
def test_a_hook_that_is_not_there_fails_create_in_one_line(rt, make_bundle, name):
    """A hook whose path does not exist: create fails with one line saying why, and leaves
    nothing behind."""
    b = make_bundle(SLEEP, mutate=with_hooks({name: [{"path": "/no/such/hook"}]}))
    p = rt.create(b.id, b)
    assert_failed_cleanly(rt, b, p)
    assert "no such file or directory" in p.stderr.lower(), p.stderr


@pytest.mark.runc_deviates("runc 1.1.5's start exits 0 when a startContainer hook fails")
def test_failing_start_container_hook_fails_start(rt, make_bundle, out):
    """Step 7: `start` fails naming the hook, the program never runs, the container is stopped;
    delete (steps 12, 13) runs the poststop hooks."""
    hooks = {
        "startContainer": [failing("startContainer")],
        "poststop": [hook(f"echo poststop >> {out}/poststop")],
    }
    b = make_bundle(sh("echo ran > /tmp/out/ran; exec sleep 1000"), mutate=with_hooks(hooks, out_mount(out)))
    assert rt.create(b.id, b).returncode == 0
    p = rt.start(b.id)
    assert p.returncode != 0
    assert "startContainer" in p.stderr, p.stderr
    rt.wait_status(b.id, "stopped")
    assert not (out / "ran").exists(), "the program ran after its startContainer hook failed"
    p = rt.delete(b.id)
    assert p.returncode == 0, p.stderr
    assert lines(out / "poststop") == ["poststop"]


@pytest.mark.runc_deviates("runc 1.1.5 leaves the container running when a poststart hook fails")
def test_failing_poststart_hook_fails_start_and_stops_the_container(rt, make_bundle, out):
    hooks = {"poststart": [failing("poststart")], "poststop": [hook(f"echo poststop >> {out}/poststop")]}
    b = make_bundle(SLEEP, mutate=with_hooks(hooks))
    assert rt.create(b.id, b).returncode == 0
    p = rt.start(b.id)
    assert p.returncode != 0
    assert "poststart" in p.stderr, p.stderr
    rt.wait_status(b.id, "stopped")
    p = rt.delete(b.id)
    assert p.returncode == 0, p.stderr
    assert lines(out / "poststop") == ["poststop"]


@pytest.mark.runc_deviates("runc 1.1.5 stops at the first failing poststop hook and fails delete")
def test_failing_poststop_hook_is_a_warning(rt, make_bundle, out):
    """Step 13: a failing poststop hook is logged as a warning, the others still run, and the
    delete succeeds."""
    hooks = {
        "poststop": [
            hook(f"echo one >> {out}/poststop"),
            failing("poststop"),
            hook(f"echo three >> {out}/poststop"),
        ]
    }
    b = make_bundle(SLEEP, mutate=with_hooks(hooks))
    assert rt.create(b.id, b).returncode == 0
    p = rt.delete(b.id, force=True)
    assert p.returncode == 0, p.stderr
    assert lines(out / "poststop") == ["one", "three"]
    assert "warn" in p.stderr.lower() and "poststop" in p.stderr, p.stderr
    assert rt.status(b.id) is None


def test_hook_timeout_kills_it_and_fails(rt, make_bundle, out):
    """A hook's timeout: it is killed when it runs out, and that is a failure of the hook."""
    hooks = {"createRuntime": [hook(f"echo started > {out}/started; exec sleep 20", timeout=1)]}
    b = make_bundle(SLEEP, mutate=with_hooks(hooks))
    t0 = time.monotonic()
    p = rt.create(b.id, b)
    assert p.returncode != 0
    assert time.monotonic() - t0 < 10, "the hook was not killed at its timeout"
    assert rt.status(b.id) is None
    assert lines(out / "started") == ["started"]


@pytest.mark.runc_deviates("runc 1.1.5's start exits 0 when a startContainer hook fails")
def test_start_container_hook_timeout_fails_start(rt, make_bundle):
    """The same in the container: a startContainer hook that outlives its timeout is killed, and
    `start` fails naming it; the program never runs."""
    hooks = {"startContainer": [hook("exec sleep 30", timeout=1)]}
    b = make_bundle(SLEEP, mutate=with_hooks(hooks))
    assert rt.create(b.id, b).returncode == 0
    t0 = time.monotonic()
    p = rt.start(b.id)
    assert p.returncode != 0
    assert time.monotonic() - t0 < 10, "the hook was not killed at its timeout"
    assert "startContainer" in p.stderr and "timed out" in p.stderr, p.stderr
    rt.wait_status(b.id, "stopped")
    assert rt.delete(b.id).returncode == 0


# The state on each hook's stdin: its status at that point of the lifecycle (runtime.md "State":
# creating until create ends, created until the program is executed, running after step 8,
# stopped at step 13), and the pid as the hook's namespace sees it.
STATE_HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def _state_hooks(out):
    hooks = {}
    for name in STATE_HOOKS:
        where = "/tmp/out" if name == "startContainer" else str(out)
        hooks[name] = [hook(f"cat > {where}/{name}.json")]
    return hooks


@pytest.mark.parametrize(
    "name,status",
    [
        ("prestart", "creating"),
        ("createRuntime", "creating"),
        ("createContainer", "creating"),
        ("startContainer", "created"),
        pytest.param(
            "poststart",
            "running",
            marks=pytest.mark.runc_deviates("runc 1.1.5 gives poststart the status created"),
        ),
        ("poststop", "stopped"),
    ],
)
def test_hook_state_status(rt, make_bundle, out, name, status):
    b = make_bundle(SLEEP, mutate=with_hooks(_state_hooks(out), out_mount(out)))
    assert rt.create(b.id, b).returncode == 0
    pid = rt.state_json(b.id)["pid"]
    assert rt.start(b.id).returncode == 0
    assert rt.delete(b.id, force=True).returncode == 0
    state = json.loads((out / f"{name}.json").read_text())
    assert state["id"] == b.id and state["status"] == status
    assert os.path.realpath(state["bundle"]) == os.path.realpath(b.path)
    if name in ("createContainer", "startContainer"):
        assert state["pid"] == 1  # in the container's pid namespace
    elif name != "poststop":
        assert state["pid"] == pid


# ---- issue: hooks' working directories, as runc 1.1.5 has them --------------------------------


def test_hook_working_directories(rt, make_bundle, out, tmp_path):
    """prestart, createRuntime and poststart run in the bundle, createContainer in the rootfs
    (before pivot_root), startContainer in process.cwd, poststop in delete's caller's."""
    hooks = {}
    for name in STATE_HOOKS:
        where = "/tmp/out" if name == "startContainer" else str(out)
        hooks[name] = [hook(f"pwd -P > {where}/{name}.cwd")]
    b = make_bundle(SLEEP, mutate=with_hooks(hooks, out_mount(out)), process={"cwd": "/bin"})
    caller = tmp_path / "caller"
    caller.mkdir()
    assert rt.create(b.id, b, prelude=f"cd {caller}").returncode == 0
    assert rt.start(b.id, prelude="cd /").returncode == 0
    assert rt.delete(b.id, force=True, prelude=f"cd {caller}").returncode == 0
    cwd = {name: (out / f"{name}.cwd").read_text().strip() for name in STATE_HOOKS}
    bundle = os.path.realpath(b.path)
    assert cwd["prestart"] == bundle and cwd["createRuntime"] == bundle
    assert cwd["createContainer"] == os.path.realpath(b.rootfs)
    assert cwd["startContainer"] == "/bin"
    assert cwd["poststart"] == bundle
    assert cwd["poststop"] == os.path.realpath(caller)


def test_create_container_hook_writes_relative_to_the_rootfs(rt, make_bundle):
    """A createContainer hook that writes ./etc/... writes into the container's rootfs."""
    hooks = {"createContainer": [hook("echo from-hook > ./etc/hooked")]}
    b = make_bundle(sh("cat /etc/hooked"), rootfs_copy=True, mutate=with_hooks(hooks))
    p = rt.run(b.id, b)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "from-hook"


# ---- 5: process is required only at start ------------------------------------------------------


@pytest.mark.runc_deviates("runc 1.1.5 refuses a config without process at create")
def test_create_without_process_then_start_fails(rt, make_bundle):
    b = make_bundle(mutate=lambda cfg: cfg.pop("process"))
    p = rt.create(b.id, b)
    assert p.returncode == 0, p.stderr
    assert rt.status(b.id) == "created"
    p = rt.start(b.id)
    assert p.returncode != 0
    assert "process" in p.stderr, p.stderr
    rt.wait_status(b.id, "stopped")
    p = rt.delete(b.id)
    assert p.returncode == 0, p.stderr
    assert rt.status(b.id) is None


# ---- 6: deprecated fields ---------------------------------------------------------------------


def test_deprecated_kernel_memory_warns(rt, make_bundle):
    b = make_bundle(SLEEP, linux={"resources": {"memory": {"kernel": 64 << 20}}})
    p = rt.create(b.id, b)
    assert p.returncode == 0, p.stderr
    assert "warn" in p.stderr.lower() and "kernel" in p.stderr.lower(), p.stderr


# ---- 3: namespaces not listed are inherited, the mount namespace too ----------------------------


def _mounts_under(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return [
            line.split()[4] for line in f if line.split()[4] == path or line.split()[4].startswith(path + "/")
        ]


def _unmount_under(path):
    """A runtime that mounted on the host (runc does without a mount namespace): undo it."""
    for mp in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


def _without_mount_ns(mounts=()):
    def mutate(cfg):
        linux = cfg["linux"]
        linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "mount"]
        linux["maskedPaths"], linux["readonlyPaths"] = [], []
        cfg["mounts"] = list(mounts)
        cfg["root"]["readonly"] = False

    return mutate


@pytest.mark.runc_deviates("runc 1.1.5 needs /proc mounted, and mounts in the host's mount namespace")
def test_mount_namespace_not_listed_is_inherited(rt, make_bundle):
    b = make_bundle(
        sh("cat /etc/hostname 2>/dev/null; ls /bin/sh && exec sleep 1000"),
        rootfs_copy=True,
        tmp=False,
        mutate=_without_mount_ns(),
    )
    before = _mounts_under(b.rootfs)
    try:
        p = rt.create(b.id, b)
        assert p.returncode == 0, p.stderr
        pid = rt.state_json(b.id)["pid"]
        assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
        assert rt.start(b.id).returncode == 0
        wait_for(
            lambda: os.readlink(f"/proc/{pid}/root") == os.path.realpath(b.rootfs),
            what="the program to run with the rootfs as its root",
        )
        assert _mounts_under(b.rootfs) == before, "the host's mounts were changed"
    finally:
        rt.delete(b.id, force=True)
        _unmount_under(b.rootfs)


@pytest.mark.runc_deviates("runc 1.1.5 makes the config's mounts in the host's mount namespace")
def test_mounts_without_a_mount_namespace_are_refused(rt, make_bundle, rootfs):
    b = make_bundle(
        SLEEP,
        tmp=False,
        rootfs_copy=True,
        mutate=_without_mount_ns([{"destination": "/proc", "type": "proc", "source": "proc"}]),
    )
    try:
        p = rt.create(b.id, b)
        assert p.returncode != 0
        assert "/mounts" in p.stderr and "mount namespace" in p.stderr, p.stderr
        assert _mounts_under(b.rootfs) == []
    finally:
        rt.delete(b.id, force=True)
        _unmount_under(b.rootfs)


@pytest.mark.runc_deviates(
    "runc 1.1.5 leaves exec.fifo behind when its start is killed after the init's go, and then says "
    "created while the program runs (runtime.md: running once the program was executed)"
)
def test_a_start_killed_while_a_start_container_hook_runs_leaves_the_program_to_run(rt, make_bundle, out):
    """Once the init has had its go (the fifo's "0"), the container is the init's: `start`
    killed while a startContainer hook runs, the program is executed all the same."""
    hooks = {"startContainer": [hook("echo hook >> /tmp/out/order; sleep 1")]}
    b = make_bundle(SLEEP, mutate=with_hooks(hooks, out_mount(out)))
    assert rt.create(b.id, b).returncode == 0
    pid = rt.state_json(b.id)["pid"]
    start = rt.popen("start", b.id)
    try:
        wait_for(lambda: lines(out / "order") == ["hook"], what="the startContainer hook to run")
    finally:
        start.kill()
        start.wait()

    def executed():
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read() == b"sleep\x001000\x00"

    wait_for(executed, timeout=20, what="the program to be executed")
    assert rt.status(b.id) == "running"


def test_a_program_gone_by_start_stops_the_container_with_one_line(rt, make_bundle, rootfs, tmp_path):
    """The program is there at create (both runtimes look it up then) and gone at start: start
    succeeds (the execve is the program's own step, after start's part), the container stops,
    and the init's stderr (create's) has one line naming the program and the error."""
    opt = tmp_path / "opt"
    opt.mkdir()
    shutil.copy(os.path.join(rootfs, "bin", "busybox"), opt / "prog")
    b = make_bundle(
        ["/home/prog"],
        mutate=lambda cfg: cfg["mounts"].append(
            {"destination": "/home", "type": "bind", "source": str(opt), "options": ["rbind"]}
        ),
    )
    err = tmp_path / "init-stderr"
    p = rt.create(b.id, b, prelude=f"exec 2>{err}")
    assert p.returncode == 0, err.read_text()
    (opt / "prog").unlink()
    p = rt.start(b.id)
    assert p.returncode == 0, p.stderr
    wait_for(lambda: rt.status(b.id) == "stopped", what="the container stopped")
    lines = err.read_text().splitlines()
    assert len(lines) == 1 and "/home/prog: no such file or directory" in lines[0], lines


def _refused_program(make_bundle, tmp_path):
    """A bundle whose program is found at create (a file with an execute bit) but that the
    kernel refuses to execute (no ELF, no #! line)."""
    opt = tmp_path / "opt"
    opt.mkdir()
    (opt / "prog").write_text("no program\n")
    (opt / "prog").chmod(0o755)
    return make_bundle(
        ["/home/prog"],
        mutate=lambda cfg: cfg["mounts"].append(
            {"destination": "/home", "type": "bind", "source": str(opt), "options": ["rbind"]}
        ),
    )


def test_run_detached_of_a_program_the_kernel_refuses_succeeds_and_the_container_stops(
    rt, make_bundle, tmp_path
):
    """run -d returns as start does, once the init executes the program: the execve that then
    fails is the program's own end, with the init's one line on run's stderr (runc: `exec
    /home/prog: exec format error`), the container stopped and there to delete."""
    b = _refused_program(make_bundle, tmp_path)
    err = tmp_path / "run-stderr"
    p = rt.run(b.id, b, extra=["-d"], prelude=f"exec 2>{err}")
    assert p.returncode == 0, err.read_text()
    wait_for(lambda: rt.status(b.id) == "stopped", what="the container stopped")
    lines = err.read_text().splitlines()
    assert len(lines) == 1 and "/home/prog: exec format error" in lines[0], lines
    p = rt.delete(b.id)
    assert p.returncode == 0, p.stderr


def test_run_of_a_program_the_kernel_refuses_fails(rt, make_bundle, tmp_path):
    """A foreground run waits for the container: the failed execve ends it with a non-zero
    status, one line on its stderr says why (the init's: runc's `exec /home/prog: exec format
    error`), and nothing is left."""
    b = _refused_program(make_bundle, tmp_path)
    p = rt.run(b.id, b)
    assert p.returncode != 0
    assert "/home/prog: exec format error" in one_line(p.stderr), p.stderr
    assert rt.status(b.id) is None  # deleted, as after any run
