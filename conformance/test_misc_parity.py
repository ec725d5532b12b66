"""`exec --process FILE`, `spec`, `run --keep`, `kill --all`, `delete` of a paused container and
`--pid-file`'s edge cases against runc 1.1.5: exit statuses, the words of errors, what the
process gets from the file, and what is left behind. Each test passes on runc and on ocirt."""

import json
import os
import time

import pytest
from runtime import cgroup_dirs, container_pids, one_line, pid_alive, sh, wait_for

PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EXEC_FAILED = 255  # exec's own failures (the process's status otherwise)


def process_file(tmp_path, content, name="process.json"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def proc(args, **kw):
    return {"args": args, "cwd": "/", "env": [PATH], **kw}


# ---- exec --process --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param('{"args": ["true"', id="truncated"),
        pytest.param("", id="empty"),
        pytest.param("[1]", id="not-an-object"),
        pytest.param('{"args": "true", "cwd": "/"}', id="args-a-string"),
        pytest.param('{"cwd": "/"}', id="no-args"),
        pytest.param('{"args": [], "cwd": "/"}', id="empty-args"),
        pytest.param('{"args": ["true"]}', id="no-cwd"),
        pytest.param('{"args": ["true"], "cwd": "bin"}', id="relative-cwd"),
        pytest.param('{"args": ["true"], "cwd": "/", "env": ["NOEQUALS"]}', id="env-without-equals"),
        pytest.param(
            '{"args": ["true"], "cwd": "/", "rlimits": [{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}]}',
            id="unknown-rlimit",
        ),
    ],
)
def test_a_bad_process_file_fails_exec_in_one_line(rt, started, tmp_path, content):
    """exit 255 (exec's own failure), one line, no process left in the container."""
    b = started()
    p = rt("exec", "--process", process_file(tmp_path, content), b.id)
    assert p.returncode == EXEC_FAILED, (p.stdout, p.stderr)
    assert "exec failed: " in one_line(p.stderr)
    assert container_pids(b) == {rt.state_json(b.id)["pid"]}
    assert rt.status(b.id) == "running"


@pytest.mark.parametrize(
    "where,why",
    [("-", "open -: no such file or directory"), ("missing.json", "no such file or directory")],
)
def test_a_process_file_that_cannot_be_read(rt, started, tmp_path, where, why):
    """`--process -` is a file named "-" (not stdin), as in runc."""
    b = started()
    p = rt("exec", "--process", where, b.id, input='{"args": ["true"], "cwd": "/"}', prelude=f"cd {tmp_path}")
    assert p.returncode == EXEC_FAILED
    assert why in one_line(p.stderr)


def test_a_relative_process_file_is_the_callers(rt, started, tmp_path):
    b = started()
    process_file(tmp_path, proc(["echo", "relative"]))
    p = rt("exec", "--process", "process.json", b.id, prelude=f"cd {tmp_path}")
    assert (p.returncode, p.stdout, p.stderr) == (0, "relative\n", "")


def test_unknown_fields_of_a_process_file_are_ignored(rt, started, tmp_path):
    b = started()
    path = process_file(tmp_path, proc(["echo", "ok"], bogus=1, **{"org.example": {"x": [1]}}))
    p = rt("exec", "--process", path, b.id)
    assert (p.returncode, p.stdout, p.stderr) == (0, "ok\n", "")


def test_a_process_file_wins_over_the_command_line(rt, started, tmp_path):
    """The arguments after the id, and --env, --cwd, --user, are not looked at with --process."""
    b = started()
    path = process_file(tmp_path, proc(["sh", "-c", "echo $A; pwd; id -u"]))
    p = rt("exec", "--env", "A=1", "--cwd", "/bin", "--user", "5", "--process", path, b.id, "echo", "args")
    assert (p.returncode, p.stdout, p.stderr) == (0, "\n/\n0\n", "")


def test_what_the_process_file_gives_the_process(rt, started, tmp_path):
    """env, cwd, user (with additional gids), capabilities (bounding: a non-root user's
    effective set is empty after its execve), noNewPrivileges."""
    b = started()
    script = "echo $FOO; pwd; id -u; id -G; grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status"
    path = process_file(
        tmp_path,
        {
            "args": ["sh", "-c", script],
            "cwd": "/bin",
            "env": [PATH, "FOO=bar baz"],
            "user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 7]},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
            "noNewPrivileges": True,
        },
    )
    p = rt("exec", "--process", path, b.id)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[:4] == ["bar baz", "/bin", "1000", "1000 5 7"]
    assert lines[4:6] == ["CapBnd:\t0000000000000020", "NoNewPrivs:\t1"]  # (uid 1000: no effective ones)


@pytest.mark.runc_deviates(
    "runc 1.1.5 sets an exec's rlimits from its parent (prlimit) while its runc init, a Go "
    "program, raises its own soft RLIMIT_NOFILE to the hard one at start: now and then the "
    "soft limit is the hard one",
    strict=False,
)
def test_the_process_files_rlimits(rt, started, tmp_path):
    b = started()
    path = process_file(
        tmp_path,
        {
            "args": ["cat", "/proc/self/limits"],
            "cwd": "/",
            "env": [PATH],
            "user": {"uid": 0, "gid": 0},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 100, "soft": 50}],
        },
    )
    p = rt("exec", "--process", path, b.id)
    assert p.returncode == 0, p.stderr
    files = [ln.split() for ln in p.stdout.splitlines() if ln.startswith("Max open files")]
    assert files and files[0][3:5] == ["50", "100"], files


def test_an_unknown_capability_in_a_process_file_is_a_warning(rt, started, tmp_path):
    """Left out with a warning, and the process runs (create's rule for config.json)."""
    b = started()
    caps = {"bounding": ["CAP_BOGUS", "CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
    p = rt("exec", "--process", process_file(tmp_path, proc(["echo", "ran"], capabilities=caps)), b.id)
    assert (p.returncode, p.stdout) == (0, "ran\n")
    line = one_line(p.stderr)
    assert "level=warning" in line and "CAP_BOGUS" in line, line


def test_unknown_capabilities_at_create_are_one_warning(rt, make_bundle):
    """Several names the kernel has no number for, in several sets: left out, with one warning
    line naming them (runc: `ignoring unknown or unavailable capabilities: [...]`)."""
    caps = ["CAP_BOGUS_ONE", "CAP_BOGUS_TWO", "CAP_KILL"]
    b = make_bundle(
        ["true"], process={"capabilities": {"bounding": caps, "effective": caps, "permitted": caps}}
    )
    p = rt.create(b.id, b)
    assert p.returncode == 0, p.stderr
    line = one_line(p.stderr)
    assert "level=warning" in line and "CAP_BOGUS_ONE" in line and "CAP_BOGUS_TWO" in line, line


def test_a_create_that_fails_after_a_warning_says_the_error_alone(rt, make_bundle):
    """An unknown capability is ignored with a warning once the container is made; a failure
    later in create (a bind source that is not there) is its one line, the warning unsaid."""
    caps = ["CAP_BOGUS_ONE", "CAP_KILL"]

    def mutate(cfg):
        cfg["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
        cfg["mounts"].append(
            {"destination": "/mnt", "type": "bind", "source": "/no/such/source", "options": ["rbind"]}
        )

    b = make_bundle(["true"], mutate=mutate)
    p = rt.create(b.id, b)
    assert p.returncode != 0
    line = one_line(p.stderr)
    assert "level=error" in line and "/no/such/source" in line, line


def test_an_exec_that_fails_after_a_warning_says_the_error_alone(rt, started):
    b = started()
    p = rt("exec", "--cap", "CAP_BOGUS_ONE", "--cwd", "/no/such/dir", b.id, "true")
    assert p.returncode != 0
    line = one_line(p.stderr)
    assert "level=error" in line and "/no/such/dir" in line, line


@pytest.mark.runc_deviates(
    "runc 1.1.5 takes a user without uid (config.md: uid is REQUIRED) and runs it as 0"
)
def test_a_process_file_without_uid_is_refused(rt, started, tmp_path):
    b = started()
    p = rt("exec", "--process", process_file(tmp_path, proc(["id", "-u"], user={"username": "nobody"})), b.id)
    assert p.returncode == EXEC_FAILED, p.stdout
    assert "uid" in one_line(p.stderr)


@pytest.mark.runc_deviates(
    "runc 1.1.5 ignores process.oomScoreAdj of exec's process file (config.md's process)"
)
def test_a_process_files_oom_score_adj_is_applied(rt, started, tmp_path):
    b = started()
    p = rt(
        "exec",
        "--process",
        process_file(tmp_path, proc(["cat", "/proc/self/oom_score_adj"], oomScoreAdj=100)),
        b.id,
    )
    assert (p.returncode, p.stdout) == (0, "100\n")


@pytest.mark.runc_deviates(
    "runc 1.1.5 ignores user.umask of exec's process file (config.md: the process's umask)"
)
def test_a_process_files_umask_is_applied(rt, started, tmp_path):
    b = started()
    path = process_file(tmp_path, proc(["sh", "-c", "umask"], user={"uid": 0, "gid": 0, "umask": 0o77}))
    p = rt("exec", "--process", path, b.id)
    assert (p.returncode, p.stdout) == (0, "0077\n")


@pytest.mark.runc_deviates("runc 1.1.5 predates process.scheduler (runtime-spec 1.2) and ignores it in exec")
def test_a_process_files_scheduler_is_applied(rt, started, tmp_path):
    b = started()
    path = process_file(
        tmp_path, proc(["grep", "^policy", "/proc/self/sched"], scheduler={"policy": "SCHED_BATCH"})
    )
    p = rt("exec", "--process", path, b.id)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[-1] == "3"  # SCHED_BATCH


# ---- spec ------------------------------------------------------------------------------------


@pytest.fixture
def here(tmp_path):
    """An empty directory for `spec` (tmp_path holds the runtime's --root)."""
    d = tmp_path / "here"
    d.mkdir()
    return d


def test_spec_writes_a_starter_config(rt, here):
    p = rt("spec", prelude=f"cd {here}")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    cfg = json.loads((here / "config.json").read_text())
    assert cfg["process"]["args"] == ["sh"] and cfg["process"]["terminal"] is True
    assert cfg["root"] == {"path": "rootfs", "readonly": True}
    assert {"pid", "network", "ipc", "uts", "mount"} <= {n["type"] for n in cfg["linux"]["namespaces"]}
    assert oct((here / "config.json").stat().st_mode & 0o777) == oct(0o666 & ~0o022)


def test_spec_never_overwrites_a_config(rt, here):
    (here / "config.json").write_text("mine")
    for args in (["spec"], ["spec", "--bundle", str(here)]):
        p = rt(*args, prelude=f"cd {here}")
        assert p.returncode == 1 and p.stdout == ""
        assert one_line(p.stderr).endswith('msg="File config.json exists. Remove it first"'), p.stderr
    assert (here / "config.json").read_text() == "mine"


def test_spec_rootless(rt, here):
    p = rt("spec", "--rootless", "--bundle", here)
    assert p.returncode == 0, p.stderr
    cfg = json.loads((here / "config.json").read_text())
    kinds = {n["type"] for n in cfg["linux"]["namespaces"]}
    assert "user" in kinds and "network" not in kinds
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert cfg["linux"]["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert "resources" not in cfg["linux"] or not cfg["linux"]["resources"].get("devices")


@pytest.mark.parametrize("bundle,why", [("nodir", "no such file or directory"), ("afile", "not a directory")])
def test_spec_with_a_bundle_that_is_no_directory(rt, here, bundle, why):
    (here / "afile").write_text("")
    p = rt("spec", "--bundle", bundle, prelude=f"cd {here}")
    assert p.returncode == 1
    assert one_line(p.stderr).endswith(f'msg="chdir {bundle}: {why}"'), p.stderr
    assert sorted(os.listdir(here)) == ["afile"]


def test_spec_takes_no_argument(rt, here):
    p = rt("spec", "extra", prelude=f"cd {here}")
    assert p.returncode == 1
    assert 'requires exactly 0 argument(s)"' in p.stderr.splitlines()[-1]
    assert os.listdir(here) == []


# ---- run --keep ------------------------------------------------------------------------------


def test_run_keep_leaves_the_stopped_container_to_delete(rt, make_bundle, tmp_path):
    """The exit status is the program's; the container stays, stopped, with its cgroup, until
    `delete`, which runs the poststop hooks (not run)."""
    out = tmp_path / "poststop"
    b = make_bundle(
        sh("echo hi; exit 3"),
        hooks={"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo ran >> {out}"]}]},
    )
    p = rt.run(b.id, b, extra=["--keep"])
    assert (p.returncode, p.stdout, p.stderr) == (3, "hi\n", "")
    assert rt.status(b.id) == "stopped"
    assert cgroup_dirs(b.cgroups_path), "run --keep removed the cgroup"
    assert not out.exists()
    p = rt.run(b.id, b, extra=["--keep"])
    assert p.returncode == 1
    assert one_line(p.stderr).endswith('run failed: container with given ID already exists"'), p.stderr
    assert rt.delete(b.id).returncode == 0
    assert out.read_text() == "ran\n"
    assert rt.status(b.id) is None and cgroup_dirs(b.cgroups_path) == []


@pytest.mark.parametrize("keep", [True, False])
def test_run_whose_start_fails(rt, make_bundle, keep):
    """A startContainer hook fails: `run` fails with runc's prefix; with --keep the container
    stays, stopped, for `delete` (runc's), without it nothing is left."""
    b = make_bundle(["true"], hooks={"startContainer": [{"path": "/bin/false"}]})
    p = rt.run(b.id, b, extra=["--keep"] if keep else [])
    assert p.returncode == 1
    assert "run failed: " in p.stderr or "error running hook" in p.stderr, p.stderr
    if keep:
        assert rt.status(b.id) == "stopped"
        assert rt.delete(b.id).returncode == 0
    assert rt.status(b.id) is None and cgroup_dirs(b.cgroups_path) == []


def test_run_keep_detached(rt, make_bundle):
    b = make_bundle(["true"])
    p = rt.run(b.id, b, extra=["--keep", "--detach"])
    assert p.returncode == 0, p.stderr
    rt.wait_status(b.id, "stopped")
    assert rt.delete(b.id).returncode == 0


# ---- kill --all ------------------------------------------------------------------------------

THREE = sh("sleep 1001 & sleep 1002 & exec sleep 1003")


def _wait_three(b):
    wait_for(lambda: len(container_pids(b)) == 3, what="three processes in the container")
    return container_pids(b)


def test_kill_all_with_a_shared_pid_namespace(rt, make_bundle):
    """Without its own pid namespace, the init's death leaves its children running, and the
    container stopped; `kill --all` then still reaches them (through the cgroup)."""
    b = make_bundle(
        THREE, mutate=lambda c: c["linux"].update(namespaces=[{"type": "mount"}, {"type": "uts"}])
    )
    assert rt.run(b.id, b, extra=["--detach"]).returncode == 0
    pids = _wait_three(b)
    init = rt.state_json(b.id)["pid"]
    assert rt.kill(b.id, "KILL").returncode == 0
    wait_for(lambda: rt.status(b.id) == "stopped", what="stopped")
    assert all(pid_alive(p) for p in pids - {init}), "killing the init killed the others too"
    p = rt.kill(b.id, "KILL", all=True)
    assert (p.returncode, p.stderr) == (0, "")
    wait_for(lambda: not any(pid_alive(p) for p in pids), what="every process killed")
    assert rt.delete(b.id).returncode == 0


def test_kill_all_with_a_pid_namespace(rt, make_bundle):
    """Every process gets the signal; pid 1 of its namespace ignores a SIGTERM it has no
    handler for, the others die of it."""
    b = make_bundle(THREE)
    assert rt.run(b.id, b, extra=["--detach"]).returncode == 0
    pids = _wait_three(b)
    init = rt.state_json(b.id)["pid"]
    p = rt.kill(b.id, all=True)
    assert (p.returncode, p.stderr) == (0, "")
    wait_for(lambda: container_pids(b) == {init}, what="the init alone left")
    assert rt.status(b.id) == "running"
    assert rt.kill(b.id, "KILL", all=True).returncode == 0
    rt.wait_status(b.id, "stopped")
    assert not any(pid_alive(p) for p in pids)


def test_kill_all_of_a_stopped_container_is_no_error(rt, make_bundle):
    """runc: `kill --all` of a stopped container exits 0, `kill` of it is an error."""
    b = make_bundle(["true"])
    assert rt.run(b.id, b, extra=["--detach"]).returncode == 0
    rt.wait_status(b.id, "stopped")
    p = rt.kill(b.id, "KILL", all=True)
    assert (p.returncode, p.stderr) == (0, "")
    p = rt.kill(b.id, "KILL")
    assert p.returncode == 1
    assert one_line(p.stderr).endswith('msg="container not running"'), p.stderr


def test_kill_all_of_a_created_container(rt, make_bundle):
    b = make_bundle(["sleep", "1000"])
    assert rt.create(b.id, b).returncode == 0
    assert rt.kill(b.id, "KILL", all=True).returncode == 0
    rt.wait_status(b.id, "stopped")
    assert rt.delete(b.id).returncode == 0


def test_kill_all_of_a_paused_container(rt, make_bundle):
    """SIGKILL reaches frozen processes: the container is stopped, not paused, afterwards."""
    b = make_bundle(THREE)
    assert rt.run(b.id, b, extra=["--detach"]).returncode == 0
    pids = _wait_three(b)
    assert rt("pause", b.id).returncode == 0
    assert rt.kill(b.id, "KILL", all=True).returncode == 0
    wait_for(lambda: not any(pid_alive(p) for p in pids), what="every process killed")
    rt.wait_status(b.id, "stopped")
    p = rt("resume", b.id)
    assert p.returncode == 1
    assert one_line(p.stderr).endswith('msg="container not paused"'), p.stderr
    assert rt.delete(b.id).returncode == 0


@pytest.mark.runc_deviates(
    "runc 1.1.5's kill --all freezes, signals and thaws the cgroup: any signal resumes a paused "
    "container (moby#37137); only `resume` should"
)
def test_kill_all_leaves_a_paused_container_paused(rt, make_bundle):
    """The signal waits for `resume`; then the children die of it (the init, pid 1, has no
    handler and ignores it)."""
    b = make_bundle(THREE)
    assert rt.run(b.id, b, extra=["--detach"]).returncode == 0
    _wait_three(b)
    init = rt.state_json(b.id)["pid"]
    assert rt("pause", b.id).returncode == 0
    assert rt.kill(b.id, "TERM", all=True).returncode == 0
    time.sleep(0.3)
    assert rt.status(b.id) == "paused"
    assert rt("resume", b.id).returncode == 0
    wait_for(lambda: container_pids(b) == {init}, what="the children dead of the signal")
    assert rt.status(b.id) == "running"


# ---- delete of a paused container ------------------------------------------------------------


def test_delete_of_a_paused_container(rt, make_bundle):
    b = make_bundle(["sleep", "1000"])
    assert rt.run(b.id, b, extra=["--detach"]).returncode == 0
    init = rt.state_json(b.id)["pid"]
    assert rt("pause", b.id).returncode == 0
    p = rt.delete(b.id)
    assert p.returncode == 1
    assert one_line(p.stderr).endswith(f'msg="cannot delete container {b.id} that is not stopped: paused"')
    assert rt.status(b.id) == "paused" and pid_alive(init)
    p = rt.delete(b.id, force=True)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    wait_for(lambda: not pid_alive(init), what="the init killed")
    assert rt.status(b.id) is None and cgroup_dirs(b.cgroups_path) == []


# ---- --pid-file ------------------------------------------------------------------------------


def _created_with_pid_file(rt, b, pid_file, cwd):
    p = rt.create(b.id, b, pid_file=pid_file, prelude=f"cd {cwd}")
    assert p.returncode == 0, p.stderr
    return rt.state_json(b.id)["pid"]


def test_a_relative_pid_file_is_the_callers(rt, make_bundle, tmp_path):
    b = make_bundle(["sleep", "1000"])
    pid = _created_with_pid_file(rt, b, "init.pid", tmp_path)
    assert (tmp_path / "init.pid").read_text() == str(pid)


def test_a_pid_file_replaces_a_file_and_a_symlink(rt, make_bundle, tmp_path):
    """An existing file is replaced whole (no old bytes after the pid); a symlink (dangling or
    not) is replaced by the file, and what it points to is left alone."""
    (tmp_path / "target").write_text("T")
    cases = {"existing": None, "link": tmp_path / "target", "dangling": tmp_path / "nowhere"}
    for name, target in cases.items():
        path = tmp_path / name
        if target is None:
            path.write_text("x" * 40 + "\n")
        else:
            path.symlink_to(target)
        b = make_bundle(["sleep", "1000"])
        pid = _created_with_pid_file(rt, b, path, tmp_path)
        assert not path.is_symlink() and path.read_text() == str(pid), name
        assert rt.delete(b.id, force=True).returncode == 0
    assert (tmp_path / "target").read_text() == "T"
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("where", ["no/such/dir/init.pid", "."])
def test_a_pid_file_that_cannot_be_written_fails_create_cleanly(rt, make_bundle, tmp_path, where):
    b = make_bundle(["sleep", "1000"])
    before = sorted(os.listdir(tmp_path))
    p = rt.create(b.id, b, pid_file=where, prelude=f"cd {tmp_path}")
    assert p.returncode == 1
    assert "create failed: " in one_line(p.stderr)
    assert rt.status(b.id) is None and os.listdir(rt.root) == []
    assert cgroup_dirs(b.cgroups_path) == []
    assert sorted(os.listdir(tmp_path)) == before
    time.sleep(0.1)
