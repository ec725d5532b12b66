"""A create killed with SIGKILL half-way leaves a state that `delete --force` cleans up completely:
no state directory, no cgroup, no process. (The state is saved, status "creating", as soon as the
cgroup exists, before any process of the container does.)"""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OCIRT = [sys.executable, "-m", "ocirt"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    path = tmp_path_factory.mktemp("rootfs") / "rootfs"
    subprocess.run(["sh", os.path.join(REPO, "bundles", "mkrootfs.sh"), str(path)], check=True)
    return str(path)


def cgroup_dirs(name: str) -> list[str]:
    out = []
    for top in os.listdir("/sys/fs/cgroup"):
        d = os.path.join("/sys/fs/cgroup", top, "ocirt-test-killed", name)
        if os.path.isdir(d):
            out.append(d)
    return out


def test_delete_force_cleans_a_killed_create(tmp_path, rootfs):
    cid = f"killed-{uuid.uuid4().hex[:8]}"
    with open(os.path.join(REPO, "bundles", "runc-spec.json")) as f:
        config = json.load(f)
    marker = tmp_path / "hook-ran"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\nexec sleep 3\n")
    hook.chmod(0o755)
    config["root"]["path"] = rootfs
    config["process"]["args"] = ["true"]
    config["linux"]["cgroupsPath"] = f"/ocirt-test-killed/{cid}"
    config["hooks"] = {"createRuntime": [{"path": str(hook)}]}
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(config))
    root = str(tmp_path / "root")
    create = subprocess.Popen(OCIRT + ["--root", root, "create", "--bundle", str(bundle), cid],
                              cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not marker.exists():  # the create is now waiting for its hook
            assert time.monotonic() < deadline and create.poll() is None
            time.sleep(0.01)
        assert cgroup_dirs(cid), "the container's cgroup should exist mid-create"
        create.send_signal(signal.SIGKILL)
        create.wait()
        state = subprocess.run(OCIRT + ["--root", root, "state", cid], cwd=REPO,
                               capture_output=True, text=True)
        assert json.loads(state.stdout)["status"] == "creating"
        subprocess.run(OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO, check=True,
                       capture_output=True)
        assert not os.path.exists(os.path.join(root, cid))
        assert cgroup_dirs(cid) == []
    finally:
        if create.poll() is None:
            create.kill()
            create.wait()
        subprocess.run(OCIRT + ["--root", root, "delete", "--force", cid], cwd=REPO,
                       capture_output=True)
        for d in cgroup_dirs(cid):
            os.rmdir(d)
