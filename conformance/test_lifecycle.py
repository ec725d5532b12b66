"""Lifecycle operations of runtime.md: create, start, state, kill, delete (+ run, list)."""

import json
import os
import shutil
import threading
import time

import pytest
from runtime import (
    cgroup_dirs,
    one_line,
    output,
    pid_alive,
    remove_cgroup_tree,
    sh,
    wait_for,
)

SLEEP = ["sleep", "1000"]

# The error messages runc prints; engines (containerd's go-runc, podman) match on them.
MSG_NOT_EXIST = "container does not exist"
MSG_EXISTS = "container with given ID already exists"
MSG_START_RUNNING = "cannot start an already running container"
MSG_DELETE_RUNNING = "is not stopped"  # "cannot delete container ID that is not stopped: running"
MSG_NOT_RUNNING = "container not running"


def out_mount(host_dir):
    """A host dir bind-mounted read-write at /tmp/out in the container (on the /tmp tmpfs)."""
    return {"destination": "/tmp/out", "type": "bind", "source": str(host_dir), "options": ["rbind", "rw"]}


def with_mounts(*mounts):
    def mutate(cfg):
        cfg["mounts"].extend(mounts)

    return mutate


@pytest.fixture
def created(rt, make_bundle, tmp_path):
    """A created container running `sleep 1000` once started; returns its bundle."""
    b = make_bundle(SLEEP)
    p = rt.create(b.id, b, pid_file=tmp_path / "pid")
    assert p.returncode == 0, p.stderr
    return b


@pytest.fixture
def running(rt, created):
    p = rt.start(created.id)
    assert p.returncode == 0, p.stderr
    return created


@pytest.fixture
def stopped(rt, running):
    assert rt.kill(running.id, "KILL").returncode == 0
    rt.wait_status(running.id, "stopped")
    return running


# ---- create / state / start / kill / delete ----------------------------------------------------


def test_create_state_created(rt, make_bundle, tmp_path):
    b = make_bundle(SLEEP)
    pid_file = tmp_path / "pid"
    p = rt.create(b.id, b, pid_file=pid_file)
    assert p.returncode == 0, p.stderr
    st = rt.state_json(b.id)
    assert st["id"] == b.id
    assert st["status"] == "created"
    assert st["ociVersion"]
    assert isinstance(st["pid"], int) and st["pid"] > 0
    assert pid_alive(st["pid"])
    assert os.path.realpath(st["bundle"]) == os.path.realpath(b.path)
    assert int(pid_file.read_text().strip()) == st["pid"]


def test_create_does_not_run_process_until_start(rt, make_bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    b = make_bundle(sh("echo ran > /tmp/out/marker; exec sleep 1000"), mutate=with_mounts(out_mount(out)))
    assert rt.create(b.id, b).returncode == 0
    time.sleep(0.3)
    assert not (out / "marker").exists(), "process.args ran before start"
    assert rt.status(b.id) == "created"
    p = rt.start(b.id)
    assert p.returncode == 0, p.stderr
    # the shell creates the file before it writes to it: wait for the line, not the file
    marker = out / "marker"
    wait_for(lambda: marker.exists() and marker.read_text() == "ran\n", what="the process to run after start")
    assert rt.status(b.id) == "running"


def test_full_lifecycle(rt, make_bundle, tmp_path):
    b = make_bundle(SLEEP)
    assert rt.create(b.id, b).returncode == 0
    pid = rt.state_json(b.id)["pid"]
    assert rt.start(b.id).returncode == 0
    st = rt.state_json(b.id)
    assert st["status"] == "running" and st["pid"] == pid
    assert rt.kill(b.id, "KILL").returncode == 0
    rt.wait_status(b.id, "stopped")
    wait_for(lambda: not pid_alive(pid), what="init to exit")
    p = rt.delete(b.id)
    assert p.returncode == 0, p.stderr
    p = rt.state(b.id)
    assert p.returncode != 0
    assert MSG_NOT_EXIST in p.stderr
    assert not [n for n in os.listdir(rt.root) if n.startswith(b.id)], "state left in --root after delete"
    assert cgroup_dirs(b.cgroups_path) == [], "cgroup left after delete"


def test_cgroup_created_and_removed(rt, created):
    pid = rt.state_json(created.id)["pid"]
    dirs = cgroup_dirs(created.cgroups_path)
    assert dirs, f"no cgroup directory {created.cgroups_path} after create"
    with open(f"/proc/{pid}/cgroup") as f:
        assert created.cgroups_path in f.read()
    assert rt.delete(created.id, force=True).returncode == 0
    assert cgroup_dirs(created.cgroups_path) == []


def test_state_unknown_id_fails(rt, new_id):
    p = rt.state(new_id())
    assert p.returncode != 0
    assert p.stdout.strip() == ""
    assert MSG_NOT_EXIST in one_line(p.stderr)


def test_create_existing_id_fails(rt, created, make_bundle):
    before = rt.state_json(created.id)
    other = make_bundle(SLEEP)
    p = rt.create(created.id, other)
    assert p.returncode != 0
    assert MSG_EXISTS in one_line(p.stderr)
    after = rt.state_json(created.id)
    assert after == before


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", ""])
def test_create_invalid_id_fails(rt, make_bundle, bad_id, tmp_path):
    b = make_bundle(SLEEP)
    before = sorted(os.listdir(tmp_path))
    p = rt.create(bad_id, b)
    assert p.returncode != 0
    one_line(p.stderr)
    assert os.listdir(rt.root) == []
    assert sorted(os.listdir(tmp_path)) == before
    assert not os.path.exists(os.path.join(os.path.dirname(rt.root), "escape"))


def test_start_twice_fails(rt, running):
    pid = rt.state_json(running.id)["pid"]
    p = rt.start(running.id)
    assert p.returncode != 0
    assert MSG_START_RUNNING in one_line(p.stderr)
    st = rt.state_json(running.id)
    assert st["status"] == "running" and st["pid"] == pid


def test_start_stopped_fails(rt, stopped):
    p = rt.start(stopped.id)
    assert p.returncode != 0
    one_line(p.stderr)
    assert rt.status(stopped.id) == "stopped"


def test_delete_running_without_force_fails(rt, running):
    pid = rt.state_json(running.id)["pid"]
    p = rt.delete(running.id)
    assert p.returncode != 0
    assert MSG_DELETE_RUNNING in one_line(p.stderr)
    st = rt.state_json(running.id)
    assert st["status"] == "running" and st["pid"] == pid
    assert pid_alive(pid)


@pytest.mark.runc_deviates(
    "runc 1.1.5 `delete` (no --force) of a created container kills and deletes it; "
    "runtime.md: deleting a container that is not stopped MUST generate an error"
)
def test_delete_created_without_force_fails(rt, created):
    pid = rt.state_json(created.id)["pid"]
    p = rt.delete(created.id)
    assert p.returncode != 0
    assert rt.status(created.id) == "created"
    assert pid_alive(pid)


def test_delete_force_running(rt, running):
    pid = rt.state_json(running.id)["pid"]
    p = rt.delete(running.id, force=True)
    assert p.returncode == 0, p.stderr
    assert rt.state(running.id).returncode != 0
    wait_for(lambda: not pid_alive(pid), what="init to be killed")
    assert cgroup_dirs(running.cgroups_path) == []


def test_delete_force_created(rt, created):
    pid = rt.state_json(created.id)["pid"]
    assert rt.delete(created.id, force=True).returncode == 0
    assert rt.state(created.id).returncode != 0
    wait_for(lambda: not pid_alive(pid), what="init to be killed")


def test_delete_force_missing_id_succeeds(rt, new_id):
    p = rt.delete(new_id(), force=True)
    assert p.returncode == 0, p.stderr


def test_delete_missing_id_fails(rt, new_id):
    p = rt.delete(new_id())
    assert p.returncode != 0
    assert MSG_NOT_EXIST in one_line(p.stderr)


def test_kill_stopped_fails(rt, stopped):
    p = rt.kill(stopped.id, "KILL")
    assert p.returncode != 0
    assert MSG_NOT_RUNNING in one_line(p.stderr)
    assert rt.status(stopped.id) == "stopped"


def test_kill_missing_id_fails(rt, new_id):
    p = rt.kill(new_id(), "KILL")
    assert p.returncode != 0
    assert MSG_NOT_EXIST in one_line(p.stderr)


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9"])
def test_kill_signal_spellings(rt, running, sig):
    p = rt.kill(running.id, sig)
    assert p.returncode == 0, p.stderr
    rt.wait_status(running.id, "stopped")


@pytest.mark.parametrize("all_", [False, True], ids=["init", "all"])
def test_kill_signal_zero_checks_without_signalling(rt, running, all_):
    """Signal 0, as kill(2): success while the container runs, nothing delivered (runc takes
    "0" as a number too)."""
    p = rt.kill(running.id, "0", all=all_)
    assert p.returncode == 0, p.stderr
    assert rt.status(running.id) == "running"


def test_kill_signal_zero_of_stopped_fails(rt, stopped):
    p = rt.kill(stopped.id, "0")
    assert p.returncode != 0
    assert MSG_NOT_RUNNING in one_line(p.stderr)


def test_kill_created_container(rt, created):
    """kill is allowed in `created` (runtime.md: neither created nor running -> error)."""
    p = rt.kill(created.id, "KILL")
    assert p.returncode == 0, p.stderr
    rt.wait_status(created.id, "stopped")


@pytest.mark.parametrize("sig", [None, "TERM", "HUP", "INT", "QUIT"])
def test_kill_created_container_stops_it(rt, created, sig):
    """The waiting init ends on `kill`'s default signal and the other stop signals, as runc's
    does: an engine stopping a container that was never started must not wait out its timeout
    for SIGKILL (the init is PID 1 of its pid namespace: a signal without a handler is dropped)."""
    p = rt.kill(created.id, *([sig] if sig else []))
    assert p.returncode == 0, p.stderr
    rt.wait_status(created.id, "stopped", timeout=5)


def test_start_paused_is_runcs_error(rt, started):
    b = started()
    assert rt("pause", b.id).returncode == 0
    p = rt.start(b.id)
    assert p.returncode == 1
    assert one_line(p.stderr).endswith('msg="cannot start a container in the paused state"')
    assert rt("resume", b.id).returncode == 0


TRAP = (
    'trap "echo USR1 >> /tmp/out/sig" USR1; trap "echo TERM >> /tmp/out/sig" TERM; '
    "echo ready > /tmp/out/ready; while :; do sleep 0.05; done"
)


@pytest.mark.parametrize(
    "sig,name", [("USR1", "USR1"), ("SIGUSR1", "USR1"), ("10", "USR1"), (None, "TERM"), ("15", "TERM")]
)
def test_kill_delivers_signal_to_init(rt, make_bundle, tmp_path, sig, name):
    out = tmp_path / "out"
    out.mkdir()
    b = make_bundle(sh(TRAP), mutate=with_mounts(out_mount(out)))
    assert rt.create(b.id, b).returncode == 0
    assert rt.start(b.id).returncode == 0
    wait_for(lambda: (out / "ready").exists(), what="the trap to be set")
    p = rt.kill(b.id, sig)
    assert p.returncode == 0, p.stderr
    wait_for(lambda: (out / "sig").exists() and (out / "sig").read_text(), what=f"SIG{name} handler")
    assert (out / "sig").read_text() == name + "\n"
    assert rt.status(b.id) == "running"


def test_kill_all(rt, make_bundle, tmp_path):
    b = make_bundle(sh("sleep 1000 & sleep 1000 & exec sleep 1000"))
    assert rt.create(b.id, b).returncode == 0
    assert rt.start(b.id).returncode == 0
    procs = [
        os.path.join(d, "cgroup.procs")
        for d in cgroup_dirs(b.cgroups_path)
        if os.path.exists(os.path.join(d, "cgroup.procs")) and "/unified/" not in d
    ]

    def count():
        return max(len(open(f).read().split()) for f in procs)

    wait_for(lambda: count() == 3, what="3 processes in the container cgroup")
    p = rt.kill(b.id, "KILL", all=True)
    assert p.returncode == 0, p.stderr
    rt.wait_status(b.id, "stopped")
    wait_for(lambda: count() == 0, what="all container processes to die")


# ---- run -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 3, 42])
def test_run_exit_code(run_in, code):
    p = run_in(sh(f"exit {code}"))
    assert p.returncode == code, p.stderr


@pytest.mark.parametrize("sig,code", [("9", 137), ("15", 143)])
def test_run_exit_code_of_signal(run_in, sig, code):
    # Without a pid namespace the shell is not an init, so it can signal itself.
    p = run_in(
        sh(f"kill -{sig} $$; sleep 5"),
        mutate=lambda c: c["linux"].__setitem__(
            "namespaces", [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
        ),
    )
    assert p.returncode == code, p.stderr


def test_run_killed_from_outside(rt, make_bundle):
    b = make_bundle(SLEEP)
    proc = rt.popen("run", "--bundle", b.path, b.id)
    rt.ids.append(b.id)
    try:
        rt.wait_status(b.id, "running")
        assert rt.kill(b.id, "KILL").returncode == 0
        proc.wait(timeout=20)
        assert proc.returncode == 137, output(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_deletes_container_after_exit(rt, make_bundle):
    b = make_bundle(["true"])
    assert rt.run(b.id, b).returncode == 0
    assert rt.state(b.id).returncode != 0
    assert not [n for n in os.listdir(rt.root) if n.startswith(b.id)]
    assert cgroup_dirs(b.cgroups_path) == []


def test_run_missing_executable_fails(rt, make_bundle):
    b = make_bundle(["/no/such/binary-xyz"])
    p = rt.run(b.id, b)
    assert p.returncode != 0
    assert "binary-xyz" in p.stderr
    assert rt.state(b.id).returncode != 0


# ---- list ------------------------------------------------------------------------------------------


def test_list_json(rt, created, running_other):
    p = rt.list("json")
    assert p.returncode == 0, p.stderr
    entries = {e["id"]: e for e in json.loads(p.stdout)}
    assert set(entries) == {created.id, running_other.id}
    assert entries[created.id]["status"] == "created"
    assert entries[running_other.id]["status"] == "running"
    assert entries[created.id]["pid"] == rt.state_json(created.id)["pid"]
    assert os.path.realpath(entries[created.id]["bundle"]) == os.path.realpath(created.path)


def test_list_table(rt, created):
    p = rt.list()
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "PID", "STATUS"]
    rows = [ln.split() for ln in lines[1:]]
    assert [r[:3] for r in rows] == [[created.id, str(rt.state_json(created.id)["pid"]), "created"]]


def test_list_quiet(rt, created):
    p = rt.list(quiet=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [created.id]


def test_list_empty_root(rt):
    p = rt.list("json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) in (None, [])


@pytest.fixture
def running_other(rt, make_bundle):
    b = make_bundle(SLEEP)
    assert rt.create(b.id, b).returncode == 0
    assert rt.start(b.id).returncode == 0
    return b


# ---- races and the pid file -------------------------------------------------------------------------


@pytest.mark.runc_deviates(
    "runc 1.1.5 create is not atomic per id: two concurrent creates can both fail ('file exists', "
    "'unable to store init state') and the loser tries to remove the winner's cgroup",
    strict=False,
)
def test_concurrent_create_same_id(rt, make_bundle):
    for _attempt in range(5):
        b = make_bundle(SLEEP)
        rt.ids.append(b.id)
        try:
            procs = [rt.popen("create", "--bundle", b.path, b.id) for _ in range(2)]
            results = [(p.wait(timeout=60), output(p)[1]) for p in procs]
            ok = [r for r in results if r[0] == 0]
            assert len(ok) == 1, f"exactly one create must win: {results}"
            loser = [r for r in results if r[0] != 0][0]
            assert MSG_EXISTS in one_line(loser[1])
            st = rt.state_json(b.id)
            assert st["status"] == "created" and pid_alive(st["pid"])
            assert cgroup_dirs(b.cgroups_path), "the winner's cgroup was removed"
            assert rt.delete(b.id, force=True).returncode == 0
        except AssertionError:
            # The race broke something: clean up here so the failure is reported once, as a failure.
            rt.delete(b.id, force=True)
            for d in cgroup_dirs(b.cgroups_path):
                remove_cgroup_tree(d)
            shutil.rmtree(os.path.join(rt.root, b.id), ignore_errors=True)
            raise


def test_pid_file_atomic(rt, make_bundle, tmp_path):
    d = tmp_path / "piddir"
    d.mkdir()
    pid_file = d / "init.pid"
    b = make_bundle(SLEEP)
    seen = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            try:
                seen.append(pid_file.read_text())
            except FileNotFoundError:
                pass

    t = threading.Thread(target=watch)
    t.start()
    try:
        p = rt.create(b.id, b, pid_file=pid_file)
    finally:
        done.set()
        t.join()
    assert p.returncode == 0, p.stderr
    pid = rt.state_json(b.id)["pid"]
    assert pid_file.read_text().strip() == str(pid)
    assert all(s.strip() == str(pid) for s in seen), f"pid file seen partially written: {set(seen)}"
    assert os.listdir(d) == ["init.pid"], "temporary files left next to the pid file"


def test_pid_file_relative_path(rt, make_bundle, tmp_path):
    b = make_bundle(SLEEP)
    rt.ids.append(b.id)
    p = rt("create", "--bundle", b.path, "--pid-file", "rel.pid", b.id, prelude=f"cd {tmp_path}")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "rel.pid").read_text().strip() == str(rt.state_json(b.id)["pid"])


def test_run_accepts_no_subreaper(run_in):
    """`run --no-subreaper` (runc's flag, passed by some engines) runs the container as usual and
    still returns its exit code."""
    p = run_in(["sh", "-c", "echo hi; exit 4"], extra=["--no-subreaper"])
    assert p.returncode == 4, p.stderr
    assert p.stdout == "hi\n"
