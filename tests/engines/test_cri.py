"""ocirt under Kubernetes' Container Runtime Interface: a private containerd 1.6 with its CRI plugin
and a runtime handler "ocirt" (containerd-shim-runc-v2 with BinaryName = ocirt), driven over CRI
gRPC from Python as the kubelet drives it: pods (RuntimeClass handler "ocirt", host network),
containers, logs, exec with and without a terminal, stats, resource updates, users, a read-only
root, capabilities, pid-namespace sharing, stop and remove, and nothing left afterwards.

Needs root, containerd + containerd-shim-runc-v2 + ctr, grpcio and grpcio-tools (the `test`
extra), and the CRI api.proto beside the repository (see cri_helpers.py); skipped without them.
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
    CONTAINERD_MARKS,
    OCIRT,
    REPO,
    TTY_COLS,
    TTY_ROWS,
    WAIT_SIZE,
    cgroup_dirs,
    pids_matching,
)

pytestmark = CONTAINERD_MARKS

grpc = pytest.importorskip("grpc")
pytest.importorskip("grpc_tools")
import cri_helpers  # noqa: E402  (after the skips: it needs nothing optional itself)
from cri_helpers import (
    HANDLER,
    IMAGE,
    STDERR,
    STDIN,
    STDOUT,
    CriContainerd,
    WebSocketExec,  # noqa: E402
    exit_code,
    wait_for,
)

# The runtime the handler runs: ocirt; CRI_TEST_RUNTIME=runc runs the same tests on the reference.
RUNTIME = shutil.which(os.environ.get("CRI_TEST_RUNTIME", "")) or OCIRT

if not os.path.isfile(cri_helpers.PROTO):
    pytest.skip(f"CRI api.proto not found at {cri_helpers.PROTO}", allow_module_level=True)


class Cri:
    """The kubelet's side: RuntimeService calls on the private containerd, pods of this run."""

    def __init__(self, daemon, pb, stubs, cgroup_parent):
        self.daemon = daemon
        self.pb = pb
        self.channel = grpc.insecure_channel(daemon.cri_socket)
        self.rt = stubs.RuntimeServiceStub(self.channel)
        self.images = stubs.ImageServiceStub(self.channel)
        self.cgroup_parent = cgroup_parent

    # --- pods ---------------------------------------------------------------------------------
    def pod_config(self, name, pid="CONTAINER"):
        pb = self.pb
        log_dir = os.path.join(self.daemon.d, "logs", name)
        os.makedirs(log_dir, exist_ok=True)
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="ocirt-test"),
            log_directory=log_dir,
            labels={"app": name},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup_parent,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(network=pb.NODE, pid=getattr(pb, pid), ipc=pb.POD)
                ),
            ),
        )

    def run_pod(self, name, **kw):
        config = self.pod_config(name, **kw)
        pod_id = self.rt.RunPodSandbox(
            self.pb.RunPodSandboxRequest(config=config, runtime_handler=HANDLER), timeout=60
        ).pod_sandbox_id
        return pod_id, config

    def remove_pod(self, pod_id):
        self.rt.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
        self.rt.RemovePodSandbox(self.pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)

    # --- containers ---------------------------------------------------------------------------
    def container(
        self, pod_id, pod_config, name, command, security=None, resources=None, tty=False, start=True
    ):
        pb = self.pb
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=IMAGE),
            command=command,
            log_path=f"{name}.log",
            tty=tty,
            linux=pb.LinuxContainerConfig(
                resources=resources or pb.LinuxContainerResources(),
                security_context=security or pb.LinuxContainerSecurityContext(),
            ),
        )
        # as the kubelet does: the container's namespace options are the pod's (its pid option
        # decides whether the container gets a pid namespace of its own)
        config.linux.security_context.namespace_options.CopyFrom(
            pod_config.linux.security_context.namespace_options
        )
        cid = self.rt.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config),
            timeout=60,
        ).container_id
        if start:
            self.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
        return cid

    def status(self, cid):
        return self.rt.ContainerStatus(self.pb.ContainerStatusRequest(container_id=cid), timeout=30).status

    def wait_exited(self, cid, timeout=30):
        return wait_for(
            lambda: (s := self.status(cid)).state == self.pb.CONTAINER_EXITED and s,
            timeout=timeout,
            what=f"container {cid} to exit",
        )

    def exec_sync(self, cid, cmd, timeout=20):
        res = self.rt.ExecSync(
            self.pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout), timeout=timeout + 10
        )
        return res.exit_code, res.stdout.decode(), res.stderr.decode()

    def log_lines(self, pod_config, name):
        """The container's log as the kubelet reads it: (stream, text) per CRI log line."""
        path = os.path.join(pod_config.log_directory, f"{name}.log")
        lines = []
        with open(path) as f:
            for line in f.read().splitlines():
                _time, stream, _tag, text = line.split(" ", 3)
                lines.append((stream, text))
        return lines


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    path = tmp_path_factory.mktemp("cri-rootfs") / "rootfs"
    subprocess.run(["sh", os.path.join(REPO, "bundles", "mkrootfs.sh"), str(path)], check=True)
    yield str(path)
    shutil.rmtree(path.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def cri(tmp_path_factory, rootfs):
    d = str(tmp_path_factory.mktemp("cri"))
    pb, stubs = cri_helpers.load_stubs(str(tmp_path_factory.mktemp("cri-stubs")))
    cgroup_parent = f"/ocirt-cri-{uuid.uuid4().hex[:8]}"
    daemon = CriContainerd(d, RUNTIME)
    client = None
    try:
        daemon.start(rootfs)
        client = Cri(daemon, pb, stubs, cgroup_parent)
        wait_for(lambda: _ready(client), timeout=30, what="the CRI plugin")
        yield client
    finally:
        if client is not None:
            try:
                for pod in client.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items:
                    client.remove_pod(pod.id)
            except grpc.RpcError:
                pass
            client.channel.close()
        daemon.stop_all(cgroup_parent)


def _ready(client):
    try:
        status = client.rt.Status(client.pb.StatusRequest(), timeout=5).status
    except grpc.RpcError:
        return False
    return any(c.type == "RuntimeReady" and c.status for c in status.conditions)


def _memory_limit(cri, cid):
    """The memory limit in the host's cgroup of a container (cgroupfs driver: <parent>/<id>)."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # v2 only
        path = f"/sys/fs/cgroup{cri.cgroup_parent}/{cid}/memory.max"
    else:
        path = f"/sys/fs/cgroup/memory{cri.cgroup_parent}/{cid}/memory.limit_in_bytes"
    with open(path) as f:
        return int(f.read())


def _runtime_state(cri, cid):
    """`<runtime> state` of a container in the handler's root (the containerd namespace below it)."""
    return json.loads(
        subprocess.run(
            [RUNTIME, "--root", f"{cri.daemon.d}/runtime-root/k8s.io", "state", cid],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )


def test_version_and_image(cri):
    v = cri.rt.Version(cri.pb.VersionRequest(), timeout=10)
    assert v.runtime_name == "containerd"
    tags = [
        t
        for img in cri.images.ListImages(cri.pb.ListImagesRequest(), timeout=10).images
        for t in img.repo_tags
    ]
    assert IMAGE in tags


def test_pod_container_logs_exit_code(cri):
    pod_id, pod = cri.run_pod("logs")
    try:
        state = cri.rt.PodSandboxStatus(cri.pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=10)
        assert state.status.state == cri.pb.SANDBOX_READY
        assert _runtime_state(cri, pod_id)["status"] == "running"  # the sandbox's container is ocirt's
        cid = cri.container(
            pod_id, pod, "hello", ["/bin/sh", "-c", "echo out-line; echo err-line >&2; exit 3"]
        )
        status = cri.wait_exited(cid)
        assert status.exit_code == 3
        # (containerd copies the container's output into the log on its own: it may come in
        # a moment after the exit is reported, on a loaded machine)
        deadline = time.monotonic() + 10
        while len(lines := cri.log_lines(pod, "hello")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(lines) == [("stderr", "err-line"), ("stdout", "out-line")]
        cri.rt.RemoveContainer(cri.pb.RemoveContainerRequest(container_id=cid), timeout=30)
        assert not os.path.exists(f"{cri.daemon.d}/runtime-root/k8s.io/{cid}")
    finally:
        cri.remove_pod(pod_id)
    assert not os.path.exists(f"{cri.daemon.d}/runtime-root/k8s.io/{pod_id}")


def test_exec_stats_update_stop(cri):
    pb = cri.pb
    pod_id, pod = cri.run_pod("work")
    try:
        cid = cri.container(
            pod_id,
            pod,
            "sleeper",
            ["/bin/sleep", "300"],
            resources=pb.LinuxContainerResources(memory_limit_in_bytes=256 << 20, cpu_shares=512),
        )
        assert cri.status(cid).state == pb.CONTAINER_RUNNING
        # the handler's runtime made it, in the handler's root (the containerd namespace below it)
        state = _runtime_state(cri, cid)
        assert state["status"] == "running" and state["id"] == cid

        rc, out, _err = cri.exec_sync(cid, ["/bin/sh", "-c", "echo in-exec; tr '\\0' ' ' </proc/1/cmdline"])
        assert (rc, out) == (0, "in-exec\n/bin/sleep 300 ")
        rc, out, err = cri.exec_sync(cid, ["/bin/sh", "-c", "echo to-err >&2; exit 4"])
        assert (rc, out, err) == (4, "", "to-err\n")

        stats = cri.rt.ContainerStats(pb.ContainerStatsRequest(container_id=cid), timeout=30).stats
        assert stats.attributes.id == cid
        assert stats.memory.working_set_bytes.value > 0 or stats.memory.usage_bytes.value > 0
        assert stats.cpu.usage_core_nano_seconds.value > 0

        assert _memory_limit(cri, cid) == 256 << 20
        cri.rt.UpdateContainerResources(
            pb.UpdateContainerResourcesRequest(
                container_id=cid,
                linux=pb.LinuxContainerResources(memory_limit_in_bytes=128 << 20, cpu_shares=256),
            ),
            timeout=30,
        )
        assert _memory_limit(cri, cid) == 128 << 20

        cri.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=2), timeout=60)
        status = cri.status(cid)
        assert status.state == pb.CONTAINER_EXITED
        assert status.exit_code == 137  # sleep as pid 1 ignores SIGTERM: killed after the timeout
        cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=30)
    finally:
        cri.remove_pod(pod_id)


def test_user_readonly_root_capabilities(cri):
    pb = cri.pb
    pod_id, pod = cri.run_pod("secure")
    try:
        security = pb.LinuxContainerSecurityContext(
            run_as_user=pb.Int64Value(value=1000),
            run_as_group=pb.Int64Value(value=1001),
            supplemental_groups=[1002],
            readonly_rootfs=True,
            capabilities=pb.Capability(drop_capabilities=["ALL"], add_capabilities=["NET_BIND_SERVICE"]),
        )
        cid = cri.container(pod_id, pod, "locked", ["/bin/sleep", "300"], security=security)
        rc, out, _ = cri.exec_sync(cid, ["/bin/sh", "-c", "id -u; id -g; id -G"])
        assert rc == 0
        uid, gid, groups = out.split("\n")[:3]
        assert (uid, gid) == ("1000", "1001")
        assert "1002" in groups.split()
        rc, _out, err = cri.exec_sync(cid, ["/bin/touch", "/new-file"])
        assert rc != 0 and "Read-only file system" in err
        rc, out, _ = cri.exec_sync(cid, ["/bin/cat", "/proc/1/status"])
        caps = dict(re.findall(r"^(Cap\w+):\s+([0-9a-f]+)$", out, re.M))
        assert int(caps["CapBnd"], 16) == 1 << 10  # CAP_NET_BIND_SERVICE only
        assert int(caps["CapEff"], 16) == 0  # a non-root user keeps no effective capability
        rc, out, _ = cri.exec_sync(cid, ["/bin/sh", "-c", "grep -E '^(Uid|Gid)' /proc/1/status"])
        assert re.search(r"^Uid:\s+1000\s", out, re.M) and re.search(r"^Gid:\s+1001\s", out, re.M)
        cri.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0), timeout=60)
        cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=30)
    finally:
        cri.remove_pod(pod_id)


@pytest.mark.parametrize("mode", ["POD", "CONTAINER"])
def test_pid_namespace_sharing(cri, mode):
    pb = cri.pb
    pod_id, pod = cri.run_pod(f"pid-{mode.lower()}", pid=mode)
    try:
        cid = cri.container(pod_id, pod, "looker", ["/bin/sleep", "300"])
        rc, out, _ = cri.exec_sync(cid, ["/bin/sh", "-c", "tr '\\0' ' ' </proc/1/cmdline"])
        assert rc == 0
        if mode == "POD":
            assert out == "/bin/sleep 2147483647 "  # the sandbox's process is pid 1 of the pod
        else:
            assert out == "/bin/sleep 300 "
        cri.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0), timeout=60)
    finally:
        cri.remove_pod(pod_id)


def test_container_with_terminal(cri):
    pod_id, pod = cri.run_pod("tty")
    try:
        cid = cri.container(pod_id, pod, "term", ["/bin/sh", "-c", "tty; echo tty-done"], tty=True)
        assert cri.wait_exited(cid).exit_code == 0
        texts = [text.rstrip("\r") for _stream, text in cri.log_lines(pod, "term")]
        assert re.fullmatch(r"/dev/pts/\d+", texts[0]), texts
        assert texts[1:] == ["tty-done"], texts
    finally:
        cri.remove_pod(pod_id)


def test_exec_streaming_with_and_without_terminal(cri):
    """Exec as `kubectl exec` does it: the CRI Exec call gives a URL of containerd's streaming
    server, the client speaks v4.channel.k8s.io over a WebSocket to it. With a terminal: stdin
    typed into an interactive shell, the terminal resized; without: stdout and stderr apart."""
    pb = cri.pb
    pod_id, pod = cri.run_pod("stream")
    try:
        cid = cri.container(pod_id, pod, "target", ["/bin/sleep", "300"])
        url = cri.rt.Exec(
            pb.ExecRequest(container_id=cid, cmd=["/bin/sh"], tty=True, stdin=True, stdout=True), timeout=30
        ).url
        ws = WebSocketExec(url)
        ws.resize(TTY_ROWS, TTY_COLS)
        ws.send(
            STDIN,
            (
                "tty; "
                + WAIT_SIZE.replace('"$s" != "0 0"', f'"$s" = "{TTY_ROWS} {TTY_COLS}"')
                + "; echo typed-$((6*7)); exit 5\n"
            ).encode(),
        )
        out, status = ws.receive_all()
        text = out.get(STDOUT, b"").decode(errors="replace").replace("\r", "")
        assert exit_code(status) == 5, (status, text)
        assert re.search(r"^/dev/pts/\d+$", text, re.M), text
        assert re.search(rf"^{TTY_ROWS} {TTY_COLS}$", text, re.M), text
        assert re.search(r"^typed-42$", text, re.M), text

        url = cri.rt.Exec(
            pb.ExecRequest(
                container_id=cid,
                cmd=["/bin/sh", "-c", "echo o; echo e >&2; exit 2"],
                stdout=True,
                stderr=True,
            ),
            timeout=30,
        ).url
        out, status = WebSocketExec(url).receive_all()
        assert (out.get(STDOUT), out.get(STDERR), exit_code(status)) == (b"o\n", b"e\n", 2), (out, status)
        cri.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0), timeout=60)
    finally:
        cri.remove_pod(pod_id)


def test_nothing_left(cri):
    """After the pods above are gone: no pod, container, runtime state, process or cgroup."""
    pb = cri.pb
    assert list(cri.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=10).items) == []
    assert list(cri.rt.ListContainers(pb.ListContainersRequest(), timeout=10).containers) == []
    assert os.listdir(f"{cri.daemon.d}/runtime-root/k8s.io") == []
    time.sleep(0.2)
    assert pids_matching([f"{cri.daemon.d}/runtime-root"]) == []
    for cg in cgroup_dirs(cri.cgroup_parent.strip("/")):
        assert [e for e in os.listdir(cg) if os.path.isdir(os.path.join(cg, e))] == [], cg
