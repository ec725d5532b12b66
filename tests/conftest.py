"""Shared fixtures of the kernel tests that drive the ocirt CLI of the source tree."""

import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory):
    """A busybox rootfs (bundles/mkrootfs.sh), shared read-only by the tests of a worker."""
    path = tmp_path_factory.mktemp("rootfs") / "rootfs"
    subprocess.run(["sh", os.path.join(REPO, "bundles", "mkrootfs.sh"), str(path)], check=True)
    return str(path)
