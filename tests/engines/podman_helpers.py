"""A private podman 4.3 (+ conmon) session for the engine tests (test_podman.py,
test_podman_checkpoint.py); see ../shared/ENGINES.md.

Everything is private to the session under a tmp dir D: CONTAINERS_CONF and CONTAINERS_STORAGE_CONF
point at files in D (netns none, cgroupfs, file events logger, small default ulimits this VM allows,
overlay storage under D). D is a short mkdtemp in /tmp, not pytest's tmp path: under pytest-xdist
the longer paths made conmon's exit command go missing (test_podman.py's docstring tells the story).
Each runtime is behind a symlink named `runc` (D/<name>/runc): podman only passes
`--log-format=json --log FILE` to a runtime it recognises by name. The session undoes everything,
also when a test fails: containers, podman's storage (system reset), mounts under D, D, the
libpod_parent cgroups it created, the blob-info cache it created in /var/lib/containers/cache.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time

from engine_helpers import rmdir_tree, run_tool

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OCIRT = os.path.join(REPO, ".venv", "bin", "ocirt")
IMAGE = "localhost/ocirt-busybox:latest"
BLOB_CACHE_DIR = "/var/lib/containers/cache"
BLOB_CACHE = os.path.join(BLOB_CACHE_DIR, "blob-info-cache-v1.boltdb")


def podman_usable() -> str:
    """'' if podman can run here, else why not (a skip reason)."""
    if os.geteuid() != 0:
        return "needs root"
    if not (shutil.which("podman") and shutil.which("conmon")):
        return "podman or conmon not installed"
    if not os.access(OCIRT, os.X_OK):
        return f"{OCIRT} missing"
    return ""


CONTAINERS_CONF = """[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[network]
network_config_dir = "{d}/net"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/tmp"
"""

STORAGE_CONF = """[storage]
driver = "overlay"
runroot = "{d}/runroot"
graphroot = "{d}/graphroot"
"""


def _cgroup_dirs(name_prefix):
    found = []
    for controller in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", controller)
        try:
            found += [os.path.join(base, n) for n in os.listdir(base) if n.startswith(name_prefix)]
        except OSError:
            pass
    return set(found)


class Podman:
    """`podman --runtime RUNTIME ...` of the session in d; runtime is the path podman is given."""

    def __init__(self, d, runtime):
        self.d = d
        self.runtime = runtime
        self.env = dict(
            os.environ, CONTAINERS_CONF=f"{d}/containers.conf", CONTAINERS_STORAGE_CONF=f"{d}/storage.conf"
        )

    def with_runtime(self, name: str) -> Podman:
        """The same session with the runtime of podman_session's `runtimes` called name."""
        return Podman(self.d, os.path.join(self.d, name, "runc"))

    def __call__(self, *args, check=True, timeout=120):
        return run_tool(
            "podman", ["podman", "--runtime", self.runtime, *args], args, self.env, check, timeout
        )


@contextlib.contextmanager
def podman_session(rootfs=None, runtimes=None):
    """A Podman whose runtime is ocirt, with IMAGE imported (from the busybox rootfs directory
    `rootfs`, or one made by bundles/mkrootfs.sh). `runtimes` maps more names to runtime binaries
    (e.g. {"runc": "/usr/sbin/runc"}) for Podman.with_runtime; "ocirt" is always there."""
    d = tempfile.mkdtemp(prefix="ocirt-podman-")  # short: see the docstring
    cache_existed = os.path.exists(BLOB_CACHE)
    cache_dirs_existed = [p for p in ("/var/lib/containers", BLOB_CACHE_DIR) if os.path.isdir(p)]
    cgroups_before = _cgroup_dirs("libpod_parent")
    user_conf = os.path.expanduser("~/.config/containers/podman")
    user_conf_existed = os.path.isdir(user_conf)
    for name, binary in {"ocirt": OCIRT, **(runtimes or {})}.items():
        os.makedirs(f"{d}/{name}")
        os.symlink(binary, f"{d}/{name}/runc")
    with open(f"{d}/containers.conf", "w") as f:
        f.write(CONTAINERS_CONF.format(d=d))
    with open(f"{d}/storage.conf", "w") as f:
        f.write(STORAGE_CONF.format(d=d))
    p = Podman(d, f"{d}/ocirt/runc")
    try:
        if rootfs is None:
            rootfs = f"{d}/rootfs"
            subprocess.run(["sh", os.path.join(REPO, "bundles", "mkrootfs.sh"), rootfs], check=True)
        subprocess.run(["tar", "-C", rootfs, "-cf", f"{d}/rootfs.tar", "."], check=True)
        p("import", "-q", f"{d}/rootfs.tar", IMAGE)
        yield p
    finally:
        p("rm", "-a", "-f", "-t", "0", check=False)
        p("system", "reset", "-f", check=False)
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if d in line.split()[4]]
        for m in sorted(mounts, key=lambda m: m.count("/"), reverse=True):
            subprocess.run(["umount", "-l", m], check=False)
        shutil.rmtree(d, ignore_errors=True)
        # only empty ones go; conmons of the last containers may still be on their way out
        deadline = time.monotonic() + 10
        while True:
            ours = _cgroup_dirs("libpod_parent") - cgroups_before
            for cg in sorted(ours):
                rmdir_tree(cg)
            if not ours or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if not user_conf_existed:
            try:
                os.rmdir(user_conf)
            except OSError:
                pass
        if not cache_existed and os.path.exists(BLOB_CACHE):
            os.unlink(BLOB_CACHE)
        for path in (BLOB_CACHE_DIR, "/var/lib/containers"):
            if path not in cache_dirs_existed:
                try:
                    os.rmdir(path)
                except OSError:
                    pass
