"""Fixtures of the black-box conformance suite.

    rt                  Runtime for $OCI_RUNTIME with a private --root (tmp); every id it touched
                        is `delete --force`d at teardown, then the test errors if anything was left:
                        a state entry in --root, a cgroup directory, a mount under the test's tmp dir.
    make_bundle(...)    a bundle dir with config.json written from a dict (see Bundle below)
    new_id()            a unique container id (xdist worker id + counter + random)
    rootfs              the shared busybox rootfs (session; read-only: never write to it)

Marker: @pytest.mark.runc_deviates("reason") -> xfail(strict) when the runtime is runc.
"""

import copy
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest
from runtime import (
    TMP_MOUNT,
    Runtime,
    cgroup_dirs,
    default_config,
    remove_cgroup_tree,
    which_runtime,
)

HERE = os.path.dirname(os.path.abspath(__file__))
MKROOTFS = os.path.join(HERE, "..", "bundles", "mkrootfs.sh")
CGROUP_PARENT = "/ocirt-conformance"
_counter = itertools.count()


def runtime_command():
    """$OCI_RUNTIME, else `ocirt` from PATH, else the one installed beside this Python (a venv)."""
    if os.environ.get("OCI_RUNTIME"):
        return os.environ["OCI_RUNTIME"]
    beside = os.path.join(os.path.dirname(sys.executable), "ocirt")
    if not shutil.which("ocirt") and os.access(beside, os.X_OK):
        return beside
    return "ocirt"


def _is_runc(command):
    return os.path.basename(command.split()[0]) == "runc"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "runc_deviates(reason, strict=True): runc 1.1.5 does not do what the spec/ocirt does: "
        "xfail on runc (strict unless strict=False, for races runc loses only sometimes)",
    )
    if not which_runtime(runtime_command()):
        raise pytest.UsageError(f"OCI_RUNTIME={runtime_command()!r}: no such command")
    if os.geteuid() != 0:
        raise pytest.UsageError("the conformance suite needs root")


def pytest_report_header(config):
    return f"OCI_RUNTIME={runtime_command()} ({which_runtime(runtime_command())})"


def pytest_collection_modifyitems(config, items):
    if not _is_runc(runtime_command()):
        return
    for item in items:
        # a strict mark first: pytest takes the first xfail, and a deviation runc always shows
        # (a parameter's: no time namespace) says more than a race it loses now and then
        marks = sorted(item.iter_markers("runc_deviates"), key=lambda m: not m.kwargs.get("strict", True))
        for mark in marks:
            reason = mark.args[0] if mark.args else mark.kwargs.get("reason", "runc deviates")
            strict = mark.kwargs.get("strict", True)  # False: runc fails only sometimes (races)
            item.add_marker(pytest.mark.xfail(reason=f"runc deviates: {reason}", strict=strict))


def worker_id():
    return os.environ.get("PYTEST_XDIST_WORKER", "gw")


@pytest.fixture
def new_id():
    def make(prefix="ocirt-ct"):
        return f"{prefix}-{worker_id()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"

    return make


# ---- the shared rootfs ------------------------------------------------------------------------


def _snapshot(path):
    snap = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            snap[os.path.relpath(p, path)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
    return snap


@pytest.fixture(scope="session")
def rootfs():
    # Not under pytest's tmp dir: that is 0700, and a user-namespaced container (host uid 100000)
    # must be able to reach its rootfs.
    base = tempfile.mkdtemp(prefix="ocirt-conformance-")
    os.chmod(base, 0o755)
    dest = os.path.join(base, "rootfs")
    subprocess.run(["sh", MKROOTFS, dest], check=True)
    before = _snapshot(dest)
    yield dest
    after = _snapshot(dest)
    shutil.rmtree(base, ignore_errors=True)
    for d in cgroup_dirs(CGROUP_PARENT):
        try:
            os.rmdir(d)  # fails while another xdist worker still has a container: it removes it later
        except OSError:
            pass
    if before != after:
        changed = sorted(set(before.items()) ^ set(after.items()))[:10]
        pytest.fail(f"the shared rootfs was modified by a test/runtime: {changed}")


# ---- bundles ----------------------------------------------------------------------------------


def _merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)


class Bundle:
    """A bundle directory. ``config`` is the dict behind config.json; call ``save()`` after
    changing it. ``id`` is a fresh container id for this bundle (cgroupsPath uses it)."""

    def __init__(self, path, config, cid, cgroups_path, rootfs):
        self.path = str(path)
        self.config = config
        self.id = cid
        self.cgroups_path = cgroups_path
        self.rootfs = rootfs
        self.save()

    def save(self):
        with open(os.path.join(self.path, "config.json"), "w") as f:
            json.dump(self.config, f, indent=1)

    def __str__(self):
        return self.path

    def __fspath__(self):
        return self.path


class Environment:
    """Everything one test made, for checking and cleaning at teardown."""

    def __init__(self, tmp_path):
        self.tmp_path = str(tmp_path)
        self.runtimes = []
        self.bundles = []
        self.cgroup_paths = []


def stray_processes(marker):
    """Processes (other than this one) whose command line mentions marker, e.g. a runtime
    command this test started (they all get paths under the test's tmp dir) that is still around."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append((int(name), cmdline))
    return found


@pytest.fixture
def env(tmp_path):
    e = Environment(tmp_path)
    yield e
    problems = []
    for r in e.runtimes:
        for cid, err in r.cleanup():
            problems.append(f"delete --force {cid} failed: {err}")
        if os.path.isdir(r.root):
            left = [n for n in os.listdir(r.root) if any(n.startswith(c) for c in r.ids)]
            if left:
                problems.append(f"state left in --root {r.root}: {left}")
    for pid, cmdline in stray_processes(e.tmp_path):
        problems.append(f"runtime process left running: {pid} {cmdline[:200]}")
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    for cg in e.cgroup_paths:
        for d in cgroup_dirs(cg):
            problems.append(f"cgroup left behind: {d}")
            remove_cgroup_tree(d)
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if mp.startswith(e.tmp_path):
                mounts.append(mp)
    for mp in sorted(mounts, key=len, reverse=True):
        problems.append(f"mount left behind: {mp}")
        subprocess.run(["umount", "-l", mp], capture_output=True)
    if problems:
        pytest.fail("teardown: " + "; ".join(problems))


@pytest.fixture
def make_runtime(env, tmp_path):
    def make(root=None, command=None, global_args=()):
        root = root or tempfile.mkdtemp(prefix="root-", dir=str(tmp_path))
        r = Runtime(command or runtime_command(), root, global_args=global_args)
        env.runtimes.append(r)
        return r

    return make


@pytest.fixture
def rt(make_runtime):
    return make_runtime()


@pytest.fixture
def make_bundle(env, tmp_path, rootfs, new_id):
    """make_bundle(args=None, *, rootfs_copy=False, tmp=True, cgroups=True, mutate=None, **overrides)

    args:         process.args
    rootfs_copy:  give the bundle its own writable copy of the rootfs (root.path -> the copy,
                  at bundle.rootfs) for tests that change the rootfs or need new mount points
    tmp:          add a writable tmpfs at /tmp (the shared rootfs is read-only)
    cgroups:      set linux.cgroupsPath to /ocirt-conformance/<id> (checked for removal at teardown)
    overrides:    deep-merged into the config (dicts merge, anything else replaces)
    mutate:       f(config) for edits a merge cannot express (deleting keys, editing lists)
    """

    def make(args=None, *, rootfs_copy=False, tmp=True, cgroups=True, mutate=None, cid=None, **overrides):
        cid = cid or new_id()
        path = tempfile.mkdtemp(prefix="bundle-", dir=str(tmp_path))
        root = rootfs
        if rootfs_copy:
            root = os.path.join(path, "rootfs")
            subprocess.run(["cp", "-a", rootfs, root], check=True)
        cfg = default_config()
        cfg["root"]["path"] = root
        if args is not None:
            cfg["process"]["args"] = list(args)
        if tmp:
            cfg["mounts"].append(copy.deepcopy(TMP_MOUNT))
        cgroups_path = None
        if cgroups:
            cgroups_path = f"{CGROUP_PARENT}/{cid}"
            cfg["linux"]["cgroupsPath"] = cgroups_path
            env.cgroup_paths.append(cgroups_path)
        _merge(cfg, overrides)
        if mutate:
            mutate(cfg)
        b = Bundle(path, cfg, cid, cgroups_path, root)
        env.bundles.append(b)
        return b

    return make


@pytest.fixture
def started(rt, make_bundle):
    """started(args=["sleep", "1000"], **make_bundle_kw) -> the bundle of a created and started
    container (for `exec`, reading its init, ...)."""

    def start(args=("sleep", "1000"), **kw):
        b = make_bundle(list(args), **kw)
        p = rt.create(b.id, b)
        assert p.returncode == 0, p.stderr
        p = rt.start(b.id)
        assert p.returncode == 0, p.stderr
        return b

    return start


@pytest.fixture
def run_in(rt, make_bundle):
    """run_in(args, **make_bundle_kw) -> CompletedProcess of `run` (foreground) in a new bundle."""

    def run(args, *, extra=(), run_kw=None, **kw):
        b = make_bundle(args, **kw)
        return rt.run(b.id, b, extra=extra, **(run_kw or {}))

    return run


@pytest.fixture
def out(tmp_path):
    """A directory every user may write (a hook or a container's non-root process writes there)."""
    d = tmp_path / "out"
    d.mkdir()
    os.chmod(d, 0o777)
    return d


@pytest.fixture
def host_process():
    """Start helper processes on the host (e.g. namespace holders); killed by pid at teardown."""
    procs = []

    def start(argv, **kw):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
