"""Damaged and hostile inputs end in exit 0 or a one-line error, never a traceback or a hang, and
leave nothing behind (issue 12, one test or more for each of its five points):

1. `delete --force` and `kill --all` signal only the container's processes, not a host process
   that shares the cgroup linux.cgroupsPath named;
2. a damaged state.json: a one-line error for that container, `list` shows the others, and
   `delete --force` removes it;
3. a NUL byte in a hook (env, args, path), linux.cgroupsPath or root.path: a one-line error;
4. config.json that is not JSON (a trailing comma, nesting 100,000 deep): file, line and column;
5. messages between the runtime and its children over 64 KiB pass.
"""

import json
import os
import subprocess
import time
import uuid

import pytest
from cli_helpers import OCIRT, REPO, assert_gone, make_bundle, remove_cgroup_parent, run_err_to_file

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

PARENT = "ocirt-test-robust"


@pytest.fixture(scope="module", autouse=True)
def remove_parent_cgroup():
    yield
    remove_cgroup_parent(PARENT)


def ocirt(root, *args, timeout=60):
    """Run ocirt; the container's processes get no pipe of ours (they would hold it open)."""
    return run_err_to_file(OCIRT + ["--root", root, *args], root + "-stderr", timeout=timeout)


def assert_one_line(p):
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    assert p.stderr.count("\n") <= 1, p.stderr


def write_config(bundle, config):
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)


def read_config(bundle):
    with open(os.path.join(bundle, "config.json")) as f:
        return json.load(f)


def cgroup_dirs(name):
    out = []
    for top in os.listdir("/sys/fs/cgroup"):
        d = os.path.join("/sys/fs/cgroup", top, PARENT, name)
        if os.path.isdir(d):
            out.append(d)
    return out


@pytest.fixture
def env(tmp_path, busybox_rootfs):
    """(root, bundle, id) with a cgroup of its own below PARENT; everything removed after."""
    cid = f"rob-{uuid.uuid4().hex[:8]}"
    bundle = make_bundle(tmp_path / "bundle", busybox_rootfs, ["sleep", "100"], terminal=False)
    config = read_config(bundle)
    config["linux"]["cgroupsPath"] = f"/{PARENT}/{cid}"
    write_config(bundle, config)
    root = str(tmp_path / "root")
    yield root, bundle, cid
    ocirt(root, "delete", "--force", cid)
    assert not os.path.exists(os.path.join(root, cid))
    assert not cgroup_dirs(cid)


# -- 1. only the container's processes --------------------------------------------------------


@pytest.fixture
def shared_cgroup(env):
    """A cgroup made before the container, holding a host process."""
    _root, _bundle, cid = env
    host = subprocess.Popen(["sleep", "1000"])
    made = []
    try:
        for top in os.listdir("/sys/fs/cgroup"):
            d = os.path.join("/sys/fs/cgroup", top, PARENT, "shared-" + cid)
            try:
                os.makedirs(d)
                made.append(d)
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write(str(host.pid))
            except OSError:
                pass
        yield host, f"/{PARENT}/shared-{cid}"
    finally:
        host.kill()
        host.wait()
        for d in made:
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


@pytest.mark.parametrize("pidns", [True, False], ids=["own-pidns", "host-pidns"])
def test_delete_force_spares_a_host_process_in_a_shared_cgroup(env, shared_cgroup, pidns):
    root, bundle, cid = env
    host, path = shared_cgroup
    config = read_config(bundle)
    config["linux"]["cgroupsPath"] = path
    if not pidns:
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "pid"]
    write_config(bundle, config)
    p = ocirt(root, "create", "--bundle", bundle, cid)
    assert p.returncode == 0, p.stderr
    with open(os.path.join(root, cid, "state.json")) as f:
        init = json.load(f)["pid"]
    p = ocirt(root, "kill", "--all", cid, "KILL")
    assert p.returncode == 0, p.stderr
    assert_gone(init)
    assert host.poll() is None, "kill --all killed a process that only shares the cgroup"
    assert ocirt(root, "delete", "--force", cid).returncode == 0
    time.sleep(0.1)
    assert host.poll() is None, "delete --force killed a process that only shares the cgroup"
    assert not os.path.exists(os.path.join(root, cid))


# -- 2. a damaged state directory -------------------------------------------------------------

DAMAGES = {
    "empty": b"",
    "truncated": b'{"id": "X", "bundle": "/b", "pi',
    "not-json": b"\x00\xffnot json",
    "array": b"[]",
    "wrong-type": b'{"id": "X", "bundle": "/b", "pid": "12"}',
    "negative-pid": b'{"id": "X", "bundle": "/b", "pid": -1, "pid_start": 0}',
    "bad-cgroup": b'{"id": "X", "bundle": "/b", "cgroup": {"kind": "v2", "created": ["/"]}}',
    "bad-hooks": b'{"id": "X", "bundle": "/b", "hooks": {"poststop": [{"args": 1}]}}',
    "deep": b"[" * 100000,
    "fifo": None,  # state.json made a FIFO: read as empty, where every command waited for ever
}
COMMANDS = [
    ["state"],
    ["kill"],
    ["kill", "--all"],
    ["start"],
    ["delete"],
    ["pause"],
    ["resume"],
    ["ps"],
    ["events", "--stats"],
    ["exec"],
]


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_state_json_fails_one_container_only(tmp_path, damage):
    root = str(tmp_path / "root")
    cid = "damaged"
    os.makedirs(os.path.join(root, cid))
    os.makedirs(os.path.join(root, "fine"))
    with open(os.path.join(root, "fine", "state.json"), "w") as f:
        json.dump({"id": "fine", "bundle": "/b"}, f)
    data = DAMAGES[damage]
    if data is None:
        os.mkfifo(os.path.join(root, cid, "state.json"))
    else:
        with open(os.path.join(root, cid, "state.json"), "wb") as f:
            f.write(data.replace(b'"X"', b'"damaged"'))
    hints = set()
    for command in COMMANDS:
        args = [*command, cid] + (["true"] if command == ["exec"] else [])
        p = ocirt(root, *args)
        want = 255 if command[0] == "exec" else 1  # exec's own failures: runc's 255
        assert p.returncode == want, (command, p.stderr)
        assert_one_line(p)
        assert "damaged state.json" in p.stderr, (command, p.stderr)
        hints.add("delete --force removes it" in p.stderr)
    # (the advice as delete --force below does: it said so where that refused, too)
    assert hints == {damage == "bad-cgroup"}, hints
    p = ocirt(root, "list", "--quiet")
    assert "Traceback" not in p.stderr
    assert p.returncode == 0
    assert "damaged state.json" in p.stderr  # a warning, and the others are listed:
    p2 = subprocess.run(
        OCIRT + ["--root", root, "list", "-q"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert p2.stdout.split() == ["fine"]
    p = ocirt(root, "delete", "--force", cid)
    if damage == "bad-cgroup":  # the record still says where its cgroup is: what it names goes
        assert p.returncode == 0, p.stderr
        assert not os.path.exists(os.path.join(root, cid))
    else:  # nothing tells which processes and cgroup were its own: refused, all kept (runc too)
        assert p.returncode == 1, p.stderr
        assert_one_line(p)
        assert "damaged state.json" in p.stderr and os.path.exists(os.path.join(root, cid))
    assert os.path.exists(os.path.join(root, "fine"))


def run_and_damage(env, damage) -> tuple:
    """A running container (run -d) whose state.json is then damage(its bytes): (the file, the
    good bytes)."""
    root, bundle, cid = env
    p = ocirt(root, "run", "--detach", "--bundle", bundle, cid)
    assert p.returncode == 0, p.stderr
    state_file = os.path.join(root, cid, "state.json")
    with open(state_file, "rb") as f:
        good = f.read()
    with open(state_file, "wb") as f:
        f.write(damage(good))
    return state_file, good


@pytest.mark.parametrize("damage", ["empty", "truncated", "not-json", "deep"])
def test_delete_force_keeps_a_running_container_whose_state_json_says_nothing(env, damage):
    """A started container (no exec.fifo any more) whose state.json something else emptied or
    broke: delete --force must not remove the directory and lose track of a running init and
    its cgroups (it used to, exiting 0); one line, and all kept until the record is back."""
    root, bundle, cid = env
    state_file, good = run_and_damage(env, lambda _: DAMAGES[damage])
    pid = json.loads(good)["pid"]
    p = ocirt(root, "delete", "--force", cid)
    assert p.returncode == 1 and "damaged state.json" in p.stderr, p.stderr
    assert_one_line(p)
    with open(f"/proc/{pid}/stat") as f:
        assert f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # the init still runs
    assert cgroup_dirs(cid)
    with open(state_file, "wb") as f:  # the record back: delete --force removes everything
        f.write(good)
    p = ocirt(root, "delete", "--force", cid)
    assert p.returncode == 0, p.stderr
    assert_gone(pid)
    assert not cgroup_dirs(cid)


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t.replace(b'"rootfs": ', b'"rootfs" '),  # a byte gone
        lambda t: t.replace(b'"created": "', b'"created": "\xff'),  # not UTF-8
        lambda t: t[: t.index(b'"cgroup"')],  # cut short after pid and pid_start
    ],
    ids=["colon-gone", "not-utf8", "cut-short"],
)
def test_delete_force_of_a_running_container_whose_state_json_is_no_json_but_tells_its_init(env, damage):
    """A state.json that is no JSON any more but still holds its pid and start time whole:
    delete --force kills the init (verified by both) and removes its cgroup (where config.json
    puts it) and the directory; it refused, and the container ran on with no record."""
    root, _bundle, cid = env
    _state_file, good = run_and_damage(env, damage)
    p = ocirt(root, "state", cid)
    assert p.returncode == 1 and "damaged state.json" in p.stderr, p.stderr
    p = ocirt(root, "delete", "--force", cid)
    assert p.returncode == 0, p.stderr
    assert_gone(json.loads(good)["pid"])
    assert not cgroup_dirs(cid) and not os.path.exists(os.path.join(root, cid))


def test_start_with_exec_fifo_made_a_directory_names_it(env):
    """exec.fifo replaced by a directory: start fails in one line naming the file (it said only
    "Is a directory"), and delete --force still removes the container."""
    root, bundle, cid = env
    p = ocirt(root, "create", "--bundle", bundle, cid)
    assert p.returncode == 0, p.stderr
    fifo = os.path.join(root, cid, "exec.fifo")
    os.unlink(fifo)
    os.mkdir(fifo)
    p = ocirt(root, "start", cid)
    assert p.returncode == 1 and fifo in p.stderr and "is a directory" in p.stderr.lower(), p.stderr
    assert_one_line(p)


def test_a_state_json_that_never_ends_is_damage_not_a_hang(env):
    """state.json a link to /dev/zero: each command reads one block and says it is damaged."""
    root, _bundle, cid = env
    os.makedirs(os.path.join(root, cid))
    os.symlink("/dev/zero", os.path.join(root, cid, "state.json"))
    for command in (["state", cid], ["ps", cid], ["list"]):
        p = ocirt(root, *command)
        assert "damaged state.json" in p.stderr, (command, p.stderr)
        assert "Traceback" not in p.stderr and "internal error" not in p.stderr
    os.unlink(os.path.join(root, cid, "state.json"))


def test_delete_force_through_a_state_dir_made_a_symlink_finishes(env):
    """The state directory replaced by a symlink to it: delete --force removes the container and
    then the link (it used to fail on rmdir and stay stuck)."""
    root, bundle, cid = env
    p = ocirt(root, "run", "--detach", "--bundle", bundle, cid)
    assert p.returncode == 0, p.stderr
    real = os.path.join(root, cid + ".real")
    os.rename(os.path.join(root, cid), real)
    os.symlink(real, os.path.join(root, cid))
    p = ocirt(root, "delete", "--force", cid)
    assert p.returncode == 0, p.stderr
    assert not os.path.lexists(os.path.join(root, cid)) and not cgroup_dirs(cid)
    if os.path.isdir(real):
        os.rmdir(real)


def test_unknown_state_fields_are_ignored(tmp_path):
    root = str(tmp_path / "root")
    os.makedirs(os.path.join(root, "c"))
    with open(os.path.join(root, "c", "state.json"), "w") as f:
        json.dump({"id": "c", "bundle": "/b", "from_a_newer_ocirt": {"x": [1]}}, f)
    p = subprocess.run(
        OCIRT + ["--root", root, "state", "c"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["id"] == "c"
    assert ocirt(root, "delete", "--force", "c").returncode == 0
    assert not os.path.exists(os.path.join(root, "c"))


def test_delete_force_of_a_damaged_running_container_removes_everything(env):
    """What a damaged state.json still tells (pid, start time, cgroup) is enough to remove it."""
    root, bundle, cid = env
    p = ocirt(root, "create", "--bundle", bundle, cid)
    assert p.returncode == 0, p.stderr
    state_file = os.path.join(root, cid, "state.json")
    with open(state_file) as f:
        state = json.load(f)
    state["bundle"] = 42  # damaged: a member of the wrong type
    with open(state_file, "w") as f:
        json.dump(state, f)
    p = ocirt(root, "state", cid)
    assert p.returncode == 1 and "damaged state.json" in p.stderr
    assert_one_line(p)
    p = ocirt(root, "delete", "--force", cid)
    assert p.returncode == 0, p.stderr
    assert_gone(state["pid"])
    assert not cgroup_dirs(cid)
    assert not os.path.exists(os.path.join(root, cid))


# -- 3. NUL bytes -----------------------------------------------------------------------------

NULS = {
    "hook-env": lambda c: c.update(hooks={"prestart": [{"path": "/bin/true", "env": ["A=\0"]}]}),
    "hook-args": lambda c: c.update(
        hooks={"createRuntime": [{"path": "/bin/true", "args": ["true", "a\0b"]}]}
    ),
    "hook-path": lambda c: c.update(hooks={"poststart": [{"path": "/bin/true\0x"}]}),
    "cgroupsPath": lambda c: c["linux"].update(cgroupsPath="/ocirt-test-robust/a\0b"),
    "root.path": lambda c: c["root"].update(path=c["root"]["path"] + "\0x"),
    "process-env": lambda c: c["process"].update(env=["PATH=/bin\0"]),
}


@pytest.mark.parametrize("where", sorted(NULS))
def test_a_nul_byte_is_a_one_line_error(env, where):
    root, bundle, cid = env
    config = read_config(bundle)
    config["process"]["args"] = ["true"]
    NULS[where](config)
    write_config(bundle, config)
    p = ocirt(root, "run", "--bundle", bundle, cid, timeout=60)
    assert p.returncode != 0
    assert_one_line(p)
    assert "NUL" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(root, cid))
    assert not cgroup_dirs(cid)


def test_a_hook_runner_child_never_returns_into_the_runtime(tmp_path):
    """Whatever the forked child raises (here: execve's ValueError), it _exits."""
    script = (
        "import os\nfrom ocirt import hooks\n"
        "try:\n    hooks.run_one({'path': '/bin/true', 'env': ['A=\\0']}, {}, '/hooks/x/0')\n"
        "except Exception as e:\n    print('parent', os.getpid(), e)\n"
    )
    p = subprocess.run([OCIRT[0], "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.stdout.count("parent") == 1, p.stdout
    assert "/hooks/x/0: exec /bin/true: embedded null byte" in p.stdout  # the child's reason


# -- 4. config.json that is not JSON ----------------------------------------------------------


@pytest.mark.parametrize(
    "text,where",
    [
        ('{"ociVersion": "1.0.2",\n "process": {"args": ["true"],}}', "line 2 column 31"),
        ('{"a": 1 "b": 2}', "line 1 column 9"),
        ("[" * 100000, "line 1 column"),
        ('{"a": "\\ud800"', "line 1 column"),
    ],
)
def test_config_not_json_names_file_line_and_column(tmp_path, text, where):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(text)
    root = str(tmp_path / "root")
    p = ocirt(root, "create", "--bundle", str(bundle), "nojson")
    assert p.returncode == 1
    assert_one_line(p)
    assert "config.json" in p.stderr and where in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(root, "nojson"))


# -- 5. messages over 64 KiB ------------------------------------------------------------------


def test_a_failure_message_over_64k_reaches_the_runtime(env):
    root, bundle, cid = env
    config = read_config(bundle)
    config["process"]["args"] = ["x" * 100000]  # exec fails: its message names the file
    write_config(bundle, config)
    p = ocirt(root, "run", "--bundle", bundle, cid)
    assert p.returncode != 0
    assert_one_line(p)
    assert "x" * 1000 in p.stderr
    assert not os.path.exists(os.path.join(root, cid))


def test_a_hook_state_over_64k_reaches_the_init(env, tmp_path):
    """createContainer hooks get the state (its annotations: 100 kB) over the channel."""
    root, bundle, cid = env
    out = tmp_path / "hook-out"
    config = read_config(bundle)
    config["process"]["args"] = ["true"]
    config["annotations"] = {"big": "y" * 100000}
    config["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"wc -c > {out}"]}]}
    write_config(bundle, config)
    p = ocirt(root, "run", "--bundle", bundle, cid)
    assert p.returncode == 0, p.stderr
    assert int(out.read_text().split()[0]) > 100000
