"""Black-box driver for an OCI runtime CLI (runc-compatible command line).

Nothing here imports ocirt: the runtime under test is only ever run as a command
(``$OCI_RUNTIME``, default ``ocirt``).
"""

import copy
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time

DEFAULT_TIMEOUT = 30  # seconds for one runtime command

CGROUP_FS = "/sys/fs/cgroup"

# What `runc spec` (1.1.5) prints, with terminal false (tests capture stdio), shared with the
# benchmark: bundles/runc-spec.json.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bundles", "runc-spec.json")) as _f:
    DEFAULT_CONFIG = json.load(_f)

# A writable /tmp for tests whose process writes something (the shared rootfs is read-only).
TMP_MOUNT = {
    "destination": "/tmp",
    "type": "tmpfs",
    "source": "tmpfs",
    "options": ["nosuid", "nodev", "mode=1777", "size=16m"],
}


def default_config():
    return copy.deepcopy(DEFAULT_CONFIG)


def sh(script):
    """process.args running a shell script in the container."""
    return ["sh", "-c", script]


def cgroup_dirs(cgroups_path):
    """Every directory for cgroups_path that exists in any mounted hierarchy (v1 and v2)."""
    rel = cgroups_path.lstrip("/")
    found = []
    try:
        hierarchies = sorted(os.listdir(CGROUP_FS))
    except OSError:
        return found
    for h in hierarchies:
        d = os.path.join(CGROUP_FS, h, rel)
        if os.path.isdir(d):
            found.append(d)
    if os.path.exists(os.path.join(CGROUP_FS, "cgroup.controllers")):  # pure v2
        d = os.path.join(CGROUP_FS, rel)
        if os.path.isdir(d) and d not in found:
            found.append(d)
    return found


def container_pids(bundle):
    """The pids in the container's cgroup, in every hierarchy that has it."""
    pids = set()
    for d in cgroup_dirs(bundle.cgroups_path):
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return pids


def thaw_cgroup_tree(top):
    """Thaw every cgroup of a tree (v1 freezer.state, v2 cgroup.freeze): a frozen task does not
    die of SIGKILL."""
    for root, _dirs, _files in os.walk(top):
        for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
            f = os.path.join(root, name)
            if os.path.exists(f):
                try:
                    with open(f, "w") as out:
                        out.write(value)
                except OSError:
                    pass


def _kill_and_rmdir(top):
    """One pass over a cgroup tree, deepest first: SIGKILL what is in it, rmdir what is empty."""
    for root, _dirs, _files in os.walk(top, topdown=False):
        try:
            with open(os.path.join(root, "cgroup.procs")) as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        try:
            os.rmdir(root)
        except OSError:
            pass


def remove_cgroup_trees(tops, timeout=15):
    """Remove cgroup trees (e.g. one per hierarchy): thaw them all, kill what is left, rmdir
    deepest first, until all are gone. Returns those that could not be removed."""
    deadline = time.monotonic() + timeout
    pending = [t for t in tops if os.path.isdir(t)]
    while pending:
        for t in pending:
            thaw_cgroup_tree(t)
        for t in pending:
            _kill_and_rmdir(t)
        pending = [t for t in pending if os.path.isdir(t)]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return pending


def remove_cgroup_tree(path):
    """Kill what is in a cgroup directory tree and remove it, leaves first. Returns True if
    something could not be removed."""
    return bool(remove_cgroup_trees([path], timeout=5))


def output(proc):
    """(stdout, stderr) text of a finished ``Runtime.popen`` process (both are temp files)."""
    res = []
    for f in (proc.out_file, proc.err_file):
        f.seek(0)
        res.append(f.read().decode(errors="replace"))
        f.close()
    return tuple(res)


class Runtime:
    """Runs ``<runtime> --root ROOT <command> ...`` and returns subprocess.CompletedProcess.

    Every id passed to a container command is remembered, so the test fixture can
    ``delete --force`` all of them at teardown.
    """

    def __init__(self, command, root, global_args=()):
        self.argv0 = shlex.split(command) if isinstance(command, str) else list(command)
        self.command = command
        self.root = str(root)
        self.global_args = list(global_args)
        self.ids = []

    # ---- identity --------------------------------------------------------------
    @property
    def is_runc(self):
        return os.path.basename(self.argv0[0]) == "runc"

    @property
    def is_ocirt(self):
        return "ocirt" in os.path.basename(str(self.command))

    # ---- plumbing ----------------------------------------------------------------
    def argv(self, *args, root=True, global_args=()):
        head = list(self.argv0)
        if root:
            head += ["--root", self.root]
        return head + self.global_args + list(global_args) + [str(a) for a in args]

    def __call__(
        self,
        *args,
        input=None,
        stdin=subprocess.DEVNULL,
        timeout=DEFAULT_TIMEOUT,
        prelude=None,
        global_args=(),
        root=True,
        check=False,
    ):
        """Run one runtime command. ``prelude`` is shell code run (in a wrapper sh) just before
        exec'ing the runtime, e.g. to open extra fds or set oom_score_adj."""
        argv = self.argv(*args, root=root, global_args=global_args)
        if prelude:
            argv = ["sh", "-c", prelude + '\nexec "$@"', "sh"] + argv
        kw = {"stdin": stdin} if input is None else {"input": input.encode()}
        # stdout/stderr go to files, not pipes: a created container's init inherits the
        # runtime's stdio and would hold a pipe open (no EOF) until it exits.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            p = self.spawn(argv, stdout=out, stderr=err, timeout=timeout, **kw)
            out.seek(0)
            err.seek(0)
            p.stdout = out.read().decode(errors="replace")
            p.stderr = err.read().decode(errors="replace")
        if check:
            p.check_returncode()
        return p

    def spawn(self, argv, **kw):
        """subprocess.run of one runtime command line (a subclass may run it elsewhere)."""
        return subprocess.run(argv, **kw)

    def popen(self, *args, prelude=None, global_args=(), **kw):
        argv = self.argv(*args, global_args=global_args)
        if prelude:
            argv = ["sh", "-c", prelude + '\nexec "$@"', "sh"] + argv
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, **kw)
        proc.out_file, proc.err_file = out, err
        return proc

    def _remember(self, cid):
        if cid and "/" not in cid and cid not in self.ids:
            self.ids.append(cid)

    # ---- commands ------------------------------------------------------------------
    def create(self, cid, bundle, pid_file=None, extra=(), **kw):
        self._remember(cid)
        args = ["create", "--bundle", str(bundle)]
        if pid_file is not None:
            args += ["--pid-file", str(pid_file)]
        return self(*args, *extra, cid, **kw)

    def start(self, cid, **kw):
        return self("start", cid, **kw)

    def state(self, cid, **kw):
        return self("state", cid, **kw)

    def kill(self, cid, signal=None, all=False, **kw):
        args = ["kill"] + (["--all"] if all else []) + [cid]
        if signal is not None:
            args.append(str(signal))
        return self(*args, **kw)

    def delete(self, cid, force=False, **kw):
        return self(*(["delete"] + (["--force"] if force else []) + [cid]), **kw)

    def run(self, cid, bundle, extra=(), **kw):
        self._remember(cid)
        return self("run", "--bundle", str(bundle), *extra, cid, **kw)

    def list(self, fmt=None, quiet=False, **kw):
        args = ["list"]
        if fmt:
            args += ["--format", fmt]
        if quiet:
            args.append("--quiet")
        return self(*args, **kw)

    # ---- helpers ---------------------------------------------------------------------
    def state_json(self, cid):
        p = self.state(cid)
        assert p.returncode == 0, f"state {cid} failed: rc={p.returncode} stderr={p.stderr!r}"
        return json.loads(p.stdout)

    def status(self, cid):
        p = self.state(cid)
        if p.returncode != 0:
            return None
        return json.loads(p.stdout).get("status")

    def wait_status(self, cid, want, timeout=10):
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.status(cid)
            if st == want:
                return st
            time.sleep(0.02)
        raise AssertionError(f"container {cid}: status {st!r}, wanted {want!r} within {timeout}s")

    def cleanup(self):
        """delete --force every id this object touched. Returns the failures (id, stderr)."""
        failures = []
        for cid in self.ids:
            try:
                p = self.delete(cid, force=True)
            except subprocess.TimeoutExpired:
                failures.append((cid, "timed out"))
                continue
            if p.returncode != 0:
                failures.append((cid, p.stderr.strip()))
        return failures


# ---- assertions shared by the test modules ---------------------------------------------------------


def ok(p):
    """stdout of a command that must have succeeded."""
    assert p.returncode == 0, f"rc={p.returncode} stdout={p.stdout!r} stderr={p.stderr!r}"
    return p.stdout


def one_line(stderr):
    """The single non-empty line of an error output (runtimes print one line per error)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected a one-line error on stderr, got {stderr!r}"
    return lines[0]


def assert_failed_cleanly(rt, bundle, p, pointer=None):
    """create/run failed with a one-line error that (ocirt only) names ``pointer`` (a JSON pointer
    or a tuple of acceptable ones), and left no container, state or cgroup behind."""
    assert p.returncode != 0, f"the command succeeded; stdout={p.stdout!r}"
    line = one_line(p.stderr)
    if pointer and rt.is_ocirt:
        pointers = pointer if isinstance(pointer, tuple) else (pointer,)
        assert any(ptr in line for ptr in pointers), f"error does not name {pointer}: {line!r}"
    assert rt.state(bundle.id).returncode != 0, "a failed create left a container"
    assert os.listdir(rt.root) == [], f"a failed create left state in --root: {os.listdir(rt.root)}"
    if bundle.cgroups_path:
        assert cgroup_dirs(bundle.cgroups_path) == [], "a failed create left its cgroup"


def wait_for(pred, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" not in f.read()
    except OSError:
        return False


def which_runtime(command):
    argv = shlex.split(command)
    return shutil.which(argv[0]) if argv else None


# ---- cgroup layout of the host, seen from outside the container ----------------------------------


class CgroupLayout:
    """The host's cgroup layout, read from /proc/self/mountinfo (mounts under /sys/fs/cgroup).

    kind     'v2' (cgroup2 on /sys/fs/cgroup), 'hybrid' (v1 hierarchies plus a cgroup2 mount) or 'v1'
    v1       v1 controller (or 'name=...') -> its mount point
    unified  mount point of the cgroup2 hierarchy, or None
    """

    def __init__(self, mountinfo="/proc/self/mountinfo"):
        self.v1 = {}
        self.unified = None
        with open(mountinfo) as f:
            for line in f:
                left, _, right = line.partition(" - ")
                mountpoint = left.split()[4]
                fstype, _source, superopts = (right.split() + ["", "", ""])[:3]
                if not mountpoint.startswith(CGROUP_FS):
                    continue
                if fstype == "cgroup2":
                    self.unified = mountpoint
                elif fstype == "cgroup":
                    for opt in superopts.split(","):
                        if opt in _v1_subsystems() or opt.startswith("name="):
                            self.v1[opt] = mountpoint
        if self.unified == CGROUP_FS:
            self.kind = "v2"
        elif self.v1:
            self.kind = "hybrid" if self.unified else "v1"
        else:
            self.kind = "v2" if self.unified else "none"

    @property
    def is_v2(self):
        return self.kind == "v2"

    def v2_controllers(self):
        """Controllers of the root of the cgroup2 hierarchy (what a cgroup below may enable)."""
        if not self.unified:
            return set()
        try:
            with open(os.path.join(self.unified, "cgroup.controllers")) as f:
                return set(f.read().split())
        except OSError:
            return set()

    def has(self, controller):
        """The controller is usable with the layout's resource files (v1 mount, or pure v2)."""
        if self.is_v2:
            return controller in self.v2_controllers()
        return controller in self.v1

    def host_dir(self, pid, controller=""):
        """The cgroup directory of process pid for controller (v2 or '': the cgroup2 one)."""
        with open(f"/proc/{pid}/cgroup") as f:
            lines = [ln.rstrip("\n").split(":", 2) for ln in f if ln.strip()]
        for hid, ctrls, path in lines:
            if (self.is_v2 or not controller) and hid == "0" and ctrls == "":
                return self.unified.rstrip("/") + path
            if controller and controller in ctrls.split(","):
                return self.v1[controller].rstrip("/") + path
        raise AssertionError(f"process {pid} has no cgroup for {controller!r}: {lines}")

    def inside_dir(self, controller=""):
        """Where the container sees its own cgroup for controller, when it has a cgroup namespace
        and a `cgroup` mount at /sys/fs/cgroup: the root on v2, the hierarchy's directory (named
        as on the host) on v1."""
        if self.is_v2 or not controller:
            return CGROUP_FS if self.is_v2 else os.path.join(CGROUP_FS, os.path.basename(self.unified))
        return os.path.join(CGROUP_FS, os.path.basename(self.v1[controller]))


def _v1_subsystems():
    names = set()
    with open("/proc/cgroups") as f:
        for line in f:
            if not line.startswith("#") and line.split():
                names.add(line.split()[0])
    return names


def read_text(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        if default is None:
            raise
        return default
