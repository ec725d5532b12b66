"""Rootless: ocirt run by an unprivileged user (uid 1000), as runc can be.

The user gets a bundle made by `ocirt spec --rootless` (a user namespace mapping its own uid to
root inside, /sys bound, no network namespace); state goes to $XDG_RUNTIME_DIR/ocirt. Where the
user may not make cgroups (this host: nothing is delegated), the container runs without one of
its own, unless the config asks for limits, which fails with the field named. runc runs the same
bundle, as a check of the setup itself.

The venv's interpreter may sit where the user cannot reach it (a pyenv under /root), so ocirt
is run with the system's Python 3 and the venv's site-packages (same minor version).
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid

import pytest

UID = GID = 1000
SYSTEM_PYTHON = "/usr/bin/python3"
SITE = sysconfig.get_paths()["purelib"]


def _usable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (to become uid 1000)"
    if not shutil.which("setpriv"):
        return "no setpriv"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"no {SYSTEM_PYTHON}"
    v = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    if v != str(sys.version_info[:2]):
        return f"{SYSTEM_PYTHON} is {v}, the venv {sys.version_info[:2]}"
    try:
        with open("/proc/sys/kernel/unprivileged_userns_clone") as f:
            if f.read().strip() == "0":
                return "unprivileged user namespaces are disabled"
    except OSError:
        pass
    return None


pytestmark = pytest.mark.skipif(_usable() is not None, reason=str(_usable()))


@pytest.fixture
def home(busybox_rootfs):
    """A directory of uid 1000's: the bundle (rootfs copied in) and $XDG_RUNTIME_DIR."""
    d = tempfile.mkdtemp(prefix="ocirt-rootless-")
    os.chmod(d, 0o755)
    shutil.copytree(busybox_rootfs, os.path.join(d, "bundle", "rootfs"), symlinks=True)
    os.makedirs(os.path.join(d, "xdg"))
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), UID, GID)
    os.chown(d, UID, GID)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_user(home, argv, cgroup=None, **kw):
    """argv as uid 1000 (started in the cgroup directory `cgroup`, moved there while still root)."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": home,
        "XDG_RUNTIME_DIR": os.path.join(home, "xdg"),
        "PYTHONPATH": SITE,
    }
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.fchown(out.fileno(), UID, GID)
        os.fchown(err.fileno(), UID, GID)
        enter = ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh"] if cgroup else []
        p = subprocess.run(
            enter + ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups", "--"] + argv,
            cwd=os.path.join(home, "bundle"),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            timeout=60,
            **kw,
        )
        out.seek(0)
        err.seek(0)
        p.stdout, p.stderr = out.read().decode(), err.read().decode()
    return p


def ocirt(home, *args):
    return as_user(home, [SYSTEM_PYTHON, "-m", "ocirt", *args])


def make_config(home, args, **linux):
    p = ocirt(home, "spec", "--rootless")
    assert p.returncode == 0, p.stderr
    path = os.path.join(home, "bundle", "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config["linux"].update(linux)
    with open(path, "w") as f:
        json.dump(config, f)
    os.chown(path, UID, GID)
    return config


def host_cgroups(cid):
    return [os.path.join(r, d) for r, dirs, _ in os.walk("/sys/fs/cgroup") for d in dirs if d == cid]


def test_run_as_an_unprivileged_user(home):
    cid = f"rl-{uuid.uuid4().hex[:8]}"
    config = make_config(home, ["sh", "-c", "id -u; cat /proc/self/uid_map; hostname"])
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": UID, "size": 1}]
    p = ocirt(home, "run", cid)
    assert p.returncode == 0, p.stderr
    uid, uid_map, hostname = p.stdout.splitlines()
    assert uid == "0"
    assert uid_map.split() == ["0", str(UID), "1"]
    assert hostname == config["hostname"]
    assert p.stderr == ""
    assert os.listdir(os.path.join(home, "xdg", "ocirt")) == []  # the default --root
    assert host_cgroups(cid) == []


def test_lifecycle_as_an_unprivileged_user(home):
    cid = f"rl-{uuid.uuid4().hex[:8]}"
    make_config(home, ["sleep", "300"])
    try:
        assert ocirt(home, "create", cid).returncode == 0
        state = json.loads(ocirt(home, "state", cid).stdout)
        assert state["status"] == "created"
        with open(f"/proc/{state['pid']}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert uids == [str(UID)] * 4  # root inside is uid 1000 outside
        assert ocirt(home, "start", cid).returncode == 0
        assert json.loads(ocirt(home, "state", cid).stdout)["status"] == "running"
        ex = ocirt(home, "exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map")
        assert ex.returncode == 0, ex.stderr
        assert ex.stdout.split() == ["0", "0", str(UID), "1"]
        ps = ocirt(home, "ps", "--format", "json", cid)  # no cgroup: its pid namespace
        assert ps.returncode == 0 and json.loads(ps.stdout) == [state["pid"]], ps.stderr  # exec'd one gone
        pause = ocirt(home, "pause", cid)
        assert pause.returncode != 0 and "no cgroup" in pause.stderr
        assert ocirt(home, "kill", cid, "KILL").returncode == 0
        p = ocirt(home, "delete", "--force", cid)
        assert p.returncode == 0, p.stderr
        assert not os.path.exists(os.path.join(home, "xdg", "ocirt", cid))
    finally:
        ocirt(home, "delete", "--force", cid)


def test_limits_need_a_cgroup(home):
    cid = f"rl-{uuid.uuid4().hex[:8]}"
    make_config(home, ["true"], resources={"pids": {"limit": 10}})
    p = ocirt(home, "run", cid)
    if p.returncode == 0:
        pytest.skip("this user may make cgroups here (a delegated subtree)")
    assert "/linux/resources/pids" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert os.listdir(os.path.join(home, "xdg", "ocirt")) == []
    assert host_cgroups(cid) == []


def test_runc_runs_the_same_bundle(home):
    """The setup itself is sound: runc, rootless, runs what ocirt runs."""
    runc = shutil.which("runc")
    if not runc:
        pytest.skip("no runc")
    make_config(home, ["sh", "-c", "id -u"])
    p = as_user(home, [runc, "run", f"rl-{uuid.uuid4().hex[:8]}"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "0"


def test_root_is_not_rootless():
    """--rootless auto: root in the initial user namespace is not rootless."""
    from ocirt.cli import default_root, rootless_mode

    assert rootless_mode("auto") is False
    assert rootless_mode("true") is True
    assert default_root() == "/run/ocirt"


def _cgroup2_root():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2" and fields[4] == "/sys/fs/cgroup":
                return fields[4]
    return None


@pytest.fixture
def delegated():
    """A cgroup v2 subtree given to uid 1000, as systemd delegates one to a user session:
    <top> and its control files belong to the user; the user's commands start in <top>/leaf."""
    root = _cgroup2_root()
    if root is None:
        pytest.skip("not a cgroup v2 host (the v2 VM runs this)")
    top = os.path.join(root, f"ocirt-rl-{uuid.uuid4().hex[:8]}")
    os.mkdir(top)
    leaf = os.path.join(top, "leaf")
    os.mkdir(leaf)
    for path in (top, leaf):
        for name in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
            os.chown(os.path.join(path, name) if name else path, UID, GID)
    yield top
    for dirpath, _dirs, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
        try:
            with open(os.path.join(dirpath, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:
            pass
    for dirpath, _dirs, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
        for _ in range(100):
            try:
                os.rmdir(dirpath)
                break
            except OSError:
                time.sleep(0.02)


def test_limits_in_a_delegated_cgroup(home, delegated):
    """Where the user owns a cgroup v2 subtree, a rootless container gets its cgroup and its
    limits there (the runtime itself starts inside the subtree, as in a user session)."""
    cid = f"rl-{uuid.uuid4().hex[:8]}"
    name = os.path.basename(delegated)
    make_config(
        home,
        ["sh", "-c", "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max"],
        cgroupsPath=f"/{name}/{cid}",
        resources={"pids": {"limit": 17}, "memory": {"limit": 64 << 20}},
    )
    p = as_user(home, [SYSTEM_PYTHON, "-m", "ocirt", "run", cid], cgroup=os.path.join(delegated, "leaf"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["17", str(64 << 20)]
    assert not os.path.exists(os.path.join(delegated, cid))  # removed by run's delete
