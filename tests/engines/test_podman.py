"""ocirt under podman 4.3 + conmon. Needs root and podman and conmon on PATH.

Each `podman run` costs a few tenths of a second here, but took ~20 s at first (with runc too): an
attached `podman run` waits up to 20 s ("Exceeded conmon timeout waiting for container to exit") for
the container to go from "stopped" to "exited", which is the job of conmon's exit command
(`podman --root GRAPHROOT ... container cleanup`). With `static_dir` set in containers.conf away from
GRAPHROOT/libpod, that cleanup opens another database (`--root` resets the static dir), finds no
container and exits 125, so every run hit the timeout. Hence static_dir and volume_path stay at their
defaults under the private graphroot. Still, keep the number of `podman run`s small (4 here).

Everything is private to the session under a tmp dir D: CONTAINERS_CONF and CONTAINERS_STORAGE_CONF
point at files in D (netns none, cgroupfs, file events logger, small default ulimits this VM allows,
overlay storage under D). ocirt is behind a symlink named `runc`: podman only passes
`--log-format=json --log FILE` to a runtime it recognises by name. The fixture undoes everything,
also when a test fails: containers, podman's storage (system reset), mounts under D, D, the
libpod_parent cgroups it created, the blob-info cache it created in /var/lib/containers/cache.
"""
import os
import re
import shutil
import subprocess

import pytest
from engine_helpers import rmdir_tree

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OCIRT = os.path.join(REPO, ".venv", "bin", "ocirt")
IMAGE = "localhost/ocirt-busybox:latest"
BLOB_CACHE_DIR = "/var/lib/containers/cache"
BLOB_CACHE = os.path.join(BLOB_CACHE_DIR, "blob-info-cache-v1.boltdb")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not (shutil.which("podman") and shutil.which("conmon")),
                       reason="podman or conmon not installed"),
    pytest.mark.skipif(not os.access(OCIRT, os.X_OK), reason=f"{OCIRT} missing"),
]

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
    def __init__(self, d):
        self.d = d
        self.runtime = os.path.join(d, "bin", "runc")
        self.env = dict(os.environ, CONTAINERS_CONF=f"{d}/containers.conf",
                        CONTAINERS_STORAGE_CONF=f"{d}/storage.conf")

    def __call__(self, *args, check=True, timeout=120):
        res = subprocess.run(["podman", "--runtime", self.runtime, *args], env=self.env, check=False,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=timeout)
        if check:
            assert res.returncode == 0, f"podman {' '.join(args)}: rc={res.returncode}\n{res.stdout}{res.stderr}"
        return res


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("podman"))
    cache_existed = os.path.exists(BLOB_CACHE)
    cache_dirs_existed = [p for p in ("/var/lib/containers", BLOB_CACHE_DIR) if os.path.isdir(p)]
    cgroups_before = _cgroup_dirs("libpod_parent")
    os.makedirs(f"{d}/bin")
    os.symlink(OCIRT, f"{d}/bin/runc")
    with open(f"{d}/containers.conf", "w") as f:
        f.write(CONTAINERS_CONF.format(d=d))
    with open(f"{d}/storage.conf", "w") as f:
        f.write(STORAGE_CONF.format(d=d))
    p = Podman(d)
    try:
        subprocess.run(["sh", os.path.join(REPO, "bundles", "mkrootfs.sh"), f"{d}/rootfs"], check=True)
        subprocess.run(["tar", "-C", f"{d}/rootfs", "-cf", f"{d}/rootfs.tar", "."], check=True)
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
        for cg in sorted(_cgroup_dirs("libpod_parent") - cgroups_before):
            rmdir_tree(cg)  # only empty ones go
        if not cache_existed and os.path.exists(BLOB_CACHE):
            os.unlink(BLOB_CACHE)
        for path in (BLOB_CACHE_DIR, "/var/lib/containers"):
            if path not in cache_dirs_existed:
                try:
                    os.rmdir(path)
                except OSError:
                    pass


def test_run_rm_echo(podman):
    res = podman("run", "--rm", IMAGE, "echo", "hello-podman")
    assert res.stdout == "hello-podman\n", res
    assert podman("ps", "-a", "-q").stdout == ""


def test_detached_exec_top_pause_rm(podman):
    cid = podman("run", "-d", "--name", "ocirt-detached", IMAGE, "sleep", "300").stdout.strip()
    try:
        assert podman("exec", cid, "sh", "-c", "echo in-exec; cat /proc/1/cmdline").stdout \
            == "in-exec\nsleep\x00300\x00"
        assert podman("exec", cid, "sh", "-c", "exit 4", check=False).returncode == 4

        tty = podman("exec", "-t", cid, "tty").stdout
        # Seen here: "\n", not "\r\n" (ONLCR off on the pty); tolerate either.
        assert re.fullmatch(r"/dev/pts/\d+\r?\n", tty), repr(tty)

        top = podman("top", cid).stdout.splitlines()
        assert top[0].split()[0] == "USER"
        assert any(line.split()[-2:] == ["sleep", "300"] for line in top[1:]), top

        podman("pause", cid)
        assert podman("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "paused"
        podman("unpause", cid)
        assert podman("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "running"
    finally:
        podman("rm", "-f", "-t", "0", cid)
    assert podman("ps", "-a", "-q").stdout == ""
    assert not os.path.exists(f"/run/ocirt/{cid}")


def test_run_tty(podman):
    res = podman("run", "--rm", "-t", IMAGE, "sh", "-c", "tty; echo tty-done")
    assert re.fullmatch(r"/dev/pts/\d+\r?\ntty-done\r?\n", res.stdout), repr(res.stdout)


def test_missing_binary_shows_runtime_error(podman):
    res = podman("run", "--rm", IMAGE, "/no/such/binary", check=False)
    # podman maps "no such file or directory" in the runtime's error to 127 and shows the runtime's
    # last json log line with level "error" (here: "ocirt create failed: exec: ...").
    assert res.returncode == 127, res.stderr
    assert "ocirt create failed" in res.stderr, res.stderr
    assert "stat /no/such/binary: no such file or directory" in res.stderr, res.stderr
    assert podman("ps", "-a", "-q").stdout == ""
