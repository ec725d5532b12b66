"""A private systemd instance as PID 1 of its own namespaces, for testing `--systemd-cgroup`.

    from sysd import SystemdHost, available

    reason = available()            # None when usable, else a one-line reason to skip
    with SystemdHost() as host:     # ~0.1 s on the hybrid host, ~1.2 s in the v2 VM
        host.run(["systemctl", "--no-pager", "status"], capture_output=True, text=True)
        host.run(["runc", "--systemd-cgroup", "run", "-b", bundle, cid])   # a CompletedProcess
        host.popen([...])           # a Popen (the host-side nsenter), killed at exit
        host.cgroup_root()          # "/sys/fs/cgroup": where the cgroup mount(s) are, seen inside
        host.cgroup_dirs("system.slice/x.scope")   # inside paths of that cgroup, where it exists
        host.host_path("/run/x")    # the same file seen from the host (/proc/PID/root/run/x)
        host.log()                  # what systemd logged (its console)
    # stopped: processes, cgroups and mounts are gone

How it is built (stdlib and the suite's runtime.py; nothing here imports ocirt: the suite is black box):

- A dedicated cgroup ``/ocirt-sysd-<pid>-<random>`` is made in every cgroup hierarchy mounted under
  /sys/fs/cgroup (each v1 hierarchy, name=systemd included, and cgroup2), so several instances (one
  per pytest-xdist worker) can run side by side.
- ``unshare`` joins it, then makes new pid, mount, cgroup, uts, ipc and network namespaces: the
  dedicated cgroup is the root of the new cgroup namespace. Its forked child (PID 1 inside) waits
  until the host side has moved the ``unshare`` process itself back out of the dedicated cgroup (on
  cgroup v2 systemd must be able to enable controllers there, which a cgroup holding a process
  cannot), then mounts, all private to the new mount namespace:
    /proc for the new pid namespace, with /proc/sys (and /proc/sysrq-trigger) read-only: systemd
      as PID 1 writes kernel.core_pattern, fs.file-max, fs.nr_open, which no namespace confines;
    a fresh read-only sysfs, and the cgroup filesystems again, so that their root is the dedicated
      cgroup: on a hybrid/v1 host a tmpfs with each v1 hierarchy plus cgroup2 at ``unified``, named
      as on the host; on a v2 host cgroup2 on /sys/fs/cgroup;
    a fresh tmpfs on /run, holding the boot target and empty stub targets in /run/systemd/system;
    empty read-only tmpfs over every unit and generator directory of the host's file systems
      (/lib/systemd/system, /etc/systemd/system, ...). The namespace shares the host's /, /tmp,
      /var, /etc and /dev read-write (bundles under pytest's tmp dirs work unchanged), and the
      host's units would act on them: a mere `systemd-run --unit=x true` pulls in sysinit.target,
      whose systemd-tmpfiles-setup.service empties /tmp, journald writes /var/log/journal,
      systemd-update-utmp /var/log/wtmp, ... So this systemd knows no unit but the stubs and what
      a test makes itself (transient units, files it writes to /run/systemd/system);
    a pty over /dev/console: a containerized PID 1 logs there, and only to a tty; ``cat`` copies
      it to a log file (``log()``).
  Then it execs systemd (CAP_SYS_MODULE and CAP_SYS_TIME dropped from its bounding set: it would
  load kernel modules) with ``container=ocirt-test`` and ``--unit=ocirt-test.target``, a target with
  DefaultDependencies=no: nothing else is started (no journald, udev, getty, networking, dbus).
  Readiness: /run/systemd/private exists and `systemctl is-system-running --wait` says "running".
- ``run``/``popen`` use ``nsenter`` into all those namespaces, with the command in the cgroup
  ``<root>/ocirt-run`` (a leaf inside the namespace, not a unit): systemd, inside the cgroup
  namespace, can only move processes whose cgroup is inside it (`systemd-run --scope`, a runtime's
  transient scope for its container). The nsenter process itself, outside the pid namespace, is
  moved back to our own cgroup once it has forked (a process systemd cannot see in one of its
  cgroups breaks `systemctl status`). systemd on cgroup v1 removes empty cgroups it does not use
  ("trims" them), so ``ocirt-run`` is remade whenever needed.
- ``__exit__`` kills systemd with SIGKILL (which kills the whole pid namespace; the mount namespace
  and its mounts go with its last process), then removes every cgroup below the dedicated one,
  deepest first, in every hierarchy, then the dedicated one. No graceful poweroff: nothing in
  there needs one, and systemd-shutdown would only cost time.
"""

import ctypes
import errno
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import tty
import uuid

from runtime import remove_cgroup_trees, thaw_cgroup_tree

SYSTEMD = "/lib/systemd/systemd"
CGROUP_FS = "/sys/fs/cgroup"
TARGET = "ocirt-test.target"
RUN_CGROUP = "ocirt-run"  # leaf cgroup (inside the namespace) of processes run()/popen() start
CONTAINER_ENV = "ocirt-test"  # $container for systemd: it knows it runs in a container
START_TIMEOUT = 120  # seconds for systemd to reach its target (the VM is slow)
GENERATOR_DIRS = (
    "/usr/lib/systemd/system-generators",
    "/lib/systemd/system-generators",
    "/usr/local/lib/systemd/system-generators",
    "/etc/systemd/system-generators",
    "/usr/lib/systemd/system-environment-generators",
    "/lib/systemd/system-environment-generators",
    "/usr/local/lib/systemd/system-environment-generators",
    "/etc/systemd/system-environment-generators",
)
# Unit directories on the host's file systems (`systemd-analyze unit-paths` less those under /run):
# hidden under empty tmpfs mounts. The namespace shares the host's /, /tmp, /var, /etc read-write,
# and the host's units would happily act on them: a mere `systemd-run --unit=x sleep 1` pulls in
# sysinit.target, whose systemd-tmpfiles-setup.service empties /tmp (tmp.conf `D /tmp`), and
# journald, utmp, ... write to /var. So this systemd knows no unit but the stubs below and what a
# test makes itself (transient units, files in /run/systemd/system).
UNIT_DIRS = (
    "/etc/systemd/system.control",
    "/etc/systemd/system",
    "/etc/systemd/system.attached",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)
# Targets that units' default dependencies name (Requires=sysinit.target for services, ...): empty.
STUB_TARGETS = (
    "sysinit.target",
    "basic.target",
    "shutdown.target",
    "slices.target",
    "sockets.target",
    "timers.target",
    "paths.target",
    "local-fs.target",
    "local-fs-pre.target",
    "umount.target",
    "final.target",
    "network.target",
    "multi-user.target",
)
# Dropped from systemd's bounding set (it and its services); run()/popen() keep them.
DROP_CAPS = ("sys_module", "sys_time")
# Variables of the caller that would point systemctl, runc, ... elsewhere than the private systemd.
_SCRUB_ENV = (
    "DBUS_SYSTEM_BUS_ADDRESS",
    "DBUS_SESSION_BUS_ADDRESS",
    "NOTIFY_SOCKET",
    "XDG_RUNTIME_DIR",
    "SYSTEMD_EXEC_PID",
    "INVOCATION_ID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
)

_TARGET_UNIT = """\
[Unit]
Description=ocirt test environment (nothing but PID 1)
DefaultDependencies=no
AllowIsolate=yes
"""

_STUB_UNIT = """\
[Unit]
Description=%s (empty stub of the ocirt test environment)
DefaultDependencies=no
"""

_PR_SET_PDEATHSIG = 1
_NAME_PREFIX = "ocirt-sysd-"  # + creator's pid + random: the dedicated cgroups
_NAME_RE = re.compile(r"^ocirt-sysd-(\d+)-[0-9a-f]{8}$")
_STATEDIR_RE = re.compile(r"^ocirt-sysd-(\d+)-state-")


# ---- the host's cgroup mounts -----------------------------------------------------------------


class _Hierarchy:
    """One cgroup mount under /sys/fs/cgroup: ``path`` (its mount point on the host), ``fstype``
    ('cgroup' or 'cgroup2'), ``opts`` (v1: the controllers and name=, for mounting it again)."""

    def __init__(self, path, fstype, opts):
        self.path, self.fstype, self.opts = path, fstype, opts

    @property
    def rel(self):
        """Mount point relative to /sys/fs/cgroup ('' on a pure v2 host)."""
        return os.path.relpath(self.path, CGROUP_FS) if self.path != CGROUP_FS else ""

    def __repr__(self):
        return f"_Hierarchy({self.path!r}, {self.fstype!r}, {self.opts!r})"


def _v1_subsystems():
    try:
        with open("/proc/cgroups") as f:
            return {ln.split()[0] for ln in f if ln.strip() and not ln.startswith("#")}
    except OSError:
        return set()


def _unescape(s):
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def host_hierarchies(mountinfo="/proc/self/mountinfo"):
    """(kind, hierarchies): kind is 'v2' (cgroup2 on /sys/fs/cgroup), 'hybrid' (v1 hierarchies and
    a cgroup2 mount below it), 'v1' or 'none'."""
    subsystems = _v1_subsystems()
    found = {}
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            mountpoint = _unescape(left.split()[4])
            fstype, _source, superopts = (right.split() + ["", "", ""])[:3]
            if mountpoint != CGROUP_FS and not mountpoint.startswith(CGROUP_FS + "/"):
                continue
            if fstype == "cgroup2":
                found[mountpoint] = _Hierarchy(mountpoint, fstype, [])
            elif fstype == "cgroup":
                opts = [o for o in superopts.split(",") if o in subsystems or o.startswith("name=")]
                if opts:
                    found[mountpoint] = _Hierarchy(mountpoint, fstype, opts)
            else:
                found.pop(mountpoint, None)  # something mounted over it (the last mount wins)
    hs = sorted(found.values(), key=lambda h: h.path)
    if any(h.fstype == "cgroup2" and h.path == CGROUP_FS for h in hs):
        return "v2", [h for h in hs if h.path == CGROUP_FS]
    v1 = [h for h in hs if h.fstype == "cgroup"]
    if v1:
        return ("hybrid" if any(h.fstype == "cgroup2" for h in hs) else "v1"), hs
    return "none", []


# ---- availability -----------------------------------------------------------------------------


def available():
    """None if a SystemdHost can run here, else a one-line reason (for pytest.skip)."""
    if os.geteuid() != 0:
        return "needs root"
    if not os.access(SYSTEMD, os.X_OK):
        return f"no systemd at {SYSTEMD}"
    for tool in ("unshare", "nsenter", "setpriv", "mount", "sh", "systemctl"):
        if not shutil.which(tool):
            return f"no {tool} on PATH"
    if not os.path.exists("/proc/self/ns/cgroup"):
        return "the kernel has no cgroup namespaces"
    try:
        kind, hs = host_hierarchies()
    except OSError as e:
        return f"cannot read the cgroup mounts: {e}"
    if kind == "none":
        return f"no cgroup hierarchy is mounted under {CGROUP_FS}"
    if kind != "v2" and not any(h.fstype == "cgroup2" or "name=systemd" in h.opts for h in hs):
        return "cgroup v1 without a name=systemd hierarchy or cgroup2 mount: systemd cannot run"
    return None


# ---- small helpers ------------------------------------------------------------------------------


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def _procs(cgdir):
    return [int(p) for p in _read(os.path.join(cgdir, "cgroup.procs")).split()]


def _set_pdeathsig():
    """preexec_fn: SIGKILL this child if the thread that started it dies (a crashed test run
    takes its systemd with it; `unshare --kill-child` passes it on to systemd)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # noqa: BLE001 -- best effort
        pass


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _alive(pid):
    st = _read(f"/proc/{pid}/stat")
    if not st:
        return False
    return st.rpartition(")")[2].split()[0] not in ("Z", "X")


class SystemdError(RuntimeError):
    pass


# ---- the environment ----------------------------------------------------------------------------


class SystemdHost:
    """A private systemd (PID 1 of new pid/mount/cgroup/uts/ipc/net namespaces). Context manager.

    Attributes once entered: ``pid`` (systemd's pid on the host), ``kind`` ('v2', 'hybrid' or 'v1',
    the host's layout, which the namespace repeats), ``name`` (the dedicated cgroup, relative to
    every hierarchy's root on the host), ``startup_seconds``, ``state`` (what
    `systemctl is-system-running` said).
    """

    def __init__(self, start_timeout=START_TIMEOUT, log_level="info"):
        self.start_timeout = start_timeout
        self.log_level = log_level
        self.kind, self.hierarchies = host_hierarchies()
        self.name = f"{_NAME_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.pid = None
        self.state = None
        self.startup_seconds = None
        self._unshare = None
        self._made = []  # dedicated cgroup dirs made on the host
        self._popens = []
        self._statedir = None
        self._log_text = ""
        self._home = {}  # hierarchy mount point -> our own cgroup dir there (host view)
        self._console = None  # our fd of the pty slave that is systemd's /dev/console
        self._reader = None  # `cat` copying the pty master to console.log

    # ---- public API -------------------------------------------------------------------------
    def cgroup_root(self):
        """Where the cgroup mount(s) are inside the namespaces: on v2 the cgroup2 mount itself, on
        hybrid/v1 a tmpfs holding one directory per hierarchy (cpu, memory, ..., systemd, unified),
        named as on the host. The namespace's root cgroup is the mount's root."""
        return CGROUP_FS

    def host_path(self, path):
        """The host-side path of `path` as seen inside the mount namespace (/proc/PID/root/...)."""
        return f"/proc/{self.pid}/root/{path.lstrip('/')}"

    def cgroup_dirs(self, rel):
        """Inside paths of cgroup `rel` (relative to the namespace's root cgroup, e.g.
        'system.slice/x.scope') in every hierarchy where it exists."""
        found = []
        for h in self.hierarchies:
            d = os.path.join(CGROUP_FS, h.rel, rel.lstrip("/")).rstrip("/")
            if os.path.isdir(self.host_path(d)):
                found.append(d)
        return found

    def host_cgroup_dirs(self):
        """The dedicated cgroup's directories on the host (one per hierarchy)."""
        return [os.path.join(h.path, self.name) for h in self.hierarchies]

    def command(self, argv, cwd=None):
        """The host command line that runs argv inside the namespaces (cwd: inside, default ours)."""
        wd = os.fspath(cwd) if cwd is not None else os.getcwd()
        return ["nsenter", "-t", str(self.pid), "-m", "-p", "-C", "-u", "-i", "-n", f"--wd={wd}", "--"] + [
            os.fspath(a) for a in argv
        ]

    def run(self, argv, *, input=None, timeout=None, check=False, capture_output=False, **kw):
        """subprocess.run(argv, ...) inside the namespaces, in the cgroup <root>/ocirt-run.
        ``cwd`` is resolved inside (the host's paths are the same, /run and /sys aside); ``env``
        defaults to ours less variables naming another bus/socket (DBUS_*, NOTIFY_SOCKET, ...)."""
        if capture_output:
            kw["stdout"] = kw["stderr"] = subprocess.PIPE
        if input is not None:
            kw["stdin"] = subprocess.PIPE
        with self.popen(argv, **kw) as p:
            try:
                out, err = p.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired as e:
                p.kill()  # nsenter only: what it started is killed with the namespace at exit
                e.stdout, e.stderr = p.communicate()
                raise
            except BaseException:
                p.kill()
                raise
        self._popens.remove(p)
        res = subprocess.CompletedProcess(p.args, p.returncode, out, err)
        if check:
            res.check_returncode()
        return res

    def popen(self, argv, **kw):
        """subprocess.Popen like run(). What the caller holds is the host-side ``nsenter``, whose
        exit status is the command's; killed at exit if still running."""
        cwd = kw.pop("cwd", None)
        if kw.get("env") is None:
            kw["env"] = {k: v for k, v in os.environ.items() if k not in _SCRUB_ENV}
        user_preexec = kw.pop("preexec_fn", None)
        dirs = [os.path.join(h.path, self.name, RUN_CGROUP) for h in self.hierarchies]

        def preexec():
            for d in dirs:
                _join_cgroup(d)
            if user_preexec:
                user_preexec()

        p = subprocess.Popen(self.command(argv, cwd), preexec_fn=preexec, **kw)
        self._popens.append(p)
        # nsenter forks the command into the pid namespace and waits. nsenter itself, outside the
        # pid namespace, must not stay in the namespace's cgroups: there it is a process systemd
        # cannot see (pid 0 in cgroup.procs; `systemctl status` fails to list the tree).
        deadline = time.monotonic() + 30
        while not _children(p.pid) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        for h in self.hierarchies:
            try:
                _write(os.path.join(self._home.get(h.path, h.path), "cgroup.procs"), str(p.pid))
            except OSError:
                pass  # already gone
        return p

    def systemctl(self, *args, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return self.run(["systemctl", "--no-pager", *args], **kw)

    def log(self):
        """systemd's console output so far (what PID 1 logged)."""
        if self._statedir:
            try:
                with open(os.path.join(self._statedir, "console.log"), "rb") as f:
                    return f.read().decode(errors="replace").replace("\r", "")
            except OSError:
                return ""
        return self._log_text

    # ---- start ------------------------------------------------------------------------------
    def __enter__(self):
        reason = available()
        if reason:
            raise SystemdError(f"SystemdHost unavailable: {reason}")
        t0 = time.monotonic()
        try:
            self._start()
            self._wait_running(t0 + self.start_timeout)
        except BaseException:
            self._stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _sweep_stale(self):
        """Remove the dedicated cgroups and state dirs of instances whose creating process is gone
        (a test run that was SIGKILLed: its systemd died with it, but not its cgroups)."""
        stale = []
        for h in self.hierarchies:
            try:
                names = os.listdir(h.path)
            except OSError:
                continue
            for n in names:
                m = _NAME_RE.match(n)
                if m and not os.path.exists(f"/proc/{m.group(1)}"):
                    stale.append(os.path.join(h.path, n))
        remove_cgroup_trees(stale, timeout=5)
        tmp = tempfile.gettempdir()
        for n in os.listdir(tmp):
            m = _STATEDIR_RE.match(n)
            if m and not os.path.exists(f"/proc/{m.group(1)}"):
                shutil.rmtree(os.path.join(tmp, n), ignore_errors=True)

    def _make_cgroups(self):
        for h in self.hierarchies:
            d = os.path.join(h.path, self.name)
            os.mkdir(d)
            self._made.append(d)
            if "cpuset" in h.opts:
                # A v1 cpuset cgroup is born with empty cpus/mems: nothing could join it. Its
                # children (systemd's, the runtime's) copy them (clone_children).
                for f in ("cpuset.cpus", "cpuset.mems"):
                    _write(os.path.join(d, f), _read(os.path.join(h.path, f)).strip() or "\n")
                _write(os.path.join(d, "cgroup.clone_children"), "1")

    def _own_cgroups(self):
        """Our cgroup in each hierarchy (host view), to put `unshare` and `nsenter` back into."""
        lines = [ln.split(":", 2) for ln in _read("/proc/self/cgroup").splitlines() if ln]
        out = {}
        for h in self.hierarchies:
            for _hid, ctrls, path in lines:
                if (h.fstype == "cgroup2" and ctrls == "") or (
                    h.fstype == "cgroup" and set(h.opts) == set(ctrls.split(","))
                ):
                    out[h.path] = os.path.join(h.path, path.lstrip("/"))
        return out

    def _setup_script(self, console):
        q = shlex.quote
        lines = [
            "set -e",
            "read -r go",  # the host side moved `unshare` out of the dedicated cgroup
            "mount --bind /proc/sys /proc/sys",
            "mount -o remount,bind,ro,nosuid,nodev,noexec /proc/sys",
        ]
        if os.path.exists("/proc/sysrq-trigger"):
            lines += [
                "mount --bind /proc/sysrq-trigger /proc/sysrq-trigger",
                "mount -o remount,bind,ro /proc/sysrq-trigger",
            ]
        lines += [
            "mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys",
        ]
        if self.kind == "v2":
            lines.append(f"mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 {CGROUP_FS}")
        else:
            lines.append(f"mount -t tmpfs -o mode=755,nosuid,nodev,noexec,size=64k tmpfs {CGROUP_FS}")
            for h in self.hierarchies:
                lines.append(f"mkdir -p {q(h.path)}")
                if h.fstype == "cgroup2":
                    lines.append(f"mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 {q(h.path)}")
                else:
                    opts = ",".join(["nosuid", "nodev", "noexec"] + h.opts)
                    lines.append(f"mount -t cgroup -o {q(opts)} cgroup {q(h.path)}")
            for name in sorted(os.listdir(CGROUP_FS)):  # e.g. cpuacct -> cpu,cpuacct
                p = os.path.join(CGROUP_FS, name)
                if os.path.islink(p):
                    lines.append(f"ln -s {q(os.readlink(p))} {q(p)}")
        lines += [
            "mount -t tmpfs -o mode=755,nosuid,nodev,size=64m tmpfs /run",
            "mkdir -p /run/systemd/system /run/lock",
            f"printf %s {q(_TARGET_UNIT)} > /run/systemd/system/{TARGET}",
        ]
        lines += [f"printf %s {q(_STUB_UNIT % t)} > /run/systemd/system/{t}" for t in STUB_TARGETS]
        if os.path.exists("/dev/console"):  # (the host's /dev is shared: make nothing there)
            lines.append(f"mount --bind {q(console)} /dev/console")
        seen = set()
        for d in UNIT_DIRS + GENERATOR_DIRS:  # hide them: empty, read-only
            real = os.path.realpath(d)
            if os.path.isdir(real) and real not in seen and not real.startswith("/run/"):
                seen.add(real)
                lines.append(f"mount -t tmpfs -o ro,mode=755,size=4k tmpfs {q(real)}")
        # Without CAP_SYS_MODULE and CAP_SYS_TIME (bounding set): systemd as PID 1 loads kernel
        # modules (autofs4, ipv6, ...) and may set the clock, which no namespace confines.
        lines.append(
            f"exec setpriv --bounding-set -{',-'.join(DROP_CAPS)} env -i container={CONTAINER_ENV} "
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
            f"{SYSTEMD} --unit={TARGET} --log-target=console --log-level={q(self.log_level)} "
            "--log-color=no --show-status=no </dev/null"
        )  # (stdout, stderr: unshare.log)
        return "\n".join(lines) + "\n"

    def _open_console(self):
        """A pty for systemd's /dev/console (PID 1 in a container logs there, and only to a tty):
        `cat` copies what it gets to console.log. We hold the slave open so that `cat` sees no
        EOF (EIO) while systemd opens and closes the console around each message."""
        master, slave = os.openpty()
        try:
            tty.setraw(slave)
        except Exception:  # noqa: BLE001 -- cosmetic (systemd resets the terminal anyway)
            pass
        with open(os.path.join(self._statedir, "console.log"), "ab") as log:
            self._reader = subprocess.Popen(
                ["cat"], stdin=master, stdout=log, stderr=subprocess.DEVNULL, close_fds=True
            )
        os.close(master)
        self._console = slave
        return os.ttyname(slave)

    def _start(self):
        self._sweep_stale()
        self._statedir = tempfile.mkdtemp(prefix=f"{_NAME_PREFIX}{os.getpid()}-state-")
        os.chmod(self._statedir, 0o755)
        console = self._open_console()
        self._make_cgroups()
        back = self._home = self._own_cgroups()
        argv = [
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--mount",
            "--propagation",
            "private",
            "--cgroup",
            "--uts",
            "--ipc",
            "--net",
            "--",
            "sh",
            "-c",
            self._setup_script(console),
        ]
        name = self.name
        paths = [os.path.join(h.path, name, "cgroup.procs") for h in self.hierarchies]

        def preexec():
            _set_pdeathsig()
            for p in paths:  # join the dedicated cgroup: it becomes the cgroup namespace's root
                with open(p, "w") as f:
                    f.write("0")

        stdout = open(os.path.join(self._statedir, "unshare.log"), "w")
        with stdout:
            self._unshare = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec,
                close_fds=True,
                env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")},
            )
        deadline = time.monotonic() + 30
        while True:
            kids = _children(self._unshare.pid)
            if kids:
                self.pid = kids[0]
                break
            if self._unshare.poll() is not None:
                raise SystemdError(f"unshare failed: {self._startup_output()}")
            if time.monotonic() > deadline:
                raise SystemdError("unshare did not fork its child in 30 s")
            time.sleep(0.005)
        # The child has unshared everything (the fork comes after unshare(2)): take `unshare`
        # out of the dedicated cgroup, where only systemd's subtree may live.
        for h in self.hierarchies:
            _write(
                os.path.join(h.path, "cgroup.procs")
                if h.path not in back
                else os.path.join(back[h.path], "cgroup.procs"),
                str(self._unshare.pid),
            )
        self._unshare.stdin.write(b"go\n")
        self._unshare.stdin.close()

    def _startup_output(self):
        out = _read(os.path.join(self._statedir, "unshare.log")) if self._statedir else ""
        return (out + self.log())[-4000:]

    def _wait_running(self, deadline):
        sock = self.host_path("/run/systemd/private")
        while True:
            if self._unshare.poll() is not None or not _alive(self.pid):
                raise SystemdError(f"systemd exited while starting:\n{self._startup_output()}")
            # Not connect(): systemd refuses (and logs) a client outside its pid namespace. It
            # binds and listens in one go; `is-system-running --wait` below is the real probe.
            if os.path.exists(sock):
                break
            if time.monotonic() > deadline:
                raise SystemdError(f"no {sock} within {self.start_timeout} s:\n{self._startup_output()}")
            time.sleep(0.02)
        while True:
            left = max(1.0, deadline - time.monotonic())
            p = self.systemctl("is-system-running", "--wait", timeout=left)
            self.state = p.stdout.strip()
            if self.state not in ("", "offline") or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # "offline": could not connect (yet)
        if self.state not in ("running", "degraded"):
            raise SystemdError(
                f"systemctl is-system-running: {self.state!r} {p.stderr.strip()!r}\n{self._startup_output()}"
            )

    # ---- stop ---------------------------------------------------------------------------------
    def __exit__(self, *exc):
        self._stop()
        return False

    def _stop(self):
        problems = []
        if self._unshare is not None:
            if self._unshare.poll() is None:
                if self.pid is not None and _alive(self.pid):
                    try:
                        os.kill(self.pid, signal.SIGKILL)  # the whole pid namespace goes with it
                    except ProcessLookupError:
                        pass
                # PID 1 exits once every process of its namespace has; one in a frozen v1 freezer
                # cgroup (a paused container) does not die before it is thawed.
                deadline = time.monotonic() + 30
                while self._unshare.poll() is None and time.monotonic() < deadline:
                    for d in self._made:
                        thaw_cgroup_tree(d)
                    time.sleep(0.02)
                if self._unshare.poll() is None:
                    self._unshare.kill()
                    self._unshare.wait(timeout=10)
            if self._unshare.stdin and not self._unshare.stdin.closed:
                self._unshare.stdin.close()
        for p in self._popens:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                problems.append(f"nsenter {p.pid} did not exit")
        self._popens = []
        if self._console is not None:
            os.close(self._console)  # the last slave: `cat` reads EIO and exits
            self._console = None
        if self._reader is not None:
            try:
                self._reader.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._reader.kill()
                self._reader.wait()
                problems.append("the console reader did not exit")
            self._reader = None
        for d in remove_cgroup_trees(list(reversed(self._made))):
            problems.append(f"cgroup not removed: {d}")
        self._made = []
        if self._statedir:
            self._log_text = self.log()
            shutil.rmtree(self._statedir, ignore_errors=True)
            self._statedir = None
        if problems:
            raise SystemdError("SystemdHost cleanup: " + "; ".join(problems))


def _join_cgroup(d):
    """Put the calling process into cgroup directory d, making it if needed. systemd on cgroup v1
    removes empty cgroups below its root in hierarchies it does not use for the root slice (it
    "trims" them), so the directory may vanish between a mkdir and the write: retry."""
    for _ in range(200):
        try:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write("0")
            return
        except FileNotFoundError:
            try:
                os.mkdir(d)  # cpuset: clone_children of the dedicated cgroup fills cpus/mems
            except FileExistsError:
                pass
        except OSError as e:
            # a cpuset made again without clone_children has no cpus/mems (ENOSPC): copy the
            # parent's; anything else (a trim racing the write): try again shortly
            if e.errno == errno.ENOSPC:
                for name in ("cpuset.cpus", "cpuset.mems"):
                    try:
                        with open(os.path.join(os.path.dirname(d), name)) as src:
                            value = src.read().strip()
                        with open(os.path.join(d, name), "w") as dst:
                            dst.write(value)
                    except OSError:
                        pass
            time.sleep(0.005)
    raise OSError(f"cannot join {d}")
