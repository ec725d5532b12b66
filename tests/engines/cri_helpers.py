"""A private containerd with its CRI plugin on, ocirt as a runtime handler, and a Python CRI client:
what tests/engines/test_cri.py drives as the kubelet would.

- The CRI protocol (`runtime.v1`, api.proto of k8s.io/cri-api) is not part of this repository: the
  stubs are generated with grpcio-tools into a temporary directory from the copy beside the
  repository (`../shared/cri/api.proto`, or the file $CRI_API_PROTO names).
- Images without a registry: a one-layer OCI image of the busybox rootfs (bundles/mkrootfs.sh) is
  written as an OCI layout tarball here and imported with `ctr images import`; the same image is the
  pod sandbox ("pause") image, its command a long sleep.
- Pods use the host's network (no CNI, no bridges, no addresses); the CRI stream server listens on
  127.0.0.1 on a port the kernel picks. cgroups (cgroupfs driver) go under a parent unique to the
  run, removed by stop().
"""

import hashlib
import io
import json
import os
import platform
import sys
import tarfile
import time

from engine_helpers import (
    REPO,
    Containerd,
    cgroup_dirs,
    containerd_config,
    kill_pids,
    pids_matching,
    rmdir_tree,
)

PROTO = os.environ.get("CRI_API_PROTO") or os.path.join(os.path.dirname(REPO), "shared", "cri", "api.proto")
HANDLER = "ocirt"
IMAGE = "localhost/ocirt-busybox:1"
K8S_NS = "k8s.io"  # the containerd namespace of the CRI plugin

CRI_PLUGIN = """
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "{handler}"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}.options]
        BinaryName = "{runtime}"
        Root = "{d}/runtime-root"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni-bin"
    conf_dir = "{d}/cni-conf"
"""


def load_stubs(out_dir):
    """Generate the runtime.v1 stubs from api.proto into out_dir; return (api_pb2, api_pb2_grpc)."""
    from grpc_tools import protoc

    proto_dir, name = os.path.split(PROTO)
    rc = protoc.main(
        ["protoc", f"-I{proto_dir}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", name]
    )
    assert rc == 0, f"protoc failed on {PROTO}"
    sys.path.insert(0, out_dir)
    try:
        import api_pb2
        import api_pb2_grpc
    finally:
        sys.path.remove(out_dir)
    return api_pb2, api_pb2_grpc


def goarch():
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def _blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_oci_archive(rootfs, path, cmd, tag="1"):
    """An OCI image layout tarball at path: one uncompressed layer holding rootfs, cmd as its
    command, tag as its org.opencontainers.image.ref.name."""
    layout = path + ".d"
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(rootfs)):
            tar.add(os.path.join(rootfs, entry), arcname=entry)
    layer = _blob(layout, buf.getvalue())
    config = {
        "architecture": goarch(),
        "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": cmd, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
    }
    config_desc = _blob(layout, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
    }
    manifest_desc = _blob(layout, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **manifest_desc,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with tarfile.open(path, "w") as tar:
        for entry in ("oci-layout", "index.json", "blobs"):
            tar.add(os.path.join(layout, entry), arcname=entry)


class CriContainerd(Containerd):
    """A containerd (root, state and sockets under d) with the CRI plugin, a runtime handler
    HANDLER whose runtime is `runtime`, and the busybox image IMAGE imported."""

    def __init__(self, d, runtime):
        super().__init__(d)
        self.runtime = runtime
        self.cri_socket = f"unix://{d}/containerd.sock"

    def config(self) -> str:
        plugin = CRI_PLUGIN.format(d=self.d, image=IMAGE, handler=HANDLER, runtime=self.runtime)
        return containerd_config(self.d, plugins=plugin)

    def start(self, rootfs=None):
        for sub in ("cni-bin", "cni-conf", "runtime-root", "logs"):
            os.makedirs(os.path.join(self.d, sub), exist_ok=True)
        super().start()
        if rootfs is not None:
            archive = f"{self.d}/busybox-oci.tar"
            write_oci_archive(rootfs, archive, ["/bin/sleep", "2147483647"], tag=IMAGE.rsplit(":", 1)[1])
            self.ctr(K8S_NS, "images", "import", "--base-name", IMAGE.rsplit(":", 1)[0], archive, timeout=120)

    def stop_all(self, cgroup_parent):
        """Stop containerd and remove everything it, its shims and the runtime left: the
        processes, mounts, d, the pods' cgroups under cgroup_parent and this containerd's shim
        sockets."""
        ids = set()
        tasks_dir = f"{self.d}/state/io.containerd.runtime.v2.task/{K8S_NS}"
        if os.path.isdir(tasks_dir):
            ids = {(K8S_NS, cid) for cid in os.listdir(tasks_dir)}
        # the pods' containers may outlive their shims: every process in the pods' cgroups
        for cg in cgroup_dirs(cgroup_parent.strip("/")):
            for dirpath, _dirs, files in os.walk(cg):
                if "cgroup.procs" in files:
                    with open(os.path.join(dirpath, "cgroup.procs")) as f:
                        kill_pids(int(p) for p in f.read().split())
        kill_pids(pids_matching(["-address", self.address]))
        self.stop([K8S_NS], ids)
        for cg in cgroup_dirs(cgroup_parent.strip("/")):
            rmdir_tree(cg)


def wait_for(predicate, timeout=20, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


# --- the CRI streaming server: exec over a WebSocket (the channel.k8s.io subprotocols) ----------

STDIN, STDOUT, STDERR, ERROR, RESIZE = range(5)  # the channel byte before each message


class WebSocketExec:
    """A client of the URL an Exec call returns: RFC 6455 frames (client frames masked), each
    message's first byte the channel. v4.channel.k8s.io reports the exit as a JSON Status on
    ERROR."""

    def __init__(self, url, timeout=30):
        import base64
        import socket
        import urllib.parse

        parts = urllib.parse.urlsplit(url)
        assert parts.scheme == "http" and parts.hostname == "127.0.0.1", url
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, f"no WebSocket handshake from {url}: {self.buf!r}"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        accept = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
        assert {k.lower(): v for k, v in headers.items()}.get("sec-websocket-accept") == accept, head

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def send(self, channel, data):
        self._frame(2, bytes([channel]) + data)

    def _frame(self, opcode, payload):
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            header += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def resize(self, rows, cols):
        self.send(RESIZE, json.dumps({"Width": cols, "Height": rows}).encode())

    def receive_all(self):
        """Every message until the server closes: ({channel: bytes}, the ERROR channel's Status)."""
        out = {}
        message = b""
        try:
            while True:
                b0, b1 = self._read(2)
                opcode, n = b0 & 0x0F, b1 & 0x7F
                if n == 126:
                    n = int.from_bytes(self._read(2), "big")
                elif n == 127:
                    n = int.from_bytes(self._read(8), "big")
                mask = self._read(4) if b1 & 0x80 else None
                data = self._read(n)
                if mask:
                    data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
                if opcode == 8:  # close
                    break
                if opcode == 9:  # ping
                    self._frame(10, data)
                    continue
                message += data
                if b0 & 0x80 and message:  # a whole message
                    out[message[0]] = out.get(message[0], b"") + message[1:]
                    message = b""
                elif b0 & 0x80:
                    message = b""
        except EOFError:
            pass
        finally:
            self.sock.close()
        status = json.loads(out[ERROR]) if out.get(ERROR) else None
        return out, status


def exit_code(status):
    """The exit code a v4.channel.k8s.io Status reports (None: it reports none)."""
    if status is None or status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            return int(cause["message"])
    return None
