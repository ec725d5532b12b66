#!/usr/bin/env python3
"""Benchmark ocirt against runc on the same bundles.

    python3 benchmarks/bench.py [--runtime-a PATH] [--runtime-b /usr/sbin/runc] [--rounds N]
                                [--quick] [--json FILE]

Both runtimes are driven only through their command lines (runc-compatible: create / start / state /
kill / delete / run, global --root). Every sample of A is followed by the same sample of B
(A B A B ...), so slow drift of the machine (CPU frequency, page cache, other load) hits both.
See docs/PERFORMANCE.md for what each metric means.

Each timed command is started with os.posix_spawn and reaped with os.waitpid, timed with
time.perf_counter around the pair (the harness's own cost, spawning /bin/true the same way, is
measured and printed first). The harness makes itself a child subreaper, so the init of a
created container (orphaned when the runtime's `create` exits) is re-parented to the harness, which
waits for it to know exactly when the container has stopped.

Peak RSS is measured in a separate pass, through a small `time -f %M` (GNU time, else busybox's):
the ru_maxrss that wait4 reports for a child spawned from this Python process never goes below
the harness's own peak RSS, because execve() folds the high-water RSS of the old address space
(here the harness's, shared by the vfork-style child) into the new program's maxrss.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

try:
    import click
except ImportError:  # The system python3 may lack click: re-run under the project's venv.
    _venv_py = os.path.join(REPO, ".venv", "bin", "python")
    if os.path.exists(_venv_py) and "OCIRT_BENCH_REEXEC" not in os.environ:
        os.environ["OCIRT_BENCH_REEXEC"] = os.path.basename(sys.executable)
        os.execv(_venv_py, [_venv_py, os.path.abspath(__file__)] + sys.argv[1:])
    sys.exit("bench.py: needs click (pip install click, or run scripts/setup.sh to create .venv)")

import ctypes
import errno
import gc
import json
import platform
import secrets
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

CGROUP_FS = "/sys/fs/cgroup"
CGROUP_PARENT = "ocirt-bench"
DEFAULT_RUNC = "/usr/sbin/runc"
WAIT_TIMEOUT = 30.0  # seconds a container may take to exit after `start` / `kill`

# `runc spec` (runc 1.1.5) with terminal false; args, root.path and cgroupsPath are filled in.
# `runc spec` (1.1.5) with terminal false, as the conformance suite uses it; args /bin/true.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bundles", "runc-spec.json")) as _f:
    BASE_CONFIG = json.load(_f)
BASE_CONFIG["process"]["args"] = ["/bin/true"]


class BenchError(Exception):
    pass


class Interrupted(BaseException):
    """SIGTERM / SIGHUP, handled like Ctrl-C."""


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def set_child_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(e))


class Result:
    __slots__ = ("argv", "rc", "secs", "stderr", "maxrss_kib")

    def __init__(self, argv, rc, secs, stderr):
        self.argv, self.rc, self.secs, self.stderr = argv, rc, secs, stderr
        self.maxrss_kib = None  # set by RssMeter


class Spawner:
    """Runs commands with posix_spawn + waitpid: stdin and stdout /dev/null, stderr appended to a log
    file (never a pipe: a detached container inherits the runtime's stdio and would hold it open).
    One Spawner per process (the parallel workers make their own)."""

    def __init__(self, errlog):
        self.devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.err = os.open(errlog, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.env = dict(os.environ)
        self.current = None  # pid of the command being waited for (killed on interrupt)

    def run(self, argv):
        off = os.lseek(self.err, 0, os.SEEK_END)
        actions = [
            (os.POSIX_SPAWN_DUP2, self.devnull, 0),
            (os.POSIX_SPAWN_DUP2, self.devnull, 1),
            (os.POSIX_SPAWN_DUP2, self.err, 2),
        ]
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, self.env, file_actions=actions)
        self.current = pid
        _, status = os.waitpid(pid, 0)
        t1 = time.perf_counter()
        self.current = None
        rc = os.waitstatus_to_exitcode(status)
        stderr = ""
        if rc != 0:
            end = os.lseek(self.err, 0, os.SEEK_END)
            stderr = os.pread(self.err, min(end - off, 4000), off).decode(errors="replace").strip()
        return Result(argv, rc, t1 - t0, stderr)

    def kill_current(self):
        pid, self.current = self.current, None
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass

    def close(self):
        os.close(self.devnull)
        os.close(self.err)


def wait_exit(pid, timeout=WAIT_TIMEOUT):
    """Wait until process `pid` has exited; reap it if it is our child. Returns its exit code, or
    None when it was not our child (the status is then unknown)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        fd = None  # already gone (and reaped by someone else) or a zombie on an old kernel
    if fd is not None:
        try:
            if not select.select([fd], [], [], timeout)[0]:
                raise BenchError(f"pid {pid} still running {timeout:.0f} s after start/kill")
        finally:
            os.close(fd)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status)


def reap_children():
    """Reap every exited child (orphans re-parented to us, the subreaper). Never blocks."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def children_of(ppid):
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == ppid:
            kids.append(int(name))
    return kids


def proc_status(pid):
    """(VmRSS, RssAnon in KiB, cmdline) of a live process. RssAnon is the part of its memory
    that no other process shares (file pages, the binary's text, are the page cache's)."""
    kib = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "RssAnon:")):
                kib[line.split(":")[0]] = int(line.split()[1])
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    return kib.get("VmRSS"), kib.get("RssAnon"), cmdline


def waits_in_open(pid):
    """Whether `pid` waits in an open of a fifo for a reader. Where /proc does not name the
    wait, never: the caller reads the process after its last try."""
    with open(f"/proc/{pid}/wchan") as f:
        return f.read().strip() == "wait_for_partner"


# ---------------------------------------------------------------------------------------------
# Runtimes and bundles
# ---------------------------------------------------------------------------------------------


class Bench:
    """Temp dir, rootfs and bundles; the session prefix of every container id."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="ocirt-bench-")
        self.session = "b" + secrets.token_hex(3)
        self.rootfs = os.path.join(self.tmp, "rootfs")
        self.bundles = os.path.join(self.tmp, "bundles")
        os.mkdir(self.bundles)
        self.counter = 0

    def build_rootfs(self):
        script = os.path.join(REPO, "bundles", "mkrootfs.sh")
        p = subprocess.run(["sh", script, self.rootfs], capture_output=True, text=True)
        if p.returncode != 0:
            raise BenchError(f"mkrootfs.sh failed: {p.stderr.strip()}")

    def new_id(self, label, kind):
        self.counter += 1
        return f"{self.session}-{label}-{kind}{self.counter}"

    def bundle(self, cid, args=("/bin/true",)):
        """A bundle directory for container `cid` (config.json only; root.path is the shared
        rootfs, by absolute path). The cgroupsPath is unique per container."""
        d = os.path.join(self.bundles, cid)
        os.mkdir(d)
        write_config(d, self.rootfs, cid, args)
        return d


def write_config(bundle, rootfs, cid, args=("/bin/true",)):
    cfg = json.loads(json.dumps(BASE_CONFIG))
    cfg["process"]["args"] = list(args)
    cfg["root"]["path"] = rootfs
    cfg["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{cid}"
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f, indent="\t")


class Runtime:
    def __init__(self, label, path, root, spawner):
        self.label = label  # "a" / "b"
        self.path = path
        self.root = root
        self.sp = spawner
        self.live = set()  # ids that may still exist in this runtime's --root
        os.makedirs(root, exist_ok=True)

    @property
    def name(self):
        return os.path.basename(self.path)

    def run(self, *args, rss=None):
        argv = [self.path, "--root", self.root, *args]
        if rss is not None:
            return rss.run(self.sp, argv)
        return self.sp.run(argv)

    def check(self, *args, rss=None):
        r = self.run(*args, rss=rss)
        if r.rc != 0:
            raise BenchError(f"{self.name} {' '.join(args)} -> exit {r.rc}: {r.stderr or '(no stderr)'}")
        return r

    def version(self):
        try:
            p = subprocess.run([self.path, "--version"], capture_output=True, text=True, timeout=30)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired) as e:
            return f"? ({e})"


class RssMeter:
    """Peak RSS (ru_maxrss) of a command, measured by a small `time` program that forks it and
    reaps it with wait4. Its floor (the result for /bin/true) is reported with the results."""

    def __init__(self, out_file):
        self.out = out_file
        gnu = shutil.which("time") or ("/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None)
        if gnu:
            p = subprocess.run([gnu, "--version"], capture_output=True, text=True)
            gnu = gnu if "GNU" in p.stdout + p.stderr else None
        if gnu:
            self.prefix = [gnu, "-f", "%M", "-o", out_file]
            self.tool = "GNU time"
        else:
            bb = shutil.which("busybox")
            if not bb:
                raise BenchError("need GNU time or busybox to measure peak RSS")
            self.prefix = [bb, "time", "-f", "%M", "-o", out_file]
            self.tool = "busybox time"
        self.floor = None

    def run(self, spawner, argv):
        """Result of spawner.run() with .maxrss_kib added."""
        with open(self.out, "w"):
            pass
        r = spawner.run(self.prefix + argv)
        r.argv = argv
        with open(self.out) as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        try:
            r.maxrss_kib = int(lines[-1])
        except (IndexError, ValueError):
            raise BenchError(f"{self.tool}: no RSS for {shlex.join(argv)}: {lines!r}") from None
        return r

    def measure_floor(self, spawner):
        true = shutil.which("true") or "/bin/true"
        self.floor = min(self.run(spawner, [true]).maxrss_kib for _ in range(3))
        return self.floor


def launcher_python(path):
    """The interpreter a runtime's command starts, as [python, flags...], or None (not Python).

    ocirt's launcher (bin/ocirt) is a shell line that execs the python3 beside it (else a source
    tree's .venv/bin/python3, else python3 on PATH) with -I -S; where the #! line names the
    interpreter (scripts/direct-launcher.sh's `#!VENV/bin/python3 -IS`, or an older install),
    that interpreter with the line's flags."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    first = head.split(b"\n", 1)[0][2:].decode(errors="replace").split()
    if first and os.path.basename(first[0]) == "env":
        first = first[1:]
    if first and "python" in os.path.basename(first[0]):
        return [shutil.which(first[0]) or first[0], *first[1:]]
    if b"-I -S" not in head:
        return None
    d = os.path.dirname(path)
    for py in (os.path.join(d, "python3"), os.path.join(d, "..", ".venv", "bin", "python3")):
        if os.access(py, os.X_OK):
            return [os.path.normpath(py), "-I", "-S"]
    py = shutil.which("python3")
    return [py, "-I", "-S"] if py else None


def read_pid_file(path):
    with open(path) as f:
        return int(f.read().strip())


# ---------------------------------------------------------------------------------------------
# One sample of each metric
# ---------------------------------------------------------------------------------------------


def sample_run(bench, rt):
    cid = bench.new_id(rt.label, "run")
    bundle = bench.bundle(cid)
    rt.live.add(cid)
    r = rt.check("run", "--bundle", bundle, cid)
    rt.live.discard(cid)  # `run` deletes the container when its process exits
    return {"t": r.secs}


def lifecycle(rt, cid, bundle):
    """create, start, wait until the init has exited, delete. Returns the timings (seconds)."""
    pid_file = os.path.join(bundle, "pid")
    rt.live.add(cid)
    t0 = time.perf_counter()
    c = rt.check("create", "--bundle", bundle, "--pid-file", pid_file, cid)
    pid = read_pid_file(pid_file)
    s = rt.check("start", cid)
    w0 = time.perf_counter()
    code = wait_exit(pid)
    w1 = time.perf_counter()
    if code not in (0, None):
        raise BenchError(f"{rt.name}: container {cid} exited with {code}")
    d = rt.check("delete", cid)
    t1 = time.perf_counter()
    rt.live.discard(cid)
    return {"t": t1 - t0, "create": c.secs, "start": s.secs, "wait": w1 - w0, "delete": d.secs}


def sample_lifecycle(bench, rt):
    cid = bench.new_id(rt.label, "lc")
    return lifecycle(rt, cid, bench.bundle(cid))


def sample_rss(bench, rt, rss):
    """Peak RSS of run, create, state (of the created container), start, exec, kill and delete
    (of a `sleep` container), each through the `time` wrapper; VmRSS and cmdline of the init
    waiting between create and start."""
    out = {}
    cid = bench.new_id(rt.label, "rssrun")
    bundle = bench.bundle(cid)
    rt.live.add(cid)
    out["run"] = rt.check("run", "--bundle", bundle, cid, rss=rss).maxrss_kib
    rt.live.discard(cid)
    cid = bench.new_id(rt.label, "rss")
    bundle = bench.bundle(cid, args=("/bin/sleep", "1000000"))
    pid_file = os.path.join(bundle, "pid")
    rt.live.add(cid)
    out["create"] = rt.check("create", "--bundle", bundle, "--pid-file", pid_file, cid, rss=rss).maxrss_kib
    pid = read_pid_file(pid_file)
    try:
        # create returns once its init is set up, a moment before the init opens exec.fifo
        # (ocirt's, where it becomes its waiting program, before that execve, in the middle of
        # which it has no cmdline): read it once it waits there (the kernel's wait_for_partner),
        # or after a second
        for _ in range(1000):
            out["init_rss"], out["init_anon"], cmdline = proc_status(pid)
            if cmdline and waits_in_open(pid):
                break
            time.sleep(0.001)
    except OSError as e:
        raise BenchError(f"{rt.name} create: init pid {pid} from --pid-file: {e}") from None
    out["init_cmdline"] = cmdline.replace(bench.tmp, "$TMP").replace(cid, "$ID")
    out["state"] = rt.check("state", cid, rss=rss).maxrss_kib
    out["start"] = rt.check("start", cid, rss=rss).maxrss_kib
    out["exec"] = rt.check("exec", cid, "/bin/true", rss=rss).maxrss_kib
    out["kill"] = rt.check("kill", cid, "KILL", rss=rss).maxrss_kib
    wait_exit(pid)
    out["delete"] = rt.check("delete", cid, rss=rss).maxrss_kib
    rt.live.discard(cid)
    return out


def sample_short(bench, rt, floor_argv):
    """The floor (a bare start of the launcher's interpreter, and the harness spawning
    /bin/true), then the short commands on one `sleep` container: start, state, kill, delete
    (create is untimed here: the lifecycle rows time it)."""
    out = {}
    if floor_argv:
        out["floor_py"] = rt.sp.run(floor_argv).secs
    out["floor_true"] = rt.sp.run([shutil.which("true") or "/bin/true"]).secs
    cid = bench.new_id(rt.label, "short")
    bundle = bench.bundle(cid, args=("/bin/sleep", "1000000"))
    pid_file = os.path.join(bundle, "pid")
    rt.live.add(cid)
    rt.check("create", "--bundle", bundle, "--pid-file", pid_file, cid)
    pid = read_pid_file(pid_file)
    out["start"] = rt.check("start", cid).secs
    out["state"] = rt.check("state", cid).secs
    out["kill"] = rt.check("kill", cid, "KILL").secs
    wait_exit(pid)
    out["delete"] = rt.check("delete", cid).secs
    rt.live.discard(cid)
    return out


def sample_batch(bench, rt, n):
    items = [(cid, bench.bundle(cid)) for cid in (bench.new_id(rt.label, "seq") for _ in range(n))]
    t0 = time.perf_counter()
    for cid, bundle in items:
        lifecycle(rt, cid, bundle)
    return {"t": time.perf_counter() - t0}


def sample_parallel(bench, rt, n, workers=2):
    """n lifecycles split over `workers` forked workers; wall time from the go signal until the
    last worker has finished its last delete."""
    items = [(cid, bench.bundle(cid)) for cid in (bench.new_id(rt.label, "par") for _ in range(n))]
    shares = [items[i::workers] for i in range(workers)]
    for cid, _ in items:
        rt.live.add(cid)
    go_r, go_w = os.pipe()
    procs = []  # (pid, result read fd)
    reaped = False
    try:
        for w, share in enumerate(shares):
            res_r, res_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # ---- worker ----
                status = 0
                try:
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    signal.signal(signal.SIGHUP, signal.SIG_DFL)
                    os.close(go_w)
                    set_child_subreaper()
                    sp = Spawner(os.path.join(bench.tmp, f"stderr-{rt.label}-w{w}.log"))
                    wrt = Runtime(rt.label, rt.path, rt.root, sp)
                    msg = {"done": [], "error": None}
                    if not os.read(go_r, 1):
                        raise BenchError("harness went away before the go signal")
                    try:
                        for cid, bundle in share:
                            lifecycle(wrt, cid, bundle)
                            msg["done"].append(cid)
                    except BenchError as e:
                        msg["error"] = str(e)
                    msg["t_end"] = time.perf_counter()
                    reap_children()
                    os.write(res_w, json.dumps(msg).encode())
                except BaseException as e:  # never let the worker run the parent's code
                    status = 1
                    try:
                        os.write(res_w, json.dumps({"done": [], "error": repr(e)}).encode())
                    except BaseException:
                        pass
                finally:
                    os._exit(status)
            os.close(res_w)
            procs.append((pid, res_r))
        os.close(go_r)
        go_r = None
        t0 = time.perf_counter()
        os.write(go_w, b"g" * workers)
        msgs = []
        for _pid, res_r in procs:
            chunks = []
            while True:
                b = os.read(res_r, 65536)
                if not b:
                    break
                chunks.append(b)
            msgs.append(json.loads(b"".join(chunks) or b'{"done": [], "error": "worker died"}'))
        for pid, _ in procs:
            os.waitpid(pid, 0)
        reaped = True
    finally:
        if go_r is not None:
            os.close(go_r)
        os.close(go_w)
        for pid, res_r in procs:
            os.close(res_r)
            if not reaped:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except OSError:
                    pass
    for m in msgs:
        rt.live.difference_update(m["done"])
    errors = [m["error"] for m in msgs if m.get("error")]
    if errors:
        raise BenchError("; ".join(errors))
    return {"t": max(m["t_end"] for m in msgs) - t0}


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

MAX_CONSECUTIVE_FAILURES = 3


class Metric:
    """Samples of one metric. A failed sample is recorded (errors) and left out; a runtime that
    fails MAX_CONSECUTIVE_FAILURES samples in a row is given up on for this metric (dropped)."""

    def __init__(self, key, runtimes):
        self.key = key
        self.samples = {rt.label: [] for rt in runtimes}
        self.errors = {rt.label: [] for rt in runtimes}
        self.dropped = {}  # label -> why
        self._in_a_row = {rt.label: 0 for rt in runtimes}

    def ok(self, rt, sample, keep):
        self._in_a_row[rt.label] = 0
        if keep:
            self.samples[rt.label].append(sample)

    def fail(self, rt, msg, log):
        self.errors[rt.label].append(msg)
        self._in_a_row[rt.label] += 1
        log(f"  {self.key}: {rt.name} ({rt.label.upper()}) failed: {msg}")
        if self._in_a_row[rt.label] >= MAX_CONSECUTIVE_FAILURES:
            self.drop(rt, f"{MAX_CONSECUTIVE_FAILURES} failures in a row", log)

    def drop(self, rt, why, log):
        self.dropped[rt.label] = why
        log(f"  {self.key}: giving up on {rt.name} ({rt.label.upper()}): {why}")

    def active(self, rt):
        return rt.label not in self.dropped


def purge(rt):
    """After a failed sample: delete --force whatever it left in the runtime's --root."""
    for cid in sorted(rt.live):
        if os.path.exists(os.path.join(rt.root, cid)):
            rt.run("delete", "--force", cid)
        if not os.path.exists(os.path.join(rt.root, cid)):
            rt.live.discard(cid)
    reap_children()


def warm_attach():
    """Move this process into the cgroup it is in already (one write of cgroup.procs, in the
    pids hierarchy on cgroup v1, else the unified one). On cgroup v1 the kernel makes the first
    such write of a while wait for an RCU grace period, and spares the writes that follow it
    for a while (cgroup_threadgroup_rwsem's rcu_sync): the harness pays the wait, untimed, and
    the command sampled next meets the kernel as one that comes right after another command's
    cgroup writes. Does nothing where it cannot write."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return
    paths = {parts[1]: parts[2] for parts in lines if len(parts) == 3}
    for names, top in (("pids", os.path.join(CGROUP_FS, "pids")), ("", CGROUP_FS)):
        path = paths.get(names)
        procs = os.path.join(top, path.lstrip("/"), "cgroup.procs") if path is not None else None
        if procs and os.path.exists(procs):
            try:
                with open(procs, "w") as f:
                    f.write(str(os.getpid()))
                return
            except OSError:
                pass


def measure(key, runtimes, fn, rounds, warmup, log, gap=0.0, warm=False):
    """warmup + rounds of A B A B ..., `gap` seconds of pause before each sample; with `warm`,
    the harness's own cgroup write (warm_attach) right before it."""
    m = Metric(key, runtimes)
    for r in range(warmup + rounds):
        for rt in runtimes:
            if not m.active(rt):
                continue
            time.sleep(gap)
            if warm:
                warm_attach()
            try:
                s = fn(rt)
            except BenchError as e:
                m.fail(rt, str(e), log)
                purge(rt)
                continue
            finally:
                reap_children()
            m.ok(rt, s, keep=r >= warmup)
    return m


def measure_state(bench, runtimes, rounds, warmup, log, key="state", command=("state",), gap=0.0, warm=False):
    """`state` (or `command`, e.g. exec ID /bin/true) of a running container (one `sleep`
    container per runtime, started once)."""
    m = Metric(key, runtimes)
    running = {}
    try:
        for rt in runtimes:
            cid = bench.new_id(rt.label, key)
            bundle = bench.bundle(cid, args=("/bin/sleep", "1000000"))
            pid_file = os.path.join(bundle, "pid")
            rt.live.add(cid)
            try:
                rt.check("create", "--bundle", bundle, "--pid-file", pid_file, cid)
                running[rt.label] = (cid, read_pid_file(pid_file))
                rt.check("start", cid)
                p = subprocess.run(
                    [rt.path, "--root", rt.root, "state", cid], capture_output=True, text=True, timeout=30
                )
                status = json.loads(p.stdout).get("status") if p.returncode == 0 else None
                if status != "running":
                    raise BenchError(
                        f"{rt.name} state {cid}: status {status!r}, rc {p.returncode}, "
                        f"stderr {p.stderr.strip()!r}"
                    )
            except (BenchError, ValueError) as e:
                m.errors[rt.label].append(str(e))
                m.drop(rt, f"setup failed: {e}", log)
        for r in range(warmup + rounds):
            for rt in runtimes:
                if not m.active(rt):
                    continue
                time.sleep(gap)
                if warm:
                    warm_attach()
                res = rt.run(command[0], running[rt.label][0], *command[1:])
                if res.rc != 0:
                    m.fail(rt, f"{rt.name} {command[0]} -> exit {res.rc}: {res.stderr}", log)
                else:
                    m.ok(rt, {"t": res.secs}, keep=r >= warmup)
    finally:
        for rt in runtimes:
            if rt.label not in running:
                continue
            cid, pid = running[rt.label]
            rt.run("kill", cid, "KILL")
            try:
                wait_exit(pid, timeout=10)
            except BenchError:
                pass
            if rt.run("delete", cid).rc == 0:
                rt.live.discard(cid)
            reap_children()
    return m


def harness_overhead(rounds):
    """The floor under every sample: spawning /bin/true directly, with the harness's method
    (posix_spawn + waitpid) and with subprocess.run for comparison."""
    true = shutil.which("true") or "/bin/true"
    sp = Spawner(os.devnull)
    try:
        n = max(rounds * 5, 50)
        for _ in range(5):
            sp.run([true])
        ps = [sp.run([true]).secs for _ in range(n)]
        sr = []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run([true], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            sr.append(time.perf_counter() - t0)
    finally:
        sp.close()
    return {"posix_spawn_waitpid": ps, "subprocess_run": sr}


def cleanup(bench, runtimes, log):
    """Delete every container this session may have made, reap and kill our children, remove our
    cgroups and the temp dir. Idempotent, never raises."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for rt in runtimes:
            rt.sp.kill_current()
            # Whatever has state in the runtime's --root (ids in rt.live without state there were
            # never created, or their runtime died early: remove_cgroups below catches those).
            ids = set()
            try:
                for name in os.listdir(rt.root):
                    if name.startswith(bench.session):
                        ids.add(name[:-5] if name.endswith(".lock") else name)
            except OSError:
                pass
            for cid in sorted(ids):
                try:
                    rt.run("delete", "--force", cid)
                except OSError as e:
                    log(f"cleanup: {rt.name} delete --force {cid}: {e}")
            reap_children()
        # Anything of ours still alive (a container whose delete failed, an orphaned runtime
        # child): kill it by pid and reap it.
        for _ in range(50):
            kids = children_of(os.getpid())
            if not kids:
                break
            for pid in kids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.02)
            reap_children()
        left = remove_cgroups(bench.session)
        for d in left:
            log(f"cleanup: could not remove cgroup {d}")
        for rt in runtimes:
            try:
                rt.sp.close()
            except OSError:
                pass
        shutil.rmtree(bench.tmp, ignore_errors=True)
    finally:
        signal.signal(signal.SIGINT, old)


def cgroup_parents():
    """<hierarchy>/ocirt-bench for every mounted hierarchy (v1, hybrid and pure v2)."""
    dirs = []
    try:
        names = sorted(os.listdir(CGROUP_FS))
    except OSError:
        return dirs
    for h in names:
        dirs.append(os.path.join(CGROUP_FS, h, CGROUP_PARENT))
    if os.path.exists(os.path.join(CGROUP_FS, "cgroup.controllers")):
        dirs.append(os.path.join(CGROUP_FS, CGROUP_PARENT))
    return [d for d in dirs if os.path.isdir(d)]


def remove_cgroups(session):
    """Remove <hierarchy>/ocirt-bench/<session>-* (killing what is left in them), then
    ocirt-bench itself where it is empty (another benchmark may be using it). Returns leftovers."""
    left = []
    for parent in cgroup_parents():
        for name in os.listdir(parent):
            path = os.path.join(parent, name)
            if not (name.startswith(session) and os.path.isdir(path)):
                continue
            deadline = time.monotonic() + 5
            while os.path.isdir(path):
                for root, _dirs, _files in os.walk(path, topdown=False):
                    try:
                        with open(os.path.join(root, "freezer.state"), "w") as f:
                            f.write("THAWED")
                    except OSError:
                        pass
                    try:
                        with open(os.path.join(root, "cgroup.procs")) as f:
                            for pid in f.read().split():
                                try:
                                    os.kill(int(pid), signal.SIGKILL)
                                except OSError:
                                    pass
                    except OSError:
                        pass
                    try:
                        os.rmdir(root)
                    except OSError:
                        pass
                reap_children()
                if time.monotonic() > deadline:
                    left.append(path)
                    break
                if os.path.isdir(path):
                    time.sleep(0.02)
        try:
            os.rmdir(parent)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EBUSY, errno.ENOENT):
                left.append(parent)
    return left


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def med(values):
    return statistics.median(values) if values else None


def table_rows(metrics, n_lc, workers):
    """(title, metric key, field, unit scale, unit, compared with the floor) for the table."""
    ms, s, mib = 1e3, 1.0, 1 / 1024
    return [
        ("floor: python -I -S -c pass", "short", "floor_py", ms, "ms", False),
        ("floor: harness (spawn+reap true)", "short", "floor_true", ms, "ms", False),
        ("run /bin/true", "run", "t", ms, "ms", False),
        ("create+start+wait+delete", "lifecycle", "t", ms, "ms", False),
        ("  create", "lifecycle", "create", ms, "ms", False),
        ("  start", "lifecycle", "start", ms, "ms", True),
        ("  wait (start -> init exited)", "lifecycle", "wait", ms, "ms", False),
        ("  delete", "lifecycle", "delete", ms, "ms", True),
        ("state (running container)", "state", "t", ms, "ms", True),
        ("start (sleep container)", "short", "start", ms, "ms", True),
        ("state (just started)", "short", "state", ms, "ms", True),
        ("kill KILL", "short", "kill", ms, "ms", True),
        ("delete (killed container)", "short", "delete", ms, "ms", True),
        ("exec /bin/true (running container)", "exec", "t", ms, "ms", True),
        (f"{n_lc} lifecycles in a row", "batch", "t", s, "s", False),
        (f"{n_lc} lifecycles, {workers} workers", "parallel", "t", s, "s", False),
        ("peak RSS: run", "rss", "run", mib, "MiB", False),
        ("peak RSS: create", "rss", "create", mib, "MiB", False),
        ("peak RSS: state (created)", "rss", "state", mib, "MiB", False),
        ("peak RSS: start", "rss", "start", mib, "MiB", False),
        ("peak RSS: exec /bin/true", "rss", "exec", mib, "MiB", False),
        ("peak RSS: kill", "rss", "kill", mib, "MiB", False),
        ("peak RSS: delete", "rss", "delete", mib, "MiB", False),
        ("VmRSS of the waiting init", "rss", "init_rss", mib, "MiB", False),
        ("  of it anonymous (RssAnon)", "rss", "init_anon", mib, "MiB", False),
    ]


def floor_of(metrics):
    """The interpreter floor: median of every `python -I -S -c pass` sample (both runtimes'
    rounds: the same command, interleaved with both), in seconds; None if not measured."""
    m = metrics.get("short")
    if m is None:
        return None
    return med([x["floor_py"] for rt in m.samples for x in m.samples[rt] if "floor_py" in x])


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "s":
        return f"{v:.2f} s"
    if unit == "MiB":
        return f"{v:.1f} MiB" if v >= 1 else f"{v * 1024:.0f} KiB"
    return f"{v:.1f} ms" if v >= 10 else f"{v:.2f} ms"


def render(metrics, runtimes, n_lc, workers):
    a, b = runtimes
    head_a = f"A: {a.name}"
    head_b = f"B: {b.name}"
    floor = floor_of(metrics)
    floor_ms = None if floor is None else floor * 1e3
    rows = []
    summary = []
    for title, key, field, scale, unit, vs_floor in table_rows(metrics, n_lc, workers):
        m = metrics.get(key)
        if m is None:
            continue
        va = med([x[field] for x in m.samples[a.label] if x.get(field) is not None])
        vb = med([x[field] for x in m.samples[b.label] if x.get(field) is not None])
        if va is None and vb is None and not (m.errors[a.label] or m.errors[b.label]):
            continue
        va = None if va is None else va * scale
        vb = None if vb is None else vb * scale
        ratio = (f"{va / vb:.3f}x" if va / vb < 0.1 else f"{va / vb:.2f}x") if va is not None and vb else "-"
        if va is None and m.errors[a.label]:
            ratio = "A failed"
        elif vb is None and m.errors[b.label]:
            ratio = "B failed"
        fa = fb = "-"
        if vs_floor and floor_ms:
            fa = f"{va / floor_ms:.2f}x" if va is not None else "-"
            fb = f"{vb / floor_ms:.2f}x" if vb is not None else "-"
        n = f"{len(m.samples[a.label])}/{len(m.samples[b.label])}"
        fails = (len(m.errors[a.label]), len(m.errors[b.label]))
        if any(fails):
            n += f" ({fails[0]}/{fails[1]} failed)"
        rows.append((title, fmt(va, unit), fmt(vb, unit), ratio, fa, fb, n))
        summary.append(
            {
                "metric": title.strip(),
                "unit": unit,
                "a": va,
                "b": vb,
                "ratio": (va / vb) if va is not None and vb else None,
                "a_floor": (va / floor_ms) if vs_floor and floor_ms and va is not None else None,
                "b_floor": (vb / floor_ms) if vs_floor and floor_ms and vb is not None else None,
            }
        )
    header = (
        "metric",
        f"{head_a} (median)",
        f"{head_b} (median)",
        "A/B",
        "A/floor",
        "B/floor",
        "samples A/B",
    )
    ncol = len(header)
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(ncol)]
    lines = []
    for i, r in enumerate([header] + rows):
        cells = [r[0].ljust(widths[0])] + [r[j].rjust(widths[j]) for j in range(1, ncol)]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines), summary


def is_runc_init(cmdline):
    argv = cmdline.split()
    return len(argv) == 2 and os.path.basename(argv[0]) == "runc" and argv[1] == "init"


def init_lines(metrics, runtimes):
    m = metrics.get("rss")
    if m is None:
        return []
    out = []
    for rt in runtimes:
        cmds = [x.get("init_cmdline") for x in m.samples[rt.label] if "init_cmdline" in x]
        if not cmds:
            continue
        counts = {}
        for c in cmds:
            counts[c] = counts.get(c, 0) + 1
        desc = ", ".join(f"{c!r} {k}/{len(cmds)}" for c, k in sorted(counts.items(), key=lambda kv: -kv[1]))
        line = f"  {rt.label.upper()} ({rt.name}): {desc}"
        if rt.name == "runc":
            ok = sum(1 for c in cmds if is_runc_init(c))
            line += f"  [is `runc init`: {ok}/{len(cmds)}]"
        out.append(line)
    return out


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def repo_revision():
    try:
        head = subprocess.run(
            ["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (head or "?") + (" with uncommitted changes" if dirty else "")


def default_runtime_a():
    venv = os.path.join(REPO, ".venv", "bin", "ocirt")
    if os.access(venv, os.X_OK):
        return venv
    return shutil.which("ocirt") or "ocirt"


def resolve(path):
    found = shutil.which(path) if os.sep not in path else (path if os.access(path, os.X_OK) else None)
    if not found:
        raise click.BadParameter(f"{path}: not found or not executable")
    return os.path.abspath(found)


def command_line():
    exe = os.environ.get("OCIRT_BENCH_REEXEC") or os.path.basename(sys.executable)
    script = os.path.relpath(os.path.abspath(sys.argv[0]))
    if script.startswith(".."):
        script = os.path.abspath(sys.argv[0])
    return shlex.join([exe, script] + sys.argv[1:])


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--runtime-a",
    default=None,
    metavar="PATH",
    help="Runtime A (default: .venv/bin/ocirt if it exists, else ocirt on PATH).",
)
@click.option(
    "--runtime-b", default=DEFAULT_RUNC, show_default=True, metavar="PATH", help="Runtime B, the reference."
)
@click.option(
    "--rounds",
    type=click.IntRange(1),
    default=None,
    help="Samples per runtime of each single-operation metric [default: 20, --quick: 5].",
)
@click.option(
    "--batch-rounds",
    type=click.IntRange(1),
    default=None,
    help="Samples per runtime of the two batch metrics [default: 3, --quick: 1].",
)
@click.option(
    "--lifecycles",
    type=click.IntRange(2),
    default=None,
    help="Lifecycles per batch sample [default: 100, --quick: 20].",
)
@click.option(
    "--rss-rounds",
    type=click.IntRange(1),
    default=None,
    help="Samples per runtime of the RSS pass [default: 10, --quick: 3].",
)
@click.option(
    "--gap",
    type=click.FloatRange(0),
    default=0.0,
    metavar="SECONDS",
    help="Pause before each sample of run, create+start+wait+delete and exec (the commands that "
    "move a process into a cgroup), so that each meets the kernel as a command run on its own "
    "does: on cgroup v1 its first cgroup write then waits for an RCU grace period, which back "
    "to back the previous command's writes often spare it [default: 0, back to back].",
)
@click.option(
    "--warm",
    is_flag=True,
    help="Before each sample of run, create+start+wait+delete and exec, the harness writes its "
    "own pid to its own cgroup.procs (untimed): on cgroup v1 that write waits for the RCU grace "
    "period, and the command that follows does not, as one that comes right after another "
    "command's cgroup writes; both runtimes meet the same kernel state, whatever the other "
    "did before [default: off].",
)
@click.option("--quick", is_flag=True, help="Few samples and small batches: a smoke test.")
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(["run", "lifecycle", "state", "short", "exec", "batch", "parallel", "rss"]),
    help="Measure only these metrics (repeatable).",
)
@click.option(
    "--json", "json_path", default=None, metavar="FILE", help="Write the raw samples and the summary as JSON."
)
@click.option(
    "--write-bundle",
    default=None,
    hidden=True,
    metavar="DIR",
    help="(for profile.sh) Write the benchmark's bundle to DIR, with its own rootfs, "
    "for container --bundle-id, and exit.",
)
@click.option("--bundle-id", default="profile", hidden=True)
def main(
    runtime_a,
    runtime_b,
    rounds,
    batch_rounds,
    lifecycles,
    rss_rounds,
    gap,
    warm,
    quick,
    only,
    json_path,
    write_bundle,
    bundle_id,
):
    """Benchmark runtime A (ocirt) against runtime B (runc) on the same bundles, alternating
    A B A B. Prints medians and the A/B ratio. Needs root."""
    if write_bundle:
        os.makedirs(write_bundle, exist_ok=True)
        p = subprocess.run(
            ["sh", os.path.join(REPO, "bundles", "mkrootfs.sh"), os.path.join(write_bundle, "rootfs")],
            capture_output=True,
            text=True,
        )
        if p.returncode != 0:
            raise click.ClickException(f"mkrootfs.sh failed: {p.stderr.strip()}")
        write_config(write_bundle, "rootfs", bundle_id)
        return
    if os.geteuid() != 0:
        raise click.ClickException("needs root (containers with cgroups and namespaces)")
    path_a = resolve(runtime_a or default_runtime_a())
    path_b = resolve(runtime_b)
    rounds = rounds or (5 if quick else 20)
    batch_rounds = batch_rounds or (1 if quick else 3)
    n_lc = lifecycles or (20 if quick else 100)
    rss_rounds = rss_rounds or (3 if quick else 10)
    workers = 2
    warmup = 1
    selected = set(only) or {"run", "lifecycle", "state", "short", "exec", "batch", "parallel", "rss"}
    log = lambda msg: click.echo(msg, err=True)  # noqa: E731

    cmdline = command_line()
    click.echo(f"command: {cmdline}")

    bench = Bench()
    runtimes = []
    metrics = {}
    exit_code = 0
    old_handlers = {}

    def on_signal(signum, _frame):
        raise Interrupted(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        old_handlers[sig] = signal.signal(sig, on_signal)
    try:
        set_child_subreaper()
        runtimes = [
            Runtime(
                "a",
                path_a,
                os.path.join(bench.tmp, "root-a"),
                Spawner(os.path.join(bench.tmp, "stderr-a.log")),
            ),
            Runtime(
                "b",
                path_b,
                os.path.join(bench.tmp, "root-b"),
                Spawner(os.path.join(bench.tmp, "stderr-b.log")),
            ),
        ]
        a, b = runtimes
        versions = {"a": a.version(), "b": b.version()}
        click.echo(f"A: {path_a}  ({versions['a']})")
        click.echo(f"B: {path_b}  ({versions['b']})")
        revision = repo_revision()
        click.echo(
            f"host: {platform.node()} {platform.release()}, {os.cpu_count()} CPUs, "
            f"python {platform.python_version()}; repo {revision}"
        )
        click.echo(
            f"rounds {rounds} (+{warmup} warm-up), batches {batch_rounds} x {n_lc} lifecycles, "
            f"RSS rounds {rss_rounds}, order A B A B{f' (run, lifecycle, exec: {gap:g} s apart)' if gap else ''}"
            f"{' (run, lifecycle, exec: each after a cgroup write of the harness)' if warm else ''}, "
            f"state dirs and bundles in {bench.tmp}"
        )
        bench.build_rootfs()

        gc.disable()
        overhead = harness_overhead(rounds)
        click.echo(
            f"harness overhead (spawn + reap /bin/true, no runtime): posix_spawn+waitpid "
            f"{med(overhead['posix_spawn_waitpid']) * 1e3:.2f} ms (used), subprocess.run "
            f"{med(overhead['subprocess_run']) * 1e3:.2f} ms"
        )

        if "run" in selected:
            log("measuring: run /bin/true")
            metrics["run"] = measure(
                "run", runtimes, lambda rt: sample_run(bench, rt), rounds, warmup, log, gap, warm
            )
        if "lifecycle" in selected:
            log("measuring: create+start+wait+delete")
            metrics["lifecycle"] = measure(
                "lifecycle", runtimes, lambda rt: sample_lifecycle(bench, rt), rounds, warmup, log, gap, warm
            )
        if "state" in selected:
            log("measuring: state of a running container")
            metrics["state"] = measure_state(bench, runtimes, rounds, warmup, log)
        floor_argv = None
        if "short" in selected:
            floor_py = launcher_python(path_a)
            floor_argv = floor_py + ["-c", "pass"] if floor_py else None
            log("measuring: floor and start / state / kill / delete of a sleep container")
            metrics["short"] = measure(
                "short", runtimes, lambda rt: sample_short(bench, rt, floor_argv), rounds, warmup, log
            )
        if "exec" in selected:
            log("measuring: exec /bin/true into a running container")
            metrics["exec"] = measure_state(
                bench,
                runtimes,
                rounds,
                warmup,
                log,
                key="exec",
                command=("exec", "/bin/true"),
                gap=gap,
                warm=warm,
            )
        if "batch" in selected:
            log(f"measuring: {n_lc} lifecycles in a row")
            metrics["batch"] = measure(
                "batch", runtimes, lambda rt: sample_batch(bench, rt, n_lc), batch_rounds, 0, log
            )
        if "parallel" in selected:
            log(f"measuring: {n_lc} lifecycles over {workers} workers")
            metrics["parallel"] = measure(
                "parallel",
                runtimes,
                lambda rt: sample_parallel(bench, rt, n_lc, workers),
                batch_rounds,
                0,
                log,
            )
        rss_info = None
        if "rss" in selected:
            rss = RssMeter(os.path.join(bench.tmp, "maxrss"))
            floor = rss.measure_floor(a.sp)
            rss_info = {"tool": shlex.join(rss.prefix[:-2]), "floor_kib": floor}
            log(f"measuring: peak RSS ({rss.tool} -f %M; its floor, for /bin/true: {floor} KiB)")
            metrics["rss"] = measure(
                "rss", runtimes, lambda rt: sample_rss(bench, rt, rss), rss_rounds, 0, log
            )
        gc.enable()

        table, summary = render(metrics, runtimes, n_lc, workers)
        click.echo("")
        click.echo(table)
        if rss_info:
            click.echo(
                f"peak RSS = ru_maxrss via `{rss_info['tool']}` (its result for /bin/true: "
                f"{rss_info['floor_kib'] / 1024:.1f} MiB)"
            )
        if floor_argv:
            click.echo(
                f"floor = `{shlex.join(floor_argv)}` (the interpreter A's command starts, "
                f"with its flags), timed before each runtime's commands in every `short` "
                f"round; A/floor and B/floor divide by its median over all rounds"
            )
        elif "short" in selected:
            click.echo(
                "floor: A's command starts no Python that this script could find (no interpreter floor)"
            )
        inits = init_lines(metrics, runtimes)
        if inits:
            click.echo("waiting init (cmdline of the --pid-file pid between create and start):")
            for line in inits:
                click.echo(line)
        failures = [(k, rt, m) for k, m in metrics.items() for rt in runtimes if m.errors[rt.label]]
        if failures:
            exit_code = 1
            click.echo("failed samples (left out of the medians):")
            for k, rt, m in failures:
                errs = m.errors[rt.label]
                gave_up = f", gave up: {m.dropped[rt.label]}" if rt.label in m.dropped else ""
                click.echo(
                    f"  {k} {rt.label.upper()} ({rt.name}): {len(errs)} failed{gave_up}; first: {errs[0]}"
                )
        click.echo(f"\ncommand: {cmdline}")

        if json_path:
            doc = {
                "command": cmdline,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "host": {
                    "node": platform.node(),
                    "kernel": platform.release(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
                "repo": revision,
                "runtimes": {
                    "a": {"path": path_a, "version": versions["a"]},
                    "b": {"path": path_b, "version": versions["b"]},
                },
                "settings": {
                    "rounds": rounds,
                    "warmup": warmup,
                    "batch_rounds": batch_rounds,
                    "lifecycles": n_lc,
                    "workers": workers,
                    "rss_rounds": rss_rounds,
                    "gap": gap,
                    "warm": warm,
                    "rss": rss_info,
                    "units": "seconds; RSS in KiB",
                },
                "harness_overhead_seconds": overhead,
                "summary": summary,
                "floor_command": floor_argv,
                "samples": {
                    k: {"a": m.samples["a"], "b": m.samples["b"], "errors": m.errors, "dropped": m.dropped}
                    for k, m in metrics.items()
                },
            }
            with open(json_path, "w") as f:
                json.dump(doc, f, indent=1)
            click.echo(f"raw numbers: {json_path}")
    except (KeyboardInterrupt, Interrupted) as e:
        log(f"\ninterrupted ({type(e).__name__} {e}), cleaning up")
        exit_code = 130
    except BenchError as e:
        log(f"bench.py: {e}")
        exit_code = 1
    finally:
        gc.enable()
        cleanup(bench, runtimes, log)
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
