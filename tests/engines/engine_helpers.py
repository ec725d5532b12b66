"""What the engine tests share: cleanup helpers, a private containerd (ctr and dockerd both drive
one), a pseudo-terminal for clients that insist on one, and the check that `ocirt features`
covers what an engine put in a config.json."""

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OCIRT = os.path.join(REPO, ".venv", "bin", "ocirt")
SHIM_SOCKETS = "/run/containerd/s"


def run_tool(name: str, argv: list, shown: tuple, env=None, check=True, timeout=120, **kw):
    """One call of an engine's command line (`shown`: the arguments a failure names), output
    captured; with check, a non-zero exit fails the test with both outputs."""
    res = subprocess.run(
        argv,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )
    if check:
        assert res.returncode == 0, f"{name} {' '.join(shown)}: rc={res.returncode}\n{res.stdout}{res.stderr}"
    return res


def rmdir_tree(path: str) -> None:
    """Remove an (empty) cgroup directory tree, deepest first; what is still in use stays."""
    for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda t: -t[0].count("/")):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


def cgroup_dirs(name):
    """Every /sys/fs/cgroup/<controller>/<name> (or the v2 unified one) that exists."""
    found = set()
    for controller in os.listdir("/sys/fs/cgroup"):
        path = os.path.join("/sys/fs/cgroup", controller, name)
        if os.path.isdir(path):
            found.add(path)
    if os.path.isdir(os.path.join("/sys/fs/cgroup", name)):
        found.add(os.path.join("/sys/fs/cgroup", name))
    return found


def pids_matching(needle):
    """PIDs (other than this one) whose command line contains every string of needle."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if cmdline and all(n.encode() in cmdline for n in needle):
            found.append(int(entry))
    return found


def kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def umount_under(d):
    """Lazily unmount everything mounted at or below d, deepest first."""
    with open("/proc/self/mountinfo") as f:
        mounts = {line.split()[4] for line in f}
    ours = [m for m in mounts if m == d or m.startswith(d + "/")]
    for m in sorted(ours, key=lambda m: m.count("/"), reverse=True):
        subprocess.run(["umount", "-l", m], check=False, stderr=subprocess.DEVNULL)


def mounts_under(d):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(d)]


TTY_ROWS, TTY_COLS = 31, 97  # the size run_in_pty gives its terminal
# Shell code that prints the terminal's size once it has one: ctr and docker set the container
# terminal's size only after the process started; wait up to 5 s. (busybox's `stty size` exits 0
# even when it fails.)
WAIT_SIZE = (
    'for i in $(seq 50); do s=$(stty size 2>/dev/null); [ -n "$s" ] && [ "$s" != "0 0" ] && break; '
    'sleep 0.1; done; echo "$s"'
)


def run_in_pty(argv, timeout=60, env=None):
    """Run argv with a new pseudo-terminal of TTY_ROWS x TTY_COLS as its stdin, stdout and stderr
    (and controlling terminal); return (exit status, everything it wrote, as text with "\r"s
    dropped: both this terminal and the container's may add one before each newline)."""
    master, slave = pty.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", TTY_ROWS, TTY_COLS, 0, 0))
    try:
        proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            close_fds=True,
            preexec_fn=lambda: _set_ctty(0),
        )
    finally:
        os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                raise AssertionError(f"{argv} still running after {timeout}s; wrote {out!r}")
            ready, _, _ = select.select([master], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        rc = proc.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc, out.decode(errors="replace").replace("\r", "")


def _set_ctty(fd):
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


# --- directories in /run that the engines make whatever their configuration -------------------


class RunDirs:
    """containerd's shims make /run/containerd/s (their sockets), dockerd /run/docker/plugins and
    /run/netns. Every engine fixture holds a shared flock on /run while its engine runs; the last
    one out (the one that gets the lock exclusively) removes those directories if empty, so that
    no engine of a parallel worker is between making one and using it."""

    DIRS = ("/run/containerd/s", "/run/containerd", "/run/docker/plugins", "/run/docker", "/run/netns")

    def __init__(self):
        self.fd = os.open("/run", os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self.fd, fcntl.LOCK_SH)

    def release(self):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another engine runs: the last one removes them
            for path in self.DIRS:
                try:
                    os.rmdir(path)
                except OSError:
                    pass  # not there, or not empty
        finally:
            os.close(self.fd)


# --- a private containerd --------------------------------------------------------------------


def containerd_config(d: str, top: str = "", plugins: str = "") -> str:
    """A containerd config whose root, state and sockets are under d; `top`: more top-level keys,
    `plugins`: more plugin tables (the CRI tests' cri plugin)."""
    return f"""version = 2
root = "{d}/root"
state = "{d}/state"
{top}

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = "{d}/debug.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
{plugins}"""


# the marks of every test module that starts a private containerd
CONTAINERD_MARKS = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(
        not all(shutil.which(b) for b in ("containerd", "ctr", "containerd-shim-runc-v2")),
        reason="containerd, ctr or containerd-shim-runc-v2 not installed",
    ),
    pytest.mark.skipif(not os.access(OCIRT, os.X_OK), reason=f"{OCIRT} missing"),
]


class Containerd:
    """A containerd whose root, state and sockets are under d, started by start()."""

    def __init__(self, d):
        self.d = d
        self.address = f"{d}/containerd.sock"
        self.proc = None
        self.sockets_before = set()
        self.run_dirs = None

    def ctr(self, ns, *args, timeout=60, check=True, **kw):
        return run_tool("ctr", ["ctr", "-a", self.address, "-n", ns, *args], args, None, check, timeout, **kw)

    def config(self) -> str:
        """config.toml: containerd without its CRI plugin (CriContainerd's has it)."""
        return containerd_config(self.d, top='disabled_plugins = ["io.containerd.grpc.v1.cri"]')

    def start(self):
        self.run_dirs = RunDirs()
        self.sockets_before = set(os.listdir(SHIM_SOCKETS)) if os.path.isdir(SHIM_SOCKETS) else set()
        with open(f"{self.d}/config.toml", "w") as f:
            f.write(self.config())
        with open(f"{self.d}/containerd.log", "w") as log:
            # setsid execs containerd: the PID is containerd's own
            self.proc = subprocess.Popen(
                ["setsid", "containerd", "--config", f"{self.d}/config.toml"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while self.ctr("default", "version", check=False, timeout=10).returncode != 0:
            if self.proc.poll() is not None:
                raise AssertionError(f"containerd exited:\n{self.log()}")
            assert time.monotonic() < deadline, "containerd did not come up"
            time.sleep(0.2)

    def log(self) -> str:
        try:
            with open(f"{self.d}/containerd.log") as f:
                return f.read()
        except OSError:
            return ""

    def remove_all(self, ns):
        """Kill and delete every task and container of namespace ns."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for line in self.ctr(ns, "tasks", "ls", check=False, timeout=20).stdout.splitlines()[1:]:
            if line.split():
                self.ctr(ns, "tasks", "kill", "-s", "SIGKILL", line.split()[0], check=False, timeout=20)
        time.sleep(0.3)
        for line in self.ctr(ns, "tasks", "ls", check=False, timeout=20).stdout.splitlines()[1:]:
            if line.split():
                self.ctr(ns, "tasks", "rm", "-f", line.split()[0], check=False, timeout=20)
        for cid in self.ctr(ns, "containers", "ls", "-q", check=False, timeout=20).stdout.split():
            self.ctr(ns, "containers", "rm", cid, check=False, timeout=20)

    def stop(self, namespaces, ids):
        """Stop containerd (by PID) and remove what it and its shims leave: the shims of
        `namespaces` (by PID), processes running from d, mounts under d, d itself, the namespaces'
        cgroups, and the shim sockets of the (namespace, id) pairs in `ids`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for ns in namespaces:  # shims outlive containerd when a task was not deleted
            kill_pids(pids_matching(["-namespace", ns, "-address", self.address]))
        kill_pids(pids_matching([self.d + "/"]))
        time.sleep(0.2)
        umount_under(self.d)
        shutil.rmtree(self.d, ignore_errors=True)
        for ns in namespaces:
            for cg in cgroup_dirs(ns):
                rmdir_tree(cg)
        # containerd 1.6 names a shim socket sha256(<containerd address>/<namespace>/<id>): remove
        # only this containerd's (other containerds may share /run/containerd/s).
        ours = {hashlib.sha256(os.path.join(self.address, ns, cid).encode()).hexdigest() for ns, cid in ids}
        if os.path.isdir(SHIM_SOCKETS):
            for name in (set(os.listdir(SHIM_SOCKETS)) - self.sockets_before) & ours:
                try:
                    os.unlink(os.path.join(SHIM_SOCKETS, name))
                except OSError:
                    pass
        if self.run_dirs is not None:
            self.run_dirs.release()
            self.run_dirs = None


# --- `ocirt features` against an engine's config.json ----------------------------------------

# Mount options that are file-system data (the mount(2) data string), not flags: features lists
# flags only (as runc does).
_DATA_OPTION = re.compile(r"^[a-z0-9_]+=.*$|^newinstance$")


def ocirt_features():
    res = subprocess.run([OCIRT, "features"], check=True, capture_output=True, text=True)
    return json.loads(res.stdout)


def _version(v):
    return tuple(int(x) for x in re.match(r"(\d+)\.(\d+)\.(\d+)", v).groups())


def features_gaps(config, features=None):
    """What config.json uses that `ocirt features` does not list; [] when it covers it all."""
    f = features or ocirt_features()
    lf = f["linux"]
    gaps = []
    if not _version(f["ociVersionMin"]) <= _version(config["ociVersion"]) <= _version(f["ociVersionMax"]):
        gaps.append(f"ociVersion {config['ociVersion']}")
    gaps += [f"hook {h}" for h in (config.get("hooks") or {}) if h not in f["hooks"]]
    for m in config.get("mounts") or []:
        gaps += [
            f"mount option {o} ({m['destination']})"
            for o in m.get("options") or []
            if not _DATA_OPTION.match(o) and o not in f["mountOptions"]
        ]
    linux = config.get("linux") or {}
    gaps += [
        f"namespace {ns['type']}"
        for ns in linux.get("namespaces") or []
        if ns["type"] not in lf["namespaces"]
    ]
    for kind, caps in ((config.get("process") or {}).get("capabilities") or {}).items():
        gaps += [f"{kind} {c}" for c in caps if c not in lf["capabilities"]]
    sc = linux.get("seccomp")
    if sc:
        if not lf["seccomp"]["enabled"]:
            gaps.append("seccomp")
        actions = {sc["defaultAction"]} | {s["action"] for s in sc.get("syscalls") or []}
        gaps += [f"seccomp action {a}" for a in actions if a not in lf["seccomp"]["actions"]]
        ops = {a["op"] for s in sc.get("syscalls") or [] for a in s.get("args") or []}
        gaps += [f"seccomp operator {o}" for o in ops if o not in lf["seccomp"]["operators"]]
        gaps += [
            f"seccomp arch {a}" for a in sc.get("architectures") or [] if a not in lf["seccomp"]["archs"]
        ]
        gaps += [
            f"seccomp flag {x}" for x in sc.get("flags") or [] if x not in lf["seccomp"]["supportedFlags"]
        ]
    hybrid_or_v1 = not os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    if not lf["cgroup"]["v1" if hybrid_or_v1 else "v2"]:
        gaps.append("cgroup version of this host")
    return gaps
