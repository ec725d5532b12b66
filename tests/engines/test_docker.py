"""ocirt under docker 20.10: the docker CLI drives dockerd, which drives a containerd, whose
containerd-shim-runc-v2 drives ocirt (registered in daemon.json's `runtimes` as "ocirt"). Needs
root and dockerd, the 20.10 docker CLI, containerd and containerd-shim-runc-v2.

Everything is private to the module under a tmp dir D: a containerd (root, state, sockets under
D/containerd), and a dockerd on it with data-root, exec-root, pidfile, key file and socket under D,
no bridge, no iptables, no IP forwarding or masquerading, no userland proxy; every container runs
with `--network none`. The image is a `docker import` of the busybox rootfs tar (no registry).
dockerd and containerd are started once per module (dockerd takes a second or two) and stopped by
PID. The fixture removes what they leave, also when a test fails: containers, the shims of the
"moby" namespace (by PID), mounts under D (overlays, network namespaces), D, the /docker cgroups
it created, the shim sockets of this run's containers in /run/containerd/s.

/usr/local/bin/docker may be a newer CLI that shadows the 20.10 one (ENGINES.md): the CLI used is
the one next to dockerd (/usr/bin/docker), else `docker` on PATH.
"""

import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest
from engine_helpers import (
    OCIRT,
    REPO,
    TTY_COLS,
    TTY_ROWS,
    WAIT_SIZE,
    Containerd,
    cgroup_dirs,
    features_gaps,
    kill_pids,
    pids_matching,
    rmdir_tree,
    run_in_pty,
    run_tool,
    umount_under,
)

DOCKERD = shutil.which("dockerd")
DOCKER = os.path.join(os.path.dirname(os.path.realpath(DOCKERD)), "docker") if DOCKERD else None
if DOCKER and not os.access(DOCKER, os.X_OK):
    DOCKER = shutil.which("docker")
IMAGE = "localhost/ocirt-busybox:latest"
NS = "moby"  # dockerd's containerd namespace

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not (DOCKERD and DOCKER), reason="dockerd or docker not installed"),
    pytest.mark.skipif(
        not all(shutil.which(b) for b in ("containerd", "ctr", "containerd-shim-runc-v2")),
        reason="containerd, ctr or containerd-shim-runc-v2 not installed",
    ),
    pytest.mark.skipif(not os.access(OCIRT, os.X_OK), reason=f"{OCIRT} missing"),
]


class Docker:
    def __init__(self, d, containerd):
        self.d = d
        self.containerd = containerd
        self.proc = None
        self.ids = set()  # full ids of every container this module made (for the shim sockets)
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{d}/docker.sock", DOCKER_CONFIG=f"{d}/cli-config")

    def argv(self, *args):
        return [DOCKER, *args]

    def __call__(self, *args, check=True, timeout=120):
        return run_tool("docker", self.argv(*args), args, self.env, check, timeout)

    def run_args(self, *flags):
        """`docker run` flags for ocirt, with a cidfile so that the full id is known."""
        cidfile = f"{self.d}/cid-{uuid.uuid4().hex}"
        return ["run", "--runtime", "ocirt", "--network", "none", "--cidfile", cidfile, *flags]

    def note_ids(self):
        for name in os.listdir(self.d):
            if name.startswith("cid-"):
                with open(os.path.join(self.d, name)) as f:
                    cid = f.read().strip()
                if cid:
                    self.ids.add(cid)

    def run(self, *args, **kw):
        i = args.index(IMAGE)
        try:
            return self(*self.run_args(*args[:i]), *args[i:], **kw)
        finally:
            self.note_ids()


def _daemon_json(d, cd):
    return {
        "data-root": f"{d}/data",
        "exec-root": f"{d}/exec",
        "pidfile": f"{d}/docker.pid",
        "hosts": [f"unix://{d}/docker.sock"],
        "deprecated-key-path": f"{d}/key.json",
        "storage-driver": "overlay2",
        "exec-opts": ["native.cgroupdriver=cgroupfs"],
        "bridge": "none",
        "iptables": False,
        "ip6tables": False,
        "ip-forward": False,
        "ip-masq": False,
        "userland-proxy": False,
        "runtimes": {"ocirt": {"path": OCIRT}},
    }


@pytest.fixture(scope="module")
def docker(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("docker"))
    cd = f"{d}/containerd"
    os.makedirs(cd)
    os.makedirs(f"{d}/cli-config")
    docker_cgroups_before = cgroup_dirs("docker")
    containerd = Containerd(cd)
    dk = Docker(d, containerd)
    with open(f"{d}/daemon.json", "w") as f:
        json.dump(_daemon_json(d, cd), f)
    try:
        containerd.start()
        with open(f"{d}/dockerd.log", "w") as log:
            # setsid execs dockerd: the PID is dockerd's own
            dk.proc = subprocess.Popen(
                ["setsid", DOCKERD, "--config-file", f"{d}/daemon.json", "--containerd", containerd.address],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while dk("version", check=False, timeout=10).returncode != 0:
            if dk.proc.poll() is not None:
                with open(f"{d}/dockerd.log") as f:
                    pytest.fail(f"dockerd exited:\n{f.read()}")
            assert time.monotonic() < deadline, "dockerd did not come up"
            time.sleep(0.2)
        subprocess.run(["sh", os.path.join(REPO, "bundles", "mkrootfs.sh"), f"{d}/rootfs"], check=True)
        subprocess.run(["tar", "-C", f"{d}/rootfs", "-cf", f"{d}/rootfs.tar", "."], check=True)
        dk("import", f"{d}/rootfs.tar", IMAGE)
        yield dk
    finally:
        _teardown(dk, docker_cgroups_before)


def _teardown(dk, docker_cgroups_before):
    d, containerd = dk.d, dk.containerd
    if dk.proc is not None and dk.proc.poll() is None:
        ids = dk("ps", "-a", "-q", "--no-trunc", check=False, timeout=30).stdout.split()
        dk.ids.update(ids)
        if ids:
            dk("rm", "-f", *ids, check=False, timeout=60)
        dk.proc.terminate()
        try:
            dk.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dk.proc.kill()
            dk.proc.wait()
    dk.note_ids()
    containerd.remove_all(NS)
    containerd.stop([NS], {(NS, cid) for cid in dk.ids})
    kill_pids(pids_matching([d + "/"]))
    time.sleep(0.2)
    umount_under(d)
    shutil.rmtree(d, ignore_errors=True)
    for cg in sorted(cgroup_dirs("docker") - docker_cgroups_before):
        rmdir_tree(cg)  # only empty ones go


def _gone(docker, cid):
    return docker("ps", "-a", "-q", "--no-trunc", "--filter", f"id={cid}").stdout.strip() == ""


def test_run_rm_echo(docker):
    res = docker.run("--rm", IMAGE, "echo", "hello-docker")
    assert res.stdout == "hello-docker\n", res
    assert docker("ps", "-a", "-q").stdout == ""


def test_exit_code_propagates(docker):
    res = docker.run("--rm", IMAGE, "sh", "-c", "exit 7", check=False)
    assert res.returncode == 7, res.stdout + res.stderr


def test_detached_exec_top_pause_kill_rm(docker):
    cid = docker.run("-d", IMAGE, "sleep", "300").stdout.strip()
    try:
        assert (
            docker("exec", cid, "sh", "-c", "echo in-exec; cat /proc/1/cmdline").stdout
            == "in-exec\nsleep\x00300\x00"
        )
        assert docker("exec", cid, "sh", "-c", "exit 4", check=False).returncode == 4

        top = docker("top", cid).stdout.splitlines()  # `ocirt ps --format json`, then host ps
        assert top[0].split()[0] == "UID", top
        assert any(line.split()[-2:] == ["sleep", "300"] for line in top[1:]), top

        docker("pause", cid)
        assert docker("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "paused"
        docker("unpause", cid)
        assert docker("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "running"

        docker("kill", cid)
        assert docker("wait", cid).stdout.strip() == "137"
        assert docker("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "exited"
    finally:
        docker("rm", "-f", cid)
    assert _gone(docker, cid)
    assert not os.path.exists(f"{docker.d}/exec/runtime-runc/{NS}/{cid}")


def test_rm_force_running(docker):
    cid = docker.run("-d", IMAGE, "sleep", "300").stdout.strip()
    docker("rm", "-f", cid)
    assert _gone(docker, cid)


def test_run_tty(docker):
    """`docker run -t`: the pty master comes back from ocirt over the shim's --console-socket."""
    res = docker.run("--rm", "-t", IMAGE, "sh", "-c", "tty; echo tty-done")
    assert re.fullmatch(r"/dev/pts/\d+\r?\ntty-done\r?\n", res.stdout), repr(res.stdout)


def test_exec_tty_and_features_cover_config(docker):
    """`docker exec -it` from a terminal (size passed on), and `ocirt features` lists all that
    docker's config.json uses, its prestart hook included (dockerd 20.10 and containerd 1.6 never
    call `features`: ENGINES.md)."""
    cid = docker.run("-d", IMAGE, "sleep", "300").stdout.strip()
    try:
        rc, out = run_in_pty(
            docker.argv("exec", "-it", cid, "sh", "-c", "tty; " + WAIT_SIZE + "; echo exec-done; exit 3"),
            env=docker.env,
        )
        assert rc == 3, out
        lines = out.splitlines()
        assert re.fullmatch(r"/dev/pts/\d+", lines[0]), out
        assert lines[1:] == [f"{TTY_ROWS} {TTY_COLS}", "exec-done"], out

        bundle = f"{docker.containerd.d}/state/io.containerd.runtime.v2.task/{NS}/{cid}"
        with open(f"{bundle}/config.json") as f:
            config = json.load(f)
        assert [h["args"][0] for h in config["hooks"]["prestart"]] == ["libnetwork-setkey"], config["hooks"]
        assert features_gaps(config) == []
    finally:
        docker("rm", "-f", cid)
